/* registry-http.c: the libcurl side of the registry client.
 *
 * Policy, in the order a request meets it:
 * 1. scheme: HTTPS with the system CA bundle; plain HTTP only for a registry
 *    on loopback or named with --insecure-registry.  Redirects may only go
 *    to HTTPS (or also HTTP for such a registry), at most 5 hops.
 * 2. Authorization is a header we add ourselves; libcurl sends such a header
 *    only to the host (and port and scheme) the request started at, so a
 *    redirect to blob storage elsewhere never carries our token or password.
 * 3. every response body has a cap, checked before it grows (Content-Length
 *    is checked as soon as it arrives).
 * 4. on 401, one answer to the challenge: a bearer token for the scope,
 *    fetched from the realm (basic credentials attached when stored), cached
 *    for the client's life; or basic credentials.  A second 401 is final.
 * The token realm is chosen by the registry: it must obey the same scheme
 * policy, and stored credentials go there only as the registry asks.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "registry.h"
#include "util/base64.h"

#define MAX_CHALLENGE_LINES 16
#define MAX_TOKENS 8

struct token_entry {
	char *scope;
	char *header; /* "Authorization: Bearer ..." */
};

struct registry_client {
	struct capsa_ctx *ctx;
	char *registry; /* key as the user named it: "docker.io", "127.0.0.1:5000" */
	char *api_host; /* where the API lives: registry-1.docker.io for docker.io */
	char *base;	/* "https://host" */
	bool plain_http;
	char **insecure;
	const volatile int *cancel;
	struct auth_cred cred;
	bool have_cred;
	bool basic; /* the registry asked for basic auth */
	struct token_entry tokens[MAX_TOKENS];
	size_t n_tokens;
	CURLM *multi;
};

static bool host_in_list(char *const *list, const char *hostport)
{
	for (size_t i = 0; list && list[i]; i++) {
		_cleanup_free_ char *k = auth_registry_key(list[i], NULL);
		if (!k)
			continue;
		if (str_eq(k, hostport))
			return true;
		/* an entry without a port covers every port of that host */
		if (!strchr(k, ':') && str_has_prefix(hostport, k) && hostport[strlen(k)] == ':')
			return true;
	}
	return false;
}

static bool plain_http_allowed(const struct registry_client *c, const char *hostport)
{
	return host_is_loopback(hostport) || host_in_list(c->insecure, hostport);
}

int registry_client_new(struct capsa_ctx *ctx, const char *registry, const struct registry_client_opts *opts,
			struct registry_client **out, struct capsa_error **err)
{
	static bool curl_ready;
	if (!curl_ready) {
		/* not thread-safe in this libcurl; the CLI calls it once */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return error_set(err, EIO, "initialize libcurl");
		curl_ready = true;
	}
	_cleanup_free_ char *key = auth_registry_key(registry, err);
	if (!key)
		return -1;
	struct registry_client *c = xcalloc(1, sizeof(*c));
	c->ctx = ctx;
	c->registry = steal_pointer(&key);
	c->api_host = xstrdup(str_eq(c->registry, "docker.io") ? "registry-1.docker.io" : c->registry);
	for (size_t i = 0; opts && opts->insecure && opts->insecure[i]; i++)
		c->insecure = strv_push(c->insecure, opts->insecure[i]);
	c->cancel = opts ? opts->cancel : NULL;
	c->plain_http = plain_http_allowed(c, c->registry);
	c->base = xasprintf("%s://%s", c->plain_http ? "http" : "https", c->api_host);
	if (opts && opts->user) {
		c->cred.user = xstrdup(opts->user);
		c->cred.password = xstrdup(opts->password ? opts->password : "");
		c->have_cred = true;
	} else {
		int r = auth_cred_load(ctx, c->registry, &c->cred, err);
		if (r < 0) {
			registry_client_free(c);
			return -1;
		}
		c->have_cred = r > 0;
	}
	c->multi = curl_multi_init();
	if (!c->multi) {
		registry_client_free(c);
		return error_set(err, ENOMEM, "create a libcurl multi handle");
	}
	*out = c;
	return 0;
}

