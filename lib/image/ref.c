/* ref.c: parsing and normalizing image references (see ref.h). */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "image/ingest.h"
#include "image/ref.h"
#include "util/str.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | [-]+ */
static bool path_component_ok(const char *s, size_t n)
{
	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n;) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !is_lower_alnum(s[j]))
			j++;
		size_t len = j - i;
		const char *sep = s + i;
		bool ok = (len == 1 && (sep[0] == '.' || sep[0] == '_' || sep[0] == '-')) ||
			  (len == 2 && sep[0] == '_' && sep[1] == '_');
		if (!ok) {
			ok = true;
			for (size_t k = 0; k < len; k++)
				ok = ok && sep[k] == '-';
		}
		if (!ok)
			return false;
		i = j;
	}
	return true;
}

/* host[:port]: dot-separated [A-Za-z0-9-] labels, or a bracketed IPv6 address. */
static bool domain_ok(const char *s)
{
	const char *colon = NULL;
	const char *end = s + strlen(s);
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb == s + 1)
			return false;
		for (const char *p = s + 1; p < rb; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':')
				return false;
		if (rb[1] == '\0')
			return true;
		if (rb[1] != ':')
			return false;
		colon = rb + 1;
	} else {
		colon = strchr(s, ':');
		const char *host_end = colon ? colon : end;
		if (host_end == s)
			return false;
		const char *label = s;
		for (const char *p = s; p <= host_end; p++) {
			if (p == host_end || *p == '.') {
				if (p == label || label[0] == '-' || p[-1] == '-')
					return false;
				label = p + 1;
				continue;
			}
			if (!isalnum((unsigned char)*p) && *p != '-')
				return false;
		}
	}
	if (colon) {
		if (!colon[1])
			return false;
		for (const char *p = colon + 1; *p; p++)
			if (!isdigit((unsigned char)*p))
				return false;
	}
	return true;
}

static bool tag_ok(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > TAG_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		bool w = isalnum((unsigned char)c) || c == '_';
		if (i == 0 ? !w : !(w || c == '.' || c == '-'))
			return false;
	}
	return true;
}

void image_ref_release(struct image_ref *r)
{
	free(r->domain);
	free(r->path);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

int image_ref_parse(const char *s, struct image_ref *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return error_set(err, EINVAL, "invalid reference '': empty");
	if (strlen(s) > 512)
		return error_set(err, EINVAL, "invalid reference '%.64s...': too long", s);
	_cleanup_free_ char *work = xstrdup(s);
	char *digest = NULL, *tag = NULL;
	char *at = strrchr(work, '@');
	if (at) {
		*at = '\0';
		digest = at + 1;
		if (!digest_valid(digest))
			return error_set(err, EINVAL, "invalid reference '%s': bad digest (want sha256: and 64 lower-case hex digits)", s);
	}
	char *slash = strrchr(work, '/');
	char *colon = strrchr(slash ? slash : work, ':');
	if (colon) {
		*colon = '\0';
		tag = colon + 1;
		if (!tag_ok(tag))
			return error_set(err, EINVAL, "invalid reference '%s': bad tag '%s'", s, tag);
	}
	const char *name = work;
	_cleanup_free_ char *domain = NULL;
	const char *rest = name;
	slash = strchr(name, '/');
	if (slash) {
		size_t dl = (size_t)(slash - name);
		bool has_upper = false;
		for (size_t i = 0; i < dl; i++)
			has_upper = has_upper || isupper((unsigned char)name[i]);
		if (memchr(name, '.', dl) || memchr(name, ':', dl) || (dl == 9 && !strncmp(name, "localhost", 9)) ||
		    has_upper) {
			domain = xstrndup(name, dl);
			rest = slash + 1;
		}
	}
	if (domain && !domain_ok(domain))
		return error_set(err, EINVAL, "invalid reference '%s': bad registry host '%s'", s, domain);
	if (!domain || str_eq(domain, "index.docker.io")) {
		free(domain);
		domain = xstrdup(IMAGE_DEFAULT_DOMAIN);
	}
	if (!*rest)
		return error_set(err, EINVAL, "invalid reference '%s': no repository name", s);
	for (const char *p = rest;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!path_component_ok(p, n)) {
			for (const char *q = rest; *q; q++)
				if (isupper((unsigned char)*q))
					return error_set(err, EINVAL, "invalid reference '%s': repository name must be lower-case", s);
			return error_set(err, EINVAL, "invalid reference '%s': bad repository name component '%.*s'", s,
					 (int)n, p);
		}
		if (!e)
			break;
		p = e + 1;
	}
	_cleanup_free_ char *path = NULL;
	if (str_eq(domain, IMAGE_DEFAULT_DOMAIN) && !strchr(rest, '/'))
		path = xasprintf("library/%s", rest);
	else
		path = xstrdup(rest);
	if (strlen(domain) + 1 + strlen(path) > NAME_MAX_LEN)
		return error_set(err, EINVAL, "invalid reference '%.64s...': name longer than %d characters", s,
				 NAME_MAX_LEN);
	out->domain = steal_pointer(&domain);
	out->path = steal_pointer(&path);
	out->digest = digest ? xstrdup(digest) : NULL;
	out->tag = tag ? xstrdup(tag) : digest ? NULL : xstrdup(IMAGE_DEFAULT_TAG);
	return 0;
}

char *image_ref_repository(const struct image_ref *r)
{
	return xasprintf("%s/%s", r->domain, r->path);
}

char *image_ref_string(const struct image_ref *r)
{
	return xasprintf("%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
			 r->digest ? "@" : "", r->digest ? r->digest : "");
}

int image_ref_normalize(const char *s, char **out, struct capsa_error **err)
{
	struct image_ref r;
	if (image_ref_parse(s, &r, err) < 0)
		return -1;
	*out = image_ref_string(&r);
	image_ref_release(&r);
	return 0;
}
