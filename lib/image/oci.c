/* oci.c: the image JSON parsers (index, manifest, config).  See oci.h for
 * the hostile-input rules; nothing here touches the store. */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "image/ingest.h"
#include "image/oci.h"
#include "util/str.h"

bool json_depth_ok(const char *p, size_t n, int max)
{
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return false;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return true;
}

json_t *json_load_object(const char *what, const char *text, size_t len, size_t max_len, int max_depth,
			 struct capsa_error **err)
{
	if (len > max_len) {
		error_set(err, EFBIG, "%s: %zu bytes, more than the %zu allowed", what, len, max_len);
		return NULL;
	}
	if (!json_depth_ok(text, len, max_depth)) {
		error_set(err, EINVAL, "%s: nested more than %d levels deep", what, max_depth);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		error_set(err, EINVAL, "%s: invalid JSON at line %d column %d: %s", what, je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		error_set(err, EINVAL, "%s: not a JSON object", what);
		return NULL;
	}
	return j;
}

/* Loads a document after the size and depth checks. */
static json_t *load(const char *what, const char *text, size_t len, struct capsa_error **err)
{
	return json_load_object(what, text, len, IMAGE_MAX_JSON, IMAGE_MAX_JSON_DEPTH, err);
}

/* Optional string member: NULL when absent or null; error when another type. */
static int get_str(json_t *o, const char *key, const char *what, char **out, struct capsa_error **err)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return error_set(err, EINVAL, "%s: %s: not a string", what, key);
	*out = xstrdup(json_string_value(v));
	return 0;
}

/* Optional array of strings: NULL when absent or null. */
static int get_strv(json_t *o, const char *key, const char *what, size_t *budget, char ***out,
		    struct capsa_error **err)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return error_set(err, EINVAL, "%s: %s: not an array of strings", what, key);
	size_t n = json_array_size(v);
	if (n > *budget)
		return error_set(err, E2BIG, "%s: %s: %zu strings, more than allowed", what, key, n);
	*budget -= n;
	char **r = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(v, i);
		if (!json_is_string(s)) {
			strv_free(r);
			return error_set(err, EINVAL, "%s: %s[%zu]: not a string", what, key, i);
		}
		r[i] = xstrdup(json_string_value(s));
	}
	*out = r;
	return 0;
}

enum layer_compression layer_media_compression(const char *mt)
{
	static const struct {
		const char *mt;
		enum layer_compression c;
	} known[] = {
		{ MT_OCI_LAYER, LAYER_PLAIN },
		{ MT_OCI_LAYER_GZIP, LAYER_GZIP },
		{ MT_OCI_LAYER_ZSTD, LAYER_ZSTD },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", LAYER_PLAIN },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LAYER_GZIP },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LAYER_ZSTD },
		{ MT_DOCKER_LAYER_GZIP, LAYER_GZIP },
		{ "application/vnd.docker.image.rootfs.diff.tar", LAYER_PLAIN },
		{ "application/vnd.docker.image.rootfs.diff.tar.zstd", LAYER_ZSTD },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LAYER_GZIP },
	};
	for (size_t i = 0; mt && i < ARRAY_SIZE(known); i++)
		if (str_eq(mt, known[i].mt))
			return known[i].c;
	return LAYER_UNKNOWN;
}

void oci_descriptor_release(struct oci_descriptor *d)
{
	free(d->media_type);
	free(d->digest);
	free(d->os);
	free(d->arch);
	free(d->variant);
	free(d->ref_name);
	memset(d, 0, sizeof(*d));
}

static int parse_descriptor(json_t *o, const char *what, struct oci_descriptor *d, struct capsa_error **err)
{
	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		return error_set(err, EINVAL, "%s: not an object", what);
	if (get_str(o, "mediaType", what, &d->media_type, err) < 0 || get_str(o, "digest", what, &d->digest, err) < 0)
		return -1;
	if (!d->digest)
		return error_set(err, EINVAL, "%s: digest missing", what);
	if (!digest_valid(d->digest))
		return error_set(err, EINVAL, "%s: invalid digest '%.80s' (want sha256: and 64 lower-case hex digits)",
				 what, d->digest);
	json_t *sz = json_object_get(o, "size");
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return error_set(err, EINVAL, "%s: size missing or negative", what);
	d->size = json_integer_value(sz);
	return 0;
}