void registry_client_free(struct registry_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_tokens; i++) {
		free(c->tokens[i].scope);
		explicit_bzero(c->tokens[i].header, strlen(c->tokens[i].header));
		free(c->tokens[i].header);
	}
	auth_cred_release(&c->cred);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	strv_free(c->insecure);
	free(c->registry);
	free(c->api_host);
	free(c->base);
	free(c);
}

const char *registry_client_host(const struct registry_client *c)
{
	return c->registry;
}

CURLM *registry_client_multi(struct registry_client *c)
{
	return c->multi;
}

bool registry_client_cancelled(const struct registry_client *c)
{
	return c->cancel && *c->cancel;
}

void registry_resp_release(struct registry_resp *r)
{
	free(r->content_type);
	free(r->docker_digest);
	free(r->content_range);
	strv_free(r->challenges);
	buf_release(&r->body);
	size_t cap = r->body.cap;
	int64_t blob_max = r->blob_max;
	memset(r, 0, sizeof(*r));
	r->body.cap = cap;
	r->blob_max = blob_max;
	r->content_length = -1;
}

/* --- callbacks ------------------------------------------------------------ */

static char *header_value(const char *line, size_t n, const char *name)
{
	size_t nl = strlen(name);
	if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return NULL;
	const char *v = line + nl + 1;
	const char *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return xstrndup(v, (size_t)(end - v));
}

static void set_str(char **slot, char *v)
{
	free(*slot);
	*slot = v;
}

int registry_resp_header(struct registry_resp *r, const char *line, size_t n)
{
	if (n > REGISTRY_HEADER_LINE_MAX)
		return -1; /* no registry needs such a line */
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* a new response (after a redirect or 100): forget the last */
		size_t cap = r->body.cap;
		free(r->content_type);
		free(r->docker_digest);
		free(r->content_range);
		strv_free(r->challenges);
		r->content_type = r->docker_digest = r->content_range = NULL;
		r->challenges = NULL;
		r->content_length = -1;
		r->body.len = 0;
		r->body.cap = cap;
		const char *sp = memchr(line, ' ', n);
		r->status = 0;
		if (sp && (size_t)(sp - line) + 4 <= n) {
			char code[4] = { sp[1], sp[2], sp[3], '\0' };
			int64_t v;
			if (parse_int64(code, 100, 999, &v) == 0)
				r->status = (long)v;
		}
		return 0;
	}
	char *v;
	if ((v = header_value(line, n, "content-type")))
		set_str(&r->content_type, v);
	else if ((v = header_value(line, n, "docker-content-digest")))
		set_str(&r->docker_digest, v);
	else if ((v = header_value(line, n, "content-range")))
		set_str(&r->content_range, v);
	else if ((v = header_value(line, n, "www-authenticate"))) {
		if (strv_len(r->challenges) < MAX_CHALLENGE_LINES)
			r->challenges = strv_push_take(r->challenges, v);
		else
			free(v);
	} else if ((v = header_value(line, n, "content-length"))) {
		int64_t cl;
		r->content_length = parse_int64(v, 0, INT64_MAX, &cl) == 0 ? cl : -1;
		free(v);
		/* refuse before a single byte of an oversized body arrives;
		 * redirect bodies are discarded by libcurl and do not count */
		bool redirect = r->status >= 300 && r->status < 400;
		bool blob = r->blob_max > 0 && r->status >= 200 && r->status < 300;
		int64_t max = blob ? r->blob_max : (int64_t)r->body.cap;
		if ((blob || r->body.cap) && !redirect && r->content_length > max) {
			r->body_too_large = true;
			return -1;
		}
	}
	return 0;
}

static size_t header_cb(char *line, size_t size, size_t nitems, void *arg)
{
	size_t n = size * nitems;
	return registry_resp_header(arg, line, n) < 0 ? 0 : n;
}

static size_t body_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct registry_resp *r = arg;
	size_t n = size * nitems;
	if (buf_append(&r->body, p, n) < 0) {
		r->body_too_large = true;
		return 0;
	}
	return n;
}

