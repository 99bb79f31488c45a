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
	char *tag;     /* the caller's name for it (supervisor bookkeeping) */
	bool keep;     /* survives its client (supervisor bookkeeping) */
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

/* A published port (sandbox spec, PUBLISH, PORTS replies). */
struct proto_port {
	char *host_ip;
	uint16_t host_port, port;
	uint64_t count, rx, tx;
};
void proto_port_encode(struct buf *b, uint16_t tag, const struct proto_port *p);
int proto_port_decode(const uint8_t *p, size_t n, struct proto_port *out);
void proto_port_release(struct proto_port *p);
#define PROTO_MAX_PORTS 256

struct proto_mount {
	char *source, *target, *fstype, *data;
	uint64_t flags, propagation;
	bool bind, recursive, file;
	bool idmap;	/* bind: idmapped in a user namespace (explicit) */
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
	struct proto_port *ports;
	size_t n_ports;
	char *disk_image, *disk_mount; /* --disk: the ext4 image and where the
					* supervisor mounts it (upper and work in it) */
	int64_t disk_size;
	int64_t pty_max;		/* devpts max= (0: the default) */
	uint64_t userns_uid, userns_gid, userns_count; /* count 0: no user namespace */
	bool framed;	/* no descriptor passing: stdio and tunnels in frames (a test hook,
			 * and what a VM agent gets) */
	int64_t net_mode; /* PROTO_NET_*: the sandbox's network namespace */
};

enum {
	PROTO_NET_OWN = 0,  /* a new one with loopback only (--network none) */
	PROTO_NET_JOIN = 1, /* the one open on the supervisor's fd 5, already configured */
	PROTO_NET_HOST = 2, /* the host's: no network isolation (--network host) */
};

int proto_sandbox_encode(struct buf *b, const struct proto_sandbox *s);
int proto_sandbox_decode(const uint8_t *p, size_t n, struct proto_sandbox *out, const char **why);
void proto_sandbox_release(struct proto_sandbox *s);

/* A file operation (FILE_OP). */
struct proto_fileop {
	int op;		 /* FOP_* */
	char *path, *path2;
	char *user;	 /* user[:group] owning what is created */
	char *name;	 /* tar get: the top name in the archive */
	int64_t mode;	 /* -1: default */
	uint64_t flags;	 /* FOPF_* */
	int64_t depth;	 /* list */
	int64_t max;	 /* read: refuse files larger than this (0: no cap) */
};
void proto_fileop_encode(struct buf *b, const struct proto_fileop *o);
int proto_fileop_decode(const uint8_t *p, size_t n, struct proto_fileop *out, const char **why);
void proto_fileop_release(struct proto_fileop *o);

/* File information (FILE_INFO entries) and watch events (FILE_EVENT
 * entries), each a nested T_ENTRY item. */
struct proto_finfo {
	char *name, *path, *owner, *group, *link;
	int type;	 /* enum capsa_file_type */
	int64_t size, mtime_ms;
	uint32_t mode, uid, gid;
	int event;	 /* FEV_*, watch events */
	bool is_dir;	 /* watch events */
};
void proto_finfo_encode(struct buf *b, const struct proto_finfo *f);
/* Decodes the value of one T_ENTRY item. */
int proto_finfo_decode(const uint8_t *p, size_t n, struct proto_finfo *out);
void proto_finfo_release(struct proto_finfo *f);

/* One process in a PROCS reply (a T_ENTRY item). */
struct proto_procinfo {
	int64_t pid;
	char *tag, *cwd, *reason;
	char **argv;
	bool tty, stdin_open, keep, main, running;
	int64_t exit_code, started_at, attached, buffered;
};
void proto_procinfo_encode(struct buf *b, const struct proto_procinfo *p);
int proto_procinfo_decode(const uint8_t *p, size_t n, struct proto_procinfo *out);
void proto_procinfo_release(struct proto_procinfo *p);

/* ERROR payload helpers. */
void proto_error_encode(struct buf *b, int code, const char *msg);
int proto_error_decode(const uint8_t *p, size_t n, int *code, char **msg);

#endif
