/* capsa/admission.h: the capacity ledger and the disk-pressure guard.
 *
 * Every sandbox reserves its limits (cpus, memory, and the disk it declares)
 * in the ledger when its row is created, in the same transaction, and gives
 * them back when it ends (also when it crashed: reconciliation ends it).
 * What a context checks against is its capacity: a context with a capacity
 * set (capsa serve sets one) refuses a sandbox that does not fit with
 * EDQUOT, and, while the store's filesystem has less free space than the
 * minimum, any new sandbox with ENOSPC.  Without a capacity (the CLI)
 * sandboxes are recorded in the ledger but never refused, so the ledger
 * stays right whichever front-end created them.
 *
 * A limit that is not set reserves nothing: a sandbox without a memory
 * limit counts zero bytes.  Disk is accounted as declared, not enforced.
 */
#ifndef CAPSA_ADMISSION_H
#define CAPSA_ADMISSION_H

#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_capacity {
	int64_t cpus_milli;    /* 1000 = one cpu; 0: not checked */
	int64_t memory;	       /* bytes; 0: not checked */
	int64_t disk;	       /* bytes; 0: not checked */
	int64_t min_free_disk; /* bytes the store's filesystem keeps free; 0: no guard */
};

/* The host's own size: online cpus, MemTotal, the size of the store's
 * filesystem, and a 1 GiB disk guard. */
int capsa_capacity_from_host(struct capsa_ctx *ctx, struct capsa_capacity *out, struct capsa_error **err);

/* Sandboxes created through ctx from now on pass admission against cap
 * (copied); NULL turns admission off again. */
void capsa_ctx_set_capacity(struct capsa_ctx *ctx, const struct capsa_capacity *cap);

struct capsa_ledger {
	int64_t cpus_milli, memory, disk; /* reserved by sandboxes that have not ended */
	int64_t sandboxes;		  /* how many hold a reservation */
};

int capsa_ledger_usage(struct capsa_ctx *ctx, struct capsa_ledger *out, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