static int xferinfo_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	const struct registry_client *c = arg;
	return registry_client_cancelled(c) ? 1 : 0;
}

/* --- requests ------------------------------------------------------------- */

static const char *token_for(const struct registry_client *c, const char *scope)
{
	for (size_t i = 0; i < c->n_tokens; i++)
		if (str_eq(c->tokens[i].scope, scope ? scope : ""))
			return c->tokens[i].header;
	return NULL;
}

static void token_drop(struct registry_client *c, const char *scope)
{
	for (size_t i = 0; i < c->n_tokens; i++) {
		if (str_eq(c->tokens[i].scope, scope ? scope : "")) {
			free(c->tokens[i].scope);
			explicit_bzero(c->tokens[i].header, strlen(c->tokens[i].header));
			free(c->tokens[i].header);
			memmove(c->tokens + i, c->tokens + i + 1, (c->n_tokens - i - 1) * sizeof(c->tokens[0]));
			c->n_tokens--;
			return;
		}
	}
}

static void token_put(struct registry_client *c, const char *scope, char *header)
{
	for (size_t i = 0; i < c->n_tokens; i++) {
		if (str_eq(c->tokens[i].scope, scope ? scope : "")) {
			free(c->tokens[i].header);
			c->tokens[i].header = header;
			return;
		}
	}
	if (c->n_tokens == MAX_TOKENS) {
		/* drop the oldest: a pull uses one scope, login none */
		free(c->tokens[0].scope);
		free(c->tokens[0].header);
		memmove(c->tokens, c->tokens + 1, (MAX_TOKENS - 1) * sizeof(c->tokens[0]));
		c->n_tokens--;
	}
	c->tokens[c->n_tokens].scope = xstrdup(scope ? scope : "");
	c->tokens[c->n_tokens].header = header;
	c->n_tokens++;
}

static char *basic_header(const struct auth_cred *cred)
{
	_cleanup_free_ char *pair = xasprintf("%s:%s", cred->user, cred->password);
	_cleanup_free_ char *enc = base64_encode(pair, strlen(pair));
	explicit_bzero(pair, strlen(pair));
	char *h = xasprintf("Authorization: Basic %s", enc);
	explicit_bzero(enc, strlen(enc));
	return h;
}

static int easy_common(struct registry_client *c, CURL *e, const char *url, bool plain_ok,
		       struct registry_resp *resp)
{
	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                        \
	do {                                                 \
		if (rc == CURLE_OK)                          \
			rc = curl_easy_setopt(e, opt, val); \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, plain_ok ? "http,https" : "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, plain_ok ? "http,https" : "https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, 5L);
	SET(CURLOPT_UNRESTRICTED_AUTH, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERAGENT, "capsa/" CAPSA_VERSION);
	SET(CURLOPT_CONNECTTIMEOUT, 30L);
	/* a stalled server fails the transfer instead of hanging the pull */
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, 60L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, resp);
	SET(CURLOPT_WRITEFUNCTION, body_cb);
	SET(CURLOPT_WRITEDATA, resp);
	SET(CURLOPT_ERRORBUFFER, resp->curl_err);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	SET(CURLOPT_XFERINFODATA, c);
	SET(CURLOPT_PRIVATE, resp);
	/* loopback never goes through a proxy from the environment */
	SET(CURLOPT_NOPROXY, "localhost,127.0.0.0/8,::1");
#undef SET
	return rc == CURLE_OK ? 0 : -1;
}

