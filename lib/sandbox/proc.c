/* proc.c: asynchronous process sessions (capsa/session.h): one connection
 * to the supervisor per session, frames turned into callbacks, and the
 * requests about a sandbox's processes (list, signal).
 *
 * The start and attach handshakes read exactly the reply frame and nothing
 * more, so frames that follow stay in the socket and make it readable for
 * the caller's poll loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "capsa/session.h"
#include "sandbox.h"
#include "util/fs.h"

#define SESSION_STREAM 1
#define HANDSHAKE_MS 30000

struct capsa_proc {
	struct proto_conn c;
	uint32_t stream;
	pid_t pid;
	struct capsa_proc_callbacks cb;
	void *ud;
	bool manual_credit;
	bool main;
	uint32_t stdin_credit;
	uint32_t owed[3]; /* output credit not yet returned (batched) */
	bool exited, failed;
	int err_code;
	char *err_msg;
};

struct handshake {
	uint32_t stream;
	bool done, ok, exited;
	int code;
	char *msg;
	pid_t pid;
	uint64_t dropped;
	struct proto_exit e;
};

static int on_handshake(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct handshake *hs = ctx;
	if (h->stream != hs->stream)
		return 0;
	switch (h->type) {
	case P_PROC_STARTED:
	case P_OK: {
		uint64_t pid = 0;
		tlv_find_u64(payload, h->len, T_PID, &pid);
		hs->pid = (pid_t)pid;
		tlv_find_u64(payload, h->len, T_DROPPED, &hs->dropped);
		hs->done = hs->ok = true;
		break;
	}
	case P_EXIT:
		proto_exit_release(&hs->e);
		proto_exit_decode(payload, h->len, &hs->e);
		hs->done = hs->exited = true;
		break;
	case P_ERROR:
		free(hs->msg);
		proto_error_decode(payload, h->len, &hs->code, &hs->msg);
		hs->done = true;
		break;
	default:
		break;
	}
	return 0;
}

static int handshake(struct capsa_proc *p, struct handshake *hs, const char *what, struct capsa_error **err)
{
	if (proto_conn_flush_all(&p->c, HANDSHAKE_MS) < 0)
		return error_sys(err, errno, "%s: send request", what);
	while (!hs->done) {
		int r = proto_conn_wait_exact(&p->c, HANDSHAKE_MS, on_handshake, hs);
		if (r == 0)
			return error_set(err, ESRCH, "%s: the supervisor closed the connection", what);
		if (r < 0)
			return error_sys(err, errno, "%s: wait for the supervisor", what);
	}
	return 0;
}

static struct capsa_proc *proc_alloc(const struct capsa_proc_callbacks *cb, void *ud, bool manual)
{
	struct capsa_proc *p = xcalloc(1, sizeof(*p));
	p->c.fd = -1;
	p->stream = SESSION_STREAM;
	if (cb)
		p->cb = *cb;
	p->ud = ud;
	p->manual_credit = manual;
	p->stdin_credit = PROTO_WINDOW;
	return p;
}

CAPSA_EXPORT void capsa_proc_free(struct capsa_proc *p)
{
	if (!p)
		return;
	if (p->c.fd >= 0)
		proto_conn_flush_all(&p->c, 1000);
	proto_conn_release(&p->c, true);
	free(p->err_msg);
	free(p);
}

/* 127/126 start failures name their errno so callers can tell them apart. */
static int start_error(const struct proto_exit *e, const char *name, struct capsa_error **err)
{
	int code = e->code ? (int)e->code : e->exit_code == 127 ? ENOENT : e->exit_code == 126 ? EACCES : EIO;
	return error_set(err, code, "exec in sandbox %s: %s", name, e->message ? e->message : "cannot start");
}

