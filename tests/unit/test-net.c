/* test-net.c: lib/net and lib/linux/rtnl: egress rules as users write them
 * (and as they get them wrong), IPv4 prefixes, and the rtnetlink requests in
 * a network namespace of the test's own (needs root): a bridge, a veth into
 * another namespace, addresses, the default route, the route dump. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "linux/rtnl.h"
#include "net/net.h"
#include "tap.h"
#include "util/str.h"

static int parse(const char *allow, const char *deny, struct net_policy *p, struct capsa_error **err)
{
	char *a[] = { (char *)allow, NULL }, *d[] = { (char *)deny, NULL };
	return net_policy_parse(allow ? a : NULL, deny ? d : NULL, p, err);
}

static void test_policy(void)
{
	struct net_policy p;
	struct capsa_error *err = NULL;
	ok(parse("10.0.0.5/8, 1.2.3.4 ,example.com,*.Wild.Test,host", "203.0.113.0/24", &p, &err) == 0,
	   "a list of every kind parses");
	is_int((int)p.n_allow, 5, "five allow rules");
	ok(p.allow[0].kind == RULE_NET && p.allow[0].net.addr == 0x0a000000 && p.allow[0].net.prefix == 8,
	   "a CIDR is masked to its prefix");
	ok(p.allow[1].kind == RULE_NET && p.allow[1].net.prefix == 32, "an address is a /32");
	ok(p.allow[3].kind == RULE_SUFFIX && strcmp(p.allow[3].name, "wild.test") == 0, "a wildcard, lowered");
	ok(net_policy_has_names(&p) && net_policy_allows_host(&p), "names and host seen");
	char **v = net_policy_strv(&p, true);
	ok(strcmp(v[0], "10.0.0.0/8") == 0 && strcmp(v[1], "1.2.3.4") == 0 && strcmp(v[3], "*.wild.test") == 0 &&
		   strcmp(v[4], "host") == 0,
	   "rules read back normalized");
	strv_free(v);
	char *json = net_policy_json(&p);
	ok(strstr(json, "\"denyOut\":[\"203.0.113.0/24\"]") != NULL, "json: %s", json);
	free(json);
	net_policy_release(&p);

	static const struct {
		const char *allow, *deny, *want;
	} bad[] = {
		{ "10.0.0.0/33", NULL, "prefix must be 0-32" },
		{ "300.1.1.1", NULL, "not an IPv4" },
		{ "*.com", NULL, "two labels" },
		{ "a*.example.com", NULL, "leftmost" },
		{ "*", NULL, "'*'" },
		{ "fe80::1", NULL, "IPv6" },
		{ "bad_name.com", NULL, "'_'" },
		{ "a,,b.com", NULL, "empty entry" },
		{ NULL, "host", "only --allow-out" },
		{ "-bad.example.com", NULL, "starts or ends with '-'" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		int r = parse(bad[i].allow, bad[i].deny, &p, &err);
		ok(r < 0 && err && strstr(err->msg, bad[i].want), "refused: %s -> %s", bad[i].allow ? bad[i].allow : bad[i].deny,
		   err ? err->msg : "(no error)");
		capsa_error_free(err);
	}
	/* found by fuzz-egress: "Host" was a hostname that read back as the keyword */
	err = NULL;
	ok(parse("HoSt", NULL, &p, &err) == 0 && p.allow[0].kind == RULE_HOST, "the keyword in any case");
	net_policy_release(&p);
	err = NULL;
	ok(parse(NULL, NULL, &p, &err) == 0 && p.n_allow == 0 && p.n_deny == 0, "no rules: the default policy");
	net_policy_release(&p);
}