CURL *registry_easy(struct registry_client *c, const char *path, const char *scope, const char *accept,
		    struct registry_resp *resp, struct curl_slist **headers, struct capsa_error **err)
{
	CURL *e = curl_easy_init();
	if (!e) {
		error_set(err, ENOMEM, "create a libcurl handle");
		return NULL;
	}
	_cleanup_free_ char *url = xasprintf("%s/v2/%s", c->base, path);
	resp->content_length = -1;
	if (easy_common(c, e, url, c->plain_http, resp) < 0) {
		curl_easy_cleanup(e);
		error_set(err, EINVAL, "configure libcurl for %s", url);
		return NULL;
	}
	struct curl_slist *h = NULL;
	if (accept) {
		_cleanup_free_ char *a = xasprintf("Accept: %s", accept);
		h = curl_slist_append(h, a);
	}
	const char *tok = token_for(c, scope);
	if (tok) {
		h = curl_slist_append(h, tok);
	} else if (c->basic && c->have_cred) {
		char *b = basic_header(&c->cred);
		h = curl_slist_append(h, b);
		explicit_bzero(b, strlen(b));
		free(b);
	}
	if (h)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	*headers = h;
	return e;
}

CURLcode registry_run(struct registry_client *c, CURL *easy)
{
	CURLMcode mc = curl_multi_add_handle(c->multi, easy);
	if (mc != CURLM_OK)
		return CURLE_OUT_OF_MEMORY;
	CURLcode result = CURLE_OK;
	for (;;) {
		int running = 0;
		mc = curl_multi_perform(c->multi, &running);
		if (mc != CURLM_OK) {
			result = CURLE_RECV_ERROR;
			break;
		}
		CURLMsg *m;
		int left;
		bool done = false;
		while ((m = curl_multi_info_read(c->multi, &left))) {
			if (m->msg == CURLMSG_DONE && m->easy_handle == easy) {
				result = m->data.result;
				done = true;
			}
		}
		if (done || running == 0)
			break;
		mc = curl_multi_poll(c->multi, NULL, 0, 200, NULL);
		if (mc != CURLM_OK) {
			result = CURLE_RECV_ERROR;
			break;
		}
	}
	curl_multi_remove_handle(c->multi, easy);
	return result;
}

static void curl_slist_free_p(struct curl_slist **l)
{
	if (*l)
		curl_slist_free_all(*l);
}
#define _cleanup_slist_ __attribute__((cleanup(curl_slist_free_p)))

static int get_once(struct registry_client *c, const char *path, const char *scope, const char *accept,
		    struct registry_resp *resp, struct capsa_error **err)
{
	_cleanup_slist_ struct curl_slist *h = NULL;
	CURL *e = registry_easy(c, path, scope, accept, resp, &h, err);
	if (!e)
		return -1;
	resp->curl_code = registry_run(c, e);
	curl_easy_cleanup(e);
	if (resp->curl_code != CURLE_OK)
		return registry_transport_error(c, resp, err);
	return 0;
}

int registry_get(struct registry_client *c, const char *path, const char *scope, const char *accept, size_t cap,
		 struct registry_resp *resp, struct capsa_error **err)
{
	resp->body.cap = cap;
	if (get_once(c, path, scope, accept, resp, err) < 0)
		return -1;
	if (resp->status != 401)
		return 0;
	if (registry_authenticate(c, resp, scope, err) < 0)
		return -1;
	registry_resp_release(resp);
	resp->body.cap = cap;
	if (get_once(c, path, scope, accept, resp, err) < 0)
		return -1;
	if (resp->status == 401 && c->basic && c->have_cred)
		return error_set(err, EACCES, "invalid username or password");
	return 0;
}

/* --- the challenge flow --------------------------------------------------- */

