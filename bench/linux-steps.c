/* linux-steps: the cost of each isolation step of a sandbox start on this
 * machine, as medians over N runs (microseconds): clone with each namespace
 * flag (clone to reaped child), the rootfs setup on a busybox root, cgroup
 * create+destroy, compiling and installing the default seccomp profile,
 * the sealed memfd of the agent, user resolution.  Prints a table; no
 * thresholds (timings are never asserted).  Needs root and /bin/busybox.
 *
 *   build/bench/linux-steps [N]
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/cgroup.h"
#include "linux/ns.h"
#include "linux/proc.h"
#include "linux/rootfs.h"
#include "linux/seccomp-profile.h"
#include "linux/user.h"
#include "util/fs.h"
#include "util/str.h"

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double median_us(int64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof(*ns), cmp_i64);
	return (double)ns[n / 2] / 1000.0;
}

static double base_us;

static void row(const char *what, double us)
{
	if (base_us > 0)
		printf("%-44s %10.1f  %6.2fx\n", what, us, us / base_us);
	else
		printf("%-44s %10.1f\n", what, us);
}

static double bench_clone(uint64_t flags, int n)
{
	int64_t *t = calloc((size_t)n, sizeof(int64_t));
	for (int i = 0; i < n; i++) {
		int64_t t0 = mono_ns();
		pid_t pid = linux_clone(flags, -1, NULL, SIGCHLD);
		if (pid == 0)
			_exit(0);
		if (pid < 0) {
			perror("clone");
			exit(1);
		}
		waitpid(pid, NULL, 0);
		t[i] = mono_ns() - t0;
	}
	double m = median_us(t, n);
	free(t);
	return m;
}

static char root[256];

static void make_root(void)
{
	snprintf(root, sizeof(root), "/tmp/capsa-bench-XXXXXX");
	if (!mkdtemp(root))
		exit(1);
	static const char *const dirs[] = { "/bin", "/etc", "/proc", "/sys", "/dev", "/tmp" };
	char p[512];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	snprintf(p, sizeof(p), "%s/etc/passwd", root);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	const char pw[] = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
	if (write_all(fd, pw, sizeof(pw) - 1) < 0)
		exit(1);
	close(fd);
}

/* The child of one rootfs run: setup, then report its duration. */
static int64_t rootfs_once(int p)
{
	int64_t t0 = mono_ns();
	size_t n;
	const struct linux_mount *m = linux_default_mounts(&n, NULL);
	struct linux_rootfs r = {
		.root = root, .mounts = m, .n_mounts = n, .default_devices = true,
		.masked_paths = linux_default_masked_paths, .readonly_paths = linux_default_readonly_paths,
	};
	struct capsa_error *err = NULL;
	if (linux_rootfs_setup(&r, &err) < 0) {
		fprintf(stderr, "rootfs: %s\n", err->msg);
		_exit(1);
	}
	int64_t d = mono_ns() - t0;
	if (write(p, &d, sizeof(d)) != sizeof(d))
		_exit(1);
	_exit(0);
}

static double bench_rootfs(int n)
{
	int64_t *t = calloc((size_t)n, sizeof(int64_t));
	for (int i = 0; i < n; i++) {
		int p[2];
		if (pipe(p) < 0)
			exit(1);
		pid_t pid = linux_clone(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET |
						CLONE_NEWCGROUP,
					-1, NULL, SIGCHLD);
		if (pid == 0) {
			close(p[0]);
			rootfs_once(p[1]);
		}
		close(p[1]);
		if (read(p[0], &t[i], sizeof(t[i])) != sizeof(t[i])) {
			fprintf(stderr, "rootfs child failed\n");
			exit(1);
		}
		close(p[0]);
		waitpid(pid, NULL, 0);
	}
	double m = median_us(t, n);
	free(t);
	return m;
}

