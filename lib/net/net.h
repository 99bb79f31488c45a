/* net.h: sandbox networking inside the library (docs/network.md).
 *
 * The world capsa manages is the network namespace it runs in: a bridge per
 * network with NAT to whatever the namespace routes to, an nftables table
 * (`inet capsa`, `bridge capsa`) holding every sandbox's egress policy and
 * anti-spoofing, a dnsmasq per network, and host-wide leases.  Host state
 * that is not kernel state lives in /run/capsa-net/<netns inode>/.
 * Everything a sandbox adds is removed by net_sandbox_release(), which the
 * end of every sandbox runs (finalize, reconcile), and is taken over from a
 * dead owner when its lease is reclaimed.
 */
#ifndef CAPSA_NET_H
#define CAPSA_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/sandbox.h"
#include "linux/rtnl.h"
#include "store/context.h"

/* ---- egress policy (policy.c) ------------------------------------------ */

enum net_rule_kind { RULE_NET, RULE_NAME, RULE_SUFFIX, RULE_HOST };

struct net_rule {
	enum net_rule_kind kind;
	struct linux_ip4net net; /* RULE_NET: masked to its prefix */
	char *name;		 /* RULE_NAME: a.b.c; RULE_SUFFIX: b.c for "*.b.c" */
};

struct net_policy {
	struct net_rule *allow, *deny;
	size_t n_allow, n_deny;
};

/* Parses --allow-out / --deny-out entries (each may hold several, comma
 * separated): a CIDR, an IPv4 address, a hostname, "*.domain", or "host"
 * (the host's own addresses; allow only). */
int net_policy_parse(char *const *allow, char *const *deny, struct net_policy *out, struct capsa_error **err);
void net_policy_release(struct net_policy *p);
bool net_policy_has_names(const struct net_policy *p);
bool net_policy_allows_host(const struct net_policy *p);
/* {"allowOut": [...], "denyOut": [...]} as given, normalized */
char *net_policy_json(const struct net_policy *p);
/* The entries back, as text (allow or deny), a NULL-terminated strv. */
char **net_policy_strv(const struct net_policy *p, bool allow);

/* ---- nftables (nft.c) -------------------------------------------------- */

/* Runs an nft script (libnftables, loaded on first use) as one atomic
 * transaction; the error names what and carries nft's message. */
int nft_run(const char *script, const char *what, struct capsa_error **err);
/* Like nft_run, with the error (if any) dropped: for idempotent undo. */
void nft_run_quiet(const char *script);
/* nft_run for a script that removes something: the same answer, without
 * waiting for the kernel to free what it removed (nft.c). */
int nft_run_detached(const char *script, const char *what, struct capsa_error **err);
/* Each script in turn, errors ignored, the same way; returns when all ran. */
void nft_run_each_detached(char *const *scripts, size_t n);
/* Everything sandbox id (at ip) may have in nftables, each removal on its
 * own (any may be gone already). */
void net_nft_sandbox_scrub(const char *id, uint32_t ip);
/* The names a sandbox's objects have: its veth ("cv" + 12 hex of the id),
 * its MAC (02:ca and the four bytes of its address). */
void net_veth_name(const char *id, char out[16]);
void net_mac(uint32_t ip, uint8_t mac[6]);

/* ---- networks (network.c) ---------------------------------------------- */

#define NET_DEFAULT "bridge"

struct net_network {
	char *name;   /* "bridge" for the default one */
	char *id;     /* "default" or the row's id */
	char *bridge; /* capsa0, cn<id> */
	struct linux_ip4net subnet;
	uint32_t gateway;
};

void net_network_release(struct net_network *n);
/* The network by name (NET_DEFAULT or a row of the store); ENOENT. */
int net_network_get(struct capsa_ctx *ctx, const char *name, struct net_network *out, struct capsa_error **err);
/* The host side exists and runs: bridge, address, forwarding, the nft
 * base, the network's dnsmasq.  Idempotent; takes the state lock. */
int net_network_ensure(struct capsa_ctx *ctx, const struct net_network *n, struct capsa_error **err);
/* The next ensure takes the slow path (something was found missing). */
void net_network_forget_ready(const struct net_network *n);

/* ---- host state (state.c) ------------------------------------------------ */

