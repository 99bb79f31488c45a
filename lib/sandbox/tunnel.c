/* tunnel.c: published ports and one-off tunnels (capsa/tunnel.h).
 *
 * capsa_tunnel_open hands one end of a socketpair to the supervisor with
 * SCM_RIGHTS; the supervisor tunnels it like a connection accepted on a
 * published port, so the caller is left with a plain socket and no frames
 * to pump. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capsa/tunnel.h"
#include "sandbox.h"
#include "util/fs.h"

static int parse_port(const char *s, const char *spec, uint16_t *out, bool zero_ok, struct capsa_error **err)
{
	int64_t v;
	if (parse_int64(s, zero_ok ? 0 : 1, 65535, &v) < 0)
		return error_set(err, EINVAL, "invalid port '%s' in '%s': expected %s-65535", s, spec, zero_ok ? "0" : "1");
	*out = (uint16_t)v;
	return 0;
}

CAPSA_EXPORT int capsa_port_parse(const char *spec, struct capsa_port *out, char **storage, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	*storage = NULL;
	if (!spec || !*spec || strlen(spec) > 128)
		return error_set(err, EINVAL, "invalid port mapping '%.64s'", spec ? spec : "");
	_cleanup_free_ char *s = xstrdup(spec);
	char *proto = strrchr(s, '/');
	if (proto) {
		if (strcmp(proto + 1, "tcp") != 0)
			return error_set(err, EINVAL, "invalid port mapping '%s': only tcp is supported", spec);
		*proto = '\0';
	}
	char *ip = NULL, *host = NULL, *port;
	if (s[0] == '[') {
		char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return error_set(err, EINVAL, "invalid port mapping '%s': expected [IPV6]:HOSTPORT:PORT", spec);
		*close = '\0';
		ip = s + 1;
		host = close + 2;
		port = strchr(host, ':');
		if (!port)
			return error_set(err, EINVAL, "invalid port mapping '%s': expected [IPV6]:HOSTPORT:PORT", spec);
		*port++ = '\0';
	} else {
		char *last = strrchr(s, ':');
		if (!last) {
			port = s;
		} else {
			*last = '\0';
			port = last + 1;
			char *first = strrchr(s, ':');
			if (first) {
				*first = '\0';
				ip = s;
				host = first + 1;
			} else {
				host = s;
			}
		}
	}
	if (parse_port(port, spec, &out->port, false, err) < 0)
		return -1;
	if (!host)
		out->host_port = out->port;
	else if (!*host)
		out->host_port = 0;
	else if (parse_port(host, spec, &out->host_port, true, err) < 0)
		return -1;
	if (ip && *ip) {
		struct in6_addr a6;
		struct in_addr a4;
		if (inet_pton(AF_INET, ip, &a4) != 1 && inet_pton(AF_INET6, ip, &a6) != 1)
			return error_set(err, EINVAL, "invalid host address '%s' in '%s'", ip, spec);
		*storage = xstrdup(ip);
		out->host_ip = *storage;
	}
	return 0;
}

static int ports_from_reply(const struct buf *reply, struct capsa_port_info **out, size_t *n)
{
	struct tlv_iter it;
	tlv_iter_init(&it, reply->data, reply->len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	struct capsa_port_info *v = NULL;
	size_t k = 0;
	while (tlv_next(&it, &tag, &val, &len) > 0) {
		struct proto_port p;
		if (tag != T_ENTRY || proto_port_decode(val, len, &p) < 0)
			continue;
		v = xrealloc(v, (k + 1) * sizeof(*v));
		memset(&v[k], 0, sizeof(*v));
		snprintf(v[k].host_ip, sizeof(v[k].host_ip), "%s", p.host_ip ? p.host_ip : "127.0.0.1");
		v[k].host_port = p.host_port;
		v[k].port = p.port;
		v[k].connections = p.count;
		v[k].rx_bytes = p.rx;
		v[k].tx_bytes = p.tx;
		proto_port_release(&p);
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

CAPSA_EXPORT int capsa_port_list(struct capsa_ctx *ctx, const char *sandbox, struct capsa_port_info **out, size_t *n,
				 struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	struct sb_row r;
	struct proto_conn c;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	struct buf reply = BUF_INIT;
	int rc = sandbox_request(&c, P_PORTS, 0, NULL, &reply, err);
	if (rc == 0)
		ports_from_reply(&reply, out, n);
	else
		error_wrap(err, "sandbox %s", r.name);
	buf_release(&reply);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

CAPSA_EXPORT int capsa_port_publish(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_port *port,
				    struct capsa_port_info *info, struct capsa_error **err)
{
	if (!port || port->port == 0)
		return error_set(err, EINVAL, "publish: port outside 1-65535");
	struct sb_row r;
	struct proto_conn c;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	struct buf b = BUF_INIT, reply = BUF_INIT;
	struct proto_port pp = { .host_ip = (char *)port->host_ip, .host_port = port->host_port, .port = port->port };
	struct tlv_iter it;
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	/* PUBLISH carries the port's fields at the top level */
	proto_port_encode(&b, T_ENTRY, &pp);
	tlv_iter_init(&it, b.data, b.len);
	tlv_next(&it, &tag, &val, &len);
	struct buf inner = BUF_INIT;
	buf_append(&inner, val, len);
	int rc = sandbox_request(&c, P_PUBLISH, 0, &inner, &reply, err);
	if (rc == 0) {
		struct capsa_port_info *v;
		size_t n;
		ports_from_reply(&reply, &v, &n);
		if (info && n)
			*info = v[0];
		char attrs[96];
		snprintf(attrs, sizeof(attrs), "{\"port\":%u,\"hostPort\":%u}", port->port, n ? v[0].host_port : 0);
		sandbox_event(ctx, r.id, "publish", attrs);
		free(v);
	} else {
		error_wrap(err, "sandbox %s", r.name);
	}
	buf_release(&inner);
	buf_release(&b);
	buf_release(&reply);
	proto_conn_release(&c, true);
	sb_row_release(&r);
	return rc;
}

