/* ledger.h: admission hooks the sandbox lifecycle calls (ledger.c). */
#ifndef CAPSA_SANDBOX_LEDGER_H
#define CAPSA_SANDBOX_LEDGER_H

#include "capsa/sandbox.h"
#include "store/context.h"

/* ENOSPC when the context has a disk guard and the store's filesystem is
 * below its minimum free space. */
int ledger_check_disk(struct capsa_ctx *ctx, struct capsa_error **err);
/* Inside the caller's write transaction, before the sandbox row is
 * inserted: EDQUOT, naming the resource, when o's limits do not fit in the
 * context's capacity. */
int ledger_admit(struct capsa_ctx *ctx, struct store *db, const struct capsa_sandbox_opts *o,
		 struct capsa_error **err);
/* Clears the reservation flag of an ended sandbox (idempotent; the state
 * change alone already stops it from counting). */
void ledger_release(struct capsa_ctx *ctx, const char *id);

#endif
