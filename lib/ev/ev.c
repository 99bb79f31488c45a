/* ev.c: the event loop. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "ev.h"
#include "util/str.h"

int ev_init(struct ev_loop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -1 : 0;
}

void ev_release(struct ev_loop *l)
{
	for (size_t i = 0; i < l->n_deferred; i++)
		l->deferred[i].fn(l->deferred[i].arg);
	free(l->deferred);
	free(l->stopped);
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int ev_io_start(struct ev_loop *l, struct ev_io *io, int fd, uint32_t events, ev_io_cb cb)
{
	struct epoll_event ee = { .events = events, .data.ptr = io };
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ee) < 0)
		return -1;
	io->active = true;
	return 0;
}

int ev_io_set(struct ev_loop *l, struct ev_io *io, uint32_t events)
{
	if (!io->active || io->events == events)
		return 0;
	struct epoll_event ee = { .events = events, .data.ptr = io };
	io->events = events;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ee);
}

void ev_io_stop(struct ev_loop *l, struct ev_io *io)
{
	if (!io->active)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->active = false;
	if (l->n_stopped == l->cap_stopped) {
		l->cap_stopped = l->cap_stopped ? 2 * l->cap_stopped : 16;
		l->stopped = xrealloc(l->stopped, l->cap_stopped * sizeof(*l->stopped));
	}
	l->stopped[l->n_stopped++] = io;
}

void ev_timer_stop(struct ev_loop *l, struct ev_timer *t)
{
	if (!t->active)
		return;
	for (struct ev_timer **pp = &l->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->active = false;
}

void ev_timer_start(struct ev_loop *l, struct ev_timer *t, int64_t delay_ms, ev_timer_cb cb)
{
	ev_timer_stop(l, t);
	t->at_ms = mono_ms() + (delay_ms < 0 ? 0 : delay_ms);
	t->cb = cb;
	t->active = true;
	struct ev_timer **pp = &l->timers;
	while (*pp && (*pp)->at_ms <= t->at_ms)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
}

void ev_defer(struct ev_loop *l, void (*fn)(void *), void *arg)
{
	if (l->n_deferred == l->cap_deferred) {
		l->cap_deferred = l->cap_deferred ? 2 * l->cap_deferred : 16;
		l->deferred = xrealloc(l->deferred, l->cap_deferred * sizeof(*l->deferred));
	}
	l->deferred[l->n_deferred++] = (struct ev_deferred){ fn, arg };
}

void ev_break(struct ev_loop *l)
{
	l->stop = true;
}

static bool was_stopped(struct ev_loop *l, struct ev_io *io)
{
	for (size_t i = 0; i < l->n_stopped; i++)
		if (l->stopped[i] == io)
			return true;
	return false;
}

static void end_batch(struct ev_loop *l)
{
	l->n_stopped = 0;
	/* deferred frees may defer more: run until quiet */
	while (l->n_deferred) {
		size_t n = l->n_deferred;
		struct ev_deferred *d = l->deferred;
		l->deferred = NULL;
		l->n_deferred = l->cap_deferred = 0;
		for (size_t i = 0; i < n; i++)
			d[i].fn(d[i].arg);
		free(d);
	}
}

int ev_run(struct ev_loop *l)
{
	struct epoll_event evs[64];
	l->stop = false;
	while (!l->stop) {
		/* work deferred before the loop started (or by a timer) runs
		 * before we block */
		end_batch(l);
		int timeout = -1;
		if (l->timers) {
			int64_t d = l->timers->at_ms - mono_ms();
			timeout = d < 0 ? 0 : d > 3600000 ? 3600000 : (int)d;
		}
		int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (int i = 0; i < n && !l->stop; i++) {
			struct ev_io *io = evs[i].data.ptr;
			if (!io->active || was_stopped(l, io))
				continue;
			io->cb(l, io, evs[i].events);
		}
		int64_t now = mono_ms();
		while (!l->stop && l->timers && l->timers->at_ms <= now) {
			struct ev_timer *t = l->timers;
			l->timers = t->next;
			t->active = false;
			t->cb(l, t);
		}
		end_batch(l);
	}
	end_batch(l);
	return 0;
}
