/* sandbox.c: one sandbox's network: what its create resolves (the plan),
 * what it gets on the host (a lease, a veth on the bridge, its policy and
 * anti-spoofing in nftables, maybe a resolver of its own), and the release
 * of all of it at its end.
 *
 * Order (crash safety): the sandbox_net row (intent) before the lease,
 * the lease before anything that uses its address; the release reads the
 * row and undoes whatever exists, each step idempotent, so it can run any
 * number of times, after any crash.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsa/network.h"
#include "linux/ns.h"
#include "linux/rootless.h"
#include "net.h"
#include "sandbox/sandbox.h"
#include "util/fs.h"
#include "util/str.h"
#include "util/trace.h"

void net_veth_name(const char *id, char out[16])
{
	snprintf(out, 16, "cv%.12s", id);
}

void net_mac(uint32_t ip, uint8_t mac[6])
{
	mac[0] = 0x02;
	mac[1] = 0xca;
	mac[2] = (uint8_t)(ip >> 24);
	mac[3] = (uint8_t)(ip >> 16);
	mac[4] = (uint8_t)(ip >> 8);
	mac[5] = (uint8_t)ip;
}

static void mac_text(const uint8_t *m, char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* ---- the plan ------------------------------------------------------------ */

void net_plan_release(struct net_plan *p)
{
	net_network_release(&p->net);
	net_policy_release(&p->policy);
	free(p->container);
	memset(p, 0, sizeof(*p));
}

static int plan_container(struct capsa_ctx *ctx, const char *ref, struct net_plan *p, struct capsa_error **err)
{
	struct sb_row r;
	if (!*ref)
		return error_set(err, EINVAL, "invalid network 'container:': no sandbox named");
	if (sandbox_lookup(ctx, ref, &r, err) < 0)
		return error_wrap(err, "network container:%s", ref);
	int rc = 0;
	if (strcmp(r.state, "running") != 0 && strcmp(r.state, "paused") != 0)
		rc = error_set(err, ESRCH, "network container:%s: sandbox %s is %s, not running", ref, r.name, r.state);
	else if (r.init_pid <= 0 || !sandbox_alive(ctx, &r))
		rc = error_set(err, ESRCH, "network container:%s: sandbox %s is not running", ref, r.name);
	if (rc == 0) {
		p->mode = NET_CONTAINER;
		p->container = xstrdup(r.id);
		p->container_pid = r.init_pid;
	}
	sb_row_release(&r);
	return rc;
}

/* --dns and --add-host, checked before anything is made. */
static int plan_resolver(const struct capsa_sandbox_opts *o, const char *mode, struct net_plan *p,
			 struct capsa_error **err)
{
	unsigned char addr[16];
	for (char **d = o->dns; d && *d; d++) {
		if (inet_pton(AF_INET, *d, addr) != 1 && inet_pton(AF_INET6, *d, addr) != 1)
			return error_set(err, EINVAL, "invalid --dns '%.100s': not an IPv4 or IPv6 address", *d);
		if (p->mode == NET_NONE || p->mode == NET_CONTAINER)
			return error_set(err, EINVAL, "--dns needs a network of the sandbox's own (not --network %s)", mode);
		if (net_policy_has_names(&p->policy))
			return error_set(err, EINVAL, "--dns '%s': egress rules that name hosts are decided by capsa's "
						      "resolver, which the sandbox must use",
					 *d);
	}
	for (char **h = o->add_hosts; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		if (!colon)
			return error_set(err, EINVAL, "invalid --add-host '%.100s': expected NAME:ADDRESS", *h);
		_cleanup_free_ char *name = xstrndup(*h, (size_t)(colon - *h));
		if (check_dns_name(name, "--add-host name", 253, err) < 0)
			return -1;
		if (inet_pton(AF_INET, colon + 1, addr) != 1 && inet_pton(AF_INET6, colon + 1, addr) != 1)
			return error_set(err, EINVAL, "invalid --add-host '%.100s': '%s' is not an IPv4 or IPv6 address", *h,
					 colon + 1);
		if (p->mode == NET_CONTAINER)
			return error_set(err, EINVAL, "--add-host: a container: sandbox has the other sandbox's /etc/hosts");
	}
	return 0;
}

/* The host's choice of default ($CAPSA_DEFAULT_NETWORK: an operator's
 * setting, like docker's daemon configuration), else bridge (none when
 * rootless). */
