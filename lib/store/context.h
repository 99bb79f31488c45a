/* context.h: struct capsa_ctx, the root every library call starts from. */
#ifndef CAPSA_CONTEXT_H
#define CAPSA_CONTEXT_H

#include "capsa/capsa.h"
#include "store/store.h"

struct capsa_ctx {
	char *root;	/* /var/lib/capsa */
	char *run_root; /* /run/capsa */
	int root_fd;	/* O_PATH of root */
	int run_fd;	/* O_PATH of run_root */
	struct store *db;
	/* Cgroup parent of this context's sandboxes: "capsa" by default,
	 * $CAPSA_CGROUP_PARENT to separate users (and test runs) of one host. */
	char *cgroup_parent;
	/* Shared flock on <root>/store.lock while this context has content
	 * in flight (blobs written, layers unpacked, image rows not yet
	 * committed): garbage collection takes it exclusively. -1 when not
	 * held.  See lib/image/blob.c. */
	int ingest_lock_fd;
	/* Admission policy (lib/sandbox/ledger.c, capsa/admission.h); NULL:
	 * sandboxes are recorded in the ledger but never refused. */
	struct capsa_capacity *capacity;
	/* Not root on the host (lib/linux/rootless.h): the store is a user's,
	 * inside its user namespace; no host cgroups, loop disks or id blocks. */
	bool rootless;
};

/* In the store root: the stamp (boot id, device, inode) of the database file
 * that last passed PRAGMA quick_check (context.c). */
#define CTX_VERIFIED_STAMP "store.verified"

/* The state database, opened (checked, and migrated) on first use.  A
 * capsa.db of 0 bytes where the store has content is refused; quick_check
 * runs at the first open of a file in a boot. */
struct store *ctx_db(struct capsa_ctx *ctx, struct capsa_error **err);
/* "/<cgroup parent>/<id>": the cgroup of a sandbox, in every hierarchy. */
char *ctx_sandbox_cgroup(const struct capsa_ctx *ctx, const char *id);

#endif
