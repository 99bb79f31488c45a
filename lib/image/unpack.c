/* unpack.c: creating a layer directory from a tar stream (see unpack.h for
 * the contract).
 *
 * Invariants, in the order each entry is handled:
 *   1. the entry name is cleaned lexically: absolute names and ".."
 *      components are refused, "." and empty components dropped;
 *   2. the parent directory is opened with open_beneath(RES_NO_SYMLINKS)
 *      relative to the layer directory (a symlink anywhere in the parent
 *      path is refused, not followed); missing parents are created one
 *      component at a time with the same rule;
 *   3. whatever exists under the final name is removed (tar semantics: a
 *      later entry replaces an earlier one) unless both are directories;
 *   4. the entry is created with mkdirat/openat(O_EXCL|O_NOFOLLOW)/
 *      symlinkat/linkat/mknodat relative to that parent fd: the final
 *      component is never followed;
 *   5. owner, then mode (chown clears setuid bits), xattrs, times.
 * Directory times are applied at the end, after everything inside them
 * was created.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/decomp.h"
#include "image/unpack.h"
#include "linux/rootless.h"
#include "util/fs.h"
#include "util/str.h"

struct dir_time {
	char *path;
	struct timespec ts[2];
};

struct unpacker {
	int root; /* the layer directory */
	const struct unpack_opts *o;
	struct layer_reader *rd;
	struct capsa_error *read_err; /* set by the archive read callback */
	char *cache_path;	      /* parent directory last resolved */
	int cache_fd;
	bool cache_setgid;	      /* it has the setgid bit: new files take its group */
	bool parent_setgid;	      /* same, for the parent get_parent() returned last */
	mode_t umask;		      /* of the process, read once */
	uid_t euid;
	gid_t egid;
	struct dir_time *dirs;
	size_t n_dirs, alloc_dirs;
	uint64_t entries, bytes, max_entries, max_bytes;
	const char *show; /* the current entry's name, for messages */
};

/* libarchive's messages start with a capital; ours are lower case. */
static char *archive_msg(struct archive *a)
{
	const char *m = archive_error_string(a);
	char *r = xstrdup(m ? m : "read error");
	if (r[0] >= 'A' && r[0] <= 'Z' && !(r[1] >= 'A' && r[1] <= 'Z'))
		r[0] = (char)(r[0] - 'A' + 'a');
	return r;
}

