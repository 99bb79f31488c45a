/* rootfs.c: the sandbox's filesystem view, built in a fresh mount namespace
 * and pivoted into.  Must never change a mount the host can see, and never
 * mount onto a path outside the new root whatever the image contains.
 *
 * linux_rootfs_setup(), step by step:
 *  1. "/" becomes MS_REC|MS_PRIVATE (or the configured propagation), so no
 *     mount or unmount below propagates to the host's namespace.
 *  2. The root: the overlay is mounted on r->root (with the cwd in
 *     overlay_dir, so relative lowerdirs resolve there), or r->root is bind
 *     mounted onto itself so it is a mount point pivot_root accepts.  With
 *     shared propagation the parent mount of the root is made private.
 *  3. rootfd = the new root.  From here every target is resolved inside it
 *     with open_beneath(RES_IN_ROOT) (missing directories and files are
 *     created through directory fds, one component at a time) and mounted
 *     onto /proc/self/fd/N: a symlink in the image ("/proc -> /etc", or
 *     "-> ../../../host") can only lead somewhere else inside the root.
 *  4. The mounts, in order (a tmpfs with copy_up gets a copy of the tree it
 *     covers, read through the fd of the directory underneath, without
 *     following symlinks).  Bind mounts get their flags by a second step
 *     (mount_setattr, recursively for rbind; MS_REMOUNT on old kernels),
 *     because MS_BIND ignores them.  A v1 "cgroup" mount expands to a
 *     tmpfs with one mount per host hierarchy, then made read-only.
 *  5. Devices by mknod; where mknod is refused (a user namespace) an empty
 *     file is created and the host's node bind mounted onto it.  Then the
 *     /dev symlinks (fd, stdin, stdout, stderr, ptmx -> pts/ptmx, core).
 *  6. Masked paths: /dev/null over files, a read-only empty tmpfs over
 *     directories.  Missing ones are skipped.
 *  7. Read-only paths: bound onto themselves and made read-only
 *     (recursively where mount_setattr exists).
 *  8. Read-only root: the root mount (only) becomes read-only.
 *  9. The caller's before_pivot callback (OCI hooks), cwd in the new root.
 * 10. pivot_root(".", "."), then the old root, stacked on top, is made
 *     rslave (so detaching it cannot propagate anywhere) and detached with
 *     MNT_DETACH; cwd "/".  With no_pivot: MS_MOVE onto "/" and chroot,
 *     which leaves the old mounts reachable to a process that can escape a
 *     chroot (OCI --no-pivot only, as runc documents).
 * The hostname is the caller's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cgroup.h"
#include "mountinfo.h"
#include "rootfs.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr __NR_mount_setattr
#endif
#ifndef SYS_pivot_root
#define SYS_pivot_root __NR_pivot_root
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

#define FDPATH_LEN 32

static void fd_path(int fd, char out[FDPATH_LEN])
{
	snprintf(out, FDPATH_LEN, "/proc/self/fd/%d", fd);
}

/* --- resolving and creating targets inside the root --------------------- */

#define MAX_LINKS 40

/* Rewrites path so that its component at [start, end) (a symlink whose
 * text is link) is replaced by the link: absolute links restart at the
 * root, relative ones continue from the symlink's directory.  Resolution
 * of the result is still confined by RES_IN_ROOT. */
static char *splice_link(const char *path, size_t start, size_t end, const char *link)
{
	const char *rest = path + end;
	if (link[0] == '/')
		return xasprintf("%s%s", link, rest);
	return xasprintf("%.*s%s%s", (int)start, path, link, rest);
}

/* An O_PATH fd of path inside rootfd, creating what is missing: directories
 * (mode 0755) for every component, and for the last one a directory when
 * dir, else an empty file.  Existing components are resolved with
 * RES_IN_ROOT; a missing one is made with mkdirat()/mknodat() in its
 * already-resolved parent and opened O_NOFOLLOW from there.  A dangling
 * symlink met on the way is followed by rewriting the path (so an image's
 * /etc/resolv.conf -> ../run/... gets its target created, inside the root,
 * as runc does), at most MAX_LINKS times. */
