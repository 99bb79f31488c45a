/* exec.c: running one process over a connection to a sandbox's
 * supervisor.  libc only: the musl-static `capsa` front door uses it for the
 * exec fast path, and capsa_sandbox_exec() after looking the sandbox up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "util/fs.h"

struct detach_state {
	uint32_t stream;
	struct proto_exit *e;
	bool done, failed, exited;
	int code;
	char *msg;
};

static int on_detach_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct detach_state *ds = ctx;
	if (h->stream != ds->stream)
		return 0;
	if (h->type == P_PROC_STARTED) {
		ds->done = true;
	} else if (h->type == P_EXIT) {
		proto_exit_decode(payload, h->len, ds->e);
		ds->done = ds->exited = true;
	} else if (h->type == P_ERROR) {
		proto_error_decode(payload, h->len, &ds->code, &ds->msg);
		ds->done = ds->failed = true;
	}
	return 0;
}

int sandbox_exec_conn(struct proto_conn *conn, const char *name, const struct capsa_exec_opts *o,
		      const struct capsa_stdio *stdio, struct capsa_exit *exit_out, struct capsa_error **err)
{
	if (!o->argv || !o->argv[0] || !*o->argv[0])
		return error_set(err, EINVAL, "no command given");
	struct proto_conn c = *conn;
	struct proto_proc p = { .umask = -1 };
	p.argv = o->argv;
	p.env = o->env;
	p.cwd = (char *)o->workdir;
	p.user = (char *)o->user;
	p.tty = o->tty;
	p.open_stdin = o->interactive;
	p.timeout_ms = o->timeout_ms;
	p.tag = (char *)o->tag;
	p.keep = o->detach;
	if (stdio) {
		p.rows = stdio->rows;
		p.cols = stdio->cols;
	}
	struct buf b = BUF_INIT;
	proto_proc_encode(&b, &p);
	const uint32_t stream = 1;
	int rc = -1;
	struct proto_exit e = { 0 };
	/* an attached, non-terminal exec gets its stdio pipes handed over:
	 * its output never passes through the agent or the supervisor */
	c.accept_fds = true;
	uint16_t flags = o->detach ? PROC_START_KEEP | PROC_START_NO_ATTACH : !o->tty && stdio ? PROC_START_DIRECT : 0;
	if (proto_conn_queue(&c, P_PROC_START, flags, stream, b.data, b.len) < 0) {
		error_set(err, E2BIG, "command and environment do not fit in one frame (%zu bytes)", b.len);
		goto out;
	}
	if (o->detach) {
		/* wait only until it runs (or fails to start) */
		if (proto_conn_flush_all(&c, 10000) < 0) {
			error_sys(err, errno, "send exec request");
			goto out;
		}
		struct detach_state ds = { .stream = stream, .e = &e };
		while (!ds.done) {
			if (proto_conn_wait(&c, 30000, on_detach_frame, &ds) <= 0) {
				error_set(err, EIO, "exec in sandbox %s: no answer from the supervisor", name);
				goto out;
			}
		}
		if (ds.failed) {
			error_set(err, ds.code ? ds.code : EIO, "exec in sandbox %s: %s", name,
				  ds.msg ? ds.msg : "failed");
			free(ds.msg);
			goto out;
		}
		if (exit_out) {
			memset(exit_out, 0, sizeof(*exit_out));
			if (ds.exited)
				exit_from_proto(exit_out, &e);
		}
		rc = 0;
		goto out;
	}
	struct capsa_stdio none = { .in_fd = -1, .out_fd = -1, .err_fd = -1, .sig_fd = -1 };
	struct session_result res;
	if (session_pump(&c, stream, PUMP_EXEC, stdio ? stdio : &none, &e, &res, err) < 0) {
		error_wrap(err, "exec in sandbox %s", name);
		goto out;
	}
	if (exit_out && (res.detached || res.client_signal))
		exit_for_client(exit_out, &res);
	else if (exit_out)
		exit_from_proto(exit_out, &e);
	rc = 0;
out:
	buf_release(&b);
	proto_exit_release(&e);
	*conn = c; /* the caller releases it; buffers may have grown */
	return rc;
}
