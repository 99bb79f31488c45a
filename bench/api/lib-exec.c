/* lib-exec.c: the library baseline for bench/api/run.py: N rounds of
 * capsa_sandbox_exec(SANDBOX, echo hi) with its output to a pipe, printing
 * one latency in microseconds per line.  The API's exec round trip is
 * compared with this. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "capsa/sandbox.h"

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bench-api-lib SANDBOX ROUNDS\n");
		return 2;
	}
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	if (capsa_ctx_open(NULL, &ctx, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		return 1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return 1;
	char echo[] = "echo", hi[] = "hi";
	char *cmd[] = { echo, hi, NULL };
	struct capsa_exec_opts o = { .argv = cmd };
	struct capsa_stdio io = { .in_fd = -1, .out_fd = p[1], .err_fd = p[1], .sig_fd = -1 };
	int rounds = atoi(argv[2]);
	for (int i = 0; i < rounds; i++) {
		struct capsa_exit e;
		long long t = now_us();
		if (capsa_sandbox_exec(ctx, argv[1], &o, &io, &e, &err) < 0) {
			fprintf(stderr, "%s\n", err->msg);
			return 1;
		}
		long long d = now_us() - t;
		char buf[64];
		while (read(p[0], buf, sizeof(buf)) > 0) {
		}
		printf("%lld\n", d);
	}
	capsa_ctx_free(ctx);
	return 0;
}
