/* exec.c: `exec`: a new process in a running container, in all of its
 * namespaces and its cgroup, with its seccomp filter and the process
 * settings given (--process) or the container's own (args).
 *
 * Step by step:
 *  1. the record; the container must be created or running (not paused);
 *  2. the process: --process FILE, or the container's process with the
 *     given args, env, cwd, user and added capabilities;
 *  3. the init's namespace files opened (only those that differ from ours:
 *     joining one's own user namespace fails), then the init checked
 *     against the record, so a reused pid is never joined;
 *  4. setns into its pid namespace (children only) and clone the child,
 *     into the cgroup (clone3 on v2; the pid written on v1);
 *  5. the child: not dumpable (a process in the container must not ptrace
 *     it while it still holds host fds), joins user, ipc, uts, net, cgroup,
 *     time and last mount namespaces, then oci_launch_prepare() and exec;
 *     errors come back over the sync channel, whose close-on-exec end
 *     closing means success;
 *  6. the pid file; with --detach return, else wait for the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/ns.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
	const char *name;
	int type;
} join_order[] = {
	{ "user", CLONE_NEWUSER }, { "ipc", CLONE_NEWIPC },	  { "uts", CLONE_NEWUTS }, { "net", CLONE_NEWNET },
	{ "cgroup", CLONE_NEWCGROUP }, { "time", CLONE_NEWTIME }, { "mnt", CLONE_NEWNS },
};

struct exec_child {
	int sync;
	int ns[ARRAY_SIZE(join_order)];
	struct oci_launch launch;
};

static __attribute__((noreturn)) void exec_child_main(struct exec_child *x)
{
	struct capsa_error *err = NULL;
	char buf[16];
	size_t n;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (oci_sync_recv(x->sync, buf, sizeof(buf), &n) != SYNC_GO)
		_exit(1);
	for (size_t i = 0; i < ARRAY_SIZE(join_order); i++)
		if (x->ns[i] >= 0 && linux_setns_fd(x->ns[i], join_order[i].type, join_order[i].name, &err) < 0)
			oci_child_fail(x->sync, err);
	if (oci_launch_prepare(&x->launch, &err) < 0)
		oci_child_fail(x->sync, err);
	int code = 1;
	oci_launch_exec(&x->launch, &code, &err);
	oci_child_fail(x->sync, err);
}

/* --- the process to run --------------------------------------------------- */

struct exec_proc {
	struct oci_process p;
	void *json;	     /* of --process */
	struct oci_config cfg; /* the container's, for args mode */
	char **env;	     /* merged env (owned vector, borrowed strings) */
	char **owned;
};

static int parse_user(const char *spec, struct oci_process *p, struct capsa_error **err)
{
	_cleanup_strv_ char **parts = strv_split(spec, ':');
	int64_t v;
	if (!parts[0] || parse_int64(parts[0], 0, UINT32_MAX - 1, &v) < 0)
		return error_set(err, EINVAL, "--user '%s': not uid[:gid]", spec);
	p->uid = (uid_t)v;
	if (parts[1]) {
		if (parse_int64(parts[1], 0, UINT32_MAX - 1, &v) < 0 || parts[2])
			return error_set(err, EINVAL, "--user '%s': not uid[:gid]", spec);
		p->gid = (gid_t)v;
	}
	p->n_groups = 0;
	return 0;
}

