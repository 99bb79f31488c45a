/* test-linux-cgroup.c: lib/linux cgroups on whatever this host has (v1,
 * hybrid or v2): create with limits and read the values back, add a pid,
 * stats, an OOM kill counted, the device allowlist, freeze/thaw, kill_all,
 * update, destroy leaving nothing.  Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "linux/ns.h"
#include "tap.h"
#include "util/fs.h"
#include "util/str.h"

static char name[64];
static enum linux_cgroup_mode mode;

/* Contents of <mount>/<cgroup path>/<file>, without the final newline. */
static char *knob(const char *controller, const char *file)
{
	static char out[256];
	char p[512];
	if (mode == CGROUP_MODE_V2)
		snprintf(p, sizeof(p), "/sys/fs/cgroup/capsa/%s/%s", name, file);
	else
		snprintf(p, sizeof(p), "/sys/fs/cgroup/%s/capsa/%s/%s", controller, name, file);
	struct buf b = BUF_INIT;
	struct capsa_error *err = NULL;
	out[0] = '\0';
	if (read_file_at(AT_FDCWD, p, 1 << 16, &b, &err) == 0) {
		snprintf(out, sizeof(out), "%s", b.data);
		size_t len = strlen(out);
		while (len && out[len - 1] == '\n')
			out[--len] = '\0';
	}
	capsa_error_free(err);
	buf_release(&b);
	return out;
}

static bool exists(const char *controller)
{
	char p[512];
	if (mode == CGROUP_MODE_V2)
		snprintf(p, sizeof(p), "/sys/fs/cgroup/capsa/%s", name);
	else
		snprintf(p, sizeof(p), "/sys/fs/cgroup/%s/capsa/%s", controller, name);
	return access(p, F_OK) == 0;
}

/* A child that waits on a pipe and then runs fn; returns its pid and the
 * write end that releases it. */
static pid_t spawn_waiting(void (*fn)(void), int *release)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[1]);
		char c;
		if (read(p[0], &c, 1) != 1)
			_exit(2);
		fn();
		_exit(0);
	}
	close(p[0]);
	*release = p[1];
	return pid;
}

static void go(int release)
{
	if (write(release, "x", 1) != 1)
		diag("release: %s", strerror(errno));
	close(release);
}

static void sleep_forever(void)
{
	for (;;)
		pause();
}

static void hog_memory(void)
{
	size_t n = 256u << 20;
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(3);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	_exit(4); /* not killed: the limit did not hold */
}

static void burn_cpu(void)
{
	static char mem[1 << 20];
	memset(mem, 1, sizeof(mem));
	volatile unsigned long x = 0;
	int64_t end = mono_ms() + 100;
	while (mono_ms() < end)
		x++;
	for (;;)
		pause();
}

static char devdir[64];

