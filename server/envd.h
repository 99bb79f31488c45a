/* envd.h: helpers of the sandbox plane (api-envd.c, api-interp.c): requests
 * that name their sandbox with the E2b-Sandbox-Id header. */
#ifndef CAPSA_SERVER_ENVD_H
#define CAPSA_SERVER_ENVD_H

#include <stdbool.h>

#include <jansson.h>

#include "http.h"

/* The full id of the request's sandbox, or NULL after replying 502 (what
 * E2B's proxy answers for a sandbox that does not exist). */
char *envd_sandbox(struct http_req *r, struct capsa_ctx *ctx);
/* Whether a library error says the sandbox itself is not running. */
bool envd_sandbox_gone(const struct capsa_error *err);
/* The user named by "Authorization: Basic base64(user:)", or NULL. */
char *envd_user(struct http_req *r);

struct capsa_file_info;
/* E2B's filesystem.EntryInfo for a file. */
json_t *envd_entry_json(const struct capsa_file_info *i);

#endif