CAPSA_EXPORT int capsa_proc_start(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_opts *o,
				  const struct capsa_proc_callbacks *cb, void *ud, struct capsa_proc **out,
				  struct capsa_error **err)
{
	if (!o || !o->argv || !o->argv[0] || !*o->argv[0])
		return error_set(err, EINVAL, "no command given");
	if (o->tag && (!*o->tag || strlen(o->tag) > CAPSA_PROC_TAG_MAX))
		return error_set(err, EINVAL, "invalid tag '%.64s': 1-%d characters", o->tag, CAPSA_PROC_TAG_MAX);
	if (o->timeout_ms < 0 || o->kill_grace_ms < 0)
		return error_set(err, EINVAL, "invalid timeout: must not be negative");
	struct sb_row r;
	struct capsa_proc *p = proc_alloc(cb, ud, o->manual_credit);
	if (sandbox_open_running(ctx, sandbox, &r, &p->c, err) < 0) {
		capsa_proc_free(p);
		return -1;
	}
	fd_set_nonblock(p->c.fd, true);
	struct proto_proc spec = { .umask = -1 };
	spec.argv = o->argv;
	spec.env = o->env;
	spec.cwd = (char *)o->workdir;
	spec.user = (char *)o->user;
	spec.tty = o->tty;
	spec.rows = o->rows;
	spec.cols = o->cols;
	spec.open_stdin = o->stdin_open;
	spec.timeout_ms = o->timeout_ms;
	spec.kill_grace_ms = o->kill_grace_ms;
	spec.tag = (char *)o->tag;
	spec.keep = o->keep;
	struct buf b = BUF_INIT;
	proto_proc_encode(&b, &spec);
	struct handshake hs = { .stream = p->stream };
	int rc = -1;
	if (proto_conn_queue(&p->c, P_PROC_START, o->keep ? PROC_START_KEEP : 0, p->stream, b.data, b.len) < 0) {
		error_set(err, E2BIG, "command and environment do not fit in one frame (%zu bytes)", b.len);
		goto out;
	}
	if (handshake(p, &hs, "exec", err) < 0) {
		error_wrap(err, "sandbox %s", r.name);
		goto out;
	}
	if (hs.exited) {
		start_error(&hs.e, r.name, err);
		goto out;
	}
	if (!hs.ok) {
		error_set(err, hs.code ? hs.code : EIO, "exec in sandbox %s: %s", r.name, hs.msg ? hs.msg : "refused");
		goto out;
	}
	p->pid = hs.pid;
	*out = steal_pointer(&p);
	rc = 0;
out:
	buf_release(&b);
	free(hs.msg);
	proto_exit_release(&hs.e);
	sb_row_release(&r);
	capsa_proc_free(p);
	return rc;
}

CAPSA_EXPORT int capsa_proc_attach(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref,
				   const struct capsa_attach_opts *o, const struct capsa_proc_callbacks *cb, void *ud,
				   struct capsa_proc **out, struct capsa_error **err)
{
	if (!ref || (!ref->main && ref->pid <= 0 && (!ref->tag || !*ref->tag)))
		return error_set(err, EINVAL, "attach: no process given (a pid, a tag, or the main process)");
	struct capsa_attach_opts none = { 0 };
	if (!o)
		o = &none;
	struct sb_row r;
	struct capsa_proc *p = proc_alloc(cb, ud, o->manual_credit);
	p->main = ref->main;
	if (sandbox_open_running(ctx, sandbox, &r, &p->c, err) < 0) {
		capsa_proc_free(p);
		return -1;
	}
	fd_set_nonblock(p->c.fd, true);
	struct buf b = BUF_INIT;
	if (!ref->main && ref->pid > 0)
		tlv_put_i64(&b, T_PID, ref->pid);
	else if (!ref->main)
		tlv_put_str(&b, T_TAG, ref->tag);
	uint16_t flags = (o->input ? ATTACH_STDIN : 0) | (o->output ? ATTACH_STDOUT | ATTACH_STDERR : 0) |
			 (o->replay ? ATTACH_REPLAY : 0);
	struct handshake hs = { .stream = p->stream };
	int rc = -1;
	proto_conn_queue(&p->c, P_ATTACH, flags, p->stream, b.data, b.len);
	if (handshake(p, &hs, "attach", err) < 0) {
		error_wrap(err, "sandbox %s", r.name);
		goto out;
	}
	if (!hs.ok) {
		error_set(err, hs.code ? hs.code : EIO, "attach to sandbox %s: %s", r.name, hs.msg ? hs.msg : "refused");
		goto out;
	}
	p->pid = hs.pid;
	if (hs.dropped && p->cb.dropped)
		p->cb.dropped(p->ud, p, hs.dropped);
	*out = steal_pointer(&p);
	rc = 0;
out:
	buf_release(&b);
	free(hs.msg);
	proto_exit_release(&hs.e);
	sb_row_release(&r);
	capsa_proc_free(p);
	return rc;
}

CAPSA_EXPORT int capsa_proc_fd(const struct capsa_proc *p)
{
	return p->c.fd;
}

CAPSA_EXPORT bool capsa_proc_want_write(const struct capsa_proc *p)
{
	return proto_conn_pending(&p->c) > 0;
}

CAPSA_EXPORT pid_t capsa_proc_pid(const struct capsa_proc *p)
{
	return p->pid;
}

