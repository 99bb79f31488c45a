/* test-registry.c: the registry client's parts that need no network: the
 * WWW-Authenticate parser (grammar and hostile input), response header
 * handling, manifest responses against their Content-Type, token and error
 * bodies, the loopback test behind the plain-HTTP policy, and the
 * credential file (auth.json). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/auth.h"
#include "image/registry.h"
#include "tap.h"
#include "util/fs.h"
#include "util/str.h"

static int parse(const char *s, struct auth_challenges *c, struct capsa_error **err)
{
	memset(c, 0, sizeof(*c));
	return auth_parse_challenges(s, strlen(s), c, err);
}

static void test_challenge_grammar(void)
{
	struct auth_challenges c;
	struct capsa_error *err = NULL;

	ok(parse("Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
		 "scope=\"repository:library/busybox:pull\"",
		 &c, &err) == 0,
	   "docker hub style bearer challenge");
	is_int(c.n, 1, "one challenge");
	is_str(c.v[0].scheme, "bearer", "scheme lower-cased");
	is_str(auth_challenge_param(&c.v[0], "realm"), "https://auth.example/token", "realm");
	is_str(auth_challenge_param(&c.v[0], "service"), "registry.example", "service");
	is_str(auth_challenge_param(&c.v[0], "SCOPE"), "repository:library/busybox:pull",
	       "param names are case-insensitive");
	auth_challenges_release(&c);

	ok(parse("Bearer realm=\"a,b\\\"c\\\\d\" , scope=\"x,y\"", &c, &err) == 0, "commas and escapes in quotes");
	is_str(auth_challenge_param(&c.v[0], "realm"), "a,b\"c\\d", "escapes undone");
	is_str(auth_challenge_param(&c.v[0], "scope"), "x,y", "comma inside quotes kept");
	auth_challenges_release(&c);

	ok(parse("Basic realm=\"Registry Realm\", Bearer realm=\"https://t/x\",service=s", &c, &err) == 0,
	   "two challenges in one value");
	is_int(c.n, 2, "both found");
	ok(auth_find_challenge(&c, "BASIC") && auth_find_challenge(&c, "bearer"), "found by scheme");
	is_str(auth_challenge_param(auth_find_challenge(&c, "bearer"), "service"), "s", "token value");
	auth_challenges_release(&c);

	ok(parse("Negotiate abc+/=, Basic realm=r", &c, &err) == 0, "token68 then a challenge");
	is_str(c.v[0].token68, "abc+/=", "token68 kept");
	is_str(auth_challenge_param(&c.v[1], "realm"), "r", "next challenge parsed");
	auth_challenges_release(&c);

	ok(parse("Bearer realm=", &c, &err) == 0 && str_eq(c.v[0].token68, "realm=") && c.v[0].n_params == 0,
	   "'realm=' alone is a token68 (then no realm: the client refuses the challenge)");
	auth_challenges_release(&c);

	ok(parse("Basic, Bearer realm=x", &c, &err) == 0 && c.n == 2 && !c.v[0].token68,
	   "a bare scheme followed by a comma is not a token68");
	auth_challenges_release(&c);

	ok(parse("Bearer realm = \"spaced\" ,, service=svc,", &c, &err) == 0, "BWS around '=' and empty list items");
	is_str(auth_challenge_param(&c.v[0], "realm"), "spaced", "realm with spaces around =");
	is_str(auth_challenge_param(&c.v[0], "service"), "svc", "after an empty item");
	auth_challenges_release(&c);

	/* appending: one call per header line */
	memset(&c, 0, sizeof(c));
	ok(auth_parse_challenges("Basic realm=a", 13, &c, &err) == 0 &&
		   auth_parse_challenges("Bearer realm=b", 14, &c, &err) == 0 && c.n == 2,
	   "challenges of two header lines appended");
	auth_challenges_release(&c);
	capsa_error_free(err);
}

static void refused(const char *s, size_t len, const char *what)
{
	struct auth_challenges c = { 0 };
	struct capsa_error *err = NULL;
	int r = auth_parse_challenges(s, len, &c, &err);
	ok(r < 0 && err && err->msg && strstr(err->msg, "www-authenticate") && c.n == 0, "refused: %s (%s)", what,
	   err ? err->msg : "accepted");
	capsa_error_free(err);
	auth_challenges_release(&c);
}