CAPSA_EXPORT const char *capsa_network_default(struct capsa_ctx *ctx)
{
	const char *dflt = getenv("CAPSA_DEFAULT_NETWORK");
	return dflt && *dflt ? dflt : ctx->rootless ? "none" : NET_DEFAULT;
}

int net_plan_make(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *o, struct net_plan *p,
		  struct capsa_error **err)
{
	memset(p, 0, sizeof(*p));
	const char *mode = o->network;
	if (!mode || !*mode)
		mode = capsa_network_default(ctx);
	int rc = 0;
	if (strcmp(mode, "none") == 0) {
		p->mode = NET_NONE;
	} else if (strcmp(mode, "host") == 0) {
		p->mode = NET_HOST;
	} else if (str_has_prefix(mode, "container:")) {
		rc = plan_container(ctx, mode + 10, p, err);
	} else if (ctx->rootless) {
		rc = error_set(err, ENOTSUP, "network '%.100s': rootless sandboxes have --network none or host only "
					     "(user-mode networking is not built yet)",
			       mode);
	} else {
		p->mode = NET_BRIDGE;
		rc = net_network_get(ctx, mode, &p->net, err);
	}
	if (rc == 0 && net_policy_parse(o->allow_out, o->deny_out, &p->policy, err) < 0)
		rc = -1;
	if (rc == 0 && p->mode != NET_BRIDGE && (p->policy.n_allow || p->policy.n_deny))
		rc = error_set(err, EINVAL, "--allow-out and --deny-out need a network of capsa's (not --network %s)", mode);
	if (rc == 0)
		rc = plan_resolver(o, mode, p, err);
	if (rc < 0)
		net_plan_release(p);
	return rc;
}

/* ---- nftables ------------------------------------------------------------- */

static void set_elements(struct buf *b, const struct net_rule *r, size_t n)
{
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (r[i].kind != RULE_NET)
			continue;
		char a[16];
		linux_ip4_format(r[i].net.addr, a);
		buf_appendf(b, "%s%s/%d", any ? ", " : " elements = { ", a, r[i].net.prefix);
		any = true;
	}
	if (any)
		buf_appendf(b, " };");
}

static bool allows_any(const struct net_policy *p)
{
	for (size_t i = 0; i < p->n_allow; i++)
		if (p->allow[i].kind != RULE_HOST)
			return true;
	return false;
}

/* The sandbox's own chain when its rules are not the default policy. */
static void policy_chain(struct buf *b, const char *id12, const struct net_policy *p)
{
	bool names = net_policy_has_names(p);
	buf_appendf(b, "add chain inet capsa sb_%s\n", id12);
	/* auto-merge: rules that nest or overlap (10.0.0.0/8 and 10.1.0.0/16) are one range */
	buf_appendf(b, "add set inet capsa sb_%s_a { type ipv4_addr; flags interval; auto-merge;", id12);
	set_elements(b, p->allow, p->n_allow);
	buf_appendf(b, " }\nadd set inet capsa sb_%s_d { type ipv4_addr; flags interval; auto-merge;", id12);
	set_elements(b, p->deny, p->n_deny);
	buf_appendf(b, " }\nadd set inet capsa sb_%s_n { type ipv4_addr; flags timeout; timeout 1h; }\n", id12);
	buf_appendf(b, "add rule inet capsa sb_%s ip daddr @sb_%s_d drop\n", id12, id12);
	/* names are decided by capsa's resolver: no other one may answer */
	if (names)
		buf_appendf(b, "add rule inet capsa sb_%s meta l4proto { tcp, udp } th dport { 53, 853 } drop\n", id12);
	buf_appendf(b, "add rule inet capsa sb_%s ip daddr @sb_%s_a accept\n", id12, id12);
	buf_appendf(b, "add rule inet capsa sb_%s ip daddr @sb_%s_n accept\n", id12, id12);
	buf_appendf(b, "add rule inet capsa sb_%s %s\n", id12, allows_any(p) ? "drop" : "jump public");
}

/* The sandbox's objects; with guard, its anti-spoofing elements too (an
 * update of its rules leaves those). */