#define TIMED(n, ...)                                                      \
	({                                                                 \
		int64_t *t_ = calloc((size_t)(n), sizeof(int64_t));        \
		for (int i_ = 0; i_ < (n); i_++) {                         \
			int64_t t0_ = mono_ns();                           \
			__VA_ARGS__;                                       \
			t_[i_] = mono_ns() - t0_;                          \
		}                                                          \
		double m_ = median_us(t_, (n));                            \
		free(t_);                                                  \
		m_;                                                        \
	})

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 50;
	if (n < 3)
		n = 3;
	if (getuid() != 0) {
		fprintf(stderr, "linux-steps: needs root\n");
		return 1;
	}
	make_root();
	struct capsa_error *err = NULL;
	printf("linux-steps: medians of %d runs, microseconds (ratio to a plain clone)\n", n);
	base_us = bench_clone(0, n);
	row("clone, no new namespace (fork-like)", base_us);
	static const struct {
		const char *name;
		uint64_t flag;
	} f[] = {
		{ "clone + CLONE_NEWNS", CLONE_NEWNS },	  { "clone + CLONE_NEWPID", CLONE_NEWPID },
		{ "clone + CLONE_NEWUTS", CLONE_NEWUTS }, { "clone + CLONE_NEWIPC", CLONE_NEWIPC },
		{ "clone + CLONE_NEWNET", CLONE_NEWNET }, { "clone + CLONE_NEWCGROUP", CLONE_NEWCGROUP },
		{ "clone + CLONE_NEWUSER", CLONE_NEWUSER },
		{ "clone + mnt pid uts ipc net cgroup", CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
							       CLONE_NEWNET | CLONE_NEWCGROUP },
		{ "clone + mnt pid uts ipc cgroup (no net)", CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
								    CLONE_NEWCGROUP },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		row(f[i].name, bench_clone(f[i].flag, n));
	linux_clone_force_fallback(true);
	row("clone(2) fallback, no new namespace", bench_clone(0, n));
	linux_clone_force_fallback(false);

	row("rootfs setup (defaults, busybox dir, pivot)", bench_rootfs(n));

	struct linux_cgroup_limits l = LINUX_CGROUP_LIMITS_INIT;
	l.memory = 64 << 20;
	l.pids = 100;
	l.cpu_quota_us = 50000;
	char name[64];
	snprintf(name, sizeof(name), "bench-%d", (int)getpid());
	struct linux_cgroup *cg = NULL;
	row("cgroup mode detection (first call)", TIMED(1, linux_cgroup_mode()));
	double c = TIMED(n, {
		if (linux_cgroup_create(name, &l, &cg, &err) < 0) {
			fprintf(stderr, "cgroup: %s\n", err->msg);
			return 1;
		}
		linux_cgroup_destroy(cg, &err);
		linux_cgroup_free(cg);
	});
	row(linux_cgroup_mode() == CGROUP_MODE_V2 ? "cgroup create+destroy (v2)" : "cgroup create+destroy (v1, all hierarchies)",
	    c);
	double cr = TIMED(n, {
		linux_cgroup_create(name, &l, &cg, &err);
		linux_cgroup_free(cg);
		linux_cgroup_open(name, &cg, &err);
		linux_cgroup_destroy(cg, &err);
		linux_cgroup_free(cg);
	});
	row("cgroup create + open + destroy", cr);

	struct buf bpf = BUF_INIT;
	row("seccomp: compile docker's default profile", TIMED(n, {
		    bpf.len = 0;
		    seccomp_profile_default(LINUX_CAPS_DEFAULT, &bpf, &err);
	    }));
	printf("%-44s %10zu instructions\n", "  default profile size", bpf.len / 8);
	row("seccomp: install the filter (in a child)", TIMED(n, {
		    int p[2];
		    if (pipe(p) < 0)
			    return 1;
		    pid_t pid = fork();
		    if (pid == 0) {
			    struct linux_proc_sec s = { .no_new_privs = true, .seccomp_bpf = bpf.data, .seccomp_len = bpf.len };
			    int64_t t0 = mono_ns();
			    linux_proc_apply(&s, &err);
			    int64_t d = mono_ns() - t0;
			    if (write(p[1], &d, sizeof(d)) < 0)
				    _exit(1);
			    _exit(0);
		    }
		    close(p[1]);
		    int64_t d = 0;
		    if (read(p[0], &d, sizeof(d)) < 0)
			    return 1;
		    close(p[0]);
		    waitpid(pid, NULL, 0);
		    t0_ = mono_ns() - d; /* count only the child's own measurement */
	    }));
	buf_release(&bpf);
	row("sealed memfd of /bin/busybox", TIMED(n, {
		    int fd = linux_sealed_memfd("/bin/busybox", "agent", &err);
		    close(fd);
	    }));
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	row("user resolution (\"nobody\")", TIMED(n, {
		    struct linux_user u;
		    linux_user_resolve(rootfd, "nobody", &u, &err);
		    linux_user_release(&u);
	    }));
	close(rootfd);
	rm_rf_at(AT_FDCWD, root, &err);
	return 0;
}
