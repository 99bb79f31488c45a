/* cmd-stats.c: `capsa stats`: live resource usage of sandboxes, like
 * `docker stats`.  It reads the metrics registry (docs/metrics.md) that
 * every supervisor samples its sandbox into, and never talks to a
 * supervisor: a hundred sandboxes cost one mapping and a scan. */
#include <jansson.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capsa/sandbox.h"
#include "cli.h"
#include "cmds.h"
#include "sandbox/stats.h"
#include "util/str.h"

static const char stats_usage[] =
	"Usage: capsa stats [OPTIONS] [SANDBOX...]\n"
	"\n"
	"Show the resource usage of sandboxes (the running ones when none is named),\n"
	"refreshed every second: CPU %% (100%% is one CPU), memory usage and limit (page\n"
	"cache left out), tunnel and published-port bytes in and out, block I/O,\n"
	"the writable layer's disk use and limit (\"--\": no --disk limit), processes.\n"
	"The numbers are the latest sample each sandbox's supervisor published\n"
	"(at most a second old); a sandbox that is not running shows \"--\".  A\n"
	"rootless sandbox without a delegated cgroup shows \"--\" for CPU, memory,\n"
	"block I/O and processes (null in --json, with \"cgroup\": false).\n"
	"\n"
	"Options:\n"
	"  -a, --all        include sandboxes that are not running\n"
	"      --no-stream  print one sample and exit\n"
	"      --json       one JSON object per sandbox per sample, one per line\n"
	"  -h, --help       show this help\n";

struct target {
	char *id, *name;
	bool have;		 /* a live slot was found */
	struct metrics_snapshot s;
};

struct stats_opts {
	bool all, no_stream, json;
	char **names; /* NULL: every running sandbox */
	size_t n_names;
};

static void targets_free(struct target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].id);
		free(t[i].name);
	}
	free(t);
}

/* The sandboxes to show: those named (each must exist), or the list. */
static int targets_get(struct cli *cli, const struct stats_opts *o, struct target **out, size_t *n)
{
	struct capsa_error *err = NULL;
	*out = NULL;
	*n = 0;
	char *s = capsa_sandbox_list(cli_ctx(cli), o->all || o->n_names > 0, &err);
	if (!s)
		return cli_fail(cli, err);
	json_t *arr = json_loads(s, 0, NULL);
	free(s);
	size_t cnt = o->n_names ? o->n_names : json_array_size(arr);
	struct target *t = xcalloc(cnt ? cnt : 1, sizeof(*t));
	for (size_t i = 0; i < cnt; i++) {
		char *id = NULL;
		json_t *e = NULL;
		if (o->n_names) {
			id = capsa_sandbox_resolve(cli_ctx(cli), o->names[i], &err);
			if (!id) {
				json_decref(arr);
				targets_free(t, *n);
				return cli_fail(cli, err);
			}
			size_t k;
			json_t *x;
			json_array_foreach(arr, k, x) {
				if (str_eq(json_string_value(json_object_get(x, "id")), id))
					e = x;
			}
		} else {
			e = json_array_get(arr, i);
			id = xstrdup(json_string_value(json_object_get(e, "id")));
		}
		const char *name = e ? json_string_value(json_object_get(e, "name")) : NULL;
		t[*n].id = id;
		t[*n].name = xstrdup(name ? name : id);
		(*n)++;
	}
	json_decref(arr);
	*out = t;
	return 0;
}

static bool known(uint64_t v)
{
	return v != UINT64_MAX;
}

/* 1.5MiB (binary units, as docker prints memory) */
static void human_bin(uint64_t n, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	int prec = u == 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
	snprintf(out, len, "%.*f%s", prec, v, units[u]);
}

static void pair(char *out, size_t len, uint64_t a, uint64_t b, bool binary)
{
	char x[32] = "--", y[32] = "--";
	if (known(a))
		binary ? human_bin(a, x, sizeof(x)) : cli_human_size((int64_t)a, x, sizeof(x));
	if (known(b))
		binary ? human_bin(b, y, sizeof(y)) : cli_human_size((int64_t)b, y, sizeof(y));
	snprintf(out, len, "%s / %s", x, y);
}

