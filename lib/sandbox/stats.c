/* stats.c: resource usage of a running sandbox, from its cgroup. */
#include <errno.h>
#include <string.h>

#include "linux/cgroup.h"
#include "sandbox.h"

CAPSA_EXPORT int capsa_sandbox_stats(struct capsa_ctx *ctx, const char *sandbox, struct capsa_sandbox_stats *out,
				     struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	struct linux_cgroup *cg = NULL;
	_cleanup_free_ char *cgname = ctx_sandbox_cgroup(ctx, r.id);
	int rc = 0;
	if (strcmp(r.state, "exited") == 0 || linux_cgroup_open(cgname, &cg, NULL) < 0) {
		rc = error_set(err, ESRCH, "sandbox %s is not running", r.name);
	} else {
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
	}
	sb_row_release(&r);
	return rc;
}
