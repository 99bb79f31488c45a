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
/* Attached clients slower than this stop a process's output. */
#define ATTACH_BACKLOG (1u << 20)
/* stdin accepted from clients but not yet taken by the agent, per process
 * (each well-behaved client holds at most one window of it). */
#define STDIN_QUEUE_CAP (4u << 20)
/* A kept process's output while nobody is attached, and how many ended kept
 * processes are remembered (CAPSA_PROC_BUFFER, CAPSA_PROC_RETAINED). */
#define PROC_RING_CAP (512u << 10)
#define PROC_RETAINED 16
/* Processes (running or retained) per sandbox. */
#define PROC_MAX 4096

struct client;

/* A client stream that is not a process: a file operation or a watch.
 * Frames are relayed both ways with stream ids rewritten; credit flows end
 * to end. */
struct route {
	struct route *next;
	uint32_t agent_stream;
	struct client *client; /* NULL once the client left (the agent was told to cancel) */
	uint32_t client_stream;
};

struct client {
	struct client *next;
	struct proto_conn conn;
	struct ev_io io;
	bool creator;
	bool wants_final;	/* send FINAL when the sandbox ends */
	bool closing;
};

/* A client attached to a process's output and/or input. */
struct sink {
	struct sink *next;
	struct client *c;	/* NULL: dead, freed by the next sweep */
	uint32_t stream;
	unsigned flags;		/* ATTACH_* */
};

/* stdin bytes queued for the agent, per sender (for their credit). */
struct in_seg {
	struct client *c;
	uint32_t stream;
	uint32_t n;
};

/* Output a kept process produced while nobody was attached: records of
 * (kind, channel, length, bytes) in a circular buffer, oldest dropped. */
struct ring {
	uint8_t *data;
	size_t cap, head, len;
};

/* A process of the sandbox: the main process (stream 1) and every exec. */
struct sproc {
	struct sproc *next;
	uint32_t agent_stream;
	pid_t pid;
	char *tag, *cwd;
	char **argv;
	bool tty, stdin_open, keep, main;
	bool direct;		/* its stdio pipes go to the starter (PROC_START_DIRECT) */
	bool started, exited;
	int64_t started_at;
	int64_t exit_code;
	char *reason;
	struct buf exit_tlv;	/* the EXIT payload, for a late attach */
	struct client *starter;	/* gets PROC_STARTED or the start error */
	uint32_t starter_stream;
	/* a process that is not kept has an owner while its client is there;
	 * its output credit flows end to end through the owner */
	struct client *owner;
	uint32_t owner_stream;
	uint32_t owner_out[3];	/* sent to the owner, not yet credited back */
	struct sink *sinks;
	uint32_t owed[3];	/* output credit to return to the agent */
	struct buf in_q;	/* stdin waiting for the agent's credit */
	uint32_t in_credit;
	struct in_seg *segs;
	size_t n_segs, cap_segs;
	bool in_eof, in_eof_sent;
	struct ring ring;
	uint64_t dropped;
};

/* A published port: a listening socket on the host. */
struct listener {
	struct listener *next;
	int fd;
	struct ev_io io;
	struct proto_port port; /* host_port is the one bound */
};

/* One tunnelled TCP connection: a host socket and an agent stream. */
struct tunnel {
	struct tunnel *next;
	uint32_t agent_stream;
	int fd;
	struct ev_io io;
	struct listener *l;	/* NULL for a connection a client handed us */
	struct client *requester; /* gets OK/ERROR when the agent answers */
	uint32_t req_stream;
	bool opened;
	uint32_t credit;	/* host -> sandbox bytes the agent will take */
	struct buf out;		/* sandbox -> host bytes not yet written */
	uint32_t owed;		/* ch 1 credit to return once written */
	bool rd_eof;		/* host side sent its EOF (EOF ch 0 sent) */
	bool wr_eof;		/* agent sent EOF ch 1: shut down our write side when out drains */
	bool wr_shut;
	bool closed;		/* agent sent TUNNEL_CLOSED */
	bool cancelled;
	bool direct;		/* asked the agent for the sandbox socket itself */
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
	struct sproc *procs;
	struct sproc *main_proc;
	struct listener *listeners;
	struct tunnel *tunnels;
	uint32_t next_stream;
	struct logw log;
	bool main_started, main_exited;
	struct proto_exit main_exit;
	bool stop_requested, kill_requested;
	const char *end_reason; /* set by timers: idle_timeout, max_duration */
	struct ev_timer stop_timer;
	struct ev_timer deadline_timer;
	struct ev_timer idle_timer;
	int64_t last_activity;
	int64_t started_at;
	bool sweep_pending;
	/* descriptors that came with the agent frame being handled (its
	 * T_COUNT says how many); whatever a handler does not take is closed */
	int frame_fds[3];
	int n_frame_fds;
};

