/* blobwriter.c: streaming verified content into blobs/sha256/ (xfer part:
 * hashes with libcrypto).
 *
 * Order of steps, each needed for the guarantee in ingest.h:
 *   1. the bytes go to <root>/tmp/<name> (never into blobs/ directly), with
 *      a running SHA-256 and a byte count checked against the expected size
 *      on every write, so a stream longer than declared stops at once;
 *   2. commit: size and digest compared with what was declared (both named
 *      on a mismatch, the temporary file removed), fsync of the file;
 *   3. rename into blobs/sha256/<hex>, fsync of the directory, then the
 *      blobs row.  A crash before the row leaves a file that blob_exists()
 *      does not trust and that a re-import overwrites or gc removes.
 * With resume, the temporary name is derived from the digest
 * (tmp/sha256-<hex>.partial) and an exclusive flock on it keeps two
 * processes fetching the same blob from interleaving their writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/ingest.h"
#include "util/fs.h"
#include "util/str.h"

struct blob_writer {
	struct capsa_ctx *ctx;
	char *digest;  /* expected, or NULL */
	int64_t size;  /* expected, or -1 */
	int64_t offset; /* bytes present from an earlier partial download */
	int64_t written; /* total bytes in the file */
	int fd;
	char *tmp;     /* relative to the store root */
	bool resume;
	EVP_MD_CTX *md;
};

char *sha256_digest(const void *p, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	char hex[65];
	hex_encode(md, 32, hex);
	return xasprintf("sha256:%s", hex);
}

static void writer_free(struct blob_writer *w, bool unlink_tmp)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (unlink_tmp && w->tmp)
		unlinkat(w->ctx->root_fd, w->tmp, 0);
	EVP_MD_CTX_free(w->md);
	free(w->digest);
	free(w->tmp);
	free(w);
}

/* Hashes the bytes an interrupted download left, so that the digest at
 * commit covers the whole blob. */
