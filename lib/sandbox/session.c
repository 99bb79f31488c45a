/* session.c: the client end of a process session: pumping stdin, stdout,
 * stderr and signals between local fds and a process in a sandbox.
 *
 * Output is written to the local fd before its credit is returned, so a
 * slow reader (a pipe to `head`, a terminal) slows the process down instead
 * of filling anybody's memory.  stdin is read only while the remote side has
 * granted credit for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "session.h"
#include "util/fs.h"

struct pump {
	const struct capsa_stdio *io;
	uint32_t stream;
	bool until_final;
	struct proto_conn *c;
	struct proto_exit *e;
	bool exited, final, failed;
	int err_code;
	char *err_msg;
	uint32_t stdin_credit;
	bool stdin_open;
	bool credit_output; /* exec sessions return output credit end to end */
};

void exit_from_proto(struct capsa_exit *out, const struct proto_exit *e)
{
	memset(out, 0, sizeof(*out));
	out->exit_code = (int)e->exit_code;
	out->signal = (int)e->signal;
	snprintf(out->reason, sizeof(out->reason), "%s", e->reason ? e->reason : "exited");
	if (e->message)
		snprintf(out->message, sizeof(out->message), "%s", e->message);
}

static int on_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct pump *p = ctx;
	if (h->stream != p->stream && !(h->type == P_FINAL && h->stream == 0))
		return 0;
	switch (h->type) {
	case P_DATA: {
		int fd = h->flags == CH_STDERR && !p->io->tty ? p->io->err_fd : p->io->out_fd;
		if (fd >= 0 && write_all(fd, payload, h->len) < 0 && errno != EPIPE)
			return -1;
		if (p->credit_output) {
			uint8_t n[4];
			put_be32(n, h->len);
			proto_conn_queue(p->c, P_CREDIT, h->flags, p->stream, n, 4);
		}
		break;
	}
	case P_CREDIT:
		if (h->flags == CH_STDIN && h->len == 4)
			p->stdin_credit += get_be32(payload);
		break;
	case P_EXIT:
		proto_exit_release(p->e);
		proto_exit_decode(payload, h->len, p->e);
		p->exited = true;
		break;
	case P_FINAL:
		proto_exit_release(p->e);
		proto_exit_decode(payload, h->len, p->e);
		p->final = p->exited = true;
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

static void forward_signal(struct pump *p)
{
	struct signalfd_siginfo si;
	while (read(p->io->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			continue; /* terminals are resized by the CLI */
		}
		uint8_t s[4];
		put_be32(s, si.ssi_signo);
		/* exec sessions: the whole process group, as a terminal would */
		proto_conn_queue(p->c, P_SIGNAL, p->credit_output ? 1 : 0, p->stream, s, 4);
	}
}

static void pump_stdin(struct pump *p)
{
	char buf[PROTO_DATA_CHUNK];
	size_t want = MIN((size_t)p->stdin_credit, sizeof(buf));
	ssize_t r = read(p->io->in_fd, buf, want);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		/* EOF (or an unreadable stdin): the process sees end of input */
		proto_conn_queue(p->c, P_EOF, CH_STDIN, p->stream, NULL, 0);
		p->stdin_open = false;
		return;
	}
	proto_conn_queue(p->c, P_DATA, CH_STDIN, p->stream, buf, (size_t)r);
	p->stdin_credit -= (uint32_t)r;
}

int session_pump(struct proto_conn *c, uint32_t stream, bool until_final, const struct capsa_stdio *io,
		 struct proto_exit *e, struct capsa_error **err)
{
	struct pump p = { .io = io, .stream = stream, .until_final = until_final, .c = c, .e = e,
			  .stdin_credit = PROTO_WINDOW, .stdin_open = io->in_fd >= 0, .credit_output = !until_final };
	fd_set_nonblock(c->fd, true);
	int rc = 0;
	while (!(until_final ? p.final : p.exited) && !p.failed) {
		if (proto_conn_flush(c) < 0) {
			rc = error_sys(err, errno, "write to the supervisor");
			break;
		}
		struct pollfd fds[3];
		int n = 0;
		fds[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN | (proto_conn_pending(c) ? POLLOUT : 0) };
		int in_idx = -1, sig_idx = -1;
		if (p.stdin_open && p.stdin_credit > 0) {
			in_idx = n;
			fds[n++] = (struct pollfd){ .fd = io->in_fd, .events = POLLIN };
		}
		if (io->sig_fd >= 0) {
			sig_idx = n;
			fds[n++] = (struct pollfd){ .fd = io->sig_fd, .events = POLLIN };
		}
		if (poll(fds, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = error_sys(err, errno, "poll");
			break;
		}
		if (sig_idx >= 0 && fds[sig_idx].revents)
			forward_signal(&p);
		if (in_idx >= 0 && fds[in_idx].revents)
			pump_stdin(&p);
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int r = proto_conn_read(c, on_frame, &p);
			if (r < 0) {
				rc = error_sys(err, errno, "read from the supervisor");
				break;
			}
			if (r > 0 && !(until_final ? p.final : p.exited) && !p.failed) {
				rc = error_set(err, EPIPE, "the sandbox's supervisor went away");
				break;
			}
		}
	}
	if (p.failed && rc == 0) {
		error_set(err, p.err_code ? p.err_code : EIO, "%s", p.err_msg ? p.err_msg : "session failed");
		rc = -1;
	}
	free(p.err_msg);
	proto_conn_flush_all(c, 1000);
	return rc;
}
