/* pool.h: worker threads, each with its own capsa context (pool.c). */
#ifndef CAPSA_SERVER_POOL_H
#define CAPSA_SERVER_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "capsa/admission.h"
#include "capsa/capsa.h"

struct pool;

int pool_start(struct pool **out, size_t n, const struct capsa_ctx_opts *copts, const struct capsa_capacity *cap,
	       struct capsa_error **err);
/* Queues fn(arg, ctx) for a worker; -1 once the pool is stopping. */
int pool_submit(struct pool *p, void (*fn)(void *arg, struct capsa_ctx *ctx), void *arg);
/* Jobs running or waiting. */
int pool_busy(struct pool *p);
/* Runs what is queued, then joins the workers and frees everything. */
void pool_stop(struct pool *p);

#endif
