/* clients.c: the supervisor's control socket: clients, their requests, and
 * the routing of their streams to the agent.
 *
 * Every client picks its own stream ids; the supervisor maps each exec,
 * file operation and watch to a fresh agent stream, so clients cannot see or
 * disturb each other's streams except through the explicit requests
 * (ATTACH, PROC_SIGNAL).  Processes are handled in procs.c, tunnels in
 * tunnels.c; file operations and watches are plain routes here: frames pass
 * both ways with their stream rewritten and credit flows end to end.
 *
 * Descriptors arrive with SCM_RIGHTS only for TUNNEL_OPEN; the connection
 * holds at most PROTO_MAX_FDS of them and closes any others on arrival.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "linux/rootless.h"
#include "supervisor.h"
#include "util/fs.h"

static int on_client_frame(void *ctx, struct proto_conn *conn, const struct proto_hdr *h, const uint8_t *payload);

uint32_t sup_new_stream(void)
{
	for (;;) {
		uint32_t s = sup.next_stream++;
		if (sup.next_stream == 0)
			sup.next_stream = MAIN_STREAM + 1;
		if (s > MAIN_STREAM && !proc_by_agent(s) && !tunnel_by_agent(s))
			return s;
	}
}

struct client *client_add(int fd, bool creator)
{
	struct client *c = xcalloc(1, sizeof(*c));
	proto_conn_init(&c->conn, fd);
	fd_set_nonblock(fd, true);
	c->creator = creator;
	c->conn.accept_fds = true;
	c->next = sup.clients;
	sup.clients = c;
	return c;
}

static void update_interest(struct client *c)
{
	if (c->closing || !c->io.active)
		return;
	ev_io_set(&sup.loop, &c->io, EPOLLIN | (proto_conn_pending(&c->conn) ? EPOLLOUT : 0));
}

static void free_client(void *arg)
{
	struct client *c = arg;
	proto_conn_release(&c->conn, false);
	free(c);
}

void client_drop(struct client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	ev_io_stop(&sup.loop, &c->io);
	close(c->conn.fd);
	c->conn.fd = -1;
	if (c == sup.creator) {
		sup.creator = NULL;
		/* a creator that gives up before READY undoes the sandbox's
		 * record: the sandbox must not run on without one */
		if (sup.state == SUP_STARTING)
			sup_kill_all();
	}
	/* its file operations and watches are cancelled; late frames for
	 * them are dropped when they arrive */
	for (struct route *r = sup.routes; r; r = r->next) {
		if (r->client != c)
			continue;
		r->client = NULL;
		agent_send(P_CANCEL, 0, r->agent_stream, NULL, 0);
	}
	procs_client_left(c, false);
	tunnels_client_left(c);
	for (struct client **pp = &sup.clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	ev_defer(&sup.loop, free_client, c);
	procs_credit_all();
}

void client_send(struct client *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n)
{
	if (c->closing)
		return;
	if (proto_conn_queue(&c->conn, type, flags, stream, p, n) < 0)
		return;
	if (proto_conn_pending(&c->conn) > CLIENT_OUT_CAP) {
		/* a client that does not read cannot make us hold its output */
		client_drop(c);
		return;
	}
	sup_schedule_flush();
}

void clients_flush(void)
{
	for (struct client *c = sup.clients, *next; c; c = next) {
		next = c->next;
		if (c->closing || !proto_conn_pending(&c->conn))
			continue;
		if (proto_conn_flush(&c->conn) < 0) {
			client_drop(c);
			continue;
		}
		update_interest(c);
	}
}

void client_send_fds(struct client *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n,
		     const int *fds, int nfds)
{
	if (c->closing || proto_conn_queue_fds(&c->conn, type, flags, stream, p, n, fds, nfds) < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	sup_schedule_flush();
}

void client_send_error(struct client *c, uint32_t stream, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct buf b = BUF_INIT;
	proto_error_encode(&b, code, msg);
	client_send(c, P_ERROR, 0, stream, b.data, b.len);
	buf_release(&b);
}

void client_reply_ok(struct client *c, uint32_t stream)
{
	client_send(c, P_OK, 0, stream, NULL, 0);
}

static void on_client(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	struct client *c = container_of(io, struct client, io);
	if (revents & EPOLLOUT) {
		if (proto_conn_flush(&c->conn) < 0) {
			client_drop(c);
			return;
		}
		update_interest(c);
		procs_credit_all();
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int r = proto_conn_read(&c->conn, on_client_frame, c);
		if (r != 0)
			client_drop(c);
	}
}

void client_activate(struct client *c)
{
	ev_io_start(&sup.loop, &c->io, c->conn.fd, EPOLLIN, on_client);
	if (proto_conn_parse_buffered(&c->conn, on_client_frame, c) < 0)
		client_drop(c);
}

void client_accept(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	for (;;) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		client_activate(client_add(fd, false));
	}
}