extern struct sup sup;

/* limits.c */
#define SUP_PTY_MAX_DEFAULT 256
int sup_disk_mount(struct capsa_error **err);
void sup_disk_release(void);
const char *sup_devpts_data(void);

/* userns.c: the sandbox's user namespace (spec userns_count > 0) */
struct linux_mount;
struct linux_rootfs;
extern int sup_userns_fd;
bool sup_userns_on(void);
int sup_userns_prepare(struct capsa_error **err);
void sup_userns_adjust_mounts(struct linux_mount *m, size_t n, char ***owned);
int sup_userns_child_layers(struct linux_rootfs *r, struct capsa_error **err);
int sup_userns_child_volumes(struct capsa_error **err);
int sup_userns_before_pivot(void *unused, struct capsa_error **err);
int sup_userns_child_enter(struct capsa_error **err);
void sup_userns_release(void);

/* clients.c */
void client_accept(struct ev_loop *l, struct ev_io *io, uint32_t revents);
struct client *client_add(int fd, bool creator);
/* Registers the client with the loop and handles frames already buffered. */
void client_activate(struct client *c);
void client_send(struct client *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);
void client_send_error(struct client *c, uint32_t stream, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void client_reply_ok(struct client *c, uint32_t stream);
/* Queues a frame carrying descriptors (taken over; closed if c is gone). */
void client_send_fds(struct client *c, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n,
		     const int *fds, int nfds);
void client_drop(struct client *c);
void clients_flush(void);
void clients_broadcast_final(const struct buf *exit_tlv);
void route_from_agent(const struct proto_hdr *h, const uint8_t *payload);
uint32_t sup_new_stream(void);
void sup_touch(void);

/* procs.c */
struct sproc *proc_new(uint32_t agent_stream);
struct sproc *proc_by_agent(uint32_t stream);
/* The process a client's stream talks to (as owner or sink). */
struct sproc *proc_by_client(struct client *c, uint32_t stream, struct sink **sink);
void proc_start_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload);
void proc_from_agent(struct sproc *p, const struct proto_hdr *h, const uint8_t *payload);
void proc_from_client(struct sproc *p, struct sink *s, struct client *c, const struct proto_hdr *h,
		      const uint8_t *payload);
void proc_attach_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload);
void proc_list_request(struct client *c, const struct proto_hdr *h);
void proc_signal_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload);
struct sink *proc_add_sink(struct sproc *p, struct client *c, uint32_t stream, unsigned flags);
void procs_client_left(struct client *c, bool detach);
/* Returns held output credit once attached clients have caught up. */
void procs_credit_all(void);
/* true while a client waits on a process it started (idle timeout). */
bool procs_busy(void);
bool procs_stream_in_use(struct client *c, uint32_t stream);

/* tunnels.c */
/* Binds a published port; fills in the bound host port. */
int tunnel_listen(struct proto_port *port, struct capsa_error **err);
void tunnel_from_agent(struct tunnel *t, const struct proto_hdr *h, const uint8_t *payload);
struct tunnel *tunnel_by_agent(uint32_t stream);
void tunnel_open_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload);
void tunnel_ports_request(struct client *c, const struct proto_hdr *h);
void tunnel_publish_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload);
void tunnels_client_left(struct client *c);

/* metrics.c: the sandbox's slot in the metrics registry (docs/metrics.md),
 * sampled every second */
/* tunnel bytes into and out of the sandbox, every tunnel and port */
extern uint64_t sup_net_rx, sup_net_tx;
void sup_metrics_start(void);
void sup_metrics_stop(void);

/* relay.c */
/* Splices between a host socket and a sandbox socket (both taken over). */
int relay_start(int host_fd, int sandbox_fd, struct listener *l);
size_t relay_count(void);

/* main.c */
void agent_send(uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);
void agent_flush(void);
/* The next descriptor of the agent frame being handled, or -1. */
int agent_frame_fd(void);
/* Writes queued frames (agent and clients) at the end of this batch. */
void sup_schedule_flush(void);
void sup_stop(int64_t timeout_ms, int sig, const char *reason);
void sup_kill_all(void);
void sup_arm_timers(void);

/* The sandbox's network namespace, when the library made one (PROTO_NET_JOIN). */
#define SUP_NETNS_FD 5

#endif
