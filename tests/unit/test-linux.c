/* test-linux.c: lib/linux: capability names and docker's add/drop rules,
 * user resolution inside a crafted (and hostile) root, the process security
 * context applied in a forked child, the sealed memfd, clone3 and its
 * fallback, joining namespaces by path, sysctl writes.  Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/ns.h"
#include "linux/proc.h"
#include "linux/rootless.h"
#include "linux/tty.h"
#include "linux/user.h"
#include "tap.h"
#include "util/fs.h"
#include "util/str.h"

static char *tmpdir;

/* dir/name in one of a few static buffers (no leaks under ASan). */
static const char *path2(const char *dir, const char *name)
{
	static char bufs[4][512];
	static int i;
	char *b = bufs[i++ % 4];
	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

static void write_file(const char *dir, const char *name, const char *content)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, content, strlen(content)) < 0)
		diag("cannot write %s: %s", p, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(p);
}

/* --- caps ---------------------------------------------------------------- */

static void test_caps(void)
{
	is_int(linux_cap_from_name("CAP_CHOWN"), 0, "CAP_CHOWN is 0");
	is_int(linux_cap_from_name("chown"), 0, "lower case without prefix");
	is_int(linux_cap_from_name("cap_sys_admin"), 21, "cap_sys_admin is 21");
	is_int(linux_cap_from_name("CHECKPOINT_RESTORE"), 40, "CHECKPOINT_RESTORE is 40");
	is_int(linux_cap_from_name("CAP_NOPE"), -1, "unknown name");
	is_str(linux_cap_name(39), "CAP_BPF", "39 is CAP_BPF");
	ok(linux_cap_name(41) == NULL && linux_cap_name(-1) == NULL, "out of range numbers have no name");
	for (int c = 0; c <= 40; c++)
		if (linux_cap_from_name(linux_cap_name(c)) != c)
			ok(0, "name round trip of %d", c);
	ok(1, "every name round-trips");
	ok(linux_cap_last() >= 36 && linux_cap_last() <= 63, "cap_last_cap is %d", linux_cap_last());
	struct buf b = BUF_INIT;
	struct capsa_error *err = NULL;
	if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 64, &b, &err) == 0)
		is_int(linux_cap_last(), atoi(b.data), "agrees with /proc/sys/kernel/cap_last_cap");
	buf_release(&b);

	char *s = linux_caps_to_string(LINUX_CAPS_DEFAULT);
	is_str(s, "CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_KILL,CAP_SETGID,CAP_SETUID,CAP_SETPCAP,"
		  "CAP_NET_BIND_SERVICE,CAP_NET_RAW,CAP_SYS_CHROOT,CAP_MKNOD,CAP_AUDIT_WRITE,CAP_SETFCAP",
	       "docker's default set by name");
	free(s);
	s = linux_caps_to_string(0);
	is_str(s, "", "empty set");
	free(s);

	uint64_t m = LINUX_CAPS_DEFAULT;
	char *add1[] = { (char *)"SYS_ADMIN", NULL }, *drop1[] = { (char *)"cap_net_raw", (char *)"MKNOD", NULL };
	ok(linux_caps_adjust(&m, add1, drop1, &err) == 0, "adjust");
	ok(m == ((LINUX_CAPS_DEFAULT | (1ULL << 21)) & ~((1ULL << 13) | (1ULL << 27))), "drop then add");
	m = LINUX_CAPS_DEFAULT;
	char *all[] = { (char *)"ALL", NULL }, *kill_[] = { (char *)"KILL", NULL };
	linux_caps_adjust(&m, kill_, all, &err);
	ok(m == (1ULL << 5), "drop ALL keeps only the added ones");
	m = 0;
	linux_caps_adjust(&m, all, kill_, &err);
	ok(m == (linux_caps_all() & ~(1ULL << 5)), "add ALL minus the dropped");
	m = LINUX_CAPS_DEFAULT;
	char *bad[] = { (char *)"CAP_FLY", NULL };
	ok(linux_caps_adjust(&m, bad, NULL, &err) < 0 && err && strstr(err->msg, "'CAP_FLY'") &&
		   m == LINUX_CAPS_DEFAULT,
	   "unknown capability named, mask untouched: %s", err ? err->msg : "");
	capsa_error_free(err);
}

