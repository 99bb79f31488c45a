/* capsa/events.h: the event log: one record per lifecycle step of every
 * sandbox (create, start, exec_die, pause, unpause, stop, die, remove),
 * kept in the state database in the order they happened. */
#ifndef CAPSA_EVENTS_H
#define CAPSA_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_event {
	int64_t seq;	   /* increasing; resume a listing after the last one seen */
	int64_t ts_ms;	   /* ms since the epoch */
	char *sandbox_id;  /* NULL for events of no sandbox */
	char *type;
	char *attrs_json;  /* a JSON object */
};

struct capsa_events_filter {
	int64_t after_seq; /* only events with seq > after_seq */
	int64_t since_ms;  /* 0: any time */
	int64_t until_ms;  /* 0: any time */
	const char *sandbox_id; /* full id, or NULL */
	const char *type;	/* or NULL */
	size_t max;		/* at most this many, oldest first; 0: 1000 */
};

int capsa_events_list(struct capsa_ctx *ctx, const struct capsa_events_filter *f, struct capsa_event **out,
		      size_t *n, struct capsa_error **err);
void capsa_events_free(struct capsa_event *v, size_t n);
/* The seq of the newest event (0 when there is none). */
int64_t capsa_events_last_seq(struct capsa_ctx *ctx, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
