/* image.c: resolving references to images, listing, inspecting, tagging,
 * removing, and pinning layers for sandboxes.  Core part (see image.h). */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "image/image.h"
#include "image/ingest.h"
#include "image/ref.h"
#include "util/str.h"

void image_free(struct image *img)
{
	if (!img)
		return;
	free(img->id);
	free(img->manifest_digest);
	free(img->name);
	strv_free(img->names);
	free(img->platform);
	image_config_release(&img->config);
	strv_free(img->layers);
	free(img);
}

static bool is_hex(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

static int load_image(struct store *db, const char *id, struct image **out, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT manifest_digest, config, platform, size, created_at FROM images WHERE id=?", &st,
			  err) < 0)
		return -1;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return error_set(err, ENOENT, "image %s not found", id);
	struct image *img = xcalloc(1, sizeof(*img));
	img->id = xstrdup(id);
	img->manifest_digest = store_col_strdup(st, 0);
	img->platform = store_col_strdup(st, 2);
	img->size = sqlite3_column_int64(st, 3);
	img->created_at = sqlite3_column_int64(st, 4);
	const char *cfg = (const char *)sqlite3_column_text(st, 1);
	if (image_config_parse(cfg ? cfg : "", cfg ? (size_t)sqlite3_column_bytes(st, 1) : 0, &img->config, err) < 0) {
		image_free(img);
		return error_wrap(err, "image %s", id);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (store_prepare(db, "SELECT diff_id FROM image_layers WHERE image_id=? ORDER BY idx", &st, err) < 0)
		goto fail;
	store_bind_text(st, 1, id);
	img->layers = xcalloc(1, sizeof(char *));
	while (sqlite3_step(st) == SQLITE_ROW) {
		img->layers = strv_push_take(img->layers, store_col_strdup(st, 0));
		img->n_layers++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (store_prepare(db, "SELECT name FROM refs WHERE image_id=? ORDER BY name", &st, err) < 0)
		goto fail;
	store_bind_text(st, 1, id);
	img->names = xcalloc(1, sizeof(char *));
	while (sqlite3_step(st) == SQLITE_ROW)
		img->names = strv_push_take(img->names, store_col_strdup(st, 0));
	*out = img;
	return 0;
fail:
	image_free(img);
	return -1;
}

/* One id from a query that binds text to ?1; ENOENT/EINVAL on 0/>1 rows. */
static char *one_id(struct store *db, const char *sql, const char *arg, const char *what, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, sql, &st, err) < 0)
		return NULL;
	store_bind_text(st, 1, arg);
	char *id = NULL;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		if (id && !str_eq(id, v)) {
			free(id);
			error_set(err, EINVAL, "%s is ambiguous: it matches more than one image", what);
			return NULL;
		}
		if (!id)
			id = xstrdup(v);
	}
	if (!id)
		error_set(err, ENOENT, "no image %s in the store", what);
	return id;
}

/* The image id a reference names (see image_resolve for the forms); the
 * normalized reference goes to *name_out when ref was a name. */
char *image_resolve_id(struct store *db, const char *ref, char **name_out, struct capsa_error **err)
{
	*name_out = NULL;
	if (str_has_prefix(ref, "sha256:")) {
		if (digest_valid(ref))
			return one_id(db, "SELECT id FROM images WHERE id=?1 OR manifest_digest=?1", ref, ref, err);
		if (is_hex(ref + 7, 4, 63))
			return one_id(db, "SELECT id FROM images WHERE substr(id,1,length(?1))=?1", ref, ref, err);
		error_set(err, EINVAL, "invalid image id '%s'", ref);
		return NULL;
	}
	if (is_hex(ref, 64, 64)) {
		_cleanup_free_ char *full = xasprintf("sha256:%s", ref);
		return one_id(db, "SELECT id FROM images WHERE id=?1", full, ref, err);
	}
	struct capsa_error *ref_err = NULL;
	struct image_ref r;
	if (image_ref_parse(ref, &r, &ref_err) == 0) {
		_cleanup_free_ char *norm = image_ref_string(&r);
		_cleanup_free_ char *id = one_id(db, "SELECT image_id FROM refs WHERE name=?1", norm, norm, NULL);
		if (!id && r.digest && !r.tag)
			id = one_id(db, "SELECT id FROM images WHERE manifest_digest=?1", r.digest, norm, NULL);
		image_ref_release(&r);
		if (id) {
			capsa_error_free(ref_err);
			*name_out = steal_pointer(&norm);
			return steal_pointer(&id);
		}
	}
	if (is_hex(ref, 4, 63)) {
		capsa_error_free(ref_err);
		_cleanup_free_ char *pfx = xasprintf("sha256:%s", ref);
		return one_id(db, "SELECT id FROM images WHERE substr(id,1,length(?1))=?1", pfx, ref, err);
	}
	if (ref_err) {
		error_move(err, &ref_err);
		return NULL;
	}
	error_set(err, ENOENT, "no image %s in the store", ref);
	return NULL;
}