/* /run/capsa-net/<inode of this thread's network namespace>, made when
 * missing (0755: dnsmasq reads its files there as nobody). */
char *net_state_dir(struct capsa_error **err);
/* <state dir>/<sub>, made when missing. */
char *net_state_subdir(const char *sub, struct capsa_error **err);
/* The state lock (flock of <state dir>/lock): close the fd to unlock. */
int net_state_lock(struct capsa_error **err);

/* A lease: address ip of network n, claimed host-wide for the sandbox whose
 * runtime directory is run_dir (held while its lock is); a claim whose lock
 * is free is stale and taken over, after the dead owner's nftables objects
 * are removed.  Under the state lock. */
int net_lease_take(const struct net_network *n, const char *id, const char *run_dir, uint32_t *ip,
		   struct capsa_error **err);
void net_lease_drop(const char *bridge, uint32_t ip, const char *id);

/* ---- DNS (dns.c) ---------------------------------------------------------- */

/* Whether the network's dnsmasq runs. */
bool net_dns_network_running(const struct net_network *n);
/* The network's dnsmasq runs (started when it does not). */
int net_dns_network_ensure(const struct net_network *n, struct capsa_error **err);
/* Kills the network's dnsmasq (network rm). */
void net_dns_network_stop(const struct net_network *n);
/* Sets the names (space separated; NULL: none) of ip in the network's
 * hosts file, which its dnsmasq then reloads. */
void net_dns_hosts_set(const struct net_network *n, const char *names, uint32_t ip);
/* A resolver of the sandbox's own, for hostname rules: dnsmasq on the
 * gateway at a port of its own, the sandbox's DNS redirected there; it
 * fills sb_<id>_n with what allowed names resolve to. */
int net_dns_sandbox_start(const struct net_network *n, const char *id, const char *run_dir, uint32_t ip,
			  const struct net_policy *p, struct capsa_error **err);
void net_dns_sandbox_stop(const char *run_dir);
/* The port of that resolver: one per address of the network. */
unsigned net_dns_sandbox_port(const struct net_network *n, uint32_t ip);

/* ---- a sandbox's network (sandbox.c of this module) --------------------- */

enum net_mode { NET_NONE, NET_BRIDGE, NET_HOST, NET_CONTAINER };

/* What a sandbox's create resolved from its options. */
struct net_plan {
	enum net_mode mode;
	struct net_network net;	/* NET_BRIDGE */
	struct net_policy policy;
	char *container;	/* NET_CONTAINER: the other sandbox's id */
	pid_t container_pid;	/* its PID 1 on the host */
};

int net_plan_make(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *o, struct net_plan *out,
		  struct capsa_error **err);
void net_plan_release(struct net_plan *p);
/* The sandbox's sandbox_net row (its intent), in the caller's transaction:
 * the one that inserts the sandbox's own row. */
int net_plan_record(struct capsa_ctx *ctx, const char *id, const struct net_plan *p, struct capsa_error **err);

/* What a sandbox got: recorded in sandbox_net, used to undo it. */
struct net_attach {
	uint32_t ip;
	char veth[16];
	uint8_t mac[6];
	int netns_fd; /* the sandbox's network namespace, for the supervisor; -1 */
	char *resolv, *hosts; /* its /etc/resolv.conf and /etc/hosts */
};

/* Before the supervisor: lease, network namespace with eth0 configured,
 * veth on the bridge, nft policy and anti-spoofing, the resolver.  Undone
 * by net_sandbox_release() on failure. */
int net_sandbox_setup(struct capsa_ctx *ctx, const char *id, const char *name, const char *hostname,
		      const struct net_plan *plan, struct net_attach *out, struct capsa_error **err);
/* Everything the sandbox's network holds on the host, whatever is left of
 * it: idempotent, and run by the end of every sandbox. */
void net_sandbox_release(struct capsa_ctx *ctx, const char *id);
void net_attach_release(struct net_attach *a);
/* {"mode", "network", "ip", "mac", "gateway", "allowOut", "denyOut"} for
 * inspect; NULL when the sandbox has no network record. */
struct json_t;
struct json_t *net_sandbox_json(struct capsa_ctx *ctx, const char *id);

#endif
