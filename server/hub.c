/* hub.c: the I/O hub (hub.h): one thread with an epoll loop (lib/ev) that
 * owns process sessions, watches and tunnel splices after workers hand
 * them over. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hub.h"
#include "server.h"
#include "stream.h"
#include "util/error.h"
#include "util/fs.h"

struct call {
	void (*fn)(void *arg);
	void *arg;
	bool wait, done;
	struct call *next;
};

struct splice;

struct hub {
	struct server *srv;
	struct ev_loop loop;
	pthread_t thread;
	bool started;
	int efd;
	struct ev_io eio;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct call *head, *tail;
	bool stop;
	uint64_t next_id;
	struct hproc *procs;
	struct hwatch *watches;
	struct splice *splices;
	struct room_id *room;
	size_t n_room, cap_room;
};

static void run_room(struct hub *h);

/* --- calls ------------------------------------------------------------- */

void hub_call(struct hub *h, void (*fn)(void *arg), void *arg, bool wait)
{
	struct call local = { .fn = fn, .arg = arg, .wait = wait };
	struct call *c = wait ? &local : xmalloc(sizeof(*c));
	if (!wait)
		*c = local;
	pthread_mutex_lock(&h->mu);
	if (h->stop) {
		/* the hub is gone: nothing more runs there */
		pthread_mutex_unlock(&h->mu);
		if (!wait)
			free(c);
		return;
	}
	if (h->tail)
		h->tail->next = c;
	else
		h->head = c;
	h->tail = c;
	pthread_mutex_unlock(&h->mu);
	uint64_t one = 1;
	if (write(h->efd, &one, sizeof(one)) < 0) {
		/* an eventfd only fails when its counter would overflow: it is readable anyway */
	}
	if (wait) {
		pthread_mutex_lock(&h->mu);
		while (!local.done)
			pthread_cond_wait(&h->cond, &h->mu);
		pthread_mutex_unlock(&h->mu);
	}
}

static void run_calls(struct hub *h)
{
	for (;;) {
		pthread_mutex_lock(&h->mu);
		struct call *c = h->head;
		if (c) {
			h->head = c->next;
			if (!h->head)
				h->tail = NULL;
		}
		pthread_mutex_unlock(&h->mu);
		if (!c)
			return;
		c->fn(c->arg);
		if (c->wait) {
			pthread_mutex_lock(&h->mu);
			c->done = true;
			pthread_cond_broadcast(&h->cond);
			pthread_mutex_unlock(&h->mu);
		} else {
			free(c);
		}
	}
}

