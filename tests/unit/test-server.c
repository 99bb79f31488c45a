/* test-server.c: the parsers of capsa serve that see client bytes: request
 * targets, routing, strict JSON decoding, UTF-8 sanitizing, multipart
 * bodies and Connect envelopes; E2B's egress rules onto capsa's (CIDR
 * subtraction, the mapping, the read-back); and the guard on connections
 * that have not shown the token (which ones it closes, on real sockets). */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/connect.h"
#include "net/allowwins.h"
#include "server/http.h"
#include "server/json.h"
#include "server/metrics.h"
#include "server/multipart.h"
#include "server/preauth.h"
#include "server/server.h"
#include "tap.h"
#include "util/fs.h"

static struct http_req *req(const char *method, const char *uri)
{
	struct http_req *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->spool_fd = r->tunnel_fd = -1;
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->raw_uri = xstrdup(uri);
	http_parse_target(r, r->raw_uri);
	return r;
}

static void test_unescape(void)
{
	char *o = NULL;
	ok(http_unescape("a%20b+c", 7, true, &o) == 0 && !strcmp(o, "a b c"), "escapes and plus");
	free(o);
	ok(http_unescape("a+b", 3, false, &o) == 0 && !strcmp(o, "a+b"), "plus kept in paths");
	free(o);
	ok(http_unescape("%41%6a", 6, false, &o) == 0 && !strcmp(o, "Aj"), "hex either case");
	free(o);
	ok(http_unescape("a%00b", 5, false, &o) < 0, "%%00 refused");
	ok(http_unescape("a%zz", 4, false, &o) < 0, "bad escape refused");
	ok(http_unescape("a%4", 3, false, &o) < 0, "truncated escape refused");
	ok(http_unescape("%", 1, false, &o) < 0, "lone percent refused");
}

static void test_target(void)
{
	struct http_req *r = req("GET", "/v1/sandboxes/a%2Fb/logs?follow=1&tail=10&label=a%3Db&label=c&empty=&novalue");
	ok(!r->bad, "parses");
	is_int((int)r->n_seg, 4, "four segments");
	is_str(r->seg[2], "a/b", "%%2F stays inside its segment");
	is_str(http_query(r, "tail"), "10", "query value");
	is_str(http_query(r, "label"), "a=b", "first of a repeated key");
	is_str(http_query(r, "empty"), "", "empty value");
	is_str(http_query(r, "novalue"), "", "key without =");
	ok(http_query(r, "nope") == NULL, "absent key");
	bool good = true;
	ok(http_query_bool(r, "follow", false, &good) && good, "1 is true");
	http_req_free(r);

	r = req("GET", "/v1/sandboxes/ab%00cd");
	ok(r->bad && r->bad_status == 400, "NUL in the path refused: %s", r->bad ? r->bad : "");
	http_req_free(r);
	r = req("GET", "/v1/x?q=%00");
	ok(r->bad && r->bad_status == 400, "NUL in the query refused");
	http_req_free(r);
	r = req("GET", "relative");
	ok(r->bad != NULL, "a target that is not a path is refused");
	http_req_free(r);
	struct buf b = BUF_INIT;
	for (int i = 0; i < 40; i++)
		buf_appendf(&b, "/s%d", i);
	r = req("GET", buf_cstr(&b));
	ok(r->bad && r->bad_status == 404, "too many segments");
	http_req_free(r);
	b.len = 0;
	buf_appendf(&b, "/x?");
	for (int i = 0; i < 40; i++)
		buf_appendf(&b, "k%d=v&", i);
	r = req("GET", buf_cstr(&b));
	ok(r->bad && r->bad_status == 400, "too many query parameters");
	http_req_free(r);
	buf_release(&b);
	r = req("GET", "/");
	ok(!r->bad && r->n_seg == 0, "the root has no segments");
	http_req_free(r);
	r = req("GET", "/a//b/");
	ok(!r->bad && r->n_seg == 3 && !strcmp(r->seg[1], ""), "empty segments are kept");
	http_req_free(r);
}

