/* trace.h: phase timing for performance work.  With CAPSA_TRACE=1 in the
 * environment, trace_mark("phase") prints the microseconds since the
 * previous mark (and since the first) to stderr; otherwise it costs one
 * cached getenv.  libc only. */
#ifndef CAPSA_UTIL_TRACE_H
#define CAPSA_UTIL_TRACE_H

void trace_mark(const char *what);

#endif
