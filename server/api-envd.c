/* api-envd.c: E2B's in-sandbox API (envd, port 49983), implemented by the
 * server on top of the library rather than by a daemon in the sandbox:
 * requests arrive with E2b-Sandbox-Id / E2b-Sandbox-Port headers. */
#include <string.h>

#include "api.h"
#include "capsa/sandbox.h"
#include "server.h"

/* The SDK's isRunning(): 204 while the sandbox runs, 502 (what E2B's proxy
 * answers for a sandbox that is gone) otherwise. */
static void envd_health(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	_cleanup_free_ char *s = capsa_sandbox_inspect(ctx, r->sandbox_id, &err);
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	const char *state = json_string_value(json_object_get(j, "state"));
	if (state && strcmp(state, "exited") != 0)
		http_reply_empty(r, 204);
	else
		http_reply_error(r, 502, "sandbox_not_running", "sandbox %.100s is not running", r->sandbox_id);
	json_decref(j);
	capsa_error_free(err);
}

const struct route envd_routes[] = {
	{ "GET", "/health", envd_health, BODY_NONE, NULL },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};

const struct route interp_routes[] = {
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
