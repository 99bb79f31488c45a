/* allowwins.c: E2B's egress rules onto capsa's and back (e2b-net.h).
 *
 * Entries come from API clients: each is bounded (a CIDR is parsed from at
 * most 31 bytes, a name is checked by the library when the rules are
 * applied) and the subtraction stops at NET_MAX_PREFIXES results.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "allowwins.h"
#include "capsa/network.h"
#include "util/str.h"
#include "util/util.h"

static bool covers(const struct linux_ip4net *outer, const struct linux_ip4net *inner)
{
	return outer->prefix <= inner->prefix && (inner->addr & linux_ip4_mask(outer->prefix)) == outer->addr;
}

static void push(struct linux_ip4net **v, size_t *n, struct linux_ip4net x)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = x;
}

/* s minus y, appended to *v: nothing when y covers s, s itself when they
 * are disjoint, else the siblings of y's path below s (one per prefix
 * length between them). */
static void subtract_one(struct linux_ip4net s, const struct linux_ip4net *y, struct linux_ip4net **v, size_t *n)
{
	if (covers(y, &s))
		return;
	if (!covers(&s, y)) {
		push(v, n, s);
		return;
	}
	for (int p = s.prefix + 1; p <= y->prefix; p++) {
		uint32_t bit = 1u << (32 - p);
		push(v, n, (struct linux_ip4net){ .addr = (y->addr & linux_ip4_mask(p)) ^ bit, .prefix = p });
	}
}

static int by_prefix(const void *x, const void *y)
{
	const struct linux_ip4net *a = x, *b = y;
	return a->prefix - b->prefix;
}

int net_cidr_subtract(const struct linux_ip4net *a, size_t na, const struct linux_ip4net *b, size_t nb,
		      struct linux_ip4net **out, size_t *n_out, struct capsa_error **err)
{
	struct linux_ip4net *cur = NULL, *next = NULL;
	size_t n_cur = 0, n_next = 0;
	/* the widest first: what they take whole is never cut into pieces
	 * that a narrower one would then multiply */
	_cleanup_free_ struct linux_ip4net *bs = xcalloc(nb + 1, sizeof(*bs));
	if (nb) {
		memcpy(bs, b, nb * sizeof(*b));
		qsort(bs, nb, sizeof(*bs), by_prefix);
	}
	/* two prefixes nest or are disjoint: without the nested ones, a's
	 * are disjoint, and so is every piece cut from them */
	for (size_t i = 0; i < na; i++) {
		struct linux_ip4net x = { .addr = a[i].addr & linux_ip4_mask(a[i].prefix), .prefix = a[i].prefix };
		bool nested = false;
		for (size_t k = 0; k < na && !nested; k++) {
			struct linux_ip4net o = { .addr = a[k].addr & linux_ip4_mask(a[k].prefix), .prefix = a[k].prefix };
			nested = k != i && covers(&o, &x) && (o.prefix < x.prefix || k < i);
		}
		if (!nested)
			push(&cur, &n_cur, x);
	}
	for (size_t j = 0; j < nb && n_cur; j++) {
		struct linux_ip4net y = { .addr = bs[j].addr & linux_ip4_mask(bs[j].prefix), .prefix = bs[j].prefix };
		n_next = 0;
		for (size_t i = 0; i < n_cur; i++) {
			subtract_one(cur[i], &y, &next, &n_next);
			if (n_next > NET_MAX_PREFIXES) {
				free(cur);
				free(next);
				return error_set(err, E2BIG, "the subtraction gives more than %d prefixes",
						 NET_MAX_PREFIXES);
			}
		}
		struct linux_ip4net *t = cur;
		cur = next;
		next = t;
		n_cur = n_next;
	}
	free(next);
	if (n_cur > NET_MAX_PREFIXES) {
		free(cur);
		return error_set(err, E2BIG, "the subtraction gives more than %d prefixes", NET_MAX_PREFIXES);
	}
	*out = cur;
	*n_out = n_cur;
	return 0;
}

static bool looks_ipv4(const char *s)
{
	return *s && strspn(s, "0123456789./") == strlen(s);
}

/* The entries of one E2B list: addresses and CIDRs parsed into nets, the
 * rest (names) kept as given in names. */
struct e2b_list {
	struct linux_ip4net *nets;
	size_t n_nets;
	char **names;
};

static void list_release(struct e2b_list *l)
{
	free(l->nets);
	strv_free(l->names);
	memset(l, 0, sizeof(*l));
}

