/* conn.h: a framed, buffered connection over a (usually non-blocking)
 * stream socket.  Input is parsed in place, several frames per read; output
 * is queued and flushed as the socket allows.  libc only.
 */
#ifndef CAPSA_PROTO_CONN_H
#define CAPSA_PROTO_CONN_H

#include <stdbool.h>
#include <sys/types.h>

#include "proto.h"

#define PROTO_MAX_FDS 8

/* Descriptors to send with the first byte of a queued frame. */
struct proto_fd_out {
	size_t off;  /* offset of the frame in out */
	int fds[3];
	int n;
};

struct proto_conn {
	int fd;
	struct buf in;
	struct buf out;
	size_t out_off;	    /* bytes of out already written */
	uint32_t max_payload;
	bool eof;
	/* descriptors (SCM_RIGHTS) travel with some frames (docs/protocol.md):
	 * with accept_fds, reads keep what arrives, oldest first, at most
	 * PROTO_MAX_FDS (more are closed); without, any are closed */
	bool accept_fds;
	int fds[PROTO_MAX_FDS];
	int n_fds;
	struct proto_fd_out *fd_out; /* frames with descriptors, in queue order */
	int n_fd_out, cap_fd_out;
};

typedef int (*proto_frame_cb)(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload);

void proto_conn_init(struct proto_conn *c, int fd);
/* Frees buffers; closes fd when close_fd. */
void proto_conn_release(struct proto_conn *c, bool close_fd);
/* Reads what is available and calls cb for every complete frame (cb
 * returning < 0 stops with that error).  Returns 0 when the socket would
 * block, 1 at EOF (after delivering complete frames), -1 on error or on a
 * frame over max_payload (errno EMSGSIZE). */
int proto_conn_read(struct proto_conn *c, proto_frame_cb cb, void *ctx);
/* Delivers the complete frames already in the input buffer (read earlier
 * by someone else) without reading. */
int proto_conn_parse_buffered(struct proto_conn *c, proto_frame_cb cb, void *ctx);
/* Queues one frame; does not write. */
int proto_conn_queue(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);
/* Queues a frame that carries descriptors (taken over: closed once sent,
 * or when the connection is released).  At most 3 per frame. */
int proto_conn_queue_fds(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n,
			 const int *fds, int nfds);
/* The oldest descriptor received and not yet taken, or -1. */
int proto_conn_take_fd(struct proto_conn *c);
/* Queues a frame whose payload is the content of b (TLVs built by the caller). */
int proto_conn_queue_buf(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, const struct buf *b);
/* Writes queued output.  0: all written, 1: some left (wait for EPOLLOUT),
 * -1: error. */
int proto_conn_flush(struct proto_conn *c);
static inline size_t proto_conn_pending(const struct proto_conn *c)
{
	return c->out.len - c->out_off;
}
/* Blocking: waits for one frame (poll with timeout_ms, -1 forever) and
 * delivers it through cb.  Returns 1 after a frame, 0 at EOF, -1 on error
 * or timeout (errno ETIMEDOUT). */
int proto_conn_wait(struct proto_conn *c, int timeout_ms, proto_frame_cb cb, void *ctx);
/* Like proto_conn_wait, but never reads past the frame it delivers, so
 * whatever follows stays in the socket (for a caller that polls it next).
 * Returns 1 after a frame, 0 at EOF, -1 on error or timeout. */
int proto_conn_wait_exact(struct proto_conn *c, int timeout_ms, proto_frame_cb cb, void *ctx);
/* Blocking write of everything queued. */
int proto_conn_flush_all(struct proto_conn *c, int timeout_ms);

/* Reads up to max bytes from fd straight into a new DATA-style frame at the
 * end of the output queue (no intermediate copy).  Returns the bytes read
 * (the frame is queued), 0 at EOF, -1 with errno (EAGAIN included); nothing
 * is queued unless bytes were read. */
ssize_t proto_conn_queue_read(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, int fd,
			      size_t max);

/* Like proto_conn_queue_read, with the bytes produced by fill(ctx, buf,
 * max) (>0: bytes, 0: nothing, -1: error); nothing is queued unless fill
 * produced bytes. */
ssize_t proto_conn_queue_fill(struct proto_conn *c, uint16_t type, uint16_t flags, uint32_t stream, size_t max,
			      ssize_t (*fill)(void *ctx, void *buf, size_t max), void *ctx);

#endif
