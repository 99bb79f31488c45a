/* api.h: what the API modules (api-*.c) share. */
#ifndef CAPSA_SERVER_API_H
#define CAPSA_SERVER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "capsa/sandbox.h"
#include "capsa/template.h"
#include "http.h"
#include "json.h"

struct stream;

/* The main process of sandboxes created without a command: they exist to
 * be exec'd into, and live until stopped or timed out. */
extern char *api_keepalive_cmd[];

/* capsa_sandbox_run with the create counters; replies with the error. */
int api_create_sandbox(struct http_req *r, struct capsa_ctx *ctx, struct capsa_sandbox_opts *o, char **id_out);

/* One NDJSON line (o is stolen).  -1 when the client is gone. */
int api_emit_json(struct stream *s, json_t *o, bool block);
/* {"stream": name, "line": text} with invalid UTF-8 replaced. */
int api_emit_line(struct stream *s, const char *stream_name, const char *p, size_t n);

json_t *api_template_json(const struct capsa_template *t);

#endif
