/* stream.c: streaming response bodies (stream.h).
 *
 * Locking: s->mu guards the queue and flags.  MHD_resume_connection() is
 * never called with s->mu held: MHD may free the response (and so take
 * s->mu in the free callback) while holding its own locks.  A connection
 * is resumed by whoever flips s->suspended from true to false under s->mu,
 * so exactly once; it cannot be freed in between because MHD does not
 * touch a suspended connection.
 */
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <string.h>

#include "server.h"
#include "stream.h"
#include "util/util.h"

struct stream *stream_new(struct server *srv, size_t cap)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->srv = srv;
	s->cap = cap ? cap : 256 * 1024;
	s->refs = 1;
	s->conn_fd = -1;
	s->last_ms = mono_ms();
	pthread_mutex_lock(&srv->streams_mu);
	s->next = srv->streams;
	if (srv->streams)
		srv->streams->prev = s;
	srv->streams = s;
	pthread_mutex_unlock(&srv->streams_mu);
	return s;
}

void stream_ref(struct stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->refs++;
	pthread_mutex_unlock(&s->mu);
}

void stream_unref(struct stream *s)
{
	if (!s)
		return;
	struct server *srv = s->srv;
	pthread_mutex_lock(&srv->streams_mu);
	pthread_mutex_lock(&s->mu);
	bool last = --s->refs == 0;
	if (last) {
		if (s->prev)
			s->prev->next = s->next;
		else
			srv->streams = s->next;
		if (s->next)
			s->next->prev = s->prev;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&srv->streams_mu);
	if (!last)
		return;
	if (s->on_room_free)
		s->on_room_free(s->on_room_arg);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s->q);
	free(s->keepalive);
	free(s);
}

void stream_set_keepalive(struct stream *s, int ms, const void *msg, size_t n)
{
	pthread_mutex_lock(&s->mu);
	free(s->keepalive);
	s->keepalive = xmalloc(n + 1);
	memcpy(s->keepalive, msg, n);
	s->keepalive_len = n;
	s->keepalive_ms = ms;
	pthread_mutex_unlock(&s->mu);
}

/* With s->mu held: take the connection to resume, if it is suspended. */
static struct MHD_Connection *take_resume(struct stream *s)
{
	if (!s->suspended || !s->conn)
		return NULL;
	s->suspended = false;
	return s->conn;
}

static void append(struct stream *s, const void *p, size_t n)
{
	size_t need = s->len + n;
	if (need > s->alloc) {
		s->alloc = MAX(need, s->cap);
		s->q = xrealloc(s->q, s->alloc);
	}
	memcpy(s->q + s->len, p, n);
	s->len += n;
	s->last_ms = mono_ms();
}

int stream_write(struct stream *s, const void *p, size_t n, bool block)
{
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->gone || s->closed) {
			pthread_mutex_unlock(&s->mu);
			errno = EPIPE;
			return -1;
		}
		/* a message larger than the queue goes alone */
		if (s->len == 0 || s->len + n <= s->cap)
			break;
		if (!block) {
			s->want_room = true;
			pthread_mutex_unlock(&s->mu);
			errno = EAGAIN;
			return -1;
		}
		pthread_cond_wait(&s->cond, &s->mu);
	}
	append(s, p, n);
	struct MHD_Connection *c = take_resume(s);
	pthread_mutex_unlock(&s->mu);
	if (c)
		MHD_resume_connection(c);
	return 0;
}

int stream_write_force(struct stream *s, const void *p, size_t n)
{
	pthread_mutex_lock(&s->mu);
	if (s->gone || s->closed) {
		pthread_mutex_unlock(&s->mu);
		errno = EPIPE;
		return -1;
	}
	append(s, p, n);
	struct MHD_Connection *c = take_resume(s);
	pthread_mutex_unlock(&s->mu);
	if (c)
		MHD_resume_connection(c);
	return 0;
}

void stream_close(struct stream *s, bool failed)
{
	pthread_mutex_lock(&s->mu);
	s->closed = true;
	s->failed |= failed;
	pthread_cond_broadcast(&s->cond);
	struct MHD_Connection *c = take_resume(s);
	pthread_mutex_unlock(&s->mu);
	if (c)
		MHD_resume_connection(c);
}

