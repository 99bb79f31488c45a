/* capsa/events.h: the sandbox event log (`capsa events`).
 *
 * Events are rows of the state database, appended by whoever observed the
 * event: create, start, exec_start, exec_die, pause, unpause, stop, oom,
 * die (attrs: exitCode, reason), remove, update, publish.  seq numbers are
 * increasing, so a follower asks for what came after the last one it saw.
 */
#ifndef CAPSA_EVENTS_H
#define CAPSA_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_event {
	int64_t seq;
	int64_t time_ms;     /* ms since the epoch */
	char *type;
	char *sandbox_id;    /* NULL for events of no sandbox */
	char *sandbox_name;  /* NULL once the sandbox was removed */
	char *attrs;	     /* JSON object */
};

struct capsa_events_filter {
	int64_t after_seq;   /* only seq > after_seq */
	int64_t since_ms;    /* 0: from the beginning */
	int64_t until_ms;    /* 0: no end */
	char **sandboxes;    /* full ids; NULL: all */
	char **types;	     /* NULL: all */
};

/* At most limit (0: 10000) events matching filter, oldest first. */
int capsa_events_read(struct capsa_ctx *ctx, const struct capsa_events_filter *filter, size_t limit,
		      struct capsa_event **out, size_t *n, struct capsa_error **err);
void capsa_events_free(struct capsa_event *v, size_t n);

/* Calls cb for every matching event, then keeps waiting for new ones
 * (checking every poll_ms, 0: 100) until cb returns non-zero, until_ms has
 * passed, or stop_fd (>= 0) becomes readable.  Blocking. */
int capsa_events_follow(struct capsa_ctx *ctx, const struct capsa_events_filter *filter, int poll_ms, int stop_fd,
			int (*cb)(void *ud, const struct capsa_event *e), void *ud, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
