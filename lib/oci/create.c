/* create.c: `create` and `run`: building a container from a bundle and
 * leaving its init blocked before exec.  Must never leave anything behind
 * on failure (state directory, cgroup, process); mounts live only in the
 * container's mount namespace and go with its last process.
 *
 * The runtime command (parent), step by step:
 *  1. <root>/<id> made (EEXIST: the id is taken) and locked; config.json
 *     read and checked; a copy kept there for exec and update; the seccomp
 *     program compiled (libseccomp) and kept as seccomp.bpf for exec;
 *     state.json written as "creating" with the cgroup, so a crash from
 *     here on can be undone by `delete`.
 *  2. the cgroup created with the limits and device rules;
 *  3. exec.fifo made and opened read-write (the init inherits it);
 *  4. namespace paths opened and checked; a pid namespace to join is
 *     entered here (setns(CLONE_NEWPID) only affects children); a new time
 *     namespace is unshared here for the same reason;
 *  5. clone with the new namespaces (clone3 into the cgroup on v2; on v1
 *     the pid is added right after), uid/gid maps written for a new user
 *     namespace, then GO with the init's host pid;
 *  6. HOOKS from the init: prestart and createRuntime hooks here, GO;
 *  7. READY: state.json completed with the pid and its start time, the pid
 *     file written, and `create` returns.  `run` sends START instead and
 *     waits.
 * The init (child), step by step:
 *  a. wait for GO; on cgroup v1, unshare the cgroup namespace now that it
 *     is in its cgroup; join the namespaces given by path (user first,
 *     mount last); become root of a new user namespace;
 *  b. hostname, domainname, sysctls (through the host's /proc, which
 *     resolves them in the container's net and ipc namespaces);
 *  c. linux_rootfs_setup(): mounts, devices, masked and read-only paths;
 *     before the pivot, HOOKS to the parent and the createContainer hooks;
 *  d. oci_launch_prepare(): terminal, cwd, executable, user, capabilities;
 *  e. READY, then block reading exec.fifo until `start` writes to it;
 *  f. startContainer hooks, seccomp, execve.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/ns.h"
#include "linux/proc.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

struct init_args {
	const struct oci_config *c;
	const struct oci_create_opts *o;
	const struct oci_state *st;
	int sync;
	int lock;	/* the state dir, locked by the runtime: closed first */
	int fifo;	/* -1 in run mode: START comes over sync */
	int ns_fds[OCI_MAX_NS];
	bool v1_cgroupns; /* unshare the cgroup namespace after GO */
	bool userns_new;
	pid_t host_pid;
	struct linux_rootfs rootfs;
	struct oci_launch launch;
};

/* --- the init ------------------------------------------------------------ */

static char *state_for_hooks(const struct oci_state *st, enum oci_status s, pid_t pid)
{
	struct oci_state copy = *st;
	copy.pid = pid;
	return oci_state_json(&copy, s);
}

static int init_before_pivot(void *ctx, struct capsa_error **err)
{
	struct init_args *a = ctx;
	const struct oci_config *c = a->c;
	if (c->n_hooks[OCI_HOOK_PRESTART] || c->n_hooks[OCI_HOOK_CREATE_RUNTIME]) {
		char buf[4096];
		size_t n;
		if (oci_sync_send(a->sync, SYNC_HOOKS, NULL, 0) < 0)
			return error_sys(err, errno, "sync with the runtime");
		int t = oci_sync_recv(a->sync, buf, sizeof(buf), &n);
		if (t != SYNC_GO)
			_exit(1); /* the runtime failed and reports it */
	}
	if (c->n_hooks[OCI_HOOK_CREATE_CONTAINER]) {
		_cleanup_free_ char *s = state_for_hooks(a->st, OCI_CREATING, a->host_pid);
		if (oci_hooks_run(c->hooks[OCI_HOOK_CREATE_CONTAINER], c->n_hooks[OCI_HOOK_CREATE_CONTAINER],
				  "createContainer", s, err) < 0)
			return -1;
	}
	return 0;
}

