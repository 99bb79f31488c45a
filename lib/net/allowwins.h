/* allowwins.h: egress rules where allow wins (E2B's), mapped onto capsa's
 * (deny wins), and back; capsa_egress_*_allow_wins() are the public face.
 *
 * E2B: allowed entries take precedence over denied ones (a sandbox reaches
 * allowOut and whatever denyOut does not name), deny rules are CIDRs and
 * addresses only.  capsa (lib/net/policy.c): deny wins over allow, and a
 * non-empty allow list means "only these".  net_allow_wins_map() turns the first
 * into the second where capsa can say the same thing, and refuses (EINVAL,
 * with what to do instead) where it cannot; net_allow_wins_view() reads a
 * sandbox's capsa rules back in E2B's terms.
 */
#ifndef CAPSA_NET_ALLOWWINS_H
#define CAPSA_NET_ALLOWWINS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "capsa/network.h"
#include "linux/rtnl.h"
#include "util/error.h"

/* The most prefixes a subtraction may give (capsa's own rule limit). */
#define NET_MAX_PREFIXES CAPSA_EGRESS_MAX_RULES

/* *out (malloc'd, *n_out of them): disjoint prefixes that cover every
 * address of a[] that no prefix of b[] covers, and nothing else.  E2BIG
 * past NET_MAX_PREFIXES. */
int net_cidr_subtract(const struct linux_ip4net *a, size_t na, const struct linux_ip4net *b, size_t nb,
		      struct linux_ip4net **out, size_t *n_out, struct capsa_error **err);

/* capsa's allow and deny lists (NULL-terminated, malloc'd) for E2B's
 * allowOut and denyOut (either may be NULL), with 0.0.0.0/0 added to the
 * denied when no_internet (allow_internet_access: false).  EINVAL with a
 * message naming the entry (field "network.allowOut" and so on) for what
 * E2B refuses too (names in denyOut) and for the one combination capsa
 * cannot express (names in allowOut with a denyOut that does not cover
 * everything). */
int net_allow_wins_map(char *const *allow_out, char *const *deny_out, bool no_internet, char ***allow, char ***deny,
		struct capsa_error **err);

/* {"allowInternetAccess": bool, "network": {"allowOut": [...], "denyOut":
 * [...]}} for a sandbox whose inspect "network" object is net (NULL: no
 * network record). */
json_t *net_allow_wins_view(json_t *net);

#endif
