/* metrics.c: Prometheus text exposition for GET /metrics (metrics.h).
 * Counters and histograms are atomics the request path bumps without
 * locks; gauges are read from the library when the page is rendered, the
 * per-sandbox ones from the metrics registry (docs/metrics.md). */
#include <jansson.h>
#include <string.h>

#include "capsa/admission.h"
#include "capsa/sandbox.h"
#include "metrics.h"
#include "sandbox/stats.h"
#include "util/util.h"

/* seconds */
static const double bounds[METRICS_BUCKETS - 1] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
						    0.25,  0.5,	   1,	  2.5,	5,     10 };

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
}

void metrics_release(struct metrics *m)
{
	(void)m; /* nothing held: the per-sandbox figures live in the registry */
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

/* The guard on connections that have not shown the token (preauth.h). */
static void unauthenticated(struct buf *o, struct metrics *m)
{
	const char *name = "capsa_http_unauthenticated_closed_total";
	buf_appendf(o, "# HELP capsa_http_unauthenticated_connections TCP connections that have not shown the API "
		       "token yet.\n# TYPE capsa_http_unauthenticated_connections gauge\n"
		       "capsa_http_unauthenticated_connections %d\n",
		    atomic_load(&m->unauth_open));
	buf_appendf(o, "# HELP %s TCP connections closed before they showed the API token, by reason.\n"
		       "# TYPE %s counter\n", name, name);
	for (size_t i = 0; i < PREAUTH_N_REASONS; i++)
		buf_appendf(o, "%s{reason=\"%s\"} %llu\n", name, preauth_reason_names[i],
			    (unsigned long long)atomic_load(&m->unauth_closed[i]));
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

static void sandboxes(struct buf *o, struct capsa_ctx *ctx)
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

	/* per sandbox: the latest sample its supervisor published in the
	 * registry (docs/metrics.md), without asking any supervisor */
	struct metrics_map reg;
	if (sandbox_metrics_open(ctx, &reg, NULL) < 0)
		reg = (struct metrics_map)METRICS_MAP_INIT;
	static const struct {
		const char *name, *type, *help;
		enum metrics_value v;
		double scale;
	} g[] = {
		{ "capsa_sandbox_cpu_seconds_total", "counter", "CPU time used by a running sandbox.", MV_CPU_USAGE_NS,
		  1e-9 },
		{ "capsa_sandbox_memory_bytes", "gauge", "Memory charged to a running sandbox (absent: unknown, no cgroup).",
		  MV_MEM_USAGE, 1 },
		{ "capsa_sandbox_memory_limit_bytes", "gauge", "Memory limit of a running sandbox (absent: none).",
		  MV_MEM_LIMIT, 1 },
		{ "capsa_sandbox_pids", "gauge", "Processes in a running sandbox.", MV_PIDS, 1 },
		{ "capsa_sandbox_block_read_bytes_total", "counter", "Block I/O bytes read by a running sandbox.",
		  MV_IO_READ, 1 },
		{ "capsa_sandbox_block_write_bytes_total", "counter", "Block I/O bytes written by a running sandbox.",
		  MV_IO_WRITE, 1 },
		{ "capsa_sandbox_tunnel_rx_bytes_total", "counter",
		  "Bytes from clients into a sandbox through its tunnels and published ports.", MV_NET_RX, 1 },
		{ "capsa_sandbox_tunnel_tx_bytes_total", "counter",
		  "Bytes from a sandbox to clients through its tunnels and published ports.", MV_NET_TX, 1 },
		{ "capsa_sandbox_disk_used_bytes", "gauge", "Bytes used on a sandbox's own disk (--disk).", MV_DISK_USED,
		  1 },
	};
	struct buf body[ARRAY_SIZE(g)];
	for (size_t k = 0; k < ARRAY_SIZE(g); k++)
		body[k] = (struct buf)BUF_INIT;
	json_array_foreach(arr, i, e) {
		const char *st = json_string_value(json_object_get(e, "state"));
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *name = json_string_value(json_object_get(e, "name"));
		struct metrics_snapshot s;
		if (!st || !id || !name || strcmp(st, "exited") == 0 || metrics_find(&reg, id, &s) != 1)
			continue;
		for (size_t k = 0; k < ARRAY_SIZE(g); k++) {
			uint64_t v = s.v[g[k].v];
			if (v == UINT64_MAX || (g[k].v == MV_DISK_USED && !(s.flags & METRICS_F_DISK_OWN)))
				continue;
			buf_appendf(&body[k], "%s{id=\"%s\",name=\"%s\"} %.9g\n", g[k].name, id, name,
				    (double)v * g[k].scale);
		}
	}
	json_decref(arr);
	metrics_map_close(&reg);
	for (size_t k = 0; k < ARRAY_SIZE(g); k++) {
		buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n%s", g[k].name, g[k].help, g[k].name, g[k].type,
			    buf_cstr(&body[k]));
		buf_release(&body[k]);
	}
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
	unauthenticated(out, m);
	histogram(out, "capsa_sandbox_create_duration_seconds", "Time to create and start a sandbox.",
		  &m->create_seconds);
	histogram(out, "capsa_exec_duration_seconds",
		  "Time from an exec request to its first output (streaming) or its exit (one-shot).", &m->exec_seconds);
	ledger(out, ctx, cap);
	sandboxes(out, ctx);
	return 0;
}