static int list_parse(char *const *in, const char *field, bool deny, struct e2b_list *l, struct capsa_error **err)
{
	memset(l, 0, sizeof(*l));
	for (; in && *in; in++) {
		const char *s = *in;
		struct linux_ip4net net;
		if (!*s || strchr(s, ','))
			return error_set(err, EINVAL, "%s '%.100s': give one address, CIDR block or domain per entry",
					 field, s);
		if (strchr(s, ':'))
			return error_set(err, EINVAL, "%s '%.100s': IPv6 rules are not supported (sandboxes have IPv4 "
						      "only)",
					 field, s);
		if (looks_ipv4(s)) {
			if (linux_ip4net_parse(s, &net, err) < 0)
				return error_wrap(err, "%s", field);
			net.addr &= linux_ip4_mask(net.prefix);
			push(&l->nets, &l->n_nets, net);
		} else if (deny) {
			return error_set(err, EINVAL, "%s '%.100s': deny rules take CIDR blocks and IP addresses only, "
						      "not domain names (as in E2B)",
					 field, s);
		} else if (strcmp(s, "host") == 0) {
			/* capsa's keyword for the host's own addresses, which
			 * an E2B client cannot mean */
			return error_set(err, EINVAL, "%s 'host': not a domain capsa can allow (it is capsa's name for "
						      "the host's own addresses)",
					 field);
		} else {
			l->names = strv_push(l->names, s);
		}
	}
	return 0;
}

static char *net_text(const struct linux_ip4net *n)
{
	char a[16];
	linux_ip4_format(n->addr, a);
	return n->prefix == 32 ? xstrdup(a) : xasprintf("%s/%d", a, n->prefix);
}

static char **nets_strv(const struct linux_ip4net *v, size_t n)
{
	char **out = xcalloc(1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out = strv_push_take(out, net_text(&v[i]));
	return out;
}

static bool covers_everything(const struct linux_ip4net *v, size_t n)
{
	static const struct linux_ip4net all = { 0, 0 };
	struct linux_ip4net *left = NULL;
	size_t n_left = 0;
	if (net_cidr_subtract(&all, 1, v, n, &left, &n_left, NULL) < 0)
		return false;
	free(left);
	return n_left == 0;
}

/* v without the CIDR entries another one covers (and repeats): nftables
 * refuses overlapping elements in one set. */
static char **without_nested(char *const *v)
{
	size_t n = strv_len(v);
	struct linux_ip4net *nets = xcalloc(n + 1, sizeof(*nets));
	bool *is_net = xcalloc(n + 1, sizeof(*is_net));
	for (size_t i = 0; i < n; i++)
		if (looks_ipv4(v[i]) && linux_ip4net_parse(v[i], &nets[i], NULL) == 0) {
			nets[i].addr &= linux_ip4_mask(nets[i].prefix);
			is_net[i] = true;
		}
	char **out = xcalloc(1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		bool nested = false;
		for (size_t k = 0; k < n && is_net[i] && !nested; k++)
			nested = k != i && is_net[k] && covers(&nets[k], &nets[i]) &&
				 (nets[k].prefix < nets[i].prefix || k < i);
		if (!nested)
			out = strv_push(out, v[i]);
	}
	free(nets);
	free(is_net);
	return out;
}

int net_allow_wins_map(char *const *allow_out, char *const *deny_out, bool no_internet, char ***allow, char ***deny,
		struct capsa_error **err)
{
	struct e2b_list a, d;
	*allow = *deny = NULL;
	if (list_parse(allow_out, "network.allowOut", false, &a, err) < 0) {
		list_release(&a);
		return -1;
	}
	if (list_parse(deny_out, "network.denyOut", true, &d, err) < 0) {
		list_release(&a);
		list_release(&d);
		return -1;
	}
	if (no_internet)
		push(&d.nets, &d.n_nets, (struct linux_ip4net){ 0, 0 });
	int rc = 0;
	bool any_allow = a.n_nets || a.names;
	if (d.n_nets && covers_everything(d.nets, d.n_nets)) {
		/* only what allowOut names: capsa's allow list as it is */
		*allow = any_allow ? without_nested(allow_out) : xcalloc(1, sizeof(char *));
		*deny = any_allow ? xcalloc(1, sizeof(char *)) : strv_push(NULL, "0.0.0.0/0");
	} else if (!any_allow || !d.n_nets) {
		/* what denyOut does not name; with nothing denied, allowOut
		 * adds nothing to "everything" */
		struct linux_ip4net *norm = NULL;
		size_t n_norm = 0;
		/* nothing subtracted: the list without its nested prefixes */
		rc = net_cidr_subtract(d.nets, d.n_nets, NULL, 0, &norm, &n_norm, err);
		if (rc == 0) {
			*allow = xcalloc(1, sizeof(char *));
			*deny = nets_strv(norm, n_norm);
		} else {
			error_wrap(err, "network.denyOut");
		}
		free(norm);
	} else if (a.names) {
		rc = error_set(err, EINVAL,
			       "network: allowOut '%.100s' is a domain, and denyOut does not deny everything: capsa "
			       "cannot express that (its deny rules win over allow rules, and a domain's addresses are "
			       "known only when the sandbox resolves it); deny 0.0.0.0/0 and list in allowOut "
			       "everything the sandbox may reach, or give allowOut as IP addresses and CIDR blocks",
			       a.names[0]);
	} else {
		/* the denied ranges with the allowed holes cut out */
		struct linux_ip4net *left = NULL;
		size_t n_left = 0;
		rc = net_cidr_subtract(d.nets, d.n_nets, a.nets, a.n_nets, &left, &n_left, err);
		if (rc == 0) {
			*allow = xcalloc(1, sizeof(char *));
			*deny = nets_strv(left, n_left);
		} else {
			error_wrap(err, "network: denyOut minus allowOut");
		}
		free(left);
	}
	list_release(&a);
	list_release(&d);
	return rc;
}

static char **array_strv(json_t *a)
{
	char **v = xcalloc(1, sizeof(*v));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		if (json_is_string(e))
			v = strv_push(v, json_string_value(e));
	}
	return v;
}

