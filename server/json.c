/* json.c: strict request-body decoding (json.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "util/error.h"
#include "util/str.h"

json_t *json_parse_body(const char *p, size_t n, char *err, size_t errlen)
{
	if (n == 0) {
		snprintf(err, errlen, "the request body is empty: expected a JSON object");
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!j) {
		snprintf(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errlen, "the request body must be a JSON object");
		return NULL;
	}
	return j;
}

void jdec_init(struct jdec *d, json_t *obj, const char *prefix)
{
	memset(d, 0, sizeof(*d));
	d->obj = obj;
	d->prefix = prefix ? prefix : "";
}

void jdec_fail(struct jdec *d, const char *fmt, ...)
{
	if (d->failed)
		return;
	d->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
}

static json_t *field(struct jdec *d, const char *key)
{
	if (d->n_seen < JDEC_MAX_KEYS)
		d->seen[d->n_seen++] = key;
	json_t *v = d->obj ? json_object_get(d->obj, key) : NULL;
	return json_is_null(v) ? NULL : v;
}

static void type_error(struct jdec *d, const char *key, const char *want)
{
	jdec_fail(d, "field '%s%s': expected %s", d->prefix, key, want);
}

bool jdec_has(struct jdec *d, const char *key)
{
	return field(d, key) != NULL;
}

const char *jdec_str(struct jdec *d, const char *key, bool required)
{
	json_t *v = field(d, key);
	if (!v) {
		if (required)
			jdec_fail(d, "field '%s%s' is required", d->prefix, key);
		return NULL;
	}
	if (!json_is_string(v)) {
		type_error(d, key, "a string");
		return NULL;
	}
	return json_string_value(v);
}

int64_t jdec_int(struct jdec *d, const char *key, int64_t def, int64_t min, int64_t max)
{
	json_t *v = field(d, key);
	if (!v)
		return def;
	if (!json_is_integer(v)) {
		type_error(d, key, "an integer");
		return def;
	}
	int64_t i = json_integer_value(v);
	if (i < min || i > max) {
		jdec_fail(d, "field '%s%s': %lld is out of range [%lld, %lld]", d->prefix, key, (long long)i,
			  (long long)min, (long long)max);
		return def;
	}
	return i;
}

bool jdec_bool(struct jdec *d, const char *key, bool def)
{
	json_t *v = field(d, key);
	if (!v)
		return def;
	if (!json_is_boolean(v)) {
		type_error(d, key, "true or false");
		return def;
	}
	return json_is_true(v);
}

json_t *jdec_obj(struct jdec *d, const char *key)
{
	json_t *v = field(d, key);
	if (v && !json_is_object(v)) {
		type_error(d, key, "an object");
		return NULL;
	}
	return v;
}

char **jdec_strv(struct jdec *d, const char *key, size_t max)
{
	json_t *v = field(d, key);
	if (!v)
		return NULL;
	if (!json_is_array(v)) {
		type_error(d, key, "an array of strings");
		return NULL;
	}
	if (json_array_size(v) > max) {
		jdec_fail(d, "field '%s%s': more than %zu entries", d->prefix, key, max);
		return NULL;
	}
	char **out = xcalloc(json_array_size(v) + 1, sizeof(char *));
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e)) {
			type_error(d, key, "an array of strings");
			strv_free(out);
			return NULL;
		}
		out[i] = xstrdup(json_string_value(e));
	}
	return out;
}

static char **kv_object(struct jdec *d, const char *key, json_t *v, size_t max, bool env)
{
	if (json_object_size(v) > max) {
		jdec_fail(d, "field '%s%s': more than %zu entries", d->prefix, key, max);
		return NULL;
	}
	char **out = NULL;
	const char *k;
	json_t *e;
	json_object_foreach(v, k, e) {
		if (!json_is_string(e)) {
			jdec_fail(d, "field '%s%s.%s': expected a string", d->prefix, key, k);
			strv_free(out);
			return NULL;
		}
		if (!*k || (env && strchr(k, '='))) {
			jdec_fail(d, "field '%s%s': invalid key '%s'", d->prefix, key, k);
			strv_free(out);
			return NULL;
		}
		out = strv_push_take(out, xasprintf("%s=%s", k, json_string_value(e)));
	}
	return out ? out : xcalloc(1, sizeof(char *));
}

char **jdec_env(struct jdec *d, const char *key, size_t max)
{
	json_t *v = field(d, key);
	if (!v)
		return NULL;
	if (json_is_object(v))
		return kv_object(d, key, v, max, true);
	if (!json_is_array(v)) {
		type_error(d, key, "an object of strings or an array of \"KEY=VALUE\" strings");
		return NULL;
	}
	char **out = jdec_strv(d, key, max);
	for (char **p = out; p && *p; p++) {
		if (!strchr(*p, '=') || **p == '=') {
			jdec_fail(d, "field '%s%s': '%.100s' is not KEY=VALUE", d->prefix, key, *p);
			strv_free(out);
			return NULL;
		}
	}
	return out;
}

char **jdec_labels(struct jdec *d, const char *key, size_t max)
{
	json_t *v = field(d, key);
	if (!v)
		return NULL;
	if (!json_is_object(v)) {
		type_error(d, key, "an object of strings");
		return NULL;
	}
	return kv_object(d, key, v, max, false);
}

/* A non-negative integer, or a string for parse() ("512m", "10s"). */
static int64_t number_or_string(struct jdec *d, const char *key, int64_t def, const char *what,
				int (*parse)(const char *s, int64_t *out, struct capsa_error **err))
{
	json_t *v = field(d, key);
	if (!v)
		return def;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0) {
			jdec_fail(d, "field '%s%s': must not be negative", d->prefix, key);
			return def;
		}
		return json_integer_value(v);
	}
	if (!json_is_string(v)) {
		type_error(d, key, what);
		return def;
	}
	int64_t out;
	struct capsa_error *e = NULL;
	if (parse(json_string_value(v), &out, &e) < 0) {
		jdec_fail(d, "field '%s%s': %s", d->prefix, key, e->msg);
		capsa_error_free(e);
		return def;
	}
	return out;
}