static void deliver_exit(struct capsa_proc *p, const uint8_t *payload, size_t len)
{
	struct proto_exit e;
	struct capsa_exit x;
	if (proto_exit_decode(payload, len, &e) < 0)
		memset(&e, 0, sizeof(e));
	exit_from_proto(&x, &e);
	proto_exit_release(&e);
	p->exited = true;
	if (p->cb.exit)
		p->cb.exit(p->ud, p, &x);
}

static int on_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct capsa_proc *p = ctx;
	if (p->exited || (h->stream != p->stream && !(h->type == P_FINAL && h->stream == 0)))
		return 0;
	switch (h->type) {
	case P_DATA:
		if (h->flags != CH_STDOUT && h->flags != CH_STDERR)
			break;
		if (p->cb.output)
			p->cb.output(p->ud, p, h->flags, payload, h->len);
		if (!p->manual_credit && !p->main)
			capsa_proc_consumed(p, h->flags, h->len);
		break;
	case P_EOF:
		if ((h->flags == CH_STDOUT || h->flags == CH_STDERR) && p->cb.output)
			p->cb.output(p->ud, p, h->flags, NULL, 0);
		break;
	case P_CREDIT:
		if (h->flags == CH_STDIN && h->len == 4) {
			uint64_t n = (uint64_t)p->stdin_credit + get_be32(payload);
			p->stdin_credit = n > (64u << 20) ? (64u << 20) : (uint32_t)n;
		}
		break;
	case P_EXIT:
	case P_FINAL:
		deliver_exit(p, payload, h->len);
		break;
	case P_ERROR:
		free(p->err_msg);
		proto_error_decode(payload, h->len, &p->err_code, &p->err_msg);
		p->failed = true;
		break;
	default:
		break;
	}
	return 0;
}

CAPSA_EXPORT int capsa_proc_process(struct capsa_proc *p, struct capsa_error **err)
{
	if (p->exited)
		return 1;
	if (proto_conn_flush(&p->c) < 0)
		return error_sys(err, errno, "session with the supervisor");
	int r = proto_conn_read(&p->c, on_frame, p);
	if (r < 0)
		return error_sys(err, errno, "session with the supervisor");
	if (p->failed) {
		p->failed = false;
		return error_set(err, p->err_code ? p->err_code : EIO, "%s", p->err_msg ? p->err_msg : "request failed");
	}
	if (proto_conn_flush(&p->c) < 0 && !p->exited)
		return error_sys(err, errno, "session with the supervisor");
	if (p->exited)
		return 1;
	if (r > 0)
		return error_set(err, ESRCH, "the sandbox's supervisor went away");
	return 0;
}

CAPSA_EXPORT size_t capsa_proc_write_room(const struct capsa_proc *p)
{
	return p->exited ? 0 : p->stdin_credit;
}

static int send_frame(struct capsa_proc *p, uint16_t type, uint16_t flags, const void *data, size_t n,
		      struct capsa_error **err)
{
	if (p->exited)
		return error_set(err, ESRCH, "the process has ended");
	if (proto_conn_queue(&p->c, type, flags, p->stream, data, n) < 0)
		return error_sys(err, errno, "session with the supervisor");
	if (proto_conn_flush(&p->c) < 0)
		return error_sys(err, errno, "session with the supervisor");
	return 0;
}

CAPSA_EXPORT ssize_t capsa_proc_write(struct capsa_proc *p, const void *data, size_t n, struct capsa_error **err)
{
	const uint8_t *d = data;
	size_t done = 0;
	while (done < n && p->stdin_credit > 0) {
		size_t k = MIN(MIN(n - done, (size_t)p->stdin_credit), (size_t)PROTO_DATA_CHUNK);
		if (send_frame(p, P_DATA, CH_STDIN, d + done, k, err) < 0)
			return done ? (ssize_t)done : -1;
		p->stdin_credit -= (uint32_t)k;
		done += k;
	}
	return (ssize_t)done;
}

CAPSA_EXPORT int capsa_proc_close_stdin(struct capsa_proc *p, struct capsa_error **err)
{
	return send_frame(p, P_EOF, CH_STDIN, NULL, 0, err);
}

CAPSA_EXPORT int capsa_proc_signal(struct capsa_proc *p, int sig, struct capsa_error **err)
{
	if (sig < 1 || sig > 64)
		return error_set(err, EINVAL, "invalid signal %d", sig);
	uint8_t s[4];
	put_be32(s, (uint32_t)sig);
	return send_frame(p, P_SIGNAL, 1, s, 4, err);
}

