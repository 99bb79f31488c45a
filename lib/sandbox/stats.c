/* stats.c: resource usage of a running sandbox, from the metrics registry
 * its supervisor samples into (docs/metrics.md), or from its cgroup when it
 * has no slot (a full registry). */
#include <errno.h>
#include <string.h>

#include "linux/cgroup.h"
#include "sandbox.h"
#include "stats.h"
#include "store/context.h"

int sandbox_metrics_open(struct capsa_ctx *ctx, struct metrics_map *m, struct capsa_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/metrics", ctx->run_root);
	struct capsa_error *e = NULL;
	if (metrics_map_open_ro(path, m, &e) == 0)
		return 0;
	if (e->code == ENOENT) {
		capsa_error_free(e);
		*m = (struct metrics_map)METRICS_MAP_INIT;
		return 0;
	}
	error_move(err, &e);
	capsa_error_free(e);
	return -1;
}

static void from_snapshot(const struct metrics_snapshot *s, struct capsa_sandbox_stats *out)
{
	out->cpu_usage_ns = s->v[MV_CPU_USAGE_NS];
	out->memory_current = s->v[MV_MEM_USAGE];
	out->memory_limit = s->v[MV_MEM_LIMIT];
	out->pids_current = s->v[MV_PIDS];
	out->pids_limit = s->v[MV_PIDS_LIMIT];
	out->io_read_bytes = s->v[MV_IO_READ];
	out->io_write_bytes = s->v[MV_IO_WRITE];
	out->oom_kills = s->v[MV_OOM_KILLS];
}

static int from_cgroup(struct capsa_ctx *ctx, const struct sb_row *r, struct capsa_sandbox_stats *out,
		       struct capsa_error **err)
{
	struct linux_cgroup *cg = NULL;
	_cleanup_free_ char *cgname = ctx_sandbox_cgroup(ctx, r->id);
	if (strcmp(r->state, "exited") == 0 || linux_cgroup_open(cgname, &cg, NULL) < 0)
		return error_set(err, ESRCH, "sandbox %s is not running", r->name);
	struct linux_cgroup_stats s;
	linux_cgroup_stats(cg, &s);
	out->cpu_usage_ns = s.cpu_usage_ns;
	out->memory_current = s.memory_current;
	out->memory_limit = s.memory_limit;
	out->pids_current = s.pids_current;
	out->pids_limit = s.pids_limit;
	out->io_read_bytes = s.io_read_bytes;
	out->io_write_bytes = s.io_write_bytes;
	out->oom_kills = s.oom_kills;
	linux_cgroup_free(cg);
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_stats(struct capsa_ctx *ctx, const char *sandbox, struct capsa_sandbox_stats *out,
				     struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	struct metrics_map m = METRICS_MAP_INIT;
	struct metrics_snapshot s;
	int rc;
	if (strcmp(r.state, "exited") != 0 && sandbox_metrics_open(ctx, &m, NULL) == 0 && metrics_find(&m, r.id, &s)) {
		from_snapshot(&s, out);
		rc = 0;
	} else {
		rc = from_cgroup(ctx, &r, out, err);
	}
	metrics_map_close(&m);
	sb_row_release(&r);
	return rc;
}