static void h_a(struct http_req *r, struct capsa_ctx *c)
{
	(void)r;
	(void)c;
}

static const struct route table[] = {
	{ "GET", "/v1/sandboxes", h_a, BODY_NONE, NULL },
	{ "GET", "/v1/sandboxes/{}", h_a, BODY_NONE, NULL },
	{ "POST", "/v1/sandboxes/{}/processes/{}/stdin", h_a, BODY_BYTES, NULL },
	{ "GET", "/v1/images/{*}", h_a, BODY_NONE, "x" },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};

static void test_routes(void)
{
	bool known = false;
	struct http_req *r = req("GET", "/v1/sandboxes/web-1");
	ok(route_match(table, r, &known) == &table[1] && !strcmp(r->param[0], "web-1"), "one parameter");
	http_req_free(r);
	r = req("POST", "/v1/sandboxes/abc/processes/12/stdin");
	ok(route_match(table, r, &known) == &table[2] && !strcmp(r->param[0], "abc") && !strcmp(r->param[1], "12"),
	   "two parameters");
	http_req_free(r);
	r = req("GET", "/v1/images/docker.io/library/busybox:latest");
	ok(route_match(table, r, &known) == &table[3] && !strcmp(r->rest, "docker.io/library/busybox:latest"),
	   "rest of the path: %s", r->rest ? r->rest : "");
	http_req_free(r);
	r = req("GET", "/v1/images");
	known = false;
	ok(route_match(table, r, &known) == NULL && !known, "rest needs at least one segment");
	http_req_free(r);
	r = req("DELETE", "/v1/sandboxes");
	known = false;
	ok(route_match(table, r, &known) == NULL && known, "path known, method not: 405");
	http_req_free(r);
	r = req("HEAD", "/v1/sandboxes");
	ok(route_match(table, r, &known) == &table[0], "HEAD is served by GET");
	http_req_free(r);
	r = req("GET", "/v1/sandboxes/");
	ok(route_match(table, r, &known) == &table[0], "a trailing slash is ignored");
	http_req_free(r);
	r = req("GET", "/v1/sandboxes//x");
	known = false;
	ok(route_match(table, r, &known) == NULL, "an empty parameter does not match");
	http_req_free(r);
	r = req("GET", "/v1/sandboxes/a/b");
	known = false;
	ok(route_match(table, r, &known) == NULL && !known, "extra segments do not match");
	http_req_free(r);
}

