/* idmap-copy.c: the fallback for a kernel or store filesystem that cannot
 * idmap a layer: a copy of each layer with every owner shifted into the
 * sandbox's block, cached per block under <store>/layers-shifted/<uid>-<gid>/
 * and shared by every later sandbox that gets the same block.  libc only.
 *
 * Ids outside 0..count-1 (none in a sane image) become the overflow id
 * 65534 inside.  Kept: modes (set after the owner, since chown clears the
 * set-id bits), times, symlinks, device nodes, fifos, whiteouts and the
 * overlay's trusted.* and user.* xattrs (opaque directories).  Not kept:
 * hard links (each name becomes its own copy) and security.capability (a
 * file capability written by host root does not apply in the namespace
 * anyway).  A copy is built under a temporary name and renamed into place,
 * so a half-made copy is never used.
 * Must never: follow a symlink of the layer, or write outside the cache.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "idmap.h"
#include "util/fs.h"
#include "util/str.h"

#define MAX_DEPTH 256

struct shift {
	uint32_t uid, gid, count;
};

static uid_t shift_uid(const struct shift *s, uid_t u)
{
	return (uid_t)(s->uid + (u < s->count ? u : 65534));
}

static gid_t shift_gid(const struct shift *s, gid_t g)
{
	return (gid_t)(s->gid + (g < s->count ? g : 65534));
}

static int copy_xattrs(int src, int dst)
{
	char names[8192], val[65536];
	ssize_t n = flistxattr(src, names, sizeof(names));
	if (n < 0)
		return errno == ENOTSUP ? 0 : -1;
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (!str_has_prefix(p, "trusted.") && !str_has_prefix(p, "user."))
			continue;
		ssize_t v = fgetxattr(src, p, val, sizeof(val));
		if (v < 0 || fsetxattr(dst, p, val, (size_t)v, 0) < 0)
			return -1;
	}
	return 0;
}

static int copy_data(int src, int dst, off_t size)
{
	while (size > 0) {
		ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)size, 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
			char b[65536];
			n = read(src, b, sizeof(b));
			if (n > 0 && write_all(dst, b, (size_t)n) < 0)
				return -1;
		}
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		size -= n;
	}
	return 0;
}

/* Owner, then mode, then times, of what fd (or dir/name) is. */
static int finish(int fd, const struct stat *st, const struct shift *s)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (fchown(fd, shift_uid(s, st->st_uid), shift_gid(s, st->st_gid)) < 0 || fchmod(fd, st->st_mode & 07777) < 0 ||
	    futimens(fd, ts) < 0)
		return -1;
	return 0;
}

static int shift_dir(int src, int dst, const struct shift *s, int depth);

static int shift_entry(int src, int dst, const char *name, const struct shift *s, int depth)
{
	struct stat st;
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(dst, name, 0700) < 0)
			return -1;
		_cleanup_close_ int a = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_close_ int b = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (a < 0 || b < 0 || shift_dir(a, b, s, depth + 1) < 0 || copy_xattrs(a, b) < 0)
			return -1;
		return finish(b, &st, s);
	}
	if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int a = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_close_ int b = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (a < 0 || b < 0 || copy_data(a, b, st.st_size) < 0 || copy_xattrs(a, b) < 0)
			return -1;
		return finish(b, &st, s);
	}
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
		if (n < 0)
			return -1;
		target[n] = '\0';
		if (symlinkat(target, dst, name) < 0)
			return -1;
	} else if (mknodat(dst, name, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0) {
		return -1; /* devices, fifos, sockets, whiteouts (0:0) */
	}
	if (fchownat(dst, name, shift_uid(s, st.st_uid), shift_gid(s, st.st_gid), AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISLNK(st.st_mode) && fchmodat(dst, name, st.st_mode & 07777, 0) < 0)
		return -1;
	return utimensat(dst, name, ts, AT_SYMLINK_NOFOLLOW);
}

static int shift_dir(int src, int dst, const struct shift *s, int depth)
{
	if (depth > MAX_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	int d = dup(src);
	DIR *dir = d >= 0 ? fdopendir(d) : NULL;
	if (!dir) {
		if (d >= 0)
			close(d);
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(dir))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = shift_entry(src, dst, e->d_name, s, depth);
	}
	closedir(dir);
	return rc;
}

/* One layer into cache/<name>, unless it is there already. */
static int shift_layer(int layers, int cache, const char *name, const struct shift *s, struct capsa_error **err)
{
	if (faccessat(cache, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	char tmp[300];
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	rm_rf_at(cache, tmp, NULL);
	_cleanup_close_ int src = openat(layers, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return error_sys(err, errno, "layer %s", name);
	struct stat st;
	if (fstat(src, &st) < 0 || mkdirat(cache, tmp, 0700) < 0)
		return error_sys(err, errno, "layer %s: shifted copy", name);
	_cleanup_close_ int dst = openat(cache, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0 || shift_dir(src, dst, s, 0) < 0 || copy_xattrs(src, dst) < 0 || finish(dst, &st, s) < 0 ||
	    renameat(cache, tmp, cache, name) < 0) {
		int e = errno;
		rm_rf_at(cache, tmp, NULL);
		return error_sys(err, e, "layer %s: shifted copy", name);
	}
	return 0;
}

int linux_idmap_copy_layers(const char *store_root, const char *layer_dir, const char *overlay_data, uint32_t uid,
			    uint32_t gid, uint32_t count, char **dir_out, struct capsa_error **err)
{
	_cleanup_free_ char *list = linux_overlay_lowers(overlay_data);
	if (!list)
		return error_set(err, EINVAL, "overlay options without lowerdir");
	_cleanup_free_ char *top = xasprintf("%s/" LINUX_IDMAP_COPY_DIR, store_root);
	_cleanup_free_ char *dir = xasprintf("%s/%u-%u", top, uid, gid);
	if ((mkdir(top, 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return error_sys(err, errno, "create %s", dir);
	_cleanup_close_ int cache = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int layers = open(layer_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cache < 0 || layers < 0)
		return error_sys(err, errno, "open %s", cache < 0 ? dir : layer_dir);
	/* one builder per block at a time */
	if (flock(cache, LOCK_EX) < 0)
		return error_sys(err, errno, "lock %s", dir);
	struct shift s = { uid, gid, count };
	char *save = NULL;
	for (char *name = strtok_r(list, ":", &save); name; name = strtok_r(NULL, ":", &save)) {
		if (strchr(name, '/') || name[0] == '.')
			return error_set(err, EINVAL, "layer '%s': not a name in %s", name, layer_dir);
		if (shift_layer(layers, cache, name, &s, err) < 0)
			return error_wrap(err, "copy image layers for ids %u-%u", uid, uid + count - 1);
	}
	*dir_out = steal_pointer(&dir);
	return 0;
}