static char *sandbox_script(const char *id, const struct net_network *n, uint32_t ip, const struct net_policy *p,
			    bool guard)
{
	char id12[13], a[16], gw[16], mac_s[18], veth[16];
	uint8_t mac[6];
	snprintf(id12, sizeof(id12), "%.12s", id);
	linux_ip4_format(ip, a);
	linux_ip4_format(n->gateway, gw);
	net_mac(ip, mac);
	mac_text(mac, mac_s);
	net_veth_name(id, veth);
	struct buf b = BUF_INIT;
	bool custom = p->n_deny || allows_any(p);
	if (custom) {
		policy_chain(&b, id12, p);
		buf_appendf(&b, "add element inet capsa pol4 { %s : jump sb_%s }\n", a, id12);
	} else {
		buf_appendf(&b, "add element inet capsa pol4 { %s : jump public }\n", a);
	}
	if (net_policy_has_names(p)) {
		unsigned port = net_dns_sandbox_port(n, ip);
		buf_appendf(&b, "add chain inet capsa sbd_%s\n", id12);
		buf_appendf(&b, "add rule inet capsa sbd_%s ip daddr %s udp dport 53 dnat ip to %s:%u\n", id12, gw, gw, port);
		buf_appendf(&b, "add rule inet capsa sbd_%s ip daddr %s tcp dport 53 dnat ip to %s:%u\n", id12, gw, gw, port);
		buf_appendf(&b, "add element inet capsa dns4 { %s : jump sbd_%s }\n", a, id12);
	}
	if (net_policy_allows_host(p))
		buf_appendf(&b, "add element inet capsa hostok4 { %s }\n", a);
	if (guard) {
		buf_appendf(&b, "add element bridge capsa ports { \"%s\" }\n", veth);
		buf_appendf(&b, "add element bridge capsa bind4 { \"%s\" . %s . %s }\n", veth, mac_s, a);
	}
	return buf_steal(&b);
}

void net_nft_sandbox_scrub(const char *id, uint32_t ip)
{
	char id12[13], a[16], mac_s[18], veth[16];
	uint8_t mac[6];
	snprintf(id12, sizeof(id12), "%.12s", id);
	linux_ip4_format(ip, a);
	net_mac(ip, mac);
	mac_text(mac, mac_s);
	net_veth_name(id, veth);
	char *steps[] = {
		xasprintf("delete element inet capsa pol4 { %s }", a),
		xasprintf("delete element inet capsa dns4 { %s }", a),
		xasprintf("delete element inet capsa hostok4 { %s }", a),
		xasprintf("delete element bridge capsa ports { \"%s\" }", veth),
		xasprintf("delete element bridge capsa bind4 { \"%s\" . %s . %s }", veth, mac_s, a),
		xasprintf("flush chain inet capsa sb_%s; delete chain inet capsa sb_%s", id12, id12),
		xasprintf("delete set inet capsa sb_%s_a", id12),
		xasprintf("delete set inet capsa sb_%s_d", id12),
		xasprintf("delete set inet capsa sb_%s_n", id12),
		xasprintf("flush chain inet capsa sbd_%s; delete chain inet capsa sbd_%s", id12, id12),
	};
	nft_run_each_detached(steps, ARRAY_SIZE(steps));
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++)
		free(steps[i]);
}

/* The objects a sandbox's script made, removed in one batch. */
static char *release_script(const char *id, uint32_t ip, const struct net_policy *p, bool guard)
{
	char id12[13], a[16], mac_s[18], veth[16];
	uint8_t mac[6];
	snprintf(id12, sizeof(id12), "%.12s", id);
	linux_ip4_format(ip, a);
	net_mac(ip, mac);
	mac_text(mac, mac_s);
	net_veth_name(id, veth);
	struct buf b = BUF_INIT;
	buf_appendf(&b, "delete element inet capsa pol4 { %s }\n", a);
	if (p->n_deny || allows_any(p))
		buf_appendf(&b,
			    "flush chain inet capsa sb_%s\ndelete chain inet capsa sb_%s\ndelete set inet capsa sb_%s_a\n"
			    "delete set inet capsa sb_%s_d\ndelete set inet capsa sb_%s_n\n",
			    id12, id12, id12, id12, id12);
	if (net_policy_has_names(p))
		buf_appendf(&b, "delete element inet capsa dns4 { %s }\nflush chain inet capsa sbd_%s\n"
				"delete chain inet capsa sbd_%s\n",
			    a, id12, id12);
	if (net_policy_allows_host(p))
		buf_appendf(&b, "delete element inet capsa hostok4 { %s }\n", a);
	if (guard) {
		buf_appendf(&b, "delete element bridge capsa ports { \"%s\" }\n", veth);
		buf_appendf(&b, "delete element bridge capsa bind4 { \"%s\" . %s . %s }\n", veth, mac_s, a);
	}
	return buf_steal(&b);
}