static void test_json(void)
{
	char err[256];
	ok(json_parse_body("", 0, err, sizeof(err)) == NULL && strstr(err, "empty"), "empty body");
	ok(json_parse_body("[1]", 3, err, sizeof(err)) == NULL && strstr(err, "object"), "array body: %s", err);
	ok(json_parse_body("{\"a\":1,\"a\":2}", 13, err, sizeof(err)) == NULL && strstr(err, "duplicate"),
	   "duplicate keys: %s", err);
	const char nul[] = "{\"a\":\"x\\u0000y\"}";
	ok(json_parse_body(nul, strlen(nul), err, sizeof(err)) == NULL, "NUL in a string");
	ok(json_parse_body("{\"a\":\"\xff\"}", 9, err, sizeof(err)) == NULL, "invalid UTF-8");

	const char *doc = "{\"s\":\"x\",\"i\":5,\"b\":true,\"size\":\"64m\",\"d\":\"1.5s\",\"cpus\":0.25,"
			  "\"env\":{\"A\":\"1\"},\"envl\":[\"B=2\"],\"v\":[\"a\",\"b\"],\"o\":{\"k\":\"v\"},\"n\":null}";
	json_t *j = json_parse_body(doc, strlen(doc), err, sizeof(err));
	ok(j != NULL, "parses: %s", j ? "" : err);
	struct jdec d;
	jdec_init(&d, j, "");
	is_str(jdec_str(&d, "s", true), "x", "string");
	is_int((int)jdec_int(&d, "i", 0, 0, 10), 5, "integer");
	ok(jdec_bool(&d, "b", false), "boolean");
	ok(jdec_size(&d, "size", 0) == 64 << 20, "size string");
	ok(jdec_duration_ms(&d, "d", 0) == 1500, "duration string");
	ok(jdec_cpus(&d, "cpus", 0) == 250, "cpus");
	char **env = jdec_env(&d, "env", 10), **envl = jdec_env(&d, "envl", 10), **v = jdec_strv(&d, "v", 10);
	ok(env && !strcmp(env[0], "A=1") && envl && !strcmp(envl[0], "B=2") && v && !strcmp(v[1], "b"), "env forms");
	strv_free(env);
	strv_free(envl);
	strv_free(v);
	ok(jdec_obj(&d, "o") != NULL, "object");
	ok(jdec_str(&d, "n", false) == NULL && !d.failed, "null is absent");
	ok(jdec_finish(&d, true), "all fields read: %s", d.err);
	jdec_init(&d, j, "");
	jdec_str(&d, "s", true);
	ok(!jdec_finish(&d, true) && strstr(d.err, "unknown field"), "strict: unread fields refused: %s", d.err);
	jdec_init(&d, j, "limits.");
	jdec_int(&d, "s", 0, 0, 10);
	ok(d.failed && strstr(d.err, "field 'limits.s': expected an integer"), "type errors name the field: %s",
	   d.err);
	jdec_init(&d, j, "");
	jdec_int(&d, "i", 0, 0, 4);
	ok(d.failed && strstr(d.err, "out of range"), "ranges: %s", d.err);
	jdec_init(&d, j, "");
	jdec_str(&d, "missing", true);
	ok(d.failed && strstr(d.err, "required"), "required fields: %s", d.err);
	jdec_init(&d, j, "");
	jdec_size(&d, "s", 0);
	ok(d.failed, "a size that is not one");
	json_decref(j);

	size_t n;
	char *s = utf8_sanitize("a\xff" "b\xe2\x82\xac\xed\xa0\x80\xc0\xafz", 12, &n);
	json_t *js = json_stringn(s, n);
	ok(js != NULL, "sanitized text is JSON-safe");
	json_decref(js);
	ok(!strncmp(s, "a\xef\xbf\xbd" "b\xe2\x82\xac", 8), "valid sequences kept, invalid replaced: %s", s);
	free(s);
	s = utf8_sanitize("x\0y", 3, &n);
	ok(n == 5 && strlen(s) == 5, "NUL replaced");
	free(s);
}

static int memfile(const char *data, size_t n)
{
	int fd = memfd_create("body", MFD_CLOEXEC);
	write_all(fd, data, n);
	return fd;
}

