/* update.c: changing and reading a running sandbox from outside its
 * lifecycle: the maximum lifetime, and resource usage. */
#include <errno.h>
#include <string.h>

#include "linux/cgroup.h"
#include "sandbox.h"

CAPSA_EXPORT int capsa_sandbox_set_timeout(struct capsa_ctx *ctx, const char *sandbox, int64_t timeout_ms,
					   struct capsa_error **err)
{
	if (timeout_ms < 0)
		return error_set(err, EINVAL, "invalid timeout %lld: must be positive", (long long)timeout_ms);
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	int rc = -1;
	struct proto_conn c = { .fd = -1 };
	struct buf b = BUF_INIT;
	struct store *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
	if (strcmp(r.state, "exited") == 0) {
		error_set(err, ESRCH, "sandbox %s is not running", r.name);
		goto out;
	}
	/* the supervisor first: it is what enforces the deadline */
	if (sandbox_connect(ctx, &r, &c, err) < 0)
		goto out;
	tlv_put_i64(&b, T_DEADLINE_MS, deadline);
	rc = sandbox_request(&c, P_UPDATE, 0, &b, NULL, err);
	if (rc < 0) {
		error_wrap(err, "sandbox %s", r.name);
		goto out;
	}
	db = ctx_db(ctx, err);
	if (!db || store_prepare(db, "UPDATE sandboxes SET deadline_at=?2 WHERE id=?1", &st, err) < 0) {
		rc = -1;
		goto out;
	}
	store_bind_text(st, 1, r.id);
	if (deadline > 0)
		sqlite3_bind_int64(st, 2, deadline);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = store_error(db, "record sandbox timeout", err);
out:
	if (st)
		sqlite3_finalize(st);
	buf_release(&b);
	if (c.fd >= 0)
		proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_stats(struct capsa_ctx *ctx, const char *sandbox, struct capsa_sandbox_stats *out,
				     struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	struct linux_cgroup *cg = NULL;
	int rc = 0;
	if (strcmp(r.state, "exited") == 0 || linux_cgroup_open(r.id, &cg, NULL) < 0) {
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
