/* supervisor.h: capsa-supervisor, the host-side process of one sandbox.
 *
 * It owns the agent channel, relays client sessions over its control
 * socket, writes the main process's log, enforces stop/kill/pause and the
 * timeouts, and when the sandbox ends records how (the exit file), removes
 * the cgroup and hands the database bookkeeping to `capsa _finalize` (or to
 * the creator, when it is still attached and said it will do it).
 *
 * It never touches the state database itself: it is a musl static binary
 * with a footprint of a few hundred kilobytes, and its only durable output
 * is the exit file, which reconciliation applies if nobody else did.
 */
#ifndef CAPSA_SUPERVISOR_H
#define CAPSA_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ev/ev.h"
#include "linux/cgroup.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "sandbox/logfile.h"

#define MAIN_STREAM PROTO_MAIN_STREAM
/* A client whose unsent output exceeds this is disconnected: credit keeps
 * well-behaved clients far below it. */
#define CLIENT_OUT_CAP (8u << 20)
/* Attached clients slower than this stop the main process's output. */
#define ATTACH_BACKLOG (1u << 20)

struct client;

struct route {
	struct route *next;
	uint32_t agent_stream;
	struct client *client; /* NULL once the client left */
	uint32_t client_stream;
	bool detached; /* the client leaves once the process runs */
};

struct client {
	struct client *next;
	struct proto_conn conn;
	struct ev_io io;
	bool creator;
	unsigned attach;	/* ATTACH_* while attached to the main process */
	uint32_t attach_stream;
	bool wants_final;	/* send FINAL when the sandbox ends */
	bool closing;
};

enum sup_state { SUP_STARTING, SUP_RUNNING, SUP_PAUSED, SUP_ENDING };

struct sup {
	struct ev_loop loop;
	struct proto_sandbox spec;
	enum sup_state state;
	int run_fd, lock_fd, log_dirfd;
	pid_t init_pid;
	struct linux_cgroup *cg;
	uint64_t oom_base;
	struct proto_conn agent;
	struct ev_io agent_io;
	bool agent_hello;
	int listen_fd;
	struct ev_io listen_io;
	int sigfd;
	struct ev_io sig_io;
	struct client *clients;
	struct client *creator;
	struct route *routes;
	uint32_t next_stream;
	struct logw log;
	uint32_t main_owed[3]; /* output credit not yet returned to the agent */
	bool main_started, main_exited;
	struct proto_exit main_exit;
	bool stop_requested, kill_requested;
	const char *end_reason; /* set by timers: idle_timeout, max_duration */
	struct ev_timer stop_timer;
	struct ev_timer deadline_timer;
	struct ev_timer idle_timer;
	int64_t last_activity;
	int64_t started_at;
};

extern struct sup sup;

/* clients.c */
void client_accept(struct ev_loop *l, struct ev_io *io, uint32_t revents);
struct client *client_add(int fd, bool creator);
/* Registers the client with the loop and handles frames already buffered. */
void client_activate(struct client *c);
void client_send(struct client *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);
void client_send_error(struct client *c, uint32_t stream, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void client_drop(struct client *c);
void clients_broadcast_final(const struct buf *exit_tlv);
void route_from_agent(const struct proto_hdr *h, const uint8_t *payload);
void main_output_credit(void);
void sup_touch(void);

/* main.c */
void agent_send(uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);
void sup_stop(int64_t timeout_ms, int sig, const char *reason);
void sup_kill_all(void);
void sup_arm_timers(void);

#endif
