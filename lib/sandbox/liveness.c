/* liveness.c: whether anything of a sandbox may still run, and the proof
 * that nothing does before its record goes.
 *
 * Three holders, in the order a sandbox meets them:
 *   - its creator, from the runtime directory's creation until the row
 *     says "running" (or the creation is undone), holds an exclusive flock
 *     on the runtime directory itself;
 *   - the creator, then its supervisor (the same open file, handed down),
 *     then the `_finalize` the supervisor becomes, hold <run>/<id>/lock
 *     until the sandbox's end is recorded and the directory removed;
 *   - the row names the creator and the supervisor by pid and start time
 *     within a boot, and the cgroup the sandbox's processes live in.
 * A lock file that is there and free proves its holders gone.  A lock file
 * that is not there proves nothing (a listing command run with another
 * CAPSA_RUN_ROOT sees none): then the recorded processes decide.  Must
 * never: call a sandbox dead because a file is missing, or let a row go
 * while its cgroup still has processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "linux/proc.h"
#include "sandbox.h"
#include "util/fs.h"

enum lock_state { LOCK_ABSENT, LOCK_FREE, LOCK_HELD };

static enum lock_state lock_probe(struct capsa_ctx *ctx, const char *id)
{
	_cleanup_free_ char *path = xasprintf("%s/lock", id);
	_cleanup_close_ int fd = openat(ctx->run_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return LOCK_ABSENT;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return LOCK_FREE;
	}
	return errno == EWOULDBLOCK ? LOCK_HELD : LOCK_ABSENT;
}

static bool same_boot(const struct sb_row *r)
{
	return r->boot_id && *r->boot_id && strcmp(r->boot_id, linux_boot_id()) == 0;
}

static bool process_alive(const struct sb_row *r, pid_t pid, uint64_t start, bool exclude_self)
{
	if (pid <= 0 || !same_boot(r) || (exclude_self && pid == getpid()))
		return false;
	uint64_t t;
	return linux_proc_start_time(pid, &t) == 0 && t == start;
}

static bool creating(const struct sb_row *r)
{
	return r->state && strcmp(r->state, "creating") == 0;
}

static bool alive(struct capsa_ctx *ctx, const struct sb_row *r, bool exclude_self)
{
	switch (lock_probe(ctx, r->id)) {
	case LOCK_HELD:
		/* this process's own hold is closed before it asks */
		return true;
	case LOCK_FREE:
		return false;
	case LOCK_ABSENT:
		break;
	}
	if (process_alive(r, r->supervisor_pid, r->supervisor_start, exclude_self))
		return true;
	return creating(r) && process_alive(r, r->creator_pid, r->creator_start, exclude_self);
}

void sandbox_self(pid_t *pid, uint64_t *start)
{
	static pid_t cached_pid;
	static uint64_t cached_start;
	pid_t me = getpid();
	if (me != cached_pid && linux_proc_start_time(me, &cached_start) == 0)
		cached_pid = me;
	*pid = me;
	*start = me == cached_pid ? cached_start : 0;
}

bool sandbox_alive(struct capsa_ctx *ctx, const struct sb_row *r)
{
	return alive(ctx, r, false);
}

int sandbox_reload(struct capsa_ctx *ctx, struct sb_row *r, struct capsa_error **err)
{
	_cleanup_free_ char *id = xstrdup(r->id);
	sb_row_release(r);
	return sandbox_lookup(ctx, id, r, err);
}

int sandbox_creation_lock(const char *run_dir, struct capsa_error **err)
{
	int fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return error_sys(err, errno, "open %s", run_dir);
	if (flock(fd, LOCK_EX) < 0) {
		error_sys(err, errno, "lock %s", run_dir);
		close(fd);
		return -1;
	}
	return fd;
}

/* LOCK_FREE when the creator no longer holds the runtime directory (or it
 * is gone), LOCK_HELD while it does, LOCK_ABSENT when it is not where this
 * context looks. */
static enum lock_state creation_probe(struct capsa_ctx *ctx, const struct sb_row *r)
{
	_cleanup_close_ int fd = openat(ctx->run_fd, r->id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return LOCK_ABSENT;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0)
		return LOCK_FREE;
	return errno == EWOULDBLOCK ? LOCK_HELD : LOCK_ABSENT;
}

