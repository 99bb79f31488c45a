/* gc.c: removing images (rm, prune) and collecting what nothing references
 * (blobs, layer directories, temporary files).  Core part.
 *
 * Garbage collection runs under the exclusive store lock (blob.c), so no
 * import or pull has content in flight: a blob without a row, a layer
 * directory without a ready row and anything in tmp/ is a leftover of a
 * crash.  Rows are deleted in one write transaction first, files after: a
 * crash in between leaves files without rows, which the next collection
 * removes.  What is referenced:
 *   blobs  - by images (config id, manifest digest) and image_layers
 *   layers - by image_layers and sandbox_layers (sandboxes pin the layers
 *            they run on, even after `image rm --force` took the image)
 * Partial downloads (tmp/sha256-*.partial) are kept for a resumed pull for
 * a day.
 *
 * Prune also empties two caches gc leaves alone (they are rebuilt on use,
 * not garbage): the user namespace fallback's layer copies that no sandbox
 * uses, and the --disk templates (see prune_caches()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "image/ingest.h"
#include "image/ref.h"
#include "linux/idmap.h"
#include "linux/loopdisk.h"
#include "util/fs.h"
#include "util/str.h"

#define PARTIAL_KEEP_MS (24 * 3600 * 1000LL)

static int64_t sum_tree(int dfd, int depth)
{
	if (depth > 256)
		return 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	int64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				total += sum_tree(sub, depth + 1);
		} else if (S_ISREG(sb.st_mode)) {
			total += sb.st_size;
		}
	}
	closedir(d);
	return total;
}

static bool hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* Rows of one query (text column 0, optional int column 1). */
static char **collect(struct store *db, const char *sql, int64_t *sum, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, sql, &st, err) < 0)
		return NULL;
	char **v = xcalloc(1, sizeof(char *));
	while (sqlite3_step(st) == SQLITE_ROW) {
		v = strv_push_take(v, store_col_strdup(st, 0));
		if (sum)
			*sum += sqlite3_column_int64(st, 1);
	}
	return v;
}

static bool row_exists(struct store *db, const char *sql, const char *arg)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, sql, &st, NULL) < 0)
		return true; /* when in doubt, keep */
	store_bind_text(st, 1, arg);
	return sqlite3_step(st) == SQLITE_ROW;
}

/* Removes files in dir (relative to the store root) that fail keep(). */
static void sweep(struct capsa_ctx *ctx, const char *dir, bool (*keep)(struct capsa_ctx *, struct store *, const char *),
		  struct store *db, struct capsa_gc_stats *st)
{
	int fd = openat(ctx->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (keep(ctx, db, de->d_name))
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && st) {
			if (S_ISDIR(sb.st_mode)) {
				int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub >= 0)
					st->bytes += sum_tree(sub, 0);
			} else {
				st->bytes += sb.st_size;
			}
		}
		struct capsa_error *e = NULL;
		rm_rf_at(dirfd(d), de->d_name, &e);
		capsa_error_free(e);
	}
	closedir(d);
}

static bool keep_named(struct store *db, const char *name, const char *sql)
{
	if (!hex64(name))
		return false;
	_cleanup_free_ char *digest = xasprintf("sha256:%s", name);
	return row_exists(db, sql, digest);
}

static bool keep_blob(struct capsa_ctx *ctx, struct store *db, const char *name)
{
	(void)ctx;
	return keep_named(db, name, "SELECT 1 FROM blobs WHERE digest=?");
}

static bool keep_layer(struct capsa_ctx *ctx, struct store *db, const char *name)
{
	(void)ctx;
	return keep_named(db, name, "SELECT 1 FROM layers WHERE diff_id=? AND state='ready'");
}