/* --- users --------------------------------------------------------------- */

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
			     "# a comment\n"
			     "bob:x:1000:1000:Bob:/home/bob:/bin/sh\n"
			     "broken:x:notanumber:1::/x:/bin/sh\n"
			     "alice:x:1001:1001::/home/alice:/bin/sh\n"
			     "nohome:x:1002:1002:::\n"
			     "short:x:1003\n";
static const char group[] = "root:x:0:\n"
			    "bob:x:1000:\n"
			    "wheel:x:10:alice,bob\n"
			    "docker:x:999:bob\n"
			    "bobby:x:998:bobby\n"
			    "staff:x:50:\n";

static int resolve(int rootfd, const char *spec, struct linux_user *u, struct capsa_error **err)
{
	capsa_error_free(*err);
	*err = NULL;
	return linux_user_resolve(rootfd, spec, u, err);
}

static void test_users_in(int rootfd, const char *mode)
{
	int rc;
	struct linux_user u;
	struct capsa_error *err = NULL;
	rc = resolve(rootfd, "", &u, &err);
	ok(rc == 0 && u.uid == 0 && u.gid == 0 && str_eq(u.home, "/root") &&
		   u.n_groups == 0,
	   "%s: empty spec is root with its home", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "bob", &u, &err);
	ok(rc == 0 && u.uid == 1000 && u.gid == 1000 && str_eq(u.home, "/home/bob"),
	   "%s: bob by name", mode);
	ok(u.n_groups == 2 && u.groups[0] == 10 && u.groups[1] == 999, "%s: bob's supplementary groups (%zu)", mode,
	   u.n_groups);
	linux_user_release(&u);
	rc = resolve(rootfd, "1000", &u, &err);
	ok(rc == 0 && u.uid == 1000 && u.gid == 1000 && u.n_groups == 2,
	   "%s: bob by uid gets his groups", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "bob:staff", &u, &err);
	ok(rc == 0 && u.uid == 1000 && u.gid == 50 && u.n_groups == 0,
	   "%s: explicit group by name, no supplementary groups", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "bob:4242", &u, &err);
	ok(rc == 0 && u.gid == 4242, "%s: numeric gid absent from the file", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "4242", &u, &err);
	ok(rc == 0 && u.uid == 4242 && u.gid == 0 && str_eq(u.home, "/"),
	   "%s: numeric uid absent from the file: gid 0, home /", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "4242:4243", &u, &err);
	ok(rc == 0 && u.uid == 4242 && u.gid == 4243, "%s: uid:gid", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "nohome", &u, &err);
	ok(rc == 0 && str_eq(u.home, "/"), "%s: empty home is /", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "alice:wheel", &u, &err);
	ok(rc == 0 && u.uid == 1001 && u.gid == 10, "%s: alice:wheel", mode);
	linux_user_release(&u);
	rc = resolve(rootfd, "nobody", &u, &err);
	ok(rc < 0 && err && strcmp(err->msg, "user 'nobody' not found in /etc/passwd") == 0,
	   "%s: unknown user: %s", mode, err ? err->msg : "");
	rc = resolve(rootfd, "bob:nogroup", &u, &err);
	ok(rc < 0 && err && strstr(err->msg, "group 'nogroup' not found"),
	   "%s: unknown group: %s", mode, err ? err->msg : "");
	rc = resolve(rootfd, "broken", &u, &err);
	ok(rc < 0, "%s: a malformed line does not match", mode);
	rc = resolve(rootfd, "-1", &u, &err);
	ok(rc < 0 && strstr(err->msg, "out of range"), "%s: negative uid refused", mode);
	rc = resolve(rootfd, "99999999999", &u, &err);
	ok(rc < 0, "%s: huge uid refused", mode);
	rc = resolve(rootfd, "bob:", &u, &err);
	ok(rc < 0, "%s: empty group refused", mode);
	capsa_error_free(err);
}

