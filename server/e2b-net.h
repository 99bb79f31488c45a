/* e2b-net.h: E2B's egress rules mapped onto capsa's, and back.
 *
 * E2B: allowed entries take precedence over denied ones (a sandbox reaches
 * allowOut and whatever denyOut does not name), deny rules are CIDRs and
 * addresses only.  capsa (lib/net/policy.c): deny wins over allow, and a
 * non-empty allow list means "only these".  e2b_net_map() turns the first
 * into the second where capsa can say the same thing, and refuses (EINVAL,
 * with what to do instead) where it cannot; e2b_net_view() reads a
 * sandbox's capsa rules back in E2B's terms.
 */
#ifndef CAPSA_SERVER_E2B_NET_H
#define CAPSA_SERVER_E2B_NET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "linux/rtnl.h"
#include "util/error.h"

/* The most prefixes a subtraction may give (capsa's own rule limit). */
#define E2B_NET_MAX_PREFIXES 1024

/* *out (malloc'd, *n_out of them): disjoint prefixes that cover every
 * address of a[] that no prefix of b[] covers, and nothing else.  E2BIG
 * past E2B_NET_MAX_PREFIXES. */
int e2b_cidr_subtract(const struct linux_ip4net *a, size_t na, const struct linux_ip4net *b, size_t nb,
		      struct linux_ip4net **out, size_t *n_out, struct capsa_error **err);

/* capsa's allow and deny lists (NULL-terminated, malloc'd) for E2B's
 * allowOut and denyOut (either may be NULL), with 0.0.0.0/0 added to the
 * denied when no_internet (allow_internet_access: false).  EINVAL with a
 * message naming the entry (field "network.allowOut" and so on) for what
 * E2B refuses too (names in denyOut) and for the one combination capsa
 * cannot express (names in allowOut with a denyOut that does not cover
 * everything). */
int e2b_net_map(char *const *allow_out, char *const *deny_out, bool no_internet, char ***allow, char ***deny,
		struct capsa_error **err);

/* {"allowInternetAccess": bool, "network": {"allowOut": [...], "denyOut":
 * [...]}} for a sandbox whose inspect "network" object is net (NULL: no
 * network record). */
json_t *e2b_net_view(json_t *net);

#endif
