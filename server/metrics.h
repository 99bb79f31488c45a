/* metrics.h: the server's own counters and latency histograms, rendered
 * with the library's gauges (sandboxes by state, ledger, per-sandbox
 * usage from the metrics registry) as Prometheus text at GET /metrics. */
#ifndef CAPSA_SERVER_METRICS_H
#define CAPSA_SERVER_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "capsa/capsa.h"
#include "preauth.h"
#include "util/str.h"

#define METRICS_BUCKETS 14

struct histogram {
	atomic_uint_least64_t buckets[METRICS_BUCKETS]; /* cumulative at render */
	atomic_uint_least64_t count;
	atomic_uint_least64_t sum_ns;
};

struct metrics {
	atomic_uint_least64_t requests;
	atomic_uint_least64_t errors;	    /* responses with status >= 400 */
	atomic_uint_least64_t creates;	    /* sandboxes created */
	atomic_uint_least64_t create_errors;
	atomic_uint_least64_t execs;	    /* processes started in sandboxes */
	atomic_uint_least64_t exec_errors;
	/* TCP connections not yet authenticated (preauth.h): open now, and
	 * closed by the guard, by enum preauth_reason */
	atomic_int unauth_open;
	atomic_uint_least64_t unauth_closed[PREAUTH_N_REASONS];
	struct histogram create_seconds;
	struct histogram exec_seconds;
};

void metrics_init(struct metrics *m);
void metrics_release(struct metrics *m);
void metrics_observe(struct histogram *h, int64_t ns);
/* The whole exposition (text format 0.0.4) into out. */
struct capsa_capacity;
int metrics_render(struct metrics *m, struct capsa_ctx *ctx, const struct capsa_capacity *cap, struct buf *out,
		   struct capsa_error **err);

#endif