/* capsa allow A (non-empty), deny D: E2B's "only these" (deny all, allow
 * A), with D's prefixes cut out of A's (D's names cannot be). */
static json_t *view_allow(char **allow, char **deny)
{
	struct e2b_list d = { 0 };
	json_t *out = json_array();
	for (char **p = deny; *p; p++) {
		struct linux_ip4net n;
		if (looks_ipv4(*p) && linux_ip4net_parse(*p, &n, NULL) == 0)
			push(&d.nets, &d.n_nets, n);
	}
	for (char **p = allow; *p; p++) {
		struct linux_ip4net n, *left = NULL;
		size_t n_left = 0;
		if (!looks_ipv4(*p) || linux_ip4net_parse(*p, &n, NULL) < 0) {
			json_array_append_new(out, json_string(*p));
			continue;
		}
		if (net_cidr_subtract(&n, 1, d.nets, d.n_nets, &left, &n_left, NULL) < 0)
			continue;
		for (size_t i = 0; i < n_left; i++) {
			char *t = net_text(&left[i]);
			json_array_append_new(out, json_string(t));
			free(t);
		}
		free(left);
	}
	list_release(&d);
	return out;
}

static bool nets_cover_everything(char **v)
{
	struct e2b_list l = { 0 };
	for (char **p = v; *p; p++) {
		struct linux_ip4net n;
		if (looks_ipv4(*p) && linux_ip4net_parse(*p, &n, NULL) == 0)
			push(&l.nets, &l.n_nets, n);
	}
	bool all = l.n_nets && covers_everything(l.nets, l.n_nets);
	list_release(&l);
	return all;
}

json_t *net_allow_wins_view(json_t *net)
{
	const char *mode = json_string_value(json_object_get(net, "mode"));
	json_t *allow_out, *deny_out;
	bool internet;
	if (!mode || strcmp(mode, "none") == 0) {
		/* loopback only: nothing outside is reached */
		internet = false;
		allow_out = json_array();
		deny_out = json_pack("[s]", "0.0.0.0/0");
	} else if (strcmp(mode, "bridge") != 0) {
		/* host or another sandbox's network: capsa applies no rules */
		internet = true;
		allow_out = json_array();
		deny_out = json_array();
	} else {
		_cleanup_strv_ char **allow = array_strv(json_object_get(net, "allowOut"));
		_cleanup_strv_ char **deny = array_strv(json_object_get(net, "denyOut"));
		if (*allow) {
			internet = false;
			allow_out = view_allow(allow, deny);
			deny_out = json_pack("[s]", "0.0.0.0/0");
		} else {
			internet = !nets_cover_everything(deny);
			allow_out = json_array();
			deny_out = json_array();
			for (char **p = deny; *p; p++)
				json_array_append_new(deny_out, json_string(*p));
		}
	}
	return json_pack("{s:b, s:{s:o, s:o}}", "allowInternetAccess", internet, "network", "allowOut", allow_out,
			 "denyOut", deny_out);
}

CAPSA_EXPORT int capsa_egress_from_allow_wins(char *const *allow, char *const *deny, bool deny_all, char ***allow_out,
					      char ***deny_out, struct capsa_error **err)
{
	return net_allow_wins_map(allow, deny, deny_all, allow_out, deny_out, err);
}

CAPSA_EXPORT char *capsa_egress_to_allow_wins(const char *network_json)
{
	json_t *net = network_json ? json_loads(network_json, 0, NULL) : NULL;
	json_t *v = net_allow_wins_view(net);
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	json_decref(net);
	return s;
}
