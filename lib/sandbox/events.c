/* events.c: the event log (capsa/events.h).
 *
 * Most events are rows the library writes as it acts (create, start, stop,
 * die, remove, ...).  Exec events happen in the supervisor, which cannot
 * write the database: it appends them to <run>/<id>/events, and whoever
 * reads events (or finalizes the sandbox) imports the new lines first.  The
 * byte offset imported so far is kept in the meta table, read and advanced
 * in the same write transaction as the inserts, so two importers never
 * insert a line twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "capsa/events.h"
#include "sandbox.h"
#include "util/fs.h"

#define IMPORT_CHUNK (1u << 20)

static bool type_ok(const char *s, size_t n)
{
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return false;
	return true;
}

/* Inserts one journal line; malformed lines are skipped. */
static void import_line(struct store *db, const char *id, char *line)
{
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2)
		return;
	*sp1 = *sp2 = '\0';
	int64_t ts;
	if (parse_int64(line, 0, INT64_MAX, &ts) < 0 || !type_ok(sp1 + 1, strlen(sp1 + 1)))
		return;
	json_t *attrs = json_loads(sp2 + 1, 0, NULL);
	if (!json_is_object(attrs)) {
		json_decref(attrs);
		return;
	}
	char *js = json_dumps(attrs, JSON_COMPACT);
	json_decref(attrs);
	sqlite3_stmt *st = NULL;
	if (store_prepare(db, "INSERT INTO events(ts, sandbox_id, type, attrs) VALUES(?,?,?,?)", &st, NULL) == 0) {
		sqlite3_bind_int64(st, 1, ts);
		store_bind_text(st, 2, id);
		store_bind_text(st, 3, sp1 + 1);
		store_bind_text(st, 4, js);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	free(js);
}

int sandbox_events_import(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	if (!db)
		return -1;
	_cleanup_free_ char *path = xasprintf("%s/%s/events", ctx->run_root, id);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	_cleanup_free_ char *key = xasprintf("journal:%s", id);
	if (store_begin(db, NULL) < 0)
		return -1;
	int64_t off = 0;
	sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT value FROM meta WHERE key=?", &st, NULL) == 0) {
		store_bind_text(st, 1, key);
		if (sqlite3_step(st) == SQLITE_ROW)
			parse_int64((const char *)sqlite3_column_text(st, 0), 0, INT64_MAX, &off);
		sqlite3_finalize(st);
	}
	char *chunk = xmalloc(IMPORT_CHUNK + 1);
	int64_t start = off;
	for (;;) {
		ssize_t n = pread(fd, chunk, IMPORT_CHUNK, off);
		if (n <= 0)
			break;
		chunk[n] = '\0';
		size_t used = 0;
		for (;;) {
			char *nl = memchr(chunk + used, '\n', (size_t)n - used);
			if (!nl)
				break;
			*nl = '\0';
			import_line(db, id, chunk + used);
			used = (size_t)(nl - chunk) + 1;
		}
		if (used == 0) {
			/* a line longer than the chunk is not from our supervisor: skip it */
			if ((size_t)n == IMPORT_CHUNK)
				used = (size_t)n;
			else
				break;
		}
		off += (int64_t)used;
	}
	free(chunk);
	if (off != start && store_prepare(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st, NULL) == 0) {
		char v[32];
		snprintf(v, sizeof(v), "%lld", (long long)off);
		store_bind_text(st, 1, key);
		store_bind_text(st, 2, v);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	return store_commit(db, NULL);
}

void sandbox_events_forget(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "DELETE FROM meta WHERE key=?", &st, NULL) < 0)
		return;
	_cleanup_free_ char *key = xasprintf("journal:%s", id);
	store_bind_text(st, 1, key);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

static void import_all(struct capsa_ctx *ctx)
{
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "SELECT id FROM sandboxes WHERE state!='exited'", &st, NULL) < 0)
		return;
	char **ids = NULL;
	while (sqlite3_step(st) == SQLITE_ROW)
		ids = strv_push(ids, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	for (char **p = ids; p && *p; p++)
		sandbox_events_import(ctx, *p);
	strv_free(ids);
}

CAPSA_EXPORT void capsa_events_free(struct capsa_event *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].type);
		free(v[i].sandbox_id);
		free(v[i].sandbox_name);
		free(v[i].attrs);
	}
	free(v);
}

static bool wanted(const struct capsa_events_filter *f, const char *id, const char *type)
{
	if (f->types && !strv_contains(f->types, type))
		return false;
	if (f->sandboxes && (!id || !strv_contains(f->sandboxes, id)))
		return false;
	return true;
}

CAPSA_EXPORT int capsa_events_read(struct capsa_ctx *ctx, const struct capsa_events_filter *filter, size_t limit,
				   struct capsa_event **out, size_t *n, struct capsa_error **err)
{
	struct capsa_events_filter none = { 0 };
	const struct capsa_events_filter *f = filter ? filter : &none;
	*out = NULL;
	*n = 0;
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	import_all(ctx);
	if (!limit)
		limit = 10000;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "SELECT e.seq, e.ts, e.type, e.sandbox_id, s.name, e.attrs FROM events e "
			  "LEFT JOIN sandboxes s ON s.id = e.sandbox_id "
			  "WHERE e.seq > ?1 AND (?2 = 0 OR e.ts >= ?2) AND (?3 = 0 OR e.ts <= ?3) ORDER BY e.seq",
			  &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, f->after_seq);
	sqlite3_bind_int64(st, 2, f->since_ms);
	sqlite3_bind_int64(st, 3, f->until_ms);
	struct capsa_event *v = NULL;
	size_t k = 0;
	int r;
	while (k < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 2);
		const char *id = (const char *)sqlite3_column_text(st, 3);
		if (!wanted(f, id, type ? type : ""))
			continue;
		v = xrealloc(v, (k + 1) * sizeof(*v));
		v[k] = (struct capsa_event){
			.seq = sqlite3_column_int64(st, 0), .time_ms = sqlite3_column_int64(st, 1),
			.type = store_col_strdup(st, 2), .sandbox_id = store_col_strdup(st, 3),
			.sandbox_name = store_col_strdup(st, 4), .attrs = store_col_strdup(st, 5),
		};
		if (!v[k].attrs)
			v[k].attrs = xstrdup("{}");
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

CAPSA_EXPORT int capsa_events_follow(struct capsa_ctx *ctx, const struct capsa_events_filter *filter, int poll_ms,
				     int stop_fd, int (*cb)(void *ud, const struct capsa_event *e), void *ud,
				     struct capsa_error **err)
{
	struct capsa_events_filter f = filter ? *filter : (struct capsa_events_filter){ 0 };
	if (poll_ms <= 0)
		poll_ms = 100;
	for (;;) {
		struct capsa_event *v;
		size_t n;
		if (capsa_events_read(ctx, &f, 1000, &v, &n, err) < 0)
			return -1;
		int stop = 0;
		for (size_t i = 0; i < n && !stop; i++) {
			f.after_seq = v[i].seq;
			stop = cb(ud, &v[i]);
		}
		capsa_events_free(v, n);
		if (stop)
			return 0;
		if (n == 1000)
			continue;
		if (f.until_ms && now_ms() > f.until_ms)
			return 0;
		struct pollfd pfd = { .fd = stop_fd, .events = POLLIN };
		int pr = poll(&pfd, stop_fd >= 0 ? 1 : 0, poll_ms);
		if (pr > 0)
			return 0;
	}
}