static void test_users(void)
{
	char root[256], etc[300];
	snprintf(root, sizeof(root), "%s/userroot", tmpdir);
	snprintf(etc, sizeof(etc), "%s/etc", root);
	mkdir(root, 0755);
	mkdir(etc, 0755);
	write_file(etc, "passwd", passwd);
	write_file(etc, "group", group);
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	test_users_in(rootfd, "openat2");
	fs_force_openat2_fallback(true);
	test_users_in(rootfd, "fallback walk");
	fs_force_openat2_fallback(false);

	struct linux_user u;
	struct capsa_error *err = NULL;
	int rc;
	/* No files at all: numeric ids work, names do not. */
	const char *empty = path2(tmpdir, "emptyroot");
	mkdir(empty, 0755);
	int efd = open(empty, O_PATH | O_DIRECTORY | O_CLOEXEC);
	rc = resolve(efd, "", &u, &err);
	ok(rc == 0 && u.uid == 0 && str_eq(u.home, "/"), "no /etc/passwd: root");
	linux_user_release(&u);
	rc = resolve(efd, "123:456", &u, &err);
	ok(rc == 0 && u.uid == 123 && u.gid == 456, "no files: numeric ids");
	linux_user_release(&u);
	rc = resolve(efd, "bob", &u, &err);
	ok(rc < 0, "no files: a name fails");
	close(efd);

	/* A passwd that points at the host: an absolute symlink and a
	 * ../.. one both stay inside the root. */
	const char *host = path2(tmpdir, "host-passwd");
	write_file(tmpdir, "host-passwd", "hostonly:x:4444:4444::/:/bin/sh\n");
	unlink(path2(etc, "passwd"));
	ok(symlink(host, path2(etc, "passwd")) == 0, "set up a symlink");
	rc = resolve(rootfd, "hostonly", &u, &err);
	ok(rc < 0 && err && strstr(err->msg, "not found"),
	   "absolute symlink to a host file is resolved inside the root");
	unlink(path2(etc, "passwd"));
	ok(symlink("../../../../../../../../../../host-passwd", path2(etc, "passwd")) == 0, "set up a symlink");
	rc = resolve(rootfd, "hostonly", &u, &err);
	ok(rc < 0, "../ symlink cannot climb out");
	unlink(path2(etc, "passwd"));
	write_file(etc, "shadow", "evil:x:7:7::/evil:/bin/sh\n");
	ok(symlink("/etc/shadow", path2(etc, "passwd")) == 0, "set up a symlink");
	rc = resolve(rootfd, "evil", &u, &err);
	ok(rc == 0 && u.uid == 7, "symlink to /etc/shadow reads the root's own file");
	linux_user_release(&u);
	unlink(path2(etc, "passwd"));

	/* Huge, FIFO, directory. */
	int fd = open(path2(etc, "passwd"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ok(ftruncate(fd, 64 << 20) == 0, "make a 64 MiB file");
	close(fd);
	rc = resolve(rootfd, "bob", &u, &err);
	ok(rc < 0 && err->code == EFBIG, "a 64 MiB passwd is refused: %s", err->msg);
	unlink(path2(etc, "passwd"));
	mkfifo(path2(etc, "passwd"), 0644);
	rc = resolve(rootfd, "bob", &u, &err);
	ok(rc < 0 && strstr(err->msg, "not a regular file"),
	   "a FIFO passwd neither blocks nor is read: %s", err->msg);
	unlink(path2(etc, "passwd"));
	mkdir(path2(etc, "passwd"), 0755);
	rc = resolve(rootfd, "bob", &u, &err);
	ok(rc < 0, "a directory passwd is refused");
	rmdir(path2(etc, "passwd"));
	ok(symlink("/dev/zero", path2(etc, "passwd")) == 0, "set up a symlink");
	rc = resolve(rootfd, "bob", &u, &err);
	ok(rc < 0, "passwd -> /dev/zero cannot exhaust memory");
	capsa_error_free(err);
	close(rootfd);
}

/* --- process security ----------------------------------------------------- */

/* Runs linux_proc_apply(s) in a child and returns what the child saw:
 * /proc/self/status plus a few lines of its own.  Exit code 3 means apply
 * failed; the error is in the text. */
static char *apply_in_child(const struct linux_proc_sec *s, int *status)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		struct capsa_error *err = NULL;
		if (linux_proc_apply(s, &err) < 0) {
			dprintf(p[1], "error: %s\n", err->msg);
			_exit(3);
		}
		struct buf b = BUF_INIT;
		read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &b, &err);
		write_all(p[1], b.data, b.len);
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		dprintf(p[1], "nofile=%llu:%llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
		mode_t um = umask(0);
		dprintf(p[1], "umask=%03o\n", (unsigned)um);
		buf_release(&b);
		read_file_at(AT_FDCWD, "/proc/self/oom_score_adj", 64, &b, &err);
		dprintf(p[1], "oom=%s", b.data ? b.data : "?\n");
		errno = 0;
		long r = syscall(SYS_getppid);
		dprintf(p[1], "getppid=%s\n", r < 0 ? strerror(errno) : "ok");
		_exit(0);
	}
	close(p[1]);
	struct buf out = BUF_INIT;
	read_all(p[0], &out, 1 << 20);
	close(p[0]);
	waitpid(pid, status, 0);
	return buf_steal(&out);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

static void test_proc(void)
{
	/* A filter that makes getppid fail with EPERM and allows the rest. */
	static const struct sock_filter filt[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	static const gid_t groups[] = { 10, 20 };
	struct rlimit cur;
	getrlimit(RLIMIT_NOFILE, &cur);
	struct linux_rlimit rl[] = { { RLIMIT_NOFILE, 100, 200 } };
	struct linux_proc_sec s = {
		.uid = 1000, .gid = 1001, .groups = groups, .n_groups = 2, .set_ids = true,
		.no_new_privs = true, .rlimits = rl, .n_rlimits = 1,
		.seccomp_bpf = filt, .seccomp_len = sizeof(filt),
		.oom_score_adj = 500, .set_oom_score_adj = true,
		.umask = 027, .set_umask = true,
	};
	linux_proc_sec_set_caps(&s, LINUX_CAPS_DEFAULT, 0);
	int st;
	char *t = apply_in_child(&s, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "non-root: apply succeeded");
	ok(has_line(t, "Uid:\t1000\t1000\t1000\t1000"), "uid 1000 in all four");
	ok(has_line(t, "Gid:\t1001\t1001\t1001\t1001"), "gid 1001 in all four");
	ok(has_line(t, "Groups:\t10 20 "), "supplementary groups 10 20");
	ok(has_line(t, "CapEff:\t0000000000000000") && has_line(t, "CapPrm:\t0000000000000000") &&
		   has_line(t, "CapInh:\t0000000000000000") && has_line(t, "CapAmb:\t0000000000000000"),
	   "non-root user: no effective, permitted, inheritable or ambient caps");
	ok(has_line(t, "CapBnd:\t00000000a80425fb"), "bounding set is docker's default");
	ok(has_line(t, "NoNewPrivs:\t1"), "no_new_privs");
	ok(has_line(t, "Seccomp:\t2"), "seccomp filter mode");
	ok(has_line(t, "nofile=100:200"), "rlimit nofile 100:200");
	ok(has_line(t, "umask=027"), "umask 027");
	ok(has_line(t, "oom=500"), "oom_score_adj 500");
	ok(has_line(t, "getppid=Operation not permitted"), "the filter is active");
	if (tap_fail)
		diag("%s", t);
	free(t);

	/* root: the default set everywhere but inheritable. */
	struct linux_proc_sec r = { .uid = 0, .gid = 0, .set_ids = true, .no_new_privs = true };
	linux_proc_sec_set_caps(&r, LINUX_CAPS_DEFAULT, 0);
	t = apply_in_child(&r, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "root: apply succeeded");
	ok(has_line(t, "CapEff:\t00000000a80425fb") && has_line(t, "CapPrm:\t00000000a80425fb") &&
		   has_line(t, "CapBnd:\t00000000a80425fb") && has_line(t, "CapInh:\t0000000000000000"),
	   "root: CapEff/CapPrm/CapBnd a80425fb, CapInh empty");
	ok(has_line(t, "Seccomp:\t0") && has_line(t, "getppid=ok"), "no filter when none is given");
	free(t);

	/* non-root with an ambient capability */
	struct linux_proc_sec a = { .uid = 1000, .gid = 1000, .set_ids = true };
	linux_proc_sec_set_caps(&a, LINUX_CAPS_DEFAULT, 1ULL << 10);
	t = apply_in_child(&a, &st);
	ok(has_line(t, "CapAmb:\t0000000000000400") && has_line(t, "CapEff:\t0000000000000400") &&
		   has_line(t, "CapInh:\t0000000000000400"),
	   "ambient NET_BIND_SERVICE raised in every set");
	free(t);

	/* Errors: raising a hard limit past the current one needs
	 * CAP_SYS_RESOURCE (root here may lack it), a soft above hard is
	 * refused by us. */
	struct linux_rlimit bad[] = { { RLIMIT_NOFILE, 300, 200 } };
	struct linux_proc_sec e = { .rlimits = bad, .n_rlimits = 1 };
	t = apply_in_child(&e, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 3 && strstr(t, "rlimit nofile: soft limit above hard limit"),
	   "soft > hard refused, naming the limit: %s", t);
	free(t);
	struct linux_proc_sec nf = { .seccomp_bpf = filt, .seccomp_len = 5 };
	t = apply_in_child(&nf, &st);
	ok(WEXITSTATUS(st) == 3 && strstr(t, "invalid program"), "a filter of 5 bytes is refused: %s", t);
	free(t);

	is_int(linux_rlimit_from_name("RLIMIT_NOFILE"), RLIMIT_NOFILE, "RLIMIT_NOFILE by name");
	is_int(linux_rlimit_from_name("nproc"), RLIMIT_NPROC, "nproc by docker's name");
	is_int(linux_rlimit_from_name("bogus"), -1, "unknown rlimit");
	is_str(linux_rlimit_name(RLIMIT_CORE), "core", "name of RLIMIT_CORE");
}

static void test_memfd(void)
{
	struct capsa_error *err = NULL;
	int fd = linux_sealed_memfd("/bin/busybox", "capsa-agent", &err);
	ok(fd >= 0, "sealed memfd of /bin/busybox: %s", err ? err->msg : "ok");
	if (fd < 0)
		return;
	int seals = fcntl(fd, F_GET_SEALS);
	ok(seals == (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), "all four seals (0x%x)", seals);
	ok(write(fd, "x", 1) < 0 && errno == EPERM, "cannot be written");
	ok(ftruncate(fd, 0) < 0 && errno == EPERM, "cannot be truncated");
	ok(fcntl(fd, F_ADD_SEALS, 0) < 0 && errno == EPERM, "seals cannot change");
	struct stat a, b;
	stat("/bin/busybox", &a);
	fstat(fd, &b);
	ok(a.st_size == b.st_size, "same size as the file");
	ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "close-on-exec");
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = { (char *)"true", NULL }, *envp[] = { NULL };
		fexecve(fd, argv, envp);
		_exit(99);
	}
	int st;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "executes from the memfd");
	close(fd);
	int r = linux_sealed_memfd("/nonexistent", "x", &err);
	ok(r < 0 && strstr(err->msg, "/nonexistent"), "missing file named: %s", err->msg);
	capsa_error_free(err);
}

