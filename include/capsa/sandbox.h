/* capsa/sandbox.h: creating, running and controlling sandboxes.
 *
 * A sandbox is made from an image in the store, isolated with namespaces,
 * cgroups, seccomp and dropped capabilities, and watched by its own
 * supervisor process, so it outlives the program that created it.  Every
 * call here names a sandbox by id, unique id prefix, or name.
 */
#ifndef CAPSA_SANDBOX_H
#define CAPSA_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_mount {
	const char *source;  /* host path (bind), NULL for tmpfs */
	const char *target;  /* absolute path inside the sandbox */
	bool readonly;
	bool tmpfs;
	int64_t tmpfs_size;  /* bytes, 0: default (half of memory limit or 64 MiB) */
	int tmpfs_mode;      /* 0: 1777 */
	bool idmap;	     /* bind: seen through the user namespace's id map, so
				host root's files are root's inside (writable when
				rw); read-only binds always are, where the
				filesystem allows it */
};

struct capsa_port; /* capsa/tunnel.h */

enum { CAPSA_USERNS_AUTO = 0, CAPSA_USERNS_HOST = 1 };

struct capsa_rlimit {
	int resource; /* RLIMIT_* */
	uint64_t soft, hard;
};

struct capsa_sandbox_opts {
	const char *image;	   /* reference: name[:tag], id or digest */
	const char *name;	   /* NULL: derived from the id */
	char **cmd;		   /* NULL: the image's Cmd */
	char **entrypoint;	   /* with entrypoint_set: replaces the image's */
	bool entrypoint_set;
	char **env;		   /* KEY=VALUE, over the image's Env */
	const char *workdir;	   /* NULL: the image's WorkingDir */
	const char *user;	   /* NULL: the image's User */
	const char *hostname;	   /* NULL: the first 12 characters of the id */
	char **labels;		   /* KEY=VALUE */
	int64_t memory;		   /* bytes, 0: none */
	int64_t cpus_milli;	   /* 1000 = one cpu, 0: none */
	int64_t pids;		   /* 0: the default (4096), -1: none */
	int64_t shm_size;	   /* 0: 64 MiB */
	bool readonly;		   /* read-only root filesystem */
	int userns;		   /* CAPSA_USERNS_AUTO (0): a user namespace mapping
				      root to a block of the capsa user's subordinate
				      ids; CAPSA_USERNS_HOST: none */
	const struct capsa_mount *mounts;
	size_t n_mounts;
	char **cap_add, **cap_drop; /* names or "ALL" */
	const char *seccomp;	   /* NULL: default profile; "unconfined"; or a JSON profile path */
	const struct capsa_rlimit *rlimits;
	size_t n_rlimits;
	bool auto_remove;	   /* remove when it ends */
	bool tty;		   /* the main process gets a terminal */
	bool interactive;	   /* the main process's stdin stays open */
	int64_t idle_timeout_ms;   /* 0: none */
	int64_t timeout_ms;	   /* maximum lifetime, 0: none */
	int stop_signal;	   /* 0: the image's StopSignal or SIGTERM */
	const struct capsa_port *ports; /* published on the host (`-p`) */
	size_t n_ports;
	int64_t log_max_size;	   /* bytes per log file, 0: 16 MiB */
	int log_max_files;	   /* rotated files kept, 0: 4 */
	int64_t disk;		   /* bytes: the sandbox's writable layer lives in
				      an ext4 image of this size (`--disk`), and
				      the capacity ledger reserves it; 0: none */
	const char *network;	   /* NULL or "bridge": the default network (none
				      in rootless mode); "none" (loopback only),
				      "host" (the host's, no isolation),
				      "container:SANDBOX" (another's), or the
				      name of a network (docs/network.md) */
	char **allow_out, **deny_out; /* egress rules: CIDR, IPv4 address,
					 hostname, "*.domain", "host" (allow);
					 comma-separated lists allowed */
	char **dns;		   /* nameservers for /etc/resolv.conf instead of the
				      network's resolver (IPv4 or IPv6 addresses) */
	char **add_hosts;	   /* "NAME:ADDRESS" lines added to /etc/hosts */
};

/* Standard streams for an attached process: the library pumps between these
 * fds and the sandbox until the process ends. */
struct capsa_stdio {
	int in_fd;    /* -1: no stdin */
	int out_fd;
	int err_fd;   /* ignored with a tty */
	int sig_fd;   /* -1, or a signalfd whose signals (but SIGWINCH) are
		       * forwarded to the process; a second INT or TERM ends
		       * the session instead, leaving the process running
		       * (exit reason "interrupted", code 128+signal) */
	bool tty;
	uint16_t rows, cols;	/* initial terminal size; on SIGWINCH (through
				 * sig_fd) the size of out_fd's terminal is sent */
	const char *detach_keys; /* with tty and in_fd: the key sequence that
				  * leaves the process running and returns (exit
				  * reason "detached"); NULL: "ctrl-p,ctrl-q", "": none */
	bool no_sig_proxy; /* every signal on sig_fd (but SIGWINCH) ends the
			    * session that way, none is forwarded */
};

/* Parses docker's --detach-keys syntax ("ctrl-p,ctrl-q", "a,ctrl-@") into
 * at most 16 bytes; returns the length, or -1 with err. */
int capsa_detach_keys_parse(const char *spec, char out[16], struct capsa_error **err);

struct capsa_exit {
	int exit_code;	   /* docker's convention: code, 128+signal, 126, 127, 125 */
	int signal;
	char reason[32];   /* exited signaled oom stopped killed lost timeout
			    * idle_timeout max_duration start_failed; "detached"
			    * when the client left with the detach keys */
	char message[512]; /* why it could not start, when it could not */
};

