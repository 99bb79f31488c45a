/* session.c: the client end of a process session: pumping stdin, stdout,
 * stderr and signals between local fds and a process in a sandbox.
 *
 * Output is written to the local fd before its credit is returned, so a
 * slow reader (a pipe to `head`, a terminal) slows the process down instead
 * of filling anybody's memory.  stdin is read only while the remote side has
 * granted credit for it.
 *
 * Signals to the client (sig_fd) are forwarded to the process, in every
 * mode, as docker's --sig-proxy does; a second INT or TERM (someone who
 * wants capsa itself gone: a process that ignores the first would keep
 * the client forever) and, with no_sig_proxy, any signal, end the client
 * instead: the process is detached first, so it keeps running.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
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
	uint32_t owed[3];   /* output credit not yet returned (batched) */
	bool started;	    /* stdin is read only once the process runs */
	/* direct stdio: the process's pipes themselves (out, err, in) */
	bool direct;
	int dfd[3];
	bool no_splice[2];
	struct buf hold;    /* stdin read but not yet taken by the pipe */
	int stops;	    /* INT and TERM forwarded: the next one ends the client */
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
	const char *name = signal_name(res->client_signal);
	out->exit_code = 128 + res->client_signal;
	out->signal = res->client_signal;
	snprintf(out->reason, sizeof(out->reason), "interrupted");
	snprintf(out->message, sizeof(out->message),
		 "got %s%s: left the session; the process keeps running in the sandbox", name ? name : "a signal",
		 res->repeated ? " (a second INT or TERM)" : "");
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
		if (p->credit_output && h->flags <= CH_STDERR) {
			p->owed[h->flags] += h->len;
			if (p->owed[h->flags] >= PROTO_CREDIT_BATCH) {
				uint8_t n[4];
				put_be32(n, p->owed[h->flags]);
				p->owed[h->flags] = 0;
				proto_conn_queue(p->c, P_CREDIT, h->flags, p->stream, n, 4);
			}
		}
		break;
	}
	case P_CREDIT:
		if (h->flags == CH_STDIN && h->len == 4)
			p->stdin_credit += get_be32(payload);
		break;
	case P_PROC_STARTED: {
		p->started = true;
		uint64_t n = 0;
		tlv_find_u64(payload, h->len, T_COUNT, &n);
		for (uint64_t i = 0; i < n && i < 3; i++) {
			p->dfd[i] = proto_conn_take_fd(c);
			if (p->dfd[i] >= 0)
				fd_set_nonblock(p->dfd[i], true);
		}
		p->direct = n > 0;
		if (p->direct && p->dfd[2] < 0)
			p->stdin_open = false;
		/* pages move from the process's pipe to ours by reference: a
		 * pipe on our side as big as theirs takes them in fewer calls */
		for (int i = 0; p->direct && i < 2; i++) {
			int out = i == 1 && !p->io->tty ? p->io->err_fd : p->io->out_fd;
			struct stat st;
			if (out >= 0 && fstat(out, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(out, F_GETPIPE_SZ) < (1 << 20))
				fcntl(out, F_SETPIPE_SZ, 1 << 20);
		}
		break;
	}
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
		bool stop = si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM;
		if (p->io->no_sig_proxy || (stop && p->stops > 0)) {
			/* leave as the detach keys do: the process runs on, and a
			 * main process keeps its stdin open */
			proto_conn_queue(p->c, P_DETACH, 0, p->stream, NULL, 0);
			p->res->client_signal = (int)si.ssi_signo;
			p->res->repeated = !p->io->no_sig_proxy;
			return;
		}
		p->stops += stop;
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

static void direct_close(struct pump *p, int i)
{
	if (p->dfd[i] >= 0)
		close(p->dfd[i]);
	p->dfd[i] = -1;
}

/* Moves what the process wrote on pipe i (0 out, 1 err) to its fd: with
 * splice(2) where the fd takes it, else through a buffer. */
static void direct_out(struct pump *p, int i)
{
	int out = i == 1 && !p->io->tty ? p->io->err_fd : p->io->out_fd;
	if (out >= 0 && !p->no_splice[i]) {
		ssize_t n = splice(p->dfd[i], NULL, out, NULL, 1 << 20, SPLICE_F_MOVE);
		if (n > 0)
			return;
		if (n == 0) {
			direct_close(p, i);
			return;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno != EPIPE)
			p->no_splice[i] = true;
	}
	char buf[65536];
	ssize_t n = read(p->dfd[i], buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		direct_close(p, i);
		return;
	}
	if (n > 0 && out >= 0 && write_all(out, buf, (size_t)n) < 0 && errno != EPIPE) {
		/* our output is gone: the rest is read and dropped */
	}
}

/* stdin to the process's pipe, holding what it cannot take yet. */
static void direct_in(struct pump *p, bool readable)
{
	if (readable && p->hold.len == 0) {
		char buf[65536];
		ssize_t r = read(p->io->in_fd, buf, sizeof(buf));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		if (r <= 0) {
			p->stdin_open = false;
			direct_close(p, 2);
			return;
		}
		buf_append(&p->hold, buf, (size_t)r);
	}
	while (p->hold.len && p->dfd[2] >= 0) {
		ssize_t w = write(p->dfd[2], p->hold.data, p->hold.len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) {
			/* the process closed its stdin */
			p->hold.len = 0;
			p->stdin_open = false;
			direct_close(p, 2);
			return;
		}
		buf_consume(&p->hold, (size_t)w);
	}
}

int session_pump(struct proto_conn *c, uint32_t stream, enum pump_mode mode, const struct capsa_stdio *io,
		 struct proto_exit *e, struct session_result *res, struct capsa_error **err)
{
	bool until_final = mode == PUMP_MAIN;
	struct pump p = { .io = io, .stream = stream, .until_final = until_final, .c = c, .e = e, .res = res,
			  .stdin_credit = PROTO_WINDOW, .stdin_open = io->in_fd >= 0, .credit_output = mode == PUMP_EXEC,
			  .started = mode != PUMP_EXEC,
			  .dfd = { -1, -1, -1 } };
	memset(res, 0, sizeof(*res));
	if (io->tty && io->in_fd >= 0) {
		int k = capsa_detach_keys_parse(io->detach_keys, p.keys, err);
		if (k < 0)
			return -1;
		p.n_keys = k;
	}
	fd_set_nonblock(c->fd, true);
	int rc = 0;
	/* frames read along with an earlier reply (READY) are handled first:
	 * the socket will not signal them again */
	if (proto_conn_parse_buffered(c, on_frame, &p) < 0)
		rc = error_sys(err, errno, "read from the supervisor");
	/* a direct process is over once it exited and its pipes are drained */
	while (rc == 0 && !((until_final ? p.final : p.exited) && p.dfd[0] < 0 && p.dfd[1] < 0) && !p.failed &&
	       !res->detached && !res->client_signal) {
		if (proto_conn_flush(c) < 0) {
			rc = error_sys(err, errno, "write to the supervisor");
			break;
		}
		struct pollfd fds[6];
		int n = 0;
		fds[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN | (proto_conn_pending(c) ? POLLOUT : 0) };
		int in_idx = -1, sig_idx = -1, d_idx[3] = { -1, -1, -1 };
		if (p.stdin_open && p.started && (p.direct ? p.hold.len == 0 : p.stdin_credit > 0)) {
			in_idx = n;
			fds[n++] = (struct pollfd){ .fd = io->in_fd, .events = POLLIN };
		}
		for (int i = 0; i < 3; i++) {
			if (p.dfd[i] < 0 || (i == 2 && !p.hold.len))
				continue;
			d_idx[i] = n;
			fds[n++] = (struct pollfd){ .fd = p.dfd[i], .events = i == 2 ? POLLOUT : POLLIN };
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
		for (int i = 0; i < 2; i++)
			if (d_idx[i] >= 0 && fds[d_idx[i]].revents)
				direct_out(&p, i);
		if (p.direct && ((in_idx >= 0 && fds[in_idx].revents) || (d_idx[2] >= 0 && fds[d_idx[2]].revents)))
			direct_in(&p, in_idx >= 0 && fds[in_idx].revents);
		else if (in_idx >= 0 && fds[in_idx].revents)
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
	for (int i = 0; i < 3; i++)
		direct_close(&p, i);
	buf_release(&p.hold);
	proto_conn_flush_all(c, 1000);
	return rc;
}
