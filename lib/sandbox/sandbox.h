/* sandbox.h: internals of the sandbox module (the library side of the
 * supervisor: creation, control requests, sessions, reconciliation). */
#ifndef CAPSA_SANDBOX_INTERNAL_H
#define CAPSA_SANDBOX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "capsa/sandbox.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "sandbox/runindex.h"
#include "sandbox/session.h"
#include "store/context.h"

/* docker's rules, and short enough for a path component */
#define SANDBOX_NAME_MAX 128

struct sb_row {
	char *id, *name, *image_id, *image_ref, *state, *config, *labels, *reason, *error;
	int64_t created_at, started_at, finished_at;
	bool has_exit;
	int exit_code;
	pid_t supervisor_pid;
	bool auto_remove;
	int64_t deadline_at, idle_timeout_ms;
	/* who may still run (liveness.c): the boot the sandbox was made in,
	 * its creator and its supervisor by pid and start time */
	char *boot_id;
	pid_t creator_pid;
	uint64_t creator_start, supervisor_start;
	char *cgroup; /* its cgroup as created; NULL in rows older than the column */
	bool remove_requested;
	pid_t init_pid; /* its PID 1 on the host, while it runs */
};

void sb_row_release(struct sb_row *r);

/* limits.c */
#define CAPSA_DEFAULT_PIDS 4096
#define CAPSA_MAX_PIDS (1 << 22)
int sandbox_limits_validate(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *o, struct capsa_error **err);
int sandbox_limits_check_update(const struct capsa_limits_update *u, struct capsa_error **err);
/* By full id, unique id prefix (>= 4 characters) or name.  ENOENT when
 * none matches: "no such sandbox: 'x'". */
int sandbox_lookup(struct capsa_ctx *ctx, const char *ref, struct sb_row *out, struct capsa_error **err);
bool sandbox_name_valid(const char *name);
/* 12 to 64 hex digits: what `exec`, `rm` and the API read as an id (or the
 * short id that ps shows), so no sandbox may be named so. */
bool sandbox_name_like_id(const char *name);

char *sandbox_run_dir(struct capsa_ctx *ctx, const char *id);
char *sandbox_dir(struct capsa_ctx *ctx, const char *id);

/* liveness.c: whether the sandbox's supervisor (or, while the row says
 * "creating", its creator) may still run.  The lock under this context's
 * runtime root decides when it is there; without it (another runtime root,
 * a directory already removed) the recorded processes do, by pid and start
 * time in the same boot.  Never false from the mere absence of a file. */
bool sandbox_alive(struct capsa_ctx *ctx, const struct sb_row *r);
/* This process by pid and start time, as a row records its creator. */
void sandbox_self(pid_t *pid, uint64_t *start);
/* Re-reads r from the database by its id (ENOENT when the row went). */
int sandbox_reload(struct capsa_ctx *ctx, struct sb_row *r, struct capsa_error **err);
/* The creator's hold on the sandbox while it creates it: an exclusive
 * flock on the runtime directory, released when the sandbox is recorded
 * running or undone.  Returns the fd to close then, or -1. */
int sandbox_creation_lock(const char *run_dir, struct capsa_error **err);
/* Waits until r is no longer being created (its creator recorded it
 * running, undid it, or died), re-reading r; ENOENT when the row went, EBUSY
 * when the creator is stopped or does not finish within timeout_ms. */
int sandbox_wait_creation(struct capsa_ctx *ctx, struct sb_row *r, int timeout_ms, struct capsa_error **err);
/* Proof that nothing of the sandbox runs: its supervisor (and creator)
 * gone, this process excepted, within wait_ms, and its cgroup emptied and
 * removed.  -1 (EBUSY) leaves everything as it is. */
int sandbox_prove_dead(struct capsa_ctx *ctx, const struct sb_row *r, int wait_ms, struct capsa_error **err);
/* Kills what is left in the sandbox's cgroup (as recorded, else as this
 * context names it) and removes it: 0 when it is gone. */
int sandbox_cgroup_remove(struct capsa_ctx *ctx, const char *id, const char *cgroup, struct capsa_error **err);
/* A blocking connection to the supervisor's control socket. */
int sandbox_connect(struct capsa_ctx *ctx, const struct sb_row *r, struct proto_conn *out, struct capsa_error **err);
/* Looks the sandbox up and connects to its supervisor; a sandbox whose
 * supervisor is gone is reconciled and reported as not running (ESRCH).
 * On success r and c belong to the caller. */
int sandbox_open_running(struct capsa_ctx *ctx, const char *ref, struct sb_row *r, struct proto_conn *c,
			 struct capsa_error **err);
/* Sends one request and waits for OK (0), or ERROR (-1 with its message).
 * STATUS, PROCS and PORTS replies are returned in *reply when not NULL. */
int sandbox_request(struct proto_conn *c, uint16_t type, uint16_t flags, const struct buf *payload,
		    struct buf *reply, struct capsa_error **err);

/* Applies how a sandbox ended: the given record, else its exit file, else
 * reason "lost".  Updates the database, removes the runtime directory and
 * the cgroup, and with auto_remove the whole sandbox. */
int sandbox_finalize(struct capsa_ctx *ctx, const char *id, const struct proto_exit *e, struct capsa_error **err);
/* Reconciles one sandbox row (see capsa_sandbox_reconcile). */
int sandbox_reconcile_one(struct capsa_ctx *ctx, const char *id, struct capsa_error **err);
/* Removes the sandbox's files, row, id block and name entry once
 * sandbox_prove_dead() holds; else fails and keeps them all. */
int sandbox_destroy(struct capsa_ctx *ctx, const struct sb_row *r, struct capsa_error **err);
/* The removal of a sandbox's records and files, without the proof (the
 * caller has it): shared by destroy and a creator's undo. */
int sandbox_forget(struct capsa_ctx *ctx, const char *id, const char *name, struct capsa_error **err);
int sandbox_event(struct capsa_ctx *ctx, const char *id, const char *type, const char *attrs_json);
/* Imports the exec events the supervisor journaled (events.c). */
int sandbox_events_import(struct capsa_ctx *ctx, const char *id);
void sandbox_events_forget(struct capsa_ctx *ctx, const char *id);


/* Spawns a detached supervisor; *conn is connected to it (creator side);
 * lock_fd is handed down and keeps the sandbox locked from here on. */
/* netns_fd (-1: none) becomes the supervisor's fd 5: the sandbox's
 * network namespace (PROTO_NET_JOIN). */
int supervisor_spawn(struct capsa_ctx *ctx, int lock_fd, int netns_fd, struct proto_conn *conn, pid_t *pid,
		     struct capsa_error **err);

#endif