static void test_challenge_hostile(void)
{
	refused("Bearer realm=\"unterminated", 26, "unterminated quoted string");
	refused("Bearer realm=\"a\\", 16, "escape at the end");
	refused("Bearer realm=\"a\nb\"", 18, "newline inside quotes");
	refused("Bearer realm=\"a\x01\"", 17, "control character inside quotes");
	refused("Bearer realm=a\0b", 16, "NUL byte");
	refused("", 0, "empty value");
	refused("   ,  , ", 8, "only separators");
	refused("Bearer realm=x, service=", 24, "missing value");
	refused("Bearer realm=a realm2=b", 23, "two params without a comma");
	refused("Bearer realm=a, realm=b", 23, "duplicate parameter");
	refused("Bearer realm=\"a\"x", 17, "garbage after a quoted string");
	refused("=realm", 6, "no scheme");
	refused("Bea\"rer realm=a", 15, "quote inside the scheme");
	refused("Bearer realm=\xff", 14, "non-ASCII token");

	struct buf b = BUF_INIT;
	buf_appendf(&b, "Bearer ");
	for (int i = 0; i < AUTH_MAX_PARAMS + 1; i++)
		buf_appendf(&b, "%sp%d=v", i ? "," : "", i);
	refused(b.data, b.len, "too many parameters");
	buf_release(&b);
	for (int i = 0; i < AUTH_MAX_CHALLENGES + 1; i++)
		buf_appendf(&b, "%sS%d realm=x", i ? ", " : "", i);
	refused(b.data, b.len, "too many challenges");
	buf_release(&b);
	buf_appendf(&b, "Bearer realm=\"");
	while (b.len <= AUTH_HEADER_MAX)
		buf_putc(&b, 'a');
	buf_putc(&b, '"');
	refused(b.data, b.len, "longer than the header cap");
	buf_release(&b);

	/* the cap on challenges counts what out already holds */
	struct auth_challenges c = { 0 };
	struct capsa_error *err = NULL;
	int r = 0;
	for (int i = 0; i < AUTH_MAX_CHALLENGES + 2 && r == 0; i++)
		r = auth_parse_challenges("Basic realm=x", 13, &c, &err);
	ok(r < 0 && c.n == AUTH_MAX_CHALLENGES, "challenge cap across header lines (%zu kept)", c.n);
	auth_challenges_release(&c);
	capsa_error_free(err);
}

static int feed(struct registry_resp *r, const char *line)
{
	return registry_resp_header(r, line, strlen(line));
}

static void test_headers(void)
{
	struct registry_resp r = { 0 };
	r.content_length = -1;
	r.body.cap = 1000;
	ok(feed(&r, "HTTP/1.1 401 Unauthorized\r\n") == 0 && r.status == 401, "status line");
	feed(&r, "Www-Authenticate: Bearer realm=\"x\"\r\n");
	feed(&r, "WWW-AUTHENTICATE:   Basic realm=y  \r\n");
	is_int(strv_len(r.challenges), 2, "every WWW-Authenticate line kept, any case");
	is_str(r.challenges[1], "Basic realm=y", "value trimmed");
	feed(&r, "Content-Type: application/vnd.oci.image.manifest.v1+json; charset=utf-8\r\n");
	feed(&r, "Docker-Content-Digest: sha256:abc\r\n");
	ok(r.content_type && r.docker_digest, "content type and digest");

	ok(feed(&r, "HTTP/1.1 307 Temporary Redirect\r\n") == 0 && r.status == 307 && !r.challenges &&
		   !r.content_type && !r.docker_digest,
	   "a new status line (redirect) forgets the previous response");
	ok(feed(&r, "Content-Length: 5000\r\n") == 0, "a redirect's own length does not count against the cap");
	ok(feed(&r, "HTTP/2 200 \r\n") == 0 && r.status == 200, "HTTP/2 status line");
	ok(feed(&r, "Content-Length: 999\r\n") == 0 && r.content_length == 999, "length within the cap");
	ok(feed(&r, "content-length: 1001\r\n") < 0 && r.body_too_large, "length over the cap stops the transfer");

	registry_resp_release(&r);
	r.blob_max = 1 << 20;
	r.body.cap = 100;
	feed(&r, "HTTP/1.1 206 Partial Content\r\n");
	ok(feed(&r, "Content-Length: 4096\r\n") == 0, "a blob body is capped by its size, not the error cap");
	feed(&r, "HTTP/1.1 200 OK\r\n");
	ok(feed(&r, "Content-Length: 2000000\r\n") < 0, "a blob longer than declared is refused at the header");
	feed(&r, "HTTP/1.1 404 Not Found\r\n");
	ok(feed(&r, "Content-Length: 200\r\n") < 0, "an error body is capped by the error cap");
	feed(&r, "HTTP/1.1 200 OK\r\n");
	ok(feed(&r, "Content-Range: bytes 5-9/10\r\n") == 0 && str_eq(r.content_range, "bytes 5-9/10"),
	   "content range");
	ok(feed(&r, "HTTP/1.1 abc\r\n") == 0 && r.status == 0, "garbage status is 0");

	for (int i = 0; i < 40; i++)
		feed(&r, "WWW-Authenticate: Basic realm=x\r\n");
	ok(strv_len(r.challenges) <= 16, "challenge lines capped (%zu)", strv_len(r.challenges));
	struct buf b = BUF_INIT;
	buf_appendf(&b, "X-Long: ");
	while (b.len <= REGISTRY_HEADER_LINE_MAX)
		buf_putc(&b, 'a');
	ok(registry_resp_header(&r, b.data, b.len) < 0, "over-long header line refused");
	buf_release(&b);
	registry_resp_release(&r);
}

