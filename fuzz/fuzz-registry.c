/* fuzz-registry.c: the registry client's parsers of registry-controlled
 * bytes: WWW-Authenticate challenges, response header lines, manifest
 * responses against a Content-Type, token responses, error bodies, the
 * loopback test and base64.  The input is fed to each of them (the first
 * line doubles as a header value and a Content-Type). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/auth.h"
#include "image/registry.h"
#include "util/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct capsa_error *err = NULL;

	struct auth_challenges ch = { 0 };
	if (auth_parse_challenges(s, size, &ch, &err) == 0) {
		/* what the client looks up in a parsed challenge */
		const struct auth_challenge *b = auth_find_challenge(&ch, "bearer");
		if (b) {
			(void)auth_challenge_param(b, "realm");
			(void)auth_challenge_param(b, "scope");
		}
	}
	auth_challenges_release(&ch);
	capsa_error_free(err);
	err = NULL;

	char *t = NULL;
	if (token_response_parse(s, size, &t, &err) == 0 && (!t || strpbrk(t, " \r\n")))
		abort(); /* a token must never be able to break a header line */
	free(t);
	capsa_error_free(err);
	err = NULL;

	free(registry_error_parse(s, size));

	/* first line: a header line and a Content-Type; the rest: a body */
	const char *nl = memchr(s, '\n', size);
	size_t first = nl ? (size_t)(nl - s) + 1 : size;
	char *line = xstrndup(s, first);
	struct registry_resp r = { 0 };
	r.content_length = -1;
	r.body.cap = 1024;
	(void)registry_resp_header(&r, s, first);
	registry_resp_release(&r);
	enum oci_doc_kind k;
	(void)registry_doc_kind(line, s + first, size - first, &k, &err);
	capsa_error_free(err);
	err = NULL;
	(void)host_is_loopback(line);
	char *key = auth_registry_key(line, &err);
	free(key);
	capsa_error_free(err);
	free(line);

	struct buf b = BUF_INIT;
	b.cap = 1 << 16;
	(void)base64_decode(s, size, &b);
	buf_release(&b);
	return 0;
}
