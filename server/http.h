/* http.h: the HTTP layer of capsa serve, on libmicrohttpd.
 *
 * One MHD daemon per listening socket, each with one epoll thread that does
 * all network I/O: it parses requests, checks authentication, routes, and
 * reads bodies (bounded).  Handlers never run there: every request is
 * suspended and handed to the worker pool (pool.c), whose threads each own
 * a capsa context and may block in library calls; the worker stores the
 * response and resumes the connection, and the MHD thread queues it.
 * Streaming responses read from a struct stream (stream.h) that producers
 * fill from other threads.
 *
 * Everything a handler sees in struct http_req is decoded and checked:
 * the path split into segments, the query parsed, no NUL anywhere, the
 * body within its route's cap.
 */
#ifndef CAPSA_SERVER_HTTP_H
#define CAPSA_SERVER_HTTP_H

#include <jansson.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "capsa/capsa.h"
#include "util/str.h"

struct server;
struct stream;
struct MHD_Connection;
struct MHD_Response;
struct route;

#define HTTP_MAX_SEGMENTS 16
#define HTTP_MAX_QUERY 32
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_BYTES_BODY (16 << 20)

struct http_kv {
	char *key, *value;
};

/* How a route takes its request body. */
enum http_body {
	BODY_NONE,  /* refused with 400 when present */
	BODY_JSON,  /* held in memory, at most srv->max_json bytes */
	BODY_BYTES, /* held in memory, at most HTTP_MAX_BYTES_BODY */
	BODY_SPOOL, /* written to a temporary file, at most srv->max_upload bytes */
};

struct http_req {
	struct server *srv;
	struct listener *lst;
	struct MHD_Connection *conn;
	const struct route *route;
	char method[16];
	char *raw_uri;
	char *seg[HTTP_MAX_SEGMENTS]; /* decoded path segments */
	size_t n_seg;
	struct http_kv query[HTTP_MAX_QUERY];
	size_t n_query;
	char *param[4];	 /* path parameters of the route, in order */
	char *rest;	 /* the "{rest*}" parameter: remaining segments joined by '/' */

	/* body */
	struct buf body;
	int spool_fd;	 /* BODY_SPOOL: the temporary file, rewound before the handler */
	int64_t body_len;
	bool body_over;	 /* more than the cap arrived */
	char *bad;	 /* set while parsing: the request is refused with 400 and this message */
	int bad_status;
	/* No route (404/405): the answer waits until a small body is read,
	 * so a client still sending it does not meet a closed connection. */
	const char *discard_word;
	int64_t discarded;

	/* sandbox plane (E2B): the E2b-Sandbox-Id / -Port headers */
	char *sandbox_id;
	int sandbox_port;

	/* response, filled by the worker (or, for a deferred request, by
	 * whoever completes it) */
	pthread_mutex_t mu;
	bool dispatched, done, deferred;
	atomic_int holds;
	unsigned status;
	struct MHD_Response *resp;
	struct stream *stream; /* when the response streams */

	int64_t t_start_ns;
	const char *metric; /* latency histogram to record in, or NULL */

	/* a tunnel being upgraded to (api-native-io.c) */
	int tunnel_fd;
	void *upgrade;
};

/* Request accessors. */
const char *http_query(const struct http_req *r, const char *key);
/* Case-insensitive request header, or NULL. */
const char *http_header(const struct http_req *r, const char *name);
bool http_query_bool(const struct http_req *r, const char *key, bool def, bool *ok);
/* The JSON body (an object), or NULL with a 400 reply already set. */
json_t *http_json_body(struct http_req *r, bool required);

/* Replies (from a worker).  Each sets the response once; later calls are
 * ignored. */
void http_reply_json(struct http_req *r, unsigned status, json_t *body /* stolen */);
void http_reply_raw(struct http_req *r, unsigned status, const char *content_type, const void *p, size_t n);
void http_reply_empty(struct http_req *r, unsigned status);
/* The size bytes of fd (taken over, closed with the response). */
void http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd, int64_t size);
void http_reply_error(struct http_req *r, unsigned status, const char *word, const char *fmt, ...) PRINTF(4, 5);
/* Maps err->code to a status and machine word; frees err. */
void http_reply_capsa_error(struct http_req *r, struct capsa_error *err);
/* Streams s (reference taken) with the given status and content type. */
void http_reply_stream(struct http_req *r, unsigned status, const char *content_type, struct stream *s);
/* Replies with a response built by the caller (an upgrade, say). */
void http_reply_response(struct http_req *r, unsigned status, struct MHD_Response *resp);
/* Adds a header to the response set by the last reply call. */
void http_reply_header(struct http_req *r, const char *name, const char *value);

/* The handler answers later, from another thread (the hub): the worker
 * returns without a response, and http_complete() (after a reply call)
 * sends it. */
void http_defer(struct http_req *r);
void http_complete(struct http_req *r);

/* errno -> HTTP status and the machine word of the error body. */
unsigned http_status_for_errno(int code, const char **word);

struct listener;
int http_listener_start(struct listener *l, int conn_timeout_s, int max_connections, struct capsa_error **err);
/* Stops accepting connections. */
void http_listener_quiesce(struct listener *l);
void http_listener_stop(struct listener *l);

/* Splits and decodes a request target into r->seg and r->query; a bad
 * escape, a NUL or too many parts set r->bad.  (Exposed for the fuzzer.) */
void http_parse_target(struct http_req *r, const char *uri);
/* Frees a request and everything it holds. */
void http_req_free(struct http_req *r);

/* Percent-decoding; '+' becomes ' ' with plus.  -1 on a malformed escape
 * or a decoded NUL. */
int http_unescape(const char *in, size_t n, bool plus, char **out);

#endif