CAPSA_EXPORT int capsa_proc_resize(struct capsa_proc *p, uint16_t rows, uint16_t cols, struct capsa_error **err)
{
	uint8_t s[4];
	put_be16(s, rows);
	put_be16(s + 2, cols);
	return send_frame(p, P_RESIZE, 0, s, 4, err);
}

CAPSA_EXPORT void capsa_proc_consumed(struct capsa_proc *p, int channel, size_t n)
{
	if (p->exited || p->main || (channel != CAPSA_STDOUT && channel != CAPSA_STDERR))
		return;
	uint64_t owed = (uint64_t)p->owed[channel] + n;
	if (owed < PROTO_CREDIT_BATCH) {
		p->owed[channel] = (uint32_t)owed;
		return;
	}
	p->owed[channel] = 0;
	while (owed > 0) {
		uint32_t k = (uint32_t)MIN(owed, (uint64_t)UINT32_MAX);
		uint8_t b[4];
		put_be32(b, k);
		proto_conn_queue(&p->c, P_CREDIT, (uint16_t)channel, p->stream, b, 4);
		owed -= k;
	}
	proto_conn_flush(&p->c);
}

CAPSA_EXPORT int capsa_proc_keep(struct capsa_proc *p, struct capsa_error **err)
{
	/* flags 1: stay attached as one of its sessions */
	return send_frame(p, P_DETACH, 1, NULL, 0, err);
}

/* ---- requests about a sandbox's processes ------------------------------------- */

CAPSA_EXPORT void capsa_proc_info_free(struct capsa_proc_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].tag);
		strv_free(v[i].argv);
		free(v[i].workdir);
		free(v[i].reason);
	}
	free(v);
}

CAPSA_EXPORT int capsa_proc_list(struct capsa_ctx *ctx, const char *sandbox, struct capsa_proc_info **out, size_t *n,
				 struct capsa_error **err)
{
	struct sb_row r;
	struct proto_conn c;
	*out = NULL;
	*n = 0;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	struct buf reply = BUF_INIT;
	int rc = sandbox_request(&c, P_PROCS, 0, NULL, &reply, err);
	proto_conn_release(&c, true);
	if (rc < 0) {
		error_wrap(err, "sandbox %s", r.name);
		sb_row_release(&r);
		buf_release(&reply);
		return -1;
	}
	struct tlv_iter it;
	tlv_iter_init(&it, reply.data, reply.len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	struct capsa_proc_info *v = NULL;
	size_t k = 0;
	while (tlv_next(&it, &tag, &val, &len) > 0) {
		struct proto_procinfo pi;
		if (tag != T_ENTRY || proto_procinfo_decode(val, len, &pi) < 0)
			continue;
		v = xrealloc(v, (k + 1) * sizeof(*v));
		v[k] = (struct capsa_proc_info){
			.pid = (pid_t)pi.pid, .tag = steal_pointer(&pi.tag), .argv = steal_pointer(&pi.argv),
			.workdir = steal_pointer(&pi.cwd), .tty = pi.tty, .stdin_open = pi.stdin_open, .keep = pi.keep,
			.main = pi.main, .running = pi.running, .exit_code = (int)pi.exit_code,
			.reason = steal_pointer(&pi.reason), .started_at = pi.started_at, .attached = (int)pi.attached,
			.buffered = (uint64_t)pi.buffered,
		};
		proto_procinfo_release(&pi);
		k++;
	}
	*out = v;
	*n = k;
	buf_release(&reply);
	sb_row_release(&r);
	return 0;
}

CAPSA_EXPORT int capsa_proc_kill(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref,
				 int sig, bool group, struct capsa_error **err)
{
	if (sig < 1 || sig > 64)
		return error_set(err, EINVAL, "invalid signal %d", sig);
	if (!ref || (!ref->main && ref->pid <= 0 && (!ref->tag || !*ref->tag)))
		return error_set(err, EINVAL, "kill: no process given (a pid, a tag, or the main process)");
	struct sb_row r;
	struct proto_conn c;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	struct buf b = BUF_INIT;
	if (!ref->main && ref->pid > 0)
		tlv_put_i64(&b, T_PID, ref->pid);
	else if (!ref->main)
		tlv_put_str(&b, T_TAG, ref->tag);
	tlv_put_i64(&b, T_SIGNAL, sig);
	tlv_put_flag(&b, T_GROUP, group);
	int rc = sandbox_request(&c, P_PROC_SIGNAL, 0, &b, NULL, err);
	if (rc < 0)
		error_wrap(err, "sandbox %s", r.name);
	buf_release(&b);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}
