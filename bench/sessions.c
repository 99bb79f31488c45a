/* sessions.c: the library side of bench/sessions.py.
 *
 *   bench-sessions exec ROOT RUNROOT SANDBOX N [PROG]
 *                                               exec PROG (default `true`) N times:
 *                                               capsa_sandbox_exec (stdio to /dev/null) and
 *                                               capsa_proc_start; the median and p90 of each
 *   bench-sessions spawn PATH ARGV0 N           posix_spawn + waitpid of PATH on the host N
 *                                               times: the floor under an exec round trip
 *   bench-sessions files ROOT RUNROOT SANDBOX N [USER]
 *                                               N sequential 1 KiB writes + reads through
 *                                               one capsa_files handle; median per pair, total;
 *                                               then N stats; as USER when given (the
 *                                               agent switches credentials per step)
 *   bench-sessions tunnel ROOT RUNROOT SANDBOX PORT
 *                                               capsa_tunnel_open to PORT, read to EOF; MB/s
 *   bench-sessions connect HOST PORT            TCP connect, read to EOF; MB/s
 *   bench-sessions sink                         read stdin to EOF; MB/s
 *
 * Throughput lines are "bytes seconds MB/s".  Timing uses CLOCK_MONOTONIC.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capsa/files.h"
#include "capsa/sandbox.h"
#include "capsa/session.h"
#include "capsa/tunnel.h"
#include "util/str.h"

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void stats(const char *what, int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	printf("%s median_ms %.3f p90_ms %.3f n %d\n", what, (double)v[n / 2] / 1e6, (double)v[n * 9 / 10] / 1e6, n);
}

static void die(const char *what, struct capsa_error *err)
{
	fprintf(stderr, "bench-sessions: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

static struct capsa_ctx *open_ctx(const char *root, const char *run)
{
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx;
	struct capsa_error *err = NULL;
	if (capsa_ctx_open(&o, &ctx, &err) < 0)
		die("open store", err);
	return ctx;
}

static void on_exit_cb(void *ud, struct capsa_proc *p, const struct capsa_exit *e)
{
	(void)p;
	*(int *)ud = e->exit_code;
}

static int bench_exec(struct capsa_ctx *ctx, const char *sb, int n, const char *prog)
{
	char *argv[] = { (char *)prog, NULL };
	struct capsa_exec_opts o = { .argv = argv };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct capsa_stdio io = { .in_fd = -1, .out_fd = null, .err_fd = null, .sig_fd = -1 };
	int64_t *t = xcalloc((size_t)n, sizeof(int64_t));
	struct capsa_error *err = NULL;
	for (int i = 0; i < n + 5; i++) {
		struct capsa_exit e;
		int64_t t0 = mono_ns();
		if (capsa_sandbox_exec(ctx, sb, &o, &io, &e, &err) < 0 || e.exit_code != 0)
			die("exec", err);
		if (i >= 5) /* the first ones warm the caches */
			t[i - 5] = mono_ns() - t0;
	}
	stats("exec_library", t, n);
	struct capsa_proc_opts po = { .argv = argv };
	struct capsa_proc_callbacks cb = { .exit = on_exit_cb };
	for (int i = 0; i < n + 5; i++) {
		int code = -1;
		struct capsa_proc *p;
		int64_t t0 = mono_ns();
		if (capsa_proc_start(ctx, sb, &po, &cb, &code, &p, &err) < 0)
			die("proc start", err);
		int r;
		while ((r = capsa_proc_process(p, &err)) == 0) {
			struct pollfd pfd = { .fd = capsa_proc_fd(p), .events = POLLIN };
			poll(&pfd, 1, -1);
		}
		if (r < 0 || code != 0)
			die("proc", err);
		capsa_proc_free(p);
		if (i >= 5)
			t[i - 5] = mono_ns() - t0;
	}
	stats("exec_async", t, n);
	free(t);
	close(null);
	return 0;
}

/* What the process itself costs, without capsa: the same binary started
 * and reaped on the host. */