/* --- namespaces ---------------------------------------------------------- */

static void test_clone(bool fallback)
{
	const char *mode = fallback ? "clone fallback" : "clone3";
	linux_clone_force_fallback(fallback);
	int pidfd = -1;
	pid_t pid = linux_clone(CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWNS, -1, &pidfd, SIGCHLD);
	if (pid == 0) {
		/* PID 1 in the new namespace; hostname private */
		if (getpid() != 1)
			_exit(10);
		struct capsa_error *err = NULL;
		if (linux_sysctl_set("kernel.hostname", "capsa-test", &err) < 0)
			_exit(11);
		char h[64] = "";
		gethostname(h, sizeof(h));
		_exit(strcmp(h, "capsa-test") == 0 ? 42 : 12);
	}
	ok(pid > 0 && pidfd >= 0, "%s: child %d with a pidfd", mode, (int)pid);
	int st = 0;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 42, "%s: child is pid 1 and set its own hostname (exit %d)", mode,
	   WEXITSTATUS(st));
	if (pidfd >= 0)
		close(pidfd);
	char h[64] = "";
	gethostname(h, sizeof(h));
	ok(strcmp(h, "capsa-test") != 0, "%s: the host's hostname is unchanged", mode);
	linux_clone_force_fallback(false);
}

