/* conn.c: buffered frame I/O. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

void proto_conn_init(struct proto_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->max_payload = PROTO_MAX_PAYLOAD;
}

void proto_conn_release(struct proto_conn *c, bool close_fd)
{
	for (int i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	c->n_fds = 0;
	for (int i = 0; i < c->n_fd_out; i++)
		for (int k = 0; k < c->fd_out[i].n; k++)
			close(c->fd_out[i].fds[k]);
	free(c->fd_out);
	c->fd_out = NULL;
	c->n_fd_out = c->cap_fd_out = 0;
	buf_release(&c->in);
	buf_release(&c->out);
	if (close_fd && c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* read(2), or recvmsg(2) keeping (or closing) any descriptors. */
static ssize_t conn_read(struct proto_conn *c, void *p, size_t n)
{
	struct iovec iov = { p, n };
	union {
		char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t r = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
	if (r < 0 && errno == ENOTSOCK)
		return read(c->fd, p, n);
	if (r < 0)
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[PROTO_MAX_FDS];
		memcpy(fds, CMSG_DATA(cm), MIN(k, (size_t)PROTO_MAX_FDS) * sizeof(int));
		for (size_t i = 0; i < k && i < PROTO_MAX_FDS; i++) {
			if (c->accept_fds && c->n_fds < PROTO_MAX_FDS)
				c->fds[c->n_fds++] = fds[i];
			else
				close(fds[i]);
		}
	}
	return r;
}

int proto_conn_take_fd(struct proto_conn *c)
{
	if (c->n_fds == 0)
		return -1;
	int fd = c->fds[0];
	memmove(c->fds, c->fds + 1, (size_t)(c->n_fds - 1) * sizeof(int));
	c->n_fds--;
	return fd;
}

/* Delivers every complete frame at the start of c->in. */
static int parse(struct proto_conn *c, proto_frame_cb cb, void *ctx)
{
	size_t off = 0;
	int rc = 0;
	while (c->in.len - off >= PROTO_HDR_SIZE) {
		struct proto_hdr h;
		if (proto_hdr_decode((const uint8_t *)c->in.data + off, &h, c->max_payload) < 0) {
			errno = EMSGSIZE;
			rc = -1;
			break;
		}
		if (c->in.len - off - PROTO_HDR_SIZE < h.len)
			break;
		rc = cb(ctx, c, &h, (const uint8_t *)c->in.data + off + PROTO_HDR_SIZE);
		off += PROTO_HDR_SIZE + h.len;
		if (rc < 0)
			break;
		if (c->fd < 0) /* the callback closed us */
			return -1;
	}
	buf_consume(&c->in, off);
	return rc < 0 ? -1 : 0;
}

int proto_conn_parse_buffered(struct proto_conn *c, proto_frame_cb cb, void *ctx)
{
	return parse(c, cb, ctx);
}

int proto_conn_read(struct proto_conn *c, proto_frame_cb cb, void *ctx)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		/* room for at least one whole frame, never more than two */
		size_t want = PROTO_HDR_SIZE + c->max_payload;
		if (c->in.len >= want) {
			errno = EMSGSIZE;
			return -1;
		}
		size_t room = MAX((size_t)16384, c->in.len >= PROTO_HDR_SIZE ? want - c->in.len : 65536);
		if (buf_reserve(&c->in, room) < 0)
			return -1;
		ssize_t r = conn_read(c, c->in.data + c->in.len, room);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		if (r == 0) {
			c->eof = true;
			if (parse(c, cb, ctx) < 0)
				return -1;
			return 1;
		}
		c->in.len += (size_t)r;
		if (parse(c, cb, ctx) < 0)
			return -1;
		if ((size_t)r < room)
			return 0;
	}
	return 0; /* let other fds run; level-triggered epoll brings us back */
}

int proto_conn_queue(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n)
{
	if (c->fd < 0) {
		errno = EPIPE;
		return -1;
	}
	if (c->out_off && c->out_off == c->out.len) {
		c->out.len = 0;
		c->out_off = 0;
	}
	return proto_frame_raw(&c->out, type, flags, stream, p, n);
}

int proto_conn_queue_fds(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n,
			 const int *fds, int nfds)
{
	if (nfds < 1 || nfds > 3) {
		errno = EINVAL;
		return -1;
	}
	if (c->n_fd_out == c->cap_fd_out) {
		c->cap_fd_out = c->cap_fd_out ? 2 * c->cap_fd_out : 8;
		c->fd_out = xrealloc(c->fd_out, (size_t)c->cap_fd_out * sizeof(*c->fd_out));
	}
	if (c->out_off && c->out_off == c->out.len) {
		c->out.len = 0;
		c->out_off = 0;
	}
	size_t off = c->out.len;
	if (proto_conn_queue(c, type, flags, stream, p, n) < 0)
		return -1;
	struct proto_fd_out *o = &c->fd_out[c->n_fd_out++];
	o->off = off;
	o->n = nfds;
	memcpy(o->fds, fds, (size_t)nfds * sizeof(int));
	return 0;
}

/* Sends from out_off with the descriptors of fd_out[0] attached. */
static ssize_t send_with_fds(struct proto_conn *c)
{
	struct proto_fd_out *o = &c->fd_out[0];
	/* only up to the next frame with descriptors of its own */
	size_t end = c->n_fd_out > 1 ? c->fd_out[1].off : c->out.len;
	struct iovec iov = { c->out.data + c->out_off, end - c->out_off };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)o->n) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)o->n);
	memcpy(CMSG_DATA(cm), o->fds, sizeof(int) * (size_t)o->n);
	ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w > 0) {
		for (int k = 0; k < o->n; k++)
			close(o->fds[k]);
		memmove(c->fd_out, c->fd_out + 1, (size_t)(c->n_fd_out - 1) * sizeof(*c->fd_out));
		c->n_fd_out--;
	}
	return w;
}