enum oci_doc_kind oci_doc_kind(const char *text, size_t len)
{
	if (len > IMAGE_MAX_JSON || !json_depth_ok(text, len, IMAGE_MAX_JSON_DEPTH))
		return OCI_DOC_OTHER;
	json_t *j = json_loadb(text, len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return OCI_DOC_OTHER;
	}
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	enum oci_doc_kind k = OCI_DOC_OTHER;
	if (str_eq(mt, MT_OCI_INDEX) || str_eq(mt, MT_DOCKER_LIST))
		k = OCI_DOC_INDEX;
	else if (str_eq(mt, MT_OCI_MANIFEST) || str_eq(mt, MT_DOCKER_MANIFEST))
		k = OCI_DOC_MANIFEST;
	else if (!mt && json_is_array(json_object_get(j, "manifests")))
		k = OCI_DOC_INDEX;
	else if (!mt && json_is_object(json_object_get(j, "config")))
		k = OCI_DOC_MANIFEST;
	json_decref(j);
	return k;
}

static int check_schema_version(json_t *j, const char *what, struct capsa_error **err)
{
	json_t *v = json_object_get(j, "schemaVersion");
	if (!json_is_integer(v))
		return error_set(err, EINVAL, "%s: schemaVersion missing", what);
	if (json_integer_value(v) != 2)
		return error_set(err, ENOTSUP, "%s: schemaVersion %lld is not supported (only 2)", what,
				 (long long)json_integer_value(v));
	return 0;
}

void oci_index_release(struct oci_index *x)
{
	for (size_t i = 0; i < x->n; i++)
		oci_descriptor_release(&x->manifests[i]);
	free(x->manifests);
	free(x->media_type);
	memset(x, 0, sizeof(*x));
}