static void test_ns(void)
{
	is_int(linux_ns_flag("net"), CLONE_NEWNET, "net");
	is_int(linux_ns_flag("network"), CLONE_NEWNET, "network");
	is_int(linux_ns_flag("mount"), CLONE_NEWNS, "mount");
	is_int(linux_ns_flag("cgroup"), CLONE_NEWCGROUP, "cgroup");
	is_int(linux_ns_flag("bogus"), 0, "unknown namespace");
	is_str(linux_ns_name(CLONE_NEWUTS), "uts", "name of CLONE_NEWUTS");
	test_clone(false);
	test_clone(true);

	struct capsa_error *err = NULL;
	ok(linux_setns_path("/proc/self/ns/uts", CLONE_NEWUTS, &err) == 0, "join our own uts namespace: %s",
	   err ? err->msg : "ok");
	ok(linux_setns_path("/proc/self/ns/net", CLONE_NEWPID, &err) < 0 && strstr(err->msg, "a net namespace, expected pid"),
	   "wrong type named: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(linux_setns_path("/proc/version", 0, &err) < 0 && strstr(err->msg, "not a namespace"),
	   "a regular file is not a namespace: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(linux_setns_path("/nonexistent/ns", 0, &err) < 0 && err->code == ENOENT, "missing path");
	capsa_error_free(err);
	err = NULL;
	ok(linux_sysctl_set("../../etc/passwd", "x", &err) < 0 && strstr(err->msg, "invalid name"), "sysctl name with ..");
	capsa_error_free(err);
	err = NULL;
	ok(linux_sysctl_set("kernel.nonexistent_knob", "1", &err) < 0 && err->code == ENOENT, "unknown sysctl");
	capsa_error_free(err);

	int fd = open("/dev/null", O_RDONLY);
	linux_fds_cloexec_from(fd);
	ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fds above the bound become close-on-exec");
	close(fd);
}

/* What the OCI runtime added to lib/linux: executable lookup, namespace
 * type checks, user namespace maps, ptys and fd passing. */
static void test_oci_helpers(void)
{
	char path[256];
	ok(linux_find_executable("sh", "/nonexistent:/bin", path, sizeof(path)) == 0 && strcmp(path, "/bin/sh") == 0,
	   "find sh in $PATH");
	is_int(linux_find_executable("no-such-program-x", "/bin:/usr/bin", path, sizeof(path)), ENOENT,
	       "a missing program is ENOENT");
	is_int(linux_find_executable("/etc/passwd", NULL, path, sizeof(path)), EACCES, "a non-executable file is EACCES");
	is_int(linux_find_executable("/tmp", NULL, path, sizeof(path)), EACCES, "a directory is EACCES");

	struct capsa_error *err = NULL;
	int fd = open("/proc/version", O_RDONLY | O_CLOEXEC);
	ok(linux_ns_fd_check(fd, 0, "/proc/version", &err) < 0 && strstr(err->msg, "not a namespace"),
	   "ns check: a file is not a namespace");
	close(fd);
	capsa_error_free(err);
	err = NULL;
	fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
	ok(linux_ns_fd_check(fd, CLONE_NEWIPC, "uts", &err) < 0 && strstr(err->msg, "a uts namespace, expected ipc"),
	   "ns check: the wrong type is named");
	capsa_error_free(err);
	err = NULL;
	ok(linux_ns_fd_check(fd, CLONE_NEWUTS, "uts", &err) == 0, "ns check: the right type passes");
	close(fd);

	/* a child in a new user namespace, mapped by us */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = linux_clone(CLONE_NEWUSER, -1, NULL, SIGCHLD);
	if (pid == 0) {
		char c;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(10);
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			_exit(11);
		_exit(getuid() == 0 && getgid() == 0 ? 42 : 12);
	}
	close(p[0]);
	struct linux_idmap m = { 0, 100000, 1000 };
	int rc = linux_userns_set_maps(pid, &m, 1, &m, 1, false, &err);
	ok(rc == 0, "write uid and gid maps: %s", err ? err->msg : "ok");
	capsa_error_free(err);
	err = NULL;
	if (write(p[1], "g", 1) != 1)
		diag("child gone");
	close(p[1]);
	int st = 0;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 42, "the mapped child became root of its user namespace (exit %d)",
	   WEXITSTATUS(st));

	/* a pty, its master passed over a unix socket */
	int master, slave, idx;
	ok(linux_pty_open(&master, &slave, 30, 100, &idx, &err) == 0 && idx >= 0, "open a pty");
	capsa_error_free(err);
	err = NULL;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return;
	ok(linux_send_fd(sp[0], master, "/dev/ptmx", &err) == 0, "send the master");
	char name[64];
	int got = linux_recv_fd(sp[1], name, sizeof(name), &err);
	ok(got >= 0 && strcmp(name, "/dev/ptmx") == 0, "receive it with its name");
	struct winsize ws = { 0 };
	ok(got >= 0 && ioctl(got, TIOCGWINSZ, &ws) == 0 && ws.ws_row == 30 && ws.ws_col == 100,
	   "the window size was set");
	ok(write(slave, "x", 1) == 1, "write to the slave");
	char c = 0;
	ok(got >= 0 && read(got, &c, 1) == 1 && c == 'x', "read it from the received master");
	close(sp[0]);
	close(sp[1]);
	close(master);
	close(slave);
	if (got >= 0)
		close(got);
	capsa_error_free(err);
}

