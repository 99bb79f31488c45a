/* str.h: strings, string vectors, a growable buffer with a hard cap, and the
 * parsers for the human-facing values (sizes, durations, signals) that every
 * front-end accepts.  libc only.
 */
#ifndef CAPSA_UTIL_STR_H
#define CAPSA_UTIL_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

static inline bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static inline bool str_has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix);

/* NULL-terminated vectors of heap strings. */
size_t strv_len(char *const *v);
char **strv_dup(char *const *v);
/* Appends a copy of s; returns the (possibly moved) vector. */
char **strv_push(char **v, const char *s);
char **strv_push_take(char **v, char *s);
bool strv_contains(char *const *v, const char *s);
/* Splits s on sep; empty fields are kept. */
char **strv_split(const char *s, char sep);

/* A growable byte buffer that refuses to grow past cap: every buffer fed from
 * outside has a cap checked before allocation. */
struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* 0: no cap */
};
#define BUF_INIT { NULL, 0, 0, 0 }
void buf_release(struct buf *b);
/* Returns -1 (errno ENOSPC-like EFBIG) when the cap would be exceeded. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appendf(struct buf *b, const char *fmt, ...) PRINTF(2, 3);
int buf_putc(struct buf *b, char c);
/* NUL-terminated view; the NUL is not counted in len. */
const char *buf_cstr(struct buf *b);
char *buf_steal(struct buf *b);
void buf_consume(struct buf *b, size_t n);

/* Appends s as a JSON string literal (quotes included): control characters
 * escaped, valid UTF-8 kept, invalid bytes replaced by U+FFFD. */
void buf_append_json_str(struct buf *b, const char *s);

/* "64m", "1.5g", "4096", "2GiB": bytes.  Units are powers of 1024, as docker
 * reads them.  Refuses negatives, unknown units and overflow. */
int parse_size(const char *s, int64_t *out, struct capsa_error **err);
/* "10s", "500ms", "1h30m", "2" (seconds): milliseconds. */
int parse_duration_ms(const char *s, int64_t *out, struct capsa_error **err);
/* "TERM", "SIGTERM", "15", "sigusr1": signal number. */
int parse_signal(const char *s, int *out, struct capsa_error **err);
const char *signal_name(int sig); /* "SIGTERM"; NULL if unknown */
/* A sandbox's hostname, the same rule for the CLI and the API: RFC 1123
 * labels (1-63 of [a-zA-Z0-9-], not starting or ending with '-') joined by
 * dots, at most 64 characters in all (the kernel's HOST_NAME_MAX). */
#define HOSTNAME_MAX 64
/* A DNS name of at most max characters: labels of 1-63 letters, digits and
 * '-' not at either end, joined by dots; the error calls it what. */
int check_dns_name(const char *s, const char *what, size_t max, struct capsa_error **err);
int check_hostname(const char *s, struct capsa_error **err);
/* Decimal integer within [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Hex of n random bytes from getrandom(). */
char *random_hex(size_t nbytes);
void hex_encode(const uint8_t *in, size_t n, char *out /* 2n+1 */);

/* Length of the valid UTF-8 sequence at p (at most n bytes, n >= 1): 1-4,
 * or 0 for an invalid, overlong, surrogate or truncated one. */
size_t utf8_seq(const unsigned char *p, size_t n);

/* Milliseconds since the epoch / CLOCK_MONOTONIC. */
int64_t now_ms(void);
int64_t mono_ms(void);
int64_t mono_ns(void);
/* RFC 3339 with nanoseconds in UTC, as docker prints timestamps. */
void format_rfc3339(int64_t unix_ms, char *out, size_t n);
int parse_rfc3339(const char *s, int64_t *unix_ms);

#endif
