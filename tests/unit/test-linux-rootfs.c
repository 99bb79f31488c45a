/* test-linux-rootfs.c: linux_rootfs_setup() on a busybox root in a child
 * with new mount, pid, uts, ipc, net and cgroup namespaces: /proc and /dev,
 * masked and read-only paths, the pivot (host files invisible), bind mounts
 * read-only recursively, tmpfs sizes, an image whose /proc and /dev are
 * symlinks to host paths, a read-only root, the overlay with relative
 * lowerdirs, --no-pivot; and the same again with the fallbacks forced by a
 * seccomp filter (mknod of devices refused, no mount_setattr, no openat2).
 * Needs root and /bin/busybox (busybox-static). */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/mountinfo.h"
#include "linux/ns.h"
#include "linux/rootfs.h"
#include "tap.h"
#include "util/fs.h"
#include "util/str.h"

static char tmpdir[256];
static int report_fd = -1;

/* In the child: one result line for the parent to turn into a TAP line. */
PRINTF(2, 3) static void check(bool pass, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(report_fd, "%d %s (errno %d)\n", pass ? 1 : 0, msg, pass ? 0 : errno);
}

/* tmpdir/a, in one of a few static buffers. */
static const char *tp(const char *a)
{
	static char b[8][512];
	static int i;
	char *r = b[i++ % 8];
	snprintf(r, sizeof(b[0]), "%s/%s", tmpdir, a);
	return r;
}

static void make_busybox_root(const char *root)
{
	static const char *const dirs[] = { "", "/bin", "/etc", "/tmp", "/proc", "/sys", "/dev", "/var" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char p[600];
		snprintf(p, sizeof(p), "%s%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	char dst[600];
	snprintf(dst, sizeof(dst), "%s/bin/busybox", root);
	int in = open("/bin/busybox", O_RDONLY | O_CLOEXEC), out = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			break;
	close(in);
	close(out);
	snprintf(dst, sizeof(dst), "%s/bin/sh", root);
	if (symlink("busybox", dst) < 0 && errno != EEXIST)
		diag("symlink %s: %s", dst, strerror(errno));
	snprintf(dst, sizeof(dst), "%s/etc/hostname", root);
	int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
}

struct variant {
	const char *name;
	bool readonly, no_pivot, overlay, fallbacks, hostile;
};

/* mknodat of a char device -> EPERM (as in a user namespace),
 * mount_setattr -> ENOSYS (before 5.12), openat2 -> ENOSYS (before 5.6). */
static int install_fault_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mknodat, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, S_IFCHR & ~S_IFREG, 0, 4),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 442 /* mount_setattr */, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 437 /* openat2 */, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

static bool is_chr(const char *p, unsigned maj, unsigned min)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == maj && minor(st.st_rdev) == min;
}

static bool write_fails(const char *p, int want)
{
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == want;
	ssize_t w = write(fd, "1", 1);
	int e = errno;
	close(fd);
	return w < 0 && e == want;
}

/* Whether any mount point of this namespace is at or below dir. */
static bool mount_under(const char *dir)
{
	struct linux_mnt *mi;
	size_t n;
	struct capsa_error *err = NULL;
	if (linux_mountinfo_read(&mi, &n, &err) < 0) {
		capsa_error_free(err);
		return true;
	}
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= str_has_prefix(mi[i].point, dir);
	linux_mountinfo_free(mi, n);
	return found;
}