static int create_in_root(int rootfd, const char *path, bool dir, int links, struct capsa_error **err)
{
	int fd = open_beneath(rootfd, path, dir ? O_PATH | O_DIRECTORY : O_PATH, 0, RES_IN_ROOT);
	if (fd >= 0 || errno != ENOENT) {
		if (fd < 0)
			error_sys(err, errno, "resolve %s in the root", path);
		return fd;
	}
	if (links > MAX_LINKS)
		return error_set(err, ELOOP, "resolve %s in the root: too many symlinks", path);
	_cleanup_free_ char *work = xstrdup(path);
	int parent = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (parent < 0)
		return error_sys(err, errno, "dup root fd");
	size_t len = strlen(work);
	size_t comp_start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (work[i] != '/' && work[i] != '\0')
			continue;
		if (i == comp_start) {
			comp_start = i + 1;
			continue;
		}
		char saved = work[i];
		work[i] = '\0';
		const char *comp = work + comp_start;
		bool last = saved == '\0' || work[i + 1 + strspn(work + i + 1, "/")] == '\0';
		bool want_dir = !last || dir;
		int next = open_beneath(rootfd, work, want_dir ? O_PATH | O_DIRECTORY : O_PATH, 0, RES_IN_ROOT);
		if (next < 0 && errno == ENOENT) {
			int r = want_dir ? mkdirat(parent, comp, 0755) : mknodat(parent, comp, S_IFREG | 0644, 0);
			if (r < 0 && errno != EEXIST) {
				error_sys(err, errno, "create %s in the root", work);
				close(parent);
				return -1;
			}
			next = openat(parent, comp, (want_dir ? O_DIRECTORY : 0) | O_PATH | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (next >= 0 && fstat(next, &st) == 0 && S_ISLNK(st.st_mode)) {
				close(next);
				next = -1;
				errno = ELOOP;
			}
			if (next < 0 && (errno == ELOOP || errno == ENOTDIR)) {
				/* a dangling symlink: follow it */
				char link[4096];
				ssize_t n = readlinkat(parent, comp, link, sizeof(link) - 1);
				close(parent);
				if (n < 0)
					return error_sys(err, errno, "resolve %s in the root", work);
				link[n] = '\0';
				work[i] = saved;
				_cleanup_free_ char *np = splice_link(work, comp_start, i, link);
				return create_in_root(rootfd, np, dir, links + 1, err);
			}
		}
		if (next < 0) {
			error_sys(err, errno, "resolve %s in the root", work);
			close(parent);
			return -1;
		}
		close(parent);
		parent = next;
		work[i] = saved;
		comp_start = i + 1;
	}
	return parent;
}

static int mkdir_in_root(int rootfd, const char *path, struct capsa_error **err)
{
	return create_in_root(rootfd, path, true, 0, err);
}

/* An O_PATH fd of path (a directory when dir, else a file created empty
 * when missing) inside rootfd. */
static int target_in_root(int rootfd, const char *path, bool dir, struct capsa_error **err)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!dir && (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0))
		return error_set(err, EINVAL, "mount target %s: not a file name", path);
	return create_in_root(rootfd, path, dir, 0, err);
}

/* --- mount flags -------------------------------------------------------- */

static uint64_t ms_to_attr(unsigned long ms)
{
	uint64_t a = 0;
	if (ms & MS_RDONLY)
		a |= MOUNT_ATTR_RDONLY;
	if (ms & MS_NOSUID)
		a |= MOUNT_ATTR_NOSUID;
	if (ms & MS_NODEV)
		a |= MOUNT_ATTR_NODEV;
	if (ms & MS_NOEXEC)
		a |= MOUNT_ATTR_NOEXEC;
	if (ms & MS_NODIRATIME)
		a |= MOUNT_ATTR_NODIRATIME;
	return a;
}

#define ATTR_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NODIRATIME)

static int mount_setattr_state; /* 0 unknown, 1 works, -1 missing */

/* A bind remount replaces the per-mount flags: keep the ones the mount
 * has (some are locked in a user namespace) and add ms. */
static int remount_keep(const char *path, int fd, unsigned long ms)
{
	struct statvfs sv;
	unsigned long keep = 0;
	if (fstatvfs(fd, &sv) == 0) {
		if (sv.f_flag & ST_RDONLY)
			keep |= MS_RDONLY;
		if (sv.f_flag & ST_NOSUID)
			keep |= MS_NOSUID;
		if (sv.f_flag & ST_NODEV)
			keep |= MS_NODEV;
		if (sv.f_flag & ST_NOEXEC)
			keep |= MS_NOEXEC;
	}
	return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | ms | keep, NULL);
}

/* Adds the per-mount flags in ms to the mount whose root fd is (other
 * flags stay as they are), for the whole tree below it when recursive. */
