/* agent.h: shared state of capsa-agent, PID 1 of every sandbox.
 *
 * The agent is trusted code running among untrusted processes: it is
 * non-dumpable (no ptrace, no /proc/1/mem), executed from a sealed memfd,
 * and treats every frame as well-formed only after the codec checked it.
 */
#ifndef CAPSA_AGENT_H
#define CAPSA_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ev/ev.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "util/error.h"

struct aproc;

struct agent {
	struct ev_loop loop;
	struct proto_conn chan;
	struct ev_io chan_io;
	struct ev_io sig_io;
	int sigfd;
	struct proto_proc defaults; /* from INIT */
	bool have_init;
	struct aproc *procs;	    /* live sessions */
	struct aproc *main;
	bool ending;		    /* main exited: kill the rest and leave */
	int exit_code;
	char hostname[256];
	int root_fd;		    /* the sandbox's "/": file operations resolve in it */
	struct rlimit nofile;	    /* RLIMIT_NOFILE as the agent got it, for its children */
};

extern struct agent agent;

/* Queues a frame to the supervisor and flushes opportunistically. */
void agent_send(uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);
void agent_send_error(uint32_t stream, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Re-evaluates the channel's epoll interest after output was queued. */
void agent_chan_update(void);
/* Reports nothing more: kills what is left, flushes the channel, exits. */
__attribute__((noreturn)) void agent_leave(void *unused);

/* proc.c */
void proc_start(uint32_t stream, uint16_t flags, const uint8_t *payload, size_t len);
void proc_frame(const struct proto_hdr *h, const uint8_t *payload);
void proc_reap(void);
void proc_forward_signal(int sig);
void proc_kill_all(void);
bool proc_all_done(void);
bool proc_stream_in_use(uint32_t stream);

/* creds.c: the credentials of a file operation that names a user */
struct acred {
	bool on;	/* a user was named; otherwise the agent's own serve */
	char *user;	/* as named, for messages */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	uint64_t caps;	/* the effective set while switched */
};
/* Resolves user (NULL or "": the agent's own credentials) in the sandbox's
 * /etc/passwd and /etc/group, as the exec path does. */
int acred_init(struct acred *c, const char *user, struct capsa_error **err);
void acred_release(struct acred *c);
void acred_move(struct acred *to, struct acred *from);
/* Switches to c for the file system steps that follow (no-op without a
 * user); -1 with errno, the agent's own credentials still in place. */
int acred_enter(const struct acred *c);
/* Back to the agent's own credentials. */
void acred_leave(void);
/* The user switched to, or NULL. */
const char *acred_user(void);

/* procself.c: true when fd (or its entry base, when not NULL) is one of
 * the agent's own /proc entries, which no file operation may touch. */
bool agent_proc_is_own(int fd, const char *base);
/* A walker's hide hook (walk.h) that leaves them out of /proc. */
bool agent_walk_hide(void *ud, int dirfd, const char *name, const struct stat *st);

/* files.c */
void file_start(uint32_t stream, const uint8_t *payload, size_t len);
/* false: not a file stream */
bool file_frame(const struct proto_hdr *h, const uint8_t *payload);
bool files_stream_in_use(uint32_t stream);

/* watch.c */
/* Takes over cred. */
void watch_start(uint32_t stream, struct proto_fileop *op, struct acred *cred);
bool watch_frame(const struct proto_hdr *h, const uint8_t *payload);
bool watch_stream_in_use(uint32_t stream);

/* tunnel.c */
void tunnel_start(uint32_t stream, uint16_t flags, const uint8_t *payload, size_t len);
bool tunnel_frame(const struct proto_hdr *h, const uint8_t *payload);
bool tunnel_stream_in_use(uint32_t stream);

#endif