int image_resolve(struct capsa_ctx *ctx, const char *ref, struct image **out, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *id = image_resolve_id(db, ref, &name, err);
	if (!id)
		return -1;
	struct image *img = NULL;
	if (load_image(db, id, &img, err) < 0)
		return -1;
	img->name = name ? steal_pointer(&name) : img->names[0] ? xstrdup(img->names[0]) : NULL;
	*out = img;
	return 0;
}

int image_record_sandbox_layers(struct capsa_ctx *ctx, const char *sandbox_id, const struct image *img,
				struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "INSERT OR IGNORE INTO sandbox_layers(sandbox_id, layer_digest) VALUES(?,?)", &st, err) < 0)
		return -1;
	for (size_t i = 0; i < img->n_layers; i++) {
		sqlite3_reset(st);
		store_bind_text(st, 1, sandbox_id);
		store_bind_text(st, 2, img->layers[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			return store_error(db, "record sandbox layers", err);
	}
	return 0;
}

int image_ref_set(struct store *db, const char *ref, const char *image_id, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "INSERT INTO refs(name, image_id, created_at) VALUES(?,?,?) "
			  "ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, created_at=excluded.created_at",
			  &st, err) < 0)
		return -1;
	store_bind_text(st, 1, ref);
	store_bind_text(st, 2, image_id);
	sqlite3_bind_int64(st, 3, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record reference", err);
	return 0;
}

/* ---- list / inspect ---- */

static char **names_of(struct store *db, const char *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char **v = xcalloc(1, sizeof(char *));
	if (store_prepare(db, "SELECT name FROM refs WHERE image_id=? ORDER BY name", &st, NULL) < 0)
		return v;
	store_bind_text(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		v = strv_push_take(v, store_col_strdup(st, 0));
	return v;
}

static char *config_created(const char *cfg)
{
	json_t *j = cfg ? json_loads(cfg, 0, NULL) : NULL;
	const char *c = json_string_value(json_object_get(j, "created"));
	char *r = c ? xstrdup(c) : NULL;
	json_decref(j);
	return r;
}

CAPSA_EXPORT int capsa_image_list(struct capsa_ctx *ctx, struct capsa_image_info **out, size_t *n,
				  struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "SELECT i.id, i.manifest_digest, i.platform, i.size, i.created_at, i.config, "
			  " (SELECT count(*) FROM image_layers il WHERE il.image_id=i.id), "
			  " (SELECT coalesce(sum(l.size),0) FROM image_layers il JOIN layers l ON l.diff_id=il.diff_id "
			  "  WHERE il.image_id=i.id), "
			  " (SELECT count(*) FROM sandboxes s WHERE s.image_id=i.id) "
			  "FROM images i ORDER BY i.created_at DESC, i.id",
			  &st, err) < 0)
		return -1;
	size_t alloc = 0;
	struct capsa_image_info *v = NULL;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			v = xrealloc(v, alloc * sizeof(*v));
		}
		struct capsa_image_info *x = &v[(*n)++];
		memset(x, 0, sizeof(*x));
		x->id = store_col_strdup(st, 0);
		x->manifest_digest = store_col_strdup(st, 1);
		x->platform = store_col_strdup(st, 2);
		x->size = sqlite3_column_int64(st, 3);
		x->imported_at = sqlite3_column_int64(st, 4);
		x->created = config_created((const char *)sqlite3_column_text(st, 5));
		x->n_layers = (size_t)sqlite3_column_int64(st, 6);
		x->unpacked_size = sqlite3_column_int64(st, 7);
		x->n_sandboxes = (size_t)sqlite3_column_int64(st, 8);
	}
	for (size_t i = 0; i < *n; i++)
		v[i].names = names_of(db, v[i].id);
	*out = v;
	return 0;
}

