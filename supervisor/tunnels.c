/* tunnels.c: published ports and the TCP connections tunnelled through the
 * agent to 127.0.0.1:PORT inside the sandbox's network namespace.
 *
 * A tunnel pairs a host socket (accepted on a published port, or handed over
 * by a client with SCM_RIGHTS: capsa_tunnel_open) with an agent stream.
 * Host -> sandbox bytes are read straight into DATA frames on the agent
 * channel, only while the agent has granted credit for them; sandbox ->
 * host bytes are written to the socket as they arrive and their credit is
 * returned once written, so a connection whose reader is slow holds at most
 * one window and stalls nobody else.  EOF in one direction is passed on as
 * a shutdown of that direction.  The agent ends every tunnel with
 * TUNNEL_CLOSED; a host socket that fails first makes us send CANCEL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/rootless.h"
#include "supervisor.h"
#include "util/fs.h"

/* each direct tunnel holds two sockets and two pipes */
#define TUNNEL_MAX 2048

static size_t n_tunnels;

static void on_tunnel(struct ev_loop *l, struct ev_io *io, uint32_t revents);

struct tunnel *tunnel_by_agent(uint32_t stream)
{
	for (struct tunnel *t = sup.tunnels; t; t = t->next)
		if (t->agent_stream == stream)
			return t;
	return NULL;
}

static void tunnel_free(void *arg)
{
	struct tunnel *t = arg;
	buf_release(&t->out);
	free(t);
}

static void tunnel_close_fd(struct tunnel *t)
{
	if (t->fd < 0)
		return;
	ev_io_stop(&sup.loop, &t->io);
	close(t->fd);
	t->fd = -1;
	buf_release(&t->out);
}

static void tunnel_remove(struct tunnel *dead)
{
	tunnel_close_fd(dead);
	for (struct tunnel **pp = &sup.tunnels; *pp; pp = &(*pp)->next) {
		if (*pp == dead) {
			*pp = dead->next;
			break;
		}
	}
	n_tunnels--;
	ev_defer(&sup.loop, tunnel_free, dead);
}

/* The host side failed or went away: tell the agent, forget the socket. */
static void tunnel_cancel(struct tunnel *t)
{
	tunnel_close_fd(t);
	if (t->closed) {
		tunnel_remove(t);
		return;
	}
	if (!t->cancelled) {
		t->cancelled = true;
		agent_send(P_CANCEL, 0, t->agent_stream, NULL, 0);
	}
}

static void tunnel_interest(struct tunnel *t)
{
	if (t->fd < 0)
		return;
	uint32_t ev = 0;
	if (t->opened && !t->rd_eof && t->credit > 0)
		ev |= EPOLLIN;
	if (t->out.len > 0)
		ev |= EPOLLOUT;
	if (!t->io.active)
		ev_io_start(&sup.loop, &t->io, t->fd, ev, on_tunnel);
	else
		ev_io_set(&sup.loop, &t->io, ev);
}

static void return_credit(struct tunnel *t)
{
	if (t->owed < PROTO_CREDIT_BATCH || t->closed || t->cancelled)
		return;
	uint8_t n[4];
	put_be32(n, t->owed);
	t->owed = 0;
	agent_send(P_CREDIT, CH_STDOUT, t->agent_stream, n, 4);
}