static int init_namespaces(struct init_args *a, struct capsa_error **err)
{
	const struct oci_config *c = a->c;
	if (a->v1_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
		return error_sys(err, errno, "unshare the cgroup namespace");
	/* user first (it decides what the others may do), mount last (it
	 * changes how every later path resolves) */
	static const uint64_t order[] = { CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET,
					  CLONE_NEWCGROUP, CLONE_NEWTIME, CLONE_NEWNS };
	for (size_t k = 0; k < ARRAY_SIZE(order); k++)
		for (size_t i = 0; i < c->n_ns; i++)
			if (c->ns[i].flag == order[k] && a->ns_fds[i] >= 0 &&
			    linux_setns_fd(a->ns_fds[i], (int)c->ns[i].flag, c->ns[i].path, err) < 0)
				return -1;
	if (a->userns_new && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
		return error_sys(err, errno, "become root in the new user namespace");
	if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
		return error_sys(err, errno, "set hostname %s", c->hostname);
	if (c->domainname && setdomainname(c->domainname, strlen(c->domainname)) < 0)
		return error_sys(err, errno, "set domainname %s", c->domainname);
	for (size_t i = 0; c->sysctl && c->sysctl[i]; i += 2)
		if (linux_sysctl_set(c->sysctl[i], c->sysctl[i + 1], err) < 0)
			return error_wrap(err, "linux.sysctl");
	return 0;
}

static __attribute__((noreturn)) void init_main(struct init_args *a)
{
	struct capsa_error *err = NULL;
	char buf[256];
	size_t n;
	/* the lock is the open file's: a copy here would hold it for as long
	 * as the init lives */
	close(a->lock);
	if (oci_sync_recv(a->sync, buf, sizeof(buf), &n) != SYNC_GO || n != sizeof(pid_t))
		_exit(1);
	memcpy(&a->host_pid, buf + 1, sizeof(pid_t));
	/* a, b */
	if (init_namespaces(a, &err) < 0)
		oci_child_fail(a->sync, err);
	/* c */
	if (linux_rootfs_setup(&a->rootfs, &err) < 0)
		oci_child_fail(a->sync, err);
	/* d */
	if (oci_launch_prepare(&a->launch, &err) < 0)
		oci_child_fail(a->sync, err);
	/* e */
	if (oci_sync_send(a->sync, SYNC_READY, NULL, 0) < 0)
		_exit(1);
	if (a->fifo >= 0) {
		char b;
		ssize_t r;
		do
			r = read(a->fifo, &b, 1);
		while (r < 0 && errno == EINTR);
		if (r != 1)
			_exit(1);
		close(a->fifo);
	} else if (oci_sync_recv(a->sync, buf, sizeof(buf), &n) != SYNC_START) {
		_exit(1);
	}
	close(a->sync);
	/* f */
	const struct oci_config *c = a->c;
	if (c->n_hooks[OCI_HOOK_START_CONTAINER]) {
		_cleanup_free_ char *s = state_for_hooks(a->st, OCI_CREATED, a->host_pid);
		if (oci_hooks_run(c->hooks[OCI_HOOK_START_CONTAINER], c->n_hooks[OCI_HOOK_START_CONTAINER],
				  "startContainer", s, &err) < 0)
			oci_child_die(a->o->log_fd, a->o->log_json, 1, err);
	}
	int code = 1;
	oci_launch_exec(&a->launch, &code, &err);
	oci_child_die(a->o->log_fd, a->o->log_json, code, err);
}

/* --- the runtime side --------------------------------------------------- */

struct create {
	const struct oci_global *g;
	const struct oci_create_opts *o;
	int rootfd;	/* <root> */
	int dirfd;	/* <root>/<id>, locked */
	struct oci_config c;
	struct oci_state st;
	struct linux_cgroup *cg;
	struct buf bpf;
	unsigned bpf_flags;
	char **owned;	/* resolved mount sources */
	pid_t pid;
	int sync;
};

static void warn(const struct oci_global *g, const char *fmt, ...) PRINTF(2, 3);
static void warn(const struct oci_global *g, const char *fmt, ...)
{
	if (!g->warn)
		return;
	va_list ap;
	va_start(ap, fmt);
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	g->warn(msg);
}

/* Reads the config from the bundle and keeps a copy in the state dir. */
static int load_config(struct create *cr, int bundle_fd, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	if (read_file_at(bundle_fd, "config.json", OCI_CONFIG_MAX, &b, err) < 0) {
		buf_release(&b);
		return error_wrap(err, "bundle %s", cr->st.bundle);
	}
	int rc = oci_config_parse(b.data ? b.data : "", b.len, &cr->c, err);
	if (rc == 0)
		rc = write_file_atomic_at(cr->dirfd, "config.json", b.data, b.len, 0600, false, err);
	buf_release(&b);
	return rc;
}

static int check_config(struct create *cr, struct capsa_error **err)
{
	struct oci_config *c = &cr->c;
	if (!c->has_process)
		return error_set(err, EINVAL, "config.json: process: missing (nothing to run)");
	const struct oci_ns *mnt = oci_config_ns(c, CLONE_NEWNS);
	if (!mnt || mnt->path)
		return error_set(err, EINVAL,
				 "config.json: linux.namespaces: capsa needs a new mount namespace to build the root");
	if (c->process.terminal && !cr->o->console_socket)
		return error_set(err, EINVAL, "process.terminal is set: --console-socket is required");
	if (c->process.apparmor && *c->process.apparmor)
		warn(cr->g, "process.apparmorProfile '%s' ignored: capsa does not apply AppArmor profiles",
		     c->process.apparmor);
	if (c->process.selinux && *c->process.selinux)
		warn(cr->g, "process.selinuxLabel ignored: capsa does not apply SELinux labels");
	return 0;
}

static int resolve_paths(struct create *cr, int bundle_fd, struct capsa_error **err)
{
	struct oci_config *c = &cr->c;
	_cleanup_free_ char *rel = c->root_path[0] == '/' ? xstrdup(c->root_path)
							  : xasprintf("%s/%s", cr->st.bundle, c->root_path);
	char real[PATH_MAX];
	if (!realpath(rel, real))
		return error_sys(err, errno, "root.path %s", rel);
	struct stat sb;
	if (stat(real, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return error_set(err, ENOTDIR, "root.path %s: not a directory", real);
	cr->st.rootfs = xstrdup(real);
	(void)bundle_fd;
	/* relative bind sources are relative to the bundle */
	for (size_t i = 0; i < c->n_mounts; i++) {
		struct linux_mount *m = &c->mounts[i];
		if (m->bind && m->source && m->source[0] != '/') {
			char *abs = xasprintf("%s/%s", cr->st.bundle, m->source);
			cr->owned = strv_push_take(cr->owned, abs);
			m->source = abs;
		}
	}
	return 0;
}

static int compile_seccomp(struct create *cr, struct capsa_error **err)
{
	if (!cr->c.seccomp)
		return 0;
	uint64_t caps = cr->c.process.has_caps ? cr->c.process.cap_bounding : 0;
	if (oci_seccomp_compile(oci_root(cr->g), cr->c.seccomp, caps, &cr->bpf, &cr->bpf_flags, err) < 0)
		return error_wrap(err, "config.json: linux.seccomp");
	struct buf file = BUF_INIT;
	buf_append(&file, &cr->bpf_flags, sizeof(cr->bpf_flags));
	buf_append(&file, cr->bpf.data, cr->bpf.len);
	int rc = write_file_atomic_at(cr->dirfd, "seccomp.bpf", file.data, file.len, 0600, false, err);
	buf_release(&file);
	return rc;
}

static bool dev_is_bind(const struct oci_config *c)
{
	for (size_t i = 0; i < c->n_mounts; i++)
		if (c->mounts[i].bind && strcmp(c->mounts[i].target, "/dev") == 0)
			return true;
	return false;
}

/* Opens the namespaces given by path (checked now, so a bad path fails
 * before anything runs) and enters a pid namespace to join. */
static int open_namespaces(struct create *cr, struct init_args *a, uint64_t *flags, struct capsa_error **err)
{
	const struct oci_config *c = &cr->c;
	bool v2 = linux_cgroup_mode() == CGROUP_MODE_V2;
	*flags = 0;
	for (size_t i = 0; i < c->n_ns; i++) {
		a->ns_fds[i] = -1;
		const struct oci_ns *ns = &c->ns[i];
		if (!ns->path) {
			if (ns->flag == CLONE_NEWTIME) {
				if (unshare(CLONE_NEWTIME) < 0)
					return error_sys(err, errno, "new time namespace");
			} else if (ns->flag == CLONE_NEWCGROUP && !v2) {
				a->v1_cgroupns = linux_cgroup_mode() != CGROUP_MODE_NONE;
			} else {
				*flags |= ns->flag;
			}
			continue;
		}
		int fd = open(ns->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return error_sys(err, errno, "linux.namespaces: %s namespace %s", linux_ns_name(ns->flag),
					 ns->path);
		if (linux_ns_fd_check(fd, (int)ns->flag, ns->path, err) < 0) {
			close(fd);
			return error_wrap(err, "linux.namespaces");
		}
		if (ns->flag == CLONE_NEWPID) {
			int r = setns(fd, CLONE_NEWPID);
			int e = errno;
			close(fd);
			if (r < 0)
				return error_sys(err, e, "join pid namespace %s", ns->path);
			continue;
		}
		a->ns_fds[i] = oci_fd_above(fd, 3 + cr->o->preserve_fds);
	}
	a->userns_new = (*flags & CLONE_NEWUSER) != 0;
	return 0;
}

/* Waits for READY, running the runtime's hooks when the init asks. */
static int wait_ready(struct create *cr, struct capsa_error **err)
{
	char buf[4096];
	size_t n;
	for (;;) {
		int t = oci_sync_recv(cr->sync, buf, sizeof(buf), &n);
		if (t == SYNC_READY)
			return 0;
		if (t == SYNC_ERROR)
			return error_set(err, EIO, "%s", buf + 1);
		if (t == SYNC_HOOKS) {
			_cleanup_free_ char *s = state_for_hooks(&cr->st, OCI_CREATING, cr->pid);
			if (oci_hooks_run(cr->c.hooks[OCI_HOOK_PRESTART], cr->c.n_hooks[OCI_HOOK_PRESTART], "prestart", s,
					  err) < 0 ||
			    oci_hooks_run(cr->c.hooks[OCI_HOOK_CREATE_RUNTIME], cr->c.n_hooks[OCI_HOOK_CREATE_RUNTIME],
					  "createRuntime", s, err) < 0)
				return -1;
			if (oci_sync_send(cr->sync, SYNC_GO, NULL, 0) < 0)
				return error_sys(err, errno, "sync with the container's init");
			continue;
		}
		if (t == 0)
			return error_set(err, EIO, "the container's init exited during create");
		return error_sys(err, errno, "sync with the container's init");
	}
}

static int spawn_init(struct create *cr, bool run_mode, struct capsa_error **err)
{
	const struct oci_config *c = &cr->c;
	int min_fd = 3 + cr->o->preserve_fds;
	struct init_args a = { .c = c, .o = cr->o, .st = &cr->st, .fifo = -1, .lock = cr->dirfd };
	for (size_t i = 0; i < OCI_MAX_NS; i++)
		a.ns_fds[i] = -1;
	uint64_t flags;
	int rc = -1, console = -1, sp[2] = { -1, -1 };
	if (open_namespaces(cr, &a, &flags, err) < 0)
		goto out;
	if (!run_mode) {
		if (mkfifoat(cr->dirfd, "exec.fifo", 0600) < 0) {
			error_sys(err, errno, "create exec.fifo");
			goto out;
		}
		a.fifo = oci_fd_above(openat(cr->dirfd, "exec.fifo", O_RDWR | O_CLOEXEC), min_fd);
		if (a.fifo < 0) {
			error_sys(err, errno, "open exec.fifo");
			goto out;
		}
	}
	if (c->process.terminal) {
		console = oci_fd_above(oci_console_connect(cr->o->console_socket, err), min_fd);
		if (console < 0)
			goto out;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		error_sys(err, errno, "create the sync channel");
		goto out;
	}
	sp[0] = oci_fd_above(sp[0], min_fd);
	sp[1] = oci_fd_above(sp[1], min_fd);
	a.sync = sp[1];
	a.rootfs = (struct linux_rootfs){
		.root = cr->st.rootfs,
		.readonly = c->root_readonly,
		.propagation = c->rootfs_propagation ? c->rootfs_propagation : MS_SLAVE | MS_REC,
		.mounts = c->mounts,
		.n_mounts = c->n_mounts,
		.default_devices = !dev_is_bind(c),
		.devices = dev_is_bind(c) ? NULL : c->devices,
		.n_devices = dev_is_bind(c) ? 0 : c->n_devices,
		.masked_paths = c->masked_paths,
		.readonly_paths = c->readonly_paths,
		.no_pivot = cr->o->no_pivot,
		.before_pivot = init_before_pivot,
		.before_pivot_ctx = &a,
	};
	a.launch = (struct oci_launch){
		.p = &c->process,
		.bpf = cr->bpf.len ? cr->bpf.data : NULL,
		.bpf_len = cr->bpf.len,
		.bpf_flags = cr->bpf_flags,
		.console = console,
		.console_dev = true,
		.preserve_fds = cr->o->preserve_fds,
	};
	int cgfd = cr->cg ? linux_cgroup_fd(cr->cg) : -1;
	pid_t pid = linux_clone(flags, cgfd, NULL, SIGCHLD);
	if (pid < 0) {
		error_sys(err, errno, "clone the container's init");
		goto out;
	}
	if (pid == 0) {
		close(sp[0]);
		init_main(&a);
	}
	cr->pid = pid;
	cr->sync = sp[0];
	sp[0] = -1;
	close(sp[1]);
	sp[1] = -1;
	if (cr->cg && cgfd < 0 && linux_cgroup_add_pid(cr->cg, pid, err) < 0)
		goto out;
	if (a.userns_new) {
		if (linux_userns_set_maps(pid, c->uid_maps, c->n_uid_maps, c->gid_maps, c->n_gid_maps, false, err) < 0)
			goto out;
	}
	if (oci_sync_send(cr->sync, SYNC_GO, &pid, sizeof(pid)) < 0) {
		error_sys(err, errno, "start the container's init");
		goto out;
	}
	rc = wait_ready(cr, err);
out:
	for (size_t i = 0; i < OCI_MAX_NS; i++)
		if (a.ns_fds[i] >= 0)
			close(a.ns_fds[i]);
	if (a.fifo >= 0)
		close(a.fifo);
	if (console >= 0)
		close(console);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return rc;
}

static void create_undo(struct create *cr)
{
	if (cr->pid > 0) {
		kill(cr->pid, SIGKILL);
		waitpid(cr->pid, NULL, 0);
	}
	if (cr->cg) {
		linux_cgroup_destroy(cr->cg, NULL);
	}
	if (cr->rootfd >= 0 && cr->st.id)
		rm_rf_at(cr->rootfd, cr->st.id, NULL);
}

static void create_release(struct create *cr)
{
	if (cr->sync >= 0)
		close(cr->sync);
	if (cr->dirfd >= 0)
		close(cr->dirfd);
	if (cr->rootfd >= 0)
		close(cr->rootfd);
	linux_cgroup_free(cr->cg);
	oci_config_release(&cr->c);
	oci_state_release(&cr->st);
	buf_release(&cr->bpf);
	strv_free(cr->owned);
}

static int do_create(struct create *cr, bool run_mode, struct capsa_error **err)
{
	const struct oci_create_opts *o = cr->o;
	if (oci_dir_open(cr->g, o->id, OCI_OPEN_CREATE, &cr->dirfd, err) < 0)
		return -1;
	cr->rootfd = open(oci_root(cr->g), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr->st.id = xstrdup(o->id);
	cr->st.created_ms = now_ms();
	char bundle[PATH_MAX];
	if (!realpath(o->bundle ? o->bundle : ".", bundle))
		return error_sys(err, errno, "bundle %s", o->bundle ? o->bundle : ".");
	cr->st.bundle = xstrdup(bundle);
	_cleanup_close_ int bfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return error_sys(err, errno, "bundle %s", bundle);
	/* 1 */
	if (load_config(cr, bfd, err) < 0 || check_config(cr, err) < 0 || resolve_paths(cr, bfd, err) < 0 ||
	    compile_seccomp(cr, err) < 0)
		return -1;
	json_t *an = json_object_get(cr->c.json, "annotations");
	cr->st.annotations = an ? json_dumps(an, JSON_COMPACT) : NULL;
	cr->st.has_hooks = cr->c.n_hooks[OCI_HOOK_POSTSTART] || cr->c.n_hooks[OCI_HOOK_POSTSTOP];
	/* 2 */
	if (linux_cgroup_mode() != CGROUP_MODE_NONE) {
		cr->st.cgroup = oci_cgroup_name(cr->g, cr->c.cgroups_path, o->id, err);
		if (!cr->st.cgroup)
			return -1;
		if (oci_state_write(cr->dirfd, &cr->st, err) < 0)
			return -1;
		if (linux_cgroup_create(cr->st.cgroup, &cr->c.limits, &cr->cg, err) < 0)
			return error_wrap(err, "linux.resources");
	}
	/* Without a cgroup namespace, a v1 cgroup mount shows the container's
	 * own cgroup of each hierarchy (programs read their limits there) */
	if (cr->cg && linux_cgroup_mode() == CGROUP_MODE_V1 && !oci_config_ns(&cr->c, CLONE_NEWCGROUP))
		for (size_t i = 0; i < cr->c.n_mounts; i++)
			if (str_eq(cr->c.mounts[i].fstype, "cgroup"))
				cr->c.mounts[i].cgroup_path = linux_cgroup_path(cr->cg);
	/* 3-6 */
	if (spawn_init(cr, run_mode, err) < 0)
		return -1;
	/* 7 */
	cr->st.pid = cr->pid;
	if (linux_proc_start_time(cr->pid, &cr->st.start_time) < 0)
		return error_set(err, ESRCH, "the container's init exited during create");
	cr->st.created = true;
	if (oci_state_write(cr->dirfd, &cr->st, err) < 0)
		return -1;
	if (o->pid_file && oci_write_pid_file(o->pid_file, cr->pid, err) < 0)
		return -1;
	return 0;
}

static void create_init(struct create *cr, const struct oci_global *g, const struct oci_create_opts *o)
{
	memset(cr, 0, sizeof(*cr));
	cr->g = g;
	cr->o = o;
	cr->rootfd = cr->dirfd = cr->sync = -1;
}

int oci_create(const struct oci_global *g, const struct oci_create_opts *o, struct capsa_error **err)
{
	struct create cr;
	create_init(&cr, g, o);
	int rc = do_create(&cr, false, err);
	if (rc < 0 && cr.dirfd >= 0)
		create_undo(&cr);
	create_release(&cr);
	return rc;
}

int oci_run(const struct oci_global *g, const struct oci_create_opts *o, bool detach, int *status,
	    struct capsa_error **err)
{
	struct create cr;
	create_init(&cr, g, o);
	*status = 0;
	if (do_create(&cr, true, err) < 0) {
		if (cr.dirfd >= 0)
			create_undo(&cr);
		create_release(&cr);
		return -1;
	}
	oci_sync_send(cr.sync, SYNC_START, NULL, 0);
	close(cr.sync);
	cr.sync = -1;
	if (cr.c.n_hooks[OCI_HOOK_POSTSTART]) {
		_cleanup_free_ char *s = oci_state_json(&cr.st, OCI_RUNNING);
		struct capsa_error *herr = NULL;
		if (oci_hooks_run(cr.c.hooks[OCI_HOOK_POSTSTART], cr.c.n_hooks[OCI_HOOK_POSTSTART], "poststart", s,
				  &herr) < 0) {
			warn(g, "%s", herr->msg);
			capsa_error_free(herr);
		}
	}
	if (detach) {
		create_release(&cr);
		return 0;
	}
	/* unlock while the container runs, so state/kill/exec work */
	close(cr.dirfd);
	cr.dirfd = -1;
	int st = oci_wait_forwarding(cr.pid);
	*status = st;
	cr.pid = 0;
	_cleanup_free_ char *id = xstrdup(o->id);
	create_release(&cr);
	return oci_delete(g, id, true, err);
}