static int set_mount_flags(int fd, unsigned long ms, bool recursive, const char *what, struct capsa_error **err)
{
	ms &= ATTR_FLAGS;
	if (!ms)
		return 0;
	if (mount_setattr_state >= 0) {
		struct mount_attr attr = { .attr_set = ms_to_attr(ms) };
		unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
		if (syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof(attr)) == 0) {
			mount_setattr_state = 1;
			return 0;
		}
		if (errno != ENOSYS)
			return error_sys(err, errno, "set mount flags of %s", what);
		mount_setattr_state = -1;
	}
	/* Before 5.12: a bind remount of the top mount, then of each mount
	 * below it (found by path in the mount table). */
	char p[FDPATH_LEN];
	fd_path(fd, p);
	if (remount_keep(p, fd, ms) < 0)
		return error_sys(err, errno, "remount %s", what);
	if (!recursive)
		return 0;
	char top[4096];
	ssize_t n = readlink(p, top, sizeof(top) - 1);
	if (n <= 0)
		return error_sys(err, errno, "remount %s: resolve its path", what);
	top[n] = '\0';
	struct linux_mnt *mi;
	size_t nm;
	if (linux_mountinfo_read(&mi, &nm, err) < 0)
		return -1;
	int rc = 0;
	size_t tl = strcmp(top, "/") == 0 ? 0 : (size_t)n;
	for (size_t i = 0; i < nm && rc == 0; i++) {
		if (strncmp(mi[i].point, top, tl) != 0 || mi[i].point[tl] != '/' || !mi[i].point[tl + 1])
			continue;
		int sub = open(mi[i].point, O_PATH | O_CLOEXEC | O_NOFOLLOW);
		char sp[FDPATH_LEN];
		fd_path(sub, sp);
		if (sub < 0 || remount_keep(sp, sub, ms) < 0)
			rc = error_sys(err, errno, "remount %s", mi[i].point);
		if (sub >= 0)
			close(sub);
	}
	linux_mountinfo_free(mi, nm);
	return rc;
}

/* Re-resolves path after a mount onto it: the old fd still names the
 * directory underneath, the new one the mount on top. */
static int reopen_in_root(int rootfd, const char *path, struct capsa_error **err)
{
	int fd = open_beneath(rootfd, path, O_PATH, 0, RES_IN_ROOT);
	if (fd < 0)
		error_sys(err, errno, "reopen %s in the root", path);
	return fd;
}

/* --- tmpcopyup ---------------------------------------------------------- */

#define COPY_DEPTH_MAX 64

static int copy_file(int src, int dst, const char *name, const struct stat *st)
{
	_cleanup_close_ int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (in < 0)
		return -1;
	_cleanup_close_ int out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -1;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (write_all(out, buf, (size_t)n) < 0)
			return -1;
	}
	if (fchown(out, st->st_uid, st->st_gid) < 0 || fchmod(out, st->st_mode & 07777) < 0)
		return -1;
	return 0;
}

/* Copies the tree below src into dst without following symlinks, keeping
 * owners and modes (the content of a tmpfs mounted with tmpcopyup). */
