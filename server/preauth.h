/* preauth.h: the guard on TCP connections that have not shown the API
 * token yet (preauth.c).
 *
 * A TCP connection is unauthenticated from its accept until the headers of
 * a request carrying a valid token are complete; the token is in those
 * headers, so nothing can be known about a client before that.  While it
 * is unauthenticated a connection is bounded three ways:
 *   - a header deadline: the headers of its first request must be
 *     complete within header_timeout_ms of the accept, however the bytes
 *     dribble in (libmicrohttpd's own timeout is an idle one, restarted by
 *     every byte);
 *   - per peer (an IPv4 address, or an IPv6 /64): at most max_per_peer;
 *   - overall, over every TCP listener: at most max_total, which the
 *     server keeps below each listener's connection limit, so that a
 *     client with the token always finds a free slot.
 * Over a cap the OLDEST unauthenticated connection (of that peer, or of
 * all) is closed, never the new one: a slow client has had its chance,
 * and refusing the newest would let an attacker who keeps the caps full
 * lock every new client out until the deadline, then fill them again.
 * An authenticated connection leaves the guard and keeps its slot
 * (keep-alive); the unix socket is trusted by file permission and never
 * enters it.
 *
 * Closing is shutdown(2) of the connection's socket, from whichever thread
 * finds the cause (a listener's thread at accept, the ticker at a
 * deadline); libmicrohttpd then reads EOF and frees the connection on its
 * own thread.  That is safe because libmicrohttpd reports a connection
 * closed (preauth_remove, under the guard's lock) before it closes the
 * socket, so a socket in the guard is never a reused descriptor.
 */
#ifndef CAPSA_SERVER_PREAUTH_H
#define CAPSA_SERVER_PREAUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct metrics;
struct preauth;
struct preauth_conn;

/* Why the guard closed a connection (the label of its /metrics counter). */
enum preauth_reason {
	PREAUTH_HEADER_TIMEOUT,
	PREAUTH_PEER_LIMIT,
	PREAUTH_LIMIT,
	PREAUTH_N_REASONS,
};
extern const char *const preauth_reason_names[PREAUTH_N_REASONS];

struct preauth *preauth_new(int max_total, int max_per_peer, int64_t header_timeout_ms, struct metrics *m);
void preauth_free(struct preauth *pa);

/* A connection was accepted on a TCP listener (fd, its peer): tracked,
 * after closing the oldest ones a cap asks for.  The result is the
 * connection's handle until preauth_remove(). */
struct preauth_conn *preauth_add(struct preauth *pa, int fd, const struct sockaddr *peer);
/* libmicrohttpd is done with the connection (before it closes fd). */
void preauth_remove(struct preauth *pa, struct preauth_conn *c);
/* A request on c showed a valid token: c leaves the guard.  False when the
 * guard closed c already (its deadline passed as the headers completed). */
bool preauth_authenticated(struct preauth *pa, struct preauth_conn *c);
/* Whether c has shown a valid token (called on c's listener thread). */
bool preauth_is_authenticated(const struct preauth_conn *c);
/* Closes the connections whose header deadline passed (now: mono_ms()). */
void preauth_sweep(struct preauth *pa, int64_t now_ms);

#endif
