/* multipart.c: multipart/form-data parsing over a file (multipart.h). */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "multipart.h"
#include "util/str.h"

#define WINDOW (64 * 1024)

char *multipart_boundary(const char *ct)
{
	if (!ct || strncasecmp(ct, "multipart/", 10) != 0)
		return NULL;
	const char *p = ct;
	while ((p = strchr(p, ';'))) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		size_t n;
		const char *start = p;
		if (*p == '"') {
			start = ++p;
			const char *q = strchr(p, '"');
			if (!q)
				return NULL;
			n = (size_t)(q - p);
		} else {
			n = strcspn(p, "; \t");
		}
		if (n == 0 || n > 70)
			return NULL;
		return xstrndup(start, n);
	}
	return NULL;
}

static void fail(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Offset of needle at or after from (and before len), or -1; -2 on a read
 * error. */
static int64_t find(int fd, int64_t len, int64_t from, const char *needle, size_t nl)
{
	static_assert(WINDOW > 256, "window holds a delimiter");
	char buf[WINDOW];
	while (from + (int64_t)nl <= len) {
		size_t want = (size_t)MIN((int64_t)sizeof(buf), len - from);
		ssize_t r = pread(fd, buf, want, from);
		if (r <= 0)
			return -2;
		char *hit = memmem(buf, (size_t)r, needle, nl);
		if (hit)
			return from + (hit - buf);
		if ((size_t)r < nl || from + r >= len)
			return -1;
		from += r - (int64_t)(nl - 1);
	}
	return -1;
}

static int read_at(int fd, int64_t off, void *p, size_t n)
{
	ssize_t r = pread(fd, p, n, off);
	return r == (ssize_t)n ? 0 : -1;
}

/* WHATWG's multipart/form-data encoding escapes only these three. */
static char *whatwg_unescape(const char *s, size_t n)
{
	char *o = xmalloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n) {
			if (strncasecmp(s + i, "%0A", 3) == 0) {
				o[j++] = '\n';
				i += 2;
				continue;
			}
			if (strncasecmp(s + i, "%0D", 3) == 0) {
				o[j++] = '\r';
				i += 2;
				continue;
			}
			if (strncmp(s + i, "%22", 3) == 0) {
				o[j++] = '"';
				i += 2;
				continue;
			}
		}
		o[j++] = s[i];
	}
	o[j] = '\0';
	return o;
}

/* The value of param (name or filename) in a Content-Disposition value. */
static char *disposition_param(const char *v, const char *param)
{
	size_t pl = strlen(param);
	const char *p = v;
	while ((p = strchr(p, ';'))) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, param, pl) != 0 || p[pl] != '=')
			continue;
		p += pl + 1;
		if (*p != '"')
			return whatwg_unescape(p, strcspn(p, "; \t\r\n"));
		p++;
		struct buf b = BUF_INIT;
		for (; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			buf_putc(&b, *p);
		}
		if (*p != '"') {
			buf_release(&b);
			return NULL;
		}
		char *raw = buf_steal(&b);
		char *out = whatwg_unescape(raw, strlen(raw));
		free(raw);
		return out;
	}
	return NULL;
}

static void parse_headers(char *h, struct mpart *part)
{
	char *save = NULL;
	for (char *line = strtok_r(h, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (strncasecmp(line, "content-disposition:", 20) != 0)
			continue;
		const char *v = line + 20;
		free(part->name);
		free(part->filename);
		part->name = disposition_param(v, "name");
		part->filename = disposition_param(v, "filename");
	}
}

/* The next delimiter line at or after from: "\r\n--boundary" followed by
 * "--", or by optional spaces and CRLF (RFC 2046).  The same bytes followed
 * by anything else are content.  -1 when there is none. */
static int64_t next_delim(int fd, int64_t len, int64_t from, const char *delim, size_t dl)
{
	for (;;) {
		int64_t p = find(fd, len, from, delim, dl);
		if (p < 0)
			return p;
		int64_t q = p + (int64_t)dl;
		char c[2];
		if (q + 2 <= len && read_at(fd, q, c, 2) == 0 && c[0] == '-' && c[1] == '-')
			return p;
		while (q < len && read_at(fd, q, c, 1) == 0 && (c[0] == ' ' || c[0] == '\t'))
			q++;
		if (q + 2 <= len && read_at(fd, q, c, 2) == 0 && c[0] == '\r' && c[1] == '\n')
			return p;
		from = p + 1;
	}
}

void multipart_free(struct mpart *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].filename);
	}
	free(v);
}

