/* registry.h: the Docker Registry HTTP API v2 client behind `capsa pull`
 * and `capsa login`.
 *
 * registry-parse.c: the registry-specific documents (manifest responses
 *   against their Content-Type, token and error JSON); pure, fuzzed.  The
 *   image documents themselves go through oci.h, references through ref.h.
 * registry-http.c: the libcurl client: scheme policy (HTTPS unless the
 *   registry is on loopback or named insecure), the WWW-Authenticate
 *   challenge flow (bearer tokens cached per scope, basic auth from stored
 *   credentials), capped responses, error reasons.
 * pull.c: the pull itself (manifest, platform, parallel resumable blob
 *   downloads into the ingest API) and login/logout.
 */
#ifndef CAPSA_IMAGE_REGISTRY_H
#define CAPSA_IMAGE_REGISTRY_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/auth.h"
#include "image/oci.h"
#include "util/error.h"
#include "util/str.h"

#define REGISTRY_TOKEN_MAX (256 << 10)	/* token endpoint response */
#define REGISTRY_ERROR_BODY_MAX (64 << 10)
#define REGISTRY_TOKEN_LEN_MAX (64 << 10) /* the token itself */
#define REGISTRY_DEFAULT_PARALLEL 3

/* --- registry-parse.c ----------------------------------------------------- */

/* What a manifest response is (OCI_DOC_INDEX or OCI_DOC_MANIFEST), from its
 * body (oci_doc_kind) checked against the Content-Type (may be NULL):
 * refuses Docker schema 1, anything else, and a body that contradicts the
 * type it was served as. */
int registry_doc_kind(const char *content_type, const char *body, size_t len, enum oci_doc_kind *kind,
		      struct capsa_error **err);

/* The token of a token-endpoint response ("token" or "access_token");
 * refuses characters that could not go in a header. */
int token_response_parse(const char *body, size_t len, char **token_out, struct capsa_error **err);

/* The message (else the code) of the first error of a registry error body
 * ({"errors":[{"code","message"}]}), control characters blanked, or NULL. */
char *registry_error_parse(const char *body, size_t len);

/* true for localhost, 127.0.0.0/8 and ::1 (with or without port/brackets). */
bool host_is_loopback(const char *hostport);

/* --- registry-http.c ------------------------------------------------------ */

struct registry_client;

struct registry_client_opts {
	const char *const *insecure; /* host[:port] allowed over plain HTTP */
	const volatile int *cancel;  /* non-zero: stop every transfer */
	/* Credentials to use instead of the stored ones (login). */
	const char *user;
	const char *password;
};

/* A client for one registry: host[:port] as in image_ref.domain. */
int registry_client_new(struct capsa_ctx *ctx, const char *registry, const struct registry_client_opts *opts,
			struct registry_client **out, struct capsa_error **err);
void registry_client_free(struct registry_client *c);
const char *registry_client_host(const struct registry_client *c); /* for messages */
CURLM *registry_client_multi(struct registry_client *c);
bool registry_client_cancelled(const struct registry_client *c);

/* Per-response state, reset at every status line (redirects). */
struct registry_resp {
	long status;
	char *content_type;
	char *docker_digest;
	char *content_range;
	int64_t content_length; /* -1 unknown */
	char **challenges;	/* raw WWW-Authenticate values */
	struct buf body;	/* capped by the caller (body.cap) */
	/* > 0 for a blob download: the most a 2xx body may declare (the body
	 * then goes to the blob writer and body.cap applies to error bodies) */
	int64_t blob_max;
	bool body_too_large;
	CURLcode curl_code;
	char curl_err[CURL_ERROR_SIZE];
};
void registry_resp_release(struct registry_resp *r);
#define REGISTRY_HEADER_LINE_MAX 16384
/* Takes one response header line as libcurl delivers it (status lines
 * included, CRLF and all).  -1 stops the transfer: a line past
 * REGISTRY_HEADER_LINE_MAX, or a Content-Length over the body cap (then
 * body_too_large is set). */
int registry_resp_header(struct registry_resp *r, const char *line, size_t n);

/* A handle prepared for GET <base>/v2/<path> (path "" for the ping) with
 * the scheme policy, redirects, timeouts, the current Authorization for
 * scope and the header callback filling resp.  The caller adds the write
 * callback, Range and the like. */
CURL *registry_easy(struct registry_client *c, const char *path, const char *scope, const char *accept,
		    struct registry_resp *resp, struct curl_slist **headers, struct capsa_error **err);

/* GET with the auth flow: on 401 it answers the challenge once (token for
 * the scope or basic credentials) and retries.  The body is capped at cap.
 * Fails for transport errors and for basic credentials the registry
 * refuses; other HTTP statuses are left to the caller (see
 * registry_status_error). */
int registry_get(struct registry_client *c, const char *path, const char *scope, const char *accept, size_t cap,
		 struct registry_resp *resp, struct capsa_error **err);

/* Answers a 401's challenges for scope: fetches a bearer token (with the
 * credentials, if any) or switches to basic auth.  Fails with "authentication
 * required" (no credentials) or "invalid username or password". */
int registry_authenticate(struct registry_client *c, const struct registry_resp *resp, const char *scope,
			  struct capsa_error **err);

/* Runs one easy handle on the client's multi handle to completion. */
CURLcode registry_run(struct registry_client *c, CURL *easy);

/* Sets err from a transport failure (curl code) with a reason a person can
 * act on: unreachable host, TLS failure, redirect refused, timeout. */
int registry_transport_error(struct registry_client *c, const struct registry_resp *resp,
			     struct capsa_error **err);
/* Sets err for an unexpected status: what ("manifest", "blob sha256:...")
 * plus "authentication required", "manifest unknown", ... and the
 * registry's own error message when it sent one. */
int registry_status_error(const struct registry_resp *resp, const char *what, struct capsa_error **err);

#endif
