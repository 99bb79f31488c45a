/* tunnel.c: the sandbox end of port tunnels: a TCP connection to
 * 127.0.0.1:PORT in the sandbox's network namespace per TUNNEL_OPEN stream.
 *
 * Host -> sandbox bytes (DATA 0) are written to the socket and credited
 * back once written; sandbox -> host bytes are read only within the
 * stream's credit (DATA 1).  EOF in either direction becomes a shutdown of
 * that direction; the stream ends (TUNNEL_CLOSED) when both directions are
 * done, on an error, or on CANCEL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "util/fs.h"

#define TUNNELS_MAX 4096

struct atunnel {
	struct atunnel *next;
	uint32_t stream;
	int fd;
	struct ev_io io;
	uint16_t port;
	bool connecting;
	bool direct;	   /* hand the connected socket to the supervisor */
	uint32_t credit;   /* sandbox -> host bytes we may send */
	uint32_t owed;	   /* host -> sandbox bytes written, credit not yet returned */
	struct buf pending; /* host -> sandbox bytes not yet written */
	bool in_eof;	   /* the host half-closed: shut our write side once drained */
	bool in_shut;
	bool out_eof;	   /* the sandbox side half-closed (EOF 1 sent) */
};

static struct atunnel *tunnels;
static size_t n_tunnels;

static struct atunnel *find(uint32_t stream)
{
	for (struct atunnel *t = tunnels; t; t = t->next)
		if (t->stream == stream)
			return t;
	return NULL;
}

bool tunnel_stream_in_use(uint32_t stream)
{
	return find(stream) != NULL;
}

