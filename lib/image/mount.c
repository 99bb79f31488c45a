/* mount.c: the overlay that makes an image's layers a rootfs.  Core part.
 *
 * Layer directories are named by 64 hex digits, so a lowerdir list given
 * relative to <root>/layers costs 65 bytes a layer and fits in the one page
 * mount(2) accepts for up to ~60 layers; beyond that the new mount API
 * takes the layers one "lowerdir+" at a time (Linux 6.8+).
 *
 * Host-side read-only views (`capsa image mount`) are nosuid,nodev: the
 * content is untrusted and must not become a way to run a setuid binary of
 * the image on the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/image.h"
#include "image/ingest.h"
#include "util/fs.h"
#include "util/str.h"

static bool opt_path_ok(const char *p)
{
	return p && p[0] == '/' && !strpbrk(p, ",:\\\n");
}

static char *lower_list(const struct image *img, const char *prefix)
{
	struct buf b = BUF_INIT;
	for (size_t i = img->n_layers; i-- > 0;)
		buf_appendf(&b, "%s%s%s", i + 1 == img->n_layers ? "" : ":", prefix, img->layers[i] + 7);
	return buf_steal(&b);
}

int image_overlay_options(struct capsa_ctx *ctx, const struct image *img, const char *upper, const char *work,
			  char **data_out, char **dir_out, struct capsa_error **err)
{
	if (img->n_layers == 0)
		return error_set(err, EINVAL, "image %s has no layers", img->id);
	if ((upper == NULL) != (work == NULL))
		return error_set(err, EINVAL, "overlay for image %s: upper and work go together", img->id);
	if (upper && (!opt_path_ok(upper) || !opt_path_ok(work)))
		return error_set(err, EINVAL, "overlay upper/work %s, %s: want absolute paths without ',', ':' or '\\'",
				 upper, work);
	if (!upper && img->n_layers < 2)
		return error_set(err, EINVAL, "image %s has one layer: a read-only overlay needs two (bind-mount it)",
				 img->id);
	_cleanup_free_ char *lowers = lower_list(img, "");
	/* rootless: overlayfs keeps its opaque and whiteout marks in user.*
	 * xattrs, the ones the unpack could write (lib/image/unpack.c) */
	const char *ux = ctx->rootless ? ",userxattr" : "";
	char *data = upper ? xasprintf("lowerdir=%s,upperdir=%s,workdir=%s%s", lowers, upper, work, ux)
			   : xasprintf("lowerdir=%s%s", lowers, ux);
	long page = sysconf(_SC_PAGESIZE);
	if ((long)strlen(data) >= (page > 0 ? page : 4096)) {
		size_t n = strlen(data);
		free(data);
		return error_set(err, E2BIG, "image %s has %zu layers: the overlay options (%zu bytes) do not fit in a page",
				 img->id, img->n_layers, n);
	}
	*data_out = data;
	*dir_out = xasprintf("%s/layers", ctx->root);
	return 0;
}

static int fsconfig_str(int fd, const char *key, const char *val)
{
	return (int)syscall(SYS_fsconfig, fd, FSCONFIG_SET_STRING, key, val, 0);
}

/* Many layers: the new mount API, one lowerdir+ per layer (top first). */
static int mount_fsapi(struct capsa_ctx *ctx, const struct image *img, const char *upper, const char *work,
		       const char *target, unsigned attrs, struct capsa_error **err)
{
	_cleanup_close_ int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return error_sys(err, errno, "image %s: fsopen overlay", img->id);
	for (size_t i = img->n_layers; i-- > 0;) {
		_cleanup_free_ char *p = xasprintf("%s/layers/%s", ctx->root, img->layers[i] + 7);
		if (fsconfig_str(fs, "lowerdir+", p) < 0) {
			if (errno == EINVAL)
				return error_set(err, ENOTSUP,
						 "image %s has %zu layers: too many for one mount(2) option page, and this "
						 "kernel's overlayfs lacks the lowerdir+ option (Linux 6.8) to add them one by one",
						 img->id, img->n_layers);
			return error_sys(err, errno, "image %s: overlay layer %s", img->id, img->layers[i]);
		}
	}
	if (upper && (fsconfig_str(fs, "upperdir", upper) < 0 || fsconfig_str(fs, "workdir", work) < 0))
		return error_sys(err, errno, "image %s: overlay upper/work", img->id);
	if (ctx->rootless && syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
		return error_sys(err, errno, "image %s: overlay userxattr", img->id);
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return error_sys(err, errno, "image %s: create overlay", img->id);
	_cleanup_close_ int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs);
	if (mnt < 0)
		return error_sys(err, errno, "image %s: fsmount overlay", img->id);
	if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return error_sys(err, errno, "image %s: mount on %s", img->id, target);
	return 0;
}