static struct route *route_by_client(struct client *c, uint32_t stream)
{
	for (struct route *r = sup.routes; r; r = r->next)
		if (r->client == c && r->client_stream == stream)
			return r;
	return NULL;
}

static struct route *route_by_agent(uint32_t stream)
{
	for (struct route *r = sup.routes; r; r = r->next)
		if (r->agent_stream == stream)
			return r;
	return NULL;
}

static void route_remove(struct route *dead)
{
	for (struct route **pp = &sup.routes; *pp; pp = &(*pp)->next) {
		if (*pp == dead) {
			*pp = dead->next;
			free(dead);
			return;
		}
	}
}

void route_from_agent(const struct proto_hdr *h, const uint8_t *payload)
{
	struct sproc *p = proc_by_agent(h->stream);
	if (p) {
		proc_from_agent(p, h, payload);
		return;
	}
	struct tunnel *t = tunnel_by_agent(h->stream);
	if (t) {
		tunnel_from_agent(t, h, payload);
		return;
	}
	struct route *r = route_by_agent(h->stream);
	if (!r)
		return;
	bool last = h->type == P_FILE_RESULT || h->type == P_ERROR;
	if (r->client)
		client_send(r->client, h->type, h->flags, r->client_stream, payload, h->len);
	if (last) {
		/* a finished file operation counts as activity */
		sup_touch();
		route_remove(r);
	}
}

void clients_broadcast_final(const struct buf *exit_tlv)
{
	for (struct client *c = sup.clients; c; c = c->next) {
		bool sent = false;
		if (sup.main_proc) {
			for (struct sink *s = sup.main_proc->sinks; s; s = s->next) {
				if (s->c == c) {
					client_send(c, P_FINAL, 0, s->stream, exit_tlv->data, exit_tlv->len);
					sent = true;
				}
			}
		}
		if (!sent && c->wants_final)
			client_send(c, P_FINAL, 0, 0, exit_tlv->data, exit_tlv->len);
	}
}

static void reply_status(struct client *c, uint32_t stream)
{
	static const char *const names[] = { "starting", "running", "paused", "stopping" };
	struct buf b = BUF_INIT;
	tlv_put_str(&b, T_STATE, names[sup.state]);
	tlv_put_u64(&b, T_PID, (uint64_t)sup.init_pid);
	tlv_put_i64(&b, T_STARTED_AT, sup.started_at);
	if (sup.spec.deadline_ms > 0)
		tlv_put_i64(&b, T_DEADLINE_MS, sup.spec.deadline_ms);
	if (sup.spec.idle_timeout_ms > 0)
		tlv_put_i64(&b, T_IDLE_TIMEOUT_MS, sup.spec.idle_timeout_ms);
	tlv_put_i64(&b, T_TIME_MS, mono_ms() - sup.last_activity);
	if (sup.main_proc) {
		tlv_put_flag(&b, T_TTY, sup.main_proc->tty);
		tlv_put_flag(&b, T_STDIN, sup.main_proc->stdin_open);
	}
	client_send(c, P_STATUS, 0, stream, b.data, b.len);
	buf_release(&b);
}

/* A file operation or a watch: a route to a fresh agent stream. */
static void handle_file_op(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	if (sup.state == SUP_PAUSED) {
		client_send_error(c, h->stream, EBUSY, "sandbox %s is paused", sup.spec.name);
		return;
	}
	if (sup.state != SUP_RUNNING || sup.main_exited) {
		client_send_error(c, h->stream, ESRCH, "sandbox %s is not running", sup.spec.name);
		return;
	}
	if (h->stream == 0 || route_by_client(c, h->stream) || procs_stream_in_use(c, h->stream)) {
		client_send_error(c, h->stream, EINVAL, "stream %u is in use", h->stream);
		return;
	}
	struct route *r = xcalloc(1, sizeof(*r));
	r->agent_stream = sup_new_stream();
	r->client = c;
	r->client_stream = h->stream;
	r->next = sup.routes;
	sup.routes = r;
	agent_send(P_FILE_OP, 0, r->agent_stream, payload, h->len);
}

