/* server.h: capsa serve: an HTTP API over libcapsa (docs/api.md).
 *
 * The front-end calls server_run(); everything else in server/ is internal.
 * The server only parses, calls the library and prints: sandboxes it
 * creates are ordinary sandboxes (capsa ps shows them) with their own
 * supervisors, so they outlive a restart of the server.
 */
#ifndef CAPSA_SERVER_SERVER_H
#define CAPSA_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "capsa/admission.h"
#include "capsa/capsa.h"
#include "http.h"
#include "metrics.h"

struct server_opts {
	struct capsa_ctx_opts ctx;
	const char *socket_path;   /* NULL: <run root>/capsa.sock; "" or "none": no unix socket */
	char **listen;		   /* TCP addresses HOST:PORT (port 0: any), NULL-terminated */
	const char *token_file;	   /* NULL: <root>/api-token */
	int workers;		   /* 0: 16 */
	struct capsa_capacity capacity; /* zero fields: the host's (capsa_capacity_from_host) */
	bool capacity_set[4];	   /* which capacity fields were given */
	int64_t max_json;	   /* bytes; 0: 1 MiB */
	int64_t max_upload;	   /* bytes; 0: 4 GiB */
	int64_t max_download;	   /* bytes of one file or archive download; 0: 4 GiB */
	int conn_timeout_s;	   /* idle connection timeout; 0: 60 */
	int max_connections;	   /* per listener; 0: 1024 */
	int64_t header_timeout_ms; /* a TCP connection's first headers, from accept; 0: 10 s */
	int max_unauth;		   /* unauthenticated TCP connections (preauth.h); 0: max_connections / 2 */
	int max_unauth_per_peer;   /* of them from one peer; 0: 64, at most max_unauth */
	int max_streams;	   /* long-lived streaming responses; 0: 512 */
	int64_t e2b_default_timeout_ms; /* 0: 300 s */
	int64_t default_memory;	   /* limit of API sandboxes that give none; 0: 512 MiB */
	int64_t default_disk;	   /* --disk of API sandboxes that give none; 0: none */
	bool allow_host_network;   /* API creates may ask for the host's network */
	int stop_fd;		   /* readable: stop (tests); -1: SIGINT/SIGTERM */
};

struct listener {
	struct server *srv;
	struct MHD_Daemon *d;
	int fd;
	bool tcp; /* requests need the token */
	char *desc;
	/* a unix socket: its path and identity, to remove it at exit only
	 * while it is still the one we bound */
	char *sock_path;
	dev_t sock_dev;
	ino_t sock_ino;
};

struct pool;
struct interp_registry;
struct hub;

struct server {
	struct server_opts o;
	struct capsa_ctx_opts ctx_opts;
	char *root, *run_root;
	struct listener lst[8];
	size_t n_lst;
	char *token;
	struct pool *pool;
	struct preauth *preauth;
	struct metrics metrics;
	struct capsa_capacity capacity;
	int64_t max_json, max_upload, max_download;
	atomic_int n_streams;
	atomic_bool stopping;
	pthread_mutex_t streams_mu;
	struct stream *streams; /* every live stream, for keepalives and shutdown */
	pthread_t ticker;
	pthread_mutex_t ticker_mu;
	pthread_cond_t ticker_cond;
	bool ticker_started;
	struct interp_registry *interp;
	struct hub *hub;
};

int server_run(const struct server_opts *o, struct capsa_error **err);

/* Runs fn(arg, ctx) on a thread of its own with a context of its own, for
 * work that lasts as long as a streaming response (log and event
 * followers, pulls).  EAGAIN past max_streams. */
int server_spawn(struct server *srv, void (*fn)(void *arg, struct capsa_ctx *ctx), void *arg,
		 struct capsa_error **err);

/* The per-sandbox token that the sandbox plane accepts (E2B's
 * envdAccessToken): HMAC-SHA256 of the sandbox id under the API token. */
char *server_sandbox_token(const struct server *srv, const char *sandbox_id);

/* Route tables (api-*.c). */
struct route {
	const char *method;
	const char *pattern; /* "/v1/sandboxes/{}/exec", "/v1/images/{*}" */
	void (*fn)(struct http_req *r, struct capsa_ctx *ctx);
	enum http_body body;
	const char *metric; /* latency histogram name, or NULL */
};
extern const struct route native_routes[];
extern const struct route native_io_routes[];
extern const struct route e2b_routes[];
extern const struct route envd_routes[];
extern const struct route interp_routes[];

/* Matches method and path against a table: the route, with r->param and
 * r->rest filled; NULL with *path_known when only the method differs. */
const struct route *route_match(const struct route *table, struct http_req *r, bool *path_known);

#endif
