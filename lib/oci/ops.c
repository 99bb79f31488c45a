/* ops.c: the commands on an existing container: start, state, kill,
 * delete, pause/resume, update, ps, list.  Each takes the container's lock
 * (state and list only read), reads its record and derives the status from
 * the init process (state.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

struct ctr {
	int dirfd;
	struct oci_state st;
	enum oci_status status;
};

static int ctr_open_how(const struct oci_global *g, const char *id, enum oci_open how, struct ctr *c,
			struct capsa_error **err)
{
	memset(c, 0, sizeof(*c));
	c->dirfd = -1;
	if (oci_dir_open(g, id, how, &c->dirfd, err) < 0)
		return -1;
	if (oci_state_read(c->dirfd, id, &c->st, err) < 0) {
		close(c->dirfd);
		c->dirfd = -1;
		return -1;
	}
	c->status = oci_status_of(c->dirfd, &c->st);
	return 0;
}

static int ctr_open(const struct oci_global *g, const char *id, struct ctr *c, struct capsa_error **err)
{
	return ctr_open_how(g, id, OCI_OPEN_LOCK, c, err);
}

static void ctr_close(struct ctr *c)
{
	if (c->dirfd >= 0)
		close(c->dirfd);
	oci_state_release(&c->st);
}

/* The config kept at create, for hooks (only read when there are some). */
static int ctr_config(struct ctr *c, struct oci_config *cfg, struct capsa_error **err)
{
	return oci_config_load(c->dirfd, cfg, err);
}

static void run_hooks_warn(const struct oci_global *g, struct ctr *c, enum oci_hook_kind kind, const char *name,
			   enum oci_status s)
{
	if (!c->st.has_hooks)
		return;
	struct oci_config cfg;
	struct capsa_error *err = NULL;
	if (ctr_config(c, &cfg, &err) == 0) {
		if (cfg.n_hooks[kind]) {
			_cleanup_free_ char *state = oci_state_json(&c->st, s);
			oci_hooks_run(cfg.hooks[kind], cfg.n_hooks[kind], name, state, &err);
		}
		oci_config_release(&cfg);
	}
	if (err && g->warn)
		g->warn(err->msg);
	capsa_error_free(err);
}

/* --- start ------------------------------------------------------------------ */

int oci_start(const struct oci_global *g, const char *id, struct capsa_error **err)
{
	struct ctr c;
	if (ctr_open(g, id, &c, err) < 0)
		return -1;
	int rc = 0;
	if (c.status != OCI_CREATED) {
		rc = c.status == OCI_STOPPED
			     ? error_set(err, EINVAL, "cannot start container '%s': it has stopped", id)
			     : error_set(err, EINVAL, "cannot start container '%s': not in created state (%s)", id,
					 oci_status_name(c.status));
		goto out;
	}
	/* The init holds the fifo open for reading: a non-blocking open for
	 * writing succeeds while it lives (ENXIO once it died). */
	int fd = openat(c.dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENXIO ? error_set(err, ESRCH, "cannot start container '%s': its init has exited", id)
				    : error_sys(err, errno, "start container '%s': open exec.fifo", id);
		goto out;
	}
	ssize_t w = write(fd, "0", 1);
	int e = errno;
	close(fd);
	if (w != 1) {
		rc = error_sys(err, e, "start container '%s'", id);
		goto out;
	}
	unlinkat(c.dirfd, "exec.fifo", 0);
	run_hooks_warn(g, &c, OCI_HOOK_POSTSTART, "poststart", OCI_RUNNING);
out:
	ctr_close(&c);
	return rc;
}

/* --- state, list -------------------------------------------------------------- */

int oci_state(const struct oci_global *g, const char *id, char **json, struct capsa_error **err)
{
	struct ctr c;
	if (ctr_open_how(g, id, OCI_OPEN_READ, &c, err) < 0)
		return -1;
	*json = oci_state_json(&c.st, c.status);
	ctr_close(&c);
	return 0;
}

