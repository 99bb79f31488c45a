/* loopdisk.c: the per-sandbox disk image (`--disk`).
 *
 * The image is a sparse file in the sandbox's directory, formatted ext4 by
 * mkfs.ext4 when the sandbox is created.  The supervisor attaches it to a
 * loop device with LO_FLAGS_AUTOCLEAR and mounts it in its own private
 * mount namespace (supervisor/main.c), so the mount is never on the host's
 * mount table: when the supervisor and the sandbox are gone, the namespace
 * dies, the mount goes with it, and the loop device detaches itself.  A
 * crash leaks neither a mount nor a loop device; removal deletes the file.
 *
 * The formatted images are cached per size in a template directory
 * (<root>/disk-templates), which `capsa image prune` empties
 * (loopdisk_prune_templates()).
 *
 * This file never reads anything from inside a sandbox: the image is
 * mounted nosuid,nodev, and the kernel's ext4 parses it (it was formatted by
 * us; the sandbox only ever sees the overlay on top of it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopdisk.h"
#include "util/util.h"

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
	__u32 fd;
	__u32 block_size;
	struct loop_info64 info;
	__u64 __reserved[8];
};
#endif

static const char *mkfs_path(void)
{
	static const char *const paths[] = { "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/bin/mkfs.ext4" };
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* mkfs.ext4 on the image: no journal (a sandbox's scratch layer does not
 * outlive a host crash anyway), lazy inode tables, no discard of a file
 * that is already a hole, no reserved blocks. */
