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

#ifdef __cplusplus
}
#endif
#endif