static uint64_t host_memory(void)
{
	static uint64_t total;
	if (!total) {
		long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
		total = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : UINT64_MAX;
	}
	return total;
}

static uint64_t mem_used(const struct metrics_snapshot *s)
{
	uint64_t u = s->v[MV_MEM_USAGE], c = s->v[MV_MEM_CACHE];
	return known(c) && c < u ? u - c : u;
}

static double pct(double a, double b)
{
	return b > 0 ? 100.0 * a / b : 0;
}

static void print_row(const struct target *t)
{
	char cpu[16] = "--", mem[48] = "-- / --", memp[16] = "--", net[48] = "-- / --", blk[48] = "-- / --",
	     disk[48] = "-- / --", pids[24] = "--";
	if (t->have) {
		const uint64_t *v = t->s.v;
		/* without a cgroup (rootless, none delegated) only the tunnel
		 * and disk figures are known */
		bool cg = !(t->s.flags & METRICS_F_NO_CGROUP);
		uint64_t lim = known(v[MV_MEM_LIMIT]) ? v[MV_MEM_LIMIT] : host_memory();
		if (cg) {
			snprintf(cpu, sizeof(cpu), "%.2f%%", (double)v[MV_CPU_RATE] / 1e7);
			pair(mem, sizeof(mem), mem_used(&t->s), lim, true);
			snprintf(memp, sizeof(memp), "%.2f%%", pct((double)mem_used(&t->s), (double)lim));
			pair(blk, sizeof(blk), v[MV_IO_READ], v[MV_IO_WRITE], false);
			snprintf(pids, sizeof(pids), "%llu", (unsigned long long)v[MV_PIDS]);
		}
		pair(net, sizeof(net), v[MV_NET_RX], v[MV_NET_TX], false);
		if (t->s.flags & METRICS_F_DISK_OWN)
			pair(disk, sizeof(disk), v[MV_DISK_USED], v[MV_DISK_LIMIT], false);
	}
	printf("%-12.12s  %-20.20s  %8s  %-21s  %7s  %-19s  %-19s  %-19s  %s\n", t->id, t->name, cpu, mem, memp, net,
	       blk, disk, pids);
}

/* two decimals */
static json_t *real2(double v)
{
	return json_real((double)(int64_t)(v * 100 + 0.5) / 100);
}

static json_t *num_or_null(uint64_t v)
{
	return known(v) ? json_integer((json_int_t)v) : json_null();
}