int oci_list(const struct oci_global *g, char **json, struct capsa_error **err)
{
	json_t *arr = json_array();
	_cleanup_closedir_ DIR *d = opendir(oci_root(g));
	if (!d && errno != ENOENT) {
		json_decref(arr);
		return error_sys(err, errno, "open state root %s", oci_root(g));
	}
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || oci_id_check(de->d_name, NULL) < 0)
			continue;
		struct ctr c;
		if (ctr_open_how(g, de->d_name, OCI_OPEN_READ, &c, NULL) < 0)
			continue;
		char *s = oci_state_json(&c.st, c.status);
		json_array_append_new(arr, json_loads(s, 0, NULL));
		free(s);
		ctr_close(&c);
	}
	*json = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return 0;
}

/* --- kill ----------------------------------------------------------------- */

/* Signals the init through a pidfd checked against the record, so a pid
 * reused since the init died is never signalled. */
static int signal_init(const struct oci_state *st, int sig, struct capsa_error **err)
{
	int pfd = (int)syscall(SYS_pidfd_open, st->pid, 0);
	if (pfd < 0 && errno != ENOSYS)
		return error_set(err, ESRCH, "container '%s': container not running (no such process)", st->id);
	if (!oci_init_alive(st)) {
		if (pfd >= 0)
			close(pfd);
		return error_set(err, ESRCH, "container '%s': container not running (no such process)", st->id);
	}
	int r = pfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) : kill(st->pid, sig);
	int e = errno;
	if (pfd >= 0)
		close(pfd);
	if (r < 0)
		return e == ESRCH ? error_set(err, ESRCH, "container '%s': container not running (no such process)",
					       st->id)
				  : error_sys(err, e, "signal container '%s'", st->id);
	return 0;
}

int oci_kill(const struct oci_global *g, const char *id, int sig, bool all, struct capsa_error **err)
{
	struct ctr c;
	if (ctr_open(g, id, &c, err) < 0)
		return -1;
	int rc = 0;
	if (c.status == OCI_STOPPED || c.status == OCI_CREATING) {
		if (!(all && c.st.cgroup))
			rc = error_set(err, ESRCH, "container '%s': container not running (%s)", id,
				       oci_status_name(c.status));
	}
	if (rc == 0 && all && c.st.cgroup) {
		struct linux_cgroup *cg;
		if (linux_cgroup_open(c.st.cgroup, &cg, NULL) == 0) {
			pid_t *pids;
			size_t n;
			if (linux_cgroup_pids(cg, &pids, &n, err) == 0) {
				for (size_t i = 0; i < n; i++)
					kill(pids[i], sig);
				free(pids);
			} else {
				rc = -1;
			}
			if (sig == SIGKILL && c.status == OCI_PAUSED)
				linux_cgroup_freeze(cg, false, NULL);
			linux_cgroup_free(cg);
		}
	} else if (rc == 0) {
		rc = signal_init(&c.st, sig, err);
		/* a frozen process only dies once thawed */
		if (rc == 0 && sig == SIGKILL && c.status == OCI_PAUSED && c.st.cgroup) {
			struct linux_cgroup *cg;
			if (linux_cgroup_open(c.st.cgroup, &cg, NULL) == 0) {
				linux_cgroup_freeze(cg, false, NULL);
				linux_cgroup_free(cg);
			}
		}
	}
	ctr_close(&c);
	return rc;
}

/* --- delete --------------------------------------------------------------- */

/* Waits (bounded) until the init is gone or a zombie: it is not our
 * child, so its end is watched through /proc. */
static void wait_gone(const struct oci_state *st)
{
	int64_t deadline = mono_ms() + 5000;
	unsigned us = 50;
	while (oci_init_alive(st) && mono_ms() < deadline) {
		usleep(us);
		if (us < 10000)
			us *= 2;
	}
}

