/* registry-parse.c: the registry-specific documents, read without the
 * network: a manifest response against its Content-Type, token responses,
 * error bodies, and whether a host is loopback (the plain-HTTP policy).
 *
 * Every input here is hostile: bodies are size-capped by the caller before
 * they reach these functions, JSON goes through the same size and depth
 * checks as the image documents (oci.h), and nothing here may abort on any
 * input (fuzz/fuzz-registry.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "image/ingest.h"
#include "registry.h"

static void json_decref_p(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(json_decref_p)))

/* Only what oci.h would also accept is parsed here. */
static json_t *load_object(const char *body, size_t len)
{
	if (!body || len > IMAGE_MAX_JSON || !json_depth_ok(body, len, IMAGE_MAX_JSON_DEPTH))
		return NULL;
	json_error_t je;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* --- manifest responses --------------------------------------------------- */

/* Content-Type without parameters, lower-cased. */
static char *mime_base(const char *ct)
{
	while (isspace((unsigned char)*ct))
		ct++;
	size_t n = strcspn(ct, ";");
	while (n > 0 && isspace((unsigned char)ct[n - 1]))
		n--;
	char *r = xstrndup(ct, n);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

int registry_doc_kind(const char *content_type, const char *body, size_t len, enum oci_doc_kind *kind,
		      struct capsa_error **err)
{
	_cleanup_free_ char *ct = content_type && *content_type ? mime_base(content_type) : NULL;
	if (ct && str_has_prefix(ct, "application/vnd.docker.distribution.manifest.v1"))
		return error_set(err, ENOTSUP, "Docker schema 1 manifests are not supported (the image is too old)");
	enum oci_doc_kind k = oci_doc_kind(body, len);
	if (k == OCI_DOC_OTHER) {
		_cleanup_json_ json_t *j = load_object(body, len);
		json_t *sv = json_object_get(j, "schemaVersion");
		if (json_is_integer(sv) && json_integer_value(sv) == 1)
			return error_set(err, ENOTSUP,
					 "Docker schema 1 manifests are not supported (the image is too old)");
		return error_set(err, ENOTSUP, "not an image manifest or index (served as %.100s)",
				 ct ? ct : "no content type");
	}
	enum oci_doc_kind served = OCI_DOC_OTHER;
	if (str_eq(ct, MT_OCI_INDEX) || str_eq(ct, MT_DOCKER_LIST))
		served = OCI_DOC_INDEX;
	else if (str_eq(ct, MT_OCI_MANIFEST) || str_eq(ct, MT_DOCKER_MANIFEST))
		served = OCI_DOC_MANIFEST;
	/* a generic type (application/json) tells nothing; a specific one
	 * must agree with the body */
	if (served != OCI_DOC_OTHER && served != k)
		return error_set(err, EINVAL, "served as %s but the content is %s", ct,
				 k == OCI_DOC_INDEX ? "an index" : "an image manifest");
	*kind = k;
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

/* --- token and error bodies ----------------------------------------------- */

int token_response_parse(const char *body, size_t len, char **token_out, struct capsa_error **err)
{
	_cleanup_json_ json_t *j = load_object(body, len);
	if (!j)
		return error_set(err, EINVAL, "token response: not a JSON object");
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
	_cleanup_json_ json_t *j = load_object(body, len);
	json_t *e = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (!code && !msg)
		return NULL;
	char *r = msg && *msg ? xasprintf("%.200s", msg) : xasprintf("%.64s", code ? code : "");
	sanitize(r);
	return r;
}