static int rehash_partial(struct blob_writer *w, struct capsa_error **err)
{
	struct stat sb;
	if (fstat(w->fd, &sb) < 0)
		return error_sys(err, errno, "stat %s", w->tmp);
	if (w->size >= 0 && sb.st_size > w->size) {
		/* longer than the blob can be: start over */
		if (ftruncate(w->fd, 0) < 0)
			return error_sys(err, errno, "truncate %s", w->tmp);
		return 0;
	}
	enum { CHUNK = 1 << 20 };
	_cleanup_free_ char *p = xmalloc(CHUNK);
	int64_t done = 0;
	while (done < sb.st_size) {
		ssize_t r = pread(w->fd, p, CHUNK, done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return error_sys(err, errno, "read %s", w->tmp);
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(w->md, p, (size_t)r);
		done += r;
	}
	if (lseek(w->fd, done, SEEK_SET) < 0 || ftruncate(w->fd, done) < 0)
		return error_sys(err, errno, "seek %s", w->tmp);
	w->offset = w->written = done;
	return 0;
}

/* Opens and locks the partial file of a resumable download.  A holder that
 * finished (renamed) or aborted (unlinked) the file while we waited leaves
 * us a stale inode: compare with the name and retry on a new file. */
static int open_partial(struct blob_writer *w, struct capsa_error **err)
{
	for (int tries = 0; tries < 100; tries++) {
		w->fd = openat(w->ctx->root_fd, w->tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w->fd < 0)
			return error_sys(err, errno, "create %s/%s", w->ctx->root, w->tmp);
		int r;
		do
			r = flock(w->fd, LOCK_EX);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return error_sys(err, errno, "lock %s/%s", w->ctx->root, w->tmp);
		struct stat a, b;
		if (fstat(w->fd, &a) == 0 && fstatat(w->ctx->root_fd, w->tmp, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return rehash_partial(w, err);
		close(w->fd);
		w->fd = -1;
	}
	return error_set(err, EAGAIN, "%s/%s keeps changing under us", w->ctx->root, w->tmp);
}

int blob_writer_open(struct capsa_ctx *ctx, const char *digest, int64_t size, bool resume,
		     struct blob_writer **out, struct capsa_error **err)
{
	if (digest && !digest_valid(digest))
		return error_set(err, EINVAL, "invalid digest '%s': want sha256: and 64 lower-case hex digits", digest);
	if (size < -1)
		return error_set(err, EINVAL, "blob %s: negative size %lld", digest ? digest : "", (long long)size);
	if (image_ingest_hold(ctx, err) < 0)
		return -1;
	struct blob_writer *w = xcalloc(1, sizeof(*w));
	w->ctx = ctx;
	w->fd = -1;
	w->size = size;
	w->digest = digest ? xstrdup(digest) : NULL;
	w->resume = resume && digest;
	w->md = EVP_MD_CTX_new();
	if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		writer_free(w, false);
		return error_set(err, ENOMEM, "sha256 context: out of memory");
	}
	if (w->resume) {
		w->tmp = xasprintf("tmp/sha256-%s.partial", digest + 7);
		if (open_partial(w, err) < 0) {
			writer_free(w, false);
			return -1;
		}
	} else {
		_cleanup_free_ char *rnd = random_hex(8);
		w->tmp = xasprintf("tmp/blob-%s", rnd);
		w->fd = openat(ctx->root_fd, w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w->fd < 0) {
			error_sys(err, errno, "create %s/%s", ctx->root, w->tmp);
			writer_free(w, false);
			return -1;
		}
	}
	*out = w;
	return 0;
}

int64_t blob_writer_offset(const struct blob_writer *w)
{
	return w->offset;
}

int blob_writer_write(struct blob_writer *w, const void *p, size_t n, struct capsa_error **err)
{
	if (w->size >= 0 && (uint64_t)n > (uint64_t)(w->size - w->written))
		return error_set(err, EFBIG, "blob %s: more data than the declared size of %lld bytes",
				 w->digest ? w->digest : "(unknown digest)", (long long)w->size);
	if (write_all(w->fd, p, n) < 0)
		return error_sys(err, errno, "write %s/%s", w->ctx->root, w->tmp);
	EVP_DigestUpdate(w->md, p, n);
	w->written += (int64_t)n;
	return 0;
}

static int record_blob(struct capsa_ctx *ctx, const char *digest, int64_t size, const char *media_type,
		       struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "INSERT INTO blobs(digest, size, media_type, created_at) VALUES(?,?,?,?) "
			  "ON CONFLICT(digest) DO UPDATE SET size=excluded.size, media_type="
			  "CASE WHEN excluded.media_type='' THEN media_type ELSE excluded.media_type END",
			  &st, err) < 0)
		return -1;
	store_bind_text(st, 1, digest);
	sqlite3_bind_int64(st, 2, size);
	store_bind_text(st, 3, media_type ? media_type : "");
	sqlite3_bind_int64(st, 4, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record blob", err);
	return 0;
}

int blob_writer_commit(struct blob_writer *w, const char *media_type, char **digest_out,
		       struct capsa_error **err)
{
	const char *what = w->digest ? w->digest : "(unknown digest)";
	if (w->size >= 0 && w->written != w->size) {
		error_set(err, EPROTO, "blob %s: got %lld bytes, the declared size is %lld", what,
			  (long long)w->written, (long long)w->size);
		writer_free(w, true);
		return -1;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_DigestFinal_ex(w->md, md, &mdlen);
	char hex[65];
	hex_encode(md, 32, hex);
	_cleanup_free_ char *got = xasprintf("sha256:%s", hex);
	if (w->digest && !str_eq(got, w->digest)) {
		error_set(err, EPROTO, "blob digest mismatch: expected %s, got %s", w->digest, got);
		writer_free(w, true);
		return -1;
	}
	if (fsync(w->fd) < 0) {
		error_sys(err, errno, "fsync %s/%s", w->ctx->root, w->tmp);
		writer_free(w, true);
		return -1;
	}
	_cleanup_free_ char *rel = blob_relpath(got);
	if (renameat(w->ctx->root_fd, w->tmp, w->ctx->root_fd, rel) < 0) {
		error_sys(err, errno, "rename %s/%s to %s", w->ctx->root, w->tmp, rel);
		writer_free(w, true);
		return -1;
	}
	_cleanup_close_ int dfd = openat(w->ctx->root_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	int64_t size = w->written;
	struct capsa_ctx *ctx = w->ctx;
	writer_free(w, false);
	if (record_blob(ctx, got, size, media_type, err) < 0)
		return -1;
	if (digest_out)
		*digest_out = steal_pointer(&got);
	return 0;
}

void blob_writer_abort(struct blob_writer *w, bool keep_partial)
{
	if (!w)
		return;
	if (keep_partial && w->resume && fsync(w->fd) == 0) {
		writer_free(w, false);
		return;
	}
	writer_free(w, true);
}
