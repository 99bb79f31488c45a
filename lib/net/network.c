/* network.c: networks and what they hold on the host (docs/network.md).
 *
 * A network is a bridge with a subnet, the network's address on it (the
 * sandboxes' gateway and DNS server), NAT for its subnet, and a dnsmasq
 * answering on that address.  The default one, "bridge", is the host's
 * (capsa0, 10.88.0.0/16) and is never removed; named ones are rows of the
 * store, with a bridge cn<10 hex of the id>.  net_network_ensure() makes
 * whatever of that is missing, under the state lock, every time a sandbox
 * is about to use it: a reboot or a crash leaves nothing to repair by hand.
 *
 * The nftables base (tables `inet capsa` and `bridge capsa`) is written
 * once per namespace; networks and sandboxes only add elements to its sets
 * and maps, and chains of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/ns.h"
#include "net.h"
#include "util/fs.h"
#include "util/str.h"

#define DEFAULT_BRIDGE "capsa0"
#define DEFAULT_SUBNET "10.88.0.0/16"

/* Special-purpose ranges the default policy keeps sandboxes away from
 * (RFC 6890): "this" network, private, CGNAT, loopback, link-local (the
 * cloud metadata service), IETF protocol assignments, benchmarking,
 * multicast and reserved.  The documentation ranges stay reachable: the
 * tests' fake internet lives there. */
#define BLOCKED4                                                                                       \
	"0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.0.0.0/24, " \
	"192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/3"

/* The layout's version is the name of an empty chain: a table of another
 * layout is refused, never patched. */
#define BASE_MARK "layout_1"

static const char base_script[] =
	"add table inet capsa\n"
	"add chain inet capsa " BASE_MARK "\n"
	"add set inet capsa nets4 { type ipv4_addr; flags interval; }\n"
	"add set inet capsa gw4 { type ipv4_addr; }\n"
	"add set inet capsa bridges { type ifname; }\n"
	"add set inet capsa same_bridge { type ifname . ifname; }\n"
	"add set inet capsa blocked4 { type ipv4_addr; flags interval; elements = { " BLOCKED4 " }; }\n"
	"add set inet capsa hostnets4 { type ipv4_addr; flags interval; }\n"
	"add set inet capsa hostok4 { type ipv4_addr; }\n"
	"add map inet capsa pol4 { type ipv4_addr : verdict; }\n"
	"add map inet capsa dns4 { type ipv4_addr : verdict; }\n"
	"add chain inet capsa public\n"
	"add rule inet capsa public ip daddr @blocked4 drop\n"
	"add rule inet capsa public ip daddr @hostnets4 drop\n"
	"add rule inet capsa public ip daddr @nets4 drop\n"
	"add rule inet capsa public accept\n"
	"add chain inet capsa forward { type filter hook forward priority filter; policy accept; }\n"
	"add rule inet capsa forward meta iifname . meta oifname @same_bridge accept\n"
	"add rule inet capsa forward iifname @bridges ct state established,related accept\n"
	"add rule inet capsa forward iifname @bridges ip saddr vmap @pol4\n"
	"add rule inet capsa forward iifname @bridges drop\n"
	"add rule inet capsa forward oifname @bridges ct state established,related accept\n"
	"add rule inet capsa forward oifname @bridges drop\n"
	"add chain inet capsa input { type filter hook input priority filter; policy accept; }\n"
	"add chain inet capsa from_sandbox\n"
	"add rule inet capsa input iifname @bridges jump from_sandbox\n"
	"add rule inet capsa from_sandbox ct state established,related accept\n"
	"add rule inet capsa from_sandbox ip daddr @gw4 udp dport 53 accept\n"
	"add rule inet capsa from_sandbox ip daddr @gw4 tcp dport 53 accept\n"
	"add rule inet capsa from_sandbox ip daddr @gw4 ct status dnat accept\n"
	"add rule inet capsa from_sandbox ip saddr @hostok4 accept\n"
	"add rule inet capsa from_sandbox drop\n"
	"add chain inet capsa prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
	"add rule inet capsa prerouting iifname @bridges ip saddr vmap @dns4\n"
	"add chain inet capsa postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
	"add rule inet capsa postrouting ip saddr @nets4 ip daddr != @nets4 masquerade\n"
	"add table bridge capsa\n"
	"add set bridge capsa ports { type ifname; }\n"
	"add set bridge capsa bind4 { type ifname . ether_addr . ipv4_addr; }\n"
	"add chain bridge capsa prerouting { type filter hook prerouting priority filter; policy accept; }\n"
	"add chain bridge capsa guard\n"
	"add rule bridge capsa prerouting iifname @ports jump guard\n"
	"add rule bridge capsa guard ether type ip iifname . ether saddr . ip saddr @bind4 return\n"
	"add rule bridge capsa guard ether type arp iifname . arp saddr ether . arp saddr ip @bind4 return\n"
	"add rule bridge capsa guard drop\n";

void net_network_release(struct net_network *n)
{
	free(n->name);
	free(n->id);
	free(n->bridge);
	memset(n, 0, sizeof(*n));
}

