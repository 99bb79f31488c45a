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
#include <jansson.h>
#include <net/if.h>
#include <stdlib.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capsa/network.h"
#include "linux/ns.h"
#include "net.h"
#include "util/fs.h"
#include "util/str.h"
#include "util/trace.h"

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
	nft_run_detached(buf_cstr(&b), "refresh the host's subnets", NULL);
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

/* <state>/<bridge>/ready holds the bridge's ifindex once everything of
 * the network was made for that bridge: a bridge made again (another
 * ifindex), a reboot (no state) or a stopped resolver take the slow path. */
static char *ready_path(const struct net_network *n)
{
	_cleanup_free_ char *dir = net_state_subdir(n->bridge, NULL);
	return dir ? xasprintf("%s/ready", dir) : NULL;
}

static bool ready(const struct net_network *n)
{
	_cleanup_free_ char *path = ready_path(n);
	struct buf b = BUF_INIT;
	unsigned idx = if_nametoindex(n->bridge);
	bool ok = path && idx && read_file_at(AT_FDCWD, path, 32, &b, NULL) == 0 &&
		  (unsigned)atoi(buf_cstr(&b)) == idx && net_dns_network_running(n);
	buf_release(&b);
	return ok;
}

static void set_ready(const struct net_network *n, bool on)
{
	_cleanup_free_ char *path = ready_path(n);
	if (!path)
		return;
	if (!on) {
		unlink(path);
		return;
	}
	char idx[16];
	snprintf(idx, sizeof(idx), "%u", if_nametoindex(n->bridge));
	write_file_atomic_at(AT_FDCWD, path, idx, strlen(idx), 0644, false, NULL);
}

void net_network_forget_ready(const struct net_network *n)
{
	set_ready(n, false);
}

int net_network_ensure(struct capsa_ctx *ctx, const struct net_network *n, struct capsa_error **err)
{
	(void)ctx;
	if (ready(n))
		return 0;
	int lock = net_state_lock(err);
	if (lock < 0)
		return -1;
	int rc = -1;
	struct linux_ip4net gw = { n->gateway, n->subnet.prefix };
	trace_mark("net: state lock");
	if (linux_bridge_ensure(n->bridge, err) < 0 || check_routes(n, err) < 0 || linux_addr_add(n->bridge, &gw, err) < 0)
		goto out;
	trace_mark("net: bridge");
	if (linux_sysctl_set("net.ipv4.ip_forward", "1", err) < 0 || ensure_base(err) < 0)
		goto out;
	trace_mark("net: nft base");
	if (ensure_nft_network(n, err) < 0)
		goto out;
	trace_mark("net: nft network");
	refresh_hostnets();
	trace_mark("net: hostnets");
	if (net_dns_network_ensure(n, err) < 0)
		goto out;
	trace_mark("net: dns");
	set_ready(n, true);
	rc = 0;
out:
	if (rc < 0)
		error_wrap(err, "network %s", n->name);
	close(lock);
	return rc;
}

/* ---- named networks ---------------------------------------------------------- */

#define AUTO_POOL "10.89.0.0/16"
#define NETWORK_NAME_MAX 64

static bool name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > NETWORK_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

static int check_name(const char *name, struct capsa_error **err)
{
	if (!name || !name_ok(name))
		return error_set(err, EINVAL,
				 "invalid network name '%.100s': use 1-64 of [a-zA-Z0-9_.-], starting with a letter or digit",
				 name ? name : "");
	static const char *const reserved[] = { NET_DEFAULT, "none", "host", "default" };
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (strcmp(name, reserved[i]) == 0)
			return error_set(err, EINVAL, "invalid network name '%s': reserved for the network mode of that name",
					 name);
	return 0;
}

/* Every subnet a new one must not overlap: the default network's and the
 * store's networks'. */