static void test_multipart(void)
{
	char *bd = multipart_boundary("multipart/form-data; boundary=----xyz");
	is_str(bd, "----xyz", "boundary");
	free(bd);
	bd = multipart_boundary("multipart/form-data; charset=x; boundary=\"a b\"");
	is_str(bd, "a b", "quoted boundary");
	free(bd);
	ok(multipart_boundary("application/json") == NULL, "not multipart");
	ok(multipart_boundary("multipart/form-data") == NULL, "no boundary");

	const char body[] = "preamble\r\n--B\r\n"
			    "Content-Disposition: form-data; name=\"file\"; filename=\"/tmp/a%22b.txt\"\r\n"
			    "Content-Type: application/octet-stream\r\n\r\n"
			    "hello\r\n--B\r\n"
			    "Content-Disposition: form-data; name=\"file\"; filename=\"/x\"\r\n\r\n"
			    "line\r\n--Bnot-a-boundary\r\n--B--\r\nepilogue";
	int fd = memfile(body, sizeof(body) - 1);
	struct mpart *v;
	size_t n;
	char err[200];
	ok(multipart_parse(fd, sizeof(body) - 1, "B", &v, &n, err, sizeof(err)) == 0, "parses: %s", err);
	is_int((int)n, 2, "two parts");
	if (n == 2) {
		is_str(v[0].filename, "/tmp/a\"b.txt", "WHATWG escape decoded");
		is_str(v[0].name, "file", "name");
		ok(v[0].len == 5 && !memcmp(body + v[0].off, "hello", 5), "first content");
		ok(v[1].len == (int64_t)strlen("line\r\n--Bnot-a-boundary") &&
			   !memcmp(body + v[1].off, "line\r\n--Bnot-a-boundary", (size_t)v[1].len),
		   "a delimiter must be followed by CRLF or --");
	}
	multipart_free(v, n);
	close(fd);

	static const char *const bad[] = {
		"no delimiter at all",
		"--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nunterminated",
		"--B\r\nno blank line after the headers",
		"--B",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		fd = memfile(bad[i], strlen(bad[i]));
		ok(multipart_parse(fd, (int64_t)strlen(bad[i]), "B", &v, &n, err, sizeof(err)) < 0, "malformed %zu: %s",
		   i, err);
		close(fd);
	}
	/* a part boundary straddling the read window */
	struct buf big = BUF_INIT;
	buf_appendf(&big, "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
	size_t start = big.len;
	for (int i = 0; i < 65536 - 60; i++)
		buf_putc(&big, 'x');
	size_t plen = big.len - start;
	buf_appendf(&big, "\r\n--B--\r\n");
	fd = memfile(big.data, big.len);
	ok(multipart_parse(fd, (int64_t)big.len, "B", &v, &n, err, sizeof(err)) == 0 && n == 1 &&
		   v[0].len == (int64_t)plen,
	   "a delimiter across the window edge");
	multipart_free(v, n);
	close(fd);
	buf_release(&big);
}

static void test_connect(void)
{
	char err[200];
	json_t *j = connect_decode_request("{\"a\":1}", 7, false, err, sizeof(err));
	ok(j && json_integer_value(json_object_get(j, "a")) == 1, "unary message");
	json_decref(j);
	j = connect_decode_request("", 0, false, err, sizeof(err));
	ok(j && json_object_size(j) == 0, "an empty message has every field at its default");
	json_decref(j);
	const char env[] = "\0\0\0\0\x07{\"a\":2}";
	j = connect_decode_request(env, sizeof(env) - 1, true, err, sizeof(err));
	ok(j && json_integer_value(json_object_get(j, "a")) == 2, "enveloped message");
	json_decref(j);
	ok(!connect_decode_request(env, sizeof(env) - 2, true, err, sizeof(err)), "length mismatch: %s", err);
	const char comp[] = "\x01\0\0\0\x07{\"a\":2}";
	ok(!connect_decode_request(comp, sizeof(comp) - 1, true, err, sizeof(err)) && strstr(err, "compressed"),
	   "compressed refused");
	ok(!connect_decode_request("\0\0\0", 3, true, err, sizeof(err)), "short envelope");
	ok(!connect_decode_request("[1]", 3, false, err, sizeof(err)), "not an object");
	struct buf b = BUF_INIT;
	connect_end(&b, "not_found", "gone");
	ok(b.len > 5 && (uint8_t)b.data[0] == CONNECT_END_STREAM && strstr(b.data + 5, "\"not_found\""),
	   "end of stream with an error");
	buf_release(&b);
	is_int((int)connect_http_status("not_found"), 404, "not_found is 404");
	is_int((int)connect_http_status("resource_exhausted"), 429, "resource_exhausted is 429");
	is_str(connect_code_for_errno(ENOENT), "not_found", "ENOENT");
}

/* A stand-in for an accepted TCP connection: one end of a socket pair is
 * what the guard shuts down, the other tells whether it did. */
struct fake_conn {
	int fds[2];
	struct sockaddr_storage peer;
	struct preauth_conn *c;
};

static void fake_open(struct preauth *pa, struct fake_conn *f, const char *addr)
{
	memset(f, 0, sizeof(*f));
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->fds);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&f->peer;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&f->peer;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	f->c = preauth_add(pa, f->fds[0], (struct sockaddr *)&f->peer);
}

static bool fake_shut(const struct fake_conn *f)
{
	char ch;
	return recv(f->fds[1], &ch, 1, MSG_DONTWAIT) == 0;
}

