/* launch.c: the last steps of a container process, shared by the init
 * (create.c) and by exec (exec.c), plus the sync channel both use to talk
 * to the runtime command that cloned them.
 *
 * Order (the child, already in the container's namespaces and root):
 *  1. the terminal: a pty opened from the container's /dev/ptmx, the slave
 *     becomes stdio and the controlling terminal (setsid), bound on
 *     /dev/console for the init, and the master sent over the console
 *     socket (runc's protocol: one SCM_RIGHTS message);
 *  2. cwd;
 *  3. the executable, looked up in the process's PATH, so that a missing
 *     command fails `create` (engines map "not found" to exit 127);
 *  4. linux_proc_apply() without seccomp: oom_score_adj, rlimits, bounding
 *     set, groups, gid, uid, capabilities, no_new_privs, umask (without
 *     no_new_privs the seccomp filter goes in first: installing one then
 *     needs CAP_SYS_ADMIN, which this step may drop);
 *  ... the caller waits for `start` here (the init) ...
 *  5. signal mask and dispositions reset (the runtime ignores SIGPIPE; that
 *     must not leak into the container), the seccomp filter, execve.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/proc.h"
#include "linux/tty.h"
#include "linux/user.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

static int setup_terminal(struct oci_launch *l, struct capsa_error **err)
{
	int master, slave, idx;
	if (linux_pty_open(&master, &slave, l->p->console_rows, l->p->console_cols, &idx, err) < 0)
		return error_wrap(err, "terminal");
	if (l->console_dev) {
		/* /dev/console: an empty file with the slave bound on it */
		int fd = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		char src[32];
		snprintf(src, sizeof(src), "/dev/pts/%d", idx);
		if (mount(src, "/dev/console", NULL, MS_BIND, NULL) < 0) {
			int e = errno;
			close(master);
			close(slave);
			return error_sys(err, e, "terminal: bind %s on /dev/console", src);
		}
	}
	int rc = linux_send_fd(l->console, master, "/dev/ptmx", err);
	close(master);
	close(l->console);
	l->console = -1;
	if (rc < 0) {
		close(slave);
		return -1;
	}
	if (setsid() < 0 && errno != EPERM) {
		close(slave);
		return error_sys(err, errno, "terminal: setsid");
	}
	if (ioctl(slave, TIOCSCTTY, 0) < 0) {
		close(slave);
		return error_sys(err, errno, "terminal: make it the controlling terminal");
	}
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0) {
			close(slave);
			return error_sys(err, errno, "terminal: stdio");
		}
	if (slave > 2)
		close(slave);
	return 0;
}

static int set_home(struct oci_launch *l, struct capsa_error **err)
{
	_cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char uid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)l->p->uid);
	struct linux_user u;
	const char *home = "/";
	if (root >= 0 && linux_user_resolve(root, uid, &u, NULL) == 0) {
		snprintf(l->home, sizeof(l->home), "HOME=%s", u.home);
		linux_user_release(&u);
	} else {
		snprintf(l->home, sizeof(l->home), "HOME=%s", home);
	}
	size_t n = strv_len(l->p->env);
	char **env = xcalloc(n + 2, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		env[i] = l->p->env[i];
	env[n] = l->home;
	l->env = env;
	(void)err;
	return 0;
}