static int taken_subnets(struct store *db, struct linux_ip4net **out, size_t *n, struct capsa_error **err)
{
	*out = xcalloc(1, sizeof(**out));
	*n = 1;
	linux_ip4net_parse(DEFAULT_SUBNET, &(*out)[0], NULL);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT subnet FROM networks", &st, err) < 0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct linux_ip4net s;
		if (linux_ip4net_parse((const char *)sqlite3_column_text(st, 0), &s, NULL) == 0) {
			*out = xrealloc(*out, (*n + 1) * sizeof(**out));
			(*out)[(*n)++] = s;
		}
	}
	return 0;
}

static bool overlaps_any(const struct linux_ip4net *s, const struct linux_ip4net *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (linux_ip4net_overlap(s, &v[i]))
			return true;
	return false;
}

/* The host's routes that a subnet must not overlap (not the default). */
static void host_routes(struct linux_ip4net **v, size_t *n)
{
	struct linux_route4 *r = NULL;
	size_t cnt = 0;
	if (linux_routes4(&r, &cnt, NULL) < 0)
		return;
	for (size_t i = 0; i < cnt; i++) {
		if (r[i].is_default)
			continue;
		*v = xrealloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = r[i].dst;
	}
	free(r);
}

static int choose_subnet(const struct capsa_network_opts *o, const struct linux_ip4net *taken, size_t n,
			 struct linux_ip4net *out, struct capsa_error **err)
{
	char a[16];
	if (o->subnet) {
		if (linux_ip4net_parse(o->subnet, out, err) < 0)
			return error_wrap(err, "network %s: subnet", o->name);
		if (!strchr(o->subnet, '/') || out->prefix < 16 || out->prefix > 29)
			return error_set(err, EINVAL, "network %s: subnet '%s': give a prefix of /16 to /29", o->name,
					 o->subnet);
		if (out->addr & ~linux_ip4_mask(out->prefix)) {
			linux_ip4_format(out->addr & linux_ip4_mask(out->prefix), a);
			return error_set(err, EINVAL, "network %s: subnet '%s' is not a network address (%s/%d is)", o->name,
					 o->subnet, a, out->prefix);
		}
		if (overlaps_any(out, taken, n))
			return error_set(err, EEXIST,
					 "network %s: subnet %s overlaps another network's or one of the host's routes",
					 o->name, o->subnet);
		return 0;
	}
	struct linux_ip4net pool;
	linux_ip4net_parse(AUTO_POOL, &pool, NULL);
	for (uint32_t i = 0; i < 256; i++) {
		struct linux_ip4net s = { pool.addr + (i << 8), 24 };
		if (!overlaps_any(&s, taken, n)) {
			*out = s;
			return 0;
		}
	}
	return error_set(err, ENOSPC, "network %s: every /24 of %s is taken: give --subnet", o->name, AUTO_POOL);
}

static void teardown(const struct net_network *n)
{
	char net[16], gw[16];
	linux_ip4_format(n->subnet.addr, net);
	linux_ip4_format(n->gateway, gw);
	char *steps[] = {
		xasprintf("delete element inet capsa nets4 { %s/%d }", net, n->subnet.prefix),
		xasprintf("delete element inet capsa gw4 { %s }", gw),
		xasprintf("delete element inet capsa bridges { \"%s\" }", n->bridge),
		xasprintf("delete element inet capsa same_bridge { \"%s\" . \"%s\" }", n->bridge, n->bridge),
	};
	nft_run_each_detached(steps, ARRAY_SIZE(steps));
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++)
		free(steps[i]);
	net_dns_network_stop(n);
	linux_link_delete(n->bridge, NULL);
	_cleanup_free_ char *dir = net_state_dir(NULL);
	if (dir) {
		_cleanup_free_ char *sub = xasprintf("%s/%s", dir, n->bridge);
		rm_rf_at(AT_FDCWD, sub, NULL);
	}
}

