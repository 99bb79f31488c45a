/* control.c: requests to a running sandbox's supervisor: exec, stop, kill,
 * pause, wait, and removal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "capsa/session.h"
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

CAPSA_EXPORT int capsa_sandbox_exec(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_exec_opts *o,
				    const struct capsa_stdio *stdio, struct capsa_exit *exit_out, struct capsa_error **err)
{
	if (!o->argv || !o->argv[0] || !*o->argv[0])
		return error_set(err, EINVAL, "no command given");
	struct sb_row r;
	struct proto_conn c;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	int rc = sandbox_exec_conn(&c, r.name, o, stdio, exit_out, err);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

struct attach_reply {
	bool done, ok, tty, stdin_open;
	int code;
	char *msg;
};

static int on_attach_reply(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct attach_reply *ar = ctx;
	if (h->stream != 1)
		return 0;
	if (h->type == P_OK) {
		struct tlv_iter it;
		tlv_iter_init(&it, payload, h->len);
		uint16_t tag;
		const uint8_t *val;
		uint32_t len;
		while (tlv_next(&it, &tag, &val, &len) > 0) {
			if (tag == T_TTY)
				ar->tty = true;
			else if (tag == T_STDIN)
				ar->stdin_open = true;
		}
		ar->ok = ar->done = true;
	} else if (h->type == P_ERROR) {
		proto_error_decode(payload, h->len, &ar->code, &ar->msg);
		ar->done = true;
	}
	return 0;
}

/* Attaches stdio to one process until it (or, for the main process, the
 * sandbox) ends, or the client leaves. */