int oci_launch_prepare(struct oci_launch *l, struct capsa_error **err)
{
	const struct oci_process *p = l->p;
	/* 1 */
	if (p->terminal && setup_terminal(l, err) < 0)
		return -1;
	/* 2: runc makes a missing cwd */
	const char *cwd = p->cwd ? p->cwd : "/";
	if (chdir(cwd) < 0) {
		if (errno != ENOENT || mkdir_p(cwd, 0755) < 0 || chdir(cwd) < 0)
			return error_sys(err, errno, "process.cwd %s", cwd);
	}
	/* runc's rule: HOME from the image's /etc/passwd when the process has
	 * none (containerd does not set it) */
	if (!oci_env_get(p->env, "HOME") && set_home(l, err) < 0)
		return -1;
	/* 3 */
	int e = linux_find_executable(p->args[0], oci_env_get(p->env, "PATH"), l->exe, sizeof(l->exe));
	if (e == ENOENT)
		return error_set(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", p->args[0]);
	if (e)
		return error_sys(err, e, "exec: \"%s\"", p->args[0]);
	/* 4 */
	struct linux_proc_sec s = {
		.uid = p->uid,
		.gid = p->gid,
		.groups = p->groups,
		.n_groups = p->n_groups,
		.set_ids = true,
		.set_caps = p->has_caps,
		.cap_bounding = p->cap_bounding,
		.cap_effective = p->cap_effective,
		.cap_permitted = p->cap_permitted,
		.cap_inheritable = p->cap_inheritable,
		/* the kernel raises only what is permitted and inheritable;
		 * runc ignores the rest, and so do we */
		.cap_ambient = p->cap_ambient & p->cap_permitted & p->cap_inheritable,
		.no_new_privs = p->no_new_privs,
		.rlimits = p->rlimits,
		.n_rlimits = p->n_rlimits,
		.oom_score_adj = p->oom_score_adj,
		.set_oom_score_adj = p->has_oom_score_adj,
		.umask = p->has_umask ? p->umask : 022,
		.set_umask = true,
	};
	/* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which
	 * the process may be about to lose: install it now, as runc does
	 * (the filter then also covers the steps below and the wait for
	 * start).  With no_new_privs it waits until right before execve. */
	if (l->bpf && !p->no_new_privs) {
		if (linux_seccomp_install(l->bpf, l->bpf_len, l->bpf_flags, err) < 0)
			return -1;
		l->bpf = NULL;
	}
	if (linux_proc_apply(&s, err) < 0)
		return -1;
	/* fds 3 .. 3+n-1 are the caller's to pass on; the rest close at exec */
	for (int fd = 3; fd < 3 + l->preserve_fds; fd++)
		fd_set_cloexec(fd, false);
	if (linux_fds_cloexec_from(3 + l->preserve_fds) < 0)
		return error_sys(err, errno, "close inherited file descriptors");
	return 0;
}

int oci_launch_exec(struct oci_launch *l, int *code, struct capsa_error **err)
{
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (l->bpf && linux_seccomp_install(l->bpf, l->bpf_len, l->bpf_flags, err) < 0) {
		*code = 1;
		return -1;
	}
	char *const noenv[] = { NULL };
	execve(l->exe, l->p->args, l->env ? l->env : l->p->env ? l->p->env : noenv);
	int e = errno;
	*code = e == ENOENT ? 127 : 126;
	return error_sys(err, e, "exec %s", l->exe);
}

/* --- waiting in the foreground ------------------------------------------- */

static volatile sig_atomic_t fwd_signal;

static void on_forward(int sig)
{
	fwd_signal = sig;
}

int oci_wait_forwarding(pid_t pid)
{
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
	struct sigaction sa = { .sa_handler = on_forward };
	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		sigaction(fwd[i], &sa, NULL);
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, 0);
		if (r == pid)
			break;
		if (r < 0 && errno == EINTR) {
			if (fwd_signal) {
				kill(pid, fwd_signal);
				fwd_signal = 0;
			}
			continue;
		}
		return 255;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		signal(fwd[i], SIG_DFL);
	return oci_wait_status(st);
}

/* --- the sync channel ----------------------------------------------------- */

int oci_sync_send(int fd, char type, const void *p, size_t n)
{
	char buf[4096];
	if (n > sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	buf[0] = type;
	if (n)
		memcpy(buf + 1, p, n);
	ssize_t r;
	do
		r = send(fd, buf, n + 1, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)(n + 1) ? 0 : -1;
}

int oci_sync_recv(int fd, char *buf, size_t len, size_t *n)
{
	ssize_t r;
	do
		r = recv(fd, buf, len - 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0) {
		buf[0] = '\0';
		*n = 0;
		return 0;
	}
	buf[r] = '\0';
	*n = (size_t)r - 1;
	return (unsigned char)buf[0];
}

void oci_child_fail(int sync, struct capsa_error *err)
{
	const char *m = err && err->msg ? err->msg : "unknown error";
	oci_sync_send(sync, SYNC_ERROR, m, strlen(m));
	_exit(1);
}

void oci_child_die(int log_fd, bool log_json, int code, struct capsa_error *err)
{
	const char *m = err && err->msg ? err->msg : "unknown error";
	char line[4200];
	int n = snprintf(line, sizeof(line), "capsa-runc: %s\n", m);
	if (write(2, line, (size_t)MIN(n, (int)sizeof(line) - 1)) < 0) {
		/* stderr is gone: the log below is all there is */
	}
	if (log_fd >= 0) {
		char *l = oci_log_line(log_json, "error", m);
		if (write(log_fd, l, strlen(l)) < 0) {
			/* nowhere left to report */
		}
		free(l);
	}
	_exit(code);
}

int oci_fd_above(int fd, int min)
{
	if (fd < 0 || fd >= min)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
	if (n < 0)
		return -1;
	close(fd);
	return n;
}

char *oci_log_line(bool json, const char *level, const char *msg)
{
	char ts[48];
	format_rfc3339(now_ms(), ts, sizeof(ts));
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "level", json_string(level));
		json_object_set_new(o, "msg", json_string(msg));
		json_object_set_new(o, "time", json_string(ts));
		char *s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		char *line = xasprintf("%s\n", s);
		free(s);
		return line;
	}
	/* logrus's text format, which runc writes */
	struct buf b = BUF_INIT;
	buf_appendf(&b, "time=\"%s\" level=%s msg=\"", ts, level);
	for (const char *p = msg; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_putc(&b, '\\');
		buf_putc(&b, *p == '\n' ? ' ' : *p);
	}
	buf_appendf(&b, "\"\n");
	return buf_steal(&b);
}