int multipart_parse(int fd, int64_t len, const char *boundary, struct mpart **out, size_t *n, char *err,
		    size_t errlen)
{
	*out = NULL;
	*n = 0;
	char delim[80];
	int dl = snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	const char *dash = delim + 2;
	size_t dashl = (size_t)dl - 2;
	struct mpart *v = NULL;
	size_t count = 0;
	int64_t pos;
	char two[2];

	/* the first delimiter: at the very start, or after a preamble */
	char head[80];
	if (len >= (int64_t)dashl && read_at(fd, 0, head, dashl) == 0 && memcmp(head, dash, dashl) == 0) {
		pos = (int64_t)dashl;
	} else {
		int64_t p = next_delim(fd, len, 0, delim, (size_t)dl);
		if (p < 0) {
			fail(err, errlen, "the body has no multipart delimiter (--%.70s)", boundary);
			goto bad;
		}
		pos = p + dl;
	}
	for (;;) {
		if (pos + 2 > len || read_at(fd, pos, two, 2) < 0) {
			fail(err, errlen, "the multipart body ends inside a delimiter");
			goto bad;
		}
		if (two[0] == '-' && two[1] == '-')
			break; /* the close delimiter; the epilogue is ignored */
		/* transport padding, then CRLF */
		while (pos < len && read_at(fd, pos, two, 1) == 0 && (two[0] == ' ' || two[0] == '\t'))
			pos++;
		if (pos + 2 > len || read_at(fd, pos, two, 2) < 0 || two[0] != '\r' || two[1] != '\n') {
			fail(err, errlen, "a multipart delimiter is not followed by CRLF");
			goto bad;
		}
		pos += 2;
		if (count == MULTIPART_MAX_PARTS) {
			fail(err, errlen, "more than %d parts", MULTIPART_MAX_PARTS);
			goto bad;
		}
		v = xrealloc(v, (count + 1) * sizeof(*v));
		struct mpart *part = &v[count++];
		memset(part, 0, sizeof(*part));
		int64_t data;
		if (pos + 2 <= len && read_at(fd, pos, two, 2) == 0 && two[0] == '\r' && two[1] == '\n') {
			data = pos + 2; /* no headers */
		} else {
			int64_t hend = find(fd, MIN(len, pos + MULTIPART_MAX_HEADERS), pos, "\r\n\r\n", 4);
			if (hend < 0) {
				fail(err, errlen, "a part's headers are longer than %d bytes or unterminated",
				     MULTIPART_MAX_HEADERS);
				goto bad;
			}
			size_t hl = (size_t)(hend - pos);
			char *h = xmalloc(hl + 1);
			if (read_at(fd, pos, h, hl) < 0) {
				free(h);
				fail(err, errlen, "cannot read the request body");
				goto bad;
			}
			h[hl] = '\0';
			if (memchr(h, '\0', hl)) {
				free(h);
				fail(err, errlen, "a part's headers contain a NUL byte");
				goto bad;
			}
			parse_headers(h, part);
			free(h);
			data = hend + 4;
		}
		int64_t next = next_delim(fd, len, data, delim, (size_t)dl);
		if (next < 0) {
			fail(err, errlen, "part %zu has no closing delimiter", count);
			goto bad;
		}
		part->off = data;
		part->len = next - data;
		pos = next + dl;
	}
	*out = v;
	*n = count;
	return 0;
bad:
	multipart_free(v, count);
	return -1;
}
