/* preauth.c: the guard on unauthenticated TCP connections (preauth.h).
 *
 * The unauthenticated connections are one list in accept order, oldest
 * first, under one lock shared by every listener thread and the ticker:
 * the overall cap and the deadline look at its head, the per-peer cap
 * walks it (it holds at most max_total entries).  A connection leaves the
 * list when it authenticates, when the guard closes it, or when
 * libmicrohttpd frees it, whichever comes first; only the last frees it.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "preauth.h"
#include "util/str.h"
#include "util/util.h"

const char *const preauth_reason_names[PREAUTH_N_REASONS] = {
	[PREAUTH_HEADER_TIMEOUT] = "header_timeout",
	[PREAUTH_PEER_LIMIT] = "peer_limit",
	[PREAUTH_LIMIT] = "limit",
};

struct preauth_conn {
	struct preauth_conn *prev, *next;
	int fd;
	unsigned char peer[16]; /* IPv4 as ::ffff:a.b.c.d; IPv6 as its /64, the rest zero */
	int64_t accepted_ms;
	bool listed;	/* in the list: unauthenticated and open */
	bool closed;	/* shut down by the guard */
	bool authed;	/* showed a valid token */
};

struct preauth {
	pthread_mutex_t mu;
	struct preauth_conn *head, *tail;
	int n;
	int max_total, max_per_peer;
	int64_t header_timeout_ms;
	struct metrics *m;
};

struct preauth *preauth_new(int max_total, int max_per_peer, int64_t header_timeout_ms, struct metrics *m)
{
	struct preauth *pa = xcalloc(1, sizeof(*pa));
	pthread_mutex_init(&pa->mu, NULL);
	pa->max_total = max_total;
	pa->max_per_peer = max_per_peer;
	pa->header_timeout_ms = header_timeout_ms;
	pa->m = m;
	return pa;
}

/* Every connection is gone by now (the listeners stopped first); what is
 * left is only the lock. */
void preauth_free(struct preauth *pa)
{
	if (!pa)
		return;
	pthread_mutex_destroy(&pa->mu);
	free(pa);
}

/* One host commonly holds a whole IPv6 /64, so that is one peer. */
static void peer_key(const struct sockaddr *sa, unsigned char key[16])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	memset(key, 0, 16);
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		memcpy(key, mapped, sizeof(mapped));
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		memcpy(key, a, memcmp(a, mapped, sizeof(mapped)) == 0 ? 16 : 8);
	}
}

static void unlink_locked(struct preauth *pa, struct preauth_conn *c)
{
	if (!c->listed)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		pa->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		pa->tail = c->prev;
	c->prev = c->next = NULL;
	c->listed = false;
	pa->n--;
	atomic_store(&pa->m->unauth_open, pa->n);
}

/* Shuts c's socket down: libmicrohttpd reads EOF and frees c later, on its
 * own thread.  The fd is still c's socket: see preauth.h. */
static void close_locked(struct preauth *pa, struct preauth_conn *c, enum preauth_reason why)
{
	shutdown(c->fd, SHUT_RDWR);
	c->closed = true;
	unlink_locked(pa, c);
	atomic_fetch_add(&pa->m->unauth_closed[why], 1);
}

struct preauth_conn *preauth_add(struct preauth *pa, int fd, const struct sockaddr *peer)
{
	struct preauth_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	peer_key(peer, c->peer);
	pthread_mutex_lock(&pa->mu);
	struct preauth_conn *oldest_of_peer = NULL;
	int of_peer = 0;
	for (struct preauth_conn *p = pa->head; p; p = p->next)
		if (memcmp(p->peer, c->peer, sizeof(c->peer)) == 0 && of_peer++ == 0)
			oldest_of_peer = p;
	if (of_peer >= pa->max_per_peer)
		close_locked(pa, oldest_of_peer, PREAUTH_PEER_LIMIT);
	if (pa->n >= pa->max_total)
		close_locked(pa, pa->head, PREAUTH_LIMIT);
	c->accepted_ms = mono_ms();
	c->prev = pa->tail;
	if (pa->tail)
		pa->tail->next = c;
	else
		pa->head = c;
	pa->tail = c;
	c->listed = true;
	pa->n++;
	atomic_store(&pa->m->unauth_open, pa->n);
	pthread_mutex_unlock(&pa->mu);
	return c;
}

void preauth_remove(struct preauth *pa, struct preauth_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&pa->mu);
	unlink_locked(pa, c);
	pthread_mutex_unlock(&pa->mu);
	free(c);
}

bool preauth_authenticated(struct preauth *pa, struct preauth_conn *c)
{
	if (c->authed) /* a later request on a kept-alive connection */
		return true;
	pthread_mutex_lock(&pa->mu);
	bool open = !c->closed;
	if (open) {
		unlink_locked(pa, c);
		c->authed = true;
	}
	pthread_mutex_unlock(&pa->mu);
	return open;
}

bool preauth_is_authenticated(const struct preauth_conn *c)
{
	return c && c->authed;
}

void preauth_sweep(struct preauth *pa, int64_t now_ms)
{
	pthread_mutex_lock(&pa->mu);
	/* accepted_ms is taken under the lock, so the list is in its order */
	while (pa->head && now_ms - pa->head->accepted_ms >= pa->header_timeout_ms)
		close_locked(pa, pa->head, PREAUTH_HEADER_TIMEOUT);
	pthread_mutex_unlock(&pa->mu);
}
