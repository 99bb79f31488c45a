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

/* Defaults for a user other than root (rootless mode, docs/rootless.md):
 * $XDG_DATA_HOME/capsa (else ~/.local/share/capsa) and
 * $XDG_RUNTIME_DIR/capsa (else /tmp/capsa-run-<uid>). */
struct capsa_ctx_opts {
	const char *root;     /* NULL: $CAPSA_ROOT, else the default */
	const char *run_root; /* NULL: $CAPSA_RUN_ROOT, else the default */
};

/* Rootless mode: a process of a user other than root calls this once, while
 * single-threaded, before capsa_ctx_open().  It enters the user's own user
 * namespace (root -> the user, 1.. -> its /etc/subuid and /etc/subgid
 * range, mapped by newuidmap/newgidmap) and a private mount namespace.  A
 * no-op for root.  The CLI does it for every command that opens a store. */
int capsa_rootless_enter(struct capsa_error **err);
/* True when not root on the host (euid not 0, or inside such a namespace). */
bool capsa_rootless(void);

int capsa_ctx_open(const struct capsa_ctx_opts *opts, struct capsa_ctx **out, struct capsa_error **err);
void capsa_ctx_free(struct capsa_ctx *ctx);
const char *capsa_ctx_root(const struct capsa_ctx *ctx);
const char *capsa_ctx_run_root(const struct capsa_ctx *ctx);

const char *capsa_version(void);

#ifdef __cplusplus
}
#endif
#endif
