/* tap.h: a tiny TAP producer for the C unit tests (meson's 'tap' protocol).
 * Header-only so each test is one file. */
#ifndef CAPSA_TAP_H
#define CAPSA_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_fail;

__attribute__((format(printf, 4, 5))) static inline int tap_ok(int pass, const char *file, int line,
								const char *fmt, ...)
{
	va_list ap;
	tap_count++;
	printf("%sok %d - ", pass ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_fail++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return pass;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(a, b, ...)                                                                        \
	do {                                                                                     \
		long long a_ = (long long)(a), b_ = (long long)(b);                              \
		if (!ok(a_ == b_, __VA_ARGS__))                                                  \
			printf("#   got %lld, expected %lld\n", a_, b_);                             \
	} while (0)
#define is_str(a, b, ...)                                                                        \
	do {                                                                                     \
		const char *a_ = (a), *b_ = (b);                                                 \
		if (!ok(a_ && b_ && strcmp(a_, b_) == 0, __VA_ARGS__))                           \
			printf("#   got '%s', expected '%s'\n", a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)
#define diag(...)                                                                                \
	do {                                                                                     \
		printf("# ");                                                                    \
		printf(__VA_ARGS__);                                                             \
		printf("\n");                                                                    \
	} while (0)

static inline int done_testing(void)
{
	printf("1..%d\n", tap_count);
	return tap_fail ? 1 : 0;
}

#endif