static void test_doc_kind(void)
{
	struct capsa_error *err = NULL;
	enum oci_doc_kind k;
	const char *idx = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[]}";
	const char *man = "{\"schemaVersion\":2,\"config\":{},\"layers\":[]}";
	ok(registry_doc_kind(MT_OCI_INDEX, idx, strlen(idx), &k, &err) == 0 && k == OCI_DOC_INDEX, "index");
	ok(registry_doc_kind("application/json", man, strlen(man), &k, &err) == 0 && k == OCI_DOC_MANIFEST,
	   "generic content type: the shape decides");
	ok(registry_doc_kind(MT_DOCKER_MANIFEST "; charset=utf-8", man, strlen(man), &k, &err) == 0 &&
		   k == OCI_DOC_MANIFEST,
	   "parameters after the type ignored");
	ok(registry_doc_kind(MT_OCI_MANIFEST, idx, strlen(idx), &k, &err) < 0 && strstr(err->msg, "served as"),
	   "served as a manifest but is an index: refused");
	capsa_error_free(err);
	err = NULL;
	const char *s1 = "{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}";
	ok(registry_doc_kind(NULL, s1, strlen(s1), &k, &err) < 0 && strstr(err->msg, "schema 1"),
	   "schema 1 named");
	capsa_error_free(err);
	err = NULL;
	ok(registry_doc_kind("application/vnd.docker.distribution.manifest.v1+prettyjws", man, strlen(man), &k,
			     &err) < 0,
	   "schema 1 content type refused");
	capsa_error_free(err);
	err = NULL;
	ok(registry_doc_kind("text/html", "<html>", 6, &k, &err) < 0 && strstr(err->msg, "text/html"),
	   "not a manifest: the served type is named");
	capsa_error_free(err);
}

