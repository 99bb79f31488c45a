/* fs.c: file helpers and confined path resolution.
 *
 * open_beneath() must never return an fd outside dirfd, whatever the path or
 * the tree contains (symlinks, "..", concurrent renames).  The openat2(2)
 * path gets that from the kernel; the fallback walks one component at a time
 * with O_NOFOLLOW and resolves symlinks itself against a clamped stack of
 * directory fds, so a rename racing the walk can at worst fail the lookup.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs.h"

ssize_t read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t r = write(fd, c, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

int read_all(int fd, struct buf *b, size_t cap)
{
	for (;;) {
		if (b->len >= cap) {
			char c;
			ssize_t r = read(fd, &c, 1);
			if (r == 0)
				return 0;
			errno = EFBIG;
			return -1;
		}
		size_t want = MIN((size_t)65536, cap - b->len);
		if (buf_reserve(b, want) < 0)
			return -1;
		ssize_t r = read(fd, b->data + b->len, want);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return 0;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
	}
}

int read_file_at(int dirfd, const char *path, size_t cap, struct buf *out, struct capsa_error **err)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return error_sys(err, errno, "open %s", path);
	if (read_all(fd, out, cap) < 0) {
		if (errno == EFBIG)
			return error_set(err, EFBIG, "read %s: larger than %zu bytes", path, cap);
		return error_sys(err, errno, "read %s", path);
	}
	buf_cstr(out);
	return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *p, size_t n, mode_t mode,
			 bool sync, struct capsa_error **err)
{
	_cleanup_free_ char *rnd = random_hex(6);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp-%s", name, rnd);
	_cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return error_sys(err, errno, "create %s", tmp);
	if (write_all(fd, p, n) < 0 || (sync && fsync(fd) < 0) || fchmod(fd, mode) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return error_sys(err, e, "write %s", name);
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return error_sys(err, e, "rename %s", name);
	}
	return 0;
}

int write_str_at(int dirfd, const char *name, const char *s)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	size_t n = strlen(s);
	ssize_t r;
	do
		r = write(fd, s, n);
	while (r < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	errno = e;
	return r == (ssize_t)n ? 0 : -1;
}

int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int rm_tree_fd(int dfd, dev_t dev, const char *what, struct capsa_error **err, int depth)
{
	if (depth > 4096)
		return error_set(err, ELOOP, "remove %s: tree too deep", what);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return error_sys(err, errno, "remove %s", what);
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			rc = error_sys(err, errno, "remove %s/%s", what, de->d_name);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (st.st_dev != dev) {
				rc = error_set(err, EBUSY, "remove %s/%s: a mount point", what, de->d_name);
				continue;
			}
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = error_sys(err, errno, "remove %s/%s", what, de->d_name);
				continue;
			}
			/* The tree may hold directories we cannot enter (mode 0):
			 * root can, and other callers get a clear error. */
			if (rm_tree_fd(sub, dev, what, err, depth + 1) < 0)
				rc = -1;
			if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
				rc = error_sys(err, errno, "remove %s/%s", what, de->d_name);
		} else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
			rc = error_sys(err, errno, "remove %s/%s", what, de->d_name);
		}
	}
	closedir(d);
	return rc;
}

DIR *opendir_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d && fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

int rm_rf_at(int dirfd, const char *path, struct capsa_error **err)
{
	struct stat st;
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : error_sys(err, errno, "remove %s", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, path, 0) < 0 && errno != ENOENT)
			return error_sys(err, errno, "remove %s", path);
		return 0;
	}
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "remove %s", path);
	if (rm_tree_fd(fd, st.st_dev, path, err, 0) < 0)
		return -1;
	if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return error_sys(err, errno, "remove %s", path);
	return 0;
}

static bool force_fallback;
static int openat2_state; /* 0 unknown, 1 works, -1 missing */

void fs_force_openat2_fallback(bool on)
{
	force_fallback = on;
}

#define MAX_SYMLINKS 40

