/* base64.h: RFC 4648 base64 (standard alphabet), for the credentials of
 * HTTP basic auth and docker-style auth files.  libc only. */
#ifndef CAPSA_UTIL_BASE64_H
#define CAPSA_UTIL_BASE64_H

#include <stddef.h>

#include "str.h"

/* Padded encoding of n bytes; a heap string. */
char *base64_encode(const void *p, size_t n);
/* Decodes len characters of s (padding optional, no whitespace) and appends
 * the bytes to out.  -1 with errno EINVAL on a character outside the
 * alphabet, misplaced padding or non-zero trailing bits; EFBIG past out's
 * cap. */
int base64_decode(const char *s, size_t len, struct buf *out);

#endif
