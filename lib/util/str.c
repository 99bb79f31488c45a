/* str.c: strings, vectors, capped buffers and value parsers. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "str.h"

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		abort();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		abort();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		abort();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		abort();
	va_end(ap);
	return p;
}

bool str_has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

char **strv_dup(char *const *v)
{
	size_t n = strv_len(v);
	char **r = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

char **strv_push_take(char **v, char *s)
{
	size_t n = strv_len(v);
	v = xrealloc(v, (n + 2) * sizeof(char *));
	v[n] = s;
	v[n + 1] = NULL;
	return v;
}

char **strv_push(char **v, const char *s)
{
	return strv_push_take(v, xstrdup(s));
}

bool strv_contains(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

char **strv_split(const char *s, char sep)
{
	char **v = xcalloc(1, sizeof(char *));
	const char *p = s;
	for (;;) {
		const char *e = strchr(p, sep);
		if (!e) {
			v = strv_push_take(v, xstrdup(p));
			break;
		}
		v = strv_push_take(v, xstrndup(p, (size_t)(e - p)));
		p = e + 1;
	}
	return v;
}

void buf_release(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1) {
		errno = EFBIG;
		return -1;
	}
	size_t need = b->len + extra + 1;
	if (b->cap && need > b->cap + 1) {
		errno = EFBIG;
		return -1;
	}
	if (need <= b->alloc)
		return 0;
	size_t n = b->alloc ? b->alloc : 64;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	if (b->cap && n > b->cap + 1)
		n = b->cap + 1;
	b->data = xrealloc(b->data, n);
	b->alloc = n;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

const char *buf_cstr(struct buf *b)
{
	if (!b->data && buf_reserve(b, 0) < 0)
		return "";
	/* reserve and consume do not terminate: do it here */
	b->data[b->len] = '\0';
	return b->data;
}

char *buf_steal(struct buf *b)
{
	buf_cstr(b);
	char *p = b->data;
	b->data = NULL;
	b->len = b->alloc = 0;
	return p;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int parse_size(const char *s, int64_t *out, struct capsa_error **err)
{
	static const struct {
		const char *suffix;
		int shift;
	} units[] = {
		{ "", 0 },	{ "b", 0 },    { "k", 10 },   { "kb", 10 }, { "kib", 10 },
		{ "m", 20 },	{ "mb", 20 },  { "mib", 20 }, { "g", 30 },  { "gb", 30 },
		{ "gib", 30 },	{ "t", 40 },   { "tb", 40 },  { "tib", 40 },
	};
	if (!s || !*s)
		return error_set(err, EINVAL, "invalid size '': empty");
	const char *p = s;
	while (isdigit((unsigned char)*p) || *p == '.')
		p++;
	if (p == s)
		return error_set(err, EINVAL, "invalid size '%s': expected a number with an optional unit (k, m, g, t)", s);
	char num[64];
	if ((size_t)(p - s) >= sizeof(num))
		return error_set(err, EINVAL, "invalid size '%s': number too long", s);
	memcpy(num, s, (size_t)(p - s));
	num[p - s] = '\0';
	char unit[8];
	size_t ul = strlen(p);
	if (ul >= sizeof(unit))
		return error_set(err, EINVAL, "invalid size '%s': unknown unit '%s'", s, p);
	for (size_t i = 0; i <= ul; i++)
		unit[i] = (char)tolower((unsigned char)p[i]);
	int shift = -1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (strcmp(unit, units[i].suffix) == 0)
			shift = units[i].shift;
	if (shift < 0)
		return error_set(err, EINVAL, "invalid size '%s': unknown unit '%s'", s, p);
	char *end;
	errno = 0;
	if (strchr(num, '.')) {
		double d = strtod(num, &end);
		if (errno || *end || d < 0)
			return error_set(err, EINVAL, "invalid size '%s': not a number", s);
		d *= (double)((int64_t)1 << shift);
		if (d >= 9.2e18)
			return error_set(err, ERANGE, "invalid size '%s': too large", s);
		*out = (int64_t)d;
		return 0;
	}
	unsigned long long v = strtoull(num, &end, 10);
	if (errno || *end)
		return error_set(err, ERANGE, "invalid size '%s': too large", s);
	if (v > ((unsigned long long)INT64_MAX >> shift))
		return error_set(err, ERANGE, "invalid size '%s': too large", s);
	*out = (int64_t)(v << shift);
	return 0;
}

int parse_duration_ms(const char *s, int64_t *out, struct capsa_error **err)
{
	if (!s || !*s)
		return error_set(err, EINVAL, "invalid duration '': empty");
	int64_t total = 0;
	const char *p = s;
	bool any = false;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.')
			return error_set(err, EINVAL, "invalid duration '%s': expected forms like 30s, 500ms, 1h30m", s);
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (errno || end == p || v < 0)
			return error_set(err, EINVAL, "invalid duration '%s': not a number", s);
		p = end;
		double mult;
		if (str_has_prefix(p, "ms")) {
			mult = 1;
			p += 2;
		} else if (*p == 's') {
			mult = 1000;
			p++;
		} else if (*p == 'm') {
			mult = 60000;
			p++;
		} else if (*p == 'h') {
			mult = 3600000;
			p++;
		} else if (*p == 'd') {
			mult = 86400000;
			p++;
		} else if (*p == '\0' && !any) {
			mult = 1000; /* a bare number means seconds */
		} else {
			return error_set(err, EINVAL, "invalid duration '%s': unknown unit '%s'", s, p);
		}
		double ms = v * mult;
		if (ms > 9.0e15 || (double)total + ms > 9.0e15)
			return error_set(err, ERANGE, "invalid duration '%s': too large", s);
		total += (int64_t)ms;
		any = true;
	}
	*out = total;
	return 0;
}

