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
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sandbox.h"
#include "util/fs.h"

struct pump {
	struct session_result *res;
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
	bool raw;	    /* a terminal in raw mode: our own signals end the client */
	char keys[16];	    /* detach key sequence */
	int n_keys, matched;
};

CAPSA_EXPORT int capsa_detach_keys_parse(const char *spec, char out[16], struct capsa_error **err)
{
	int n = 0;
	if (!spec)
		spec = "ctrl-p,ctrl-q";
	if (!*spec)
		return 0;
	_cleanup_strv_ char **parts = strv_split(spec, ',');
	for (char **p = parts; *p; p++) {
		const char *k = *p;
		if (n >= 16)
			return error_set(err, EINVAL, "invalid detach keys '%s': at most 16 keys", spec);
		if (strlen(k) == 1) {
			out[n++] = k[0];
		} else if (str_has_prefix(k, "ctrl-") && strlen(k) == 6) {
			char c = k[5];
			if (c >= 'a' && c <= 'z')
				out[n++] = (char)(c - 'a' + 1);
			else if (c >= 'A' && c <= 'Z')
				out[n++] = (char)(c - 'A' + 1);
			else if (c == '@')
				out[n++] = 0;
			else if (c >= '[' && c <= '_')
				out[n++] = (char)(c - '[' + 27);
			else
				return error_set(err, EINVAL, "invalid detach keys '%s': unknown key '%s'", spec, k);
		} else {
			return error_set(err, EINVAL, "invalid detach keys '%s': unknown key '%s' (a character or ctrl-X)",
					 spec, k);
		}
	}
	return n;
}

void exit_from_proto(struct capsa_exit *out, const struct proto_exit *e)
{
	memset(out, 0, sizeof(*out));
	out->exit_code = (int)e->exit_code;
	out->signal = (int)e->signal;
	snprintf(out->reason, sizeof(out->reason), "%s", e->reason ? e->reason : "exited");
	if (e->message)
		snprintf(out->message, sizeof(out->message), "%s", e->message);
}

void exit_for_client(struct capsa_exit *out, const struct session_result *res)
{
	memset(out, 0, sizeof(*out));
	if (res->detached) {
		snprintf(out->reason, sizeof(out->reason), "detached");
		return;
	}
	out->exit_code = 128 + res->client_signal;
	out->signal = res->client_signal;
	snprintf(out->reason, sizeof(out->reason), "interrupted");
	snprintf(out->message, sizeof(out->message), "capsa got %s; the session was left",
		 signal_name(res->client_signal) ? signal_name(res->client_signal) : "a signal");
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

static void send_size(struct pump *p)
{
	struct winsize ws;
	if (ioctl(p->io->out_fd, TIOCGWINSZ, &ws) < 0 && ioctl(p->io->in_fd, TIOCGWINSZ, &ws) < 0)
		return;
	uint8_t s[4];
	put_be16(s, ws.ws_row);
	put_be16(s + 2, ws.ws_col);
	proto_conn_queue(p->c, P_RESIZE, 0, p->stream, s, 4);
}

static void forward_signal(struct pump *p)
{
	struct signalfd_siginfo si;
	while (read(p->io->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			if (p->io->tty)
				send_size(p);
			continue;
		}
		if (p->raw) {
			/* keystrokes reach the process as bytes; a signal to us
			 * (kill, a closed terminal) ends this client only */
			p->res->client_signal = (int)si.ssi_signo;
			return;
		}
		uint8_t s[4];
		put_be32(s, si.ssi_signo);
		/* exec sessions: the whole process group, as a terminal would */
		proto_conn_queue(p->c, P_SIGNAL, p->until_final ? 0 : 1, p->stream, s, 4);
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
	p->stdin_credit -= (uint32_t)r;
	if (!p->n_keys) {
		proto_conn_queue(p->c, P_DATA, CH_STDIN, p->stream, buf, (size_t)r);
		return;
	}
	/* the detach sequence is held back until it is complete or broken */
	char out[PROTO_DATA_CHUNK + 16];
	size_t n = 0;
	for (ssize_t i = 0; i < r; i++) {
		if (buf[i] == p->keys[p->matched]) {
			if (++p->matched == p->n_keys) {
				if (n)
					proto_conn_queue(p->c, P_DATA, CH_STDIN, p->stream, out, n);
				proto_conn_queue(p->c, P_DETACH, 0, p->stream, NULL, 0);
				p->res->detached = true;
				return;
			}
			continue;
		}
		memcpy(out + n, p->keys, (size_t)p->matched);
		n += (size_t)p->matched;
		p->matched = 0;
		if (buf[i] == p->keys[0]) {
			p->matched = 1;
			continue;
		}
		out[n++] = buf[i];
		if (n >= PROTO_DATA_CHUNK) {
			proto_conn_queue(p->c, P_DATA, CH_STDIN, p->stream, out, n);
			n = 0;
		}
	}
	if (n)
		proto_conn_queue(p->c, P_DATA, CH_STDIN, p->stream, out, n);
}

int session_pump(struct proto_conn *c, uint32_t stream, enum pump_mode mode, const struct capsa_stdio *io,
		 struct proto_exit *e, struct session_result *res, struct capsa_error **err)
{
	bool until_final = mode == PUMP_MAIN;
	struct pump p = { .io = io, .stream = stream, .until_final = until_final, .c = c, .e = e, .res = res,
			  .stdin_credit = PROTO_WINDOW, .stdin_open = io->in_fd >= 0, .credit_output = mode == PUMP_EXEC,
			  .raw = io->tty && io->in_fd >= 0 && isatty(io->in_fd) };
	memset(res, 0, sizeof(*res));
	if (io->tty && io->in_fd >= 0) {
		int k = capsa_detach_keys_parse(io->detach_keys, p.keys, err);
		if (k < 0)
			return -1;
		p.n_keys = k;
	}
	fd_set_nonblock(c->fd, true);
	int rc = 0;
	while (!(until_final ? p.final : p.exited) && !p.failed && !res->detached && !res->client_signal) {
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
