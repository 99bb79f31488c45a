/* registry-parse.c: reading registry-controlled documents without the
 * network: references, platforms, manifest kinds, index platform selection,
 * manifest descriptors, token responses and error bodies.
 *
 * Every input here is hostile.  Documents are size-capped by the caller
 * before they reach these functions; jansson refuses duplicate keys; counts
 * (layers, index entries) are capped before anything is allocated per
 * entry.  Nothing here may abort on any input (fuzz/fuzz-registry.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "image/ingest.h"
#include "registry.h"

static void json_decref_p(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(json_decref_p)))

/* --- references ----------------------------------------------------------- */

void registry_ref_release(struct registry_ref *r)
{
	free(r->registry);
	free(r->repository);
	free(r->tag);
	free(r->digest);
	free(r->canonical);
	memset(r, 0, sizeof(*r));
}

/* path-component = [a-z0-9]+ (separator [a-z0-9]+)*, separator = . _ __ -+ */
static bool repo_component_valid(const char *s, size_t n)
{
	if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isupper(c))
			return false;
		if (isalnum(c))
			continue;
		if (c == '.' || c == '-')
			continue;
		if (c == '_')
			continue;
		return false;
	}
	return true;
}

static bool tag_valid(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

static bool host_valid(const char *h, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	size_t i = 0;
	if (h[0] == '[') { /* [v6]:port */
		const char *end = memchr(h, ']', n);
		if (!end)
			return false;
		char tmp[64];
		size_t an = (size_t)(end - h - 1);
		struct in6_addr a;
		if (an >= sizeof(tmp))
			return false;
		memcpy(tmp, h + 1, an);
		tmp[an] = '\0';
		if (inet_pton(AF_INET6, tmp, &a) != 1)
			return false;
		i = (size_t)(end - h) + 1;
		if (i == n)
			return true;
		if (h[i] != ':')
			return false;
	} else {
		for (; i < n && h[i] != ':'; i++) {
			unsigned char c = (unsigned char)h[i];
			if (!isalnum(c) && c != '.' && c != '-')
				return false;
		}
		if (i == 0)
			return false;
		if (i == n)
			return true;
	}
	/* ":port" */
	i++;
	if (i == n || n - i > 5)
		return false;
	for (; i < n; i++)
		if (!isdigit((unsigned char)h[i]))
			return false;
	return true;
}

int registry_ref_parse(const char *s, struct registry_ref *out, struct capsa_error **err)
{
	struct registry_ref r = { 0 };
	size_t len = strlen(s);
	if (len == 0 || len > 1024)
		return error_set(err, EINVAL, "reference '%.100s': empty or longer than 1024 bytes", s);
	_cleanup_free_ char *name = xstrdup(s);
	char *at = strchr(name, '@');
	if (at) {
		*at = '\0';
		if (!digest_valid(at + 1))
			return error_set(err, EINVAL, "reference '%s': invalid digest '%s'", s, at + 1);
		r.digest = xstrdup(at + 1);
	}
	/* a tag is after the last ':' that follows the last '/' */
	char *slash = strrchr(name, '/');
	char *colon = strrchr(slash ? slash : name, ':');
	if (colon) {
		*colon = '\0';
		if (!tag_valid(colon + 1)) {
			registry_ref_release(&r);
			return error_set(err, EINVAL, "reference '%s': invalid tag '%s'", s, colon + 1);
		}
		r.tag = xstrdup(colon + 1);
	}
	/* the first component is a registry when it has '.', ':' or is
	 * localhost (docker's rule) */
	char *first_slash = strchr(name, '/');
	const char *repo = name;
	if (first_slash) {
		size_t hn = (size_t)(first_slash - name);
		bool is_host = memchr(name, '.', hn) || memchr(name, ':', hn) ||
			       (hn == 9 && memcmp(name, "localhost", 9) == 0) || name[0] == '[';
		if (is_host) {
			if (!host_valid(name, hn)) {
				registry_ref_release(&r);
				return error_set(err, EINVAL, "reference '%s': invalid registry '%.*s'", s, (int)hn,
						 name);
			}
			r.registry = xstrndup(name, hn);
			for (char *p = r.registry; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			repo = first_slash + 1;
		}
	}
	if (!r.registry)
		r.registry = xstrdup("docker.io");
	if (str_eq(r.registry, "index.docker.io") || str_eq(r.registry, "registry-1.docker.io")) {
		free(r.registry);
		r.registry = xstrdup("docker.io");
	}
	if (str_eq(r.registry, "docker.io") && !strchr(repo, '/'))
		r.repository = xasprintf("library/%s", repo);
	else
		r.repository = xstrdup(repo);
	/* validate each path component; the whole name is capped at 255 */
	const char *p = r.repository;
	bool ok = strlen(p) <= 255;
	while (ok) {
		size_t n = strcspn(p, "/");
		ok = repo_component_valid(p, n);
		if (!p[n])
			break;
		p += n + 1;
	}
	if (!ok) {
		int rc = error_set(err, EINVAL, "reference '%s': invalid repository name '%s'", s, r.repository);
		registry_ref_release(&r);
		return rc;
	}
	if (!r.tag && !r.digest)
		r.tag = xstrdup("latest");
	if (r.digest)
		r.canonical = r.tag ? xasprintf("%s/%s:%s@%s", r.registry, r.repository, r.tag, r.digest)
				    : xasprintf("%s/%s@%s", r.registry, r.repository, r.digest);
	else
		r.canonical = xasprintf("%s/%s:%s", r.registry, r.repository, r.tag);
	*out = r;
	return 0;
}

bool host_is_loopback(const char *hostport)
{
	char host[256];
	const char *h = hostport;
	size_t n;
	if (h[0] == '[') {
		const char *end = strchr(h, ']');
		if (!end)
			return false;
		h++;
		n = (size_t)(end - h);
	} else {
		const char *c = strchr(h, ':');
		/* a bare IPv6 address has several colons */
		n = c && !strchr(c + 1, ':') ? (size_t)(c - h) : strlen(h);
	}
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return true;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	struct in6_addr a6;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* --- platforms ------------------------------------------------------------ */

void platform_release(struct platform *p)
{
	free(p->os);
	free(p->arch);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

static const char *arch_alias(const char *a)
{
	static const char *const aliases[][2] = {
		{ "x86_64", "amd64" }, { "x86-64", "amd64" }, { "aarch64", "arm64" },
		{ "armhf", "arm" },    { "armel", "arm" },	{ "i686", "386" },
		{ "i386", "386" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
		if (str_eq(a, aliases[i][0]))
			return aliases[i][1];
	return a;
}

static bool platform_word_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

int platform_parse(const char *s, struct platform *out, struct capsa_error **err)
{
	_cleanup_strv_ char **parts = strv_split(s, '/');
	size_t n = strv_len(parts);
	if (n < 2 || n > 3)
		return error_set(err, EINVAL, "platform '%.100s': expected os/arch[/variant]", s);
	for (size_t i = 0; i < n; i++)
		if (!platform_word_valid(parts[i]))
			return error_set(err, EINVAL, "platform '%.100s': invalid component '%.40s'", s, parts[i]);
	struct platform p = { 0 };
	p.os = xstrdup(parts[0]);
	for (char *c = p.os; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	p.arch = xstrdup(arch_alias(parts[1]));
	if (str_eq(parts[1], "armhf"))
		p.variant = xstrdup("v7");
	else if (str_eq(parts[1], "armel"))
		p.variant = xstrdup("v6");
	if (n == 3) {
		free(p.variant);
		p.variant = xstrdup(parts[2]);
	}
	*out = p;
	return 0;
}

char *platform_format(const struct platform *p)
{
	if (p->variant && *p->variant)
		return xasprintf("%s/%s/%s", p->os, p->arch, p->variant);
	return xasprintf("%s/%s", p->os, p->arch);
}

/* --- manifests ------------------------------------------------------------ */

void descriptor_release(struct descriptor *d)
{
	free(d->media_type);
	free(d->digest);
	memset(d, 0, sizeof(*d));
}

static json_t *load_object(const char *body, size_t len, const char *what, struct capsa_error **err)
{
	json_error_t je;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		error_set(err, EINVAL, "%s: invalid JSON: %.200s", what, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		error_set(err, EINVAL, "%s: not a JSON object", what);
		return NULL;
	}
	return j;
}

/* Content-Type without parameters, lower-cased. */
static char *mime_base(const char *ct)
{
	size_t n = strcspn(ct, ";");
	while (n > 0 && isspace((unsigned char)ct[n - 1]))
		n--;
	while (n > 0 && isspace((unsigned char)*ct)) {
		ct++;
		n--;
	}
	char *r = xstrndup(ct, n);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static int kind_of(const char *mt, enum manifest_kind *kind)
{
	if (str_eq(mt, MT_OCI_INDEX) || str_eq(mt, MT_DOCKER_LIST))
		*kind = MANIFEST_INDEX;
	else if (str_eq(mt, MT_OCI_MANIFEST) || str_eq(mt, MT_DOCKER_MANIFEST))
		*kind = MANIFEST_IMAGE;
	else
		return -1;
	return 0;
}

int manifest_kind(const char *content_type, const char *body, size_t len, enum manifest_kind *kind,
		  char **media_type_out, struct capsa_error **err)
{
	_cleanup_json_ json_t *j = load_object(body, len, "manifest", err);
	if (!j)
		return -1;
	json_t *sv = json_object_get(j, "schemaVersion");
	if (sv && json_integer_value(sv) == 1)
		return error_set(err, ENOTSUP, "manifest: docker schema 1 is not supported (the image is too old)");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return error_set(err, EINVAL, "manifest: schemaVersion is not 2");
	const char *body_mt = json_string_value(json_object_get(j, "mediaType"));
	_cleanup_free_ char *ct = content_type && *content_type ? mime_base(content_type) : NULL;
	/* a registry that does not know the type answers with a generic one */
	if (ct && (str_eq(ct, "application/json") || str_eq(ct, "application/octet-stream") ||
		   str_eq(ct, "text/plain"))) {
		free(ct);
		ct = NULL;
	}
	if (ct && str_has_prefix(ct, "application/vnd.docker.distribution.manifest.v1"))
		return error_set(err, ENOTSUP, "manifest: docker schema 1 is not supported (the image is too old)");
	const char *mt = ct ? ct : body_mt;
	enum manifest_kind k;
	if (!mt) {
		/* OCI allows mediaType to be absent: go by the shape */
		bool has_manifests = json_object_get(j, "manifests") != NULL;
		bool has_layers = json_object_get(j, "layers") != NULL || json_object_get(j, "config") != NULL;
		if (has_manifests == has_layers)
			return error_set(err, EINVAL, "manifest: cannot tell an index from an image manifest");
		mt = has_manifests ? MT_OCI_INDEX : MT_OCI_MANIFEST;
	}
	if (kind_of(mt, &k) < 0)
		return error_set(err, ENOTSUP, "manifest: unsupported media type '%.100s'", mt);
	if (body_mt) {
		enum manifest_kind bk;
		if (kind_of(body_mt, &bk) < 0 || bk != k)
			return error_set(err, EINVAL, "manifest: served as %s but its mediaType is '%.100s'", mt,
					 body_mt);
	}
	/* the shape must agree with the type whatever the headers said */
	if ((k == MANIFEST_INDEX) != (json_object_get(j, "manifests") != NULL))
		return error_set(err, EINVAL, "manifest: content does not match media type %s", mt);
	*kind = k;
	if (media_type_out)
		*media_type_out = xstrdup(mt);
	return 0;
}

static int descriptor_from_json(json_t *d, const char *what, struct descriptor *out, struct capsa_error **err)
{
	if (!json_is_object(d))
		return error_set(err, EINVAL, "%s: not an object", what);
	const char *digest = json_string_value(json_object_get(d, "digest"));
	json_t *size = json_object_get(d, "size");
	const char *mt = json_string_value(json_object_get(d, "mediaType"));
	if (!digest || !digest_valid(digest))
		return error_set(err, EINVAL, "%s: missing or unsupported digest '%.100s'", what,
				 digest ? digest : "");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return error_set(err, EINVAL, "%s %s: missing or negative size", what, digest);
	out->digest = xstrdup(digest);
	out->size = json_integer_value(size);
	out->media_type = xstrdup(mt ? mt : "");
	return 0;
}

static bool variant_matches(const struct platform *want, const char *arch, const char *variant)
{
	if (!want->variant)
		return true;
	if (str_eq(want->variant, variant ? variant : ""))
		return true;
	/* arm64's only variant is v8: absent and "v8" are the same */
	if (str_eq(arch, "arm64")) {
		bool w8 = !*want->variant || str_eq(want->variant, "v8");
		bool v8 = !variant || !*variant || str_eq(variant, "v8");
		return w8 && v8;
	}
	return false;
}

/* Lower is better among matching entries when no variant was asked for. */
static int variant_rank(const char *arch, const char *variant)
{
	if (!variant || !*variant)
		return 0;
	if (str_eq(arch, "arm64") && str_eq(variant, "v8"))
		return 0;
	if (str_eq(arch, "arm") && str_eq(variant, "v7"))
		return 1;
	return 2;
}

int index_select(const char *body, size_t len, const struct platform *want, struct descriptor *out,
		 char **platform_out, struct capsa_error **err)
{
	_cleanup_json_ json_t *j = load_object(body, len, "index", err);
	if (!j)
		return -1;
	json_t *m = json_object_get(j, "manifests");
	if (!json_is_array(m))
		return error_set(err, EINVAL, "index: \"manifests\" is not an array");
	size_t n = json_array_size(m);
	if (n > REGISTRY_MAX_INDEX_ENTRIES)
		return error_set(err, E2BIG, "index: %zu entries, more than %d", n, REGISTRY_MAX_INDEX_ENTRIES);
	json_t *best = NULL;
	int best_rank = 1 << 30;
	struct buf avail = BUF_INIT;
	avail.cap = 4096;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(m, i);
		json_t *p = json_object_get(e, "platform");
		const char *os = json_string_value(json_object_get(p, "os"));
		const char *arch = json_string_value(json_object_get(p, "architecture"));
		const char *variant = json_string_value(json_object_get(p, "variant"));
		const char *mt = json_string_value(json_object_get(e, "mediaType"));
		if (!os || !arch)
			continue;
		/* attestation manifests carry unknown/unknown */
		if (str_eq(os, "unknown"))
			continue;
		if (mt && !(str_eq(mt, MT_OCI_MANIFEST) || str_eq(mt, MT_DOCKER_MANIFEST)))
			continue;
		if (avail.len < 3000)
			buf_appendf(&avail, "%s%.32s/%.32s%s%.32s", avail.len ? ", " : "", os, arch,
				    variant && *variant ? "/" : "", variant ? variant : "");
		if (!str_eq(os, want->os) || !str_eq(arch_alias(arch), want->arch) ||
		    !variant_matches(want, arch_alias(arch), variant))
			continue;
		int rank = variant_rank(arch_alias(arch), variant);
		if (!best || rank < best_rank) {
			best = e;
			best_rank = rank;
		}
	}
	if (!best) {
		_cleanup_free_ char *w = platform_format(want);
		int rc = error_set(err, ENOENT, "no manifest for platform %s in the index (it has: %s)", w,
				   avail.len ? buf_cstr(&avail) : "nothing usable");
		buf_release(&avail);
		return rc;
	}
	buf_release(&avail);
	if (descriptor_from_json(best, "index entry", out, err) < 0)
		return -1;
	if (platform_out) {
		json_t *p = json_object_get(best, "platform");
		struct platform got = {
			.os = (char *)json_string_value(json_object_get(p, "os")),
			.arch = (char *)arch_alias(json_string_value(json_object_get(p, "architecture"))),
			.variant = (char *)json_string_value(json_object_get(p, "variant")),
		};
		*platform_out = platform_format(&got);
	}
	return 0;
}

void manifest_blobs_release(struct manifest_blobs *m)
{
	descriptor_release(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		descriptor_release(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

int manifest_blobs_parse(const char *body, size_t len, struct manifest_blobs *out, struct capsa_error **err)
{
	_cleanup_json_ json_t *j = load_object(body, len, "manifest", err);
	if (!j)
		return -1;
	json_t *layers = json_object_get(j, "layers");
	if (!json_is_array(layers))
		return error_set(err, EINVAL, "manifest: \"layers\" is not an array");
	size_t n = json_array_size(layers);
	if (n > REGISTRY_MAX_LAYERS)
		return error_set(err, E2BIG, "manifest: %zu layers, more than %d", n, REGISTRY_MAX_LAYERS);
	struct manifest_blobs m = { 0 };
	if (descriptor_from_json(json_object_get(j, "config"), "config", &m.config, err) < 0)
		return -1;
	m.layers = xcalloc(n ? n : 1, sizeof(*m.layers));
	for (size_t i = 0; i < n; i++) {
		if (descriptor_from_json(json_array_get(layers, i), "layer", &m.layers[i], err) < 0) {
			manifest_blobs_release(&m);
			return -1;
		}
		m.n_layers++;
	}
	*out = m;
	return 0;
}

/* --- token and error bodies ----------------------------------------------- */

int token_response_parse(const char *body, size_t len, char **token_out, struct capsa_error **err)
{
	_cleanup_json_ json_t *j = load_object(body, len, "token response", err);
	if (!j)
		return -1;
	const char *t = json_string_value(json_object_get(j, "token"));
	if (!t || !*t)
		t = json_string_value(json_object_get(j, "access_token"));
	if (!t || !*t)
		return error_set(err, EINVAL, "token response: no token");
	size_t n = strlen(t);
	if (n > REGISTRY_TOKEN_LEN_MAX)
		return error_set(err, E2BIG, "token response: token longer than %d bytes", REGISTRY_TOKEN_LEN_MAX);
	/* it goes into a header line: printable ASCII without spaces only */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return error_set(err, EINVAL, "token response: token has a character not allowed in a header");
	*token_out = xstrdup(t);
	return 0;
}

static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = ' ';
}

char *registry_error_parse(const char *body, size_t len)
{
	if (!body || len == 0)
		return NULL;
	json_error_t je;
	_cleanup_json_ json_t *j = json_loadb(body, len, 0, &je);
	json_t *e = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (!code && !msg)
		return NULL;
	char *r = msg && *msg ? xasprintf("%.200s", msg) : xasprintf("%.64s", code ? code : "");
	sanitize(r);
	return r;
}
