/* ev.h: a small epoll event loop (fd readiness, one-shot timers, deferred
 * frees), for the agent and the supervisor.  Single-threaded, libc only.
 *
 * Deferred work (ev_defer) runs after the current batch of events, and
 * before the loop blocks again: it also serves to coalesce writes queued
 * by several callbacks into one flush.
 *
 * Objects that embed an ev_io may be torn down from inside a callback:
 * ev_io_stop() it, then hand the memory to ev_defer() so it is freed after
 * the current batch of events, never while a later event of the same batch
 * still points at it.
 */
#ifndef CAPSA_EV_H
#define CAPSA_EV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct ev_loop;
struct ev_io;
struct ev_timer;

typedef void (*ev_io_cb)(struct ev_loop *l, struct ev_io *io, uint32_t revents);
typedef void (*ev_timer_cb)(struct ev_loop *l, struct ev_timer *t);

struct ev_io {
	int fd;
	uint32_t events;
	ev_io_cb cb;
	bool active;
};

struct ev_timer {
	int64_t at_ms; /* CLOCK_MONOTONIC */
	ev_timer_cb cb;
	struct ev_timer *next;
	bool active;
};

struct ev_deferred {
	void (*fn)(void *);
	void *arg;
};

struct ev_loop {
	int epfd;
	bool stop;
	struct ev_timer *timers; /* sorted by at_ms */
	struct ev_io **stopped;	 /* stopped during the current batch */
	size_t n_stopped, cap_stopped;
	struct ev_deferred *deferred;
	size_t n_deferred, cap_deferred;
};

int ev_init(struct ev_loop *l);
void ev_release(struct ev_loop *l);
int ev_io_start(struct ev_loop *l, struct ev_io *io, int fd, uint32_t events, ev_io_cb cb);
int ev_io_set(struct ev_loop *l, struct ev_io *io, uint32_t events);
void ev_io_stop(struct ev_loop *l, struct ev_io *io);
void ev_timer_start(struct ev_loop *l, struct ev_timer *t, int64_t delay_ms, ev_timer_cb cb);
void ev_timer_stop(struct ev_loop *l, struct ev_timer *t);
void ev_defer(struct ev_loop *l, void (*fn)(void *), void *arg);
/* Runs until ev_break(); returns -1 only if epoll itself fails. */
int ev_run(struct ev_loop *l);
void ev_break(struct ev_loop *l);

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