static void on_eventfd(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct hub *h = container_of(io, struct hub, eio);
	uint64_t n;
	while (read(h->efd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
	}
	run_calls(h);
	run_room(h);
}

/* --- process sessions -------------------------------------------------- */

static void hp_output(void *ud, struct capsa_proc *p, int channel, const void *data, size_t len)
{
	(void)p;
	struct hproc *hp = ud;
	if (hp->closing)
		return;
	if (!hp->ops->output(hp, channel, data, len) && hp->reading) {
		hp->reading = false;
		ev_io_set(&hp->hub->loop, &hp->io, capsa_proc_want_write(hp->p) ? EPOLLOUT : 0);
	}
}

static void hp_exit(void *ud, struct capsa_proc *p, const struct capsa_exit *e)
{
	(void)p;
	struct hproc *hp = ud;
	if (hp->closing)
		return;
	hp->closing = true;
	hp->ops->exit(hp, e);
}

const struct capsa_proc_callbacks hub_proc_callbacks = { .output = hp_output, .exit = hp_exit };

struct hproc *hproc_new(struct hub *h, const char *sandbox_id, const struct hproc_ops *ops, void *ud)
{
	struct hproc *hp = xcalloc(1, sizeof(*hp));
	hp->hub = h;
	hp->ops = ops;
	hp->ud = ud;
	hp->io.fd = -1;
	snprintf(hp->sandbox, sizeof(hp->sandbox), "%s", sandbox_id);
	pthread_mutex_lock(&h->mu);
	hp->id = ++h->next_id;
	pthread_mutex_unlock(&h->mu);
	return hp;
}

void hproc_discard(struct hproc *hp)
{
	if (!hp)
		return;
	capsa_proc_free(hp->p);
	if (hp->ops && hp->ops->release)
		hp->ops->release(hp);
	buf_release(&hp->in);
	free(hp);
}

static void hp_free_deferred(void *p)
{
	hproc_discard(p);
}

static void hp_unlink(struct hproc *hp)
{
	for (struct hproc **pp = &hp->hub->procs; *pp; pp = &(*pp)->next)
		if (*pp == hp) {
			*pp = hp->next;
			break;
		}
}

void hproc_close(struct hproc *hp)
{
	if (hp->io.active)
		ev_io_stop(&hp->hub->loop, &hp->io);
	hp->closing = true;
	hp_unlink(hp);
	/* the session is freed after this batch of events: a later event of
	 * the batch may still point at hp */
	ev_defer(&hp->hub->loop, hp_free_deferred, hp);
}

static void hp_feed_stdin(struct hproc *hp)
{
	if (hp->in.len > 0 && capsa_proc_write_room(hp->p) > 0) {
		ssize_t n = capsa_proc_write(hp->p, hp->in.data, hp->in.len, NULL);
		if (n > 0)
			buf_consume(&hp->in, (size_t)n);
	}
	if (hp->in.len == 0 && hp->in_eof && !hp->in_eof_sent) {
		hp->in_eof_sent = true;
		capsa_proc_close_stdin(hp->p, NULL);
	}
}

static void hp_update_events(struct hproc *hp)
{
	if (!hp->io.active)
		return;
	uint32_t ev = (hp->reading ? EPOLLIN : 0) | (capsa_proc_want_write(hp->p) ? EPOLLOUT : 0);
	ev_io_set(&hp->hub->loop, &hp->io, ev);
}

static void hp_broken(struct hproc *hp, struct capsa_error *err)
{
	struct capsa_exit e = { .exit_code = -1 };
	snprintf(e.reason, sizeof(e.reason), "lost");
	snprintf(e.message, sizeof(e.message), "%s", err && err->msg ? err->msg : "the session broke");
	capsa_error_free(err);
	if (!hp->closing) {
		hp->closing = true;
		hp->ops->exit(hp, &e);
	}
	hproc_close(hp);
}

static void on_proc_io(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct hproc *hp = container_of(io, struct hproc, io);
	if (hp->closing)
		return;
	struct capsa_error *err = NULL;
	int r = capsa_proc_process(hp->p, &err);
	if (r == 1 || hp->closing) {
		capsa_error_free(err);
		hproc_close(hp);
		return;
	}
	if (r < 0) {
		hp_broken(hp, err);
		return;
	}
	hp_feed_stdin(hp);
	hp_update_events(hp);
}

static void adopt_call(void *arg)
{
	struct hproc *hp = arg;
	struct hub *h = hp->hub;
	hp->next = h->procs;
	h->procs = hp;
	hp->reading = true;
	if (ev_io_start(&h->loop, &hp->io, capsa_proc_fd(hp->p), EPOLLIN, on_proc_io) < 0) {
		struct capsa_error *err = NULL;
		error_sys(&err, errno, "epoll");
		hp_broken(hp, err);
		return;
	}
	hp_feed_stdin(hp);
	hp_update_events(hp);
	/* frames may have arrived before the fd was registered: look now */
	on_proc_io(&h->loop, &hp->io, EPOLLIN);
}

void hub_adopt(struct hub *h, struct hproc *hp)
{
	hp->pid = capsa_proc_pid(hp->p);
	hub_call(h, adopt_call, hp, false);
}

void hproc_resume(struct hproc *hp)
{
	if (hp->closing || hp->reading)
		return;
	hp->reading = true;
	hp_update_events(hp);
	/* the socket may hold data that already made it readable */
	on_proc_io(&hp->hub->loop, &hp->io, EPOLLIN);
}

void hproc_write(struct hproc *hp, const void *data, size_t n, bool eof)
{
	if (hp->closing)
		return;
	if (n)
		buf_append(&hp->in, data, n);
	hp->in_eof |= eof;
	hp_feed_stdin(hp);
	hp_update_events(hp);
}

struct hproc *hub_find(struct hub *h, uint64_t id)
{
	for (struct hproc *hp = h->procs; hp; hp = hp->next)
		if (hp->id == id && !hp->closing)
			return hp;
	return NULL;
}

/* --- streams' room, routed to their handle ------------------------------
 * A stream's on_room runs on the MHD thread (or whichever thread freed the
 * response): it records the handle's id in a small set and wakes the hub,
 * which calls the handle's room() if it still exists.  Nothing is
 * allocated per notification, and after hub_stop() nothing is recorded. */

struct room_arg {
	struct hub *hub;
	uint64_t id;
	bool watch;
};

struct room_id {
	uint64_t id;
	bool watch;
};

static void on_room(void *p)
{
	struct room_arg *a = p;
	struct hub *h = a->hub;
	pthread_mutex_lock(&h->mu);
	if (!h->stop) {
		bool dup = false;
		for (size_t i = 0; i < h->n_room && !dup; i++)
			dup = h->room[i].id == a->id && h->room[i].watch == a->watch;
		if (!dup) {
			if (h->n_room == h->cap_room) {
				h->cap_room = h->cap_room ? 2 * h->cap_room : 16;
				h->room = xrealloc(h->room, h->cap_room * sizeof(*h->room));
			}
			h->room[h->n_room++] = (struct room_id){ a->id, a->watch };
		}
	}
	pthread_mutex_unlock(&h->mu);
	uint64_t one = 1;
	if (write(h->efd, &one, sizeof(one)) < 0) {
		/* see hub_call */
	}
}

static void run_room(struct hub *h)
{
	for (;;) {
		pthread_mutex_lock(&h->mu);
		if (h->n_room == 0) {
			pthread_mutex_unlock(&h->mu);
			return;
		}
		struct room_id r = h->room[--h->n_room];
		pthread_mutex_unlock(&h->mu);
		if (r.watch) {
			struct hwatch *w = hub_find_watch(h, r.id);
			if (w && w->ops->room)
				w->ops->room(w);
		} else {
			struct hproc *hp = hub_find(h, r.id);
			if (hp && hp->ops->room)
				hp->ops->room(hp);
		}
	}
}

static void watch_stream(struct hub *h, struct stream *s, uint64_t id, bool watch)
{
	struct room_arg *a = xmalloc(sizeof(*a));
	a->hub = h;
	a->id = id;
	a->watch = watch;
	pthread_mutex_lock(&s->mu);
	if (s->on_room_free)
		s->on_room_free(s->on_room_arg);
	s->on_room = on_room;
	s->on_room_arg = a;
	s->on_room_free = free;
	bool gone = s->gone;
	pthread_mutex_unlock(&s->mu);
	if (gone) /* the client left before we watched: say so now */
		on_room(a);
}

void hub_watch_stream(struct hub *h, struct stream *s, uint64_t hproc_id)
{
	watch_stream(h, s, hproc_id, false);
}

void hub_watch_stream_w(struct hub *h, struct stream *s, uint64_t watch_id)
{
	watch_stream(h, s, watch_id, true);
}

void hub_unwatch_stream(struct stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->on_room = NULL;
	pthread_mutex_unlock(&s->mu);
}

/* --- watches ----------------------------------------------------------- */

struct hwatch *hwatch_new(struct hub *h, struct capsa_watch *cw, const struct hwatch_ops *ops, void *ud)
{
	struct hwatch *w = xcalloc(1, sizeof(*w));
	w->hub = h;
	w->w = cw;
	w->ops = ops;
	w->ud = ud;
	w->last_poll_ms = mono_ms();
	pthread_mutex_lock(&h->mu);
	w->id = ++h->next_id;
	pthread_mutex_unlock(&h->mu);
	return w;
}

static void hw_free(void *p)
{
	struct hwatch *w = p;
	capsa_watch_free(w->w);
	if (w->ops->release)
		w->ops->release(w);
	free(w);
}

void hwatch_close(struct hwatch *w)
{
	if (w->closing)
		return;
	w->closing = true;
	if (w->io.active)
		ev_io_stop(&w->hub->loop, &w->io);
	for (struct hwatch **pp = &w->hub->watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	ev_defer(&w->hub->loop, hw_free, w);
}

static void hw_event(void *ud, const struct capsa_watch_event *ev)
{
	struct hwatch *w = ud;
	if (w->closing)
		return;
	if (!w->ops->event(w, ev))
		w->blocked = true;
}

static void on_watch_io(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct hwatch *w = container_of(io, struct hwatch, io);
	if (w->closing)
		return;
	struct capsa_error *err = NULL;
	int r = capsa_watch_process(w->w, hw_event, w, &err);
	if (r != 0) {
		if (!w->closing)
			w->ops->end(w, r < 0 && err ? err->msg : NULL);
		capsa_error_free(err);
		hwatch_close(w);
		return;
	}
	if (w->blocked && w->reading) {
		w->reading = false;
		ev_io_set(&w->hub->loop, &w->io, 0);
	}
}

static void adopt_watch_call(void *arg)
{
	struct hwatch *w = arg;
	struct hub *h = w->hub;
	w->next = h->watches;
	h->watches = w;
	w->reading = true;
	if (ev_io_start(&h->loop, &w->io, capsa_watch_fd(w->w), EPOLLIN, on_watch_io) < 0) {
		w->ops->end(w, "epoll failed");
		hwatch_close(w);
		return;
	}
	on_watch_io(&h->loop, &w->io, EPOLLIN);
}

void hub_adopt_watch(struct hub *h, struct hwatch *w)
{
	hub_call(h, adopt_watch_call, w, false);
}

void hwatch_resume(struct hwatch *w)
{
	if (w->closing)
		return;
	w->blocked = false;
	if (!w->reading) {
		w->reading = true;
		ev_io_set(&w->hub->loop, &w->io, EPOLLIN);
		on_watch_io(&w->hub->loop, &w->io, EPOLLIN);
	}
}

struct hwatch *hub_find_watch(struct hub *h, uint64_t id)
{
	for (struct hwatch *w = h->watches; w; w = w->next)
		if (w->id == id && !w->closing)
			return w;
	return NULL;
}

struct hwatch *hub_watches(struct hub *h)
{
	return h->watches;
}

/* --- tunnel splices ---------------------------------------------------- */

#define SPLICE_BUF (64 * 1024)

struct half {
	int from, to;
	char buf[SPLICE_BUF];
	size_t len, off;
	bool eof, shut;
};

struct splice {
	struct hub *hub;
	struct ev_io cio, tio;
	int cfd, tfd;
	struct half up, down; /* client -> tunnel, tunnel -> client */
	char sandbox[65];
	void (*done)(void *);
	void *done_arg;
	bool closing;
	struct splice *next;
};

static void splice_free(void *p)
{
	struct splice *s = p;
	close(s->tfd);
	/* the client side belongs to whoever gave it (an HTTP upgrade) */
	if (s->done)
		s->done(s->done_arg);
	else
		close(s->cfd);
	free(s);
}

static void splice_close(struct splice *s)
{
	if (s->closing)
		return;
	s->closing = true;
	ev_io_stop(&s->hub->loop, &s->cio);
	ev_io_stop(&s->hub->loop, &s->tio);
	for (struct splice **pp = &s->hub->splices; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	ev_defer(&s->hub->loop, splice_free, s);
}

/* Moves what it can in one direction; false when the splice must end.
 * (The bytes are counted by the sandbox's supervisor, which relays the
 * other end of the tunnel: docs/metrics.md.) */
static bool half_pump(struct half *h)
{
	for (;;) {
		if (h->off < h->len) {
			ssize_t w = write(h->to, h->buf + h->off, h->len - h->off);
			if (w < 0)
				return errno == EAGAIN || errno == EINTR;
			h->off += (size_t)w;
			continue;
		}
		h->off = h->len = 0;
		if (h->eof) {
			if (!h->shut) {
				shutdown(h->to, SHUT_WR);
				h->shut = true;
			}
			return true;
		}
		ssize_t r = read(h->from, h->buf, sizeof(h->buf));
		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		if (r == 0) {
			h->eof = true;
			continue;
		}
		h->len = (size_t)r;
	}
}

static void splice_update(struct splice *s)
{
	bool ok = half_pump(&s->up) && half_pump(&s->down);
	if (!ok || (s->up.shut && s->down.shut)) {
		splice_close(s);
		return;
	}
	/* each fd: readable while its half has room, writable while the other half has bytes */
	uint32_t c = (!s->up.eof && s->up.len == 0 ? EPOLLIN : 0) | (s->down.off < s->down.len ? EPOLLOUT : 0);
	uint32_t t = (!s->down.eof && s->down.len == 0 ? EPOLLIN : 0) | (s->up.off < s->up.len ? EPOLLOUT : 0);
	ev_io_set(&s->hub->loop, &s->cio, c | EPOLLRDHUP);
	ev_io_set(&s->hub->loop, &s->tio, t | EPOLLRDHUP);
}

static void on_splice_c(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct splice *s = container_of(io, struct splice, cio);
	if (!s->closing)
		splice_update(s);
}

static void on_splice_t(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct splice *s = container_of(io, struct splice, tio);
	if (!s->closing)
		splice_update(s);
}

static void splice_call(void *arg)
{
	struct splice *s = arg;
	struct hub *h = s->hub;
	s->next = h->splices;
	h->splices = s;
	if (ev_io_start(&h->loop, &s->cio, s->cfd, EPOLLIN | EPOLLRDHUP, on_splice_c) < 0 ||
	    ev_io_start(&h->loop, &s->tio, s->tfd, EPOLLIN | EPOLLRDHUP, on_splice_t) < 0) {
		splice_close(s);
		return;
	}
	splice_update(s);
}

void hub_splice(struct hub *h, int client_fd, int tunnel_fd, const char *sandbox_id, void (*done)(void *),
		void *done_arg)
{
	struct splice *s = xcalloc(1, sizeof(*s));
	s->hub = h;
	s->cfd = client_fd;
	s->tfd = tunnel_fd;
	fd_set_nonblock(client_fd, true);
	fd_set_nonblock(tunnel_fd, true);
	s->up.from = client_fd;
	s->up.to = tunnel_fd;
	s->down.from = tunnel_fd;
	s->down.to = client_fd;
	snprintf(s->sandbox, sizeof(s->sandbox), "%s", sandbox_id);
	s->done = done;
	s->done_arg = done_arg;
	hub_call(h, splice_call, s, false);
}

/* --- the thread -------------------------------------------------------- */

static void *hub_main(void *p)
{
	struct hub *h = p;
	ev_run(&h->loop);
	return NULL;
}

/* Ends every handle as if its process had been lost: requests waiting on
 * them are answered and their streams closed. */
static void stop_call(void *arg)
{
	struct hub *h = arg;
	while (h->procs) {
		struct hproc *hp = h->procs;
		if (!hp->closing) {
			struct capsa_exit e = { .exit_code = -1 };
			snprintf(e.reason, sizeof(e.reason), "lost");
			snprintf(e.message, sizeof(e.message), "the server is stopping (kept processes run on)");
			hp->closing = true;
			hp->ops->exit(hp, &e);
		}
		hproc_close(hp);
	}
	while (h->watches) {
		struct hwatch *w = h->watches;
		if (!w->closing)
			w->ops->end(w, "the server is stopping");
		hwatch_close(w);
	}
	while (h->splices)
		splice_close(h->splices);
	ev_break(&h->loop);
}

int hub_start(struct server *srv, struct capsa_error **err)
{
	struct hub *h = xcalloc(1, sizeof(*h));
	int e;
	h->srv = srv;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->loop.epfd = -1;
	h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->efd < 0 || ev_init(&h->loop) < 0 || ev_io_start(&h->loop, &h->eio, h->efd, EPOLLIN, on_eventfd) < 0) {
		error_sys(err, errno, "start the I/O hub");
		goto fail;
	}
	e = pthread_create(&h->thread, NULL, hub_main, h);
	if (e) {
		error_sys(err, e, "start the I/O hub thread");
		goto fail;
	}
	h->started = true;
	srv->hub = h;
	return 0;
fail:
	if (h->efd >= 0)
		close(h->efd);
	ev_release(&h->loop);
	free(h);
	return -1;
}

void hub_stop(struct server *srv)
{
	struct hub *h = srv->hub;
	if (!h || !h->started)
		return;
	hub_call(h, stop_call, h, true);
	pthread_join(h->thread, NULL);
	h->started = false;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_mutex_unlock(&h->mu);
	/* deferred frees run here; calls queued since are dropped with the hub */
	ev_release(&h->loop);
}

void hub_free(struct server *srv)
{
	struct hub *h = srv->hub;
	if (!h)
		return;
	hub_stop(srv);
	for (struct call *c = h->head, *next; c; c = next) {
		next = c->next;
		if (!c->wait)
			free(c);
	}
	close(h->efd);
	free(h->room);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cond);
	free(h);
	srv->hub = NULL;
}
