/* events.c: reading the event log (capsa/events.h).  Writers are the
 * lifecycle steps themselves (sandbox_event()); readers page through by
 * sequence number, so a follower that polls never misses or repeats one. */
#include <errno.h>
#include <string.h>

#include "capsa/events.h"
#include "sandbox.h"

CAPSA_EXPORT int capsa_events_list(struct capsa_ctx *ctx, const struct capsa_events_filter *f,
				   struct capsa_event **out, size_t *n, struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	size_t max = f->max ? f->max : 1000;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "SELECT seq, ts, sandbox_id, type, attrs FROM events WHERE seq>?1 "
			  "AND (?2=0 OR ts>=?2) AND (?3=0 OR ts<=?3) AND (?4 IS NULL OR sandbox_id=?4) "
			  "AND (?5 IS NULL OR type=?5) ORDER BY seq LIMIT ?6",
			  &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, f->after_seq);
	sqlite3_bind_int64(st, 2, f->since_ms);
	sqlite3_bind_int64(st, 3, f->until_ms);
	store_bind_text(st, 4, f->sandbox_id);
	store_bind_text(st, 5, f->type);
	sqlite3_bind_int64(st, 6, (int64_t)max);
	struct capsa_event *v = NULL;
	size_t count = 0;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		struct capsa_event *e = &v[count++];
		e->seq = sqlite3_column_int64(st, 0);
		e->ts_ms = sqlite3_column_int64(st, 1);
		e->sandbox_id = store_col_strdup(st, 2);
		e->type = store_col_strdup(st, 3);
		e->attrs_json = store_col_strdup(st, 4);
		if (!e->attrs_json)
			e->attrs_json = xstrdup("{}");
	}
	if (r != SQLITE_DONE) {
		capsa_events_free(v, count);
		return store_error(db, "read events", err);
	}
	*out = v;
	*n = count;
	return 0;
}

CAPSA_EXPORT void capsa_events_free(struct capsa_event *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].sandbox_id);
		free(v[i].type);
		free(v[i].attrs_json);
	}
	free(v);
}

CAPSA_EXPORT int64_t capsa_events_last_seq(struct capsa_ctx *ctx, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT coalesce(max(seq),0) FROM events", &st, err) < 0)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW)
		return store_error(db, "read events", err);
	return sqlite3_column_int64(st, 0);
}