static int insert_network(struct capsa_ctx *ctx, const struct capsa_network_opts *o, struct net_network *out,
			  struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db || store_begin(db, err) < 0)
		return -1;
	struct linux_ip4net *taken = NULL, subnet;
	size_t n = 0;
	_cleanup_free_ char *id = random_hex(32);
	_cleanup_free_ char *bridge = xasprintf("cn%.10s", id);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *cidr = NULL, *labels = NULL;
	int rc = -1;
	if (taken_subnets(db, &taken, &n, err) < 0)
		goto out;
	host_routes(&taken, &n);
	if (choose_subnet(o, taken, n, &subnet, err) < 0)
		goto out;
	char a[16];
	linux_ip4_format(subnet.addr, a);
	cidr = xasprintf("%s/%d", a, subnet.prefix);
	json_t *l = json_object();
	for (char **p = o->labels; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		_cleanup_free_ char *k = eq ? xstrndup(*p, (size_t)(eq - *p)) : xstrdup(*p);
		json_object_set_new(l, k, json_string(eq ? eq + 1 : ""));
	}
	labels = json_dumps(l, JSON_COMPACT);
	json_decref(l);
	if (store_prepare(db, "INSERT INTO networks(id, name, subnet, bridge, labels, created_at) VALUES(?,?,?,?,?,?)",
			  &st, err) < 0)
		goto out;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, o->name);
	store_bind_text(st, 3, cidr);
	store_bind_text(st, 4, bridge);
	store_bind_text(st, 5, labels);
	sqlite3_bind_int64(st, 6, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		if (sqlite3_errcode(db->db) == SQLITE_CONSTRAINT)
			error_set(err, EEXIST, "network %s exists already", o->name);
		else
			store_error(db, "record network", err);
		goto out;
	}
	if (store_commit(db, err) < 0)
		goto out;
	rc = fill_network(o->name, id, bridge, cidr, out, err);
out:
	if (rc < 0)
		store_rollback(db);
	free(taken);
	return rc;
}

static void delete_row(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (db && store_prepare(db, "DELETE FROM networks WHERE id=?", &st, NULL) == 0) {
		store_bind_text(st, 1, id);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
}

CAPSA_EXPORT int capsa_network_create(struct capsa_ctx *ctx, const struct capsa_network_opts *o,
				      struct capsa_error **err)
{
	if (ctx->rootless)
		return error_set(err, ENOTSUP, "networks need root: rootless sandboxes have --network none or host");
	if (check_name(o->name, err) < 0)
		return -1;
	for (char **p = o->labels; p && *p; p++)
		if (!**p || **p == '=')
			return error_set(err, EINVAL, "label '%s': empty key", *p);
	struct net_network n;
	if (insert_network(ctx, o, &n, err) < 0)
		return -1;
	int rc = net_network_ensure(ctx, &n, err);
	if (rc < 0) {
		/* nothing half-made stays: the bridge, its nft elements, the row */
		int lock = net_state_lock(NULL);
		teardown(&n);
		if (lock >= 0)
			close(lock);
		delete_row(ctx, n.id);
	}
	net_network_release(&n);
	return rc;
}

/* Running sandboxes on the network: "name (ip)" each, for messages and
 * inspect. */
static json_t *network_sandboxes(struct capsa_ctx *ctx, const char *name)
{
	json_t *a = json_array();
	struct store *db = ctx_db(ctx, NULL);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db,
				 "SELECT s.id, s.name, n.ip FROM sandbox_net n JOIN sandboxes s ON s.id=n.sandbox_id "
				 "WHERE n.network=? AND n.released=0 AND s.state!='exited' ORDER BY s.created_at",
				 &st, NULL) < 0)
		return a;
	store_bind_text(st, 1, name);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s?}", "id", (const char *)sqlite3_column_text(st, 0),
						   "name", (const char *)sqlite3_column_text(st, 1), "ip",
						   (const char *)sqlite3_column_text(st, 2)));
	return a;
}

