/* capsa/logs.h: reading a sandbox's main process log. */
#ifndef CAPSA_LOGS_H
#define CAPSA_LOGS_H

#include <stdbool.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_logs_opts {
	bool follow;	     /* keep printing until the sandbox ends */
	int64_t tail;	     /* last N lines; -1: all */
	int64_t since_ms;    /* ms since the epoch; 0: from the start */
	int64_t until_ms;    /* 0: to the end */
	bool timestamps;     /* prefix each line with its RFC 3339 time */
	bool stdout_, stderr_;
};

/* Writes the log to out_fd (stdout lines) and err_fd (stderr lines). */
int capsa_sandbox_logs(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_logs_opts *opts, int out_fd,
		       int err_fd, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
