/* http.c: requests and responses on libmicrohttpd (http.h).
 *
 * A request's life, all on the listener's MHD thread except step 4:
 *   1. uri_cb: the raw request target, before MHD parses it: allocate the
 *      request, split and percent-decode the path and query ourselves
 *      (so a %00 or a bad escape is refused, never silently truncated);
 *   2. first access call: headers complete: count them, authenticate
 *      (a TCP connection that shows the token leaves the guard on
 *      unauthenticated connections, preauth.h; one that does not is
 *      answered 401 and closed), route, check the declared body size;
 *   3. body calls: append to the route's sink, bounded;
 *   4. final call: suspend the connection and hand the request to a
 *      worker, which runs the handler and resumes the connection;
 *   5. the access call after the resume queues the response;
 *   6. completed_cb: metrics, then the request is freed.
 * Errors found in steps 1-3 are answered at once, from the MHD thread.
 * Around them, notify_cb tells the guard of every TCP connection accepted
 * and closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "json.h"
#include "pool.h"
#include "preauth.h"
#include "server.h"
#include "stream.h"
#include "util/error.h"
#include "util/fs.h"

/* --- decoding ---------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_unescape(const char *in, size_t n, bool plus, char **out)
{
	char *o = xmalloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '%') {
			int hi = i + 1 < n ? hexval(in[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(in[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(o);
				return -1;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus && c == '+') {
			c = ' ';
		}
		if (c == '\0') {
			free(o);
			return -1;
		}
		o[j++] = c;
	}
	o[j] = '\0';
	*out = o;
	return 0;
}

static void set_bad(struct http_req *r, unsigned status, const char *msg)
{
	if (r->bad)
		return;
	r->bad = xstrdup(msg);
	r->bad_status = status;
}

void http_parse_target(struct http_req *r, const char *uri)
{
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	if (plen == 0 || uri[0] != '/') {
		set_bad(r, 400, "the request target must be an absolute path");
		return;
	}
	/* path segments, decoded one by one so that %2F stays inside its segment */
	const char *p = uri + 1, *end = uri + plen;
	while (p <= end) {
		const char *s = memchr(p, '/', (size_t)(end - p));
		if (!s)
			s = end;
		if (s == p && s == end)
			break;
		if (r->n_seg == HTTP_MAX_SEGMENTS) {
			set_bad(r, 404, "no such endpoint: the path has too many segments");
			return;
		}
		if (http_unescape(p, (size_t)(s - p), false, &r->seg[r->n_seg]) < 0) {
			set_bad(r, 400, "the path contains a malformed escape or a NUL byte");
			return;
		}
		r->n_seg++;
		p = s + 1;
	}
	if (!q)
		return;
	p = q + 1;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > 0) {
			if (r->n_query == HTTP_MAX_QUERY) {
				set_bad(r, 400, "too many query parameters");
				return;
			}
			const char *eq = memchr(p, '=', len);
			size_t kl = eq ? (size_t)(eq - p) : len;
			struct http_kv *kv = &r->query[r->n_query];
			if (http_unescape(p, kl, true, &kv->key) < 0 ||
			    http_unescape(eq ? eq + 1 : "", eq ? len - kl - 1 : 0, true, &kv->value) < 0) {
				free(kv->key);
				kv->key = NULL;
				set_bad(r, 400, "the query contains a malformed escape or a NUL byte");
				return;
			}
			r->n_query++;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
}

const char *http_query(const struct http_req *r, const char *key)
{
	for (size_t i = 0; i < r->n_query; i++)
		if (strcmp(r->query[i].key, key) == 0)
			return r->query[i].value;
	return NULL;
}