int oci_index_parse(const char *text, size_t len, struct oci_index *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	json_t *j = load("index", text, len, err);
	if (!j)
		return -1;
	int rc = -1;
	if (check_schema_version(j, "index", err) < 0 || get_str(j, "mediaType", "index", &out->media_type, err) < 0)
		goto out;
	if (out->media_type && !str_eq(out->media_type, MT_OCI_INDEX) && !str_eq(out->media_type, MT_DOCKER_LIST)) {
		error_set(err, ENOTSUP, "index: media type %s is not an image index", out->media_type);
		goto out;
	}
	json_t *ms = json_object_get(j, "manifests");
	if (!json_is_array(ms)) {
		error_set(err, EINVAL, "index: manifests missing");
		goto out;
	}
	size_t n = json_array_size(ms);
	if (n > OCI_MAX_INDEX_ENTRIES) {
		error_set(err, E2BIG, "index: %zu manifests, more than the %d allowed", n, OCI_MAX_INDEX_ENTRIES);
		goto out;
	}
	out->manifests = xcalloc(n ? n : 1, sizeof(*out->manifests));
	for (size_t i = 0; i < n; i++) {
		char what[64];
		snprintf(what, sizeof(what), "index: manifests[%zu]", i);
		json_t *e = json_array_get(ms, i);
		struct oci_descriptor *d = &out->manifests[i];
		out->n = i + 1;
		if (parse_descriptor(e, what, d, err) < 0)
			goto out;
		json_t *p = json_object_get(e, "platform");
		if (json_is_object(p)) {
			if (get_str(p, "os", what, &d->os, err) < 0 ||
			    get_str(p, "architecture", what, &d->arch, err) < 0 ||
			    get_str(p, "variant", what, &d->variant, err) < 0)
				goto out;
		}
		json_t *a = json_object_get(e, "annotations");
		if (json_is_object(a) && get_str(a, "org.opencontainers.image.ref.name", what, &d->ref_name, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(j);
	if (rc < 0)
		oci_index_release(out);
	return rc;
}

int platform_parse(const char *s, char **os, char **arch, char **variant, struct capsa_error **err)
{
	_cleanup_strv_ char **parts = strv_split(s ? s : "linux/amd64", '/');
	size_t n = strv_len(parts);
	if (n < 2 || n > 3 || !*parts[0] || !*parts[1] || (n == 3 && !*parts[2]))
		return error_set(err, EINVAL, "invalid platform '%s': want OS/ARCH[/VARIANT]", s);
	*os = xstrdup(parts[0]);
	*arch = xstrdup(parts[1]);
	*variant = n == 3 ? xstrdup(parts[2]) : NULL;
	return 0;
}

int oci_index_select(const struct oci_index *x, const char *platform, struct capsa_error **err)
{
	_cleanup_free_ char *os = NULL, *arch = NULL, *variant = NULL;
	if (platform_parse(platform, &os, &arch, &variant, err) < 0)
		return -1;
	if (x->n == 1 && !x->manifests[0].os && !x->manifests[0].arch)
		return 0;
	int found = -1;
	for (size_t i = 0; i < x->n; i++) {
		const struct oci_descriptor *d = &x->manifests[i];
		if (!str_eq(d->os, os) || !str_eq(d->arch, arch))
			continue;
		if (variant && d->variant && !str_eq(variant, d->variant))
			continue;
		/* prefer an exact variant match, else the first entry */
		if (found < 0 || (variant && str_eq(variant, d->variant)))
			found = (int)i;
	}
	if (found >= 0)
		return found;
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < x->n; i++) {
		const struct oci_descriptor *d = &x->manifests[i];
		if (!d->os && !d->arch)
			continue;
		buf_appendf(&b, "%s%s/%s%s%s", b.len ? ", " : "", d->os ? d->os : "?", d->arch ? d->arch : "?",
			    d->variant ? "/" : "", d->variant ? d->variant : "");
		if (b.len > 400)
			break;
	}
	error_set(err, ENOENT, "no image for platform %s in the index (it has: %s)", platform ? platform : "linux/amd64",
		  b.len ? buf_cstr(&b) : "no platform entries");
	buf_release(&b);
	return -1;
}

void oci_manifest_release(struct oci_manifest *m)
{
	oci_descriptor_release(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		oci_descriptor_release(&m->layers[i]);
	free(m->layers);
	free(m->media_type);
	memset(m, 0, sizeof(*m));
}

int oci_manifest_parse(const char *text, size_t len, struct oci_manifest *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	json_t *j = load("manifest", text, len, err);
	if (!j)
		return -1;
	int rc = -1;
	json_t *sv = json_object_get(j, "schemaVersion");
	if (json_is_integer(sv) && json_integer_value(sv) == 1) {
		error_set(err, ENOTSUP, "manifest: Docker schema 1 manifests are not supported");
		goto out;
	}
	if (check_schema_version(j, "manifest", err) < 0 || get_str(j, "mediaType", "manifest", &out->media_type, err) < 0)
		goto out;
	if (!out->media_type) {
		out->media_type = xstrdup(MT_OCI_MANIFEST);
	} else if (!str_eq(out->media_type, MT_OCI_MANIFEST) && !str_eq(out->media_type, MT_DOCKER_MANIFEST)) {
		error_set(err, ENOTSUP, "manifest: media type %s is not an image manifest", out->media_type);
		goto out;
	}
	if (parse_descriptor(json_object_get(j, "config"), "manifest: config", &out->config, err) < 0)
		goto out;
	if (out->config.media_type && !str_eq(out->config.media_type, MT_OCI_CONFIG) &&
	    !str_eq(out->config.media_type, MT_DOCKER_CONFIG)) {
		error_set(err, ENOTSUP, "manifest: config media type %s is not an image config (an artifact?)",
			  out->config.media_type);
		goto out;
	}
	if (out->config.size > (int64_t)IMAGE_MAX_JSON) {
		error_set(err, EFBIG, "manifest: config of %lld bytes, more than the %u allowed",
			  (long long)out->config.size, IMAGE_MAX_JSON);
		goto out;
	}
	json_t *ls = json_object_get(j, "layers");
	if (!json_is_array(ls)) {
		error_set(err, EINVAL, "manifest: layers missing");
		goto out;
	}
	size_t n = json_array_size(ls);
	if (n > IMAGE_MAX_LAYERS) {
		error_set(err, E2BIG, "manifest names %zu layers, more than the %d allowed", n, IMAGE_MAX_LAYERS);
		goto out;
	}
	if (n == 0) {
		error_set(err, EINVAL, "manifest: no layers");
		goto out;
	}
	out->layers = xcalloc(n, sizeof(*out->layers));
	for (size_t i = 0; i < n; i++) {
		char what[64];
		snprintf(what, sizeof(what), "manifest: layers[%zu]", i);
		out->n_layers = i + 1;
		struct oci_descriptor *d = &out->layers[i];
		if (parse_descriptor(json_array_get(ls, i), what, d, err) < 0)
			goto out;
		if (!d->media_type || layer_media_compression(d->media_type) == LAYER_UNKNOWN) {
			error_set(err, ENOTSUP, "%s: media type %s is not a supported layer type", what,
				  d->media_type ? d->media_type : "(none)");
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(j);
	if (rc < 0)
		oci_manifest_release(out);
	return rc;
}

void image_config_release(struct image_config *c)
{
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	strv_free(c->env);
	strv_free(c->exposed_ports);
	strv_free(c->labels);
	free(c->working_dir);
	free(c->user);
	free(c->stop_signal);
	free(c->os);
	free(c->architecture);
	free(c->variant);
	free(c->created);
	strv_free(c->diff_ids);
	memset(c, 0, sizeof(*c));
}

/* Object of strings -> "key=value" vector (labels), or keys only (ports). */
static int get_keys(json_t *o, const char *key, bool with_values, size_t *budget, char ***out,
		    struct capsa_error **err)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return error_set(err, EINVAL, "config: %s: not an object", key);
	size_t n = json_object_size(v);
	if (n > *budget)
		return error_set(err, E2BIG, "config: %s: %zu entries, more than allowed", key, n);
	*budget -= n;
	char **r = xcalloc(n + 1, sizeof(char *));
	size_t i = 0;
	const char *k;
	json_t *val;
	json_object_foreach(v, k, val)
	{
		if (with_values) {
			if (!json_is_string(val)) {
				strv_free(r);
				return error_set(err, EINVAL, "config: %s: %.80s: not a string", key, k);
			}
			r[i++] = xasprintf("%s=%s", k, json_string_value(val));
		} else {
			r[i++] = xstrdup(k);
		}
	}
	*out = r;
	return 0;
}

int image_config_parse(const char *text, size_t len, struct image_config *c, struct capsa_error **err)
{
	memset(c, 0, sizeof(*c));
	json_t *j = load("config", text, len, err);
	if (!j)
		return -1;
	int rc = -1;
	size_t budget = OCI_MAX_STRINGS;
	if (get_str(j, "os", "config", &c->os, err) < 0 || get_str(j, "architecture", "config", &c->architecture, err) < 0 ||
	    get_str(j, "variant", "config", &c->variant, err) < 0 || get_str(j, "created", "config", &c->created, err) < 0)
		goto out;
	json_t *cfg = json_object_get(j, "config");
	if (cfg && !json_is_null(cfg)) {
		if (!json_is_object(cfg)) {
			error_set(err, EINVAL, "config: config: not an object");
			goto out;
		}
		if (get_strv(cfg, "Entrypoint", "config", &budget, &c->entrypoint, err) < 0 ||
		    get_strv(cfg, "Cmd", "config", &budget, &c->cmd, err) < 0 ||
		    get_strv(cfg, "Env", "config", &budget, &c->env, err) < 0 ||
		    get_str(cfg, "WorkingDir", "config", &c->working_dir, err) < 0 ||
		    get_str(cfg, "User", "config", &c->user, err) < 0 ||
		    get_str(cfg, "StopSignal", "config", &c->stop_signal, err) < 0 ||
		    get_keys(cfg, "ExposedPorts", false, &budget, &c->exposed_ports, err) < 0 ||
		    get_keys(cfg, "Labels", true, &budget, &c->labels, err) < 0)
			goto out;
		for (size_t i = 0; c->env && c->env[i]; i++) {
			if (!strchr(c->env[i], '=') || c->env[i][0] == '=') {
				error_set(err, EINVAL, "config: Env[%zu]: '%.80s' is not KEY=value", i, c->env[i]);
				goto out;
			}
		}
	}
	json_t *rootfs = json_object_get(j, "rootfs");
	if (!json_is_object(rootfs)) {
		error_set(err, EINVAL, "config: rootfs missing");
		goto out;
	}
	if (!str_eq(json_string_value(json_object_get(rootfs, "type")), "layers")) {
		error_set(err, EINVAL, "config: rootfs.type is not \"layers\"");
		goto out;
	}
	json_t *ids = json_object_get(rootfs, "diff_ids");
	if (!json_is_array(ids)) {
		error_set(err, EINVAL, "config: rootfs.diff_ids missing");
		goto out;
	}
	size_t n = json_array_size(ids);
	if (n > IMAGE_MAX_LAYERS) {
		error_set(err, E2BIG, "config names %zu layers, more than the %d allowed", n, IMAGE_MAX_LAYERS);
		goto out;
	}
	c->diff_ids = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(ids, i));
		if (!s || !digest_valid(s)) {
			error_set(err, EINVAL, "config: rootfs.diff_ids[%zu]: invalid digest", i);
			goto out;
		}
		c->diff_ids[i] = xstrdup(s);
		c->n_diff_ids = i + 1;
	}
	rc = 0;
out:
	json_decref(j);
	if (rc < 0)
		image_config_release(c);
	return rc;
}