static void test_token_and_errors(void)
{
	struct capsa_error *err = NULL;
	char *t = NULL;
	const char *a = "{\"token\":\"eyJ.abc-_.sig\",\"expires_in\":300}";
	ok(token_response_parse(a, strlen(a), &t, &err) == 0 && str_eq(t, "eyJ.abc-_.sig"), "token");
	free(t);
	t = NULL;
	const char *b = "{\"access_token\":\"x/y+z=\"}";
	ok(token_response_parse(b, strlen(b), &t, &err) == 0 && str_eq(t, "x/y+z="), "access_token");
	free(t);
	t = NULL;
	static const char *const bad[] = {
		"{\"token\":\"a\\r\\nX-Injected: 1\"}",
		"{\"token\":\"has space\"}",
		"{\"token\":\"\"}",
		"{\"token\":5}",
		"[\"token\"]",
		"{\"token\":\"a\",\"token\":\"b\"}",
		"not json",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		ok(token_response_parse(bad[i], strlen(bad[i]), &t, &err) < 0 && !t, "token refused: %s", bad[i]);
		capsa_error_free(err);
		err = NULL;
	}
	struct buf big = BUF_INIT;
	buf_appendf(&big, "{\"token\":\"");
	for (int i = 0; i < REGISTRY_TOKEN_LEN_MAX + 1; i++)
		buf_putc(&big, 'a');
	buf_appendf(&big, "\"}");
	ok(token_response_parse(big.data, big.len, &t, &err) < 0, "over-long token refused");
	capsa_error_free(err);
	err = NULL;
	buf_release(&big);

	const char *e = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest\\nunknown\"}]}";
	char *m = registry_error_parse(e, strlen(e));
	is_str(m, "manifest unknown", "error message, control characters blanked");
	free(m);
	const char *e2 = "{\"errors\":[{\"code\":\"DENIED\"}]}";
	m = registry_error_parse(e2, strlen(e2));
	is_str(m, "DENIED", "code when there is no message");
	free(m);
	ok(registry_error_parse("<html>", 6) == NULL && registry_error_parse(NULL, 0) == NULL,
	   "no error from a non-JSON body");

	struct registry_resp r = { 0 };
	r.status = 404;
	buf_append(&r.body, e, strlen(e));
	registry_status_error(&r, "manifest v1", &err);
	ok(err && strstr(err->msg, "manifest v1: manifest unknown") && !strstr(err->msg, "("),
	   "404 on a manifest: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	r.status = 401;
	registry_status_error(&r, "blob sha256:x", &err);
	ok(err && strstr(err->msg, "authentication required") && err->code == EACCES, "401: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	r.status = 502;
	registry_status_error(&r, "blob sha256:x", &err);
	ok(err && strstr(err->msg, "HTTP 502"), "other statuses named: %s", err ? err->msg : "");
	capsa_error_free(err);
	buf_release(&r.body);
}

static void test_loopback(void)
{
	static const char *const yes[] = { "localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80",
					   "[::1]:5000", "::1", "LOCALHOST:1" };
	static const char *const no[] = { "10.0.0.1:5000", "example.com", "127.0.0.1.example.com",
					  "[::2]:5000", "localhost.evil", "", "128.0.0.1", "[::1" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
		ok(host_is_loopback(yes[i]), "loopback: %s", yes[i]);
	for (size_t i = 0; i < ARRAY_SIZE(no); i++)
		ok(!host_is_loopback(no[i]), "not loopback: %s", no[i]);
}

static void test_registry_key(void)
{
	struct capsa_error *err = NULL;
	char *k = auth_registry_key("https://Index.Docker.IO/v1/", &err);
	is_str(k, "docker.io", "docker hub aliases folded");
	free(k);
	k = auth_registry_key("127.0.0.1:5000", &err);
	is_str(k, "127.0.0.1:5000", "host:port kept");
	free(k);
	k = auth_registry_key("http://Reg.Example:443/path", &err);
	is_str(k, "reg.example:443", "scheme and path dropped, lower-cased");
	free(k);
	ok(auth_registry_key("bad host", &err) == NULL && err, "space refused");
	capsa_error_free(err);
	err = NULL;
	ok(auth_registry_key("https://", &err) == NULL, "empty host refused");
	capsa_error_free(err);
}

static void test_credentials(void)
{
	char tmpl[] = "/tmp/capsa-test-auth-XXXXXX";
	ok(mkdtemp(tmpl) != NULL, "temp dir");
	_cleanup_free_ char *root = xasprintf("%s/root", tmpl);
	_cleanup_free_ char *run = xasprintf("%s/run", tmpl);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	ok(capsa_ctx_open(&o, &ctx, &err) == 0, "context");
	struct auth_cred cred = { 0 };
	is_int(auth_cred_load(ctx, "127.0.0.1:5000", &cred, &err), 0, "no file: no credentials");
	ok(auth_cred_store(ctx, "127.0.0.1:5000", "alice", "pa:ss wörd", &err) == 0, "store");
	ok(auth_cred_store(ctx, "https://index.docker.io/v1/", "bob", "x", &err) == 0, "store for docker hub");
	struct stat st;
	ok(fstatat(ctx->root_fd, "auth.json", &st, 0) == 0 && (st.st_mode & 0777) == 0600, "auth.json is 0600");
	is_int(auth_cred_load(ctx, "127.0.0.1:5000", &cred, &err), 1, "load");
	is_str(cred.user, "alice", "user");
	is_str(cred.password, "pa:ss wörd", "password with ':' and UTF-8");
	auth_cred_release(&cred);
	is_int(auth_cred_load(ctx, "docker.io", &cred, &err), 1, "docker hub entry under docker.io");
	auth_cred_release(&cred);
	ok(auth_cred_store(ctx, "127.0.0.1:5000", "al:ice", "x", &err) < 0, "':' in the user refused");
	capsa_error_free(err);
	err = NULL;
	is_int(auth_cred_remove(ctx, "127.0.0.1:5000", &err), 1, "remove");
	is_int(auth_cred_remove(ctx, "127.0.0.1:5000", &err), 0, "remove again: nothing");
	is_int(auth_cred_load(ctx, "docker.io", &cred, &err), 1, "the other entry kept");
	auth_cred_release(&cred);

	/* damaged files are errors, not empty credentials */
	static const char *const damaged[] = {
		"[1,2]",
		"{\"auths\":[]}",
		"{\"auths\":{\"docker.io\":{\"auth\":\"!!notbase64\"}}}",
		"{\"auths\":{\"docker.io\":{\"auth\":\"bm9jb2xvbg==\"}}}", /* "nocolon" */
		"{\"auths\":{\"docker.io\":{}}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(damaged); i++) {
		write_file_atomic_at(ctx->root_fd, "auth.json", damaged[i], strlen(damaged[i]), 0600, false, &err);
		ok(auth_cred_load(ctx, "docker.io", &cred, &err) < 0 && err && strstr(err->msg, "auth.json"),
		   "damaged file refused: %s", damaged[i]);
		capsa_error_free(err);
		err = NULL;
	}
	capsa_ctx_free(ctx);
	rm_rf_at(AT_FDCWD, tmpl, NULL);
}

int main(void)
{
	test_challenge_grammar();
	test_challenge_hostile();
	test_headers();
	test_doc_kind();
	test_token_and_errors();
	test_loopback();
	test_registry_key();
	test_credentials();
	return done_testing();
}