/* realm?service=S&scope=X, checked against the scheme policy. */
static char *token_url(struct registry_client *c, const char *realm, const char *service, const char *scope,
		       struct capsa_error **err)
{
	if (strlen(realm) > 2048) {
		error_set(err, EINVAL, "token realm longer than 2048 bytes");
		return NULL;
	}
	const char *hp;
	bool https = strncasecmp(realm, "https://", 8) == 0;
	if (https)
		hp = realm + 8;
	else if (strncasecmp(realm, "http://", 7) == 0)
		hp = realm + 7;
	else {
		error_set(err, EINVAL, "token realm '%.200s' is not an http(s) URL", realm);
		return NULL;
	}
	_cleanup_free_ char *host = xstrndup(hp, strcspn(hp, "/?#"));
	for (char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == '@' || (unsigned char)*p >= 0x7f) {
			error_set(err, EINVAL, "token realm '%.200s': invalid host", realm);
			return NULL;
		}
	if (!https && !plain_http_allowed(c, host)) {
		error_set(err, EPERM,
			  "token realm %.200s uses plain HTTP for a host that is neither loopback nor an insecure registry",
			  realm);
		return NULL;
	}
	if (strchr(realm, '#')) {
		error_set(err, EINVAL, "token realm '%.200s' has a fragment", realm);
		return NULL;
	}
	struct buf u = BUF_INIT;
	buf_appendf(&u, "%s", realm);
	char sep = strchr(realm, '?') ? '&' : '?';
	if (service && *service) {
		char *s = curl_easy_escape(NULL, service, 0);
		buf_appendf(&u, "%cservice=%s", sep, s ? s : "");
		curl_free(s);
		sep = '&';
	}
	if (scope && *scope) {
		char *s = curl_easy_escape(NULL, scope, 0);
		buf_appendf(&u, "%cscope=%s", sep, s ? s : "");
		curl_free(s);
		sep = '&';
	}
	if (c->have_cred) {
		char *s = curl_easy_escape(NULL, c->cred.user, 0);
		buf_appendf(&u, "%caccount=%s", sep, s ? s : "");
		curl_free(s);
	}
	return buf_steal(&u);
}

static int fetch_token(struct registry_client *c, const struct auth_challenge *ch, const char *scope,
		       struct capsa_error **err)
{
	const char *realm = auth_challenge_param(ch, "realm");
	const char *service = auth_challenge_param(ch, "service");
	/* the scope the registry asks for wins over our guess */
	const char *want = auth_challenge_param(ch, "scope");
	if (!want)
		want = scope;
	if (!realm || !*realm)
		return error_set(err, EPROTO, "bearer challenge without a realm");
	_cleanup_free_ char *url = token_url(c, realm, service, want, err);
	if (!url)
		return -1;
	struct registry_resp resp = { 0 };
	resp.body.cap = REGISTRY_TOKEN_MAX;
	resp.content_length = -1;
	CURL *e = curl_easy_init();
	if (!e)
		return error_set(err, ENOMEM, "create a libcurl handle");
	bool plain_ok = plain_http_allowed(c, url + (strncasecmp(url, "https://", 8) == 0 ? 8 : 7));
	easy_common(c, e, url, plain_ok, &resp);
	_cleanup_slist_ struct curl_slist *h = NULL;
	if (c->have_cred) {
		char *b = basic_header(&c->cred);
		h = curl_slist_append(h, b);
		explicit_bzero(b, strlen(b));
		free(b);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	}
	resp.curl_code = registry_run(c, e);
	curl_easy_cleanup(e);
	int rc = 0;
	if (resp.curl_code != CURLE_OK) {
		rc = registry_transport_error(c, &resp, err);
		error_wrap(err, "token server %.200s", realm);
	} else if (resp.status == 401 || resp.status == 403) {
		rc = c->have_cred ? error_set(err, EACCES, "invalid username or password")
				  : error_set(err, EACCES, "authentication required");
	} else if (resp.status != 200) {
		rc = error_set(err, EPROTO, "token server %.200s answered HTTP %ld", realm, resp.status);
	} else {
		char *token = NULL;
		if (token_response_parse(resp.body.data, resp.body.len, &token, err) < 0) {
			rc = error_wrap(err, "token server %.200s", realm);
		} else {
			token_put(c, scope, xasprintf("Authorization: Bearer %s", token));
			explicit_bzero(token, strlen(token));
			free(token);
		}
	}
	if (resp.body.data)
		explicit_bzero(resp.body.data, resp.body.len);
	registry_resp_release(&resp);
	return rc;
}

