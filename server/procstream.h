/* procstream.h: what a process's output becomes on the hub (hub.h):
 * a streaming response in one of the API's formats, or, for a one-shot
 * exec, one JSON reply once the process ends. */
#ifndef CAPSA_SERVER_PROCSTREAM_H
#define CAPSA_SERVER_PROCSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "capsa/session.h"
#include "http.h"
#include "hub.h"

struct stream;
struct metrics;

enum pfmt {
	PFMT_E2B,    /* Connect envelopes of process.ProcessEvent, then end-of-stream */
	PFMT_NDJSON, /* {"type":"stdout","data":"<base64>"} ... {"type":"exit",...} */
	PFMT_SSE,    /* the same objects as server-sent events (event: stdout) */
};

/* Formats one message of a process stream into out. */
void pfmt_start(struct buf *out, enum pfmt f, pid_t pid);
void pfmt_output(struct buf *out, enum pfmt f, bool tty, int channel, const void *data, size_t len);
void pfmt_exit(struct buf *out, enum pfmt f, const struct capsa_exit *e);
void pfmt_keepalive(struct buf *out, enum pfmt f);

/* An hproc whose output goes to s (a reference is taken) in format f.
 * The start message must already be on the stream.  When the client
 * leaves, the session ends (a kept process runs on). */
struct hproc *pstream_new(struct hub *h, const char *sandbox_id, struct stream *s, enum pfmt f, bool tty,
			  struct metrics *m, int64_t t0_ns);

/* An hproc that collects output (at most cap bytes per channel) and
 * answers the deferred request r when the process ends:
 * {"exitCode", "signal", "reason", "message"?, "stdout", "stderr",
 *  "truncated"} with stdout/stderr as UTF-8 text (invalid bytes replaced)
 * or, with base64, as base64. */
struct hproc *oneshot_new(struct hub *h, const char *sandbox_id, struct http_req *r, size_t cap, bool base64);

/* The E2B end event fields for an exit (Go's os/exec conventions). */
json_t *e2b_end_event(const struct capsa_exit *e);

#endif