static bool keep_tmp(struct capsa_ctx *ctx, struct store *db, const char *name)
{
	(void)db;
	if (!str_has_prefix(name, "sha256-") || !str_has_suffix(name, ".partial"))
		return false;
	struct stat sb;
	_cleanup_free_ char *rel = xasprintf("tmp/%s", name);
	if (fstatat(ctx->root_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	return now_ms() - (int64_t)sb.st_mtime * 1000 < PARTIAL_KEEP_MS;
}

int image_gc_locked(struct capsa_ctx *ctx, struct capsa_gc_stats *st, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	struct capsa_gc_stats local = { 0 };
	if (!st)
		st = &local;
	image_mounts_reconcile(db);
	if (store_begin(db, err) < 0)
		return -1;
	int64_t layer_bytes = 0, blob_bytes = 0;
	_cleanup_strv_ char **layers = collect(db,
					       "SELECT diff_id, size FROM layers WHERE "
					       "diff_id NOT IN (SELECT diff_id FROM image_layers) AND "
					       "diff_id NOT IN (SELECT layer_digest FROM sandbox_layers)",
					       &layer_bytes, err);
	_cleanup_strv_ char **blobs = layers ? collect(db,
						       "SELECT digest, size FROM blobs WHERE "
						       "digest NOT IN (SELECT id FROM images) AND "
						       "digest NOT IN (SELECT manifest_digest FROM images) AND "
						       "digest NOT IN (SELECT blob_digest FROM image_layers)",
						       &blob_bytes, err)
					     : NULL;
	if (!layers || !blobs ||
	    store_exec(db,
		       "DELETE FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers) AND "
		       "diff_id NOT IN (SELECT layer_digest FROM sandbox_layers);"
		       "DELETE FROM blobs WHERE digest NOT IN (SELECT id FROM images) AND "
		       "digest NOT IN (SELECT manifest_digest FROM images) AND "
		       "digest NOT IN (SELECT blob_digest FROM image_layers);",
		       err) < 0 ||
	    store_commit(db, err) < 0) {
		store_rollback(db);
		return -1;
	}
	st->layers += strv_len(layers);
	st->blobs += strv_len(blobs);
	st->bytes += layer_bytes + blob_bytes;
	/* files: what the rows named, then anything else without a row */
	for (size_t i = 0; layers[i]; i++) {
		_cleanup_free_ char *rel = xasprintf("layers/%s", layers[i] + 7);
		struct capsa_error *e = NULL;
		rm_rf_at(ctx->root_fd, rel, &e);
		capsa_error_free(e);
	}
	for (size_t i = 0; blobs[i]; i++) {
		_cleanup_free_ char *rel = blob_relpath(blobs[i]);
		unlinkat(ctx->root_fd, rel, 0);
	}
	sweep(ctx, "blobs/sha256", keep_blob, db, st);
	sweep(ctx, "layers", keep_layer, db, st);
	sweep(ctx, "tmp", keep_tmp, db, NULL);
	return 0;
}

CAPSA_EXPORT int capsa_image_gc(struct capsa_ctx *ctx, bool wait, struct capsa_gc_stats *st, struct capsa_error **err)
{
	/* our own in-flight content is committed by now: let go of the
	 * shared lock, or the exclusive one below would wait on ourselves */
	image_ingest_done(ctx);
	_cleanup_close_ int lock = image_store_lock(ctx, true, wait, err);
	if (lock < 0)
		return -1;
	return image_gc_locked(ctx, st, err);
}

/* ---- rm / prune ---- */

/* A sandbox created from the image, as "name (state)", or NULL. */
static char *user_of(struct store *db, const char *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT name, state FROM sandboxes WHERE image_id=? ORDER BY created_at LIMIT 1", &st,
			  NULL) < 0)
		return NULL;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	return xasprintf("%s (%s)", (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
}

static char *mount_of(struct store *db, const char *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT target FROM image_mounts WHERE image_id=? LIMIT 1", &st, NULL) < 0)
		return NULL;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	return store_col_strdup(st, 0);
}

static int exec_text(struct store *db, const char *sql, const char *arg, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, sql, &st, err) < 0)
		return -1;
	store_bind_text(st, 1, arg);
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "update", err);
	return 0;
}

/* Inside the transaction: remove image id (and, by cascade, its names). */
static int remove_image(struct store *db, const char *id, const char *shown, bool force, struct capsa_image_rm_result *out,
			struct capsa_error **err)
{
	_cleanup_free_ char *mnt = mount_of(db, id);
	if (mnt)
		return error_set(err, EBUSY, "image %s is mounted on %s: unmount it first (capsa image umount)", shown, mnt);
	_cleanup_free_ char *user = user_of(db, id);
	if (user && !force)
		return error_set(err, EBUSY, "image %s is in use by sandbox %s: remove the sandbox first, or use --force",
				 shown, user);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT name FROM refs WHERE image_id=? ORDER BY name", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		out->untagged = strv_push_take(out->untagged, store_col_strdup(st, 0));
	if (exec_text(db, "DELETE FROM images WHERE id=?", id, err) < 0)
		return -1;
	out->deleted = strv_push(out->deleted, id);
	return 0;
}