struct reply_wait {
	bool done, ok;
	int code;
	char *msg;
};

static int tunnel_reply(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct reply_wait *rw = ctx;
	if (h->stream != 1)
		return 0;
	if (h->type == P_OK) {
		rw->ok = rw->done = true;
	} else if (h->type == P_ERROR) {
		free(rw->msg);
		proto_error_decode(payload, h->len, &rw->code, &rw->msg);
		rw->done = true;
	}
	return 0;
}

static int send_fd(int sock, const void *data, size_t n, int fd)
{
	struct iovec iov = { (void *)data, n };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ssize_t w;
	do
		w = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -1;
	/* the rest of the frame, if the first send was short */
	return (size_t)w == n ? 0 : write_all(sock, (const char *)data + w, n - (size_t)w);
}

CAPSA_EXPORT int capsa_tunnel_open(struct capsa_ctx *ctx, const char *sandbox, uint16_t port, struct capsa_error **err)
{
	if (port == 0)
		return error_set(err, EINVAL, "tunnel: port 0 is outside 1-65535");
	struct sb_row r;
	struct proto_conn c;
	if (sandbox_open_running(ctx, sandbox, &r, &c, err) < 0)
		return -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		error_sys(err, errno, "tunnel to sandbox %s", r.name);
		proto_conn_release(&c, true);
		sb_row_release(&r);
		return -1;
	}
	/* the frame goes out with the descriptor attached to its first byte */
	struct buf payload = BUF_INIT, frame = BUF_INIT;
	tlv_put_u64(&payload, T_PORT, port);
	proto_frame_raw(&frame, P_TUNNEL_OPEN, 0, 1, payload.data, payload.len);
	int rc = send_fd(c.fd, frame.data, frame.len, sv[1]);
	close(sv[1]);
	buf_release(&payload);
	buf_release(&frame);
	if (rc < 0) {
		rc = error_sys(err, errno, "tunnel to sandbox %s", r.name);
	} else {
		/* OK once the agent connected, ERROR if nothing listens */
		struct reply_wait rw = { 0 };
		while (!rw.done) {
			int k = proto_conn_wait(&c, 30000, tunnel_reply, &rw);
			if (k <= 0) {
				rc = error_set(err, k == 0 ? ESRCH : errno, "tunnel to port %u of sandbox %s: no answer", port,
					       r.name);
				break;
			}
		}
		if (rc == 0 && !rw.ok)
			rc = error_set(err, rw.code ? rw.code : EIO, "sandbox %s: %s", r.name, rw.msg ? rw.msg : "tunnel refused");
		free(rw.msg);
	}
	proto_conn_release(&c, true);
	sb_row_release(&r);
	if (rc < 0) {
		close(sv[0]);
		return -1;
	}
	return sv[0];
}