static void print_json(const struct target *t)
{
	json_t *o = json_pack("{s:s, s:s, s:b}", "id", t->id, "name", t->name, "running", t->have);
	if (t->have) {
		const uint64_t *v = t->s.v;
		char ts[40];
		format_rfc3339((int64_t)v[MV_SAMPLE_MS], ts, sizeof(ts));
		json_object_set_new(o, "sampledAt", json_string(ts));
		json_object_set_new(o, "cpuPercent", real2((double)v[MV_CPU_RATE] / 1e7));
		json_object_set_new(o, "cpuUsageNs", num_or_null(v[MV_CPU_USAGE_NS]));
		json_object_set_new(o, "memoryUsage", num_or_null(mem_used(&t->s)));
		json_object_set_new(o, "memoryCharged", num_or_null(v[MV_MEM_USAGE]));
		json_object_set_new(o, "memoryLimit", num_or_null(v[MV_MEM_LIMIT]));
		uint64_t lim = known(v[MV_MEM_LIMIT]) ? v[MV_MEM_LIMIT] : host_memory();
		json_object_set_new(o, "memoryPercent", real2(pct((double)mem_used(&t->s), (double)lim)));
		json_object_set_new(o, "memoryPeak", num_or_null(v[MV_MEM_PEAK]));
		json_object_set_new(o, "pids", num_or_null(v[MV_PIDS]));
		json_object_set_new(o, "pidsLimit", num_or_null(v[MV_PIDS_LIMIT]));
		json_object_set_new(o, "blockRead", num_or_null(v[MV_IO_READ]));
		json_object_set_new(o, "blockWrite", num_or_null(v[MV_IO_WRITE]));
		json_object_set_new(o, "netRx", num_or_null(v[MV_NET_RX]));
		json_object_set_new(o, "netTx", num_or_null(v[MV_NET_TX]));
		bool own = t->s.flags & METRICS_F_DISK_OWN;
		/* without a disk of its own, the writable layer's filesystem is
		 * the host's: its figures are shown, flagged, with no limit */
		json_object_set_new(o, "diskOwn", json_boolean(own));
		json_object_set_new(o, "diskUsed", num_or_null(v[MV_DISK_USED]));
		json_object_set_new(o, "diskLimit", own ? num_or_null(v[MV_DISK_LIMIT]) : json_null());
		json_object_set_new(o, "oomKills", num_or_null(v[MV_OOM_KILLS]));
		json_object_set_new(o, "paused", json_boolean(t->s.flags & METRICS_F_PAUSED));
		json_object_set_new(o, "cgroup", json_boolean(!(t->s.flags & METRICS_F_NO_CGROUP)));
		if (t->s.flags & METRICS_F_NO_CGROUP) {
			static const char *const unknown[] = { "cpuPercent", "cpuUsageNs", "memoryUsage", "memoryCharged",
							       "memoryPercent", "memoryPeak", "pids", "blockRead",
							       "blockWrite", "oomKills" };
			for (size_t i = 0; i < ARRAY_SIZE(unknown); i++)
				json_object_set_new(o, unknown[i], json_null());
		}
		json_object_set_new(o, "slot", json_integer(t->s.slot));
		json_object_set_new(o, "generation", json_integer((json_int_t)t->s.generation));
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* One sample of every target: a slot followed before is re-read only
 * while it holds the same generation (the same sandbox). */
static void sample(const struct metrics_map *m, struct target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].have && metrics_reread(m, t[i].s.slot, t[i].s.generation, &t[i].s))
			continue;
		t[i].have = metrics_find(m, t[i].id, &t[i].s) == 1;
	}
}

static void print_all(const struct stats_opts *o, const struct target *t, size_t n)
{
	if (!o->json) {
		if (!o->no_stream && isatty(STDOUT_FILENO))
			fputs("\033[2J\033[H", stdout);
		printf("%-12s  %-20s  %8s  %-21s  %7s  %-19s  %-19s  %-19s  %s\n", "SANDBOX ID", "NAME", "CPU %",
		       "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "DISK USED / LIMIT", "PIDS");
	}
	for (size_t i = 0; i < n; i++)
		o->json ? print_json(&t[i]) : print_row(&t[i]);
	fflush(stdout);
}

static int stats_loop(struct cli *cli, const struct stats_opts *o)
{
	struct capsa_error *err = NULL;
	struct metrics_map m = METRICS_MAP_INIT;
	struct target *t = NULL;
	size_t n = 0;
	int rc = 0;
	for (;;) {
		/* the registry appears with the first sandbox of this runtime root */
		if (!m.base && sandbox_metrics_open(cli_ctx(cli), &m, &err) < 0) {
			rc = cli_fail(cli, err);
			break;
		}
		/* without names, sandboxes come and go between samples */
		if (!t || !o->n_names) {
			struct target *nt;
			size_t nn;
			if ((rc = targets_get(cli, o, &nt, &nn)) != 0)
				break;
			for (size_t i = 0; i < nn; i++)
				for (size_t k = 0; k < n; k++)
					if (str_eq(nt[i].id, t[k].id) && t[k].have) {
						nt[i].have = true;
						nt[i].s = t[k].s;
					}
			targets_free(t, n);
			t = nt;
			n = nn;
		}
		sample(&m, t, n);
		print_all(o, t, n);
		if (o->no_stream || ferror(stdout))
			break;
		struct timespec ts = { 1, 0 };
		nanosleep(&ts, NULL);
	}
	targets_free(t, n);
	metrics_map_close(&m);
	return rc;
}

CLI_CMD(stats)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },	   { "no-stream", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },	   { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct stats_opts o = { 0 };
	int c;
	while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o.all = true; break;
		case 'n': o.no_stream = true; break;
		case 'j': o.json = true; break;
		case 'h': return cli_help(stats_usage);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	o.names = argv + optind;
	o.n_names = (size_t)(argc - optind);
	return stats_loop(cli, &o);
}