static int rm_in_tx(struct store *db, const char *ref, bool force, struct capsa_image_rm_result *out,
		    struct capsa_error **err)
{
	/* a name removes that name (and the image with its last name) */
	char *norm = NULL;
	if (image_ref_normalize(ref, &norm, NULL) == 0) {
		_cleanup_free_ char *n = norm;
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if (store_prepare(db,
				  "SELECT r.image_id, (SELECT count(*) FROM refs r2 WHERE r2.image_id=r.image_id) "
				  "FROM refs r WHERE r.name=?",
				  &st, err) < 0)
			return -1;
		store_bind_text(st, 1, n);
		if (sqlite3_step(st) == SQLITE_ROW) {
			_cleanup_free_ char *id = store_col_strdup(st, 0);
			int64_t count = sqlite3_column_int64(st, 1);
			sqlite3_finalize(st);
			st = NULL;
			if (count > 1) {
				if (exec_text(db, "DELETE FROM refs WHERE name=?", n, err) < 0)
					return -1;
				out->untagged = strv_push(out->untagged, n);
				return 0;
			}
			return remove_image(db, id, n, force, out, err);
		}
	}
	/* an id (or digest, or prefix): the image with all its names */
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *id = image_resolve_id(db, ref, &name, err);
	if (!id)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT count(*) FROM refs WHERE image_id=?", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, id);
	int64_t count = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (count > 1 && !force)
		return error_set(err, EBUSY, "image %s has %lld names: remove them by name, or use --force", ref,
				 (long long)count);
	return remove_image(db, id, ref, force, out, err);
}

CAPSA_EXPORT int capsa_image_rm(struct capsa_ctx *ctx, const char *ref, bool force, struct capsa_image_rm_result *out,
				struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	image_mounts_reconcile(db);
	if (store_begin(db, err) < 0)
		return -1;
	if (rm_in_tx(db, ref, force, out, err) < 0 || store_commit(db, err) < 0) {
		store_rollback(db);
		capsa_image_rm_result_release(out);
		return -1;
	}
	/* best effort: another process importing keeps the garbage for later */
	capsa_image_gc(ctx, false, NULL, NULL);
	return 0;
}

CAPSA_EXPORT void capsa_image_rm_result_release(struct capsa_image_rm_result *r)
{
	strv_free(r->untagged);
	strv_free(r->deleted);
	memset(r, 0, sizeof(*r));
}

/* ---- caches: layer copies, disk templates ---- */

/* What prune_layer_copies() moved into tmp/, to remove after the commit. */
struct trash {
	char **paths; /* relative to the store root */
	size_t copies;
};

static size_t count_layers(int dirfd, const char *name)
{
	DIR *d = opendir_at(dirfd, name);
	if (!d)
		return 0;
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));)
		n += hex64(de->d_name);
	closedir(d);
	return n;
}

/* dirfd/name to tmp/prune-<rand>: one rename, while the write transaction
 * is held; removed (or, after a crash, swept by gc) later. */
static void to_trash(struct capsa_ctx *ctx, int dirfd, const char *name, size_t copies, struct trash *t)
{
	_cleanup_free_ char *rnd = random_hex(8);
	char *dst = xasprintf("tmp/prune-%s", rnd);
	if (renameat(dirfd, name, ctx->root_fd, dst) < 0) {
		free(dst);
		return;
	}
	t->paths = strv_push_take(t->paths, dst);
	t->copies += copies;
}

/* 1: block "<uid>-<gid>" is held by sandbox *owner; 0: by none; -1: name is
 * not a block (left alone). */
static int block_owner(struct store *db, const char *name, char **owner)
{
	size_t a = strspn(name, "0123456789");
	if (a == 0 || a > 10 || name[a] != '-')
		return -1;
	size_t b = strspn(name + a + 1, "0123456789");
	if (b == 0 || b > 10 || name[a + 1 + b] != '\0')
		return -1;
	unsigned long long uid = strtoull(name, NULL, 10), gid = strtoull(name + a + 1, NULL, 10);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT sandbox_id FROM userns_ranges WHERE uid_start=? AND gid_start=?", &st, NULL) < 0)
		return -1; /* when in doubt, keep */
	sqlite3_bind_int64(st, 1, (sqlite3_int64)uid);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)gid);
	if (sqlite3_step(st) != SQLITE_ROW)
		return 0;
	*owner = store_col_strdup(st, 0);
	return 1;
}

/* In a held block: the copies of layers its sandbox does not run on (left
 * by an earlier holder).  Names that are not layers (".<hex>.tmp" of a copy
 * being built) are left alone. */
