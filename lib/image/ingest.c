/* ingest.c: turning a manifest whose blobs are in the store into an image
 * (xfer part).  Shared by import (import.c) and pull (registry.c).
 *
 * Order: validate the manifest and the config; check every blob is in the
 * store with the declared size; unpack the layers not yet unpacked
 * (layer.c, which checks each diff_id); then one transaction records the
 * image, its layers and the reference.  Nothing points at a layer before it
 * is ready, and a failed ingest leaves no image row.
 */
#include <errno.h>
#include <string.h>

#include "image/ingest.h"
#include "image/layer.h"
#include "image/oci.h"
#include "image/ref.h"
#include "util/str.h"

/* The manifest itself is kept as a blob: images.manifest_digest must name
 * content that is in the store (inspect, export, gc all rely on it). */
static int store_manifest(struct capsa_ctx *ctx, const char *text, size_t len, const char *digest,
			  const char *media_type, struct capsa_error **err)
{
	if (blob_exists(ctx, digest, NULL))
		return 0;
	struct blob_writer *w;
	if (blob_writer_open(ctx, digest, (int64_t)len, false, &w, err) < 0)
		return -1;
	if (blob_writer_write(w, text, len, err) < 0) {
		blob_writer_abort(w, false);
		return -1;
	}
	return blob_writer_commit(w, media_type, NULL, err);
}

static int check_blob(struct capsa_ctx *ctx, const struct oci_descriptor *d, const char *what, struct capsa_error **err)
{
	int64_t size = -1;
	if (!blob_exists(ctx, d->digest, &size))
		return error_set(err, ENOENT, "%s %s is not in the store", what, d->digest);
	if (size != d->size)
		return error_set(err, EPROTO, "%s %s: the manifest says %lld bytes, the blob has %lld", what, d->digest,
				 (long long)d->size, (long long)size);
	return 0;
}

struct image_rows {
	const char *id, *manifest_digest, *media_type, *config, *platform, *ref;
	int64_t size;
	const struct oci_manifest *m;
	const struct image_config *cfg;
};

static int record_image(struct store *db, const struct image_rows *r, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "INSERT INTO images(id, manifest_digest, manifest_media_type, config, platform, size, created_at) "
			  "VALUES(?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest, "
			  "manifest_media_type=excluded.manifest_media_type, config=excluded.config, "
			  "platform=excluded.platform, size=excluded.size",
			  &st, err) < 0)
		return -1;
	store_bind_text(st, 1, r->id);
	store_bind_text(st, 2, r->manifest_digest);
	store_bind_text(st, 3, r->media_type);
	store_bind_text(st, 4, r->config);
	store_bind_text(st, 5, r->platform);
	sqlite3_bind_int64(st, 6, r->size);
	sqlite3_bind_int64(st, 7, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record image", err);
	sqlite3_finalize(st);
	st = NULL;
	if (store_prepare(db, "DELETE FROM image_layers WHERE image_id=?", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, r->id);
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record image layers", err);
	sqlite3_finalize(st);
	st = NULL;
	if (store_prepare(db,
			  "INSERT INTO image_layers(image_id, idx, diff_id, blob_digest, blob_size, media_type) "
			  "VALUES(?,?,?,?,?,?)",
			  &st, err) < 0)
		return -1;
	for (size_t i = 0; i < r->m->n_layers; i++) {
		sqlite3_reset(st);
		store_bind_text(st, 1, r->id);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		store_bind_text(st, 3, r->cfg->diff_ids[i]);
		store_bind_text(st, 4, r->m->layers[i].digest);
		sqlite3_bind_int64(st, 5, r->m->layers[i].size);
		store_bind_text(st, 6, r->m->layers[i].media_type);
		if (sqlite3_step(st) != SQLITE_DONE)
			return store_error(db, "record image layers", err);
	}
	if (r->ref)
		return image_ref_set(db, r->ref, r->id, err);
	return 0;
}

int image_ingest_manifest_opts(struct capsa_ctx *ctx, const char *text, size_t len, const char *manifest_digest,
			       const char *ref, const struct unpack_opts *uo, char **image_id_out,
			       struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db || image_ingest_hold(ctx, err) < 0)
		return -1;
	_cleanup_free_ char *norm = NULL;
	if (ref && image_ref_normalize(ref, &norm, err) < 0)
		return -1;
	_cleanup_free_ char *digest = sha256_digest(text, len);
	if (manifest_digest && !str_eq(manifest_digest, digest))
		return error_set(err, EPROTO, "manifest digest mismatch: expected %s, got %s", manifest_digest, digest);
	struct oci_manifest m;
	if (oci_manifest_parse(text, len, &m, err) < 0)
		return -1;
	int rc = -1;
	struct image_config cfg = { 0 };
	struct buf cbuf = BUF_INIT;
	struct layer_job *jobs = NULL;
	char *platform = NULL;
	if (check_blob(ctx, &m.config, "config", err) < 0 || blob_read(ctx, m.config.digest, IMAGE_MAX_JSON, &cbuf, err) < 0 ||
	    image_config_parse(cbuf.data, cbuf.len, &cfg, err) < 0)
		goto out;
	if (cfg.n_diff_ids != m.n_layers) {
		error_set(err, EPROTO, "image config lists %zu layers (rootfs.diff_ids), the manifest %zu", cfg.n_diff_ids,
			  m.n_layers);
		goto out;
	}
	int64_t total = (int64_t)len + m.config.size;
	jobs = xcalloc(m.n_layers, sizeof(*jobs));
	for (size_t i = 0; i < m.n_layers; i++) {
		if (check_blob(ctx, &m.layers[i], "layer", err) < 0)
			goto out;
		jobs[i].blob_digest = m.layers[i].digest;
		jobs[i].diff_id = cfg.diff_ids[i];
		total += m.layers[i].size;
	}
	if (store_manifest(ctx, text, len, digest, m.media_type, err) < 0)
		goto out;
	if (layers_ensure(ctx, jobs, m.n_layers, uo, err) < 0)
		goto out;
	platform = xasprintf("%s/%s%s%s", cfg.os ? cfg.os : "linux",
						  cfg.architecture ? cfg.architecture : "amd64", cfg.variant ? "/" : "",
						  cfg.variant ? cfg.variant : "");
	struct image_rows rows = {
		.id = m.config.digest,
		.manifest_digest = digest,
		.media_type = m.media_type,
		.config = buf_cstr(&cbuf),
		.platform = platform,
		.ref = norm,
		.size = total,
		.m = &m,
		.cfg = &cfg,
	};
	if (store_begin(db, err) < 0)
		goto out;
	if (record_image(db, &rows, err) < 0 || store_commit(db, err) < 0) {
		store_rollback(db);
		goto out;
	}
	if (image_id_out)
		*image_id_out = xstrdup(m.config.digest);
	rc = 0;
out:
	free(platform);
	free(jobs);
	buf_release(&cbuf);
	image_config_release(&cfg);
	oci_manifest_release(&m);
	return rc;
}

int image_ingest_manifest(struct capsa_ctx *ctx, const char *manifest, size_t len, const char *manifest_digest,
			  const char *ref, const char *platform, char **image_id_out, struct capsa_error **err)
{
	(void)platform; /* the image config says what platform the image is for */
	return image_ingest_manifest_opts(ctx, manifest, len, manifest_digest, ref, NULL, image_id_out, err);
}
