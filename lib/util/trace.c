/* trace.c: see trace.h. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "str.h"
#include "trace.h"

void trace_mark(const char *what)
{
	static int on = -1;
	static int64_t first, last;
	if (on < 0) {
		const char *e = getenv("CAPSA_TRACE");
		on = e && *e == '1';
	}
	if (!on)
		return;
	int64_t now = mono_ns() / 1000;
	if (!first)
		first = last = now;
	fprintf(stderr, "trace %d %-28s +%6lld us  (%lld)\n", (int)getpid(), what, (long long)(now - last),
		(long long)(now - first));
	last = now;
}
