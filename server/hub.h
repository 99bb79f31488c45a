/* hub.h: the event loop that carries long-lived sandbox I/O for the API:
 * process sessions (E2B commands and PTYs, native exec streams, the code
 * interpreter), directory watches and tunnels.
 *
 * Workers do the blocking part (starting or attaching a session, opening a
 * watch or a tunnel: each a round trip to the supervisor) with their own
 * context, then hand the handle to the hub, whose single thread from then on
 * is the only one to touch it: it polls the handle's fd, turns what arrives
 * into bytes on an HTTP stream, and frees the handle when its process ends
 * or its client leaves.  Other threads reach hub objects only through
 * hub_call(), by id, so an object that went away in the meantime is simply
 * not found.
 *
 * Backpressure: when a stream's queue is full the hub stops reading the
 * handle's fd until the client has read (stream on_room); the supervisor
 * then stops returning the process's output credit and the process blocks in
 * write(2).
 */
#ifndef CAPSA_SERVER_HUB_H
#define CAPSA_SERVER_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/files.h"
#include "capsa/sandbox.h"
#include "capsa/session.h"
#include "lib/ev/ev.h"
#include "util/str.h"

struct server;
struct hub;
struct stream;
struct hproc;

int hub_start(struct server *srv, struct capsa_error **err);
/* Ends every handle (kept processes run on: only their sessions go),
 * answering what waits on them, and joins the thread.  Stream callbacks
 * that arrive afterwards are ignored; hub_free() then frees the hub, once
 * nothing can call into it (the HTTP daemons are stopped). */
void hub_stop(struct server *srv);
void hub_free(struct server *srv);

/* Runs fn(arg) on the hub thread; with wait, returns once it ran. */
void hub_call(struct hub *h, void (*fn)(void *arg), void *arg, bool wait);

/* What a process session's output becomes.  All calls on the hub thread. */
struct hproc_ops {
	/* Output bytes of a channel (len 0: that channel's end of file).
	 * Returns false when the sink is full: the hub stops reading until
	 * hproc_resume(). */
	bool (*output)(struct hproc *hp, int channel, const void *data, size_t len);
	/* The process ended (or the session broke: e has reason "lost" and
	 * message the error).  The handle is freed right after. */
	void (*exit)(struct hproc *hp, const struct capsa_exit *e);
	/* The sink's room came back, or its client left (stream_gone). */
	void (*room)(struct hproc *hp);
	/* Frees ud. */
	void (*release)(struct hproc *hp);
};

struct hproc {
	struct hub *hub;
	uint64_t id;
	struct capsa_proc *p;
	const struct hproc_ops *ops;
	void *ud;
	char sandbox[65];
	pid_t pid;
	struct ev_io io;
	bool reading;	 /* EPOLLIN wanted */
	bool closing;
	struct hproc *next;
	/* stdin fed from the hub (one-shot exec, the code interpreter) */
	struct buf in;
	bool in_eof, in_eof_sent;
};

/* A process session with the hub's callbacks, for capsa_proc_start() and
 * capsa_proc_attach() (pass hub_proc_callbacks and the hproc as ud). */
extern const struct capsa_proc_callbacks hub_proc_callbacks;
struct hproc *hproc_new(struct hub *h, const char *sandbox_id, const struct hproc_ops *ops, void *ud);
/* Gives the started session (hp->p set) to the hub.  Any thread; after
 * this only the hub thread touches hp. */
void hub_adopt(struct hub *h, struct hproc *hp);
/* Frees a handle that was never adopted. */
void hproc_discard(struct hproc *hp);
/* Hub thread: read again after output() returned false. */
void hproc_resume(struct hproc *hp);
/* Hub thread: queue stdin (and end of file) for the process. */
void hproc_write(struct hproc *hp, const void *data, size_t n, bool eof);
/* Hub thread: end the session now (the process runs on if it is kept);
 * exit() is not called. */
void hproc_close(struct hproc *hp);
/* Hub thread: the live handle with this id, or NULL. */
struct hproc *hub_find(struct hub *h, uint64_t id);

/* A stream's on_room, routed to the hub thread as a call to hp->ops->room
 * of the handle with that id (if it still exists). */
void hub_watch_stream(struct hub *h, struct stream *s, uint64_t hproc_id);
void hub_watch_stream_w(struct hub *h, struct stream *s, uint64_t watch_id);
void hub_unwatch_stream(struct stream *s);

/* --- directory watches -------------------------------------------------- */

struct hwatch;
struct hwatch_ops {
	/* An event; false when the sink is full (reading stops until
	 * hwatch_resume). */
	bool (*event)(struct hwatch *w, const struct capsa_watch_event *ev);
	/* The watch ended (directory removed, sandbox ended) or broke. */
	void (*end)(struct hwatch *w, const char *error);
	void (*room)(struct hwatch *w);
	void (*release)(struct hwatch *w);
};

struct hwatch {
	struct hub *hub;
	uint64_t id;
	struct capsa_watch *w;
	const struct hwatch_ops *ops;
	void *ud;
	struct ev_io io;
	bool reading, blocked, closing;
	struct hwatch *next;
	int64_t last_poll_ms; /* polled watchers: last GetWatcherEvents */
};

struct hwatch *hwatch_new(struct hub *h, struct capsa_watch *w, const struct hwatch_ops *ops, void *ud);
void hub_adopt_watch(struct hub *h, struct hwatch *w);
void hwatch_resume(struct hwatch *w);
void hwatch_close(struct hwatch *w);
struct hwatch *hub_find_watch(struct hub *h, uint64_t id);
/* Hub thread: every live watch, for sweeping idle polled watchers. */
struct hwatch *hub_watches(struct hub *h);

/* --- tunnels ------------------------------------------------------------ */

/* Splices a client socket and a tunnel fd (both owned by the hub from
 * now on) until both directions end; bytes are counted in the server's
 * metrics under sandbox_id. */
void hub_splice(struct hub *h, int client_fd, int tunnel_fd, const char *sandbox_id, void (*done)(void *), void *done_arg);

#endif