bool http_query_bool(const struct http_req *r, const char *key, bool def, bool *ok)
{
	const char *v = http_query(r, key);
	if (!v)
		return def;
	if (!*v || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
		return true;
	if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
		return false;
	if (ok)
		*ok = false;
	return def;
}

const char *http_header(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

json_t *http_json_body(struct http_req *r, bool required)
{
	if (r->body.len == 0 && !required)
		return json_object();
	char msg[256];
	json_t *j = json_parse_body(r->body.data, r->body.len, msg, sizeof(msg));
	if (!j)
		http_reply_error(r, 400, "invalid_json", "%s", msg);
	return j;
}

/* --- replies ----------------------------------------------------------- */

unsigned http_status_for_errno(int code, const char **word)
{
	static const struct {
		int code;
		unsigned status;
		const char *word;
	} map[] = {
		{ ENOENT, 404, "not_found" },	     { EINVAL, 400, "invalid_argument" },
		{ EEXIST, 409, "already_exists" },   { EBUSY, 409, "conflict" },
		{ ESRCH, 409, "not_running" },	     { EDQUOT, 429, "capacity_exhausted" },
		{ ENOSPC, 507, "insufficient_storage" }, { E2BIG, 413, "too_large" },
		{ EFBIG, 413, "too_large" },	     { EPERM, 403, "permission_denied" },
		{ EACCES, 403, "permission_denied" }, { ENOTSUP, 501, "not_supported" },
		{ ENOSYS, 501, "not_supported" },    { EAGAIN, 503, "unavailable" },
		{ ETIMEDOUT, 504, "timeout" },	     { ENOTDIR, 400, "not_a_directory" },
		{ EISDIR, 400, "is_a_directory" },   { ENOTEMPTY, 409, "not_empty" },
		{ ELOOP, 400, "invalid_argument" },  { ENAMETOOLONG, 400, "invalid_argument" },
		{ EPROTO, 502, "bad_gateway" },	     { ECONNREFUSED, 502, "bad_gateway" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (map[i].code == code) {
			*word = map[i].word;
			return map[i].status;
		}
	*word = "internal";
	return 500;
}

static void set_response(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
	pthread_mutex_lock(&r->mu);
	if (r->resp || !resp) {
		pthread_mutex_unlock(&r->mu);
		if (resp)
			MHD_destroy_response(resp);
		return;
	}
	r->resp = resp;
	r->status = status;
	pthread_mutex_unlock(&r->mu);
}

void http_reply_response(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
	set_response(r, status, resp);
}

void http_reply_raw(struct http_req *r, unsigned status, const char *content_type, const void *p, size_t n)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	if (resp && content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	set_response(r, status, resp);
}

void http_reply_json(struct http_req *r, unsigned status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s) {
		http_reply_raw(r, 500, "application/json",
			       "{\"code\":500,\"error\":\"internal\",\"message\":\"response is not encodable as JSON\"}", 78);
		return;
	}
	size_t n = strlen(s);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(s);
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	set_response(r, status, resp);
}

void http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd, int64_t size)
{
	struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)size, fd);
	if (!resp) {
		close(fd);
		http_reply_error(r, 500, "internal", "cannot create a response from a file");
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	set_response(r, status, resp);
}

void http_reply_empty(struct http_req *r, unsigned status)
{
	set_response(r, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

void http_reply_error(struct http_req *r, unsigned status, const char *word, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:i, s:s, s:s}", "code", (int)status, "error", word, "message", msg);
	if (!j) /* invalid UTF-8 echoed from the input */
		j = json_pack("{s:i, s:s, s:s}", "code", (int)status, "error", word, "message",
			      "the request was refused (the reason names input that is not valid UTF-8)");
	http_reply_json(r, status, j);
}

void http_reply_capsa_error(struct http_req *r, struct capsa_error *err)
{
	const char *word;
	unsigned status = http_status_for_errno(err ? err->code : 0, &word);
	http_reply_error(r, status, word, "%s", err && err->msg ? err->msg : "unknown error");
	capsa_error_free(err);
}

void http_reply_stream(struct http_req *r, unsigned status, const char *content_type, struct stream *s)
{
	struct MHD_Response *resp = stream_response(s);
	if (!resp) {
		http_reply_error(r, 500, "internal", "cannot create a streaming response");
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	pthread_mutex_lock(&r->mu);
	bool first = !r->resp;
	if (first) {
		stream_ref(s);
		r->stream = s;
	}
	pthread_mutex_unlock(&r->mu);
	set_response(r, status, resp);
}

void http_reply_header(struct http_req *r, const char *name, const char *value)
{
	pthread_mutex_lock(&r->mu);
	if (r->resp)
		MHD_add_response_header(r->resp, name, value);
	pthread_mutex_unlock(&r->mu);
}

/* --- the request lifecycle -------------------------------------------- */

void http_req_free(struct http_req *r)
{
	for (size_t i = 0; i < r->n_seg; i++)
		free(r->seg[i]);
	for (size_t i = 0; i < r->n_query; i++) {
		free(r->query[i].key);
		free(r->query[i].value);
	}
	for (size_t i = 0; i < ARRAY_SIZE(r->param); i++)
		free(r->param[i]);
	free(r->rest);
	free(r->raw_uri);
	free(r->bad);
	free(r->sandbox_id);
	buf_release(&r->body);
	if (r->spool_fd >= 0)
		close(r->spool_fd);
	if (r->tunnel_fd >= 0)
		close(r->tunnel_fd);
	free(r->upgrade);
	if (r->resp)
		MHD_destroy_response(r->resp);
	stream_unref(r->stream);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct listener *l = cls;
	struct http_req *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->srv = l->srv;
	r->lst = l;
	r->conn = conn;
	r->spool_fd = -1;
	r->tunnel_fd = -1;
	r->t_start_ns = mono_ns();
	r->raw_uri = xstrdup(uri ? uri : "");
	http_parse_target(r, r->raw_uri);
	atomic_fetch_add(&l->srv->metrics.requests, 1);
	return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct http_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	struct metrics *m = &r->srv->metrics;
	if (r->status >= 400 || r->status == 0)
		atomic_fetch_add(&m->errors, 1);
	http_req_free(r);
}

/* The largest body of a request with no route that is read before the
 * 404/405: a client may send that much before it reads the answer. */
#define DISCARD_MAX (64 * 1024)

/* The guard's handle of r's connection; NULL on the unix socket. */
static struct preauth_conn *conn_guard(const struct http_req *r)
{
	if (!r->lst->tcp)
		return NULL;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static enum MHD_Result queue_now(struct http_req *r)
{
	if (!r->resp)
		http_reply_error(r, 500, "internal", "no response");
	/* an answer on a connection that never showed the token is its last */
	if (r->lst->tcp && !preauth_is_authenticated(conn_guard(r)))
		http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (r->stream)
		stream_attach(r->stream, r->conn);
	enum MHD_Result ret = MHD_queue_response(r->conn, r->status, r->resp);
	return ret;
}

static enum MHD_Result reply_now(struct http_req *r, unsigned status, const char *word, const char *msg)
{
	http_reply_error(r, status, word, "%s", msg);
	return queue_now(r);
}

static bool token_eq(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return diff == 0;
}

static bool authorized(struct http_req *r)
{
	struct server *srv = r->srv;
	if (!r->lst->tcp)
		return true;
	const char *auth = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && token_eq(auth + 7, srv->token))
		return true;
	if (token_eq(http_header(r, "X-API-Key"), srv->token))
		return true;
	if (r->sandbox_id) {
		const char *t = http_header(r, "X-Access-Token");
		if (!t)
			t = http_header(r, "E2B-Traffic-Access-Token");
		if (t && token_eq(t, srv->token))
			return true;
		_cleanup_free_ char *want = server_sandbox_token(srv, r->sandbox_id);
		if (t && token_eq(t, want))
			return true;
	}
	return false;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	(void)key;
	(void)value;
	(*(size_t *)cls)++;
	return MHD_YES;
}

static int open_spool(struct http_req *r)
{
	_cleanup_free_ char *dir = xasprintf("%s/tmp", r->srv->root);
	r->spool_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	return r->spool_fd;
}

static int64_t body_cap(const struct http_req *r)
{
	switch (r->route->body) {
	case BODY_SPOOL:
		return r->srv->max_upload;
	case BODY_BYTES:
		return HTTP_MAX_BYTES_BODY;
	default:
		return r->srv->max_json;
	}
}

/* Headers are complete: decide whether and where this request goes. */
static enum MHD_Result on_headers(struct http_req *r)
{
	struct server *srv = r->srv;
	size_t nh = 0;
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &nh);
	if (nh > HTTP_MAX_HEADERS)
		return reply_now(r, 431, "too_many_headers", "the request has more than 100 header fields");
	const char *sid = http_header(r, "E2b-Sandbox-Id");
	if (sid) {
		r->sandbox_id = xstrdup(sid);
		const char *port = http_header(r, "E2b-Sandbox-Port");
		int64_t p = 0;
		if (!port || parse_int64(port, 1, 65535, &p) < 0)
			p = -1;
		r->sandbox_port = (int)p;
	}
	if (!authorized(r)) {
		/* even on a connection that showed the right token before */
		http_reply_error(r, 401, "unauthorized", "unauthorized");
		http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
		return queue_now(r);
	}
	struct preauth_conn *guard = conn_guard(r);
	if (guard && !preauth_authenticated(srv->preauth, guard))
		return MHD_NO; /* the guard closed it as the headers completed */
	if (r->bad)
		return reply_now(r, (unsigned)r->bad_status, r->bad_status == 404 ? "not_found" : "invalid_argument", r->bad);
	const struct route *table = native_routes;
	if (r->sandbox_id) {
		if (r->sandbox_port == 49983)
			table = envd_routes;
		else if (r->sandbox_port == 49999)
			table = interp_routes;
		else {
			char msg[200];
			snprintf(msg, sizeof(msg),
				 "port %d of a sandbox is not served here: the sandbox plane has the envd (49983) and "
				 "code interpreter (49999) ports; use /v1/sandboxes/{id}/ports/{port} for others",
				 r->sandbox_port);
			return reply_now(r, 502, "bad_gateway", msg);
		}
	}
	bool path_known = false;
	r->route = route_match(table, r, &path_known);
	if (!r->route && table == native_routes)
		r->route = route_match(native_io_routes, r, &path_known);
	if (!r->route && table == native_routes)
		r->route = route_match(e2b_routes, r, &path_known);
	const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t len = 0;
	if (cl && parse_int64(cl, 0, INT64_MAX, &len) < 0)
		return reply_now(r, 400, "invalid_argument", "invalid Content-Length");
	if (!r->route) {
		unsigned status = path_known ? 405 : 404;
		const char *word = path_known ? "method_not_allowed" : "not_found";
		const char *msg = path_known ? "this endpoint does not accept that method" : "no such endpoint";
		/* a small declared body is read (and dropped) first: answering
		 * now would close the connection under a client still sending */
		if (cl && len > 0 && len <= DISCARD_MAX) {
			set_bad(r, status, msg);
			r->discard_word = word;
			return MHD_YES;
		}
		return reply_now(r, status, word, msg);
	}
	int64_t cap = body_cap(r);
	if (len > cap) {
		char msg[160];
		snprintf(msg, sizeof(msg), "the request body of %lld bytes is larger than the limit of %lld bytes",
			 (long long)len, (long long)cap);
		return reply_now(r, 413, "too_large", msg);
	}
	if (r->route->body == BODY_SPOOL && open_spool(r) < 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "cannot create a temporary file in %s/tmp: %s", srv->root, strerror(errno));
		return reply_now(r, 500, "internal", msg);
	}
	if (r->route->body != BODY_SPOOL)
		r->body.cap = (size_t)cap;
	return MHD_YES;
}

static enum MHD_Result on_body(struct http_req *r, const char *data, size_t n)
{
	int64_t cap = body_cap(r);
	if (r->body_over || r->body_len + (int64_t)n > cap) {
		/* chunked, so no early answer was possible: stop reading and
		 * close the connection rather than swallow an endless body */
		r->body_over = true;
		return MHD_NO;
	}
	r->body_len += (int64_t)n;
	if (r->route->body == BODY_SPOOL) {
		if (write_all(r->spool_fd, data, n) < 0) {
			set_bad(r, errno == ENOSPC ? 507 : 500, "cannot store the request body");
			r->body_over = true;
		}
		return MHD_YES;
	}
	if (buf_append(&r->body, data, n) < 0)
		return MHD_NO;
	return MHD_YES;
}

static void finish(struct http_req *r)
{
	if (!r->resp)
		http_reply_error(r, 500, "internal", "the handler produced no response");
	if (r->metric) {
		struct metrics *m = &r->srv->metrics;
		struct histogram *h = strcmp(r->metric, "create") == 0 ? &m->create_seconds : &m->exec_seconds;
		metrics_observe(h, mono_ns() - r->t_start_ns);
	}
	r->done = true;
	MHD_resume_connection(r->conn);
}

/* A deferred request is held by its worker and by its completer; the last
 * one to let go sends the response (the request may be freed right after,
 * so neither touches it again). */
void http_defer(struct http_req *r)
{
	atomic_store(&r->holds, 2);
	r->deferred = true;
}

void http_complete(struct http_req *r)
{
	if (atomic_fetch_sub(&r->holds, 1) == 1)
		finish(r);
}

static void run_job(void *arg, struct capsa_ctx *ctx)
{
	struct http_req *r = arg;
	r->route->fn(r, ctx);
	if (r->deferred) {
		http_complete(r);
		return;
	}
	finish(r);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)version;
	struct http_req *r = *con_cls;
	if (!r)
		return MHD_NO;
	if (!r->route && !r->resp && !r->discard_word) {
		snprintf(r->method, sizeof(r->method), "%s", method);
		return on_headers(r);
	}
	if (r->discard_word) {
		r->discarded += (int64_t)*upload_data_size;
		if (r->discarded > DISCARD_MAX)
			return MHD_NO;
		if (*upload_data_size > 0) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return reply_now(r, (unsigned)r->bad_status, r->discard_word, r->bad);
	}
	if (r->done)
		return queue_now(r);
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		return on_body(r, upload_data, n);
	}
	if (r->dispatched)
		return MHD_YES; /* resumed without a response: cannot happen; wait */
	if (r->bad)
		return reply_now(r, (unsigned)r->bad_status, "internal", r->bad);
	if (r->spool_fd >= 0 && lseek(r->spool_fd, 0, SEEK_SET) < 0)
		return reply_now(r, 500, "internal", "cannot rewind the request body");
	if (atomic_load(&r->srv->stopping))
		return reply_now(r, 503, "unavailable", "the server is stopping");
	r->dispatched = true;
	MHD_suspend_connection(conn);
	if (pool_submit(r->srv->pool, run_job, r) < 0) {
		r->dispatched = false;
		http_reply_error(r, 503, "unavailable", "the server is stopping");
		r->done = true;
		MHD_resume_connection(conn);
	}
	return MHD_YES;
}