/* Entry names in messages: printable, bounded. */
static char *show_name(const char *s)
{
	size_t n = strnlen(s, 200);
	char *r = xmalloc(n + 4);
	for (size_t i = 0; i < n; i++)
		r[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	memcpy(r + n, s[n] ? "..." : "", s[n] ? 4 : 1);
	return r;
}

/* Lexical clean-up of an entry name into out (PATH_MAX): see step 1. */
static int clean_name(const char *in, char *out, const char **why)
{
	if (in[0] == '/') {
		*why = "absolute path";
		return -1;
	}
	size_t o = 0;
	const char *p = in;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			*why = "path leaves the layer ('..' component)";
			return -1;
		}
		if (n && !(n == 1 && p[0] == '.')) {
			if (o + n + 2 > PATH_MAX) {
				*why = "name too long";
				return -1;
			}
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	out[o] = '\0';
	return 0;
}

static void cache_drop(struct unpacker *u)
{
	if (u->cache_fd >= 0)
		close(u->cache_fd);
	u->cache_fd = -1;
	free(u->cache_path);
	u->cache_path = NULL;
}

/* Creates the missing directories of dir one component at a time; a
 * component that exists must be a real directory (O_NOFOLLOW). */
static int make_parents(struct unpacker *u, const char *dir, struct capsa_error **err)
{
	int cur = fcntl(u->root, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return error_sys(err, errno, "entry '%s': dup", u->show);
	_cleanup_free_ char *work = xstrdup(dir);
	char *save = NULL;
	for (char *c = strtok_r(work, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(cur);
			return error_sys(err, e, "entry '%s': create parent directory '%s'", u->show, c);
		}
		int next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(cur);
		if (next < 0) {
			if (e == ENOTDIR || e == ELOOP)
				return error_set(err, ENOTDIR, "entry '%s': parent '%s' is a symlink or not a directory",
						 u->show, dir);
			return error_sys(err, e, "entry '%s': open parent '%s'", u->show, dir);
		}
		cur = next;
	}
	return cur;
}

/* The parent directory of an entry ("" is the layer root), cached because
 * tar entries come grouped by directory.  The returned fd is borrowed. */
static int get_parent(struct unpacker *u, const char *dir, struct capsa_error **err)
{
	if (!*dir) {
		struct stat sb;
		u->parent_setgid = fstat(u->root, &sb) == 0 && (sb.st_mode & S_ISGID);
		return u->root;
	}
	if (u->cache_path && str_eq(u->cache_path, dir)) {
		u->parent_setgid = u->cache_setgid;
		return u->cache_fd;
	}
	cache_drop(u);
	int fd = open_beneath(u->root, dir, O_PATH | O_DIRECTORY, 0, RES_NO_SYMLINKS);
	if (fd < 0) {
		if (errno == ENOENT) {
			fd = make_parents(u, dir, err);
			if (fd < 0)
				return -1;
		} else if (errno == ELOOP || errno == EXDEV || errno == ENOTDIR) {
			return error_set(err, ENOTDIR, "entry '%s': parent '%s' is a symlink or not a directory", u->show,
					 dir);
		} else {
			return error_sys(err, errno, "entry '%s': open parent '%s'", u->show, dir);
		}
	}
	struct stat sb;
	u->cache_fd = fd;
	u->cache_path = xstrdup(dir);
	u->cache_setgid = fstat(fd, &sb) == 0 && (sb.st_mode & S_ISGID);
	u->parent_setgid = u->cache_setgid;
	return fd;
}

/* Step 3: clear the way for a new entry named base in parent. */
static int replace_existing(struct unpacker *u, int parent, const char *base, bool keep_dir, bool *is_dir,
			    struct capsa_error **err)
{
	struct stat sb;
	*is_dir = false;
	if (fstatat(parent, base, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return error_sys(err, errno, "entry '%s': stat", u->show);
	}
	if (S_ISDIR(sb.st_mode)) {
		if (keep_dir) {
			*is_dir = true;
			return 0;
		}
		/* the cached parent may live below the tree we remove */
		cache_drop(u);
		if (rm_rf_at(parent, base, err) < 0)
			return error_wrap(err, "entry '%s': replace directory", u->show);
		return 0;
	}
	if (unlinkat(parent, base, 0) < 0 && errno != ENOENT)
		return error_sys(err, errno, "entry '%s': replace existing entry", u->show);
	return 0;
}

/* Never an overlayfs mark from the image: a rootless store's overlay
 * reads user.overlay.* (opaque, redirect, metacopy) as its own. */
static bool xattr_allowed(const char *name)
{
	return (str_has_prefix(name, "user.") && !str_has_prefix(name, "user.overlay.")) || str_eq(name, "security.capability") ||
	       str_eq(name, "system.posix_acl_access") || str_eq(name, "system.posix_acl_default");
}

static int apply_xattrs(struct unpacker *u, struct archive_entry *e, int fd, struct capsa_error **err)
{
	int n = archive_entry_xattr_reset(e);
	if (n <= 0)
		return 0;
	if (n > UNPACK_MAX_XATTRS)
		return error_set(err, E2BIG, "entry '%s': %d xattrs, more than the %d allowed", u->show, n,
				 UNPACK_MAX_XATTRS);
	const char *name;
	const void *val;
	size_t len;
	while (archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
		if (!name || !xattr_allowed(name))
			continue;
		if (len > UNPACK_MAX_XATTR)
			return error_set(err, E2BIG, "entry '%s': xattr %s of %zu bytes is too large", u->show, name, len);
		if (fsetxattr(fd, name, val, len, 0) < 0 && errno != ENOTSUP)
			return error_sys(err, errno, "entry '%s': set xattr %s", u->show, name);
	}
	return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[1].tv_sec = archive_entry_mtime_is_set(e) ? archive_entry_mtime(e) : 0;
	ts[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = archive_entry_atime_nsec(e);
	} else {
		ts[0] = ts[1];
	}
	for (int i = 0; i < 2; i++)
		if (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000)
			ts[i].tv_nsec = 0;
}

static int entry_owner(struct unpacker *u, struct archive_entry *e, uid_t *uid, gid_t *gid, struct capsa_error **err)
{
	int64_t a = archive_entry_uid(e), b = archive_entry_gid(e);
	if (a < 0 || a >= UINT32_MAX || b < 0 || b >= UINT32_MAX)
		return error_set(err, EINVAL, "entry '%s': invalid owner %lld:%lld", u->show, (long long)a, (long long)b);
	*uid = (uid_t)a;
	*gid = (gid_t)b;
	return 0;
}

/* Step 5 for an entry we hold an fd on (files, directories, the root). */
static int apply_meta_fd(struct unpacker *u, struct archive_entry *e, int fd, struct capsa_error **err)
{
	uid_t uid;
	gid_t gid;
	if (entry_owner(u, e, &uid, &gid, err) < 0)
		return -1;
	if (fchown(fd, uid, gid) < 0)
		return error_sys(err, errno, "entry '%s': chown", u->show);
	if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
		return error_sys(err, errno, "entry '%s': chmod", u->show);
	return apply_xattrs(u, e, fd, err);
}

/* Step 5 by name, for entries we cannot open (symlinks, FIFOs, devices). */
static int apply_meta_at(struct unpacker *u, struct archive_entry *e, int parent, const char *base, bool symlink,
			 struct capsa_error **err)
{
	uid_t uid;
	gid_t gid;
	if (entry_owner(u, e, &uid, &gid, err) < 0)
		return -1;
	if (fchownat(parent, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return error_sys(err, errno, "entry '%s': chown", u->show);
	/* the entry was just created by us in our private directory: nothing
	 * can have swapped it for a symlink (and it is not one) */
	if (!symlink && fchmodat(parent, base, archive_entry_perm(e) & 07777, 0) < 0)
		return error_sys(err, errno, "entry '%s': chmod", u->show);
	struct timespec ts[2];
	entry_times(e, ts);
	if (utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return error_sys(err, errno, "entry '%s': set times", u->show);
	return 0;
}

static void record_dir_time(struct unpacker *u, const char *path, struct archive_entry *e)
{
	if (u->n_dirs == u->alloc_dirs) {
		u->alloc_dirs = u->alloc_dirs ? u->alloc_dirs * 2 : 256;
		u->dirs = xrealloc(u->dirs, u->alloc_dirs * sizeof(*u->dirs));
	}
	struct dir_time *d = &u->dirs[u->n_dirs++];
	d->path = xstrdup(path);
	entry_times(e, d->ts);
}

static int write_data(struct unpacker *u, struct archive *a, struct archive_entry *e, int fd, struct capsa_error **err)
{
	int64_t size = archive_entry_size(e);
	int64_t pos = 0;
	for (;;) {
		const void *p;
		size_t len;
		la_int64_t off;
		int r = archive_read_data_block(a, &p, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			if (u->read_err) {
				error_move(err, &u->read_err);
				return error_wrap(err, "entry '%s'", u->show);
			}
			_cleanup_free_ char *m = archive_msg(a);
			return error_set(err, EINVAL, "entry '%s': %s", u->show, m);
		}
		if (off < pos || off > size || (int64_t)len > size - off)
			return error_set(err, EINVAL, "entry '%s': data outside the declared size", u->show);
		if (off > pos && lseek(fd, off, SEEK_SET) < 0)
			return error_sys(err, errno, "entry '%s': seek", u->show);
		if (write_all(fd, p, len) < 0)
			return error_sys(err, errno, "entry '%s': write", u->show);
		pos = off + (int64_t)len;
	}
	if (pos < size && ftruncate(fd, size) < 0)
		return error_sys(err, errno, "entry '%s': truncate", u->show);
	return 0;
}

static int do_whiteout(struct unpacker *u, const char *dir, const char *base, struct capsa_error **err)
{
	int parent = get_parent(u, dir, err);
	if (parent < 0)
		return -1;
	if (str_eq(base, ".wh..wh..opq")) {
		int fd = *dir ? open_beneath(u->root, dir, O_RDONLY | O_DIRECTORY, 0, RES_NO_SYMLINKS)
			      : fcntl(u->root, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return error_sys(err, errno, "entry '%s': open directory", u->show);
		int r = fsetxattr(fd, linux_rootless() ? "user.overlay.opaque" : "trusted.overlay.opaque", "y", 1, 0);
		int e = errno;
		close(fd);
		if (r < 0)
			return error_sys(err, e, "entry '%s': set opaque xattr", u->show);
		return 0;
	}
	if (str_has_prefix(base, ".wh..wh."))
		return 0; /* aufs bookkeeping (.wh..wh.plnk, ...): meaningless here */
	const char *name = base + 4;
	if (!*name || str_eq(name, ".") || str_eq(name, ".."))
		return error_set(err, EINVAL, "entry '%s': invalid whiteout name", u->show);
	bool is_dir;
	if (replace_existing(u, parent, name, false, &is_dir, err) < 0)
		return -1;
	if (mknodat(parent, name, S_IFCHR | 0, makedev(0, 0)) < 0)
		return error_sys(err, errno, "entry '%s': create whiteout", u->show);
	return 0;
}

static int do_root(struct unpacker *u, struct archive_entry *e, struct capsa_error **err)
{
	if (archive_entry_filetype(e) != AE_IFDIR || archive_entry_hardlink(e))
		return error_set(err, EINVAL, "entry '%s': the layer root must be a directory", u->show);
	if (apply_meta_fd(u, e, u->root, err) < 0)
		return -1;
	record_dir_time(u, "", e);
	return 0;
}

static int do_hardlink(struct unpacker *u, struct archive_entry *e, int parent, const char *base,
		       struct capsa_error **err)
{
	char target[PATH_MAX];
	const char *why = NULL;
	_cleanup_free_ char *tshow = show_name(archive_entry_hardlink(e));
	if (clean_name(archive_entry_hardlink(e), target, &why) < 0)
		return error_set(err, EXDEV, "entry '%s': hard link target '%s': %s", u->show, tshow, why);
	if (!*target)
		return error_set(err, EXDEV, "entry '%s': hard link to the layer root", u->show);
	const char *tbase;
	_cleanup_close_ int tparent = open_parent_beneath(u->root, target, RES_NO_SYMLINKS, &tbase);
	if (tparent < 0)
		return error_set(err, EXDEV, "entry '%s': hard link target '%s' is not in the layer", u->show, tshow);
	struct stat sb;
	if (fstatat(tparent, tbase, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return error_set(err, EXDEV, "entry '%s': hard link target '%s' is not in the layer", u->show, tshow);
	if (S_ISDIR(sb.st_mode))
		return error_set(err, EPERM, "entry '%s': hard link to directory '%s'", u->show, tshow);
	if (linkat(tparent, tbase, parent, base, 0) < 0)
		return error_sys(err, errno, "entry '%s': hard link to '%s'", u->show, tshow);
	return 0;
}

static int do_file(struct unpacker *u, struct archive *a, struct archive_entry *e, int parent, const char *base,
		   struct capsa_error **err)
{
	int64_t size = archive_entry_size(e);
	if ((uint64_t)size > u->max_bytes - u->bytes)
		return error_set(err, EFBIG, "entry '%s': layer content exceeds %llu bytes", u->show,
				 (unsigned long long)u->max_bytes);
	u->bytes += (uint64_t)size;
	/* the common file (owned by us, plain permission bits the
	 * umask leaves alone) is created final: no chown, no chmod */
	mode_t perm = archive_entry_perm(e) & 07777;
	uid_t uid;
	gid_t gid;
	if (entry_owner(u, e, &uid, &gid, err) < 0)
		return -1;
	bool fast = uid == u->euid && gid == u->egid && !u->parent_setgid && !(perm & 07000) &&
		    !(perm & u->umask) && archive_entry_xattr_count(e) == 0;
	_cleanup_close_ int fd =
		openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, fast ? perm : 0600);
	if (fd < 0)
		return error_sys(err, errno, "entry '%s': create", u->show);
	if (write_data(u, a, e, fd, err) < 0 || (!fast && apply_meta_fd(u, e, fd, err) < 0))
		return -1;
	struct timespec ts[2];
	entry_times(e, ts);
	if (futimens(fd, ts) < 0)
		return error_sys(err, errno, "entry '%s': set times", u->show);
	return 0;
}

static int do_entry(struct unpacker *u, struct archive *a, struct archive_entry *e, struct capsa_error **err)
{
	char name[PATH_MAX];
	const char *why = NULL;
	if (clean_name(archive_entry_pathname(e), name, &why) < 0)
		return error_set(err, EXDEV, "entry '%s': %s", u->show, why);
	if (archive_entry_size_is_set(e) && archive_entry_size(e) < 0)
		return error_set(err, EINVAL, "entry '%s': negative size", u->show);
	if (++u->entries > u->max_entries)
		return error_set(err, E2BIG, "entry '%s': more than %llu entries in the layer", u->show,
				 (unsigned long long)u->max_entries);
	if (!*name)
		return do_root(u, e, err);
	char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dir = "";
	if (slash) {
		*slash = '\0';
		dir = name;
	}
	if (str_has_prefix(base, ".wh."))
		return do_whiteout(u, dir, base, err);
	int parent = get_parent(u, dir, err);
	if (parent < 0)
		return -1;
	mode_t type = archive_entry_filetype(e);
	const char *hl = archive_entry_hardlink(e);
	bool is_dir = false;
	if (replace_existing(u, parent, base, !hl && type == AE_IFDIR, &is_dir, err) < 0)
		return -1;
	if (hl)
		return do_hardlink(u, e, parent, base, err);
	switch (type) {
	case AE_IFDIR: {
		if (!is_dir && mkdirat(parent, base, 0700) < 0)
			return error_sys(err, errno, "entry '%s': mkdir", u->show);
		_cleanup_close_ int fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return error_sys(err, errno, "entry '%s': open directory", u->show);
		if (apply_meta_fd(u, e, fd, err) < 0)
			return -1;
		if (slash)
			*slash = '/';
		record_dir_time(u, name, e);
		return 0;
	}
	case AE_IFREG:
		return do_file(u, a, e, parent, base, err);
	case AE_IFLNK: {
		const char *t = archive_entry_symlink(e);
		if (!t || !*t)
			return error_set(err, EINVAL, "entry '%s': symlink without a target", u->show);
		if (strlen(t) >= PATH_MAX)
			return error_set(err, ENAMETOOLONG, "entry '%s': symlink target too long", u->show);
		if (symlinkat(t, parent, base) < 0)
			return error_sys(err, errno, "entry '%s': symlink", u->show);
		/* the target is stored as text: never resolved by us */
		return apply_meta_at(u, e, parent, base, true, err);
	}
	case AE_IFIFO:
		if (mknodat(parent, base, S_IFIFO | 0600, 0) < 0)
			return error_sys(err, errno, "entry '%s': mkfifo", u->show);
		return apply_meta_at(u, e, parent, base, false, err);
	case AE_IFCHR:
	case AE_IFBLK:
		if (!u->o->allow_devices)
			return error_set(err, EPERM, "entry '%s': device nodes are not allowed in this layer", u->show);
		if (mknodat(parent, base, (type == AE_IFCHR ? S_IFCHR : S_IFBLK) | 0600,
			    makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e))) < 0)
			return error_sys(err, errno, "entry '%s': mknod", u->show);
		return apply_meta_at(u, e, parent, base, false, err);
	default:
		return error_set(err, ENOTSUP, "entry '%s': unsupported entry type (socket or unknown)", u->show);
	}
}

static la_ssize_t read_cb(struct archive *a, void *arg, const void **buf)
{
	struct unpacker *u = arg;
	ssize_t n = layer_reader_read(u->rd, buf, &u->read_err);
	if (n < 0) {
		archive_set_error(a, EINVAL, "%s", u->read_err ? u->read_err->msg : "read error");
		return -1;
	}
	return n;
}

static int apply_dir_times(struct unpacker *u, struct capsa_error **err)
{
	for (size_t i = 0; i < u->n_dirs; i++) {
		struct dir_time *d = &u->dirs[i];
		int fd = *d->path ? open_beneath(u->root, d->path, O_RDONLY | O_DIRECTORY, 0, RES_NO_SYMLINKS)
				  : fcntl(u->root, F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
				continue; /* replaced by a later entry */
			return error_sys(err, errno, "directory '%s': open", d->path);
		}
		int r = futimens(fd, d->ts);
		int e = errno;
		close(fd);
		if (r < 0)
			return error_sys(err, e, "directory '%s': set times", d->path);
	}
	return 0;
}

/* A header libarchive refused never becomes an entry: find the raw header
 * (the first 512-byte block at or after where the previous entry's data
 * ended, past any pax/GNU long-name headers) so the error can name it. */
static char *failed_header_name(struct unpacker *u, int64_t consumed)
{
	uint64_t off = ((uint64_t)consumed + 511) & ~(uint64_t)511;
	for (int i = 0; i < 4; i++) {
		unsigned char h[512];
		if (layer_reader_peek(u->rd, off, h, sizeof(h)) != sizeof(h) || !h[0])
			break;
		char type = (char)h[156];
		if (type != 'x' && type != 'g' && type != 'L' && type != 'K') {
			char name[101] = { 0 };
			memcpy(name, h, 100);
			_cleanup_free_ char *s = show_name(name);
			return xasprintf("entry '%s'", s);
		}
		uint64_t size = 0;
		for (int k = 124; k < 136 && h[k] >= '0' && h[k] <= '7'; k++)
			size = size * 8 + (uint64_t)(h[k] - '0');
		off += 512 + ((size + 511) & ~(uint64_t)511);
	}
	return xasprintf("entry %llu", (unsigned long long)u->entries + 1);
}

/* The umask without changing it (umask(2) would race other threads). */
static mode_t process_umask(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	unsigned m = 0777; /* unknown: never take the fast path */
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Umask: %o", &m) == 1)
			break;
	if (f)
		fclose(f);
	return (mode_t)m;
}

static int unpack_all(struct unpacker *u, struct archive *a, struct capsa_error **err)
{
	for (;;) {
		struct archive_entry *e;
		int64_t consumed = archive_filter_bytes(a, 0);
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			_cleanup_free_ char *what = failed_header_name(u, consumed);
			if (u->read_err) {
				error_move(err, &u->read_err);
				return error_wrap(err, "%s", what);
			}
			_cleanup_free_ char *m = archive_msg(a);
			return error_set(err, EINVAL, "%s: invalid tar header: %s", what, m);
		}
		const char *raw = archive_entry_pathname(e);
		if (!raw)
			return error_set(err, EINVAL, "entry %llu: name cannot be read", (unsigned long long)u->entries + 1);
		_cleanup_free_ char *show = show_name(raw);
		u->show = show;
		int rc = do_entry(u, a, e, err);
		u->show = NULL;
		if (rc < 0)
			return -1;
	}
	return apply_dir_times(u, err);
}

int layer_unpack(int blob_fd, int dirfd, const struct unpack_opts *o, struct unpack_result *res,
		 struct capsa_error **err)
{
	static const struct unpack_opts defaults = { 0 };
	struct unpacker u = {
		.root = dirfd,
		.o = o ? o : &defaults,
		.cache_fd = -1,
	};
	u.max_entries = u.o->max_entries ? u.o->max_entries : UNPACK_MAX_ENTRIES;
	u.umask = process_umask();
	u.euid = geteuid();
	u.egid = getegid();
	u.max_bytes = u.o->max_bytes ? u.o->max_bytes : UNPACK_MAX_BYTES;
	u.rd = layer_reader_new(blob_fd);
	/* tar names are bytes; a UTF-8 C locale (this thread only) keeps
	 * libarchive from failing to "convert" pax UTF-8 names */
	locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t old = loc ? uselocale(loc) : (locale_t)0;
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	int rc = -1;
	if (archive_read_open(a, &u, NULL, read_cb, NULL) != ARCHIVE_OK) {
		if (u.read_err)
			error_move(err, &u.read_err);
		else
			error_set(err, EINVAL, "not a tar archive: %s", archive_error_string(a));
		goto out;
	}
	if (unpack_all(&u, a, err) < 0)
		goto out;
	if (layer_reader_finish(u.rd, res->diff_id, err) < 0)
		goto out;
	res->entries = u.entries;
	res->bytes = u.bytes;
	res->compression = layer_reader_compression(u.rd);
	rc = 0;
out:
	archive_read_free(a);
	if (loc) {
		uselocale(old);
		freelocale(loc);
	}
	cache_drop(&u);
	for (size_t i = 0; i < u.n_dirs; i++)
		free(u.dirs[i].path);
	free(u.dirs);
	capsa_error_free(u.read_err);
	layer_reader_free(u.rd);
	return rc;
}