static const struct {
	const char *name;
	int num;
} signals[] = {
	{ "HUP", SIGHUP },   { "INT", SIGINT },	    { "QUIT", SIGQUIT },     { "ILL", SIGILL },
	{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT },   { "IOT", SIGIOT },	     { "BUS", SIGBUS },
	{ "FPE", SIGFPE },   { "KILL", SIGKILL },   { "USR1", SIGUSR1 },     { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },   { "ALRM", SIGALRM },     { "TERM", SIGTERM },
	{ "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT },   { "STOP", SIGSTOP },
	{ "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },   { "TTOU", SIGTTOU },     { "URG", SIGURG },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },   { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
	{ "WINCH", SIGWINCH }, { "IO", SIGIO },	    { "POLL", SIGPOLL },     { "PWR", SIGPWR },
	{ "SYS", SIGSYS },
};

const char *signal_name(int sig)
{
	static __thread char rt[16];
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		if (signals[i].num == sig) {
			static __thread char name[16];
			snprintf(name, sizeof(name), "SIG%s", signals[i].name);
			return name;
		}
	if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
		snprintf(rt, sizeof(rt), "SIGRTMIN+%d", sig - SIGRTMIN);
		return rt;
	}
	return NULL;
}

#define DNS_NAME_RULE "labels of 1-63 letters, digits and '-', not starting or ending with '-', joined by dots"

int check_dns_name(const char *s, const char *what, size_t max, struct capsa_error **err)
{
	/* the name as it may be shown: bytes outside printable ASCII as '?' */
	char shown[256];
	size_t n = strlen(s), i;
	if (max > sizeof(shown) - 1)
		max = sizeof(shown) - 1;
	for (i = 0; i < n && i < max; i++)
		shown[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	shown[i] = '\0';
	if (n == 0)
		return error_set(err, EINVAL, "invalid %s '': empty (" DNS_NAME_RULE "; at most %zu characters)", what,
				 max);
	if (n > max)
		return error_set(err, EINVAL, "invalid %s '%s...': %zu characters, at most %zu", what, shown, n, max);
	for (i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (alnum || c == '-' || c == '.')
			continue;
		char bad[16];
		if (shown[i] == c)
			snprintf(bad, sizeof(bad), "'%c'", c);
		else
			snprintf(bad, sizeof(bad), "byte 0x%02x", (unsigned char)c);
		return error_set(err, EINVAL, "invalid %s '%s': %s at position %zu (" DNS_NAME_RULE "; at most %zu characters)",
				 what, shown, bad, i + 1, max);
	}
	for (const char *l = s; l <= s + n;) {
		size_t len = strcspn(l, ".");
		if (len == 0)
			return error_set(err, EINVAL, "invalid %s '%s': empty label (" DNS_NAME_RULE ")", what, shown);
		if (len > 63)
			return error_set(err, EINVAL, "invalid %s '%s': a label of %zu characters (" DNS_NAME_RULE ")", what,
					 shown, len);
		if (l[0] == '-' || l[len - 1] == '-')
			return error_set(err, EINVAL, "invalid %s '%s': label '%.*s' starts or ends with '-'", what, shown,
					 (int)len, l);
		l += len + 1;
	}
	return 0;
}

int check_hostname(const char *s, struct capsa_error **err)
{
	return check_dns_name(s, "hostname", HOSTNAME_MAX, err);
}

int parse_signal(const char *s, int *out, struct capsa_error **err)
{
	if (!s || !*s)
		return error_set(err, EINVAL, "invalid signal '': empty");
	int64_t n;
	if (parse_int64(s, 1, 64, &n) == 0) {
		if (n > SIGRTMAX)
			return error_set(err, EINVAL, "invalid signal '%s': out of range 1-%d", s, SIGRTMAX);
		*out = (int)n;
		return 0;
	}
	char up[32];
	size_t l = strlen(s);
	if (l >= sizeof(up))
		return error_set(err, EINVAL, "invalid signal '%.40s': unknown name", s);
	for (size_t i = 0; i <= l; i++)
		up[i] = (char)toupper((unsigned char)s[i]);
	const char *name = str_has_prefix(up, "SIG") ? up + 3 : up;
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		if (strcmp(signals[i].name, name) == 0) {
			*out = signals[i].num;
			return 0;
		}
	if (str_has_prefix(name, "RTMIN+") && parse_int64(name + 6, 0, SIGRTMAX - SIGRTMIN, &n) == 0) {
		*out = SIGRTMIN + (int)n;
		return 0;
	}
	if (strcmp(name, "RTMIN") == 0) {
		*out = SIGRTMIN;
		return 0;
	}
	return error_set(err, EINVAL, "invalid signal '%s': unknown name", s);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

char *random_hex(size_t nbytes)
{
	uint8_t raw[64];
	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	size_t got = 0;
	while (got < nbytes) {
		ssize_t r = getrandom(raw + got, nbytes - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		got += (size_t)r;
	}
	char *out = xmalloc(2 * nbytes + 1);
	hex_encode(raw, nbytes, out);
	return out;
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ms(void)
{
	return mono_ns() / 1000000;
}

void format_rfc3339(int64_t unix_ms, char *out, size_t n)
{
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int parse_rfc3339(const char *s, int64_t *unix_ms)
{
	int Y, M, D, h, m, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n == 0)
		return -1;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -1;
	const char *p = s + n;
	int64_t frac_ms = 0;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
			return -1;
		off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
	int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - off;
	*unix_ms = secs * 1000 + frac_ms;
	return 0;
}

size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

void buf_append_json_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, (char)c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			buf_appendf(b, "\\u%04x", c);
			i++;
		} else {
			size_t l = utf8_seq(p + i, n - i);
			if (l == 0) {
				buf_append(b, "\\ufffd", 6);
				i++;
			} else {
				buf_append(b, p + i, l);
				i += l;
			}
		}
	}
	buf_putc(b, '"');
}