/* Component walk used when openat2 is missing.  The stack holds the fds of
 * the directories from dirfd down to the current one, so ".." pops (and is
 * clamped at dirfd in RES_IN_ROOT mode) without any lookup by name. */
enum { WALK_DEPTH = 256 };

struct walk {
	int stack[WALK_DEPTH];
	int depth;
	int links;
	char *work; /* the path being walked (a symlink's target spliced in) */
	char *rest; /* what is left of it */
};

/* Splits the next component off w->rest; *last: nothing follows it. */
static char *next_component(struct walk *w, bool *last)
{
	char *comp = w->rest;
	char *slash = strchr(comp, '/');
	if (slash) {
		*slash = '\0';
		w->rest = slash + 1;
		while (*w->rest == '/')
			w->rest++;
		*last = *w->rest == '\0';
	} else {
		w->rest = comp + strlen(comp);
		*last = true;
	}
	return comp;
}

/* The walk goes on through the target of the symlink comp.  0 or an errno. */
static int splice_symlink(struct walk *w, const char *comp, int res)
{
	if ((res & RES_NO_SYMLINKS) || ++w->links > MAX_SYMLINKS)
		return ELOOP;
	char target[PATH_MAX];
	ssize_t tl = readlinkat(w->stack[w->depth], comp, target, sizeof(target) - 1);
	if (tl < 0)
		return errno;
	target[tl] = '\0';
	char *joined;
	if (asprintf(&joined, "%s%s%s", target, *w->rest ? "/" : "", w->rest) < 0)
		return ENOMEM;
	free(w->work);
	w->work = w->rest = joined;
	return 0;
}

/* One step down into the directory comp, or through the symlink comp.
 * 0 or an errno. */