static void fake_close(struct preauth *pa, struct fake_conn *f)
{
	preauth_remove(pa, f->c);
	close(f->fds[0]);
	close(f->fds[1]);
}

static void test_preauth(void)
{
	struct metrics m;
	metrics_init(&m);
	struct preauth *pa = preauth_new(4, 2, 10000, &m);
	struct fake_conn f[8];
	/* per peer: the third from one address closes that address's oldest */
	fake_open(pa, &f[0], "10.0.0.1");
	fake_open(pa, &f[1], "10.0.0.9");
	fake_open(pa, &f[2], "10.0.0.1");
	ok(!fake_shut(&f[0]) && !fake_shut(&f[1]) && !fake_shut(&f[2]), "two per peer are kept");
	fake_open(pa, &f[3], "::ffff:10.0.0.1");
	ok(fake_shut(&f[0]) && !fake_shut(&f[2]) && !fake_shut(&f[3]),
	   "over the peer cap the peer's oldest is closed (a v4-mapped address is the v4 peer)");
	is_int((int)atomic_load(&m.unauth_closed[PREAUTH_PEER_LIMIT]), 1, "counted as peer_limit");
	is_int(atomic_load(&m.unauth_open), 3, "three open");
	/* overall: the oldest of any peer goes; an IPv6 /64 is one peer */
	fake_open(pa, &f[4], "2001:db8::1");
	fake_open(pa, &f[5], "2001:db8::2:3");
	ok(fake_shut(&f[1]) && !fake_shut(&f[2]) && !fake_shut(&f[4]), "over the overall cap the oldest is closed");
	is_int((int)atomic_load(&m.unauth_closed[PREAUTH_LIMIT]), 1, "counted as limit");
	/* an authenticated connection leaves the guard */
	ok(preauth_authenticated(pa, f[2].c) && preauth_is_authenticated(f[2].c), "authenticated");
	ok(!preauth_authenticated(pa, f[0].c), "a connection the guard closed does not authenticate");
	fake_open(pa, &f[6], "2001:db8:0:0:ffff::1");
	ok(fake_shut(&f[4]) && !fake_shut(&f[5]) && !fake_shut(&f[6]), "two in one /64: its oldest is closed");
	/* the header deadline closes everything still unauthenticated */
	preauth_sweep(pa, mono_ms() - 1);
	ok(!fake_shut(&f[3]) && !fake_shut(&f[5]), "nothing before the deadline");
	preauth_sweep(pa, mono_ms() + 10000);
	ok(fake_shut(&f[3]) && fake_shut(&f[5]) && fake_shut(&f[6]) && !fake_shut(&f[2]),
	   "past the deadline the unauthenticated are closed, the authenticated kept");
	is_int((int)atomic_load(&m.unauth_closed[PREAUTH_HEADER_TIMEOUT]), 3, "counted as header_timeout");
	is_int(atomic_load(&m.unauth_open), 0, "none open");
	for (int i = 0; i <= 6; i++)
		fake_close(pa, &f[i]);
	preauth_free(pa);
}


/* --- E2B egress rules --------------------------------------------------- */

static struct linux_ip4net net4(const char *s)
{
	struct linux_ip4net n = { 0xffffffffu, 33 }; /* matches nothing: a typo fails its test */
	linux_ip4net_parse(s, &n, NULL);
	return n;
}

static bool in_net(uint32_t a, const struct linux_ip4net *n)
{
	return (a & linux_ip4_mask(n->prefix)) == (n->addr & linux_ip4_mask(n->prefix));
}

/* Over every address of base (a /24 or smaller): the result holds exactly
 * the addresses of a and not of b, each in one prefix only. */
