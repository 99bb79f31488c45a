/* watchstream.h: directory watch events on the hub, streamed or polled
 * (watchstream.c). */
#ifndef CAPSA_SERVER_WATCHSTREAM_H
#define CAPSA_SERVER_WATCHSTREAM_H

#include <jansson.h>
#include <stdbool.h>

#include "hub.h"

struct stream;

enum wfmt {
	WFMT_E2B,    /* envelopes of filesystem.WatchDirResponse, then end-of-stream */
	WFMT_NDJSON, /* {"type":"create","path":...,"isDir":...,"time":...} ... {"type":"end"} */
};

/* Events of cw (watching root) go to s (a reference is taken); the start
 * message must already be queued.  Ends when the client leaves. */
struct hwatch *wstream_new(struct hub *h, struct capsa_watch *cw, struct stream *s, enum wfmt f, const char *root);

/* Events are kept (at most 10000) until taken; hub thread for the rest. */
struct hwatch *wpoll_new(struct hub *h, struct capsa_watch *cw, const char *sandbox_id, const char *root);
bool wpoll_is(const struct hwatch *w, const char *sandbox_id);
json_t *wpoll_take(struct hwatch *w);
void wpoll_sweep(struct hub *h);

#endif