bool stream_gone(struct stream *s)
{
	pthread_mutex_lock(&s->mu);
	bool g = s->gone;
	pthread_mutex_unlock(&s->mu);
	return g;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream *s = cls;
	pthread_mutex_lock(&s->mu);
	if (s->len > 0) {
		size_t n = MIN(max, s->len);
		memcpy(buf, s->q, n);
		memmove(s->q, s->q + n, s->len - n);
		s->len -= n;
		if (s->len == 0 && s->alloc > s->cap) {
			/* a lone oversized message grew the queue: give it back */
			free(s->q);
			s->q = NULL;
			s->alloc = 0;
		}
		pthread_cond_broadcast(&s->cond);
		bool notify = s->want_room;
		s->want_room = false;
		void (*cb)(void *) = s->on_room;
		void *arg = s->on_room_arg;
		pthread_mutex_unlock(&s->mu);
		if (notify && cb)
			cb(arg);
		return (ssize_t)n;
	}
	if (s->failed) {
		pthread_mutex_unlock(&s->mu);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (s->closed || s->gone || !s->conn) {
		pthread_mutex_unlock(&s->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	s->suspended = true;
	MHD_suspend_connection(s->conn);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void reader_free(void *cls)
{
	struct stream *s = cls;
	pthread_mutex_lock(&s->mu);
	s->gone = true;
	s->conn = NULL;
	s->suspended = false;
	pthread_cond_broadcast(&s->cond);
	void (*cb)(void *) = s->on_room;
	void *arg = s->on_room_arg;
	pthread_mutex_unlock(&s->mu);
	if (cb)
		cb(arg);
	stream_unref(s);
}

struct MHD_Response *stream_response(struct stream *s)
{
	stream_ref(s);
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, reader, s, reader_free);
	if (!resp)
		stream_unref(s);
	return resp;
}

void stream_attach(struct stream *s, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	pthread_mutex_lock(&s->mu);
	s->conn = s->gone ? NULL : conn;
	s->conn_fd = ci ? ci->connect_fd : -1;
	pthread_mutex_unlock(&s->mu);
}

/* A suspended connection is not watched by MHD, so a client that hangs up
 * while its stream is silent would go unnoticed until the next keepalive:
 * look for the hangup ourselves and end such a stream. */
static void hangups(struct server *srv)
{
	struct pollfd pf[64];
	struct stream *who[64];
	size_t n = 0;
	pthread_mutex_lock(&srv->streams_mu);
	for (struct stream *s = srv->streams; s && n < ARRAY_SIZE(pf); s = s->next) {
		pthread_mutex_lock(&s->mu);
		if (s->suspended && s->conn && s->conn_fd >= 0 && !s->gone) {
			pf[n] = (struct pollfd){ .fd = s->conn_fd, .events = POLLRDHUP };
			who[n] = s;
			s->refs++;
			n++;
		}
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_unlock(&srv->streams_mu);
	if (n && poll(pf, n, 0) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (!(pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
				continue;
			struct stream *s = who[i];
			pthread_mutex_lock(&s->mu);
			s->failed = true;
			pthread_cond_broadcast(&s->cond);
			struct MHD_Connection *c = take_resume(s);
			pthread_mutex_unlock(&s->mu);
			/* MHD reads the end of the body as an error and closes the
			 * connection; the response's free callback marks it gone */
			if (c)
				MHD_resume_connection(c);
		}
	}
	for (size_t i = 0; i < n; i++)
		stream_unref(who[i]);
}

void streams_tick(struct server *srv)
{
	hangups(srv);
	int64_t now = mono_ms();
	struct MHD_Connection *resume[64];
	size_t n = 0;
	pthread_mutex_lock(&srv->streams_mu);
	for (struct stream *s = srv->streams; s && n < ARRAY_SIZE(resume); s = s->next) {
		pthread_mutex_lock(&s->mu);
		if (s->keepalive_ms > 0 && !s->closed && !s->gone && s->conn && s->len == 0 &&
		    now - s->last_ms >= s->keepalive_ms) {
			append(s, s->keepalive, s->keepalive_len);
			struct MHD_Connection *c = take_resume(s);
			if (c)
				resume[n++] = c;
		}
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_unlock(&srv->streams_mu);
	for (size_t i = 0; i < n; i++)
		MHD_resume_connection(resume[i]);
}

/* Ends every stream (shutdown): bodies end after what is queued, and
 * producers are told through on_room, as when a client leaves. */
void streams_close_all(struct server *srv)
{
	for (;;) {
		struct MHD_Connection *resume[64];
		struct stream *notify[64];
		size_t n = 0, k = 0;
		pthread_mutex_lock(&srv->streams_mu);
		for (struct stream *s = srv->streams; s && n < ARRAY_SIZE(resume) && k < ARRAY_SIZE(notify); s = s->next) {
			pthread_mutex_lock(&s->mu);
			if (!s->closed) {
				s->closed = true;
				pthread_cond_broadcast(&s->cond);
				struct MHD_Connection *c = take_resume(s);
				if (c)
					resume[n++] = c;
				if (s->on_room) {
					s->refs++;
					notify[k++] = s;
				}
			}
			pthread_mutex_unlock(&s->mu);
		}
		pthread_mutex_unlock(&srv->streams_mu);
		for (size_t i = 0; i < n; i++)
			MHD_resume_connection(resume[i]);
		for (size_t i = 0; i < k; i++) {
			pthread_mutex_lock(&notify[i]->mu);
			void (*cb)(void *) = notify[i]->on_room;
			void *arg = notify[i]->on_room_arg;
			pthread_mutex_unlock(&notify[i]->mu);
			if (cb)
				cb(arg);
			stream_unref(notify[i]);
		}
		if (n < ARRAY_SIZE(resume) && k < ARRAY_SIZE(notify))
			break;
	}
}