static void checks_inside(const struct variant *v)
{
	char self[32] = "";
	ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	check(strcmp(self, "1") == 0, "%s: /proc is mounted and we are pid 1 (%s)", v->name, self);
	check(access("/bin/busybox", X_OK) == 0, "%s: the image's /bin/busybox is there", v->name);
	check(access(tp("hostmarker"), F_OK) < 0, "%s: host files are invisible", v->name);
	if (!v->hostile) /* there, the host path exists inside the root */
		check(!mount_under(tmpdir), "%s: no mount point outside the new root", v->name);

	/* masked */
	struct stat st;
	if (access("/proc/kcore", F_OK) == 0) /* not every kernel has it */
		check(is_chr("/proc/kcore", 1, 3), "%s: /proc/kcore masked with /dev/null", v->name);
	check(is_chr("/proc/timer_list", 1, 3), "%s: /proc/timer_list masked with /dev/null", v->name);
	check(stat("/proc/keys", &st) == 0 && st.st_size == 0 && is_chr("/proc/keys", 1, 3), "%s: /proc/keys masked",
	      v->name);
	struct statfs sf;
	check(statfs("/sys/firmware", &sf) == 0 && sf.f_type == 0x01021994 /* tmpfs */ &&
		      mkdir("/sys/firmware/x", 0755) < 0,
	      "%s: /sys/firmware is a read-only empty tmpfs", v->name);
	/* read-only */
	check(write_fails("/proc/sys/kernel/hostname", EROFS), "%s: /proc/sys is read-only", v->name);
	if (access("/proc/sysrq-trigger", F_OK) == 0)
		check(write_fails("/proc/sysrq-trigger", EROFS), "%s: /proc/sysrq-trigger is read-only", v->name);
	check(mkdir("/sys/kernel/x", 0755) < 0 && errno == EROFS, "%s: /sys is read-only", v->name);
	check(statfs("/sys/fs/cgroup", &sf) == 0 && mkdir("/sys/fs/cgroup/x", 0755) < 0,
	      "%s: /sys/fs/cgroup mounted read-only", v->name);
	DIR *d = opendir("/sys/fs/cgroup");
	int entries = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		entries += de->d_name[0] != '.';
	if (d)
		closedir(d);
	check(entries > 0, "%s: /sys/fs/cgroup has %d entries", v->name, entries);
	/* devices */
	check(is_chr("/dev/null", 1, 3) && is_chr("/dev/zero", 1, 5) && is_chr("/dev/full", 1, 7) &&
		      is_chr("/dev/random", 1, 8) && is_chr("/dev/urandom", 1, 9) && is_chr("/dev/tty", 5, 0),
	      "%s: /dev/{null,zero,full,random,urandom,tty}", v->name);
	check(stat("/dev/null", &st) == 0 && (st.st_mode & 0777) == 0666, "%s: /dev/null mode 0666", v->name);
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	check(fd >= 0 && write(fd, "x", 1) == 1, "%s: /dev/null is writable", v->name);
	if (fd >= 0)
		close(fd);
	char link[64] = "";
	n = readlink("/dev/ptmx", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = '\0';
	check(strcmp(link, "pts/ptmx") == 0, "%s: /dev/ptmx -> pts/ptmx", v->name);
	fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	check(fd >= 0, "%s: a pty can be opened (devpts newinstance, ptmxmode=0666)", v->name);
	if (fd >= 0)
		close(fd);
	check(readlink("/dev/fd", link, sizeof(link)) > 0 && access("/dev/stdin", F_OK) == 0,
	      "%s: /dev/fd and /dev/stdin", v->name);
	check(statfs("/dev/shm", &sf) == 0 && sf.f_type == 0x01021994 && sf.f_blocks * sf.f_bsize == 2u << 20,
	      "%s: /dev/shm is a 2 MiB tmpfs", v->name);
	check(statfs("/dev/mqueue", &sf) == 0 && sf.f_type == 0x19800202, "%s: /dev/mqueue", v->name);
	/* user mounts */
	if (!v->hostile)
		check(statfs("/tmp", &sf) == 0 && sf.f_blocks * sf.f_bsize == 1u << 20, "%s: /tmp tmpfs size=1m",
		      v->name);
	check(access("/data/file", R_OK) == 0 && write_fails("/data/file", EROFS), "%s: bind mount read-only", v->name);
	check(access("/data/sub/inner", R_OK) == 0 && mkdir("/data/sub/x", 0755) < 0 && errno == EROFS,
	      "%s: the submount of the rbind is read-only too", v->name);
	check(access("/etc/hostname", R_OK) == 0 && write_fails("/etc/hostname", EROFS) == false,
	      "%s: file bind mount writable", v->name);
	/* root */
	fd = open("/newfile", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (v->readonly)
		check(fd < 0 && errno == EROFS, "%s: the root is read-only", v->name);
	else
		check(fd >= 0, "%s: the root is writable", v->name);
	if (fd >= 0)
		close(fd);
	if (!v->hostile) {
		fd = open("/tmp/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		check(fd >= 0, "%s: /tmp stays writable", v->name);
		if (fd >= 0)
			close(fd);
	}
	if (v->hostile) {
		check(access("/escape/marker", F_OK) == 0 && access("/escape/self", F_OK) < 0,
		      "%s: /proc -> host dir: proc not mounted on the host dir", v->name);
		check(access("/escape2/marker", F_OK) == 0 && access("/escape2/null", F_OK) < 0,
		      "%s: /dev -> host dir: devices not made in the host dir", v->name);
	}
	if (v->fallbacks) {
		struct stat dev;
		stat("/dev", &dev);
		check(stat("/dev/null", &st) == 0 && st.st_dev != dev.st_dev,
		      "%s: /dev/null is the host's node bind mounted", v->name);
	}
}

struct before_pivot_seen {
	const char *root;
	int called;
	bool cwd_is_root;
};

static int before_pivot_cb(void *ctx, struct capsa_error **err)
{
	(void)err;
	struct before_pivot_seen *s = ctx;
	struct stat a, b;
	s->called++;
	s->cwd_is_root = stat(".", &a) == 0 && stat(s->root, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
	return 0;
}

static int child(const struct variant *v)
{
	if (v->fallbacks && install_fault_filter() < 0) {
		check(false, "install the fault filter");
		return 1;
	}
	/* Private first: the test's own mounts below must not reach the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		check(false, "make / private");
		return 1;
	}
	const char *sub = tp("bindsrc/sub");
	if (mount("tmpfs", sub, "tmpfs", 0, "size=64k") < 0)
		check(false, "tmpfs on %s", sub);
	int fd = open(tp("bindsrc/sub/inner"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);

	size_t n_def;
	const struct linux_mount *def = linux_default_mounts(&n_def, "2m");
	struct linux_mount mounts[16];
	size_t n = 0;
	for (size_t i = 0; i < n_def; i++)
		mounts[n++] = def[i];
	/* (not in the hostile image: its symlinks lead below /tmp) */
	if (!v->hostile)
		mounts[n++] = (struct linux_mount){ .source = "tmpfs", .target = "/tmp", .fstype = "tmpfs",
						    .data = "size=1m", .flags = MS_NOSUID | MS_NODEV };
	mounts[n++] = (struct linux_mount){ .source = tp("bindsrc"), .target = "/data", .bind = true,
					    .recursive = true, .flags = MS_RDONLY | MS_NOSUID };
	mounts[n++] = (struct linux_mount){ .source = tp("hostname"), .target = "/etc/hostname",
					    .bind = true, .file = true };
	/* a tmpfs that starts as a copy of what it covers (OCI tmpcopyup) */
	if (!v->hostile)
		mounts[n++] = (struct linux_mount){ .source = "tmpfs", .target = "/bin", .fstype = "tmpfs",
						    .data = "size=8m", .copy_up = true };
	if (v->hostile) {
		/* recursive, so a mount that had landed on the host dir
		 * would show through */
		mounts[n++] = (struct linux_mount){ .source = tp("escape"), .target = "/escape", .bind = true,
						    .recursive = true };
		mounts[n++] = (struct linux_mount){ .source = tp("escape2"), .target = "/escape2", .bind = true,
						    .recursive = true };
	}
	struct linux_rootfs r = {
		.root = v->overlay ? tp("ov/merged") : tp(v->hostile ? "hostile" : "root"),
		.readonly = v->readonly,
		.no_pivot = v->no_pivot,
		.mounts = mounts,
		.n_mounts = n,
		.default_devices = true,
		.masked_paths = linux_default_masked_paths,
		.readonly_paths = linux_default_readonly_paths,
	};
	if (v->overlay) {
		r.overlay_dir = tp("ov");
		r.overlay_data = "lowerdir=lower,upperdir=upper,workdir=work";
	}
	struct before_pivot_seen seen = { .root = r.root };
	r.before_pivot = before_pivot_cb;
	r.before_pivot_ctx = &seen;
	struct capsa_error *err = NULL;
	if (linux_rootfs_setup(&r, &err) < 0) {
		check(false, "%s: rootfs setup: %s", v->name, err->msg);
		return 1;
	}
	check(seen.called && seen.cwd_is_root, "%s: before_pivot ran once, with the cwd in the new root", v->name);
	if (!v->hostile) {
		struct stat bst;
		check(lstat("/bin/sh", &bst) == 0 && S_ISLNK(bst.st_mode) && access("/bin/busybox", X_OK) == 0,
		      "%s: copy_up: the tmpfs on /bin holds a copy of the image's files and symlinks", v->name);
		int nf = open("/bin/new-file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		close(nf);
		check(access(tp(v->overlay ? "ov/lower/bin/new-file" : "root/bin/new-file"), F_OK) < 0,
		      "%s: copy_up: writes go to the tmpfs, not the image", v->name);
	}
	char cwd[64] = "";
	check(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/") == 0, "%s: setup returns with cwd /", v->name);
	checks_inside(v);
	if (v->overlay) {
		fd = open("/overlay-new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		check(fd >= 0, "%s: write through the overlay", v->name);
		close(fd);
	}
	return 0;
}

static void run_variant(const struct variant *v)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = linux_clone(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP,
				-1, NULL, SIGCHLD);
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		_exit(child(v));
	}
	close(p[1]);
	struct buf out = BUF_INIT;
	read_all(p[0], &out, 1 << 20);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	int lines = 0;
	for (char *line = out.data; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		ok(line[0] == '1', "%s", line + 2);
		lines++;
		line = nl ? nl + 1 : NULL;
	}
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && lines > 5, "%s: child finished (status 0x%x, %d checks)", v->name,
	   st, lines);
	buf_release(&out);
}

static void test_devpts_gid(void)
{
	char *d = linux_devpts_without_big_gid("newinstance,ptmxmode=0666,mode=0620,gid=3000000005,max=1024");
	ok(d && strcmp(d, "newinstance,ptmxmode=0666,mode=0620,max=1024") == 0, "devpts: a gid above 2^31 is dropped: %s",
	   d ? d : "(null)");
	free(d);
	d = linux_devpts_without_big_gid("newinstance,gid=100005,mode=0620");
	ok(d == NULL, "devpts: a gid below 2^31 gives no second try");
	free(d);
	d = linux_devpts_without_big_gid("newinstance,gid=2147483648");
	ok(d && strcmp(d, "newinstance") == 0, "devpts: 2^31 is already too big");
	free(d);
}

int main(void)
{
	test_devpts_gid();
	if (getuid() != 0 || access("/bin/busybox", X_OK) < 0) {
		printf("1..0 # SKIP needs root and /bin/busybox\n");
		return 0;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/capsa-test-rootfs-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	make_busybox_root(tp("root"));
	mkdir(tp("ov"), 0755);
	make_busybox_root(tp("ov/lower"));
	mkdir(tp("ov/upper"), 0755);
	mkdir(tp("ov/work"), 0755);
	mkdir(tp("ov/merged"), 0755);
	mkdir(tp("bindsrc"), 0755);
	mkdir(tp("bindsrc/sub"), 0755);
	int fd = open(tp("bindsrc/file"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	fd = open(tp("hostname"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	fd = open(tp("hostmarker"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	/* The hostile image: /proc and /dev are symlinks to host directories. */
	make_busybox_root(tp("hostile"));
	rmdir(tp("hostile/proc"));
	rmdir(tp("hostile/dev"));
	mkdir(tp("escape"), 0755);
	mkdir(tp("escape2"), 0755);
	close(open(tp("escape/marker"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(open(tp("escape2/marker"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	char target[600];
	snprintf(target, sizeof(target), "../../../../../../../../..%s/escape", tmpdir);
	ok(symlink(target, tp("hostile/proc")) == 0, "hostile image: /proc -> %s", target);
	snprintf(target, sizeof(target), "%s/escape2", tmpdir);
	ok(symlink(target, tp("hostile/dev")) == 0, "hostile image: /dev -> %s", target);

	static const struct variant variants[] = {
		{ .name = "plain" },
		{ .name = "read-only root", .readonly = true },
		{ .name = "overlay", .overlay = true },
		{ .name = "no-pivot", .no_pivot = true },
		{ .name = "hostile image", .hostile = true },
		{ .name = "fallbacks", .fallbacks = true, .readonly = true },
	};
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		run_variant(&variants[i]);

	ok(access(tp("ov/upper/overlay-new"), F_OK) == 0, "overlay: the write landed in the upper dir");
	DIR *d = opendir(tp("escape"));
	int entries = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		entries += de->d_name[0] != '.';
	closedir(d);
	ok(entries == 1, "hostile image: nothing was created in the host directory (%d entries)", entries);
	struct capsa_error *err = NULL;
	ok(!mount_under(tmpdir), "no mount leaked into the host namespace");
	rm_rf_at(AT_FDCWD, tmpdir, &err);
	capsa_error_free(err);
	return done_testing();
}
