/* rtnl.h: the few rtnetlink requests sandbox networking needs: veth
 * pairs, bridges, link state, IPv4 addresses and routes, and a dump of the
 * routes (for subnet overlap checks).  libc only; every request acts in the
 * network namespace of the calling thread.
 */
#ifndef CAPSA_LINUX_RTNL_H
#define CAPSA_LINUX_RTNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* An IPv4 prefix, host byte order. */
struct linux_ip4net {
	uint32_t addr;
	int prefix;
};

/* "10.88.0.5" or "10.88.0.0/16" (prefix 32 when none is given); -1 with
 * err naming the text otherwise. */
int linux_ip4net_parse(const char *s, struct linux_ip4net *out, struct capsa_error **err);
/* "a.b.c.d" into out (16 bytes). */
void linux_ip4_format(uint32_t addr, char out[16]);
bool linux_ip4net_overlap(const struct linux_ip4net *a, const struct linux_ip4net *b);
static inline uint32_t linux_ip4_mask(int prefix)
{
	return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1);
}

/* A veth pair: host in this namespace, attached to master (0: none) and
 * up; peer created directly in the namespace netns_fd names, with mac (6
 * bytes, NULL: the kernel's).  EEXIST when host is taken. */
int linux_veth_create(const char *host, int master, const char *peer, int netns_fd, const uint8_t *mac,
		      struct capsa_error **err);
/* A bridge, up; EEXIST is success when one of that name is there. */
int linux_bridge_ensure(const char *name, struct capsa_error **err);
/* Removes a link; a missing one is success. */
int linux_link_delete(const char *name, struct capsa_error **err);
/* Brings a link up (by name, in this namespace). */
int linux_link_up(const char *name, struct capsa_error **err);
/* Adds addr/prefix to a link; an address already there is success. */
int linux_addr_add(const char *ifname, const struct linux_ip4net *addr, struct capsa_error **err);
/* The default route through gw (host byte order). */
int linux_route_default(uint32_t gw, struct capsa_error **err);

/* The IPv4 routes of the main table: destination and the link's name
 * (empty when it has none); *out is malloc'd. */
struct linux_route4 {
	struct linux_ip4net dst;
	char ifname[16];
	bool gateway;	/* reached through a gateway, not directly */
	bool is_default;
};
int linux_routes4(struct linux_route4 **out, size_t *n, struct capsa_error **err);

#endif
