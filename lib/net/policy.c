/* policy.c: a sandbox's egress rules, parsed once for the command line and
 * the API alike (docs/network.md, "Policy").
 *
 * An entry is a CIDR or IPv4 address, a hostname, "*.domain" (every name
 * below domain, not domain itself), or the keyword "host" (the host's own
 * addresses, which the default policy keeps out of reach).  Several may
 * share one argument, comma separated.  Deny wins over allow; an empty
 * allow list means "everything the default policy does not refuse".
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "capsa/network.h"
#include "net.h"
#include "util/str.h"

#define MAX_RULES CAPSA_EGRESS_MAX_RULES

static void rule_release(struct net_rule *r)
{
	free(r->name);
}

void net_policy_release(struct net_policy *p)
{
	for (size_t i = 0; i < p->n_allow; i++)
		rule_release(&p->allow[i]);
	for (size_t i = 0; i < p->n_deny; i++)
		rule_release(&p->deny[i]);
	free(p->allow);
	free(p->deny);
	memset(p, 0, sizeof(*p));
}

static bool looks_ipv4(const char *s)
{
	return strspn(s, "0123456789./") == strlen(s);
}

static int parse_one(const char *s, bool allow, struct net_rule *r, struct capsa_error **err)
{
	memset(r, 0, sizeof(*r));
	if (strcasecmp(s, "host") == 0) { /* any case: a name "host" would read back as the keyword */
		if (!allow)
			return error_set(err, EINVAL, "egress rule 'host': only --allow-out takes it (the host is out of "
						     "reach unless allowed)");
		r->kind = RULE_HOST;
		return 0;
	}
	if (strchr(s, ':'))
		return error_set(err, EINVAL, "egress rule '%.100s': IPv6 rules are not supported (sandboxes have IPv4 "
					      "only)",
				 s);
	if (looks_ipv4(s)) {
		if (linux_ip4net_parse(s, &r->net, err) < 0)
			return error_wrap(err, "egress rule");
		r->net.addr &= linux_ip4_mask(r->net.prefix);
		r->kind = RULE_NET;
		return 0;
	}
	const char *name = s;
	r->kind = RULE_NAME;
	if (strncmp(s, "*.", 2) == 0) {
		name = s + 2;
		r->kind = RULE_SUFFIX;
	}
	if (strchr(name, '*'))
		return error_set(err, EINVAL, "egress rule '%.100s': '*' may only stand for the leftmost labels, as '*.example.com'",
				 s);
	if (check_dns_name(name, "egress rule hostname", 253, err) < 0)
		return -1;
	if (!strchr(name, '.') && r->kind == RULE_SUFFIX)
		return error_set(err, EINVAL, "egress rule '%.100s': a wildcard needs a domain of two labels at least",
				 s);
	r->name = xstrdup(name);
	for (char *c = r->name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return 0;
}

static int parse_list(char *const *in, bool allow, struct net_rule **out, size_t *n, struct capsa_error **err)
{
	for (; in && *in; in++) {
		_cleanup_strv_ char **parts = strv_split(*in, ',');
		for (char **p = parts; *p; p++) {
			char *t = *p;
			while (*t == ' ' || *t == '\t')
				t++;
			for (size_t l = strlen(t); l && (t[l - 1] == ' ' || t[l - 1] == '\t');)
				t[--l] = '\0';
			if (!*t)
				return error_set(err, EINVAL, "egress rule '%.100s': an empty entry", *in);
			if (*n >= MAX_RULES)
				return error_set(err, E2BIG, "too many egress rules: at most %d", MAX_RULES);
			*out = xrealloc(*out, (*n + 1) * sizeof(**out));
			if (parse_one(t, allow, &(*out)[*n], err) < 0)
				return -1;
			(*n)++;
		}
	}
	return 0;
}

int net_policy_parse(char *const *allow, char *const *deny, struct net_policy *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	if (parse_list(allow, true, &out->allow, &out->n_allow, err) < 0 ||
	    parse_list(deny, false, &out->deny, &out->n_deny, err) < 0) {
		net_policy_release(out);
		return -1;
	}
	return 0;
}

bool net_policy_has_names(const struct net_policy *p)
{
	for (size_t i = 0; i < p->n_allow; i++)
		if (p->allow[i].kind == RULE_NAME || p->allow[i].kind == RULE_SUFFIX)
			return true;
	for (size_t i = 0; i < p->n_deny; i++)
		if (p->deny[i].kind == RULE_NAME || p->deny[i].kind == RULE_SUFFIX)
			return true;
	return false;
}

bool net_policy_allows_host(const struct net_policy *p)
{
	for (size_t i = 0; i < p->n_allow; i++)
		if (p->allow[i].kind == RULE_HOST)
			return true;
	return false;
}

static char *rule_text(const struct net_rule *r)
{
	char ip[16];
	switch (r->kind) {
	case RULE_HOST:
		return xstrdup("host");
	case RULE_NET:
		linux_ip4_format(r->net.addr, ip);
		return r->net.prefix == 32 ? xstrdup(ip) : xasprintf("%s/%d", ip, r->net.prefix);
	case RULE_SUFFIX:
		return xasprintf("*.%s", r->name);
	case RULE_NAME:
		break;
	}
	return xstrdup(r->name);
}

char **net_policy_strv(const struct net_policy *p, bool allow)
{
	char **v = xcalloc(1, sizeof(*v));
	const struct net_rule *r = allow ? p->allow : p->deny;
	size_t n = allow ? p->n_allow : p->n_deny;
	for (size_t i = 0; i < n; i++) {
		char *t = rule_text(&r[i]);
		v = strv_push(v, t);
		free(t);
	}
	return v;
}

char *net_policy_json(const struct net_policy *p)
{
	json_t *o = json_object();
	for (int k = 0; k < 2; k++) {
		json_t *a = json_array();
		char **v = net_policy_strv(p, k == 0);
		for (char **s = v; *s; s++)
			json_array_append_new(a, json_string(*s));
		strv_free(v);
		json_object_set_new(o, k == 0 ? "allowOut" : "denyOut", a);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