/* lib/linux/rootless.c: the subid parser, the defaults, and detection
 * (host root here: not rootless). */
static void test_rootless(void)
{
	ok(!linux_rootless() && linux_rootless_host_uid() == 0, "host root is not rootless");
	struct linux_subid_file f = { .path = "subuid" };
	struct capsa_error *err = NULL;
	ok(linux_subid_parse(&f, "# comment\nalice:100000:65536\n\n1000:200000:10\n", &err) == 0 && f.n == 2 &&
		   strcmp(f.r[0].owner, "alice") == 0 && f.r[0].start == 100000 && f.r[0].count == 65536 &&
		   f.r[1].line == 4,
	   "subid lines parse, comments and blanks skipped, lines counted");
	linux_subid_file_release(&f);
	static const char *const bad[] = { "alice:100000\n", "alice:x:1\n", "alice:1:-1\n", "alice:1:99999999999\n" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		bool refused = linux_subid_parse(&f, bad[i], &err) < 0 && err && strstr(err->msg, "subuid line 1");
		ok(refused, "bad subid line refused, naming file and line: %s", err ? err->msg : "(none)");
		capsa_error_free(err);
		err = NULL;
		linux_subid_file_release(&f);
	}
	setenv("XDG_DATA_HOME", "/data/x", 1);
	char *r = linux_rootless_store_root();
	ok(strcmp(r, "/data/x/capsa") == 0, "store root from XDG_DATA_HOME");
	free(r);
	setenv("XDG_DATA_HOME", "relative", 1);
	setenv("HOME", "/home/al", 1);
	r = linux_rootless_store_root();
	ok(strcmp(r, "/home/al/.local/share/capsa") == 0, "a relative XDG_DATA_HOME is ignored for HOME's");
	free(r);
	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	r = linux_rootless_run_root();
	char *want = xasprintf("%s/capsa", tmpdir);
	ok(strcmp(r, want) == 0, "run root in an existing XDG_RUNTIME_DIR");
	free(r);
	free(want);
	setenv("XDG_RUNTIME_DIR", "/nonexistent/run/user/1000", 1);
	r = linux_rootless_run_root();
	ok(strcmp(r, "/tmp/capsa-run-0") == 0, "a missing XDG_RUNTIME_DIR falls back to /tmp/capsa-run-UID");
	free(r);
	ok(linux_rootless_enter(&err) == 0 && !err, "entering is a no-op for host root");
}