static void try_devices(void)
{
	char mem[128], nul[128];
	snprintf(mem, sizeof(mem), "%s/mem", devdir);
	snprintf(nul, sizeof(nul), "%s/null", devdir);
	/* mknod is allowed (c *:* m), opening /dev/mem's numbers is not */
	if (mknod(mem, S_IFCHR | 0600, makedev(1, 1)) < 0)
		_exit(10);
	int fd = open(mem, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || errno != EPERM)
		_exit(11);
	if (mknod(nul, S_IFCHR | 0666, makedev(1, 3)) < 0)
		_exit(12);
	fd = open(nul, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		_exit(13);
	_exit(0);
}

static int wait_status(pid_t pid)
{
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

int main(void)
{
	if (getuid() != 0) {
		printf("1..0 # SKIP needs root\n");
		return 0;
	}
	mode = linux_cgroup_mode();
	diag("cgroup mode: %s", mode == CGROUP_MODE_V2 ? "v2" : mode == CGROUP_MODE_V1 ? "v1" : "none");
	ok(mode != CGROUP_MODE_NONE, "a cgroup hierarchy is available");
	snprintf(name, sizeof(name), "test-%d", (int)getpid());

	struct capsa_error *err = NULL;
	struct linux_cgroup *cg = NULL;
	struct linux_cgroup_limits l = LINUX_CGROUP_LIMITS_INIT;
	l.memory = 32 << 20;
	l.cpu_quota_us = 50000;
	l.cpu_period_us = 100000;
	l.cpu_shares = 512;
	l.pids = 64;
	l.cpuset_cpus = "0";
	l.blkio_weight = 500;
	int r = linux_cgroup_create(name, &l, &cg, &err);
	ok(r == 0, "create %s: %s", name, err ? err->msg : "ok");
	if (r < 0)
		return done_testing();
	char want[96];
	snprintf(want, sizeof(want), "capsa/%s", name);
	is_str(linux_cgroup_path(cg), want, "path under capsa/");
	if (mode == CGROUP_MODE_V2) {
		is_str(knob("", "memory.max"), "33554432", "memory.max");
		if (access("/sys/fs/cgroup/capsa/cgroup.subtree_control", F_OK) == 0)
			ok(strstr(knob("", "../cgroup.subtree_control"), "memory") != NULL, "memory enabled in the parent");
		const char *swap = knob("", "memory.swap.max");
		ok(!*swap || strcmp(swap, "0") == 0, "swap off (memory.swap.max '%s')", swap);
		is_str(knob("", "cpu.max"), "50000 100000", "cpu.max");
		is_str(knob("", "cpu.weight"), "20", "cpu.weight from 512 shares");
		is_str(knob("", "pids.max"), "64", "pids.max");
		is_str(knob("", "cpuset.cpus"), "0", "cpuset.cpus");
		ok(linux_cgroup_fd(cg) >= 0, "an fd for CLONE_INTO_CGROUP");
	} else {
		is_str(knob("memory", "memory.limit_in_bytes"), "33554432", "memory.limit_in_bytes");
		if (access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0)
			is_str(knob("memory", "memory.memsw.limit_in_bytes"), "33554432", "swap off: memsw == limit");
		is_str(knob("cpu", "cpu.cfs_quota_us"), "50000", "cpu.cfs_quota_us");
		is_str(knob("cpu", "cpu.cfs_period_us"), "100000", "cpu.cfs_period_us");
		is_str(knob("cpu", "cpu.shares"), "512", "cpu.shares");
		is_str(knob("pids", "pids.max"), "64", "pids.max");
		is_str(knob("cpuset", "cpuset.cpus"), "0", "cpuset.cpus");
		ok(strlen(knob("cpuset", "cpuset.mems")) > 0, "cpuset.mems inherited");
		ok(strstr(knob("devices", "devices.list"), "c 1:3 rwm") != NULL, "device allowlist has /dev/null");
		is_int(linux_cgroup_fd(cg), -1, "no cgroup fd on v1");
	}

	/* v2: clone3(CLONE_INTO_CGROUP), and the clone(2) fallback that
	 * moves the child through the same fd */
	for (int fb = 0; fb < 2 && linux_cgroup_fd(cg) >= 0; fb++) {
		linux_clone_force_fallback(fb);
		pid_t c = linux_clone(0, linux_cgroup_fd(cg), NULL, SIGCHLD);
		if (c == 0) {
			struct buf cb = BUF_INIT;
			struct capsa_error *e = NULL;
			/* the fallback moves us right after clone returns */
			for (int i = 0; i < 1000; i++) {
				cb.len = 0;
				read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &cb, &e);
				if (cb.data && strstr(cb.data, name))
					_exit(0);
				usleep(1000);
			}
			_exit(1);
		}
		int cst = c > 0 ? wait_status(c) : -1;
		ok(c > 0 && WIFEXITED(cst) && WEXITSTATUS(cst) == 0, "%s: the child starts in the cgroup",
		   fb ? "clone fallback" : "CLONE_INTO_CGROUP");
		linux_clone_force_fallback(false);
	}

	/* add a pid */
	int rel;
	pid_t pid = spawn_waiting(burn_cpu, &rel);
	ok(linux_cgroup_add_pid(cg, pid, &err) == 0, "add pid %d: %s", (int)pid, err ? err->msg : "ok");
	go(rel);
	char cgf[64];
	snprintf(cgf, sizeof(cgf), "/proc/%d/cgroup", (int)pid);
	struct buf b = BUF_INIT;
	read_file_at(AT_FDCWD, cgf, 1 << 16, &b, &err);
	ok(b.data && strstr(b.data, want), "the child's /proc/PID/cgroup names %s", want);
	buf_release(&b);
	pid_t *pids;
	size_t n;
	ok(linux_cgroup_pids(cg, &pids, &n, &err) == 0 && n == 1 && pids[0] == pid, "pids lists the child");
	free(pids);
	struct timespec ts = { 0, 150 * 1000000 };
	nanosleep(&ts, NULL);
	struct linux_cgroup_stats s;
	linux_cgroup_stats(cg, &s);
	ok(s.cpu_usage_ns > 10 * 1000000ULL, "cpu usage counted (%llu ns)", (unsigned long long)s.cpu_usage_ns);
	ok(s.memory_limit == 32 << 20, "memory limit in stats");
	ok(s.memory_current > 0, "memory usage in stats (%llu)", (unsigned long long)s.memory_current);
	ok(s.pids_current == 1 && s.pids_limit == 64, "pids in stats (%llu/%llu)", (unsigned long long)s.pids_current,
	   (unsigned long long)s.pids_limit);
	uint64_t cache = UINT64_MAX;
	int irc = linux_cgroup_inactive_file(cg, &cache);
	ok(irc == 0 && cache <= s.memory_current,
	   "inactive file pages read, within the usage (%llu)", (unsigned long long)cache);

	/* freeze / thaw */
	ok(linux_cgroup_freeze(cg, true, &err) == 0 && linux_cgroup_frozen(cg), "frozen: %s", err ? err->msg : "ok");
	ok(linux_cgroup_freeze(cg, false, &err) == 0 && !linux_cgroup_frozen(cg), "thawed");

	/* kill_all: the child and two more */
	pid_t more[2];
	for (int i = 0; i < 2; i++) {
		more[i] = spawn_waiting(sleep_forever, &rel);
		linux_cgroup_add_pid(cg, more[i], &err);
		go(rel);
	}
	ok(linux_cgroup_kill_all(cg, &err) == 0, "kill_all: %s", err ? err->msg : "ok");
	int st = wait_status(pid);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "first child killed");
	ok(WIFSIGNALED(wait_status(more[0])) && WIFSIGNALED(wait_status(more[1])), "the others killed");
	ok(linux_cgroup_pids(cg, &pids, &n, &err) == 0 && n == 0, "the cgroup is empty");
	free(pids);

	/* an OOM kill is counted; swap is off so the limit holds */
	uint64_t before = 0, after = 0;
	linux_cgroup_oom_kills(cg, &before);
	pid = spawn_waiting(hog_memory, &rel);
	linux_cgroup_add_pid(cg, pid, &err);
	go(rel);
	st = wait_status(pid);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "a 256 MiB hog is killed under a 32 MiB limit (status 0x%x)", st);
	ok(linux_cgroup_oom_kills(cg, &after) == 0 && after == before + 1, "oom_kill counted (%llu -> %llu)",
	   (unsigned long long)before, (unsigned long long)after);

	/* device allowlist */
	snprintf(devdir, sizeof(devdir), "/tmp/capsa-test-dev-XXXXXX");
	if (mkdtemp(devdir)) {
		pid = spawn_waiting(try_devices, &rel);
		linux_cgroup_add_pid(cg, pid, &err);
		go(rel);
		st = wait_status(pid);
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "devices: mknod allowed, /dev/mem's numbers refused, /dev/null's allowed (exit %d)", WEXITSTATUS(st));
		rm_rf_at(AT_FDCWD, devdir, &err);
	}

	/* update */
	struct linux_cgroup_limits u = LINUX_CGROUP_LIMITS_INIT;
	u.memory = 64 << 20;
	u.pids = 100;
	ok(linux_cgroup_set_limits(cg, &u, &err) == 0, "update: %s", err ? err->msg : "ok");
	is_str(knob(mode == CGROUP_MODE_V2 ? "" : "memory", mode == CGROUP_MODE_V2 ? "memory.max" : "memory.limit_in_bytes"),
	       "67108864", "memory raised to 64 MiB");
	is_str(knob("pids", "pids.max"), "100", "pids raised to 100");
	if (mode == CGROUP_MODE_V2)
		is_str(knob("", "cpu.max"), "50000 100000", "cpu untouched by the update");
	else
		is_str(knob("cpu", "cpu.cfs_quota_us"), "50000", "cpu untouched by the update");
	u = (struct linux_cgroup_limits)LINUX_CGROUP_LIMITS_INIT;
	u.memory = 64 << 20;
	u.memory_swap = 32 << 20;
	r = linux_cgroup_set_limits(cg, &u, &err);
	ok(r < 0 && strstr(err->msg, "below the memory limit"), "memory+swap below memory refused: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	u = (struct linux_cgroup_limits)LINUX_CGROUP_LIMITS_INIT;
	u.cpuset_cpus = "0;rm -rf";
	r = linux_cgroup_set_limits(cg, &u, &err);
	ok(r < 0 && strstr(err->msg, "cpuset.cpus"), "bad cpuset refused: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;

	/* open by name, destroy with a live process, nothing left */
	struct linux_cgroup *again = NULL;
	ok(linux_cgroup_open(name, &again, &err) == 0, "open the existing cgroup");
	pid = spawn_waiting(sleep_forever, &rel);
	linux_cgroup_add_pid(again, pid, &err);
	go(rel);
	ok(linux_cgroup_destroy(again, &err) == 0, "destroy with a process inside kills it: %s", err ? err->msg : "ok");
	st = wait_status(pid);
	ok(WIFSIGNALED(st), "the process was killed");
	static const char *const ctl[] = { "memory", "cpu", "cpuacct", "pids", "cpuset", "freezer", "devices", "blkio" };
	bool left = false;
	for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++)
		left |= exists(ctl[i]);
	ok(!left, "no cgroup directory left in any hierarchy");
	ok(linux_cgroup_destroy(cg, &err) == 0, "destroy again: missing is success");
	linux_cgroup_free(again);
	linux_cgroup_free(cg);
	r = linux_cgroup_open(name, &cg, &err);
	ok(r < 0 && err && err->code == ENOENT, "open after destroy: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;

	static const char *const bad[] = { "a/b", "", "../../etc" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = linux_cgroup_create(bad[i], NULL, &cg, &err);
		ok(r < 0 && err, "bad name '%s' refused: %s", bad[i], err ? err->msg : "");
		capsa_error_free(err);
		err = NULL;
	}
	r = linux_cgroup_create("/capsa/../..", NULL, &cg, &err);
	ok(r < 0 && err && strstr(err->msg, ".."), "absolute path with .. refused");
	capsa_error_free(err);
	return done_testing();
}