int proto_conn_queue_buf(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, const struct buf *b)
{
	return proto_conn_queue(c, type, flags, stream, b->data, b->len);
}

int proto_conn_flush(struct proto_conn *c)
{
	while (c->out_off < c->out.len) {
		size_t end = c->out.len;
		if (c->n_fd_out && c->fd_out[0].off > c->out_off)
			end = c->fd_out[0].off; /* up to the frame that carries descriptors */
		ssize_t w = c->n_fd_out && c->fd_out[0].off == c->out_off
				    ? send_with_fds(c)
				    : send(c->fd, c->out.data + c->out_off, end - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			if (errno == ENOTSOCK) {
				w = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
				if (w < 0 && errno == EAGAIN)
					return 1;
				if (w < 0)
					return -1;
			} else {
				return -1;
			}
		}
		c->out_off += (size_t)w;
	}
	c->out.len = 0;
	c->out_off = 0;
	/* give a burst's memory back once it is written */
	if (c->out.alloc > (1u << 20))
		buf_release(&c->out);
	return 0;
}

int proto_conn_wait(struct proto_conn *c, int timeout_ms, proto_frame_cb cb, void *ctx)
{
	struct wait_state {
		proto_frame_cb cb;
		void *ctx;
		int got;
	};
	for (;;) {
		/* a frame may already be buffered */
		if (c->in.len >= PROTO_HDR_SIZE) {
			struct proto_hdr h;
			if (proto_hdr_decode((const uint8_t *)c->in.data, &h, c->max_payload) < 0) {
				errno = EMSGSIZE;
				return -1;
			}
			if (c->in.len - PROTO_HDR_SIZE >= h.len) {
				int rc = cb(ctx, c, &h, (const uint8_t *)c->in.data + PROTO_HDR_SIZE);
				buf_consume(&c->in, PROTO_HDR_SIZE + h.len);
				return rc < 0 ? -1 : 1;
			}
		}
		if (c->eof)
			return 0;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pr == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		size_t room = 65536;
		if (c->in.len >= PROTO_HDR_SIZE + c->max_payload) {
			errno = EMSGSIZE;
			return -1;
		}
		if (buf_reserve(&c->in, room) < 0)
			return -1;
		ssize_t r = conn_read(c, c->in.data + c->in.len, room);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (r == 0)
			c->eof = true;
		c->in.len += (size_t)r;
	}
}

int proto_conn_flush_all(struct proto_conn *c, int timeout_ms)
{
	for (;;) {
		int r = proto_conn_flush(c);
		if (r <= 0)
			return r;
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno != EINTR)
			return -1;
		if (pr == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

struct read_src {
	int fd;
};

static ssize_t fill_from_fd(void *ctx, void *buf, size_t max)
{
	struct read_src *r = ctx;
	ssize_t n;
	do
		n = read(r->fd, buf, max);
	while (n < 0 && errno == EINTR);
	return n;
}

ssize_t proto_conn_queue_read(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, int fd,
			      size_t max)
{
	struct read_src r = { fd };
	return proto_conn_queue_fill(c, type, flags, stream, max, fill_from_fd, &r);
}

ssize_t proto_conn_queue_fill(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, size_t max,
			      ssize_t (*fill)(void *ctx, void *buf, size_t max), void *ctx)
{
	if (max > PROTO_MAX_PAYLOAD)
		max = PROTO_MAX_PAYLOAD;
	if (c->out_off && c->out_off == c->out.len) {
		c->out.len = 0;
		c->out_off = 0;
	}
	size_t start = proto_frame_begin(&c->out, type, flags, stream);
	if (buf_reserve(&c->out, max) < 0) {
		c->out.len = start;
		return -1;
	}
	ssize_t r = fill(ctx, c->out.data + c->out.len, max);
	if (r <= 0) {
		int e = errno;
		c->out.len = start;
		errno = e;
		return r;
	}
	c->out.len += (size_t)r;
	proto_frame_end(&c->out, start);
	return r;
}

/* Reads exactly n more bytes into c->in, waiting up to timeout_ms. */
static int read_exact(struct proto_conn *c, size_t n, int64_t deadline)
{
	if (buf_reserve(&c->in, n) < 0)
		return -1;
	size_t got = 0;
	while (got < n) {
		ssize_t r = conn_read(c, c->in.data + c->in.len, n - got);
		if (r > 0) {
			c->in.len += (size_t)r;
			got += (size_t)r;
			continue;
		}
		if (r == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		int left = deadline < 0 ? -1 : (int)MAX((int64_t)0, deadline - mono_ms());
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, left);
		if (pr == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (pr < 0 && errno != EINTR)
			return -1;
	}
	return 1;
}

int proto_conn_wait_exact(struct proto_conn *c, int timeout_ms, proto_frame_cb cb, void *ctx)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	if (c->in.len < PROTO_HDR_SIZE) {
		int r = read_exact(c, PROTO_HDR_SIZE - c->in.len, deadline);
		if (r <= 0)
			return r;
	}
	struct proto_hdr h;
	if (proto_hdr_decode((const uint8_t *)c->in.data, &h, c->max_payload) < 0) {
		errno = EMSGSIZE;
		return -1;
	}
	size_t have = c->in.len - PROTO_HDR_SIZE;
	if (have < h.len) {
		int r = read_exact(c, h.len - have, deadline);
		if (r <= 0)
			return r;
	}
	int rc = cb(ctx, c, &h, (const uint8_t *)c->in.data + PROTO_HDR_SIZE);
	buf_consume(&c->in, PROTO_HDR_SIZE + h.len);
	return rc < 0 ? -1 : 1;
}
