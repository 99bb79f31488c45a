/* fuzz-egress.c: egress rules (--allow-out/--deny-out, the API's allowOut
 * and denyOut): NUL-separated entries, the first byte choosing which list
 * each goes to.  What parses must read back as text that parses to the
 * same rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const struct net_policy *p)
{
	char **a = net_policy_strv(p, true), **d = net_policy_strv(p, false);
	struct net_policy q;
	if (net_policy_parse(a, d, &q, NULL) < 0 || q.n_allow != p->n_allow || q.n_deny != p->n_deny)
		abort();
	char *x = net_policy_json(p), *y = net_policy_json(&q);
	if (strcmp(x, y) != 0)
		abort();
	free(x);
	free(y);
	net_policy_release(&q);
	strv_free(a);
	strv_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	char **allow = NULL, **deny = NULL;
	for (size_t i = 0; i < size;) {
		const char *e = text + i;
		size_t n = strlen(e);
		if (n > 1) {
			if (e[0] & 1)
				deny = strv_push(deny, e + 1);
			else
				allow = strv_push(allow, e + 1);
		}
		i += n + 1;
	}
	struct net_policy p;
	struct capsa_error *err = NULL;
	if (net_policy_parse(allow, deny, &p, &err) == 0) {
		roundtrip(&p);
		net_policy_release(&p);
	} else if (!err || !err->msg || !*err->msg) {
		abort();
	}
	capsa_error_free(err);
	strv_free(allow);
	strv_free(deny);
	free(text);
	return 0;
}