/* ---- the namespace ---------------------------------------------------------- */

/* Runs fn in the network namespace ns on this thread, and comes back. */
static int in_netns(int ns, int (*fn)(void *, struct capsa_error **), void *arg, struct capsa_error **err)
{
	_cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return error_sys(err, errno, "open this thread's network namespace");
	if (setns(ns, CLONE_NEWNET) < 0)
		return error_sys(err, errno, "enter the sandbox's network namespace");
	int rc = fn(arg, err);
	if (setns(self, CLONE_NEWNET) < 0) {
		/* this thread would go on in the sandbox's namespace: nothing
		 * it does next may be trusted to happen on the host */
		abort();
	}
	return rc;
}

struct inside {
	uint32_t ip, gw;
	int prefix;
};

static int configure_inside(void *arg, struct capsa_error **err)
{
	struct inside *in = arg;
	struct linux_ip4net addr = { in->ip, in->prefix };
	if (linux_link_up("lo", err) < 0 || linux_addr_add("eth0", &addr, err) < 0 || linux_link_up("eth0", err) < 0 ||
	    linux_route_default(in->gw, err) < 0)
		return -1;
	/* IPv4 only: no address, router solicitation or neighbour discovery */
	linux_sysctl_set("net.ipv6.conf.all.disable_ipv6", "1", NULL);
	linux_sysctl_set("net.ipv6.conf.default.disable_ipv6", "1", NULL);
	return 0;
}

/* A new network namespace, as an fd; this thread stays where it was. */
static int new_netns(struct capsa_error **err)
{
	_cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return error_sys(err, errno, "open this thread's network namespace");
	if (unshare(CLONE_NEWNET) < 0)
		return error_sys(err, errno, "create a network namespace");
	int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int e = errno;
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); /* as in in_netns() */
	if (ns < 0)
		return error_sys(err, e, "open the new network namespace");
	return ns;
}

/* ---- the record ------------------------------------------------------------- */

static int record(struct capsa_ctx *ctx, const char *id, const char *mode, const struct net_plan *p, uint32_t ip,
		  struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db,
				 "INSERT INTO sandbox_net(sandbox_id, mode, network, bridge, ip, policy, container) "
				 "VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(sandbox_id) DO UPDATE SET ip=?5",
				 &st, err) < 0)
		return -1;
	char a[16] = "";
	if (ip)
		linux_ip4_format(ip, a);
	_cleanup_free_ char *policy = net_policy_json(&p->policy);
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, mode);
	store_bind_text(st, 3, p->mode == NET_BRIDGE ? p->net.name : NULL);
	store_bind_text(st, 4, p->mode == NET_BRIDGE ? p->net.bridge : NULL);
	store_bind_text(st, 5, ip ? a : NULL);
	store_bind_text(st, 6, policy);
	store_bind_text(st, 7, p->container);
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record the sandbox's network", err);
	return 0;
}

int net_plan_record(struct capsa_ctx *ctx, const char *id, const struct net_plan *p, struct capsa_error **err)
{
	static const char *const modes[] = { [NET_NONE] = "none", [NET_BRIDGE] = "bridge", [NET_HOST] = "host",
					     [NET_CONTAINER] = "container" };
	return record(ctx, id, modes[p->mode], p, 0, err);
}

void net_attach_release(struct net_attach *a)
{
	if (a->netns_fd >= 0)
		close(a->netns_fd);
	free(a->resolv);
	free(a->hosts);
	memset(a, 0, sizeof(*a));
	a->netns_fd = -1;
}

static char *hosts_text(const char *hostname, const char *name, uint32_t ip)
{
	char a[16];
	linux_ip4_format(ip, a);
	return xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s%s%s\n", a, hostname,
			 strcmp(hostname, name) ? " " : "", strcmp(hostname, name) ? name : "");
}

