/* control.c: requests to a running sandbox's supervisor: exec, stop, kill,
 * pause, wait, and removal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "sandbox.h"
#include "util/fs.h"

/* Waits until nobody holds the sandbox's lock (the supervisor and the
 * finalizer it hands over to are done). */
static void wait_unlocked(struct capsa_ctx *ctx, const char *id, int timeout_ms)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/lock", ctx->run_root, id);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	int64_t end = mono_ms() + timeout_ms;
	while (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK && mono_ms() < end)
		poll(NULL, 0, 2);
}

/* Looks the sandbox up and connects to its supervisor; a sandbox whose
 * supervisor is gone is reconciled and reported as not running. */
static int open_running(struct capsa_ctx *ctx, const char *ref, struct sb_row *r, struct proto_conn *c,
			struct capsa_error **err)
{
	if (sandbox_lookup(ctx, ref, r, err) < 0)
		return -1;
	if (strcmp(r->state, "exited") != 0 && sandbox_connect(ctx, r, c, NULL) == 0)
		return 0;
	if (strcmp(r->state, "exited") != 0)
		sandbox_reconcile_one(ctx, r->id, NULL);
	error_set(err, ESRCH, "sandbox %s is not running", r->name);
	sb_row_release(r);
	return -1;
}

CAPSA_EXPORT int capsa_sandbox_exec(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_exec_opts *o,
				    const struct capsa_stdio *stdio, struct capsa_exit *exit_out, struct capsa_error **err)
{
	if (!o->argv || !o->argv[0] || !*o->argv[0])
		return error_set(err, EINVAL, "no command given");
	struct sb_row r;
	struct proto_conn c;
	if (open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	int rc = sandbox_exec_conn(&c, r.name, o, stdio, exit_out, err);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

int sandbox_open_running(struct capsa_ctx *ctx, const char *ref, struct proto_conn *c, char **name,
			 struct capsa_error **err)
{
	struct sb_row r;
	if (open_running(ctx, ref, &r, c, err) < 0)
		return -1;
	*name = steal_pointer(&r.name);
	sb_row_release(&r);
	return 0;
}

/* Sends a request and, when wait_end, waits for FINAL and the finalizer. */
static int control(struct capsa_ctx *ctx, const char *ref, uint16_t type, const struct buf *payload, bool wait_end,
		   bool quiet_if_stopped, struct capsa_error **err)
{
	struct sb_row r;
	struct proto_conn c;
	struct capsa_error *e2 = NULL;
	if (open_running(ctx, ref, &r, &c, &e2) < 0) {
		if (quiet_if_stopped && e2 && e2->code == ESRCH) {
			capsa_error_free(e2);
			return 0;
		}
		error_move(err, &e2);
		return -1;
	}
	int rc = sandbox_request(&c, type, 0, payload, NULL, err);
	if (rc == 0 && wait_end) {
		/* read until the supervisor says FINAL or goes away */
		fd_set_nonblock(c.fd, false);
		char buf[4096];
		while (read(c.fd, buf, sizeof(buf)) > 0) {
		}
		wait_unlocked(ctx, r.id, 60000);
		sandbox_reconcile_one(ctx, r.id, NULL);
	}
	if (rc < 0)
		error_wrap(err, "sandbox %s", r.name);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_stop(struct capsa_ctx *ctx, const char *sandbox, int64_t timeout_ms,
				    struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	tlv_put_i64(&b, T_TIMEOUT_MS, timeout_ms);
	int rc = control(ctx, sandbox, P_STOP, &b, true, true, err);
	buf_release(&b);
	if (rc == 0) {
		_cleanup_free_ char *id = capsa_sandbox_resolve(ctx, sandbox, NULL);
		if (id)
			sandbox_event(ctx, id, "stop", NULL);
	}
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_kill(struct capsa_ctx *ctx, const char *sandbox, int sig, struct capsa_error **err)
{
	if (sig < 1 || sig > 64)
		return error_set(err, EINVAL, "invalid signal %d", sig);
	struct buf b = BUF_INIT;
	uint8_t s[4];
	put_be32(s, (uint32_t)sig);
	buf_append(&b, s, 4);
	int rc = control(ctx, sandbox, P_KILL, &b, false, false, err);
	buf_release(&b);
	return rc;
}

static int set_state(struct capsa_ctx *ctx, const char *ref, const char *state)
{
	struct store *db = ctx_db(ctx, NULL);
	_cleanup_free_ char *id = capsa_sandbox_resolve(ctx, ref, NULL);
	sqlite3_stmt *st = NULL;
	if (!db || !id || store_prepare(db, "UPDATE sandboxes SET state=?2 WHERE id=?1 AND state!='exited'", &st,
					NULL) < 0)
		return -1;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, state);
	sqlite3_step(st);
	sqlite3_finalize(st);
	sandbox_event(ctx, id, strcmp(state, "paused") == 0 ? "pause" : "unpause", NULL);
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_pause(struct capsa_ctx *ctx, const char *sandbox, bool pause, struct capsa_error **err)
{
	if (control(ctx, sandbox, pause ? P_PAUSE : P_RESUME, NULL, false, false, err) < 0)
		return -1;
	set_state(ctx, sandbox, pause ? "paused" : "running");
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_wait(struct capsa_ctx *ctx, const char *sandbox, struct capsa_exit *exit_out,
				    struct capsa_error **err)
{
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	if (strcmp(r.state, "exited") != 0) {
		struct proto_conn c;
		if (sandbox_connect(ctx, &r, &c, NULL) == 0) {
			proto_conn_queue(&c, P_FINAL, 0, 0, NULL, 0);
			proto_conn_flush_all(&c, 10000);
			char buf[4096];
			while (read(c.fd, buf, sizeof(buf)) > 0) {
			}
			proto_conn_release(&c, true);
		}
		wait_unlocked(ctx, r.id, 60000);
		sandbox_reconcile_one(ctx, r.id, NULL);
		_cleanup_free_ char *id = xstrdup(r.id);
		sb_row_release(&r);
		if (sandbox_lookup(ctx, id, &r, err) < 0)
			return -1;
	}
	if (exit_out) {
		memset(exit_out, 0, sizeof(*exit_out));
		exit_out->exit_code = r.exit_code;
		snprintf(exit_out->reason, sizeof(exit_out->reason), "%s", r.reason ? r.reason : "");
		if (r.error)
			snprintf(exit_out->message, sizeof(exit_out->message), "%s", r.error);
	}
	sb_row_release(&r);
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_remove(struct capsa_ctx *ctx, const char *sandbox, bool force, struct capsa_error **err)
{
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	int rc = 0;
	if (strcmp(r.state, "exited") != 0) {
		sandbox_reconcile_one(ctx, r.id, NULL);
		_cleanup_free_ char *id = xstrdup(r.id);
		sb_row_release(&r);
		if (sandbox_lookup(ctx, id, &r, err) < 0)
			return -1;
	}
	if (strcmp(r.state, "exited") != 0) {
		if (!force) {
			rc = error_set(err, EBUSY, "sandbox %s is %s: stop it first or remove it with --force", r.name,
				       r.state);
			goto out;
		}
		if (capsa_sandbox_stop(ctx, r.id, 0, err) < 0) {
			rc = -1;
			goto out;
		}
	}
	rc = sandbox_destroy(ctx, r.id, err);
out:
	sb_row_release(&r);
	return rc;
}
