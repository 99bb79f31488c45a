/* relay.c: a tunnelled connection once both of its sockets are here: the
 * host side (accepted on a published port, or handed over by a client) and
 * the sandbox side (connected by the agent inside the sandbox's network
 * namespace and passed to us with SCM_RIGHTS).
 *
 * Bytes move between them with splice(2) through one pipe per direction,
 * so they never enter user space; each direction holds at most RELAY_PIPE
 * bytes, and a direction whose reader is slow stops reading its writer
 * (TCP flow control does the rest) without stalling any other connection.
 * A read EOF becomes a shutdown(SHUT_WR) of the other socket once the pipe
 * is empty; the connection is over when both directions are, or on an
 * error.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor.h"
#include "util/fs.h"

#define RELAY_PIPE (256u * 1024u)

struct relay_half {
	int pr, pw;	 /* the pipe */
	size_t queued;	 /* bytes in it */
	bool eof;	 /* nothing more to read (end, or the reader failed) */
	bool shut;	 /* all delivered and the writer shut down, or undeliverable */
};

struct relay;

struct relay_side {
	struct ev_io io;
	struct relay *r;
};

struct relay {
	struct relay *next;
	int fd[2];	/* 0: host, 1: sandbox */
	struct relay_side side[2];
	struct relay_half half[2]; /* half[i]: read from fd[i], written to fd[1 - i] */
	struct listener *l;
	bool dead;
};

static struct relay *relays;
static size_t n_relays;

size_t relay_count(void)
{
	return n_relays;
}

static void relay_free(void *arg)
{
	free(arg);
}

static void relay_close(struct relay *r)
{
	if (r->dead)
		return;
	r->dead = true;
	for (int i = 0; i < 2; i++) {
		ev_io_stop(&sup.loop, &r->side[i].io);
		close(r->fd[i]);
		close(r->half[i].pr);
		close(r->half[i].pw);
	}
	for (struct relay **pp = &relays; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	n_relays--;
	ev_defer(&sup.loop, relay_free, r);
}

/* Moves what it can in direction i.  A reset on the reading side ends the
 * direction like an EOF (what was read is still delivered); a failure on
 * the writing side makes the rest undeliverable. */
static void pump(struct relay *r, int i)
{
	struct relay_half *h = &r->half[i];
	int from = r->fd[i], to = r->fd[1 - i];
	if (h->shut)
		return;
	for (int rounds = 0; rounds < 16; rounds++) {
		bool progress = false;
		if (h->queued > 0) {
			ssize_t n = splice(h->pr, NULL, to, NULL, h->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				h->queued -= (size_t)n;
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				h->eof = h->shut = true;
				h->queued = 0;
				return;
			}
		}
		if (!h->eof && h->queued < RELAY_PIPE) {
			ssize_t n = splice(from, NULL, h->pw, NULL, RELAY_PIPE - h->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				h->queued += (size_t)n;
				if (i == 0)
					sup_net_rx += (uint64_t)n;
				else
					sup_net_tx += (uint64_t)n;
				if (r->l) {
					if (i == 0)
						r->l->port.rx += (uint64_t)n;
					else
						r->l->port.tx += (uint64_t)n;
				}
				progress = true;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				h->eof = true;
				progress = true;
			}
		}
		if (!progress)
			break;
	}
	if (h->eof && h->queued == 0 && !h->shut) {
		shutdown(to, SHUT_WR);
		h->shut = true;
	}
}

static void interest(struct relay *r)
{
	for (int j = 0; j < 2; j++) {
		uint32_t ev = 0;
		if (!r->half[j].eof && r->half[j].queued < RELAY_PIPE)
			ev |= EPOLLIN;
		if (r->half[1 - j].queued > 0 && !r->half[1 - j].shut)
			ev |= EPOLLOUT;
		/* nothing left to do with this socket: epoll would keep
		 * reporting its hangup */
		if (!ev && r->half[j].eof && r->half[1 - j].shut)
			ev_io_stop(&sup.loop, &r->side[j].io);
		else
			ev_io_set(&sup.loop, &r->side[j].io, ev);
	}
}

static void on_relay(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	struct relay_side *sd = container_of(io, struct relay_side, io);
	struct relay *r = sd->r;
	int j = (int)(sd - r->side);
	if (r->dead)
		return;
	if (revents & (EPOLLHUP | EPOLLERR)) {
		/* the peer of this socket is gone both ways: whatever is still
		 * for it cannot be delivered; what came from it still is */
		struct relay_half *to_it = &r->half[1 - j];
		to_it->eof = to_it->shut = true;
		to_it->queued = 0;
	}
	pump(r, 0);
	pump(r, 1);
	sup_touch();
	if (r->half[0].shut && r->half[1].shut) {
		relay_close(r);
		return;
	}
	interest(r);
}

int relay_start(int host_fd, int sandbox_fd, struct listener *lst)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	r->fd[0] = host_fd;
	r->fd[1] = sandbox_fd;
	r->l = lst;
	for (int i = 0; i < 2; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
			int e = errno;
			for (int k = 0; k < i; k++) {
				close(r->half[k].pr);
				close(r->half[k].pw);
			}
			free(r);
			errno = e;
			return -1;
		}
		fcntl(p[1], F_SETPIPE_SZ, RELAY_PIPE);
		r->half[i].pr = p[0];
		r->half[i].pw = p[1];
		fd_set_nonblock(r->fd[i], true);
	}
	r->next = relays;
	relays = r;
	n_relays++;
	for (int i = 0; i < 2; i++) {
		r->side[i].r = r;
		ev_io_start(&sup.loop, &r->side[i].io, r->fd[i], EPOLLIN, on_relay);
	}
	return 0;
}