/* The other sandbox's network namespace and its resolver files. */
static int setup_container(struct capsa_ctx *ctx, const struct net_plan *p, struct net_attach *out,
			   struct capsa_error **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)p->container_pid);
	out->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (out->netns_fd < 0)
		return error_sys(err, errno, "network container:%.12s: its network namespace", p->container);
	_cleanup_free_ char *dir = sandbox_run_dir(ctx, p->container);
	struct buf b = BUF_INIT;
	_cleanup_free_ char *resolv = xasprintf("%s/resolv.conf", dir), *hosts = xasprintf("%s/hosts", dir);
	if (read_file_at(AT_FDCWD, resolv, 64 * 1024, &b, NULL) == 0)
		out->resolv = buf_steal(&b);
	buf_release(&b);
	if (read_file_at(AT_FDCWD, hosts, 64 * 1024, &b, NULL) == 0)
		out->hosts = buf_steal(&b);
	buf_release(&b);
	return 0;
}

static int setup_bridge(struct capsa_ctx *ctx, const char *id, const char *name, const char *hostname,
			const struct net_plan *p, struct net_attach *out, struct capsa_error **err)
{
	const struct net_network *n = &p->net;
	if (net_network_ensure(ctx, n, err) < 0)
		return -1;
	trace_mark("net: network ensured");
	_cleanup_free_ char *run_dir = sandbox_run_dir(ctx, id);
	int lock = net_state_lock(err);
	if (lock < 0)
		return -1;
	int rc = net_lease_take(n, id, run_dir, &out->ip, err);
	close(lock);
	if (rc < 0 || record(ctx, id, "bridge", p, out->ip, err) < 0)
		return -1;
	trace_mark("net: leased");
	net_veth_name(id, out->veth);
	net_mac(out->ip, out->mac);
	out->netns_fd = new_netns(err);
	if (out->netns_fd < 0)
		return -1;
	unsigned master = if_nametoindex(n->bridge);
	if (!master)
		return error_sys(err, errno, "bridge %s of network %s", n->bridge, n->name);
	if (linux_veth_create(out->veth, (int)master, "eth0", out->netns_fd, out->mac, err) < 0)
		return -1;
	trace_mark("net: veth");
	struct inside in = { out->ip, n->gateway, n->subnet.prefix };
	if (in_netns(out->netns_fd, configure_inside, &in, err) < 0)
		return -1;
	trace_mark("net: inside configured");
	_cleanup_free_ char *script = sandbox_script(id, n, out->ip, &p->policy, true);
	struct capsa_error *e = NULL;
	if (nft_run(script, "apply the sandbox's egress policy", &e) < 0) {
		/* the network's rules were taken away under the fast path of
		 * ensure (nft flush ruleset): make them again, once */
		capsa_error_free(e);
		net_network_forget_ready(n);
		if (net_network_ensure(ctx, n, err) < 0 || nft_run(script, "apply the sandbox's egress policy", err) < 0)
			return -1;
	}
	trace_mark("net: nft");
	if (net_policy_has_names(&p->policy) && net_dns_sandbox_start(n, id, run_dir, out->ip, &p->policy, err) < 0)
		return -1;
	if (strcmp(n->name, NET_DEFAULT) != 0) {
		_cleanup_free_ char *names = strcmp(hostname, name) ? xasprintf("%s %s", name, hostname) : xstrdup(name);
		net_dns_hosts_set(n, names, out->ip);
	}
	char gw[16];
	linux_ip4_format(n->gateway, gw);
	out->resolv = xasprintf("nameserver %s\n", gw);
	out->hosts = hosts_text(hostname, name, out->ip);
	return 0;
}

int net_sandbox_setup(struct capsa_ctx *ctx, const char *id, const char *name, const char *hostname,
		      const struct net_plan *p, struct net_attach *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	out->netns_fd = -1;
	switch (p->mode) {
	case NET_NONE:
		/* no network: no resolver to name */
		out->resolv = xstrdup("");
		return 0;
	case NET_HOST:
		return 0;
	case NET_CONTAINER:
		return setup_container(ctx, p, out, err);
	case NET_BRIDGE:
		if (setup_bridge(ctx, id, name, hostname, p, out, err) < 0)
			return error_wrap(err, "network %s", p->net.name);
		return 0;
	}
	return error_set(err, EINVAL, "unknown network mode %d", (int)p->mode);
}

/* ---- the release -------------------------------------------------------------- */

struct net_row {
	char *mode, *network, *bridge, *ip, *policy;
	bool released;
};

