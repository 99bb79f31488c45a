/* rtnl.c: see rtnl.h.  One socket per request, an acknowledgement
 * for each: nothing here is on a path where a kept socket would pay. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtnl.h"
#include "util/fs.h"

#define NL_BUF 4096

struct nlreq {
	struct nlmsghdr *h;
	size_t cap;
	union {
		struct nlmsghdr align;
		char data[NL_BUF];
	} u;
};

static void *req_init(struct nlreq *r, uint16_t type, uint16_t flags, size_t body)
{
	memset(&r->u, 0, sizeof(r->u));
	r->h = &r->u.align;
	r->cap = sizeof(r->u);
	r->h->nlmsg_len = (uint32_t)NLMSG_LENGTH(body);
	r->h->nlmsg_type = type;
	r->h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
	r->h->nlmsg_seq = 1;
	return NLMSG_DATA(r->h);
}

/* Appends an attribute; all callers stay far below NL_BUF. */
static struct rtattr *attr(struct nlreq *r, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->h->nlmsg_len);
	struct rtattr *a = (struct rtattr *)((char *)r->h + off);
	a->rta_type = type;
	a->rta_len = (uint16_t)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h->nlmsg_len = (uint32_t)(off + RTA_ALIGN(a->rta_len));
	return a;
}

static void attr_str(struct nlreq *r, uint16_t type, const char *s)
{
	attr(r, type, s, strlen(s) + 1);
}

static void attr_u32(struct nlreq *r, uint16_t type, uint32_t v)
{
	attr(r, type, &v, sizeof(v));
}

static struct rtattr *nest(struct nlreq *r, uint16_t type)
{
	return attr(r, type, NULL, 0);
}

static void nest_end(struct nlreq *r, struct rtattr *a)
{
	a->rta_len = (uint16_t)((char *)r->h + r->h->nlmsg_len - (char *)a);
}

static int nl_socket(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -1;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends the request and waits for its acknowledgement: 0, or -errno. */
static int talk(struct nlreq *r)
{
	int fd = nl_socket();
	if (fd < 0)
		return -errno;
	r->h->nlmsg_flags |= NLM_F_ACK;
	int rc = -EIO;
	if (send(fd, r->h, r->h->nlmsg_len, 0) < 0) {
		rc = -errno;
		goto out;
	}
	union {
		struct nlmsghdr align;
		char data[NL_BUF];
	} buf;
	for (;;) {
		ssize_t n = recv(fd, &buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		for (struct nlmsghdr *h = &buf.align; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				rc = e->error;
				goto out;
			}
		}
	}
out:
	close(fd);
	return rc;
}

int linux_ip4net_parse(const char *s, struct linux_ip4net *out, struct capsa_error **err)
{
	char buf[32];
	if (!s || strlen(s) >= sizeof(buf))
		return error_set(err, EINVAL, "invalid address '%.64s'", s ? s : "");
	memcpy(buf, s, strlen(s) + 1);
	int prefix = 32;
	char *slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || p < 0 || p > 32)
			return error_set(err, EINVAL, "invalid address '%s': the prefix must be 0-32", s);
		prefix = (int)p;
	}
	struct in_addr a;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return error_set(err, EINVAL, "invalid address '%s': not an IPv4 address or CIDR", s);
	out->addr = ntohl(a.s_addr);
	out->prefix = prefix;
	return 0;
}

void linux_ip4_format(uint32_t addr, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255, addr & 255);
}

bool linux_ip4net_overlap(const struct linux_ip4net *a, const struct linux_ip4net *b)
{
	int p = a->prefix < b->prefix ? a->prefix : b->prefix;
	uint32_t m = linux_ip4_mask(p);
	return (a->addr & m) == (b->addr & m);
}

static int link_index(const char *name, struct capsa_error **err)
{
	unsigned idx = if_nametoindex(name);
	if (!idx)
		return error_sys(err, errno, "link %s", name);
	return (int)idx;
}

