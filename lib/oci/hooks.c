/* hooks.c: running the config's hooks.  Each hook is executed with its own
 * args and env (nothing inherited), the container's state JSON on stdin,
 * and killed when its timeout passes.  Used by create/start/delete in the
 * runtime's namespaces and by the container's init in the container's
 * (createContainer, startContainer): the child is a raw clone, so this is
 * safe in the init too, which is itself a raw clone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/ns.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

static __attribute__((noreturn)) void hook_child(const struct oci_hook *h, int in)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(in, 0) < 0)
		_exit(126);
	char *const noargs[] = { (char *)h->path, NULL };
	char *const noenv[] = { NULL };
	execve(h->path, h->args && h->args[0] ? h->args : noargs, h->env ? h->env : noenv);
	_exit(127);
}

/* Waits for the hook (pidfd when there is one) at most timeout_ms
 * (<= 0: no limit); kills it when time is up. */
static int hook_wait(pid_t pid, int pidfd, int timeout_ms, int *status)
{
	if (pidfd >= 0 && timeout_ms > 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int r;
		int64_t deadline = mono_ms() + timeout_ms;
		do {
			int left = (int)(deadline - mono_ms());
			r = poll(&p, 1, left > 0 ? left : 0);
		} while (r < 0 && errno == EINTR);
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return -1;
		}
	} else if (timeout_ms > 0) {
		/* no pidfd (before 5.3): poll the child */
		int64_t deadline = mono_ms() + timeout_ms;
		while (waitpid(pid, status, WNOHANG) == 0) {
			if (mono_ms() > deadline) {
				kill(pid, SIGKILL);
				waitpid(pid, status, 0);
				return -1;
			}
			usleep(1000);
		}
		return 0;
	}
	while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
	}
	return 0;
}

static int run_one(const struct oci_hook *h, const char *kind, size_t i, const char *state,
		   struct capsa_error **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return error_sys(err, errno, "hooks.%s[%zu]: pipe", kind, i);
	int pidfd = -1;
	pid_t pid = linux_clone(0, -1, &pidfd, SIGCHLD);
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return error_sys(err, e, "hooks.%s[%zu] %s: start", kind, i, h->path);
	}
	if (pid == 0)
		hook_child(h, p[0]);
	close(p[0]);
	/* a hook may not read its stdin: never block or die on that */
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	fd_set_nonblock(p[1], true);
	if (write(p[1], state, strlen(state)) < 0) {
		/* EPIPE or EAGAIN: the hook does not want it all */
	}
	close(p[1]);
	signal(SIGPIPE, old);
	int status = 0;
	int timed_out = hook_wait(pid, pidfd, h->timeout * 1000, &status);
	if (pidfd >= 0)
		close(pidfd);
	if (timed_out < 0)
		return error_set(err, ETIMEDOUT, "hooks.%s[%zu] %s: timed out after %d s", kind, i, h->path,
				 h->timeout);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return error_set(err, ENOENT, "hooks.%s[%zu] %s: cannot be executed (or exited with 127)", kind, i,
				 h->path);
	if (WIFSIGNALED(status))
		return error_set(err, EIO, "hooks.%s[%zu] %s: killed by signal %d", kind, i, h->path,
				 WTERMSIG(status));
	return error_set(err, EIO, "hooks.%s[%zu] %s: exited with status %d", kind, i, h->path,
			 WEXITSTATUS(status));
}

int oci_hooks_run(const struct oci_hook *h, size_t n, const char *kind, const char *state, struct capsa_error **err)
{
	for (size_t i = 0; i < n; i++)
		if (run_one(&h[i], kind, i, state, err) < 0)
			return -1;
	return 0;
}