CAPSA_EXPORT int capsa_network_remove(struct capsa_ctx *ctx, const char *name, struct capsa_error **err)
{
	if (name && strcmp(name, NET_DEFAULT) == 0)
		return error_set(err, EPERM, "network %s is the host's default network and stays", NET_DEFAULT);
	struct net_network n;
	if (net_network_get(ctx, name, &n, err) < 0)
		return -1;
	int rc = -1;
	/* sandboxes that ended without their release get it now */
	capsa_sandbox_reconcile(ctx, NULL);
	json_t *users = network_sandboxes(ctx, n.name);
	if (json_array_size(users) > 0) {
		struct buf b = BUF_INIT;
		size_t i;
		json_t *v;
		json_array_foreach(users, i, v)
			buf_appendf(&b, "%s%s", i ? ", " : "", json_string_value(json_object_get(v, "name")));
		error_set(err, EBUSY, "network %s is in use by %zu running sandbox%s (%s)", n.name,
			  json_array_size(users), json_array_size(users) == 1 ? "" : "es", buf_cstr(&b));
		buf_release(&b);
		goto out;
	}
	int lock = net_state_lock(err);
	if (lock < 0)
		goto out;
	teardown(&n);
	close(lock);
	delete_row(ctx, n.id);
	rc = 0;
out:
	json_decref(users);
	net_network_release(&n);
	return rc;
}

static json_t *network_json(struct capsa_ctx *ctx, const struct net_network *n, const char *labels,
			    int64_t created, bool full)
{
	char net[16], gw[16];
	linux_ip4_format(n->subnet.addr, net);
	linux_ip4_format(n->gateway, gw);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", n->name, "id", n->id, "gateway", gw, "bridge",
			      n->bridge, "builtin", strcmp(n->id, "default") == 0);
	json_object_set_new(o, "subnet", json_sprintf("%s/%d", net, n->subnet.prefix));
	json_t *l = labels ? json_loads(labels, 0, NULL) : NULL;
	json_object_set_new(o, "labels", l ? l : json_object());
	if (created) {
		char ts[40];
		format_rfc3339(created, ts, sizeof(ts));
		json_object_set_new(o, "created", json_string(ts));
	}
	json_t *sb = network_sandboxes(ctx, n->name);
	if (full)
		json_object_set_new(o, "sandboxes", sb);
	else {
		json_object_set_new(o, "running", json_integer((json_int_t)json_array_size(sb)));
		json_decref(sb);
	}
	return o;
}

static char *dump(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	return s;
}

CAPSA_EXPORT char *capsa_network_list(struct capsa_ctx *ctx, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db || capsa_sandbox_reconcile(ctx, err) < 0)
		return NULL;
	json_t *a = json_array();
	struct net_network n;
	if (net_network_get(ctx, NET_DEFAULT, &n, err) < 0) {
		json_decref(a);
		return NULL;
	}
	json_array_append_new(a, network_json(ctx, &n, NULL, 0, false));
	net_network_release(&n);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT name, id, bridge, subnet, labels, created_at FROM networks ORDER BY name", &st,
			  err) < 0) {
		json_decref(a);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (fill_network((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
				 (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3), &n,
				 NULL) < 0)
			continue;
		json_array_append_new(a, network_json(ctx, &n, (const char *)sqlite3_column_text(st, 4),
						      sqlite3_column_int64(st, 5), false));
		net_network_release(&n);
	}
	return dump(a);
}

CAPSA_EXPORT char *capsa_network_inspect(struct capsa_ctx *ctx, const char *name, struct capsa_error **err)
{
	if (capsa_sandbox_reconcile(ctx, err) < 0)
		return NULL;
	struct net_network n;
	if (net_network_get(ctx, name, &n, err) < 0)
		return NULL;
	_cleanup_free_ char *labels = NULL;
	int64_t created = 0;
	struct store *db = ctx_db(ctx, NULL);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (db && store_prepare(db, "SELECT labels, created_at FROM networks WHERE id=?", &st, NULL) == 0) {
		store_bind_text(st, 1, n.id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			labels = store_col_strdup(st, 0);
			created = sqlite3_column_int64(st, 1);
		}
	}
	json_t *o = network_json(ctx, &n, labels, created, true);
	net_network_release(&n);
	return dump(o);
}