static int attach_stdio(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref,
			const struct capsa_stdio *stdio, bool replay, struct capsa_exit *exit_out, struct capsa_error **err)
{
	struct sb_row r;
	struct proto_conn c;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	fd_set_nonblock(c.fd, true);
	const uint32_t stream = 1;
	struct capsa_stdio io = *stdio;
	int rc = -1;
	struct proto_exit e = { 0 };
	struct attach_reply ar = { 0 };
	struct buf sel = BUF_INIT;
	if (!ref->main && ref->pid > 0)
		tlv_put_i64(&sel, T_PID, ref->pid);
	else if (!ref->main)
		tlv_put_str(&sel, T_TAG, ref->tag);
	uint16_t flags = ATTACH_STDIN | ATTACH_STDOUT | ATTACH_STDERR | (replay ? ATTACH_REPLAY : 0);
	proto_conn_queue(&c, P_ATTACH, flags, stream, sel.data, sel.len);
	buf_release(&sel);
	if (proto_conn_flush_all(&c, 10000) < 0) {
		error_sys(err, errno, "attach to sandbox %s", r.name);
		goto out;
	}
	while (!ar.done) {
		int k = proto_conn_wait_exact(&c, 30000, on_attach_reply, &ar);
		if (k <= 0) {
			error_set(err, k == 0 ? ESRCH : errno, "attach to sandbox %s: no answer from the supervisor", r.name);
			goto out;
		}
	}
	if (!ar.ok) {
		error_set(err, ar.code ? ar.code : EIO, "attach to sandbox %s: %s", r.name, ar.msg ? ar.msg : "refused");
		goto out;
	}
	/* a closed stdin is not read from our side */
	if (!ar.stdin_open && !ar.tty)
		io.in_fd = -1;
	io.tty = ar.tty;
	struct session_result res;
	if (session_pump(&c, stream, ref->main ? PUMP_MAIN : PUMP_ATTACH, &io, &e, &res, err) < 0) {
		error_wrap(err, "attach to sandbox %s", r.name);
		goto out;
	}
	if (exit_out && (res.detached || res.client_signal))
		exit_for_client(exit_out, &res);
	else if (exit_out)
		exit_from_proto(exit_out, &e);
	if (ref->main && !res.detached && !res.client_signal) {
		/* the sandbox ended while we were attached */
		proto_conn_release(&c, true);
		wait_unlocked(ctx, r.id, 60000);
		sandbox_reconcile_one(ctx, r.id, NULL);
	}
	rc = 0;
out:
	free(ar.msg);
	proto_exit_release(&e);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_attach(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_stdio *stdio,
				      struct capsa_exit *exit_out, struct capsa_error **err)
{
	struct capsa_proc_ref main_ref = { .main = true };
	return attach_stdio(ctx, sandbox, &main_ref, stdio, false, exit_out, err);
}

CAPSA_EXPORT int capsa_proc_attach_stdio(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref,
					 const struct capsa_stdio *stdio, bool replay, struct capsa_exit *exit_out,
					 struct capsa_error **err)
{
	if (!ref || (!ref->main && ref->pid <= 0 && (!ref->tag || !*ref->tag)))
		return error_set(err, EINVAL, "attach: no process given (a pid, a tag, or the main process)");
	return attach_stdio(ctx, sandbox, ref, stdio, replay, exit_out, err);
}

/* Sends a request and, when wait_end, waits for FINAL and the finalizer. */
static int control(struct capsa_ctx *ctx, const char *ref, uint16_t type, const struct buf *payload, bool wait_end,
		   bool quiet_if_stopped, struct capsa_error **err)
{
	struct sb_row r;
	struct proto_conn c;
	struct capsa_error *e2 = NULL;
	if (sandbox_open_running(ctx, ref, &r, &c, &e2) < 0) {
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
	/* most of the supervisor's replies name the sandbox already
	 * ("sandbox x is already paused"); transport errors do not */
	if (rc < 0 && err && *err && !strstr((*err)->msg, r.name))
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

CAPSA_EXPORT int capsa_sandbox_touch(struct capsa_ctx *ctx, const char *sandbox, struct capsa_error **err)
{
	return control(ctx, sandbox, P_TOUCH, NULL, false, false, err);
}

CAPSA_EXPORT int capsa_sandbox_update(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_sandbox_update *u,
				      struct capsa_error **err)
{
	if (u->timeout_ms < -1 || u->idle_timeout_ms < -1)
		return error_set(err, EINVAL, "invalid timeout: must not be negative");
	int64_t deadline = u->timeout_ms > 0 ? now_ms() + u->timeout_ms : 0;
	struct buf b = BUF_INIT;
	if (u->timeout_ms >= 0)
		tlv_put_i64(&b, T_DEADLINE_MS, deadline);
	if (u->idle_timeout_ms >= 0)
		tlv_put_i64(&b, T_IDLE_TIMEOUT_MS, u->idle_timeout_ms);
	int rc = control(ctx, sandbox, P_UPDATE, &b, false, false, err);
	buf_release(&b);
	if (rc < 0)
		return -1;
	_cleanup_free_ char *id = capsa_sandbox_resolve(ctx, sandbox, NULL);
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (id && db &&
	    store_prepare(db,
			  "UPDATE sandboxes SET deadline_at=CASE WHEN ?2 < 0 THEN deadline_at ELSE nullif(?3, 0) END, "
			  "idle_timeout_ms=CASE WHEN ?4 < 0 THEN idle_timeout_ms ELSE ?4 END WHERE id=?1",
			  &st, NULL) == 0) {
		store_bind_text(st, 1, id);
		sqlite3_bind_int64(st, 2, u->timeout_ms);
		sqlite3_bind_int64(st, 3, deadline);
		sqlite3_bind_int64(st, 4, u->idle_timeout_ms);
		sqlite3_step(st);
		sqlite3_finalize(st);
		char attrs[128];
		snprintf(attrs, sizeof(attrs), "{\"timeoutMs\":%lld,\"idleTimeoutMs\":%lld}", (long long)u->timeout_ms,
			 (long long)u->idle_timeout_ms);
		sandbox_event(ctx, id, "update", attrs);
	}
	return 0;
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

/* Asks the creator of a sandbox still being created to give up on it: it
 * checks before it records the sandbox running (create.c). */
static void request_removal(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "UPDATE sandboxes SET remove_requested=1 WHERE id=? AND state='creating'", &st,
				 NULL) < 0)
		return;
	store_bind_text(st, 1, id);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* Ends a sandbox whose row does not say exited and re-reads the row: ENOENT
 * when its creator undid it at our request (or it removed itself). */
static int end_sandbox(struct capsa_ctx *ctx, struct sb_row *r, struct capsa_error **err)
{
	request_removal(ctx, r->id);
	if (capsa_sandbox_stop(ctx, r->id, 0, err) < 0)
		return -1;
	if (sandbox_reload(ctx, r, err) < 0)
		return -1;
	if (strcmp(r->state, "exited") != 0)
		return error_set(err, EBUSY, "sandbox %s is still %s after it was stopped", r->name, r->state);
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_remove(struct capsa_ctx *ctx, const char *sandbox, bool force, struct capsa_error **err)
{
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	int rc = -1;
	if (strcmp(r.state, "exited") != 0) {
		sandbox_reconcile_one(ctx, r.id, NULL);
		if (sandbox_reload(ctx, &r, err) < 0)
			goto out;
	}
	if (strcmp(r.state, "exited") != 0) {
		if (!force) {
			error_set(err, EBUSY, "sandbox %s is %s: stop it first or remove it with --force", r.name,
				  r.state);
			goto out;
		}
		struct capsa_error *e = NULL;
		if (end_sandbox(ctx, &r, &e) < 0) {
			/* gone while we ended it: removed, which is what was asked */
			rc = e && e->code == ENOENT ? 0 : -1;
			if (rc < 0)
				error_move(err, &e);
			capsa_error_free(e);
			goto out;
		}
	}
	rc = sandbox_destroy(ctx, &r, err);
out:
	sb_row_release(&r);
	return rc;
}