static void handle_stop(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	struct tlv_iter it;
	tlv_iter_init(&it, payload, h->len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int64_t timeout = 10000, sig = sup.spec.stop_signal > 0 ? sup.spec.stop_signal : SIGTERM;
	while (tlv_next(&it, &tag, &val, &len) > 0) {
		if (tag == T_TIMEOUT_MS)
			tlv_i64(val, len, &timeout);
		else if (tag == T_SIGNAL)
			tlv_i64(val, len, &sig);
	}
	if (sig < 1 || sig > 64)
		sig = SIGTERM;
	c->wants_final = true;
	client_reply_ok(c, h->stream);
	sup_stop(timeout, (int)sig, NULL);
}

static void handle_update(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	struct tlv_iter it;
	tlv_iter_init(&it, payload, h->len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	while (tlv_next(&it, &tag, &val, &len) > 0) {
		int64_t v;
		if (tlv_i64(val, len, &v) < 0 || v < 0)
			continue;
		if (tag == T_DEADLINE_MS)
			sup.spec.deadline_ms = v;
		else if (tag == T_IDLE_TIMEOUT_MS)
			sup.spec.idle_timeout_ms = v;
	}
	if (sup.state == SUP_RUNNING || sup.state == SUP_PAUSED)
		sup_arm_timers();
	client_reply_ok(c, h->stream);
}

static void handle_pause(struct client *c, const struct proto_hdr *h, bool pause)
{
	struct capsa_error *err = NULL;
	if (!sup.cg) {
		if (linux_rootless()) {
			_cleanup_free_ char *why = linux_cgroup_rootless_why("freezer");
			client_send_error(c, h->stream, ENOTSUP, "pause needs a cgroup, and in rootless mode %s", why);
		} else {
			client_send_error(c, h->stream, ENOTSUP, "pause needs a cgroup freezer, and this host has none");
		}
		return;
	}
	if (pause && sup.state == SUP_PAUSED) {
		client_send_error(c, h->stream, EINVAL, "sandbox %s is already paused", sup.spec.name);
		return;
	}
	if (pause && sup.state != SUP_RUNNING) {
		client_send_error(c, h->stream, EINVAL, "sandbox %s is not running", sup.spec.name);
		return;
	}
	if (!pause && sup.state != SUP_PAUSED) {
		client_send_error(c, h->stream, EINVAL, "sandbox %s is not paused", sup.spec.name);
		return;
	}
	if (linux_cgroup_freeze(sup.cg, pause, &err) < 0) {
		client_send_error(c, h->stream, err->code, "%s", err->msg);
		capsa_error_free(err);
		return;
	}
	sup.state = pause ? SUP_PAUSED : SUP_RUNNING;
	client_reply_ok(c, h->stream);
}

static bool is_query(uint16_t type)
{
	return type == P_STATUS || type == P_PROCS || type == P_PORTS || type == P_PING || type == P_FINAL;
}

static int on_client_frame(void *ctx, struct proto_conn *conn, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)conn;
	struct client *c = ctx;
	if (c->closing)
		return -1;
	/* everything but a look counts as activity for the idle timeout */
	if (!is_query(h->type))
		sup_touch();
	switch (h->type) {
	case P_DATA:
	case P_EOF:
	case P_SIGNAL:
	case P_RESIZE:
	case P_CREDIT:
	case P_DETACH:
	case P_CANCEL: {
		struct sink *s;
		struct sproc *p = proc_by_client(c, h->stream, &s);
		if (p) {
			if (h->type != P_CANCEL)
				proc_from_client(p, s, c, h, payload);
			break;
		}
		struct route *r = route_by_client(c, h->stream);
		if (r && h->type != P_SIGNAL && h->type != P_RESIZE && h->type != P_DETACH)
			agent_send(h->type, h->flags, r->agent_stream, payload, h->len);
		break;
	}
	case P_PROC_START:
		proc_start_request(c, h, payload);
		break;
	case P_FILE_OP:
		handle_file_op(c, h, payload);
		break;
	case P_TUNNEL_OPEN:
		tunnel_open_request(c, h, payload);
		break;
	case P_ATTACH:
		proc_attach_request(c, h, payload);
		break;
	case P_PROCS:
		proc_list_request(c, h);
		break;
	case P_PROC_SIGNAL:
		proc_signal_request(c, h, payload);
		break;
	case P_PORTS:
		tunnel_ports_request(c, h);
		break;
	case P_PUBLISH:
		tunnel_publish_request(c, h, payload);
		break;
	case P_STATUS:
		reply_status(c, h->stream);
		break;
	case P_STOP:
		handle_stop(c, h, payload);
		break;
	case P_KILL:
		if (h->len != 4) {
			client_send_error(c, h->stream, EINVAL, "malformed kill request");
			break;
		}
		sup.kill_requested = true;
		c->wants_final = true;
		agent_send(P_SIGNAL, 0, MAIN_STREAM, payload, 4);
		client_reply_ok(c, h->stream);
		break;
	case P_PAUSE:
	case P_RESUME:
		handle_pause(c, h, h->type == P_PAUSE);
		break;
	case P_UPDATE:
		handle_update(c, h, payload);
		break;
	case P_TOUCH:
		client_reply_ok(c, h->stream);
		break;
	case P_PING:
		client_send(c, P_PONG, 0, h->stream, payload, h->len);
		break;
	case P_FINAL:
		/* "tell me when the sandbox ends" */
		c->wants_final = true;
		break;
	default:
		client_send_error(c, h->stream, EPROTONOSUPPORT, "unknown request type %u", h->type);
		break;
	}
	return 0;
}