/* Creates and starts a sandbox; *id_out receives its id.  With stdio, the
 * call stays attached to the main process until it ends and fills exit
 * (`capsa run` in the foreground); without, it returns once the main process
 * runs (`capsa run -d`). */
int capsa_sandbox_run(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *opts, const struct capsa_stdio *stdio,
		      char **id_out, struct capsa_exit *exit, struct capsa_error **err);

struct capsa_exec_opts {
	char **argv;
	char **env;
	const char *workdir;
	const char *user;
	bool tty;
	bool interactive;
	int64_t timeout_ms;
	bool detach;	   /* return once it runs; it is a kept process (see
			    * capsa/session.h), attachable later */
	const char *tag;   /* see capsa_proc_opts */
};

/* Runs a process in a running sandbox, attached through stdio, and fills
 * exit when it ends. */
int capsa_sandbox_exec(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_exec_opts *opts,
		       const struct capsa_stdio *stdio, struct capsa_exit *exit, struct capsa_error **err);

/* Attaches stdio to the sandbox's main process until it ends (exit is the
 * sandbox's) or the detach keys are typed (reason "detached").  stdin is
 * passed on only if the sandbox was started interactive. */
int capsa_sandbox_attach(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_stdio *stdio,
			 struct capsa_exit *exit, struct capsa_error **err);

/* Counts as activity for the idle timeout. */
int capsa_sandbox_touch(struct capsa_ctx *ctx, const char *sandbox, struct capsa_error **err);

struct capsa_sandbox_update {
	int64_t timeout_ms;	 /* new maximum lifetime from now; 0: none; -1: unchanged */
	int64_t idle_timeout_ms; /* 0: none; -1: unchanged */
};
/* Changes a running sandbox's timeouts. */
int capsa_sandbox_update(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_sandbox_update *u,
			 struct capsa_error **err);

/* New cgroup limits for a running sandbox (`capsa update --memory --cpus
 * --pids-limit`).  0: unchanged; pids -1: none.  All values are checked
 * before anything is written, a refused write puts back the old limits, and
 * the new ones are recorded (inspect's config).  ESRCH when it is not
 * running. */
struct capsa_limits_update {
	int64_t memory;	    /* bytes */
	int64_t cpus_milli;
	int64_t pids;
};
int capsa_sandbox_set_limits(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_limits_update *u,
			     struct capsa_error **err);

/* Bytes used and the size of a sandbox's `--disk` image (both 0 without
 * one): the filesystem's own count while it runs, the image's allocated
 * blocks otherwise.  Reads no supervisor. */
int capsa_sandbox_disk_usage(struct capsa_ctx *ctx, const char *sandbox, uint64_t *used, uint64_t *limit,
			     struct capsa_error **err);

/* SIGTERM (or the stop signal), timeout_ms of grace, then SIGKILL of the
 * whole sandbox; waits for the end.  Idempotent. */
int capsa_sandbox_stop(struct capsa_ctx *ctx, const char *sandbox, int64_t timeout_ms, struct capsa_error **err);
int capsa_sandbox_kill(struct capsa_ctx *ctx, const char *sandbox, int sig, struct capsa_error **err);
int capsa_sandbox_pause(struct capsa_ctx *ctx, const char *sandbox, bool pause, struct capsa_error **err);
/* Removes a stopped sandbox (force: stops it first).  Idempotent with force. */
int capsa_sandbox_remove(struct capsa_ctx *ctx, const char *sandbox, bool force, struct capsa_error **err);
/* Waits for the sandbox to end. */
int capsa_sandbox_wait(struct capsa_ctx *ctx, const char *sandbox, struct capsa_exit *exit, struct capsa_error **err);
/* JSON (as `capsa inspect` prints it), malloc'd. */
char *capsa_sandbox_inspect(struct capsa_ctx *ctx, const char *sandbox, struct capsa_error **err);
/* JSON array of sandboxes; all: include ended ones. */
char *capsa_sandbox_list(struct capsa_ctx *ctx, bool all, struct capsa_error **err);
/* Full id of the sandbox a name or prefix designates. */
char *capsa_sandbox_resolve(struct capsa_ctx *ctx, const char *sandbox, struct capsa_error **err);
/* Marks sandboxes whose supervisor is gone as ended (their exit record, or
 * reason "lost") and removes their cgroups and runtime directories. */
int capsa_sandbox_reconcile(struct capsa_ctx *ctx, struct capsa_error **err);
/* Records the end of one sandbox from the exit file its supervisor wrote
 * (run by the supervisor as its last act; idempotent). */
int capsa_sandbox_finalize(struct capsa_ctx *ctx, const char *id, struct capsa_error **err);

/* Resource usage of a running sandbox: its latest sample in the metrics
 * registry (docs/metrics.md), or its cgroup when it has no slot. */
/* A figure is UINT64_MAX when unknown: all but the limits for a sandbox
 * without a cgroup (rootless with none delegated, docs/rootless.md). */
struct capsa_sandbox_stats {
	uint64_t cpu_usage_ns;
	uint64_t memory_current, memory_limit; /* limit: UINT64_MAX when none */
	uint64_t pids_current, pids_limit;
	uint64_t io_read_bytes, io_write_bytes;
	uint64_t oom_kills;
};
/* ESRCH when the sandbox has ended (its cgroup is gone). */
int capsa_sandbox_stats(struct capsa_ctx *ctx, const char *sandbox, struct capsa_sandbox_stats *out,
			struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