static void net_row_release(struct net_row *r)
{
	free(r->mode);
	free(r->network);
	free(r->bridge);
	free(r->ip);
	free(r->policy);
}

static int net_row_get(struct capsa_ctx *ctx, const char *id, struct net_row *r)
{
	memset(r, 0, sizeof(*r));
	struct store *db = ctx_db(ctx, NULL);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "SELECT mode, network, bridge, ip, policy, released FROM sandbox_net WHERE sandbox_id=?",
				 &st, NULL) < 0)
		return -1;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return -1;
	r->mode = store_col_strdup(st, 0);
	r->network = store_col_strdup(st, 1);
	r->bridge = store_col_strdup(st, 2);
	r->ip = store_col_strdup(st, 3);
	r->policy = store_col_strdup(st, 4);
	r->released = sqlite3_column_int(st, 5) != 0;
	return 0;
}

static void mark_released(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "UPDATE sandbox_net SET released=1 WHERE sandbox_id=?", &st, NULL) < 0)
		return;
	store_bind_text(st, 1, id);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* The policy a row recorded, parsed back. */
static void row_policy(const struct net_row *r, struct net_policy *p)
{
	memset(p, 0, sizeof(*p));
	json_error_t je;
	json_t *o = r->policy ? json_loads(r->policy, 0, &je) : NULL;
	char **allow = NULL, **deny = NULL;
	for (int k = 0; o && k < 2; k++) {
		json_t *a = json_object_get(o, k == 0 ? "allowOut" : "denyOut");
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v)
			if (json_is_string(v)) {
				if (k == 0)
					allow = strv_push(allow, json_string_value(v));
				else
					deny = strv_push(deny, json_string_value(v));
			}
	}
	json_decref(o);
	net_policy_parse(allow, deny, p, NULL);
	strv_free(allow);
	strv_free(deny);
}

void net_sandbox_release(struct capsa_ctx *ctx, const char *id)
{
	struct net_row r;
	if (net_row_get(ctx, id, &r) < 0)
		return;
	/* only the bridge holds anything on the host */
	if (r.released || strcmp(r.mode, "bridge") != 0 || !r.bridge) {
		net_row_release(&r);
		return;
	}
	_cleanup_free_ char *run_dir = sandbox_run_dir(ctx, id);
	net_dns_sandbox_stop(run_dir);
	char veth[16];
	net_veth_name(id, veth);
	trace_mark("net release: start");
	struct linux_ip4net ip = { 0, 32 };
	if (r.ip && linux_ip4net_parse(r.ip, &ip, NULL) == 0) {
		struct net_policy p;
		row_policy(&r, &p);
		_cleanup_free_ char *script = release_script(id, ip.addr, &p, true);
		if (nft_run_detached(script, "release", NULL) < 0)
			net_nft_sandbox_scrub(id, ip.addr); /* something was gone already */
		trace_mark("net release: nft");
		net_policy_release(&p);
		struct net_network n;
		if (r.network && strcmp(r.network, NET_DEFAULT) != 0 && net_network_get(ctx, r.network, &n, NULL) == 0) {
			net_dns_hosts_set(&n, NULL, ip.addr);
			net_network_release(&n);
		}
		net_lease_drop(r.bridge, ip.addr, id);
		trace_mark("net release: lease");
	}
	/* last: the kernel's teardown of a link holds up the next nftables
	 * commit (an RCU grace period) */
	linux_link_delete(veth, NULL);
	trace_mark("net release: veth deleted");
	mark_released(ctx, id);
	net_row_release(&r);
}

json_t *net_sandbox_json(struct capsa_ctx *ctx, const char *id)
{
	struct net_row r;
	if (net_row_get(ctx, id, &r) < 0)
		return NULL;
	json_t *o = json_pack("{s:s}", "mode", r.mode);
	if (r.network)
		json_object_set_new(o, "network", json_string(r.network));
	struct linux_ip4net ip;
	if (!r.released && r.ip && linux_ip4net_parse(r.ip, &ip, NULL) == 0) {
		struct net_network n;
		json_object_set_new(o, "ip", json_string(r.ip));
		uint8_t mac[6];
		char m[18];
		net_mac(ip.addr, mac);
		mac_text(mac, m);
		json_object_set_new(o, "mac", json_string(m));
		if (r.network && net_network_get(ctx, r.network, &n, NULL) == 0) {
			char gw[16];
			linux_ip4_format(n.gateway, gw);
			json_object_set_new(o, "gateway", json_string(gw));
			json_object_set_new(o, "prefixLength", json_integer(n.subnet.prefix));
			net_network_release(&n);
		}
	}
	json_t *pol = r.policy ? json_loads(r.policy, 0, NULL) : NULL;
	if (json_is_object(pol))
		json_object_update(o, pol);
	json_decref(pol);
	net_row_release(&r);
	return o;
}