int registry_authenticate(struct registry_client *c, const struct registry_resp *resp, const char *scope,
			  struct capsa_error **err)
{
	struct auth_challenges ch = { 0 };
	for (size_t i = 0; resp->challenges && resp->challenges[i]; i++) {
		if (auth_parse_challenges(resp->challenges[i], strlen(resp->challenges[i]), &ch, err) < 0) {
			auth_challenges_release(&ch);
			return -1;
		}
	}
	int rc;
	const struct auth_challenge *bearer = auth_find_challenge(&ch, "bearer");
	const struct auth_challenge *basic = auth_find_challenge(&ch, "basic");
	if (c->basic && !bearer) {
		/* the credentials we sent were refused */
		rc = c->have_cred ? error_set(err, EACCES, "invalid username or password")
				  : error_set(err, EACCES, "authentication required");
	} else if (bearer) {
		/* a cached token that is refused has expired: fetch anew (the
		 * caller retries once, so a refused fresh token is final) */
		token_drop(c, scope);
		rc = fetch_token(c, bearer, scope, err);
	} else if (basic) {
		c->basic = true;
		rc = c->have_cred ? 0 : error_set(err, EACCES, "authentication required");
	} else if (ch.n) {
		rc = error_set(err, ENOTSUP, "authentication required (unsupported scheme '%.40s')", ch.v[0].scheme);
	} else {
		rc = error_set(err, EACCES, "authentication required");
	}
	auth_challenges_release(&ch);
	return rc;
}

/* --- errors --------------------------------------------------------------- */

int registry_transport_error(struct registry_client *c, const struct registry_resp *resp,
			     struct capsa_error **err)
{
	const char *detail = resp->curl_err[0] ? resp->curl_err : curl_easy_strerror(resp->curl_code);
	switch (resp->curl_code) {
	case CURLE_ABORTED_BY_CALLBACK:
		return error_set(err, EINTR, "interrupted");
	case CURLE_WRITE_ERROR:
		if (resp->body_too_large)
			return error_set(err, EFBIG, "response larger than %zu bytes", resp->body.cap);
		return error_set(err, EIO, "%s", detail);
	case CURLE_COULDNT_RESOLVE_HOST:
		return error_set(err, EHOSTUNREACH, "cannot resolve host: %s", detail);
	case CURLE_COULDNT_CONNECT:
		return error_set(err, ECONNREFUSED, "unreachable: %s", detail);
	case CURLE_OPERATION_TIMEDOUT:
		return error_set(err, ETIMEDOUT, "timed out: %s", detail);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return error_set(err, EPROTO, "TLS failure: %s%s", detail,
				 c->plain_http ? "" : " (a registry without TLS must be named with --insecure-registry)");
	case CURLE_UNSUPPORTED_PROTOCOL:
		return error_set(err, EPERM, "redirect refused: %s", detail);
	case CURLE_TOO_MANY_REDIRECTS:
		return error_set(err, ELOOP, "too many redirects");
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return error_set(err, ECONNRESET, "connection lost: %s", detail);
	default:
		return error_set(err, EIO, "%s", detail);
	}
}

int registry_status_error(const struct registry_resp *resp, const char *what, struct capsa_error **err)
{
	_cleanup_free_ char *detail = registry_error_parse(resp->body.data, resp->body.len);
	const char *reason;
	int code;
	switch (resp->status) {
	case 401:
		reason = "authentication required";
		code = EACCES;
		break;
	case 403:
		reason = "access denied";
		code = EACCES;
		break;
	case 404:
		reason = str_has_prefix(what, "manifest") ? "manifest unknown" : "blob unknown";
		code = ENOENT;
		break;
	case 429:
		reason = "too many requests";
		code = EAGAIN;
		break;
	default:
		reason = NULL;
		code = EPROTO;
	}
	if (reason && detail && strcasecmp(detail, reason) == 0) {
		free(detail);
		detail = NULL;
	}
	if (reason)
		return error_set(err, code, "%s: %s%s%s%s", what, reason, detail ? " (" : "", detail ? detail : "",
				 detail ? ")" : "");
	return error_set(err, code, "%s: HTTP %ld%s%s%s", what, resp->status, detail ? " (" : "",
			 detail ? detail : "", detail ? ")" : "");
}