static void finish(struct atunnel *t, int code)
{
	for (struct atunnel **pp = &tunnels; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	n_tunnels--;
	if (t->fd >= 0) {
		ev_io_stop(&agent.loop, &t->io);
		close(t->fd);
	}
	struct buf b = BUF_INIT;
	if (code)
		tlv_put_i64(&b, T_CODE, code);
	agent_send(P_TUNNEL_CLOSED, 0, t->stream, b.data, b.len);
	buf_release(&b);
	buf_release(&t->pending);
	ev_defer(&agent.loop, free, t);
}

static void interest(struct atunnel *t)
{
	uint32_t ev = 0;
	if (t->connecting || t->pending.len)
		ev |= EPOLLOUT;
	if (!t->connecting && !t->out_eof && t->credit > 0)
		ev |= EPOLLIN;
	ev_io_set(&agent.loop, &t->io, ev);
}

/* Both directions done: the tunnel is over. */
static bool maybe_done(struct atunnel *t)
{
	if (t->out_eof && t->in_shut) {
		finish(t, 0);
		return true;
	}
	return false;
}

static int drain(struct atunnel *t)
{
	size_t written = 0;
	while (t->pending.len) {
		ssize_t w = send(t->fd, t->pending.data, t->pending.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		buf_consume(&t->pending, (size_t)w);
		written += (size_t)w;
	}
	t->owed += (uint32_t)written;
	if (t->owed >= PROTO_CREDIT_BATCH) {
		uint8_t n[4];
		put_be32(n, t->owed);
		t->owed = 0;
		agent_send(P_CREDIT, CH_STDIN, t->stream, n, 4);
	}
	if (!t->pending.len && t->in_eof && !t->in_shut) {
		shutdown(t->fd, SHUT_WR);
		t->in_shut = true;
	}
	return 0;
}

static int pump_out(struct atunnel *t)
{
	while (t->credit > 0 && !t->out_eof) {
		size_t want = MIN((size_t)t->credit, (size_t)PROTO_DATA_CHUNK);
		ssize_t r = proto_conn_queue_read(&agent.chan, P_DATA, CH_STDOUT, t->stream, t->fd, want);
		if (r > 0) {
			t->credit -= (uint32_t)r;
			if ((size_t)r < want)
				break;
			continue;
		}
		if (r == 0) {
			t->out_eof = true;
			agent_send(P_EOF, CH_STDOUT, t->stream, NULL, 0);
			break;
		}
		if (errno == EAGAIN || errno == EINTR)
			break;
		return -1;
	}
	return 0;
}

static void on_sock(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	struct atunnel *t = container_of(io, struct atunnel, io);
	if (t->connecting) {
		int e = 0;
		socklen_t el = sizeof(e);
		if (!(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		t->connecting = false;
		if (e) {
			agent_send_error(t->stream, e, "connect to port %u in the sandbox: %s", t->port, strerror(e));
			t->out_eof = t->in_shut = true;
			/* the error is the stream's last frame: no TUNNEL_CLOSED */
			for (struct atunnel **pp = &tunnels; *pp; pp = &(*pp)->next)
				if (*pp == t) {
					*pp = t->next;
					break;
				}
			n_tunnels--;
			ev_io_stop(&agent.loop, &t->io);
			close(t->fd);
			ev_defer(&agent.loop, free, t);
			agent_chan_update();
			return;
		}
		if (t->direct) {
			/* the supervisor splices it from now on: we are out of the way */
			for (struct atunnel **pp = &tunnels; *pp; pp = &(*pp)->next)
				if (*pp == t) {
					*pp = t->next;
					break;
				}
			n_tunnels--;
			ev_io_stop(&agent.loop, &t->io);
			int fd = t->fd;
			struct buf b = BUF_INIT;
			tlv_put_u64(&b, T_COUNT, 1);
			int qr = proto_conn_queue_fds(&agent.chan, P_OK, 0, t->stream, b.data, b.len, &fd, 1);
			buf_release(&b);
			if (qr < 0) {
				close(fd);
				agent_send_error(t->stream, EIO, "tunnel to port %u: cannot pass the connection", t->port);
			}
			ev_defer(&agent.loop, free, t);
			agent_chan_update();
			return;
		}
		t->credit = PROTO_WINDOW;
		agent_send(P_OK, 0, t->stream, NULL, 0);
		interest(t);
		agent_chan_update();
		return;
	}
	if ((revents & EPOLLOUT) && drain(t) < 0) {
		finish(t, errno);
		agent_chan_update();
		return;
	}
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !t->out_eof && t->credit > 0 && pump_out(t) < 0) {
		finish(t, errno);
		agent_chan_update();
		return;
	}
	if ((revents & EPOLLERR) || ((revents & EPOLLHUP) && t->out_eof && !t->pending.len && !t->in_shut)) {
		/* reset, or the peer is gone in both directions */
		finish(t, (revents & EPOLLERR) ? ECONNRESET : 0);
		agent_chan_update();
		return;
	}
	if (!maybe_done(t))
		interest(t);
	agent_chan_update();
}

void tunnel_start(uint32_t stream, uint16_t flags, const uint8_t *payload, size_t len)
{
	uint64_t port = 0;
	struct tlv_iter it;
	tlv_iter_init(&it, payload, len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t l;
	while (tlv_next(&it, &tag, &val, &l) > 0)
		if (tag == T_PORT)
			tlv_u64(val, l, &port);
	if (port < 1 || port > 65535)
		return agent_send_error(stream, EINVAL, "tunnel: port %llu outside 1-65535", (unsigned long long)port);
	if (n_tunnels >= TUNNELS_MAX)
		return agent_send_error(stream, EAGAIN, "tunnel to port %llu: too many tunnels", (unsigned long long)port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return agent_send_error(stream, errno, "tunnel to port %llu: %s", (unsigned long long)port, strerror(errno));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return agent_send_error(stream, e, "connect to port %llu in the sandbox: %s", (unsigned long long)port,
					strerror(e));
	}
	struct atunnel *t = xcalloc(1, sizeof(*t));
	t->stream = stream;
	t->fd = fd;
	t->port = (uint16_t)port;
	t->connecting = true;
	t->direct = flags & 1;
	t->next = tunnels;
	tunnels = t;
	n_tunnels++;
	ev_io_start(&agent.loop, &t->io, fd, EPOLLOUT, on_sock);
	if (r == 0)
		on_sock(&agent.loop, &t->io, EPOLLOUT);
}

bool tunnel_frame(const struct proto_hdr *h, const uint8_t *payload)
{
	struct atunnel *t = find(h->stream);
	if (!t)
		return false;
	switch (h->type) {
	case P_DATA:
		if (h->flags != CH_STDIN || t->in_eof)
			break;
		if (t->pending.len + h->len > 2 * PROTO_WINDOW) {
			finish(t, ENOBUFS);
			return true;
		}
		buf_append(&t->pending, payload, h->len);
		if (!t->connecting && drain(t) < 0) {
			finish(t, errno);
			return true;
		}
		break;
	case P_EOF:
		if (h->flags == CH_STDIN) {
			t->in_eof = true;
			if (!t->connecting && drain(t) < 0) {
				finish(t, errno);
				return true;
			}
		}
		break;
	case P_CREDIT:
		if (h->flags == CH_STDOUT && h->len == 4) {
			uint64_t c = (uint64_t)t->credit + get_be32(payload);
			t->credit = c > (64u << 20) ? (64u << 20) : (uint32_t)c;
			if (!t->connecting && pump_out(t) < 0) {
				finish(t, errno);
				return true;
			}
		}
		break;
	case P_CANCEL:
		finish(t, ECONNRESET);
		return true;
	default:
		break;
	}
	if (!maybe_done(t))
		interest(t);
	agent_chan_update();
	return true;
}