int linux_veth_create(const char *host, int master, const char *peer, int netns_fd, const uint8_t *mac,
		      struct capsa_error **err)
{
	struct nlreq r;
	struct ifinfomsg *ifi = req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	attr_str(&r, IFLA_IFNAME, host);
	if (master > 0)
		attr_u32(&r, IFLA_MASTER, (uint32_t)master);
	struct rtattr *li = nest(&r, IFLA_LINKINFO);
	attr_str(&r, IFLA_INFO_KIND, "veth");
	struct rtattr *data = nest(&r, IFLA_INFO_DATA);
	struct rtattr *pa = nest(&r, VETH_INFO_PEER);
	/* the peer's own ifinfomsg comes first inside VETH_INFO_PEER */
	struct ifinfomsg pifi = { .ifi_family = AF_UNSPEC };
	size_t off = NLMSG_ALIGN(r.h->nlmsg_len);
	memcpy((char *)r.h + off, &pifi, sizeof(pifi));
	r.h->nlmsg_len = (uint32_t)(off + NLMSG_ALIGN(sizeof(pifi)));
	attr_str(&r, IFLA_IFNAME, peer);
	if (netns_fd >= 0)
		attr_u32(&r, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	if (mac)
		attr(&r, IFLA_ADDRESS, mac, 6);
	nest_end(&r, pa);
	nest_end(&r, data);
	nest_end(&r, li);
	int rc = talk(&r);
	if (rc < 0)
		return error_sys(err, -rc, "create veth %s", host);
	return 0;
}

int linux_bridge_ensure(const char *name, struct capsa_error **err)
{
	struct nlreq r;
	struct ifinfomsg *ifi = req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	attr_str(&r, IFLA_IFNAME, name);
	struct rtattr *li = nest(&r, IFLA_LINKINFO);
	attr_str(&r, IFLA_INFO_KIND, "bridge");
	nest_end(&r, li);
	int rc = talk(&r);
	if (rc == -EEXIST)
		return linux_link_up(name, err);
	if (rc < 0)
		return error_sys(err, -rc, "create bridge %s", name);
	return 0;
}

int linux_link_up(const char *name, struct capsa_error **err)
{
	int idx = link_index(name, err);
	if (idx < 0)
		return -1;
	struct nlreq r;
	struct ifinfomsg *ifi = req_init(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = idx;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	int rc = talk(&r);
	if (rc < 0)
		return error_sys(err, -rc, "bring up %s", name);
	return 0;
}

int linux_link_delete(const char *name, struct capsa_error **err)
{
	unsigned idx = if_nametoindex(name);
	if (!idx)
		return errno == ENODEV || errno == ENXIO ? 0 : error_sys(err, errno, "link %s", name);
	struct nlreq r;
	struct ifinfomsg *ifi = req_init(&r, RTM_DELLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)idx;
	int rc = talk(&r);
	if (rc < 0 && rc != -ENODEV)
		return error_sys(err, -rc, "delete link %s", name);
	return 0;
}

int linux_addr_add(const char *ifname, const struct linux_ip4net *a, struct capsa_error **err)
{
	int idx = link_index(ifname, err);
	if (idx < 0)
		return -1;
	struct nlreq r;
	struct ifaddrmsg *ifa = req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)a->prefix;
	ifa->ifa_index = (unsigned)idx;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	uint32_t n = htonl(a->addr);
	attr(&r, IFA_LOCAL, &n, 4);
	attr(&r, IFA_ADDRESS, &n, 4);
	int rc = talk(&r);
	if (rc < 0 && rc != -EEXIST) {
		char s[16];
		linux_ip4_format(a->addr, s);
		return error_sys(err, -rc, "add address %s/%d to %s", s, a->prefix, ifname);
	}
	return 0;
}

int linux_route_default(uint32_t gw, struct capsa_error **err)
{
	struct nlreq r;
	struct rtmsg *rt = req_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	uint32_t n = htonl(gw);
	attr(&r, RTA_GATEWAY, &n, 4);
	int rc = talk(&r);
	if (rc < 0 && rc != -EEXIST) {
		char s[16];
		linux_ip4_format(gw, s);
		return error_sys(err, -rc, "add default route via %s", s);
	}
	return 0;
}

static void route_parse(struct nlmsghdr *h, struct linux_route4 **out, size_t *n)
{
	struct rtmsg *rt = NLMSG_DATA(h);
	if (rt->rtm_family != AF_INET || rt->rtm_type != RTN_UNICAST)
		return;
	int len = (int)RTM_PAYLOAD(h);
	uint32_t table = rt->rtm_table;
	struct linux_route4 r = { .dst.prefix = rt->rtm_dst_len };
	for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == 4) {
			uint32_t v;
			memcpy(&v, RTA_DATA(a), 4);
			r.dst.addr = ntohl(v);
		} else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == 4) {
			uint32_t idx;
			memcpy(&idx, RTA_DATA(a), 4);
			if (!if_indextoname(idx, r.ifname))
				r.ifname[0] = '\0';
		} else if (a->rta_type == RTA_GATEWAY) {
			r.gateway = true;
		} else if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) == 4) {
			memcpy(&table, RTA_DATA(a), 4);
		}
	}
	if (table != RT_TABLE_MAIN)
		return;
	r.is_default = r.dst.prefix == 0;
	*out = xrealloc(*out, (*n + 1) * sizeof(**out));
	(*out)[(*n)++] = r;
}

int linux_routes4(struct linux_route4 **out, size_t *n, struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	int fd = nl_socket();
	if (fd < 0)
		return error_sys(err, errno, "netlink socket");
	struct nlreq r;
	struct rtmsg *rt = req_init(&r, RTM_GETROUTE, NLM_F_DUMP, sizeof(*rt));
	rt->rtm_family = AF_INET;
	int rc = 0;
	if (send(fd, r.h, r.h->nlmsg_len, 0) < 0) {
		rc = error_sys(err, errno, "dump routes");
		goto out;
	}
	union {
		struct nlmsghdr align;
		char data[16384];
	} buf;
	for (;;) {
		ssize_t len = recv(fd, &buf, sizeof(buf), 0);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0) {
			rc = error_sys(err, len < 0 ? errno : EIO, "dump routes");
			goto out;
		}
		for (struct nlmsghdr *h = &buf.align; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				rc = error_sys(err, -e->error, "dump routes");
				goto out;
			}
			if (h->nlmsg_type == RTM_NEWROUTE)
				route_parse(h, out, n);
		}
	}
out:
	close(fd);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}
