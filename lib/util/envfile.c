/* envfile.c: docker's --env-file format (envfile.h).  A line that is not
 * KEY=VALUE, KEY, a comment or blank is an error, never dropped or read as
 * something else: `export A=1` must not become a variable named "export A". */
#include <errno.h>
#include <string.h>

#include "envfile.h"
#include "str.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* One line (without its '\n'): 0, or -1 with err. */
static int env_line(const char *path, int lineno, const char *s, size_t n, char *(*lookup)(const char *),
		    char ***env, struct capsa_error **err)
{
	if (memchr(s, '\0', n))
		return error_set(err, EINVAL, "env file %s line %d: contains a NUL byte", path, lineno);
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq((const unsigned char *)s + i, n - i);
		if (l == 0)
			return error_set(err, EINVAL, "env file %s line %d: not valid UTF-8", path, lineno);
		i += l;
	}
	if (n && s[n - 1] == '\r')
		n--;
	while (n && is_space(*s)) {
		s++;
		n--;
	}
	if (n == 0 || *s == '#')
		return 0;
	const char *eq = memchr(s, '=', n);
	size_t klen = eq ? (size_t)(eq - s) : n;
	if (klen == 0)
		return error_set(err, EINVAL, "env file %s line %d: no variable name before '='", path, lineno);
	for (size_t i = 0; i < klen; i++)
		if (s[i] == ' ' || s[i] == '\t')
			return error_set(err, EINVAL,
					 "env file %s line %d: variable name '%.*s' contains white space "
					 "(expected KEY=VALUE or KEY)",
					 path, lineno, (int)MIN(klen, 100), s);
	_cleanup_free_ char *entry = xstrndup(s, n);
	if (eq) {
		*env = strv_push_take(*env, steal_pointer(&entry));
		return 0;
	}
	const char *v = lookup ? lookup(entry) : NULL;
	if (v)
		*env = strv_push_take(*env, xasprintf("%s=%s", entry, v));
	return 0;
}

int envfile_parse(const char *path, const char *data, size_t len, char *(*lookup)(const char *name),
		  char ***env, struct capsa_error **err)
{
	int lineno = 0;
	size_t at = 0;
	while (at < len) {
		const char *nl = memchr(data + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (data + at)) : len - at;
		if (env_line(path, ++lineno, data + at, n, lookup, env, err) < 0)
			return -1;
		at += n + 1;
	}
	return 0;
}
