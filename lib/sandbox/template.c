/* template.c: named templates (capsa/template.h): an image reference and
 * the limits its sandboxes get, kept in the templates table, plus the two
 * built-in ones that exist whenever their image does. */
#include <errno.h>
#include <string.h>

#include "capsa/template.h"
#include "image/image.h"
#include "sandbox.h"

static const char *const builtins[] = { "base", "code-interpreter-v1" };

static bool is_builtin(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(builtins); i++)
		if (strcmp(builtins[i], name) == 0)
			return true;
	return false;
}

static void builtin_fill(const char *name, struct capsa_template *t)
{
	memset(t, 0, sizeof(*t));
	t->name = xstrdup(name);
	t->image = xstrdup(CAPSA_TEMPLATE_DEFAULT_IMAGE);
	t->memory = CAPSA_TEMPLATE_DEFAULT_MEMORY;
	t->builtin = true;
}

static bool image_present(struct capsa_ctx *ctx, const char *ref)
{
	struct store *db = ctx_db(ctx, NULL);
	char *id = db ? image_resolve_id(db, ref, NULL, NULL) : NULL;
	free(id);
	return id != NULL;
}

void capsa_template_release(struct capsa_template *t)
{
	free(t->name);
	free(t->image);
	memset(t, 0, sizeof(*t));
}

void capsa_template_list_free(struct capsa_template *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		capsa_template_release(&v[i]);
	free(v);
}

static void fill_row(sqlite3_stmt *st, struct capsa_template *t)
{
	memset(t, 0, sizeof(*t));
	t->name = store_col_strdup(st, 0);
	t->image = store_col_strdup(st, 1);
	t->cpus_milli = sqlite3_column_int64(st, 2);
	t->memory = sqlite3_column_int64(st, 3);
	t->disk = sqlite3_column_int64(st, 4);
	t->created_at = sqlite3_column_int64(st, 5);
}

#define TEMPLATE_COLUMNS "name, image_ref, cpus_milli, memory, disk, created_at"

CAPSA_EXPORT int capsa_template_create(struct capsa_ctx *ctx, const struct capsa_template *t,
				       struct capsa_error **err)
{
	if (!t->name || !sandbox_name_valid(t->name))
		return error_set(err, EINVAL,
				 "invalid template name '%.200s': use 1-128 of [a-zA-Z0-9_.-], starting with a letter or "
				 "digit",
				 t->name ? t->name : "");
	if (!t->image || !*t->image)
		return error_set(err, EINVAL, "template %s: no image given", t->name);
	if (t->cpus_milli < 0 || t->memory < 0 || t->disk < 0)
		return error_set(err, EINVAL, "template %s: limits must be positive", t->name);
	if (t->memory > 0 && t->memory < (6 << 20))
		return error_set(err, EINVAL, "template %s: invalid memory limit %lld: the minimum is 6 MiB", t->name,
				 (long long)t->memory);
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	char *id = image_resolve_id(db, t->image, NULL, err);
	if (!id)
		return error_wrap(err, "template %s", t->name);
	free(id);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "INSERT OR REPLACE INTO templates(" TEMPLATE_COLUMNS ") VALUES(?,?,?,?,?,?)", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, t->name);
	store_bind_text(st, 2, t->image);
	sqlite3_bind_int64(st, 3, t->cpus_milli);
	sqlite3_bind_int64(st, 4, t->memory);
	sqlite3_bind_int64(st, 5, t->disk);
	sqlite3_bind_int64(st, 6, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record template", err);
	return 0;
}

CAPSA_EXPORT int capsa_template_get(struct capsa_ctx *ctx, const char *name, struct capsa_template *out,
				    struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	if (!name || !*name || strlen(name) > 256)
		return error_set(err, EINVAL, "invalid template name '%.64s'", name ? name : "");
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT " TEMPLATE_COLUMNS " FROM templates WHERE name=?", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, name);
	if (sqlite3_step(st) == SQLITE_ROW) {
		fill_row(st, out);
		return 0;
	}
	if (!is_builtin(name))
		return error_set(err, ENOENT, "no such template: '%s'", name);
	if (!image_present(ctx, CAPSA_TEMPLATE_DEFAULT_IMAGE))
		return error_set(err, ENOENT,
				 "template %s: its image %s is not in the store (import or pull it, or point the "
				 "template elsewhere with 'capsa template create %s --image REF')",
				 name, CAPSA_TEMPLATE_DEFAULT_IMAGE, name);
	builtin_fill(name, out);
	return 0;
}

CAPSA_EXPORT int capsa_template_list(struct capsa_ctx *ctx, struct capsa_template **out, size_t *n,
				     struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT " TEMPLATE_COLUMNS " FROM templates ORDER BY name", &st, err) < 0)
		return -1;
	struct capsa_template *v = NULL;
	size_t count = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		fill_row(st, &v[count++]);
	}
	bool have_default = image_present(ctx, CAPSA_TEMPLATE_DEFAULT_IMAGE);
	for (size_t i = 0; i < ARRAY_SIZE(builtins) && have_default; i++) {
		bool shadowed = false;
		for (size_t j = 0; j < count; j++)
			shadowed |= strcmp(v[j].name, builtins[i]) == 0;
		if (shadowed)
			continue;
		v = xrealloc(v, (count + 1) * sizeof(*v));
		builtin_fill(builtins[i], &v[count++]);
	}
	/* keep the listing sorted by name with the built-in ones merged in */
	for (size_t i = 1; i < count; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1].name, v[j].name) > 0; j--) {
			struct capsa_template tmp = v[j];
			v[j] = v[j - 1];
			v[j - 1] = tmp;
		}
	*out = v;
	*n = count;
	return 0;
}

CAPSA_EXPORT int capsa_template_remove(struct capsa_ctx *ctx, const char *name, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "DELETE FROM templates WHERE name=?", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, name);
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "remove template", err);
	if (sqlite3_changes(db->db) == 0) {
		if (name && is_builtin(name))
			return error_set(err, EPERM, "template %s is built in: it can be replaced, not removed", name);
		return error_set(err, ENOENT, "no such template: '%s'", name ? name : "");
	}
	return 0;
}