/* Every TCP connection is in the guard from its accept to its close. */
static void notify_cb(void *cls, struct MHD_Connection *conn, void **socket_ctx,
		      enum MHD_ConnectionNotificationCode code)
{
	struct listener *l = cls;
	if (!l->tcp)
		return;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		preauth_remove(l->srv->preauth, *socket_ctx);
		*socket_ctx = NULL;
		return;
	}
	const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *peer = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (fd)
		*socket_ctx = preauth_add(l->srv->preauth, fd->connect_fd, peer ? peer->client_addr : NULL);
}

static void PRINTF(2, 0) log_cb(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("capsa serve: libmicrohttpd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

int http_listener_start(struct listener *l, int conn_timeout_s, int max_connections, struct capsa_error **err)
{
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
	l->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, l, MHD_OPTION_EXTERNAL_LOGGER, log_cb, NULL,
				MHD_OPTION_LISTEN_SOCKET, l->fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)conn_timeout_s,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_connections,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_URI_LOG_CALLBACK,
				uri_cb, l, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, l, MHD_OPTION_NOTIFY_CONNECTION,
				notify_cb, l, MHD_OPTION_END);
	if (!l->d)
		return error_set(err, EIO, "start the HTTP server on %s", l->desc);
	return 0;
}

void http_listener_quiesce(struct listener *l)
{
	if (l->d)
		MHD_quiesce_daemon(l->d);
}

void http_listener_stop(struct listener *l)
{
	if (l->d)
		MHD_stop_daemon(l->d);
	l->d = NULL;
}
