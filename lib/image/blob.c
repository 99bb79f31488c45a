/* blob.c: the read side of the content-addressed blob store and the store
 * lock.  Core part: no libcrypto, libarchive or libcurl here (the writer,
 * which hashes, is blobwriter.c in the xfer part).
 *
 * The store lock (<root>/store.lock) keeps garbage collection away from
 * content in flight: every process that writes blobs or unpacks layers holds
 * it shared from its first write until its image rows are committed (in
 * practice until the context is freed or image_ingest_done() is called);
 * garbage collection holds it exclusively.  Without it, a blob written by an
 * import but not yet referenced by an image row would look like garbage.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/ingest.h"
#include "util/fs.h"
#include "util/str.h"

bool digest_valid(const char *digest)
{
	if (!digest || !str_has_prefix(digest, "sha256:"))
		return false;
	const char *h = digest + 7;
	size_t n = 0;
	for (; h[n]; n++) {
		if (!((h[n] >= '0' && h[n] <= '9') || (h[n] >= 'a' && h[n] <= 'f')))
			return false;
	}
	return n == 64;
}

char *blob_relpath(const char *digest)
{
	return xasprintf("blobs/sha256/%s", digest + 7);
}

int image_lock_file(struct capsa_ctx *ctx, const char *rel, int op, struct capsa_error **err)
{
	int fd = openat(ctx->root_fd, rel, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_sys(err, errno, "open %s/%s", ctx->root, rel);
	int r;
	do
		r = flock(fd, op);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return error_set(err, EBUSY, "%s/%s is locked by another capsa process", ctx->root, rel);
		return error_sys(err, e, "lock %s/%s", ctx->root, rel);
	}
	return fd;
}

int image_store_lock(struct capsa_ctx *ctx, bool exclusive, bool wait, struct capsa_error **err)
{
	struct capsa_error *e = NULL;
	int fd = image_lock_file(ctx, "store.lock", (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB), &e);
	if (fd < 0 && e->code == EBUSY) {
		capsa_error_free(e);
		return error_set(err, EBUSY, "store %s is busy: another capsa process is importing or collecting",
				 ctx->root);
	}
	if (fd < 0)
		error_move(err, &e);
	return fd;
}

int image_ingest_hold(struct capsa_ctx *ctx, struct capsa_error **err)
{
	if (ctx->ingest_lock_fd >= 0)
		return 0;
	int fd = image_store_lock(ctx, false, true, err);
	if (fd < 0)
		return -1;
	ctx->ingest_lock_fd = fd;
	return 0;
}

void image_ingest_done(struct capsa_ctx *ctx)
{
	if (ctx->ingest_lock_fd >= 0) {
		close(ctx->ingest_lock_fd);
		ctx->ingest_lock_fd = -1;
	}
}

bool blob_exists(struct capsa_ctx *ctx, const char *digest, int64_t *size_out)
{
	if (!digest_valid(digest))
		return false;
	struct store *db = ctx_db(ctx, NULL);
	if (!db)
		return false;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT size FROM blobs WHERE digest=?", &st, NULL) < 0)
		return false;
	store_bind_text(st, 1, digest);
	if (sqlite3_step(st) != SQLITE_ROW)
		return false;
	int64_t size = sqlite3_column_int64(st, 0);
	_cleanup_free_ char *rel = blob_relpath(digest);
	struct stat sb;
	if (fstatat(ctx->root_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) || sb.st_size != size)
		return false;
	if (size_out)
		*size_out = size;
	return true;
}

int blob_open(struct capsa_ctx *ctx, const char *digest, struct capsa_error **err)
{
	if (!digest_valid(digest))
		return error_set(err, EINVAL, "invalid digest '%s'", digest ? digest : "");
	_cleanup_free_ char *rel = blob_relpath(digest);
	int fd = openat(ctx->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return error_set(err, ENOENT, "blob %s is not in the store", digest);
		return error_sys(err, errno, "open blob %s", digest);
	}
	return fd;
}

int blob_read(struct capsa_ctx *ctx, const char *digest, size_t cap, struct buf *out, struct capsa_error **err)
{
	_cleanup_close_ int fd = blob_open(ctx, digest, err);
	if (fd < 0)
		return -1;
	if (read_all(fd, out, cap) < 0) {
		if (errno == EFBIG)
			return error_set(err, EFBIG, "blob %s is larger than %zu bytes", digest, cap);
		return error_sys(err, errno, "read blob %s", digest);
	}
	buf_cstr(out);
	return 0;
}
