/* msg.h: the structured payloads of the protocol: a process spec (PROC_START,
 * INIT), an exit record (EXIT, FINAL) and the sandbox spec (SPEC).  Encoders
 * and decoders are paired here so both ends agree by construction.  libc only.
 */
#ifndef CAPSA_PROTO_MSG_H
#define CAPSA_PROTO_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

#define PROTO_MAX_ARGS 65536
#define PROTO_MAX_RLIMITS 32
#define PROTO_MAX_MOUNTS 256

struct proto_rlimit {
	int resource;
	uint64_t soft, hard;
};

/* A process to start.  Unset fields (NULL, has_* false) take the sandbox
 * defaults the agent received in INIT. */
struct proto_proc {
	char **argv;
	char **env;
	char *cwd;
	char *user;
	bool tty, open_stdin, main;
	uint16_t rows, cols;
	bool has_caps;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	bool no_new_privs;
	struct proto_rlimit rlimits[PROTO_MAX_RLIMITS];
	size_t n_rlimits;
	uint8_t *seccomp; /* BPF program; NULL: default */
	size_t seccomp_len;
	bool no_seccomp;  /* explicitly unconfined */
	int64_t timeout_ms;
	int64_t kill_grace_ms;
	uint32_t window;
	int64_t umask; /* -1: default */
};

int proto_proc_encode(struct buf *b, const struct proto_proc *p);
/* *why receives a static description of the first malformed item. */
int proto_proc_decode(const uint8_t *p, size_t n, struct proto_proc *out, const char **why);
void proto_proc_release(struct proto_proc *p);

/* How a process or a sandbox ended. */
struct proto_exit {
	int64_t exit_code;   /* docker-style: code, 128+signal, 126/127 for exec failures */
	int64_t signal;	     /* terminating signal or 0 */
	int64_t code;	     /* errno of a start failure, 0 otherwise */
	char *message;	     /* start failure or timeout description */
	char *reason;	     /* exited signaled oom stopped killed timeout ... */
	int64_t started_at;  /* ms since epoch */
	int64_t finished_at;
	bool oom;
};
void proto_exit_encode(struct buf *b, const struct proto_exit *e);
int proto_exit_decode(const uint8_t *p, size_t n, struct proto_exit *out);
void proto_exit_release(struct proto_exit *e);

struct proto_mount {
	char *source, *target, *fstype, *data;
	uint64_t flags, propagation;
	bool bind, recursive, file;
};

struct proto_sandbox {
	char *id, *name;
	char *root_dir, *run_dir, *sandbox_dir, *rootfs;
	char *overlay_data, *overlay_dir;
	bool readonly;
	char *hostname;
	struct proto_mount *mounts;
	size_t n_mounts;
	char *hosts, *resolv;
	int64_t shm_size;
	char *cg_name;
	int64_t cg_memory, cg_swap, cg_cpu_quota, cg_cpu_period, cg_cpu_shares, cg_pids;
	struct proto_proc proc;	/* the main process, also the defaults for execs */
	int64_t stop_signal;
	int64_t log_max_size, log_max_files;
	char *agent_path, *capsa_path;
	bool creator_finalizes;
	uint64_t creator_attach; /* ATTACH_* the creator wants from the start */
	int64_t idle_timeout_ms, deadline_ms;
};

int proto_sandbox_encode(struct buf *b, const struct proto_sandbox *s);
int proto_sandbox_decode(const uint8_t *p, size_t n, struct proto_sandbox *out, const char **why);
void proto_sandbox_release(struct proto_sandbox *s);

/* ERROR payload helpers. */
void proto_error_encode(struct buf *b, int code, const char *msg);
int proto_error_decode(const uint8_t *p, size_t n, int *code, char **msg);

#endif
