/* spawn.c: starting a detached supervisor.
 *
 * The supervisor must outlive its creator and never hold the creator's
 * terminal or files: double fork with setsid in between, stdio on
 * /dev/null, every fd closed but the creator socket (3), the sandbox lock
 * (4) and, when it has one made for it, the sandbox's network namespace
 * (5), an empty signal mask and a minimal environment.  Only
 * async-signal-safe calls run between fork and exec; argv and env are built
 * before forking.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "util/fs.h"
#include "util/paths.h"

int supervisor_spawn(struct capsa_ctx *ctx, int lock_fd, int netns_fd, struct proto_conn *conn, pid_t *pid,
		     struct capsa_error **err)
{
	(void)ctx;
	_cleanup_free_ char *path = capsa_helper_path("capsa-supervisor");
	if (!path)
		return error_set(err, ENOENT, "capsa-supervisor not found next to capsa or in the libexec directory");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return error_sys(err, errno, "create supervisor socket");
	char *argv[] = { (char *)"capsa-supervisor", NULL };
	/* a minimal environment; CAPSA_TRACE passes through for timing work */
	const char *trace = getenv("CAPSA_TRACE");
	_cleanup_free_ char *trace_env = trace ? xasprintf("CAPSA_TRACE=%s", trace) : NULL;
	/* ...and so does the test knob that makes idmapped mounts fail */
	const char *noidmap = getenv("CAPSA_TEST_NO_IDMAP");
	_cleanup_free_ char *noidmap_env = noidmap ? xasprintf("CAPSA_TEST_NO_IDMAP=%s", noidmap) : NULL;
	char *envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", trace_env ? trace_env : noidmap_env,
			 trace_env ? noidmap_env : NULL, NULL };
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t p = fork();
	if (p == 0) {
		setsid();
		pid_t g = fork();
		if (g != 0)
			_exit(g < 0 ? 1 : 0);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(126);
		/* sv[1], lock_fd and netns_fd may already sit on 3 to 5: park
		 * them high first */
		int s = fcntl(sv[1], F_DUPFD, 100);
		int l = fcntl(lock_fd, F_DUPFD, 100);
		int n = netns_fd >= 0 ? fcntl(netns_fd, F_DUPFD, 100) : -1;
		if (s < 0 || l < 0 || dup2(s, 3) < 0 || dup2(l, 4) < 0 || (netns_fd >= 0 && (n < 0 || dup2(n, 5) < 0)))
			_exit(126);
		int first = netns_fd >= 0 ? 6 : 5;
		if (syscall(SYS_close_range, first, ~0U, 0) < 0)
			for (int fd = first; fd < 4096; fd++)
				close(fd);
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		for (int sig = 1; sig < 65; sig++)
			sigaction(sig, &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(path, argv, envp);
		_exit(127);
	}
	int saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (p < 0) {
		close(sv[0]);
		return error_sys(err, saved, "fork supervisor");
	}
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		close(sv[0]);
		return error_set(err, EIO, "start supervisor %s: intermediate process failed", path);
	}
	proto_conn_init(conn, sv[0]);
	*pid = 0; /* learned from READY */
	return 0;
}
