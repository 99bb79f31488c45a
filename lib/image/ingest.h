/* ingest.h: getting verified content into the store.  Shared by every way
 * an image arrives (import of a layout or archive, registry pull).
 *
 * A blob is streamed into a temporary file under <root>/tmp, hashed while it
 * is written, fsynced, checked against the expected digest and size, and
 * renamed to blobs/sha256/<hex>; a mismatch is an error naming both digests
 * and nothing is kept.  With resume, a partial download of the same digest
 * left by an interrupted pull is re-hashed and continued (the caller asks the
 * registry for a Range from blob_writer_offset()).
 */
#ifndef CAPSA_IMAGE_INGEST_H
#define CAPSA_IMAGE_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "store/context.h"
#include "util/str.h"

struct blob_writer;

/* digest: "sha256:<64 hex>" expected, or NULL when unknown (the digest is
 * then whatever the content hashes to).  size: expected size or -1. */
int blob_writer_open(struct capsa_ctx *ctx, const char *digest, int64_t size, bool resume,
		     struct blob_writer **out, struct capsa_error **err);
/* Bytes already present from an earlier partial download (0 without resume). */
int64_t blob_writer_offset(const struct blob_writer *w);
/* Fails (and the writer must be aborted) when more than the expected size
 * arrives. */
int blob_writer_write(struct blob_writer *w, const void *p, size_t n, struct capsa_error **err);
/* Verifies, fsyncs, renames into place and records the blob; *digest_out
 * (optional) receives "sha256:<hex>".  Frees the writer in all cases. */
int blob_writer_commit(struct blob_writer *w, const char *media_type, char **digest_out,
		       struct capsa_error **err);
/* Discards the temporary file (keeps it for a later resume when keep_partial). */
void blob_writer_abort(struct blob_writer *w, bool keep_partial);

/* true when blobs/sha256/<hex> exists with the recorded size. */
bool blob_exists(struct capsa_ctx *ctx, const char *digest, int64_t *size_out);
/* O_RDONLY fd of a stored blob, or -1 with err. */
int blob_open(struct capsa_ctx *ctx, const char *digest, struct capsa_error **err);

/* Digest syntax check: "sha256:" + 64 lower-case hex. */
bool digest_valid(const char *digest);

/* Turns a manifest whose config and layer blobs are all in the store into an
 * image: validates the manifest and config (media types, layer count cap,
 * diff_ids matching the layers), stores the manifest itself as a blob,
 * unpacks each layer not yet unpacked (once,
 * shared), records images/image_layers rows and, when ref is non-NULL, points
 * the ref ("docker.io/library/busybox:latest") at it.  *image_id_out
 * (optional) receives the config digest.  platform is informational: the
 * image is recorded for the platform its config names. */
int image_ingest_manifest(struct capsa_ctx *ctx, const char *manifest, size_t len, const char *manifest_digest,
			  const char *ref, const char *platform, char **image_id_out, struct capsa_error **err);

struct unpack_opts;
/* image_ingest_manifest() with unpack options (allow_devices, caps);
 * uo NULL means the defaults. */
int image_ingest_manifest_opts(struct capsa_ctx *ctx, const char *manifest, size_t len, const char *manifest_digest,
			       const char *ref, const struct unpack_opts *uo, char **image_id_out,
			       struct capsa_error **err);
/* Points ref (normalized) at image_id; joins the caller's transaction. */
int image_ref_set(struct store *db, const char *ref, const char *image_id, struct capsa_error **err);

/* Caps on what an image may declare (docs/image-store.md, "Limits"). */
#define IMAGE_MAX_LAYERS 128
#define IMAGE_MAX_JSON (4u << 20)     /* manifest, index, config */
#define IMAGE_MAX_JSON_DEPTH 64

/* "blobs/sha256/<hex>", relative to the store root (digest must be valid). */
char *blob_relpath(const char *digest);
/* Reads a small blob (manifest, config) into out, failing past cap bytes. */
int blob_read(struct capsa_ctx *ctx, const char *digest, size_t cap, struct buf *out, struct capsa_error **err);

/* Opens (creating) rel under the store root and flocks it with op
 * (LOCK_EX/LOCK_SH, | LOCK_NB: EBUSY when taken).  Returns the fd. */
int image_lock_file(struct capsa_ctx *ctx, const char *rel, int op, struct capsa_error **err);
/* "sha256:<hex>" of a buffer (xfer part: libcrypto). */
char *sha256_digest(const void *p, size_t n);

/* The store lock (<root>/store.lock): shared while content is in flight,
 * exclusive for garbage collection.  Returns the locked fd.  Without wait,
 * a busy lock fails with EBUSY. */
int image_store_lock(struct capsa_ctx *ctx, bool exclusive, bool wait, struct capsa_error **err);
/* Takes the shared store lock for this context (blob_writer_open() and
 * image_ingest_manifest() call it); image_ingest_done() releases it once
 * the images are committed.  A long-lived process (capsa serve) calls
 * image_ingest_done() after each pull; the CLI lets capsa_ctx_free() do it. */
int image_ingest_hold(struct capsa_ctx *ctx, struct capsa_error **err);
void image_ingest_done(struct capsa_ctx *ctx);

#endif