/* Writes buffered sandbox -> host bytes.  -1: the socket failed. */
static int drain_out(struct tunnel *t)
{
	while (t->out.len > 0) {
		ssize_t w = write(t->fd, t->out.data, t->out.len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		buf_consume(&t->out, (size_t)w);
		t->owed += (uint32_t)w;
	}
	return_credit(t);
	if (t->out.len == 0 && t->wr_eof && !t->wr_shut) {
		shutdown(t->fd, SHUT_WR);
		t->wr_shut = true;
	}
	return 0;
}

static void pump_in(struct tunnel *t)
{
	for (int rounds = 0; rounds < 8 && t->credit > 0 && !t->rd_eof; rounds++) {
		size_t want = MIN((size_t)t->credit, (size_t)PROTO_DATA_CHUNK);
		ssize_t r = proto_conn_queue_read(&sup.agent, P_DATA, CH_STDIN, t->agent_stream, t->fd, want);
		if (r > 0) {
			t->credit -= (uint32_t)r;
			sup_net_rx += (uint64_t)r;
			if (t->l)
				t->l->port.rx += (uint64_t)r;
			sup_touch();
			if ((size_t)r < want)
				break;
			continue;
		}
		if (r == 0) {
			t->rd_eof = true;
			agent_send(P_EOF, CH_STDIN, t->agent_stream, NULL, 0);
			break;
		}
		if (errno == EAGAIN || errno == EINTR)
			break;
		tunnel_cancel(t);
		return;
	}
	agent_flush();
}

static void on_tunnel(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	struct tunnel *t = container_of(io, struct tunnel, io);
	if ((revents & EPOLLOUT) && drain_out(t) < 0) {
		tunnel_cancel(t);
		return;
	}
	if (t->closed && t->out.len == 0) {
		tunnel_remove(t);
		return;
	}
	if (revents & EPOLLIN) {
		pump_in(t);
		if (t->fd < 0)
			return;
	}
	if (revents & (EPOLLHUP | EPOLLERR)) {
		if (revents & EPOLLERR) {
			tunnel_cancel(t);
			return;
		}
		/* both directions are down: done from the host's side */
		if (!t->rd_eof && t->opened) {
			pump_in(t);
			if (t->fd < 0)
				return;
		}
		if (t->rd_eof && (t->wr_shut || t->closed)) {
			ev_io_stop(&sup.loop, &t->io);
			if (t->closed)
				tunnel_remove(t);
			return;
		}
		if (!t->opened || !t->rd_eof) {
			tunnel_cancel(t);
			return;
		}
	}
	tunnel_interest(t);
}

static struct tunnel *tunnel_new(int fd, uint16_t port, struct listener *lst)
{
	struct tunnel *t = xcalloc(1, sizeof(*t));
	t->fd = fd;
	t->l = lst;
	t->agent_stream = sup_new_stream();
	t->next = sup.tunnels;
	sup.tunnels = t;
	n_tunnels++;
	fd_set_nonblock(fd, true);
	/* the agent hands us the sandbox's socket, and we splice; an agent
	 * that cannot pass descriptors (a VM's) answers without one and the
	 * bytes go in frames */
	t->direct = !sup.spec.framed;
	struct buf b = BUF_INIT;
	tlv_put_u64(&b, T_PORT, port);
	agent_send(P_TUNNEL_OPEN, t->direct ? 1 : 0, t->agent_stream, b.data, b.len);
	buf_release(&b);
	return t;
}

/* The agent connected and passed the sandbox-side socket: the relay takes
 * both sockets and the stream is over. */
static void opened_direct(struct tunnel *t)
{
	int sfd = agent_frame_fd();
	struct stat st;
	int host = t->fd;
	bool ok = fstat(sfd, &st) == 0 && S_ISSOCK(st.st_mode);
	if (ok) {
		t->fd = -1;
		if (relay_start(host, sfd, t->l) < 0) {
			close(host);
			close(sfd);
			ok = false;
		}
	} else {
		close(sfd);
	}
	if (t->requester) {
		if (ok)
			client_reply_ok(t->requester, t->req_stream);
		else
			client_send_error(t->requester, t->req_stream, EPROTO, "tunnel: no usable socket from the agent");
	}
	t->requester = NULL;
	t->closed = true; /* the agent forgot the stream when it passed the socket */
	tunnel_remove(t);
}

/* Sandbox -> host bytes of a framed tunnel: written at once if possible,
 * credited back once written. */
static void data_from_agent(struct tunnel *t, const uint8_t *payload, size_t n)
{
	sup_net_tx += n;
	if (t->l)
		t->l->port.tx += n;
	sup_touch();
	if (t->out.len > 0) {
		buf_append(&t->out, payload, n);
		return;
	}
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(t->fd, payload + off, n - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				tunnel_cancel(t);
				return;
			}
			break;
		}
		off += (size_t)w;
	}
	t->owed += (uint32_t)off;
	if (off < n)
		buf_append(&t->out, payload + off, n - off);
	return_credit(t);
}

void tunnel_from_agent(struct tunnel *t, const struct proto_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case P_OK:
		if (t->direct && sup.n_frame_fds > 0) {
			opened_direct(t);
			return;
		}
		t->opened = true;
		t->credit = PROTO_WINDOW;
		if (t->requester)
			client_reply_ok(t->requester, t->req_stream);
		t->requester = NULL;
		break;
	case P_ERROR:
		if (t->requester)
			client_send(t->requester, P_ERROR, 0, t->req_stream, payload, h->len);
		t->requester = NULL;
		t->closed = true;
		tunnel_remove(t);
		return;
	case P_DATA:
		if (h->flags != CH_STDOUT || t->fd < 0)
			return;
		data_from_agent(t, payload, h->len);
		if (t->fd < 0)
			return;
		break;
	case P_EOF:
		if (h->flags == CH_STDOUT && t->fd >= 0) {
			t->wr_eof = true;
			if (drain_out(t) < 0) {
				tunnel_cancel(t);
				return;
			}
		}
		break;
	case P_CREDIT:
		if (h->flags == CH_STDIN && h->len == 4) {
			uint64_t c = (uint64_t)t->credit + get_be32(payload);
			t->credit = c > (64u << 20) ? (64u << 20) : (uint32_t)c;
			/* read at once: waiting for epoll costs a round trip */
			if (t->fd >= 0 && !t->rd_eof)
				pump_in(t);
		}
		break;
	case P_TUNNEL_CLOSED:
		t->closed = true;
		if (t->fd < 0 || t->out.len == 0) {
			tunnel_remove(t);
			return;
		}
		break;
	default:
		return;
	}
	if (t->fd >= 0)
		tunnel_interest(t);
}

static void on_accept(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct listener *lst = container_of(io, struct listener, io);
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lst->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (sup.state != SUP_RUNNING && sup.state != SUP_PAUSED) {
			close(fd);
			continue;
		}
		if (n_tunnels + relay_count() >= TUNNEL_MAX) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		lst->port.count++;
		tunnel_new(fd, lst->port.port, lst);
	}
}