/* ---- a running sandbox's rules ------------------------------------------------ */

static int set_policy_row(struct capsa_ctx *ctx, const char *id, const struct net_policy *p, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "UPDATE sandbox_net SET policy=? WHERE sandbox_id=?", &st, err) < 0)
		return -1;
	_cleanup_free_ char *json = net_policy_json(p);
	store_bind_text(st, 1, json);
	store_bind_text(st, 2, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record the sandbox's egress rules", err);
	return 0;
}

/* Waits (bounded) until the sandbox's resolver has let go of its port. */
static void wait_resolver_gone(const char *run_dir)
{
	_cleanup_free_ char *pidfile = xasprintf("%s/dns.pid", run_dir);
	struct buf b = BUF_INIT;
	pid_t pid = 0;
	if (read_file_at(AT_FDCWD, pidfile, 64, &b, NULL) == 0)
		pid = (pid_t)atoi(buf_cstr(&b));
	buf_release(&b);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	int64_t end = mono_ms() + 2000;
	while (pid > 0 && access(path, F_OK) == 0 && mono_ms() < end)
		poll(NULL, 0, 5);
}

static int replace_rules(struct capsa_ctx *ctx, const struct sb_row *sb, const struct net_row *r,
			 const struct net_policy *now, struct capsa_error **err)
{
	struct linux_ip4net ip;
	struct net_network n;
	if (!r->ip || linux_ip4net_parse(r->ip, &ip, err) < 0 || net_network_get(ctx, r->network, &n, err) < 0)
		return -1;
	struct net_policy old;
	row_policy(r, &old);
	_cleanup_free_ char *del = release_script(sb->id, ip.addr, &old, false);
	_cleanup_free_ char *add = sandbox_script(sb->id, &n, ip.addr, now, false);
	_cleanup_free_ char *both = xasprintf("%s%s", del, add);
	_cleanup_free_ char *run_dir = sandbox_run_dir(ctx, sb->id);
	/* one batch: the old rules and the new never apply half each */
	int rc = nft_run_detached(both, "replace the sandbox's egress rules", err);
	if (rc == 0 && (net_policy_has_names(&old) || net_policy_has_names(now))) {
		net_dns_sandbox_stop(run_dir);
		wait_resolver_gone(run_dir);
		if (net_policy_has_names(now))
			rc = net_dns_sandbox_start(&n, sb->id, run_dir, ip.addr, now, err);
	}
	net_policy_release(&old);
	net_network_release(&n);
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_set_egress(struct capsa_ctx *ctx, const char *sandbox, char *const *allow_out,
					  char *const *deny_out, struct capsa_error **err)
{
	struct net_policy now;
	if (net_policy_parse(allow_out, deny_out, &now, err) < 0)
		return -1;
	struct sb_row sb;
	struct net_row r = { 0 };
	int rc = -1;
	if (sandbox_lookup(ctx, sandbox, &sb, err) < 0) {
		net_policy_release(&now);
		return -1;
	}
	if (strcmp(sb.state, "running") != 0 && strcmp(sb.state, "paused") != 0) {
		error_set(err, ESRCH, "sandbox %s is not running", sb.name);
		goto out;
	}
	if (net_row_get(ctx, sb.id, &r) < 0 || strcmp(r.mode, "bridge") != 0 || r.released) {
		error_set(err, EINVAL, "sandbox %s has no network of capsa's (--network %s): egress rules need one",
			  sb.name, r.mode ? r.mode : "none");
		goto out;
	}
	rc = replace_rules(ctx, &sb, &r, &now, err);
	if (rc == 0)
		rc = set_policy_row(ctx, sb.id, &now, err);
	if (rc < 0)
		error_wrap(err, "sandbox %s", sb.name);
out:
	net_row_release(&r);
	sb_row_release(&sb);
	net_policy_release(&now);
	return rc;
}
