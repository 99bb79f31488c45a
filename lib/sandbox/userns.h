/* userns.h: a sandbox's block of subordinate ids (userns.c). */
#ifndef CAPSA_SANDBOX_USERNS_H
#define CAPSA_SANDBOX_USERNS_H

#include "proto/msg.h"
#include "store/context.h"
#include "util/error.h"

/* ids per sandbox: uid/gid 0..65535 inside */
#define CAPSA_USERNS_BLOCK 65536u

struct userns_block {
	uint64_t uid, gid; /* first host uid and gid */
};

/* Picks, claims host-wide and records a free block for sandbox id (whose row exists) and
 * fills s->userns_uid/gid/count; creates the capsa user and its ranges
 * when missing. */
int sandbox_userns_alloc(struct capsa_ctx *ctx, const char *id, struct proto_sandbox *s, struct capsa_error **err);
/* The block recorded for sandbox id: 0, or -1 when it has none. */
int sandbox_userns_block(struct capsa_ctx *ctx, const char *id, struct userns_block *out);
/* Drops the host-wide claim on b, when it is still sandbox id's (called
 * once the row is gone). */
void sandbox_userns_release(struct capsa_ctx *ctx, const char *id, const struct userns_block *b);
/* {"uid": first host uid, "gid": ..., "size": ids} of the sandbox's
 * block, or NULL when it has none (--userns host). */
struct json_t;
struct json_t *sandbox_userns_json(struct capsa_ctx *ctx, const char *id);
/* Gives the sandbox's upper dir to root inside. */
int sandbox_userns_own_dirs(const struct proto_sandbox *s, struct capsa_error **err);

#endif