static int step_into(struct walk *w, const char *comp, int res)
{
	struct stat st;
	if (fstatat(w->stack[w->depth], comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (S_ISLNK(st.st_mode))
		return splice_symlink(w, comp, res);
	if (!S_ISDIR(st.st_mode))
		return ENOTDIR;
	if (w->depth + 1 >= WALK_DEPTH)
		return ENAMETOOLONG;
	int fd = openat(w->stack[w->depth], comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	w->stack[++w->depth] = fd;
	return 0;
}

static int walk_beneath(int dirfd, const char *path, int flags, mode_t mode, int res)
{
	struct walk w = { .depth = 0 };
	int result = -1, saved = 0;
	w.work = w.rest = strdup(path);
	if (!w.work) {
		errno = ENOMEM;
		return -1;
	}
	w.stack[0] = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (w.stack[0] < 0) {
		free(w.work);
		return -1;
	}
	for (;;) {
		if (*w.rest == '/') {
			if (res & RES_NO_SYMLINKS) {
				saved = EXDEV; /* absolute paths are not beneath anything */
				break;
			}
			while (*w.rest == '/')
				w.rest++;
			while (w.depth > 0)
				close(w.stack[w.depth--]);
		}
		bool here = *w.rest == '\0'; /* the path named the directory itself */
		bool last = true;
		char *comp = here ? NULL : next_component(&w, &last);
		bool dotdot = !here && strcmp(comp, "..") == 0;
		if (dotdot) {
			if (res & RES_NO_SYMLINKS) {
				saved = EXDEV;
				break;
			}
			if (w.depth > 0)
				close(w.stack[w.depth--]);
		}
		if (here || dotdot || strcmp(comp, ".") == 0) {
			if (!last)
				continue;
			result = fcntl(w.stack[w.depth], F_DUPFD_CLOEXEC, 3);
			saved = errno;
			break;
		}
		if (last) {
			int fd = openat(w.stack[w.depth], comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
			if (fd >= 0 || errno != ELOOP || (flags & O_NOFOLLOW) || (res & RES_NO_SYMLINKS)) {
				result = fd;
				saved = errno;
				break;
			}
			/* a final symlink to follow: resolve it */
		}
		saved = step_into(&w, comp, res);
		if (saved)
			break;
	}
	for (int i = 0; i <= w.depth; i++)
		close(w.stack[i]);
	free(w.work);
	errno = saved;
	return result;
}

int open_beneath(int dirfd, const char *path, int flags, mode_t mode, int res)
{
	if (!path || !*path) {
		errno = ENOENT;
		return -1;
	}
	if (!force_fallback && openat2_state >= 0) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_CLOEXEC),
			.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
			.resolve = RESOLVE_NO_MAGICLINKS,
		};
		if (res & RES_NO_SYMLINKS)
			how.resolve |= RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
		if (res & RES_IN_ROOT)
			how.resolve |= RESOLVE_IN_ROOT;
		for (;;) {
			long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
			if (fd >= 0) {
				openat2_state = 1;
				return (int)fd;
			}
			/* EAGAIN: a concurrent rename raced the lookup. */
			if (errno == EAGAIN)
				continue;
			if (errno == ENOSYS || (errno == EPERM && openat2_state == 0)) {
				openat2_state = -1;
				break;
			}
			return -1;
		}
	}
	return walk_beneath(dirfd, path, flags, mode, res);
}

int open_parent_beneath(int dirfd, const char *path, int res, const char **base)
{
	const char *slash = strrchr(path, '/');
	const char *b = slash ? slash + 1 : path;
	if (!*b || strcmp(b, ".") == 0 || strcmp(b, "..") == 0) {
		errno = EINVAL;
		return -1;
	}
	*base = b;
	if (!slash)
		return fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	size_t n = (size_t)(slash - path);
	char *dir = xstrndup(path, n);
	int fd = n == 0 ? (res & RES_NO_SYMLINKS ? (errno = EXDEV, -1) : open_beneath(dirfd, "/", O_PATH | O_DIRECTORY, 0, res))
			: open_beneath(dirfd, dir, O_PATH | O_DIRECTORY, 0, res);
	free(dir);
	return fd;
}

int rename_at(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags)
{
	if (!flags)
		return renameat(olddirfd, oldpath, newdirfd, newpath);
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int mkdir_p_beneath(int dirfd, const char *path, mode_t mode, int res)
{
	int fd = open_beneath(dirfd, path, O_PATH | O_DIRECTORY, 0, res);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != ENOENT)
		return -1;
	size_t n = strlen(path);
	if (n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char prefix[PATH_MAX];
	memcpy(prefix, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (prefix[i] != '/' && prefix[i] != '\0')
			continue;
		if (prefix[i - 1] == '/')
			continue;
		char saved = prefix[i];
		prefix[i] = '\0';
		fd = open_beneath(dirfd, prefix, O_PATH | O_DIRECTORY, 0, res);
		if (fd >= 0) {
			close(fd);
		} else if (errno == ENOENT) {
			const char *base;
			int pfd = open_parent_beneath(dirfd, prefix, res, &base);
			if (pfd < 0)
				return -1;
			int r = mkdirat(pfd, base, mode);
			int e = errno;
			close(pfd);
			if (r < 0 && e != EEXIST) {
				errno = e;
				return -1;
			}
		} else {
			return -1;
		}
		prefix[i] = saved;
	}
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa, int *dirfd_out)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	*dirfd_out = -1;
	size_t n = strlen(path);
	if (n < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, n + 1);
		return 0;
	}
	/* Too long: open the directory and go through /proc/self/fd. */
	const char *slash = strrchr(path, '/');
	if (!slash) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *dir = xstrndup(path, (size_t)(slash - path));
	int dfd = open(*dir ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dfd < 0)
		return -1;
	int w = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dfd, slash + 1);
	if (w < 0 || (size_t)w >= sizeof(sa->sun_path)) {
		close(dfd);
		errno = ENAMETOOLONG;
		return -1;
	}
	*dirfd_out = dfd;
	return 0;
}

int unix_connect(const char *path, bool nonblock)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dfd = -1;
	if (unix_addr(path, &sa, &dfd) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int unix_listen(const char *path, mode_t mode, int backlog)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dfd = -1;
	if (unix_addr(path, &sa, &dfd) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, mode) < 0 ||
	    listen(fd, backlog) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int fd_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int fd_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl);
}