static int fill_network(const char *name, const char *id, const char *bridge, const char *subnet,
			struct net_network *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	if (linux_ip4net_parse(subnet, &out->subnet, err) < 0)
		return error_wrap(err, "network %s", name);
	out->subnet.addr &= linux_ip4_mask(out->subnet.prefix);
	out->gateway = out->subnet.addr + 1;
	out->name = xstrdup(name);
	out->id = xstrdup(id);
	out->bridge = xstrdup(bridge);
	return 0;
}

int net_network_get(struct capsa_ctx *ctx, const char *name, struct net_network *out, struct capsa_error **err)
{
	if (!name || strcmp(name, NET_DEFAULT) == 0)
		return fill_network(NET_DEFAULT, "default", DEFAULT_BRIDGE, DEFAULT_SUBNET, out, err);
	struct store *db = ctx_db(ctx, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "SELECT id, bridge, subnet FROM networks WHERE name=?1 OR id=?1", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, name);
	if (sqlite3_step(st) != SQLITE_ROW)
		return error_set(err, ENOENT, "no such network: '%.100s'", name);
	return fill_network(name, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
			    (const char *)sqlite3_column_text(st, 2), out, err);
}

/* ---- the host side --------------------------------------------------------- */

/* The host's connected subnets (its LAN), kept out of reach by the default
 * policy; refreshed whenever a network is ensured. */
static void refresh_hostnets(void)
{
	struct linux_route4 *r = NULL;
	size_t n = 0;
	if (linux_routes4(&r, &n, NULL) < 0)
		return;
	struct buf b = BUF_INIT;
	buf_appendf(&b, "flush set inet capsa hostnets4\n");
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (r[i].gateway || r[i].is_default || str_has_prefix(r[i].ifname, "capsa") ||
		    str_has_prefix(r[i].ifname, "cn") || !r[i].ifname[0] || strcmp(r[i].ifname, "lo") == 0)
			continue;
		char ip[16];
		linux_ip4_format(r[i].dst.addr & linux_ip4_mask(r[i].dst.prefix), ip);
		buf_appendf(&b, "%s%s/%d", any ? ", " : "add element inet capsa hostnets4 { ", ip, r[i].dst.prefix);
		any = true;
	}
	if (any)
		buf_appendf(&b, " }\n");
	nft_run_quiet(buf_cstr(&b));
	buf_release(&b);
	free(r);
}

/* The subnet must not clash with a route of the host's that is not this
 * network's own bridge. */
static int check_routes(const struct net_network *n, struct capsa_error **err)
{
	struct linux_route4 *r = NULL;
	size_t cnt = 0;
	if (linux_routes4(&r, &cnt, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < cnt && rc == 0; i++) {
		if (r[i].is_default || strcmp(r[i].ifname, n->bridge) == 0 || !linux_ip4net_overlap(&r[i].dst, &n->subnet))
			continue;
		char a[16], b[16];
		linux_ip4_format(n->subnet.addr, a);
		linux_ip4_format(r[i].dst.addr, b);
		rc = error_set(err, EEXIST, "network %s: subnet %s/%d overlaps the host's route to %s/%d (%s)", n->name, a,
			       n->subnet.prefix, b, r[i].dst.prefix, r[i].ifname[0] ? r[i].ifname : "no device");
	}
	free(r);
	return rc;
}

static int ensure_base(struct capsa_error **err)
{
	if (nft_run("list chain inet capsa " BASE_MARK, "nftables", NULL) == 0)
		return 0;
	if (nft_run("list table inet capsa", "nftables", NULL) == 0)
		return error_set(err, EEXIST,
				 "nftables table inet capsa has another layout than this capsa's (%s): with no sandbox "
				 "running, remove it (nft delete table inet capsa; nft delete table bridge capsa)",
				 BASE_MARK);
	return nft_run(base_script, "set up the nftables base of capsa's networks", err);
}

static int ensure_nft_network(const struct net_network *n, struct capsa_error **err)
{
	char net[16], gw[16];
	linux_ip4_format(n->subnet.addr, net);
	linux_ip4_format(n->gateway, gw);
	_cleanup_free_ char *script = xasprintf("add element inet capsa nets4 { %s/%d }\n"
						"add element inet capsa gw4 { %s }\n"
						"add element inet capsa bridges { \"%s\" }\n"
						"add element inet capsa same_bridge { \"%s\" . \"%s\" }\n",
						net, n->subnet.prefix, gw, n->bridge, n->bridge, n->bridge);
	return nft_run(script, "add the network to nftables", err);
}

int net_network_ensure(struct capsa_ctx *ctx, const struct net_network *n, struct capsa_error **err)
{
	(void)ctx;
	int lock = net_state_lock(err);
	if (lock < 0)
		return -1;
	int rc = -1;
	struct linux_ip4net gw = { n->gateway, n->subnet.prefix };
	if (linux_bridge_ensure(n->bridge, err) < 0 || check_routes(n, err) < 0 || linux_addr_add(n->bridge, &gw, err) < 0)
		goto out;
	if (linux_sysctl_set("net.ipv4.ip_forward", "1", err) < 0 || ensure_base(err) < 0 ||
	    ensure_nft_network(n, err) < 0)
		goto out;
	refresh_hostnets();
	if (net_dns_network_ensure(n, err) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		error_wrap(err, "network %s", n->name);
	close(lock);
	return rc;
}
