/* metrics.c: Prometheus text exposition for GET /metrics (metrics.h).
 * Counters and histograms are atomics the request path bumps without
 * locks; gauges are read from the library when the page is rendered. */
#include <jansson.h>
#include <string.h>

#include "capsa/admission.h"
#include "capsa/sandbox.h"
#include "capsa/tunnel.h"
#include "metrics.h"
#include "util/util.h"

/* seconds */
static const double bounds[METRICS_BUCKETS - 1] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
						    0.25,  0.5,	   1,	  2.5,	5,     10 };

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
}

void metrics_release(struct metrics *m)
{
	free(m->tunnels);
	pthread_mutex_destroy(&m->mu);
}

void metrics_observe(struct histogram *h, int64_t ns)
{
	double s = (double)ns / 1e9;
	size_t i = 0;
	while (i < METRICS_BUCKETS - 1 && s > bounds[i])
		i++;
	atomic_fetch_add(&h->buckets[i], 1);
	atomic_fetch_add(&h->count, 1);
	atomic_fetch_add(&h->sum_ns, (uint64_t)(ns > 0 ? ns : 0));
}

void metrics_tunnel(struct metrics *m, const char *sandbox_id, uint64_t rx, uint64_t tx)
{
	pthread_mutex_lock(&m->mu);
	struct tunnel_bytes *t = NULL;
	for (size_t i = 0; i < m->n_tunnels && !t; i++)
		if (strcmp(m->tunnels[i].id, sandbox_id) == 0)
			t = &m->tunnels[i];
	if (!t) {
		m->tunnels = xrealloc(m->tunnels, (m->n_tunnels + 1) * sizeof(*m->tunnels));
		t = &m->tunnels[m->n_tunnels++];
		memset(t, 0, sizeof(*t));
		snprintf(t->id, sizeof(t->id), "%s", sandbox_id);
	}
	t->rx += rx;
	t->tx += tx;
	pthread_mutex_unlock(&m->mu);
}