int64_t jdec_size(struct jdec *d, const char *key, int64_t def)
{
	return number_or_string(d, key, def, "a number of bytes or a size string such as \"512m\"", parse_size);
}

int64_t jdec_duration_ms(struct jdec *d, const char *key, int64_t def)
{
	return number_or_string(d, key, def, "milliseconds or a duration string such as \"10s\"", parse_duration_ms);
}

int64_t jdec_cpus(struct jdec *d, const char *key, int64_t def)
{
	json_t *v = field(d, key);
	if (!v)
		return def;
	if (!json_is_number(v)) {
		type_error(d, key, "a number of cpus");
		return def;
	}
	double c = json_number_value(v);
	if (!(c >= 0) || c > 1e6) {
		jdec_fail(d, "field '%s%s': %g is not a valid number of cpus", d->prefix, key, c);
		return def;
	}
	return (int64_t)(c * 1000 + 0.5);
}

bool jdec_finish(struct jdec *d, bool strict)
{
	if (d->failed)
		return false;
	if (!strict || !d->obj)
		return true;
	const char *k;
	json_t *v;
	json_object_foreach(d->obj, k, v) {
		bool known = false;
		for (size_t i = 0; i < d->n_seen && !known; i++)
			known = strcmp(d->seen[i], k) == 0;
		if (!known) {
			jdec_fail(d, "unknown field '%s%.100s'", d->prefix, k);
			return false;
		}
	}
	return true;
}

json_t *json_strv(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* --- UTF-8 ------------------------------------------------------------- */

char *utf8_sanitize(const char *p, size_t n, size_t *out_len)
{
	struct buf b = BUF_INIT;
	buf_reserve(&b, n + 1);
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		size_t l = utf8_seq(u + i, n - i);
		if (l == 0 || (l == 1 && u[i] == 0)) {
			buf_append(&b, "\xef\xbf\xbd", 3);
			i++;
		} else {
			buf_append(&b, p + i, l);
			i += l;
		}
	}
	*out_len = b.len;
	buf_cstr(&b);
	char *s = buf_steal(&b);
	return s ? s : xstrdup("");
}