static bool subtract_exact(const struct linux_ip4net *a, size_t na, const struct linux_ip4net *b, size_t nb,
			   const char *base)
{
	struct linux_ip4net *out = NULL, space = net4(base);
	size_t n = 0;
	if (net_cidr_subtract(a, na, b, nb, &out, &n, NULL) < 0)
		return false;
	bool good = true;
	for (uint32_t i = 0; i < (1u << (32 - space.prefix)) && good; i++) {
		uint32_t addr = space.addr + i;
		bool want = false, deny = false;
		for (size_t k = 0; k < na; k++)
			want |= in_net(addr, &a[k]);
		for (size_t k = 0; k < nb; k++)
			deny |= in_net(addr, &b[k]);
		size_t hits = 0;
		for (size_t k = 0; k < n; k++)
			hits += in_net(addr, &out[k]);
		good = hits == (want && !deny ? 1u : 0u);
	}
	for (size_t k = 0; k < n; k++)
		good = good && out[k].addr == (out[k].addr & linux_ip4_mask(out[k].prefix));
	free(out);
	return good;
}

static size_t subtract_count(const char *a, const char *b)
{
	struct linux_ip4net x = net4(a), y = net4(b), *out = NULL;
	size_t n = 0;
	if (net_cidr_subtract(&x, 1, &y, 1, &out, &n, NULL) < 0)
		return (size_t)-1;
	free(out);
	return n;
}

static void test_cidr_subtract(void)
{
	is_int((int)subtract_count("10.0.0.0/8", "10.0.0.0/8"), 0, "a prefix minus itself is nothing");
	is_int((int)subtract_count("10.0.0.0/24", "10.0.0.0/8"), 0, "minus a wider one: nothing");
	is_int((int)subtract_count("10.0.0.0/8", "11.0.0.0/8"), 1, "minus a disjoint one: itself");
	is_int((int)subtract_count("10.0.0.0/24", "10.0.0.5"), 8, "a /24 minus one address: 8 prefixes");
	is_int((int)subtract_count("0.0.0.0/0", "0.0.0.0/0"), 0, "everything minus everything");
	is_int((int)subtract_count("0.0.0.0/0", "198.51.100.10"), 32, "everything minus one address: 32 prefixes");

	struct linux_ip4net a = net4("10.0.0.0/24"), hole = net4("10.0.0.5");
	ok(subtract_exact(&a, 1, &hole, 1, "10.0.0.0/24"), "a /24 minus one address is exact");
	struct linux_ip4net loose = net4("10.0.0.7/24");
	ok(subtract_exact(&loose, 1, &hole, 1, "10.0.0.0/24"), "host bits of an input are ignored");
	struct linux_ip4net halves[] = { net4("10.0.0.0/25"), net4("10.0.0.128/25") };
	ok(subtract_exact(&a, 1, halves, 2, "10.0.0.0/24"), "two halves take the whole");
	struct linux_ip4net *out = NULL;
	size_t n = 9;
	ok(net_cidr_subtract(&a, 1, halves, 2, &out, &n, NULL) == 0 && n == 0, "and leave no prefix");
	free(out);

	/* random lists inside one /24, checked address by address */
	unsigned seed = 12345;
	bool all = true;
	for (int round = 0; round < 300 && all; round++) {
		struct linux_ip4net x[4], y[6];
		size_t nx = 1 + rand_r(&seed) % 4, ny = rand_r(&seed) % 6;
		for (size_t i = 0; i < nx; i++)
			x[i] = (struct linux_ip4net){ 0x0a000000u | (rand_r(&seed) & 0xff), 24 + rand_r(&seed) % 9 };
		for (size_t i = 0; i < ny; i++)
			y[i] = (struct linux_ip4net){ 0x0a000000u | (rand_r(&seed) & 0xff), 24 + rand_r(&seed) % 9 };
		all = subtract_exact(x, nx, y, ny, "10.0.0.0/24");
	}
	ok(all, "300 random subtractions are exact");

	/* the result is bounded: 0/0 minus 1100 scattered addresses */
	struct linux_ip4net every = net4("0.0.0.0/0"), *many = xcalloc(1100, sizeof(*many));
	for (size_t i = 0; i < 1100; i++)
		many[i] = (struct linux_ip4net){ (uint32_t)(i * 3900017u), 32 };
	struct capsa_error *err = NULL;
	ok(net_cidr_subtract(&every, 1, many, 1100, &out, &n, &err) < 0 && err && err->code == E2BIG,
	   "more than the limit of prefixes: E2BIG");
	capsa_error_free(err);
	err = NULL;
	/* ...unless a wider prefix among them takes it all, wherever it is */
	many = xrealloc(many, 1101 * sizeof(*many));
	many[1100] = every;
	out = NULL;
	ok(net_cidr_subtract(&every, 1, many, 1101, &out, &n, &err) == 0 && n == 0 && !err,
	   "0/0 last in the list still takes everything at once");
	free(out);
	free(many);
}