static int copy_tree(int src, int dst, int depth, const char *what, struct capsa_error **err)
{
	if (depth > COPY_DEPTH_MAX)
		return error_set(err, ELOOP, "copy up %s: nested too deep", what);
	int dfd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_sys(err, errno, "copy up %s", what);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return error_sys(err, errno, "copy up %s", what);
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = error_sys(err, errno, "copy up %s/%s", what, n);
			break;
		}
		int r = 0;
		if (S_ISDIR(st.st_mode)) {
			r = mkdirat(dst, n, 0700);
			int s2 = r < 0 ? -1 : openat(dfd, n, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int d2 = s2 < 0 ? -1 : openat(dst, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (d2 >= 0 && (fchown(d2, st.st_uid, st.st_gid) < 0 || fchmod(d2, st.st_mode & 07777) < 0))
				r = -1;
			else if (d2 >= 0)
				rc = copy_tree(s2, d2, depth + 1, what, err);
			else
				r = -1;
			if (s2 >= 0)
				close(s2);
			if (d2 >= 0)
				close(d2);
		} else if (S_ISREG(st.st_mode)) {
			r = copy_file(dfd, dst, n, &st);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t l = readlinkat(dfd, n, target, sizeof(target) - 1);
			if (l < 0)
				r = -1;
			else {
				target[l] = '\0';
				r = symlinkat(target, dst, n);
			}
			if (r == 0)
				r = fchownat(dst, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
		} else {
			r = mknodat(dst, n, st.st_mode, st.st_rdev);
			if (r == 0)
				r = fchownat(dst, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
		}
		if (r < 0 && rc == 0)
			rc = error_sys(err, errno, "copy up %s/%s", what, n);
	}
	closedir(d);
	return rc;
}

/* --- one mount ---------------------------------------------------------- */

static int mount_cgroup_v1(int rootfd, const struct linux_mount *m, struct capsa_error **err);

static int do_bind(int rootfd, const struct linux_mount *m, struct capsa_error **err)
{
	struct stat st;
	if (stat(m->source, &st) < 0)
		return error_sys(err, errno, "bind mount source %s", m->source);
	bool dir = S_ISDIR(st.st_mode);
	_cleanup_close_ int fd = target_in_root(rootfd, m->target, dir, err);
	if (fd < 0)
		return -1;
	struct stat tst;
	if (fstat(fd, &tst) < 0)
		return error_sys(err, errno, "stat %s", m->target);
	if (S_ISDIR(tst.st_mode) != dir)
		return error_set(err, ENOTDIR, "bind mount %s on %s: %s", m->source, m->target,
				 dir ? "target is not a directory" : "target is a directory");
	char p[FDPATH_LEN];
	fd_path(fd, p);
	if (mount(m->source, p, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL) < 0)
		return error_sys(err, errno, "bind mount %s on %s", m->source, m->target);
	if (!(m->flags & ATTR_FLAGS) && !m->propagation)
		return 0;
	_cleanup_close_ int top = reopen_in_root(rootfd, m->target, err);
	if (top < 0)
		return -1;
	if (set_mount_flags(top, m->flags, m->recursive, m->target, err) < 0)
		return -1;
	if (m->propagation) {
		fd_path(top, p);
		if (mount(NULL, p, NULL, m->propagation, NULL) < 0)
			return error_sys(err, errno, "set propagation of %s", m->target);
	}
	return 0;
}

char *linux_devpts_without_big_gid(const char *data)
{
	struct buf b = BUF_INIT;
	_cleanup_free_ char *copy = xstrdup(data);
	char *save = NULL;
	bool dropped = false;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		unsigned long long g;
		if (sscanf(o, "gid=%llu", &g) == 1 && g > INT_MAX) {
			dropped = true;
			continue;
		}
		buf_appendf(&b, "%s%s", b.len ? "," : "", o);
	}
	if (!dropped) {
		buf_release(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static int do_mount(int rootfd, const struct linux_mount *m, struct capsa_error **err)
{
	if (!m->target || m->target[0] != '/')
		return error_set(err, EINVAL, "mount target '%s': not an absolute path", m->target ? m->target : "");
	if (m->bind)
		return do_bind(rootfd, m, err);
	if (!m->fstype)
		return error_set(err, EINVAL, "mount on %s: no filesystem type", m->target);
	if (strcmp(m->fstype, "cgroup") == 0)
		return mount_cgroup_v1(rootfd, m, err);
	_cleanup_close_ int fd = target_in_root(rootfd, m->target, !m->file, err);
	if (fd < 0)
		return -1;
	char p[FDPATH_LEN];
	fd_path(fd, p);
	if (mount(m->source ? m->source : m->fstype, p, m->fstype, m->flags, m->data) < 0) {
		int e = errno;
		/* sysfs needs a network namespace we own: without one (a user
		 * namespace joined to the host's network) use the host's
		 * /sys, read-only, as runc does. */
		if (e == EPERM && strcmp(m->fstype, "sysfs") == 0) {
			struct linux_mount b = { .source = "/sys", .target = m->target, .bind = true,
						 .recursive = true, .flags = m->flags | MS_RDONLY };
			return do_bind(rootfd, &b, err);
		}
		if (e == EINVAL && strcmp(m->fstype, "devpts") == 0 && m->data) {
			_cleanup_free_ char *data = linux_devpts_without_big_gid(m->data);
			if (data && mount(m->source ? m->source : m->fstype, p, m->fstype, m->flags, data) == 0)
				goto mounted;
		}
		return error_sys(err, e, "mount %s on %s", m->fstype, m->target);
	}
mounted:
	if (m->copy_up) {
		/* fd still names the directory the tmpfs now covers */
		_cleanup_close_ int top = reopen_in_root(rootfd, m->target, err);
		if (top < 0)
			return -1;
		_cleanup_close_ int dst = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dst < 0)
			return error_sys(err, errno, "copy up %s", m->target);
		if (copy_tree(fd, dst, 0, m->target, err) < 0)
			return -1;
	}
	if (m->propagation) {
		_cleanup_close_ int top = reopen_in_root(rootfd, m->target, err);
		if (top < 0)
			return -1;
		fd_path(top, p);
		if (mount(NULL, p, NULL, m->propagation, NULL) < 0)
			return error_sys(err, errno, "set propagation of %s", m->target);
	}
	return 0;
}

/* Binds m->cgroup_path of the hierarchy just mounted on dir/name over it,
 * read-only.  A hierarchy without that cgroup keeps its whole view. */
static int bind_cgroup_subdir(int dir, const char *name, const struct linux_mount *m, struct capsa_error **err)
{
	_cleanup_close_ int hier = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hier < 0)
		return error_sys(err, errno, "open %s/%s", m->target, name);
	const char *rel = m->cgroup_path + strspn(m->cgroup_path, "/");
	_cleanup_close_ int cg = *rel ? open_beneath(hier, rel, O_PATH | O_DIRECTORY, 0, RES_NO_SYMLINKS) : -1;
	if (cg < 0)
		return 0;
	char from[FDPATH_LEN], to[FDPATH_LEN];
	fd_path(cg, from);
	fd_path(hier, to);
	if (mount(from, to, NULL, MS_BIND, NULL) < 0)
		return error_sys(err, errno, "bind cgroup %s on %s/%s", m->cgroup_path, m->target, name);
	_cleanup_close_ int top = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (top < 0)
		return error_sys(err, errno, "open %s/%s", m->target, name);
	return set_mount_flags(top, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, false, m->target, err);
}

/* One v1 hierarchy (from the host's mount table) under dir. */
static int mount_one_hierarchy(int dir, const struct linux_mount *m, const struct linux_mnt *h,
			       struct capsa_error **err)
{
	const char *name = strrchr(h->point, '/');
	name = name ? name + 1 : h->point;
	if (!*name || name[0] == '.')
		return 0;
	if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST)
		return error_sys(err, errno, "create %s/%s", m->target, name);
	_cleanup_close_ int sub = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return error_sys(err, errno, "open %s/%s", m->target, name);
	/* super options minus rw/ro: the controllers (and name=). */
	_cleanup_strv_ char **opts = strv_split(h->super_opts, ',');
	struct buf data = BUF_INIT;
	for (size_t k = 0; opts[k]; k++)
		if (strcmp(opts[k], "rw") != 0 && strcmp(opts[k], "ro") != 0)
			buf_appendf(&data, "%s%s", data.len ? "," : "", opts[k]);
	char sp[FDPATH_LEN];
	fd_path(sub, sp);
	int r = mount("cgroup", sp, "cgroup", m->flags | MS_NOSUID | MS_NODEV | MS_NOEXEC, buf_cstr(&data));
	int e = errno;
	buf_release(&data);
	if (r < 0)
		return error_sys(err, e, "mount cgroup %s on %s/%s", h->super_opts, m->target, name);
	if (m->cgroup_path && bind_cgroup_subdir(dir, name, m, err) < 0)
		return -1;
	if (strchr(name, ',')) {
		_cleanup_strv_ char **parts = strv_split(name, ',');
		for (size_t k = 0; parts[k]; k++)
			if (*parts[k] && symlinkat(name, dir, parts[k]) < 0 && errno != EEXIST)
				return error_sys(err, errno, "symlink %s/%s", m->target, parts[k]);
	}
	return 0;
}

static int mount_cgroup_v1_from(int rootfd, const struct linux_mount *m, const struct linux_mnt *mi, size_t n,
				struct capsa_error **err)
{
	_cleanup_close_ int fd = target_in_root(rootfd, m->target, true, err);
	if (fd < 0)
		return -1;
	char p[FDPATH_LEN];
	fd_path(fd, p);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k") < 0)
		return error_sys(err, errno, "mount tmpfs on %s", m->target);
	_cleanup_close_ int dir = reopen_in_root(rootfd, m->target, err);
	if (dir < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		/* Every host hierarchy, whatever its root: inside the sandbox's
		 * cgroup namespace mountinfo shows the host mounts' roots as
		 * "/../..", yet each is still one hierarchy to mount. */
		if (strcmp(mi[i].fstype, "cgroup") != 0)
			continue;
		/* Skip a hierarchy mounted twice. */
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			if (strcmp(mi[j].fstype, "cgroup") == 0 && str_eq(mi[j].super_opts, mi[i].super_opts))
				seen = true;
		if (!seen && mount_one_hierarchy(dir, m, &mi[i], err) < 0)
			return -1;
	}
	return set_mount_flags(dir, MS_RDONLY, false, m->target, err);
}

/* cgroup v1: a tmpfs at the target with one mount per host hierarchy
 * (showing the sandbox's cgroup namespace), symlinks for co-mounted
 * controllers ("cpu" -> "cpu,cpuacct"), then the tmpfs made read-only. */
static int mount_cgroup_v1(int rootfd, const struct linux_mount *m, struct capsa_error **err)
{
	struct linux_mnt *mi;
	size_t n;
	if (linux_mountinfo_read(&mi, &n, err) < 0)
		return -1;
	int rc = mount_cgroup_v1_from(rootfd, m, mi, n, err);
	linux_mountinfo_free(mi, n);
	return rc;
}

/* --- devices ------------------------------------------------------------ */

static const struct linux_device default_devices[] = {
	{ "/dev/null", 'c', 1, 3, 0666, 0, 0 },	   { "/dev/zero", 'c', 1, 5, 0666, 0, 0 },
	{ "/dev/full", 'c', 1, 7, 0666, 0, 0 },	   { "/dev/random", 'c', 1, 8, 0666, 0, 0 },
	{ "/dev/urandom", 'c', 1, 9, 0666, 0, 0 }, { "/dev/tty", 'c', 5, 0, 0666, 0, 0 },
};

static const struct {
	const char *name, *target;
} dev_symlinks[] = {
	{ "fd", "/proc/self/fd" },	    { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
	{ "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" },	    { "core", "/proc/kcore" },
};

static int make_device(int rootfd, const struct linux_device *d, struct capsa_error **err)
{
	if (!d->path || d->path[0] != '/')
		return error_set(err, EINVAL, "device '%s': not an absolute path", d->path ? d->path : "");
	mode_t type;
	switch (d->type) {
	case 'c':
	case 'u':
		type = S_IFCHR;
		break;
	case 'b':
		type = S_IFBLK;
		break;
	case 'p':
		type = S_IFIFO;
		break;
	default:
		return error_set(err, EINVAL, "device %s: unknown type '%c'", d->path, d->type);
	}
	const char *slash = strrchr(d->path, '/');
	const char *base = slash + 1;
	if (!*base || strcmp(base, "..") == 0 || strcmp(base, ".") == 0)
		return error_set(err, EINVAL, "device '%s': not a file name", d->path);
	_cleanup_free_ char *dirpath = xstrndup(d->path, (size_t)(slash - d->path));
	_cleanup_close_ int parent = mkdir_in_root(rootfd, *dirpath ? dirpath : "/", err);
	if (parent < 0)
		return -1;
	struct stat st;
	if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return error_set(err, EISDIR, "device %s: a directory is in the way", d->path);
		if (unlinkat(parent, base, 0) < 0)
			return error_sys(err, errno, "replace %s", d->path);
	}
	if (mknodat(parent, base, type | (d->mode & 07777), makedev(d->major, d->minor)) == 0) {
		/* mknod honours the umask: set the mode exactly */
		if (fchmodat(parent, base, d->mode & 07777, 0) < 0 ||
		    fchownat(parent, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return error_sys(err, errno, "set owner and mode of %s", d->path);
		return 0;
	}
	if (errno != EPERM)
		return error_sys(err, errno, "mknod %s", d->path);
	/* No mknod (user namespace): bind the host's node.  Never chown or
	 * chmod it: that would change the host's file. */
	if (mknodat(parent, base, S_IFREG | 0000, 0) < 0)
		return error_sys(err, errno, "create %s", d->path);
	_cleanup_close_ int fd = openat(parent, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "open %s", d->path);
	char p[FDPATH_LEN];
	fd_path(fd, p);
	if (mount(d->path, p, NULL, MS_BIND, NULL) < 0)
		return error_sys(err, errno, "bind mount host %s", d->path);
	return 0;
}

static int make_dev_symlinks(int rootfd, struct capsa_error **err)
{
	_cleanup_close_ int dev = mkdir_in_root(rootfd, "/dev", err);
	if (dev < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(dev_symlinks); i++)
		if (symlinkat(dev_symlinks[i].target, dev, dev_symlinks[i].name) < 0 && errno != EEXIST)
			return error_sys(err, errno, "symlink /dev/%s", dev_symlinks[i].name);
	return 0;
}

/* --- masked and read-only paths ------------------------------------------ */

static int mask_path(int rootfd, const char *path, struct capsa_error **err)
{
	_cleanup_close_ int fd = open_beneath(rootfd, path, O_PATH, 0, RES_IN_ROOT);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return error_sys(err, errno, "mask %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return error_sys(err, errno, "mask %s", path);
	char p[FDPATH_LEN];
	fd_path(fd, p);
	int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
				    : mount("/dev/null", p, NULL, MS_BIND, NULL);
	if (r < 0)
		return error_sys(err, errno, "mask %s", path);
	return 0;
}

static int readonly_path(int rootfd, const char *path, struct capsa_error **err)
{
	_cleanup_close_ int fd = open_beneath(rootfd, path, O_PATH, 0, RES_IN_ROOT);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return error_sys(err, errno, "make %s read-only", path);
	}
	char p[FDPATH_LEN];
	fd_path(fd, p);
	if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
		return error_sys(err, errno, "make %s read-only: bind", path);
	_cleanup_close_ int top = reopen_in_root(rootfd, path, err);
	if (top < 0)
		return -1;
	return set_mount_flags(top, MS_RDONLY, true, path, err);
}

/* --- root, propagation, pivot ----------------------------------------- */

/* pivot_root refuses a new root whose parent mount is shared: make the
 * mount containing root's parent directory private (only needed when the
 * caller asked for shared propagation of "/"). */
static int make_parent_private(const char *root, struct capsa_error **err)
{
	struct linux_mnt *mi;
	size_t n;
	if (linux_mountinfo_read(&mi, &n, err) < 0)
		return -1;
	_cleanup_free_ char *parent = xstrdup(root);
	char *slash = strrchr(parent, '/');
	if (slash)
		*(slash == parent ? slash + 1 : slash) = '\0';
	const char *best = "/";
	size_t best_len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(mi[i].point);
		if (l >= best_len && str_has_prefix(parent, mi[i].point) &&
		    (parent[l] == '/' || parent[l] == '\0' || l == 1)) {
			best = mi[i].point;
			best_len = l;
		}
	}
	int rc = 0;
	if (mount(NULL, best, NULL, MS_PRIVATE, NULL) < 0)
		rc = error_sys(err, errno, "make %s private", best);
	linux_mountinfo_free(mi, n);
	return rc;
}

static int mount_root(const struct linux_rootfs *r, struct capsa_error **err)
{
	if (r->overlay_data) {
		_cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (r->overlay_dir && chdir(r->overlay_dir) < 0)
			return error_sys(err, errno, "enter %s", r->overlay_dir);
		int m = mount("overlay", r->root, "overlay", 0, r->overlay_data);
		int e = errno;
		if (cwd >= 0 && fchdir(cwd) < 0 && m == 0)
			return error_sys(err, errno, "return from %s", r->overlay_dir);
		if (m < 0)
			return error_sys(err, e, "mount overlay on %s", r->root);
		return 0;
	}
	if (mount(r->root, r->root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return error_sys(err, errno, "bind mount %s onto itself", r->root);
	return 0;
}

static int pivot(int rootfd, bool no_pivot, struct capsa_error **err)
{
	if (fchdir(rootfd) < 0)
		return error_sys(err, errno, "enter the new root");
	if (no_pivot) {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			return error_sys(err, errno, "move the new root onto /");
		if (chroot(".") < 0)
			return error_sys(err, errno, "chroot into the new root");
		if (chdir("/") < 0)
			return error_sys(err, errno, "chdir /");
		return 0;
	}
	_cleanup_close_ int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (oldroot < 0)
		return error_sys(err, errno, "open the old root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return error_sys(err, errno, "pivot_root");
	/* The old root is now stacked on top of the new one. */
	if (fchdir(oldroot) < 0)
		return error_sys(err, errno, "enter the old root");
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return error_sys(err, errno, "make the old root a slave");
	if (umount2(".", MNT_DETACH) < 0)
		return error_sys(err, errno, "detach the old root");
	if (chdir("/") < 0)
		return error_sys(err, errno, "chdir /");
	return 0;
}

int linux_rootfs_setup(const struct linux_rootfs *r, struct capsa_error **err)
{
	if (!r->root || r->root[0] != '/')
		return error_set(err, EINVAL, "rootfs '%s': not an absolute path", r->root ? r->root : "");
	/* 1 */
	unsigned long prop = r->propagation ? r->propagation : MS_PRIVATE | MS_REC;
	if (mount(NULL, "/", NULL, prop | MS_REC, NULL) < 0)
		return error_sys(err, errno, "set propagation of /");
	/* 2 */
	if (mount_root(r, err) < 0)
		return -1;
	if ((prop & MS_SHARED) && make_parent_private(r->root, err) < 0)
		return -1;
	/* 3 */
	_cleanup_close_ int rootfd = open(r->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return error_sys(err, errno, "open %s", r->root);
	/* 4 */
	bool cgroup_seen = false;
	for (size_t i = 0; i < r->n_mounts; i++) {
		const char *t = r->mounts[i].fstype;
		if (!cgroup_seen && t && str_has_prefix(t, "cgroup") && !r->mounts[i].bind) {
			cgroup_seen = true;
			if (r->before_cgroup && r->before_cgroup(r->before_cgroup_ctx, err) < 0)
				return -1;
		}
		if (do_mount(rootfd, &r->mounts[i], err) < 0)
			return -1;
	}
	/* 5 */
	if (r->default_devices) {
		for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++)
			if (make_device(rootfd, &default_devices[i], err) < 0)
				return -1;
	}
	for (size_t i = 0; i < r->n_devices; i++)
		if (make_device(rootfd, &r->devices[i], err) < 0)
			return -1;
	if (r->default_devices && make_dev_symlinks(rootfd, err) < 0)
		return -1;
	/* 6, 7 */
	for (size_t i = 0; r->masked_paths && r->masked_paths[i]; i++)
		if (mask_path(rootfd, r->masked_paths[i], err) < 0)
			return -1;
	for (size_t i = 0; r->readonly_paths && r->readonly_paths[i]; i++)
		if (readonly_path(rootfd, r->readonly_paths[i], err) < 0)
			return -1;
	/* 8 */
	if (r->readonly && set_mount_flags(rootfd, MS_RDONLY, false, "/", err) < 0)
		return error_wrap(err, "read-only root");
	/* 9 */
	if (r->before_pivot) {
		if (fchdir(rootfd) < 0)
			return error_sys(err, errno, "enter the new root");
		if (r->before_pivot(r->before_pivot_ctx, err) < 0)
			return -1;
	}
	/* 10 */
	return pivot(rootfd, r->no_pivot, err);
}

/* --- defaults ------------------------------------------------------------ */

/* The header's type is char *const[] (it matches the struct field); the
 * strings themselves are never written. */
#define S(x) ((char *)(x))
char *const linux_default_masked_paths[] = {
	S("/proc/asound"),	S("/proc/acpi"),	 S("/proc/interrupts"), S("/proc/kcore"),
	S("/proc/keys"),	S("/proc/latency_stats"), S("/proc/timer_list"), S("/proc/timer_stats"),
	S("/proc/sched_debug"), S("/proc/scsi"),	 S("/sys/firmware"),	S("/sys/devices/virtual/powercap"),
	NULL,
};

char *const linux_default_readonly_paths[] = {
	S("/proc/bus"), S("/proc/fs"), S("/proc/irq"), S("/proc/sys"), S("/proc/sysrq-trigger"), NULL,
};
#undef S

#define NSD (MS_NOSUID | MS_NODEV)
#define NSDE (MS_NOSUID | MS_NODEV | MS_NOEXEC)

const struct linux_mount *linux_default_mounts(size_t *n, const char *shm_size_opt)
{
	static char shm_data[96];
	static struct linux_mount m[7];
	size_t k = 0;
	if (!shm_size_opt || !*shm_size_opt)
		shm_size_opt = "size=65536k";
	snprintf(shm_data, sizeof(shm_data), "mode=1777,%s%s", str_has_prefix(shm_size_opt, "size=") ? "" : "size=",
		 shm_size_opt);
	m[k++] = (struct linux_mount){ .source = "proc", .target = "/proc", .fstype = "proc", .flags = NSDE };
	m[k++] = (struct linux_mount){ .source = "tmpfs", .target = "/dev", .fstype = "tmpfs",
				       .data = "mode=755,size=65536k,nr_inodes=65536", .flags = MS_NOSUID | MS_STRICTATIME };
	m[k++] = (struct linux_mount){ .source = "devpts", .target = "/dev/pts", .fstype = "devpts",
				       .data = "newinstance,ptmxmode=0666,mode=0620,gid=5",
				       .flags = MS_NOSUID | MS_NOEXEC };
	m[k++] = (struct linux_mount){ .source = "shm", .target = "/dev/shm", .fstype = "tmpfs", .data = shm_data,
				       .flags = NSDE };
	m[k++] = (struct linux_mount){ .source = "mqueue", .target = "/dev/mqueue", .fstype = "mqueue", .flags = NSDE };
	m[k++] = (struct linux_mount){ .source = "sysfs", .target = "/sys", .fstype = "sysfs", .flags = NSDE | MS_RDONLY };
	switch (linux_cgroup_mode()) {
	case CGROUP_MODE_V2:
		m[k++] = (struct linux_mount){ .source = "cgroup", .target = "/sys/fs/cgroup", .fstype = "cgroup2",
					       .flags = NSDE | MS_RDONLY };
		break;
	case CGROUP_MODE_V1:
		m[k++] = (struct linux_mount){ .source = "cgroup", .target = "/sys/fs/cgroup", .fstype = "cgroup",
					       .flags = NSDE | MS_RDONLY };
		break;
	case CGROUP_MODE_NONE:
		break;
	}
	*n = k;
	return m;
}