static void counter(struct buf *o, const char *name, const char *help, uint64_t v)
{
	buf_appendf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void histogram(struct buf *o, const char *name, const char *help, struct histogram *h)
{
	buf_appendf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += atomic_load(&h->buckets[i]);
		if (i < METRICS_BUCKETS - 1)
			buf_appendf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
		else
			buf_appendf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	buf_appendf(o, "%s_sum %.9f\n%s_count %llu\n", name, (double)atomic_load(&h->sum_ns) / 1e9, name,
		    (unsigned long long)atomic_load(&h->count));
}

static void ledger(struct buf *o, struct capsa_ctx *ctx, const struct capsa_capacity *cap)
{
	struct capsa_ledger u;
	if (capsa_ledger_usage(ctx, &u, NULL) < 0)
		return;
	buf_appendf(o, "# HELP capsa_ledger_reserved Resources reserved by sandboxes that have not ended.\n"
		       "# TYPE capsa_ledger_reserved gauge\n"
		       "capsa_ledger_reserved{resource=\"cpus\"} %.3f\n"
		       "capsa_ledger_reserved{resource=\"memory_bytes\"} %lld\n"
		       "capsa_ledger_reserved{resource=\"disk_bytes\"} %lld\n",
		    (double)u.cpus_milli / 1000, (long long)u.memory, (long long)u.disk);
	buf_appendf(o, "# HELP capsa_ledger_capacity What admission checks reservations against (0: unchecked).\n"
		       "# TYPE capsa_ledger_capacity gauge\n"
		       "capsa_ledger_capacity{resource=\"cpus\"} %.3f\n"
		       "capsa_ledger_capacity{resource=\"memory_bytes\"} %lld\n"
		       "capsa_ledger_capacity{resource=\"disk_bytes\"} %lld\n",
		    (double)cap->cpus_milli / 1000, (long long)cap->memory, (long long)cap->disk);
	buf_appendf(o, "# HELP capsa_ledger_sandboxes Sandboxes holding a reservation.\n"
		       "# TYPE capsa_ledger_sandboxes gauge\ncapsa_ledger_sandboxes %lld\n",
		    (long long)u.sandboxes);
}

static void sandboxes(struct buf *o, struct capsa_ctx *ctx, struct metrics *m)
{
	_cleanup_free_ char *list = capsa_sandbox_list(ctx, true, NULL);
	json_t *arr = list ? json_loads(list, 0, NULL) : NULL;
	static const char *const states[] = { "creating", "running", "paused", "exited" };
	size_t counts[ARRAY_SIZE(states)] = { 0 };
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		const char *st = json_string_value(json_object_get(e, "state"));
		for (size_t k = 0; st && k < ARRAY_SIZE(states); k++)
			if (strcmp(st, states[k]) == 0)
				counts[k]++;
	}
	buf_appendf(o, "# HELP capsa_sandboxes Sandboxes by state.\n# TYPE capsa_sandboxes gauge\n");
	for (size_t k = 0; k < ARRAY_SIZE(states); k++)
		buf_appendf(o, "capsa_sandboxes{state=\"%s\"} %zu\n", states[k], counts[k]);

	struct buf cpu = BUF_INIT, mem = BUF_INIT, pids = BUF_INIT, rx = BUF_INIT, tx = BUF_INIT;
	json_array_foreach(arr, i, e) {
		const char *st = json_string_value(json_object_get(e, "state"));
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *name = json_string_value(json_object_get(e, "name"));
		if (!st || !id || !name || strcmp(st, "exited") == 0)
			continue;
		struct capsa_sandbox_stats s;
		if (capsa_sandbox_stats(ctx, id, &s, NULL) < 0)
			continue;
		buf_appendf(&cpu, "capsa_sandbox_cpu_seconds_total{id=\"%s\",name=\"%s\"} %.6f\n", id, name,
			    (double)s.cpu_usage_ns / 1e9);
		buf_appendf(&mem, "capsa_sandbox_memory_bytes{id=\"%s\",name=\"%s\"} %llu\n", id, name,
			    (unsigned long long)s.memory_current);
		buf_appendf(&pids, "capsa_sandbox_pids{id=\"%s\",name=\"%s\"} %llu\n", id, name,
			    (unsigned long long)s.pids_current);
		/* tunnels: published ports (the supervisor counts) plus the
		 * API's upgrade tunnels (the hub counts) */
		uint64_t r = 0, t = 0;
		struct capsa_port_info *pv = NULL;
		size_t pn = 0;
		if (capsa_port_list(ctx, id, &pv, &pn, NULL) == 0)
			for (size_t k = 0; k < pn; k++) {
				r += pv[k].rx_bytes;
				t += pv[k].tx_bytes;
			}
		free(pv);
		pthread_mutex_lock(&m->mu);
		for (size_t k = 0; k < m->n_tunnels; k++)
			if (strcmp(m->tunnels[k].id, id) == 0) {
				r += m->tunnels[k].rx;
				t += m->tunnels[k].tx;
			}
		pthread_mutex_unlock(&m->mu);
		buf_appendf(&rx, "capsa_sandbox_tunnel_rx_bytes_total{id=\"%s\",name=\"%s\"} %llu\n", id, name,
			    (unsigned long long)r);
		buf_appendf(&tx, "capsa_sandbox_tunnel_tx_bytes_total{id=\"%s\",name=\"%s\"} %llu\n", id, name,
			    (unsigned long long)t);
	}
	json_decref(arr);
	buf_appendf(o, "# HELP capsa_sandbox_cpu_seconds_total CPU time used by a running sandbox.\n"
		       "# TYPE capsa_sandbox_cpu_seconds_total counter\n%s",
		    buf_cstr(&cpu));
	buf_appendf(o, "# HELP capsa_sandbox_memory_bytes Memory charged to a running sandbox.\n"
		       "# TYPE capsa_sandbox_memory_bytes gauge\n%s",
		    buf_cstr(&mem));
	buf_appendf(o, "# HELP capsa_sandbox_pids Processes in a running sandbox.\n# TYPE capsa_sandbox_pids gauge\n%s",
		    buf_cstr(&pids));
	buf_release(&cpu);
	buf_release(&mem);
	buf_release(&pids);

	buf_appendf(o, "# HELP capsa_sandbox_tunnel_rx_bytes_total Bytes from clients into a sandbox through its "
		       "tunnels and published ports.\n# TYPE capsa_sandbox_tunnel_rx_bytes_total counter\n%s",
		    buf_cstr(&rx));
	buf_appendf(o, "# HELP capsa_sandbox_tunnel_tx_bytes_total Bytes from a sandbox to clients through its "
		       "tunnels and published ports.\n# TYPE capsa_sandbox_tunnel_tx_bytes_total counter\n%s",
		    buf_cstr(&tx));
	buf_release(&rx);
	buf_release(&tx);
}

int metrics_render(struct metrics *m, struct capsa_ctx *ctx, const struct capsa_capacity *cap, struct buf *out,
		   struct capsa_error **err)
{
	(void)err;
	counter(out, "capsa_http_requests_total", "HTTP requests received.", atomic_load(&m->requests));
	counter(out, "capsa_http_errors_total", "HTTP responses with a status of 400 or more.", atomic_load(&m->errors));
	counter(out, "capsa_sandbox_creates_total", "Sandboxes created through the API.", atomic_load(&m->creates));
	counter(out, "capsa_sandbox_create_errors_total", "Sandbox creations that failed.",
		atomic_load(&m->create_errors));
	counter(out, "capsa_execs_total", "Processes started in sandboxes through the API.", atomic_load(&m->execs));
	counter(out, "capsa_exec_errors_total", "Processes that could not be started.", atomic_load(&m->exec_errors));
	histogram(out, "capsa_sandbox_create_duration_seconds", "Time to create and start a sandbox.",
		  &m->create_seconds);
	histogram(out, "capsa_exec_duration_seconds",
		  "Time from an exec request to its first output (streaming) or its exit (one-shot).", &m->exec_seconds);
	ledger(out, ctx, cap);
	sandboxes(out, ctx, m);
	return 0;
}