static int run_mkfs(const char *mkfs, const char *image, struct capsa_error **err)
{
	char *const argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F", (char *)"-m", (char *)"0",
			       (char *)"-O", (char *)"^has_journal",
			       (char *)"-E", (char *)"lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
			       (char *)image, NULL };
	char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL };
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return error_sys(err, errno, "format %s", image);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return error_sys(err, e, "format %s", image);
	}
	if (pid == 0) {
		/* only async-signal-safe calls: stdout/stderr to the pipe */
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execve(mkfs, argv, envp);
		_exit(127);
	}
	close(pipefd[1]);
	char out[512];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(pipefd[0], out + n, sizeof(out) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof(out) - 1) {
			char sink[256]; /* drain the rest so mkfs never blocks */
			while (read(pipefd[0], sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	out[n] = '\0';
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return error_sys(err, errno, "format %s: wait for mkfs.ext4", image);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			out[--n] = '\0';
		return error_set(err, EIO, "format %s: mkfs.ext4 failed (status %d)%s%s", image, status, n ? ": " : "",
				 out);
	}
	return 0;
}

/* A sparse file of size bytes at path (O_EXCL), formatted. */
static int format_new(const char *path, int64_t size, struct capsa_error **err)
{
	const char *mkfs = mkfs_path();
	if (!mkfs)
		return error_set(err, ENOENT, "--disk needs mkfs.ext4 (Debian: e2fsprogs), which is not installed");
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_sys(err, errno, "create disk image %s", path);
	int rc = ftruncate(fd, size);
	int e = errno;
	close(fd);
	if (rc < 0) {
		unlink(path);
		return error_sys(err, e, "size disk image %s to %lld bytes", path, (long long)size);
	}
	if (run_mkfs(mkfs, path, err) < 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* Copies the data extents of src into dst (already sized): a formatted
 * empty image is ~0.6 MiB of data in a hole, so this is about a
 * millisecond, against 7-30 ms for mkfs.ext4 (fork, exec, write). */
static int copy_sparse(int in, int out)
{
	if (ioctl(out, FICLONE, in) == 0) /* btrfs, XFS: share the extents */
		return 0;
	off_t size = lseek(in, 0, SEEK_END), off = 0;
	if (size < 0 || ftruncate(out, size) < 0)
		return -1;
	while (off < size) {
		off_t data = lseek(in, off, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -1;
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -1;
		loff_t a = data, b = data;
		while (a < hole) {
			ssize_t n = copy_file_range(in, &a, out, &b, (size_t)(hole - a), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		off = hole;
	}
	return 0;
}

/* templates/ext4-<size>.img, made once (a private name renamed into
 * place, so concurrent creators never see a half-formatted one).  The
 * caller made dir and holds its shared lock (templates_lock()). */
static int template_for(const char *dir, int64_t size, char **out, struct capsa_error **err)
{
	char *path = xasprintf("%s/ext4-%lld.img", dir, (long long)size);
	if (access(path, F_OK) == 0) {
		*out = path;
		return 0;
	}
	_cleanup_free_ char *tmp = xasprintf("%s/.ext4-%lld.%d.tmp", dir, (long long)size, (int)getpid());
	unlink(tmp);
	if (format_new(tmp, size, err) < 0) {
		free(path);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		free(path);
		return error_sys(err, e, "install disk template %s", tmp);
	}
	*out = path;
	return 0;
}

/* An flock of the template directory itself: shared by every create from
 * finding (or making) its template until the template is open, exclusive
 * while loopdisk_prune_templates() removes them, so a prune never takes a
 * template, or one being formatted, from under a create. */
static int lock_dir(int fd, int op)
{
	int r;
	while ((r = flock(fd, op)) < 0 && errno == EINTR)
		;
	return r;
}

static int templates_lock(const char *dir, int op, struct capsa_error **err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "open %s", dir);
	if (lock_dir(fd, op) < 0) {
		int e = errno;
		close(fd);
		return error_sys(err, e, "lock %s", dir);
	}
	return fd;
}

int loopdisk_create(const char *image, int64_t size, const char *template_dir, struct capsa_error **err)
{
	if (size < LOOPDISK_MIN_SIZE)
		return error_set(err, EINVAL, "disk image %s: %lld bytes is below the minimum of 16 MiB", image,
				 (long long)size);
	/* round down to the 4 KiB block size mkfs will use anyway */
	size &= ~(int64_t)4095;
	if (!template_dir)
		return format_new(image, size, err);
	if (mkdir(template_dir, 0700) < 0 && errno != EEXIST)
		return error_sys(err, errno, "create %s", template_dir);
	_cleanup_close_ int lock = templates_lock(template_dir, LOCK_SH, err);
	_cleanup_free_ char *tpl = NULL;
	if (lock < 0 || template_for(template_dir, size, &tpl, err) < 0)
		return -1;
	_cleanup_close_ int in = open(tpl, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return error_sys(err, errno, "open disk template %s", tpl);
	close(steal_fd(&lock)); /* open: a prune may unlink it now */
	_cleanup_close_ int out = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0)
		return error_sys(err, errno, "create disk image %s", image);
	if (copy_sparse(in, out) < 0) {
		int e = errno;
		unlink(image);
		return error_sys(err, e, "copy disk template %s to %s", tpl, image);
	}
	return 0;
}

int loopdisk_prune_templates(const char *template_dir, size_t *count, int64_t *bytes, struct capsa_error **err)
{
	int fd = open(template_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : error_sys(err, errno, "open %s", template_dir);
	DIR *d = lock_dir(fd, LOCK_EX) == 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		close(fd);
		return error_sys(err, e, "lock and read %s", template_dir);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			(*count)++;
			*bytes += (int64_t)sb.st_blocks * 512; /* sparse: what the disk held */
		}
	}
	closedir(d); /* and the lock with it */
	return 0;
}

/* Binds the image to a free loop device, retrying when another process
 * takes the device we were given first.  Returns the loop device's fd. */
static int loop_attach(int imgfd, char *dev, size_t devlen, struct capsa_error **err)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return error_sys(err, errno, "open /dev/loop-control");
	for (int attempt = 0; attempt < 64; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return error_sys(err, errno, "find a free loop device");
		snprintf(dev, devlen, "/dev/loop%d", n);
		int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0)
			return error_sys(err, errno, "open %s", dev);
		struct loop_config cfg;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (__u32)imgfd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
			return lfd;
		int e = errno;
		if (e == EINVAL || e == ENOTTY) {
			/* before Linux 5.8: two steps (autoclear set in the second) */
			if (ioctl(lfd, LOOP_SET_FD, imgfd) == 0) {
				struct loop_info64 info;
				memset(&info, 0, sizeof(info));
				info.lo_flags = LO_FLAGS_AUTOCLEAR;
				if (ioctl(lfd, LOOP_SET_STATUS64, &info) == 0)
					return lfd;
				e = errno;
				ioctl(lfd, LOOP_CLR_FD, 0);
				close(lfd);
				return error_sys(err, e, "configure %s", dev);
			}
			e = errno;
		}
		close(lfd);
		if (e != EBUSY)
			return error_sys(err, e, "attach a loop device");
	}
	return error_set(err, EBUSY, "attach a loop device: every free device was taken by another process first");
}

static int make_dir(const char *base, const char *name, mode_t mode, struct capsa_error **err)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", base, name);
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return error_sys(err, errno, "create %s", p);
	/* whatever our umask: the upper dir is the sandbox's / */
	if (chmod(p, mode) < 0)
		return error_sys(err, errno, "chmod %s", p);
	return 0;
}

int loopdisk_mount(const char *image, const char *target, struct capsa_error **err)
{
	_cleanup_close_ int imgfd = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (imgfd < 0)
		return error_sys(err, errno, "open disk image %s", image);
	char dev[64];
	_cleanup_close_ int lfd = loop_attach(imgfd, dev, sizeof(dev), err);
	if (lfd < 0)
		return -1;
	/* from here the loop device lives as long as lfd or a mount of it */
	/* the image was a hole: its inode tables already read as zeros, so
	 * the background zeroing (16 MiB per GiB, written to the host) is
	 * skipped */
	if (mount(dev, target, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "noinit_itable") < 0)
		return error_sys(err, errno, "mount disk image %s (%s) on %s", image, dev, target);
	if (make_dir(target, "upper", 0755, err) < 0 || make_dir(target, "work", 0700, err) < 0) {
		umount2(target, MNT_DETACH);
		return -1;
	}
	return 0;
}

int loopdisk_usage(const char *path, uint64_t *used, uint64_t *total, struct capsa_error **err)
{
	struct statfs s;
	if (statfs(path, &s) < 0)
		return error_sys(err, errno, "statfs %s", path);
	*total = (uint64_t)s.f_blocks * (uint64_t)s.f_bsize;
	*used = (uint64_t)(s.f_blocks - s.f_bfree) * (uint64_t)s.f_bsize;
	return 0;
}