int image_overlay_mount(struct capsa_ctx *ctx, const struct image *img, const char *upper, const char *work,
			const char *target, struct capsa_error **err)
{
	unsigned long flags = upper ? 0 : (MS_RDONLY | MS_NOSUID | MS_NODEV);
	if (!upper && img->n_layers == 1) {
		_cleanup_free_ char *src = xasprintf("%s/layers/%s", ctx->root, img->layers[0] + 7);
		if (mount(src, target, NULL, MS_BIND, NULL) < 0)
			return error_sys(err, errno, "image %s: bind mount on %s", img->id, target);
		if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0) {
			int e = errno;
			umount2(target, MNT_DETACH);
			return error_sys(err, e, "image %s: remount %s read-only", img->id, target);
		}
		return 0;
	}
	_cleanup_free_ char *data = NULL, *dir = NULL;
	struct capsa_error *e2big = NULL;
	if (image_overlay_options(ctx, img, upper, work, &data, &dir, &e2big) < 0) {
		if (e2big->code != E2BIG) {
			error_move(err, &e2big);
			return -1;
		}
		capsa_error_free(e2big);
		unsigned attrs = upper ? 0 : (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
		return mount_fsapi(ctx, img, upper, work, target, attrs, err);
	}
	/* relative lowerdirs resolve against the cwd: enter <root>/layers
	 * for the mount call and come back (the process's cwd, so not for
	 * threaded callers; the runtime mounts in its own child) */
	_cleanup_close_ int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int ldir = openat(ctx->root_fd, "layers", O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *abs_target = realpath(target, NULL);
	if (here < 0 || ldir < 0 || !abs_target)
		return error_sys(err, errno, "image %s: mount on %s", img->id, target);
	if (fchdir(ldir) < 0)
		return error_sys(err, errno, "image %s: enter %s", img->id, dir);
	int r = mount("overlay", abs_target, "overlay", flags, data);
	int e = errno;
	if (fchdir(here) < 0)
		abort(); /* the cwd we came from is gone: nothing sane to do */
	if (r < 0)
		return error_sys(err, e, "image %s: mount overlay on %s", img->id, target);
	return 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_mountinfo(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

static bool is_mount_point(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return true; /* cannot tell: keep the record */
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *save = NULL, *fld = strtok_r(line, " ", &save);
		for (int i = 1; fld && i < 5; i++)
			fld = strtok_r(NULL, " ", &save);
		if (fld) {
			unescape_mountinfo(fld);
			found = str_eq(fld, path);
		}
	}
	free(line);
	fclose(f);
	return found;
}

void image_mounts_reconcile(struct store *db)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT target FROM image_mounts", &st, NULL) < 0)
		return;
	_cleanup_strv_ char **gone = xcalloc(1, sizeof(char *));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (t && !is_mount_point(t))
			gone = strv_push(gone, t);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!gone[0] || store_prepare(db, "DELETE FROM image_mounts WHERE target=?", &st, NULL) < 0)
		return;
	for (size_t i = 0; gone[i]; i++) {
		sqlite3_reset(st);
		store_bind_text(st, 1, gone[i]);
		sqlite3_step(st);
	}
}

static int record_mount(struct store *db, const char *target, const char *id, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "INSERT OR REPLACE INTO image_mounts(target, image_id, created_at) VALUES(?,?,?)", &st,
			  err) < 0)
		return -1;
	store_bind_text(st, 1, target);
	store_bind_text(st, 2, id);
	sqlite3_bind_int64(st, 3, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record mount", err);
	return 0;
}

CAPSA_EXPORT int capsa_image_mount_rootfs(struct capsa_ctx *ctx, const char *ref, const char *upper, const char *work,
					  const char *target, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_free_ char *abs = realpath(target, NULL);
	if (!abs)
		return error_sys(err, errno, "mount target %s", target);
	struct stat sb;
	if (stat(abs, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return error_set(err, ENOTDIR, "mount target %s is not a directory", target);
	if (is_mount_point(abs))
		return error_set(err, EBUSY, "mount target %s is already a mount point", target);
	/* resolve and record in one transaction, as the runtime does for
	 * sandboxes: a concurrent rm sees the record or the image is intact */
	if (store_begin(db, err) < 0)
		return -1;
	struct image *img = NULL;
	if (image_resolve(ctx, ref, &img, err) < 0 || record_mount(db, abs, img->id, err) < 0 ||
	    store_commit(db, err) < 0) {
		store_rollback(db);
		image_free(img);
		return -1;
	}
	int rc = image_overlay_mount(ctx, img, upper, work, abs, err);
	if (rc < 0) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if (store_prepare(db, "DELETE FROM image_mounts WHERE target=?", &st, NULL) == 0) {
			store_bind_text(st, 1, abs);
			sqlite3_step(st);
		}
	}
	image_free(img);
	return rc;
}

CAPSA_EXPORT int capsa_image_umount_rootfs(const char *target, struct capsa_error **err)
{
	if (umount2(target, UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno == EBUSY && umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno == EINVAL)
		return error_set(err, EINVAL, "unmount %s: not a mount point", target);
	return error_sys(err, errno, "unmount %s", target);
}
