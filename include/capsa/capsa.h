/* capsa/capsa.h: libcapsa, the library behind the capsa front-ends.
 *
 * Every operation of the CLI, the API server and the OCI runtime is a call
 * here; the front-ends only parse, call and print.  See docs/architecture.md.
 */
#ifndef CAPSA_CAPSA_H
#define CAPSA_CAPSA_H

#include <stdbool.h>
#include <stdint.h>

#include "capsa/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAPSA_DEFAULT_ROOT "/var/lib/capsa"
#define CAPSA_DEFAULT_RUN_ROOT "/run/capsa"

/* A handle on one store root (state database, blobs, layers, sandboxes) and
 * its runtime directory.  Not thread-safe: use one per thread. */
struct capsa_ctx;

struct capsa_ctx_opts {
	const char *root;     /* NULL: $CAPSA_ROOT, else CAPSA_DEFAULT_ROOT */
	const char *run_root; /* NULL: $CAPSA_RUN_ROOT, else CAPSA_DEFAULT_RUN_ROOT */
};

int capsa_ctx_open(const struct capsa_ctx_opts *opts, struct capsa_ctx **out, struct capsa_error **err);
void capsa_ctx_free(struct capsa_ctx *ctx);
const char *capsa_ctx_root(const struct capsa_ctx *ctx);
const char *capsa_ctx_run_root(const struct capsa_ctx *ctx);

const char *capsa_version(void);

#ifdef __cplusplus
}
#endif
#endif