static char *joined(char **v)
{
	struct buf b = BUF_INIT;
	for (char **p = v; p && *p; p++)
		buf_appendf(&b, "%s%s", p == v ? "" : " ", *p);
	char *s = xstrdup(buf_cstr(&b));
	buf_release(&b);
	return s;
}

/* "allow | deny" of the mapping, or "error: message". */
static char *map(const char *allow, const char *deny, bool no_internet)
{
	_cleanup_strv_ char **a = allow ? strv_split(allow, ' ') : NULL;
	_cleanup_strv_ char **d = deny ? strv_split(deny, ' ') : NULL;
	char **ca = NULL, **cd = NULL;
	struct capsa_error *err = NULL;
	if (net_allow_wins_map(a, d, no_internet, &ca, &cd, &err) < 0) {
		char *m = xasprintf("error: %s", err->code == EINVAL ? err->msg : "not EINVAL");
		capsa_error_free(err);
		return m;
	}
	_cleanup_free_ char *ja = joined(ca), *jd = joined(cd);
	strv_free(ca);
	strv_free(cd);
	return xasprintf("%s | %s", ja, jd);
}

static void map_is(const char *allow, const char *deny, bool no_internet, const char *want, const char *what)
{
	_cleanup_free_ char *got = map(allow, deny, no_internet);
	if (str_has_prefix(want, "error: "))
		ok(str_has_prefix(got, "error: ") && strstr(got, want + 7), "%s (%s)", what, got);
	else
		is_str(got, want, "%s", what);
}

static void test_e2b_map(void)
{
	map_is(NULL, NULL, false, " | ", "no rules: none");
	map_is(NULL, NULL, true, " | 0.0.0.0/0", "allow_internet_access false: deny everything");
	map_is("www.example.test", "0.0.0.0/0", false, "www.example.test | ", "deny all, allow a name: only it");
	map_is("www.example.test *.wild.test 198.51.100.0/24", NULL, true,
	       "www.example.test *.wild.test 198.51.100.0/24 | ", "no internet with allowOut: only those");
	map_is("x.test", "0.0.0.0/1 128.0.0.0/1", false, "x.test | ", "two halves deny everything too");
	map_is(NULL, "203.0.113.0/24 8.8.8.8", false, " | 203.0.113.0/24 8.8.8.8", "deny only: as given");
	map_is("203.0.113.10", "203.0.113.0/24", false,
	       " | 203.0.113.128/25 203.0.113.64/26 203.0.113.32/27 203.0.113.16/28 203.0.113.0/29 203.0.113.12/30 "
	       "203.0.113.8/31 203.0.113.11",
	       "allowed holes cut out of the denied");
	map_is("203.0.113.0/24", "203.0.113.0/24", false, " | ", "allowed all of the denied");
	map_is("a.test 1.2.3.4", NULL, false, " | ", "allowOut without denyOut adds nothing to everything");
	map_is("a.test", "1.2.3.0/24", false, "error: capsa cannot express", "a name with a partial deny");
	map_is(NULL, "evil.test", false, "error: network.denyOut 'evil.test': deny rules take CIDR",
	       "names in denyOut refused, as E2B does");
	map_is("host", "0.0.0.0/0", false, "error: network.allowOut 'host'", "capsa's keyword refused");
	map_is(NULL, "::/0", false, "error: IPv6", "IPv6 refused");
	map_is("1.2.3.4,5.6.7.8", "0.0.0.0/0", false, "error: one address", "comma lists refused");
	map_is(NULL, "1.2.3.4/33", false, "error: network.denyOut: invalid address", "bad prefix");
	map_is("", NULL, false, "error: one address", "empty entry");
	/* nftables refuses overlapping elements in a set: none are passed on */
	map_is("10.1.0.0/16 a.test 10.0.0.0/8 10.0.0.0/8 10.2.3.4", "0.0.0.0/0", false, "a.test 10.0.0.0/8 | ",
	       "nested allowed prefixes dropped");
	map_is(NULL, "10.1.0.0/16 10.0.0.0/8 8.8.8.8 8.8.8.8/32", false, " | 10.0.0.0/8 8.8.8.8",
	       "nested denied prefixes dropped");
	struct buf b = BUF_INIT;
	for (unsigned i = 0; i < 1000; i++)
		buf_appendf(&b, "%u.%u.%u.%u ", 1 + i % 200, i % 7, i % 13, i % 251);
	buf_appendf(&b, "0.0.0.0/0");
	map_is("a.test", buf_cstr(&b), false, "a.test | ", "1000 addresses and 0/0 last deny everything");
	buf_release(&b);
}