static void test_prefixes(void)
{
	struct linux_ip4net a, b;
	ok(linux_ip4net_parse("10.88.0.0/16", &a, NULL) == 0 && linux_ip4net_parse("10.88.5.0/24", &b, NULL) == 0 &&
		   linux_ip4net_overlap(&a, &b),
	   "a /24 inside a /16 overlaps it");
	linux_ip4net_parse("10.89.0.0/24", &b, NULL);
	ok(!linux_ip4net_overlap(&a, &b), "neighbours do not overlap");
	is_int((int)linux_ip4_mask(0), 0, "mask /0");
	ok(linux_ip4_mask(32) == 0xffffffffu && linux_ip4_mask(24) == 0xffffff00u, "masks /32 and /24");
	char s[16];
	linux_ip4_format(0xc0000202, s);
	ok(strcmp(s, "192.0.2.2") == 0, "formatted");
	uint8_t mac[6];
	net_mac(0x0a580002, mac);
	ok(mac[0] == 2 && mac[1] == 0xca && mac[5] == 2, "a sandbox's MAC from its address");
	char veth[16];
	net_veth_name("0123456789abcdef0123", veth);
	ok(strcmp(veth, "cv0123456789ab") == 0 && strlen(veth) < IFNAMSIZ, "a sandbox's veth name");
}

/* In a namespace of our own: nothing of the host's is touched. */
static void test_rtnl(void)
{
	int host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (getuid() != 0 || host < 0 || unshare(CLONE_NEWNET) < 0) {
		ok(1, "# SKIP rtnl needs root");
		return;
	}
	struct capsa_error *err = NULL;
	ok(linux_bridge_ensure("tbr0", &err) == 0 && if_nametoindex("tbr0") > 0, "bridge made");
	ok(linux_bridge_ensure("tbr0", &err) == 0, "made again: already there is success");
	struct linux_ip4net gw;
	linux_ip4net_parse("10.99.0.1/24", &gw, NULL);
	ok(linux_addr_add("tbr0", &gw, &err) == 0 && linux_addr_add("tbr0", &gw, &err) == 0, "address, twice");
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	/* a second namespace for the peer end */
	ok(unshare(CLONE_NEWNET) == 0, "peer namespace");
	int peer = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	setns(self, CLONE_NEWNET);
	uint8_t mac[6] = { 2, 0xca, 1, 2, 3, 4 };
	ok(linux_veth_create("tv0", (int)if_nametoindex("tbr0"), "eth0", peer, mac, &err) == 0, "veth into the peer");
	ok(linux_veth_create("tv0", 0, "eth0", peer, mac, &err) < 0 && err && err->code == EEXIST, "its name is taken");
	capsa_error_free(err);
	err = NULL;
	setns(peer, CLONE_NEWNET);
	struct linux_ip4net a;
	linux_ip4net_parse("10.99.0.2/24", &a, NULL);
	ok(if_nametoindex("eth0") > 0 && linux_addr_add("eth0", &a, &err) == 0 && linux_link_up("eth0", &err) == 0 &&
		   linux_route_default(gw.addr, &err) == 0,
	   "peer configured: address, up, default route");
	struct linux_route4 *r;
	size_t n;
	ok(linux_routes4(&r, &n, &err) == 0, "routes dumped");
	bool dflt = false, link = false;
	for (size_t i = 0; i < n; i++) {
		dflt |= r[i].is_default && r[i].gateway;
		link |= !r[i].gateway && r[i].dst.prefix == 24 && strcmp(r[i].ifname, "eth0") == 0;
	}
	ok(dflt && link, "the default route and the link's subnet are there");
	free(r);
	setns(self, CLONE_NEWNET);
	ok(linux_link_delete("tv0", &err) == 0 && if_nametoindex("tv0") == 0, "veth deleted");
	ok(linux_link_delete("tv0", &err) == 0, "deleting a missing link is success");
	ok(linux_route_default(0x0ac80001 /* 10.200.0.1: no route to it */, &err) < 0 && err, "a default route through nowhere is refused: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	setns(host, CLONE_NEWNET);
	close(host);
	close(self);
	close(peer);
}

int main(void)
{
	test_policy();
	test_prefixes();
	test_rtnl();
	return done_testing();
}
