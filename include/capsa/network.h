/* capsa/network.h: networks and sandboxes' egress rules (docs/network.md).
 *
 * Every store has the default network "bridge" (capsa0, 10.88.0.0/16,
 * shared by the host's stores); named networks are the store's own, each a
 * bridge and a subnet whose sandboxes reach each other, by name through the
 * network's resolver, and nothing of another network.  A sandbox joins one
 * network at its creation (capsa_sandbox_opts.network).
 */
#ifndef CAPSA_NETWORK_H
#define CAPSA_NETWORK_H

#include <stdbool.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_network_opts {
	const char *name;   /* [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64; not bridge, none, host */
	const char *subnet; /* IPv4 CIDR, /16 to /29; NULL: the first free /24 of 10.89.0.0/16 */
	char **labels;	    /* KEY=VALUE */
};

/* Creates a network and its bridge, refusing a subnet that overlaps
 * another network's or a route of the host's. */
int capsa_network_create(struct capsa_ctx *ctx, const struct capsa_network_opts *opts, struct capsa_error **err);
/* Removes a network that no running sandbox is on ("bridge" is the host's
 * and stays). */
int capsa_network_remove(struct capsa_ctx *ctx, const char *name, struct capsa_error **err);
/* JSON array of networks (the default one first), malloc'd. */
char *capsa_network_list(struct capsa_ctx *ctx, struct capsa_error **err);
/* JSON of one network with its running sandboxes, malloc'd. */
char *capsa_network_inspect(struct capsa_ctx *ctx, const char *name, struct capsa_error **err);

/* The network mode of a sandbox created without one (capsa_sandbox_opts.
 * network NULL): $CAPSA_DEFAULT_NETWORK, else "bridge" ("none" rootless).
 * Valid until the environment changes. */
const char *capsa_network_default(struct capsa_ctx *ctx);

/* Replaces a running sandbox's egress rules (the forms of
 * capsa_sandbox_opts.allow_out/deny_out); applied at once, atomically. */
int capsa_sandbox_set_egress(struct capsa_ctx *ctx, const char *sandbox, char *const *allow_out,
			     char *const *deny_out, struct capsa_error **err);

/* The most rules one list may hold (both forms). */
#define CAPSA_EGRESS_MAX_RULES 1024

/* Egress rules in the form E2B's API takes (allowed entries win over denied
 * ones: a sandbox reaches `allow` and whatever `deny` does not name; `deny`
 * holds CIDRs and addresses only; deny_all adds 0.0.0.0/0 to it) as capsa's
 * (deny wins; a non-empty allow list means only those).  EINVAL, with what
 * to do instead, where capsa cannot say the same thing (names allowed under
 * a deny list that does not cover everything).  The lists are malloc'd,
 * NULL-terminated. */
int capsa_egress_from_allow_wins(char *const *allow, char *const *deny, bool deny_all, char ***allow_out,
				 char ***deny_out, struct capsa_error **err);
/* A sandbox's rules (its inspect "network" object as JSON text; NULL: no
 * network) read back in that form: {"allowInternetAccess": bool,
 * "network": {"allowOut": [...], "denyOut": [...]}}, malloc'd. */
char *capsa_egress_to_allow_wins(const char *network_json);

#ifdef __cplusplus
}
#endif
#endif