CAPSA_EXPORT void capsa_image_list_free(struct capsa_image_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		free(v[i].manifest_digest);
		strv_free(v[i].names);
		free(v[i].platform);
		free(v[i].created);
	}
	free(v);
}

CAPSA_EXPORT char *capsa_image_inspect(struct capsa_ctx *ctx, const char *ref, struct capsa_error **err)
{
	struct image *img;
	if (image_resolve(ctx, ref, &img, err) < 0)
		return NULL;
	struct store *db = ctx_db(ctx, err);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(img->id));
	json_object_set_new(o, "digest", json_string(img->manifest_digest));
	json_t *names = json_array();
	for (size_t i = 0; img->names[i]; i++)
		json_array_append_new(names, json_string(img->names[i]));
	json_object_set_new(o, "names", names);
	json_object_set_new(o, "platform", json_string(img->platform));
	json_object_set_new(o, "size", json_integer(img->size));
	char ts[64];
	format_rfc3339(img->created_at, ts, sizeof(ts));
	json_object_set_new(o, "imported_at", json_string(ts));
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	json_t *layers = json_array();
	int64_t unpacked = 0;
	if (store_prepare(db,
			  "SELECT il.diff_id, il.blob_digest, il.media_type, il.blob_size, l.size, l.entries "
			  "FROM image_layers il JOIN layers l ON l.diff_id=il.diff_id WHERE il.image_id=? ORDER BY il.idx",
			  &st, err) == 0) {
		store_bind_text(st, 1, img->id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_array_append_new(layers,
					      json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "diff_id",
							(const char *)sqlite3_column_text(st, 0), "digest",
							(const char *)sqlite3_column_text(st, 1), "media_type",
							(const char *)sqlite3_column_text(st, 2), "size",
							(json_int_t)sqlite3_column_int64(st, 3), "unpacked_size",
							(json_int_t)sqlite3_column_int64(st, 4), "entries",
							(json_int_t)sqlite3_column_int64(st, 5)));
			unpacked += sqlite3_column_int64(st, 4);
		}
	}
	json_object_set_new(o, "unpacked_size", json_integer(unpacked));
	json_object_set_new(o, "layers", layers);
	sqlite3_finalize(st);
	st = NULL;
	/* the image config exactly as stored */
	if (store_prepare(db, "SELECT config FROM images WHERE id=?", &st, NULL) == 0) {
		store_bind_text(st, 1, img->id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			json_t *c = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
			json_object_set_new(o, "config", c ? c : json_null());
		}
	}
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	image_free(img);
	return s;
}

CAPSA_EXPORT int capsa_image_tag(struct capsa_ctx *ctx, const char *src, const char *dst, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	struct image_ref r;
	if (image_ref_parse(dst, &r, err) < 0)
		return -1;
	bool digest = r.digest != NULL;
	_cleanup_free_ char *norm = image_ref_string(&r);
	image_ref_release(&r);
	if (digest)
		return error_set(err, EINVAL, "cannot tag %s with a digest reference '%s'", src, dst);
	if (store_begin(db, err) < 0)
		return -1;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *id = image_resolve_id(db, src, &name, err);
	if (!id || image_ref_set(db, norm, id, err) < 0 || store_commit(db, err) < 0) {
		store_rollback(db);
		return -1;
	}
	return 0;
}