int oci_delete(const struct oci_global *g, const char *id, bool force, struct capsa_error **err)
{
	struct ctr c;
	if (ctr_open(g, id, &c, err) < 0)
		return -1;
	int rc = 0;
	bool live = c.status == OCI_RUNNING || c.status == OCI_PAUSED;
	if (live && !force) {
		rc = error_set(err, EBUSY, "cannot delete container '%s' that is not stopped: %s", id,
			       oci_status_name(c.status));
		goto out;
	}
	struct linux_cgroup *cg = NULL;
	if (c.st.cgroup && linux_cgroup_open(c.st.cgroup, &cg, NULL) < 0)
		cg = NULL;
	if (c.status != OCI_STOPPED) {
		/* created (runc deletes those without --force), running,
		 * paused, or a create that did not finish */
		if (cg) {
			linux_cgroup_freeze(cg, false, NULL);
			linux_cgroup_kill_all(cg, NULL);
		}
		if (c.st.pid > 0 && oci_init_alive(&c.st))
			signal_init(&c.st, SIGKILL, NULL);
		wait_gone(&c.st);
	}
	if (cg) {
		if (linux_cgroup_destroy(cg, err) < 0)
			rc = error_wrap(err, "delete container '%s'", id);
		linux_cgroup_free(cg);
	}
	if (rc == 0) {
		run_hooks_warn(g, &c, OCI_HOOK_POSTSTOP, "poststop", OCI_STOPPED);
		_cleanup_close_ int rfd = open(oci_root(g), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rfd < 0 || rm_rf_at(rfd, id, err) < 0)
			rc = rfd < 0 ? error_sys(err, errno, "open state root") : -1;
	}
out:
	ctr_close(&c);
	return rc;
}

/* --- pause, update, ps ------------------------------------------------------ */

static int ctr_cgroup(struct ctr *c, struct linux_cgroup **cg, struct capsa_error **err)
{
	if (!c->st.cgroup)
		return error_set(err, ENOTSUP, "container '%s' has no cgroup", c->st.id);
	if (linux_cgroup_open(c->st.cgroup, cg, err) < 0)
		return error_wrap(err, "container '%s'", c->st.id);
	return 0;
}

int oci_pause(const struct oci_global *g, const char *id, bool pause, struct capsa_error **err)
{
	struct ctr c;
	if (ctr_open(g, id, &c, err) < 0)
		return -1;
	int rc;
	struct linux_cgroup *cg = NULL;
	if (pause && c.status != OCI_RUNNING && c.status != OCI_CREATED)
		rc = error_set(err, EINVAL, "cannot pause container '%s': %s", id, oci_status_name(c.status));
	else if (!pause && c.status != OCI_PAUSED)
		rc = error_set(err, EINVAL, "cannot resume container '%s': not paused (%s)", id,
			       oci_status_name(c.status));
	else if ((rc = ctr_cgroup(&c, &cg, err)) == 0)
		rc = linux_cgroup_freeze(cg, pause, err);
	linux_cgroup_free(cg);
	ctr_close(&c);
	return rc;
}

int oci_update(const struct oci_global *g, const char *id, const struct linux_cgroup_limits *l,
	       struct capsa_error **err)
{
	struct ctr c;
	if (ctr_open(g, id, &c, err) < 0)
		return -1;
	int rc;
	struct linux_cgroup *cg = NULL;
	if (c.status == OCI_STOPPED)
		rc = error_set(err, EINVAL, "cannot update container '%s': it has stopped", id);
	else if ((rc = ctr_cgroup(&c, &cg, err)) == 0)
		rc = linux_cgroup_set_limits(cg, l, err);
	linux_cgroup_free(cg);
	ctr_close(&c);
	return rc;
}

int oci_pids(const struct oci_global *g, const char *id, pid_t **pids, size_t *n, struct capsa_error **err)
{
	*pids = NULL;
	*n = 0;
	struct ctr c;
	if (ctr_open_how(g, id, OCI_OPEN_READ, &c, err) < 0)
		return -1;
	int rc = 0;
	struct linux_cgroup *cg = NULL;
	if (c.status == OCI_STOPPED || c.status == OCI_CREATING)
		rc = error_set(err, ESRCH, "container '%s': container not running (%s)", id, oci_status_name(c.status));
	else if ((rc = ctr_cgroup(&c, &cg, err)) == 0)
		rc = linux_cgroup_pids(cg, pids, n, err);
	linux_cgroup_free(cg);
	ctr_close(&c);
	return rc;
}
