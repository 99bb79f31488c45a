/* watchstream.c: directory watch events on the hub (hub.h), streamed to a
 * client (E2B's WatchDir, the native watch) or kept for polling (E2B's
 * CreateWatcher / GetWatcherEvents). */
#include <errno.h>
#include <string.h>

#include "connect.h"
#include "stream.h"
#include "watchstream.h"

static const char *e2b_type(enum capsa_watch_type t)
{
	switch (t) {
	case CAPSA_WATCH_CREATE:
		return "EVENT_TYPE_CREATE";
	case CAPSA_WATCH_WRITE:
		return "EVENT_TYPE_WRITE";
	case CAPSA_WATCH_REMOVE:
		return "EVENT_TYPE_REMOVE";
	case CAPSA_WATCH_RENAME:
		return "EVENT_TYPE_RENAME";
	case CAPSA_WATCH_CHMOD:
		return "EVENT_TYPE_CHMOD";
	default:
		return NULL;
	}
}

static const char *native_type(enum capsa_watch_type t)
{
	static const char *const names[] = { "create", "write", "remove", "rename", "chmod", "overflow" };
	return (size_t)t < ARRAY_SIZE(names) ? names[t] : "unknown";
}

/* The event's path relative to the watched directory, as envd names it. */
static const char *rel_name(const char *root, const char *path)
{
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (strncmp(path, root, n) == 0 && path[n] == '/')
		return path + n + 1;
	return path;
}

/* E2B's FilesystemEvent, or NULL for what it has no name for. */
static json_t *e2b_event(const char *root, const struct capsa_watch_event *ev)
{
	const char *t = e2b_type(ev->type);
	return t ? json_pack("{s:s, s:s}", "name", rel_name(root, ev->path), "type", t) : NULL;
}

/* --- streamed ---------------------------------------------------------- */

struct wstream {
	struct stream *s;
	enum wfmt f;
	char *root;
	struct buf pending;
};

static bool ws_flush(struct wstream *ws)
{
	if (ws->pending.len == 0)
		return true;
	if (stream_write(ws->s, ws->pending.data, ws->pending.len, false) < 0)
		return errno == EPIPE;
	ws->pending.len = 0;
	return true;
}

static bool ws_event(struct hwatch *w, const struct capsa_watch_event *ev)
{
	struct wstream *ws = w->ud;
	if (ws->f == WFMT_E2B) {
		json_t *fe = e2b_event(ws->root, ev);
		if (!fe)
			return true;
		json_t *m = json_pack("{s:o}", "filesystem", fe);
		connect_envelope(&ws->pending, 0, m);
		json_decref(m);
	} else {
		char ts[40];
		format_rfc3339(ev->time_ms, ts, sizeof(ts));
		json_t *m = json_pack("{s:s, s:s, s:b, s:s}", "type", native_type(ev->type), "path", ev->path, "isDir",
				      ev->is_dir, "time", ts);
		char *s = json_dumps(m, JSON_COMPACT);
		json_decref(m);
		if (s)
			buf_appendf(&ws->pending, "%s\n", s);
		free(s);
	}
	return ws_flush(ws);
}

static void ws_end(struct hwatch *w, const char *error)
{
	struct wstream *ws = w->ud;
	if (ws->f == WFMT_E2B) {
		connect_end(&ws->pending, error ? "internal" : NULL, error);
	} else {
		json_t *m = error ? json_pack("{s:s, s:s}", "type", "end", "error", error) : json_pack("{s:s}", "type", "end");
		char *s = json_dumps(m, JSON_COMPACT);
		json_decref(m);
		buf_appendf(&ws->pending, "%s\n", s ? s : "{}");
		free(s);
	}
	stream_write_force(ws->s, ws->pending.data, ws->pending.len);
	ws->pending.len = 0;
	stream_close(ws->s, false);
}

static void ws_room(struct hwatch *w)
{
	struct wstream *ws = w->ud;
	if (stream_gone(ws->s)) {
		hwatch_close(w);
		return;
	}
	if (ws_flush(ws))
		hwatch_resume(w);
}

static void ws_release(struct hwatch *w)
{
	struct wstream *ws = w->ud;
	hub_unwatch_stream(ws->s);
	stream_close(ws->s, false);
	stream_unref(ws->s);
	buf_release(&ws->pending);
	free(ws->root);
	free(ws);
}

static const struct hwatch_ops wstream_ops = {
	.event = ws_event,
	.end = ws_end,
	.room = ws_room,
	.release = ws_release,
};

struct hwatch *wstream_new(struct hub *h, struct capsa_watch *cw, struct stream *s, enum wfmt f, const char *root)
{
	struct wstream *ws = xcalloc(1, sizeof(*ws));
	stream_ref(s);
	ws->s = s;
	ws->f = f;
	ws->root = xstrdup(root);
	struct hwatch *w = hwatch_new(h, cw, &wstream_ops, ws);
	hub_watch_stream_w(h, s, w->id);
	return w;
}

/* --- polled ------------------------------------------------------------ */

#define WPOLL_MAX 10000

struct wpoll {
	char sandbox[65];
	char *root;
	json_t *events; /* array of FilesystemEvent */
	bool ended;
};

static bool wp_event(struct hwatch *w, const struct capsa_watch_event *ev)
{
	struct wpoll *wp = w->ud;
	json_t *fe = e2b_event(wp->root, ev);
	if (fe && json_array_size(wp->events) < WPOLL_MAX)
		json_array_append_new(wp->events, fe);
	else
		json_decref(fe);
	return true; /* a watcher nobody polls drops events instead of blocking */
}

static void wp_end(struct hwatch *w, const char *error)
{
	(void)error;
	struct wpoll *wp = w->ud;
	wp->ended = true;
}

static void wp_release(struct hwatch *w)
{
	struct wpoll *wp = w->ud;
	json_decref(wp->events);
	free(wp->root);
	free(wp);
}

static const struct hwatch_ops wpoll_ops = {
	.event = wp_event,
	.end = wp_end,
	.release = wp_release,
};

struct hwatch *wpoll_new(struct hub *h, struct capsa_watch *cw, const char *sandbox_id, const char *root)
{
	struct wpoll *wp = xcalloc(1, sizeof(*wp));
	snprintf(wp->sandbox, sizeof(wp->sandbox), "%s", sandbox_id);
	wp->root = xstrdup(root);
	wp->events = json_array();
	return hwatch_new(h, cw, &wpoll_ops, wp);
}

bool wpoll_is(const struct hwatch *w, const char *sandbox_id)
{
	return w->ops == &wpoll_ops && strcmp(((struct wpoll *)w->ud)->sandbox, sandbox_id) == 0;
}

json_t *wpoll_take(struct hwatch *w)
{
	struct wpoll *wp = w->ud;
	json_t *ev = wp->events;
	wp->events = json_array();
	w->last_poll_ms = mono_ms();
	return ev;
}

/* A watcher whose directory went away is removed, as envd does, only once
 * its events were taken; an unpolled one goes after WPOLL_IDLE_MS. */
#define WPOLL_IDLE_MS (10 * 60 * 1000)

void wpoll_sweep(struct hub *h)
{
	int64_t now = mono_ms();
	for (struct hwatch *w = hub_watches(h), *next; w; w = next) {
		next = w->next;
		if (w->ops == &wpoll_ops && !w->closing && now - w->last_poll_ms > WPOLL_IDLE_MS)
			hwatch_close(w);
	}
}
