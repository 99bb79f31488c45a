/* pool.c: the worker threads that run request handlers.
 *
 * libcapsa calls block (a create waits for its supervisor, a one-shot exec
 * for its process) and a capsa context is not thread-safe, so each worker
 * owns a context, opened at start with the server's admission policy, and
 * takes jobs from one FIFO queue.  Jobs run to completion; nothing here
 * cancels them.
 */
#include <errno.h>
#include <string.h>

#include "pool.h"
#include "util/error.h"
#include "util/util.h"

struct job {
	void (*fn)(void *arg, struct capsa_ctx *ctx);
	void *arg;
	struct job *next;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stopping;
	size_t n, n_alloc;
	pthread_t *threads;
	struct capsa_ctx **ctxs;
	atomic_int busy;
	atomic_int queued;
};

static void *worker(void *arg)
{
	struct pool *p = ((void **)arg)[0];
	struct capsa_ctx *ctx = ((void **)arg)[1];
	free(arg);
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->mu);
		struct job *j = p->head;
		if (!j) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		atomic_fetch_sub(&p->queued, 1);
		atomic_fetch_add(&p->busy, 1);
		j->fn(j->arg, ctx);
		atomic_fetch_sub(&p->busy, 1);
		free(j);
	}
	return NULL;
}

int pool_start(struct pool **out, size_t n, const struct capsa_ctx_opts *copts, const struct capsa_capacity *cap,
	       struct capsa_error **err)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->threads = xcalloc(n, sizeof(pthread_t));
	p->ctxs = xcalloc(n, sizeof(*p->ctxs));
	p->n_alloc = n;
	for (size_t i = 0; i < n; i++) {
		if (capsa_ctx_open(copts, &p->ctxs[i], err) < 0)
			goto fail;
		capsa_ctx_set_capacity(p->ctxs[i], cap);
		void **arg = xcalloc(2, sizeof(void *));
		arg[0] = p;
		arg[1] = p->ctxs[i];
		int e = pthread_create(&p->threads[i], NULL, worker, arg);
		if (e) {
			free(arg);
			capsa_ctx_free(p->ctxs[i]);
			p->ctxs[i] = NULL;
			error_sys(err, e, "start worker thread");
			goto fail;
		}
		p->n++;
	}
	*out = p;
	return 0;
fail:
	pool_stop(p);
	return -1;
}

int pool_submit(struct pool *p, void (*fn)(void *arg, struct capsa_ctx *ctx), void *arg)
{
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->fn = fn;
	j->arg = arg;
	atomic_fetch_add(&p->queued, 1);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int pool_busy(struct pool *p)
{
	return atomic_load(&p->busy) + atomic_load(&p->queued);
}

void pool_stop(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	for (size_t i = 0; i < p->n_alloc; i++)
		capsa_ctx_free(p->ctxs[i]);
	free(p->threads);
	free(p->ctxs);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p);
}