static int build_process(int dirfd, const struct oci_exec_opts *o, struct exec_proc *x, struct capsa_error **err)
{
	if (o->process_file) {
		struct buf b = BUF_INIT;
		int rc;
		if (strcmp(o->process_file, "-") == 0)
			rc = read_all(0, &b, OCI_CONFIG_MAX) < 0 ? error_sys(err, errno, "read the process from stdin") : 0;
		else
			rc = read_file_at(AT_FDCWD, o->process_file, OCI_CONFIG_MAX, &b, err);
		if (rc == 0)
			rc = oci_process_parse(b.data ? b.data : "", b.len, &x->p, &x->json, err);
		buf_release(&b);
		return rc;
	}
	if (!o->args || !o->args[0])
		return error_set(err, EINVAL, "exec: no command given (args or --process)");
	if (oci_config_load(dirfd, &x->cfg, err) < 0)
		return -1;
	x->p = x->cfg.process;
	/* the vectors below are ours; the config's stay the config's */
	x->p.args = o->args;
	x->p.terminal = o->tty;
	x->p.console_rows = x->p.console_cols = 0;
	if (o->cwd)
		x->p.cwd = o->cwd;
	size_t ne = strv_len(x->cfg.process.env) + strv_len(o->env);
	x->env = xcalloc(ne + 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; x->cfg.process.env && x->cfg.process.env[i]; i++)
		x->env[k++] = x->cfg.process.env[i];
	for (size_t i = 0; o->env && o->env[i]; i++)
		x->env[k++] = o->env[i];
	x->p.env = x->env;
	if (o->user && parse_user(o->user, &x->p, err) < 0)
		return -1;
	if (o->no_new_privs)
		x->p.no_new_privs = true;
	for (size_t i = 0; o->cap_add && o->cap_add[i]; i++) {
		int c = linux_cap_from_name(o->cap_add[i]);
		if (c < 0)
			return error_set(err, EINVAL, "--cap '%s': unknown capability", o->cap_add[i]);
		uint64_t bit = UINT64_C(1) << c;
		x->p.has_caps = true;
		x->p.cap_bounding |= bit;
		x->p.cap_effective |= bit;
		x->p.cap_permitted |= bit;
		x->p.cap_inheritable |= bit;
	}
	return 0;
}

static void exec_proc_release(struct exec_proc *x)
{
	if (x->json) {
		oci_process_release(&x->p);
		json_decref(x->json);
	}
	oci_config_release(&x->cfg);
	free(x->env);
}

/* seccomp.bpf: the flags word, then the program */
static int load_seccomp(int dirfd, struct buf *b, struct oci_launch *l, struct capsa_error **err)
{
	if (read_file_at(dirfd, "seccomp.bpf", 1u << 20, b, NULL) < 0)
		return errno == ENOENT ? 0 : error_sys(err, errno, "read the container's seccomp program");
	if (b->len <= sizeof(unsigned))
		return error_set(err, EINVAL, "the container's seccomp program is damaged");
	memcpy(&l->bpf_flags, b->data, sizeof(unsigned));
	l->bpf = b->data + sizeof(unsigned);
	l->bpf_len = b->len - sizeof(unsigned);
	return 0;
}

/* Opens the init's namespaces that differ from ours. */
static int open_init_ns(pid_t pid, int min_fd, int *fds, struct capsa_error **err)
{
	for (size_t i = 0; i < ARRAY_SIZE(join_order); i++) {
		fds[i] = -1;
		char theirs[64], ours[64];
		snprintf(theirs, sizeof(theirs), "/proc/%d/ns/%s", (int)pid, join_order[i].name);
		snprintf(ours, sizeof(ours), "/proc/self/ns/%s", join_order[i].name);
		struct stat a, b;
		if (stat(theirs, &a) < 0) {
			if (errno == ENOENT && join_order[i].type == CLONE_NEWTIME)
				continue; /* a kernel without time namespaces */
			return error_sys(err, errno, "open %s", theirs);
		}
		if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			continue;
		fds[i] = oci_fd_above(open(theirs, O_RDONLY | O_CLOEXEC), min_fd);
		if (fds[i] < 0)
			return error_sys(err, errno, "open %s", theirs);
	}
	return 0;
}

static int join_pid_ns(pid_t pid, struct capsa_error **err)
{
	char theirs[64];
	snprintf(theirs, sizeof(theirs), "/proc/%d/ns/pid", (int)pid);
	struct stat a, b;
	if (stat(theirs, &a) < 0)
		return error_sys(err, errno, "open %s", theirs);
	if (stat("/proc/self/ns/pid", &b) == 0 && a.st_ino == b.st_ino)
		return 0;
	_cleanup_close_ int fd = open(theirs, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWPID) < 0)
		return error_sys(err, errno, "join the pid namespace of %d", (int)pid);
	return 0;
}

