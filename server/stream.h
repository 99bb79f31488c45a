/* stream.h: a streaming response body: a bounded byte queue that producers
 * (worker and follower threads, the session loop) fill and the MHD thread
 * drains into the connection.
 *
 * Backpressure: the queue holds at most cap bytes.  A blocking producer
 * waits for room; a non-blocking one gets EAGAIN and is told through
 * on_room when the client has read.  A client that never reads therefore
 * costs cap bytes, then the idle timeout closes its connection and the
 * producer sees the stream gone.
 *
 * While the queue is empty the connection is suspended (MHD's contract for
 * a content reader with nothing to say).  A suspended connection does not
 * notice that its client left, so streams that may stay silent carry a
 * keepalive message the server writes after keepalive_ms of silence.
 *
 * Lifetime: one reference for the response, one per producer; the last
 * stream_unref() frees it.  Every message written by one stream_write()
 * call is delivered contiguously.
 */
#ifndef CAPSA_SERVER_STREAM_H
#define CAPSA_SERVER_STREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct MHD_Connection;
struct MHD_Response;

struct stream {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct server *srv;
	char *q;
	size_t len, alloc, cap;
	bool closed;	/* no more data: the body ends after the queue */
	bool failed;	/* ends the body with an error (the connection is cut) */
	bool gone;	/* the client left or the response was freed */
	bool suspended;
	struct MHD_Connection *conn;
	int conn_fd;	/* the connection's socket, to notice a hangup while suspended */
	int refs;
	int64_t last_ms;	   /* last write, CLOCK_MONOTONIC */
	int keepalive_ms;	   /* 0: none */
	char *keepalive;	   /* the message written then */
	size_t keepalive_len;
	/* Called (without the lock) when room appears after an EAGAIN, and
	 * when the stream is gone; from the MHD thread. */
	void (*on_room)(void *arg);
	void *on_room_arg;
	void (*on_room_free)(void *arg); /* frees on_room_arg with the stream */
	bool want_room;
	struct stream *next, *prev; /* server registry */
};

/* A stream with one reference (the caller's); registered with the server
 * for keepalives and shutdown. */
struct stream *stream_new(struct server *srv, size_t cap);
void stream_ref(struct stream *s);
void stream_unref(struct stream *s);
/* Sets the keepalive message (copied) written after ms of silence. */
void stream_set_keepalive(struct stream *s, int ms, const void *msg, size_t n);

/* Appends a whole message.  block: wait for room (or the client to go).
 * 0 on success; -1 with errno EPIPE when the stream is gone or closed, or
 * EAGAIN (not blocking, no room: on_room will be called). */
int stream_write(struct stream *s, const void *p, size_t n, bool block);
/* Appends a whole message whatever the queue holds (the caller bounds
 * what it forces: the last messages of a process, say).  -1 with EPIPE
 * when the stream is gone or closed. */
int stream_write_force(struct stream *s, const void *p, size_t n);
/* Ends the body after what is queued; failed: cut the connection instead
 * of ending the body normally. */
void stream_close(struct stream *s, bool failed);
bool stream_gone(struct stream *s);

/* The MHD response reading from s (takes a reference). */
struct MHD_Response *stream_response(struct stream *s);
/* Binds the connection whose response reads s (MHD thread). */
void stream_attach(struct stream *s, struct MHD_Connection *conn);

/* Server-wide: writes keepalives on idle streams (ticker thread), and
 * closes every stream at shutdown. */
void streams_tick(struct server *srv);
void streams_close_all(struct server *srv);

#endif