static void prune_block(struct capsa_ctx *ctx, struct store *db, int top, const char *block, const char *owner,
			struct trash *t)
{
	DIR *d = opendir_at(top, block);
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		if (!hex64(de->d_name))
			continue;
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		_cleanup_free_ char *digest = xasprintf("sha256:%s", de->d_name);
		if (store_prepare(db, "SELECT 1 FROM sandbox_layers WHERE sandbox_id=? AND layer_digest=?", &st, NULL) < 0)
			continue;
		store_bind_text(st, 1, owner);
		store_bind_text(st, 2, digest);
		if (sqlite3_step(st) != SQLITE_ROW)
			to_trash(ctx, dirfd(d), de->d_name, 1, t);
	}
	closedir(d);
}

/* The user namespace fallback's layer copies (layers-shifted/<uid>-<gid>/
 * <hex>, lib/linux/idmap-copy.c) that no sandbox uses: every block no
 * sandbox holds, and in a held block the layers its sandbox does not run on.
 * A block is picked and recorded (userns_ranges, after the sandbox's
 * sandbox_layers) in a write transaction before its supervisor copies
 * anything, and a sandbox holds it until its row goes.  So under the write
 * transaction held here, what is unused stays unused: it is renamed into
 * tmp/ then, and a create that picks a block after the commit finds no
 * copies and makes its own. */
static int prune_layer_copies(struct capsa_ctx *ctx, struct capsa_gc_stats *st, struct capsa_error **err)
{
	DIR *d = opendir_at(ctx->root_fd, LINUX_IDMAP_COPY_DIR);
	if (!d)
		return errno == ENOENT ? 0 : error_sys(err, errno, "open %s/" LINUX_IDMAP_COPY_DIR, ctx->root);
	struct store *db = ctx_db(ctx, err);
	if (!db || store_begin(db, err) < 0) {
		closedir(d);
		return -1;
	}
	struct trash t = { xcalloc(1, sizeof(char *)), 0 };
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_free_ char *owner = NULL;
		int held = block_owner(db, de->d_name, &owner);
		if (held == 0)
			to_trash(ctx, dirfd(d), de->d_name, count_layers(dirfd(d), de->d_name), &t);
		else if (held == 1)
			prune_block(ctx, db, dirfd(d), de->d_name, owner, &t);
	}
	closedir(d);
	store_rollback(db); /* nothing was written: the lock was the point */
	for (size_t i = 0; t.paths[i]; i++) {
		int fd = openat(ctx->root_fd, t.paths[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			st->bytes += sum_tree(fd, 0);
		rm_rf_at(ctx->root_fd, t.paths[i], NULL);
	}
	st->layer_copies += t.copies;
	strv_free(t.paths);
	return 0;
}

static int prune_caches(struct capsa_ctx *ctx, struct capsa_gc_stats *st, struct capsa_error **err)
{
	if (prune_layer_copies(ctx, st, err) < 0)
		return error_wrap(err, "remove unused layer copies");
	/* all of them: one mkfs.ext4 (7-30 ms) makes a size's again */
	_cleanup_free_ char *templates = xasprintf("%s/" LOOPDISK_TEMPLATES, ctx->root);
	if (loopdisk_prune_templates(templates, &st->disk_templates, &st->bytes, err) < 0)
		return error_wrap(err, "remove disk templates");
	return 0;
}

CAPSA_EXPORT int capsa_image_prune(struct capsa_ctx *ctx, bool all, char ***deleted, struct capsa_gc_stats *st,
				   struct capsa_error **err)
{
	*deleted = NULL;
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	image_mounts_reconcile(db);
	if (store_begin(db, err) < 0)
		return -1;
	const char *sql = all ? "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM sandboxes WHERE image_id "
				"IS NOT NULL) AND id NOT IN (SELECT image_id FROM image_mounts)"
			      : "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM refs) AND id NOT IN "
				"(SELECT image_id FROM sandboxes WHERE image_id IS NOT NULL) AND id NOT IN "
				"(SELECT image_id FROM image_mounts)";
	char **ids = collect(db, sql, NULL, err);
	int rc = ids ? 0 : -1;
	for (size_t i = 0; ids && ids[i] && rc == 0; i++)
		rc = exec_text(db, "DELETE FROM images WHERE id=?", ids[i], err);
	if (rc < 0 || store_commit(db, err) < 0) {
		store_rollback(db);
		strv_free(ids);
		return -1;
	}
	struct capsa_gc_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	st->images = strv_len(ids);
	*deleted = ids;
	if (capsa_image_gc(ctx, true, st, err) < 0)
		return -1;
	return prune_caches(ctx, st, err);
}