/* A process named by pid and start time: the identity the sandbox rows
 * record (lib/sandbox/liveness.c) and the OCI state file keeps. */
static void test_proc_identity(void)
{
	uint64_t me, again;
	char state = 0;
	ok(linux_proc_start_time(getpid(), &me) == 0 && me > 0, "own start time");
	ok(linux_proc_stat(getpid(), &state, &again) == 0 && again == me && state == 'R', "own state and start");
	/* a child that is stopped, then a zombie, then gone */
	pid_t c = fork();
	if (c == 0) {
		raise(SIGSTOP);
		_exit(0);
	}
	int st;
	waitpid(c, &st, WUNTRACED);
	uint64_t t;
	ok(linux_proc_stat(c, &state, &t) == 0 && (state == 'T' || state == 't'), "stopped child reads as T");
	ok(linux_proc_start_time(c, &t) == 0 && t >= me, "stopped child is alive, started after us");
	kill(c, SIGKILL);
	siginfo_t si;
	waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT);
	errno = 0;
	ok(linux_proc_start_time(c, &t) < 0 && errno == ESRCH, "a zombie is not alive");
	waitpid(c, &st, 0);
	ok(linux_proc_start_time(c, &t) < 0 && errno == ESRCH, "a reaped child is gone");
	ok(linux_proc_start_time(0, &t) < 0 && linux_proc_start_time(-1, &t) < 0, "no pid 0 or -1");
	const char *boot = linux_boot_id();
	ok(strlen(boot) == 36 && boot[8] == '-' && linux_boot_id() == boot, "boot id read once");
}

int main(void)
{
	char tmpl[] = "/tmp/capsa-test-linux-XXXXXX";
	tmpdir = mkdtemp(tmpl);
	if (getuid() != 0) {
		printf("1..0 # SKIP needs root\n");
		return 0;
	}
	test_caps();
	test_users();
	test_proc();
	test_proc_identity();
	test_memfd();
	test_ns();
	test_oci_helpers();
	test_rootless();
	struct capsa_error *err = NULL;
	rm_rf_at(AT_FDCWD, tmpdir, &err);
	capsa_error_free(err);
	return done_testing();
}