static char *view(const char *net_json)
{
	json_t *n = net_json ? json_loads(net_json, 0, NULL) : NULL;
	json_t *v = net_allow_wins_view(n);
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(v);
	json_decref(n);
	return s;
}

static void test_e2b_view(void)
{
	struct {
		const char *in, *want, *what;
	} c[] = {
		{ NULL, "{\"allowInternetAccess\":false,\"network\":{\"allowOut\":[],\"denyOut\":[\"0.0.0.0/0\"]}}",
		  "no record: loopback only" },
		{ "{\"mode\":\"none\"}",
		  "{\"allowInternetAccess\":false,\"network\":{\"allowOut\":[],\"denyOut\":[\"0.0.0.0/0\"]}}", "none" },
		{ "{\"mode\":\"host\"}", "{\"allowInternetAccess\":true,\"network\":{\"allowOut\":[],\"denyOut\":[]}}",
		  "host: no rules" },
		{ "{\"mode\":\"bridge\",\"allowOut\":[],\"denyOut\":[]}",
		  "{\"allowInternetAccess\":true,\"network\":{\"allowOut\":[],\"denyOut\":[]}}", "bridge, no rules" },
		{ "{\"mode\":\"bridge\",\"allowOut\":[\"www.example.test\"],\"denyOut\":[]}",
		  "{\"allowInternetAccess\":false,\"network\":{\"allowOut\":[\"www.example.test\"],\"denyOut\":[\"0.0."
		  "0.0/0\"]}}",
		  "allow list: deny everything else" },
		{ "{\"mode\":\"bridge\",\"allowOut\":[],\"denyOut\":[\"0.0.0.0/0\"]}",
		  "{\"allowInternetAccess\":false,\"network\":{\"allowOut\":[],\"denyOut\":[\"0.0.0.0/0\"]}}",
		  "deny everything: no internet" },
		{ "{\"mode\":\"bridge\",\"allowOut\":[],\"denyOut\":[\"203.0.113.0/24\",\"x.test\"]}",
		  "{\"allowInternetAccess\":true,\"network\":{\"allowOut\":[],\"denyOut\":[\"203.0.113.0/24\",\"x.test\"]"
		  "}}",
		  "partial deny" },
		{ "{\"mode\":\"bridge\",\"allowOut\":[\"10.0.0.0/30\",\"a.test\"],\"denyOut\":[\"10.0.0.1\"]}",
		  "{\"allowInternetAccess\":false,\"network\":{\"allowOut\":[\"10.0.0.2/31\",\"10.0.0.0\",\"a.test\"],"
		  "\"denyOut\":[\"0.0.0.0/0\"]}}",
		  "capsa's deny cut out of its allow" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		_cleanup_free_ char *got = view(c[i].in);
		is_str(got, c[i].want, "view: %s", c[i].what);
	}
}

int main(void)
{
	test_unescape();
	test_target();
	test_routes();
	test_json();
	test_multipart();
	test_connect();
	test_preauth();
	test_cidr_subtract();
	test_e2b_map();
	test_e2b_view();
	return done_testing();
}