int tunnel_listen(struct proto_port *port, struct capsa_error **err)
{
	const char *ip = port->host_ip && *port->host_ip ? port->host_ip : "127.0.0.1";
	union {
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} sa;
	memset(&sa, 0, sizeof(sa));
	socklen_t len;
	int family;
	if (inet_pton(AF_INET, ip, &sa.v4.sin_addr) == 1) {
		family = AF_INET;
		sa.v4.sin_family = AF_INET;
		sa.v4.sin_port = htons(port->host_port);
		len = sizeof(sa.v4);
	} else if (inet_pton(AF_INET6, ip, &sa.v6.sin6_addr) == 1) {
		family = AF_INET6;
		sa.v6.sin6_family = AF_INET6;
		sa.v6.sin6_port = htons(port->host_port);
		len = sizeof(sa.v6);
	} else {
		return error_set(err, EINVAL, "publish port %u: invalid host address '%s'", port->port, ip);
	}
	_cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return error_sys(err, errno, "publish port %u", port->port);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		if (errno == EACCES && linux_rootless())
			return error_sys(err, errno,
					 "publish port %u on %s:%u (rootless mode: host ports below "
					 "net.ipv4.ip_unprivileged_port_start, 1024 by default, need root)",
					 port->port, ip, port->host_port);
		return error_sys(err, errno, "publish port %u on %s:%u", port->port, ip, port->host_port);
	}
	if (listen(fd, 512) < 0)
		return error_sys(err, errno, "publish port %u on %s:%u", port->port, ip, port->host_port);
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port->host_port = ntohs(family == AF_INET ? sa.v4.sin_port : sa.v6.sin6_port);
	struct listener *l = xcalloc(1, sizeof(*l));
	l->fd = steal_fd(&fd);
	l->port.host_ip = xstrdup(ip);
	l->port.host_port = port->host_port;
	l->port.port = port->port;
	l->next = sup.listeners;
	sup.listeners = l;
	ev_io_start(&sup.loop, &l->io, l->fd, EPOLLIN, on_accept);
	return 0;
}

void tunnel_open_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	int fd = proto_conn_take_fd(&c->conn);
	uint64_t port = 0;
	struct tlv_iter it;
	tlv_iter_init(&it, payload, h->len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	while (tlv_next(&it, &tag, &val, &len) > 0)
		if (tag == T_PORT)
			tlv_u64(val, len, &port);
	int type = 0;
	socklen_t tl = sizeof(type);
	const char *bad = NULL;
	int code = EINVAL;
	if (fd < 0)
		bad = "tunnel request without a socket";
	else if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
		bad = "tunnel request: the descriptor is not a stream socket";
	else if (port < 1 || port > 65535)
		bad = "tunnel request: port outside 1-65535";
	else if (sup.state == SUP_PAUSED)
		bad = "sandbox is paused", code = EBUSY;
	else if (sup.state != SUP_RUNNING || sup.main_exited)
		bad = "sandbox is not running", code = ESRCH;
	else if (n_tunnels + relay_count() >= TUNNEL_MAX)
		bad = "too many tunnels", code = EAGAIN;
	if (bad) {
		if (fd >= 0)
			close(fd);
		client_send_error(c, h->stream, code, "%s%s%s", code == EBUSY || code == ESRCH ? sup.spec.name : "",
				  code == EBUSY || code == ESRCH ? ": " : "", bad);
		return;
	}
	struct tunnel *t = tunnel_new(fd, (uint16_t)port, NULL);
	t->requester = c;
	t->req_stream = h->stream;
}

static void reply_ports(struct client *c, uint32_t stream, struct listener *only)
{
	struct buf b = BUF_INIT;
	for (struct listener *l = sup.listeners; l; l = l->next)
		if (!only || l == only)
			proto_port_encode(&b, T_ENTRY, &l->port);
	client_send(c, P_PORTS, 0, stream, b.data, b.len);
	buf_release(&b);
}

void tunnel_ports_request(struct client *c, const struct proto_hdr *h)
{
	reply_ports(c, h->stream, NULL);
}

void tunnel_publish_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	struct proto_port p;
	struct capsa_error *err = NULL;
	size_t n = 0;
	for (struct listener *l = sup.listeners; l; l = l->next)
		n++;
	if (n >= PROTO_MAX_PORTS) {
		client_send_error(c, h->stream, EAGAIN, "sandbox %s publishes %zu ports: the most it may", sup.spec.name, n);
		return;
	}
	if (proto_port_decode(payload, h->len, &p) < 0) {
		client_send_error(c, h->stream, EPROTO, "malformed publish request");
		return;
	}
	if (tunnel_listen(&p, &err) < 0) {
		client_send_error(c, h->stream, err->code, "%s", err->msg);
		capsa_error_free(err);
	} else {
		reply_ports(c, h->stream, sup.listeners);
	}
	proto_port_release(&p);
}

void tunnels_client_left(struct client *c)
{
	for (struct tunnel *t = sup.tunnels; t; t = t->next)
		if (t->requester == c)
			t->requester = NULL;
}
