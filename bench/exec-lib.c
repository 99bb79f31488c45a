/* exec-lib.c: the exec round trip through the library, without process
 * start-up: capsa_sandbox_exec(SANDBOX, "true") N times in one process;
 * prints the median and the 90th percentile in microseconds.
 *   bench-exec-lib SANDBOX [N] */
#include <stdio.h>
#include <stdlib.h>

#include "capsa/sandbox.h"
#include "util/str.h"

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench-exec-lib SANDBOX [N]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 200;
	if (n <= 0) {
		fprintf(stderr, "bench-exec-lib: N must be a positive count, not '%s'\n", argv[2]);
		return 2;
	}
	struct capsa_ctx *ctx;
	struct capsa_error *err = NULL;
	if (capsa_ctx_open(NULL, &ctx, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		return 1;
	}
	char *args[] = { (char *)"true", NULL };
	struct capsa_exec_opts o = { .argv = args };
	int64_t *t = calloc((size_t)n, sizeof(int64_t));
	for (int i = 0; i < n; i++) {
		struct capsa_exit e;
		int64_t t0 = mono_ns();
		if (capsa_sandbox_exec(ctx, argv[1], &o, NULL, &e, &err) < 0 || e.exit_code != 0) {
			fprintf(stderr, "exec: %s\n", err ? err->msg : "non-zero exit");
			return 1;
		}
		t[i] = (mono_ns() - t0) / 1000;
	}
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("library exec round trip over %d: median %lld us, p90 %lld us\n", n, (long long)t[n / 2],
	       (long long)t[n * 9 / 10]);
	capsa_ctx_free(ctx);
	free(t);
	return 0;
}