static int bench_spawn(const char *path, const char *argv0, int n)
{
	char *argv[] = { (char *)argv0, NULL };
	char *envp[] = { (char *)"PATH=/usr/bin:/bin", NULL };
	int64_t *t = xcalloc((size_t)n, sizeof(int64_t));
	for (int i = 0; i < n + 5; i++) {
		pid_t pid;
		int st;
		int64_t t0 = mono_ns();
		if (posix_spawn(&pid, path, NULL, NULL, argv, envp) != 0 || waitpid(pid, &st, 0) != pid ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "bench-sessions: spawn %s failed\n", path);
			return 1;
		}
		if (i >= 5)
			t[i - 5] = mono_ns() - t0;
	}
	stats("spawn_host", t, n);
	free(t);
	return 0;
}

static int bench_files(struct capsa_ctx *ctx, const char *sb, int n, const char *user)
{
	struct capsa_files *f;
	struct capsa_error *err = NULL;
	if (capsa_files_open(ctx, sb, &f, &err) < 0)
		die("files open", err);
	if (capsa_files_mkdir(f, "/bench-files", 0777, true, NULL, &err) < 0)
		die("mkdir", err);
	capsa_files_set_user(f, user);
	char data[1024];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	int64_t *t = xcalloc((size_t)n, sizeof(int64_t));
	int64_t total0 = mono_ns();
	for (int i = 0; i < n; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/bench-files/f%d", i);
		int64_t t0 = mono_ns();
		if (capsa_files_write(f, path, data, sizeof(data), NULL, &err) < 0)
			die("write", err);
		char *back;
		size_t len;
		if (capsa_files_read(f, path, 1 << 20, &back, &len, &err) < 0)
			die("read", err);
		if (len != sizeof(data) || memcmp(back, data, len) != 0)
			die("read back", NULL);
		free(back);
		t[i] = mono_ns() - t0;
	}
	double total = (double)(mono_ns() - total0) / 1e9;
	stats("files_write_read", t, n);
	printf("files_total_s %.3f n %d\n", total, n);
	for (int i = 0; i < n; i++) {
		struct capsa_file_info fi;
		int64_t t0 = mono_ns();
		if (capsa_files_stat(f, "/bench-files/f0", &fi, &err) < 0)
			die("stat", err);
		capsa_file_info_release(&fi);
		t[i] = mono_ns() - t0;
	}
	stats("files_stat", t, n);
	capsa_files_set_user(f, NULL);
	capsa_files_remove(f, "/bench-files", true, NULL);
	capsa_files_close(f);
	free(t);
	return 0;
}

static int drain(int fd)
{
	size_t cap = 1 << 20;
	char *buf = xmalloc(cap);
	uint64_t total = 0;
	int64_t t0 = mono_ns();
	for (;;) {
		ssize_t r = read(fd, buf, cap);
		if (r < 0) {
			perror("bench-sessions: read");
			return 1;
		}
		if (r == 0)
			break;
		total += (uint64_t)r;
	}
	double s = (double)(mono_ns() - t0) / 1e9;
	printf("%llu %.4f %.1f\n", (unsigned long long)total, s, (double)total / 1e6 / s);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 6 && strcmp(argv[1], "exec") == 0)
		return bench_exec(open_ctx(argv[2], argv[3]), argv[4], atoi(argv[5]), argc > 6 ? argv[6] : "true");
	if (argc >= 5 && strcmp(argv[1], "spawn") == 0)
		return bench_spawn(argv[2], argv[3], atoi(argv[4]));
	if (argc >= 6 && strcmp(argv[1], "files") == 0)
		return bench_files(open_ctx(argv[2], argv[3]), argv[4], atoi(argv[5]), argc > 6 ? argv[6] : NULL);
	if (argc >= 6 && strcmp(argv[1], "tunnel") == 0) {
		struct capsa_error *err = NULL;
		int fd = capsa_tunnel_open(open_ctx(argv[2], argv[3]), argv[4], (uint16_t)atoi(argv[5]), &err);
		if (fd < 0)
			die("tunnel", err);
		return drain(fd);
	}
	if (argc >= 4 && strcmp(argv[1], "connect") == 0) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &sa.sin_addr);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("bench-sessions: connect");
			return 1;
		}
		return drain(fd);
	}
	if (argc >= 2 && strcmp(argv[1], "sink") == 0)
		return drain(0);
	fprintf(stderr, "usage: see the top of bench/sessions.c\n");
	return 2;
}