static int spawn(const struct oci_state *st, struct exec_child *x, struct linux_cgroup *cg, pid_t *out,
		 struct capsa_error **err)
{
	int sp[2];
	int min_fd = 3 + x->launch.preserve_fds;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return error_sys(err, errno, "create the sync channel");
	sp[0] = oci_fd_above(sp[0], min_fd);
	sp[1] = oci_fd_above(sp[1], min_fd);
	x->sync = sp[1];
	int cgfd = cg ? linux_cgroup_fd(cg) : -1;
	pid_t pid = linux_clone(0, cgfd, NULL, SIGCHLD);
	if (pid < 0) {
		int e = errno;
		close(sp[0]);
		close(sp[1]);
		return error_sys(err, e, "clone the exec process");
	}
	if (pid == 0) {
		close(sp[0]);
		exec_child_main(x);
	}
	close(sp[1]);
	int rc = 0;
	if (cg && cgfd < 0 && linux_cgroup_add_pid(cg, pid, err) < 0)
		rc = -1;
	if (rc == 0 && oci_sync_send(sp[0], SYNC_GO, NULL, 0) < 0)
		rc = error_sys(err, errno, "start the exec process");
	if (rc == 0) {
		char buf[4096];
		size_t n;
		int t = oci_sync_recv(sp[0], buf, sizeof(buf), &n);
		if (t == SYNC_ERROR)
			rc = error_set(err, EIO, "%s", buf + 1);
		else if (t != 0)
			rc = error_sys(err, errno ? errno : EIO, "exec in container '%s'", st->id);
	}
	close(sp[0]);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	*out = pid;
	return 0;
}

static int exec_in(int dirfd, const struct oci_state *st, const struct oci_exec_opts *o, int *status,
		   struct capsa_error **err)
{
	struct exec_proc xp = { 0 };
	struct exec_child x = { .sync = -1 };
	struct buf bpf = BUF_INIT;
	struct linux_cgroup *cg = NULL;
	int console = -1, rc = -1;
	_cleanup_close_ int own_pidns = -1;
	for (size_t i = 0; i < ARRAY_SIZE(x.ns); i++)
		x.ns[i] = -1;
	int min_fd = 3 + o->preserve_fds;
	/* 2 */
	if (build_process(dirfd, o, &xp, err) < 0)
		goto out;
	x.launch = (struct oci_launch){ .p = &xp.p, .console = -1, .preserve_fds = o->preserve_fds };
	if (load_seccomp(dirfd, &bpf, &x.launch, err) < 0)
		goto out;
	if (xp.p.terminal) {
		if (!o->console_socket) {
			error_set(err, EINVAL, "exec with a terminal needs --console-socket");
			goto out;
		}
		console = oci_fd_above(oci_console_connect(o->console_socket, err), min_fd);
		if (console < 0)
			goto out;
		x.launch.console = console;
	}
	if (st->cgroup && linux_cgroup_open(st->cgroup, &cg, err) < 0)
		goto out;
	/* 3 */
	if (open_init_ns(st->pid, min_fd, x.ns, err) < 0)
		goto out;
	if (!oci_init_alive(st)) {
		error_set(err, ESRCH, "container '%s': container not running", st->id);
		goto out;
	}
	/* 4, 5; our own pid namespace for children is restored right after
	 * the clone, so nothing this process starts later (a sanitizer's
	 * helper thread included) lands in the container's */
	own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (join_pid_ns(st->pid, err) < 0)
		goto out;
	pid_t pid = -1;
	int spawned = spawn(st, &x, cg, &pid, err);
	if (own_pidns >= 0 && setns(own_pidns, CLONE_NEWPID) < 0 && spawned == 0) {
		/* harmless for the exec itself: only later children are affected */
	}
	if (spawned < 0)
		goto out;
	/* 6 */
	if (o->pid_file && oci_write_pid_file(o->pid_file, pid, err) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out;
	}
	rc = 0;
	if (!o->detach)
		*status = oci_wait_forwarding(pid);
out:
	for (size_t i = 0; i < ARRAY_SIZE(x.ns); i++)
		if (x.ns[i] >= 0)
			close(x.ns[i]);
	if (console >= 0)
		close(console);
	linux_cgroup_free(cg);
	buf_release(&bpf);
	exec_proc_release(&xp);
	return rc;
}

int oci_exec(const struct oci_global *g, const struct oci_exec_opts *o, int *status, struct capsa_error **err)
{
	*status = 0;
	int dirfd;
	if (oci_dir_open(g, o->id, OCI_OPEN_LOCK, &dirfd, err) < 0)
		return -1;
	struct oci_state st;
	int rc = oci_state_read(dirfd, o->id, &st, err);
	if (rc == 0) {
		enum oci_status s = oci_status_of(dirfd, &st);
		/* 1; the lock is not held while the process runs */
		flock(dirfd, LOCK_UN);
		if (s != OCI_RUNNING && s != OCI_CREATED)
			rc = error_set(err, EINVAL, "cannot exec in container '%s': %s", o->id, oci_status_name(s));
		else
			rc = exec_in(dirfd, &st, o, status, err);
	}
	oci_state_release(&st);
	close(dirfd);
	return rc;
}