int sandbox_wait_creation(struct capsa_ctx *ctx, struct sb_row *r, int timeout_ms, struct capsa_error **err)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int pause_ms = 1;
	while (creating(r)) {
		enum lock_state s = creation_probe(ctx, r);
		bool creator = process_alive(r, r->creator_pid, r->creator_start, true);
		if (s == LOCK_FREE || (s == LOCK_ABSENT && !creator)) {
			/* the creator finished, undid it, or died: what the row
			 * says now is what there is */
			return sandbox_reload(ctx, r, err);
		}
		char state = 0;
		uint64_t start;
		if (creator && linux_proc_stat(r->creator_pid, &state, &start) == 0 && (state == 'T' || state == 't'))
			return error_set(err, EBUSY,
					 "sandbox %s is being created by process %d, which is stopped: it ends as soon as "
					 "that process continues or dies",
					 r->name, (int)r->creator_pid);
		if (mono_ms() > deadline)
			return error_set(err, EBUSY, "sandbox %s is still being created by process %d after %d s",
					 r->name, (int)r->creator_pid, timeout_ms / 1000);
		poll(NULL, 0, pause_ms);
		if (pause_ms < 32)
			pause_ms *= 2;
		if (sandbox_reload(ctx, r, err) < 0)
			return -1;
	}
	return 0;
}

int sandbox_cgroup_remove(struct capsa_ctx *ctx, const char *id, const char *cgroup, struct capsa_error **err)
{
	if (linux_cgroup_mode() == CGROUP_MODE_NONE)
		return 0; /* no cgroup: PID 1's death took the rest (PDEATHSIG, pid namespace) */
	_cleanup_free_ char *name = cgroup && *cgroup ? xstrdup(cgroup) : ctx_sandbox_cgroup(ctx, id);
	struct linux_cgroup *cg = NULL;
	struct capsa_error *e = NULL;
	if (linux_cgroup_open(name, &cg, &e) < 0) {
		bool gone = e && e->code == ENOENT;
		if (!gone)
			error_move(err, &e);
		capsa_error_free(e);
		return gone ? 0 : -1;
	}
	int rc = 0;
	if (linux_cgroup_kill_all(cg, err) < 0 || linux_cgroup_destroy(cg, err) < 0)
		rc = -1;
	linux_cgroup_free(cg);
	return rc;
}

/* Waits (up to ms) for the recorded supervisor to exit: a pidfd wakes us
 * the moment it does (a supervisor that sent FINAL is usually a few
 * hundred microseconds from its exit), where sleeping would round up. */
static void wait_supervisor_exit(const struct sb_row *r, int ms)
{
	int fd = r->supervisor_pid > 0 && r->supervisor_pid != getpid() ? (int)syscall(SYS_pidfd_open, r->supervisor_pid, 0)
									 : -1;
	uint64_t t;
	/* the pid must still be the recorded process, or this waits on another */
	if (fd >= 0 && linux_proc_start_time(r->supervisor_pid, &t) == 0 && t == r->supervisor_start) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, ms);
	} else {
		/* something else holds on (the lock): a plain pause */
		poll(NULL, 0, ms);
	}
	if (fd >= 0)
		close(fd);
}

int sandbox_prove_dead(struct capsa_ctx *ctx, const struct sb_row *r, int wait_ms, struct capsa_error **err)
{
	int64_t deadline = mono_ms() + wait_ms;
	int pause_ms = 1;
	while (alive(ctx, r, true)) {
		int64_t left = deadline - mono_ms();
		if (left < 0) {
			pid_t pid = r->supervisor_pid > 0 ? r->supervisor_pid : r->creator_pid;
			return error_set(err, EBUSY, "sandbox %s still has a live %s (pid %d)", r->name,
					 r->supervisor_pid > 0 ? "supervisor" : "creator", (int)pid);
		}
		wait_supervisor_exit(r, (int)(left < pause_ms ? left : pause_ms));
		if (pause_ms < 16)
			pause_ms *= 2;
	}
	if (sandbox_cgroup_remove(ctx, r->id, r->cgroup, err) < 0)
		return error_wrap(err, "sandbox %s: its processes cannot be shown gone", r->name);
	return 0;
}
