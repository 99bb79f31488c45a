/* error.h: building struct capsa_error values inside the library.
 *
 * error_set() creates an error (never overwriting one already set: the first
 * cause is the interesting one), error_wrap() prefixes context as the error
 * travels up.  Both return -1 so that `return error_set(err, ...)` reads
 * naturally.
 */
#ifndef CAPSA_UTIL_ERROR_H
#define CAPSA_UTIL_ERROR_H

#include <stdarg.h>

#include "capsa/error.h"
#include "util.h"

#define CAPSA_EXPORT __attribute__((visibility("default")))

int error_set(struct capsa_error **err, int code, const char *fmt, ...) PRINTF(3, 4);
int error_setv(struct capsa_error **err, int code, const char *fmt, va_list ap);
/* Like error_set, with ": <strerror(code)>" appended. */
int error_sys(struct capsa_error **err, int code, const char *fmt, ...) PRINTF(3, 4);
int error_wrap(struct capsa_error **err, const char *fmt, ...) PRINTF(2, 3);
/* Move *from into *to (freeing *to's old content); used when a layer wants
 * to keep one error and drop a later one. */
void error_move(struct capsa_error **to, struct capsa_error **from);

static inline void cleanup_errorp(struct capsa_error **e)
{
	capsa_error_free(*e);
}
#define _cleanup_error_ __attribute__((cleanup(cleanup_errorp)))

#endif
