/* procstream.c: process output on the hub: streaming formats and one-shot
 * collection (procstream.h). */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "connect.h"
#include "json.h"
#include "metrics.h"
#include "procstream.h"
#include "stream.h"
#include "util/base64.h"

/* --- formats ----------------------------------------------------------- */

static void emit_obj(struct buf *out, enum pfmt f, const char *event, json_t *o)
{
	if (f == PFMT_E2B) {
		connect_envelope(out, 0, o);
	} else {
		char *s = json_dumps(o, JSON_COMPACT);
		if (f == PFMT_SSE)
			buf_appendf(out, "event: %s\ndata: %s\n\n", event, s ? s : "{}");
		else
			buf_appendf(out, "%s\n", s ? s : "{}");
		free(s);
	}
	json_decref(o);
}

void pfmt_start(struct buf *out, enum pfmt f, pid_t pid)
{
	if (f == PFMT_E2B)
		emit_obj(out, f, "start", json_pack("{s:{s:{s:i}}}", "event", "start", "pid", (int)pid));
	else
		emit_obj(out, f, "start", json_pack("{s:s, s:i}", "type", "start", "pid", (int)pid));
}

void pfmt_output(struct buf *out, enum pfmt f, bool tty, int channel, const void *data, size_t len)
{
	const char *name = tty ? "pty" : channel == CAPSA_STDERR ? "stderr" : "stdout";
	char *b64 = base64_encode(data, len);
	if (f == PFMT_E2B)
		emit_obj(out, f, name, json_pack("{s:{s:{s:s}}}", "event", "data", name, b64));
	else
		emit_obj(out, f, name, json_pack("{s:s, s:s}", "type", tty ? "stdout" : name, "data", b64));
	free(b64);
}

static const char *signame_lower(int sig, char *buf, size_t n)
{
	const char *s = strsignal(sig);
	snprintf(buf, n, "%s", s ? s : "unknown signal");
	if (buf[0])
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

json_t *e2b_end_event(const struct capsa_exit *e)
{
	char st[96], sn[64];
	bool exited = e->signal == 0 && strcmp(e->reason, "timeout") != 0 && strcmp(e->reason, "lost") != 0;
	int code = exited ? e->exit_code : -1;
	if (exited)
		snprintf(st, sizeof(st), "exit status %d", e->exit_code);
	else if (e->signal)
		snprintf(st, sizeof(st), "signal: %s", signame_lower(e->signal, sn, sizeof(sn)));
	else
		snprintf(st, sizeof(st), "%s", e->reason);
	json_t *end = json_pack("{s:i, s:b, s:s}", "exitCode", code, "exited", exited, "status", st);
	if (strcmp(e->reason, "timeout") == 0)
		json_object_set_new(end, "error", json_string("the process ran past its Connect-Timeout-Ms and was killed"));
	else if (e->message[0])
		json_object_set_new(end, "error", json_string(e->message));
	else if (code != 0)
		json_object_set_new(end, "error", json_string(st));
	return end;
}

void pfmt_exit(struct buf *out, enum pfmt f, const struct capsa_exit *e)
{
	if (f == PFMT_E2B) {
		emit_obj(out, f, "end", json_pack("{s:{s:o}}", "event", "end", e2b_end_event(e)));
		connect_end(out, NULL, NULL);
		return;
	}
	json_t *o = json_pack("{s:s, s:i, s:i, s:s}", "type", "exit", "exitCode", e->exit_code, "signal", e->signal,
			      "reason", e->reason);
	if (e->message[0])
		json_object_set_new(o, "message", json_string(e->message));
	emit_obj(out, f, "exit", o);
}

void pfmt_keepalive(struct buf *out, enum pfmt f)
{
	if (f == PFMT_E2B)
		emit_obj(out, f, "keepalive", json_pack("{s:{s:{}}}", "event", "keepalive"));
	else if (f == PFMT_SSE)
		buf_appendf(out, ": keepalive\n\n");
	else
		buf_appendf(out, "{\"type\":\"keepalive\"}\n");
}

/* --- streaming --------------------------------------------------------- */

struct pstream {
	struct stream *s;
	enum pfmt f;
	bool tty;
	struct buf pending; /* formatted, waiting for room in the stream */
	struct metrics *m;
	int64_t t0_ns;
	bool first;
};

static void first_output(struct pstream *ps)
{
	if (ps->first || !ps->m)
		return;
	ps->first = true;
	metrics_observe(&ps->m->exec_seconds, mono_ns() - ps->t0_ns);
}

/* Writes what is pending; true when nothing is left. */
static bool ps_flush(struct pstream *ps)
{
	if (ps->pending.len == 0)
		return true;
	if (stream_write(ps->s, ps->pending.data, ps->pending.len, false) < 0)
		return errno == EPIPE; /* a client that left takes nothing more */
	ps->pending.len = 0;
	return true;
}

static bool ps_output(struct hproc *hp, int channel, const void *data, size_t len)
{
	struct pstream *ps = hp->ud;
	if (len == 0)
		return true;
	first_output(ps);
	pfmt_output(&ps->pending, ps->f, ps->tty, channel, data, len);
	return ps_flush(ps);
}

static void ps_exit(struct hproc *hp, const struct capsa_exit *e)
{
	struct pstream *ps = hp->ud;
	first_output(ps);
	pfmt_exit(&ps->pending, ps->f, e);
	/* the last messages go whatever the queue holds: what is pending is
	 * bounded by the output window the hub stopped reading at */
	stream_write_force(ps->s, ps->pending.data, ps->pending.len);
	ps->pending.len = 0;
	stream_close(ps->s, false);
}

static void ps_room(struct hproc *hp)
{
	struct pstream *ps = hp->ud;
	if (stream_gone(ps->s)) {
		/* the client left: our session ends, a kept process runs on */
		hproc_close(hp);
		return;
	}
	if (ps_flush(ps))
		hproc_resume(hp);
}

static void ps_release(struct hproc *hp)
{
	struct pstream *ps = hp->ud;
	hub_unwatch_stream(ps->s);
	stream_close(ps->s, false);
	stream_unref(ps->s);
	buf_release(&ps->pending);
	free(ps);
}

static const struct hproc_ops pstream_ops = {
	.output = ps_output,
	.exit = ps_exit,
	.room = ps_room,
	.release = ps_release,
};

struct hproc *pstream_new(struct hub *h, const char *sandbox_id, struct stream *s, enum pfmt f, bool tty,
			  struct metrics *m, int64_t t0_ns)
{
	struct pstream *ps = xcalloc(1, sizeof(*ps));
	stream_ref(s);
	ps->s = s;
	ps->f = f;
	ps->tty = tty;
	ps->m = m;
	ps->t0_ns = t0_ns;
	struct hproc *hp = hproc_new(h, sandbox_id, &pstream_ops, ps);
	hub_watch_stream(h, s, hp->id);
	return hp;
}

/* --- one-shot ---------------------------------------------------------- */

struct oneshot {
	struct http_req *r;
	struct buf out[3];
	bool truncated[3];
	size_t cap;
	bool base64;
};

static bool os_output(struct hproc *hp, int channel, const void *data, size_t len)
{
	struct oneshot *o = hp->ud;
	if (channel < 1 || channel > 2 || len == 0)
		return true;
	size_t room = o->cap > o->out[channel].len ? o->cap - o->out[channel].len : 0;
	if (len > room)
		o->truncated[channel] = true;
	buf_append(&o->out[channel], data, MIN(len, room));
	return true;
}

static json_t *os_text(struct oneshot *o, int ch)
{
	if (o->base64) {
		char *b = base64_encode(o->out[ch].data ? o->out[ch].data : "", o->out[ch].len);
		json_t *j = json_string(b);
		free(b);
		return j;
	}
	size_t n;
	char *t = utf8_sanitize(o->out[ch].data ? o->out[ch].data : "", o->out[ch].len, &n);
	json_t *j = json_stringn(t, n);
	free(t);
	return j;
}

static void os_exit(struct hproc *hp, const struct capsa_exit *e)
{
	struct oneshot *o = hp->ud;
	json_t *j = json_pack("{s:i, s:i, s:s, s:o, s:o, s:b}", "exitCode", e->exit_code, "signal", e->signal, "reason",
			      e->reason, "stdout", os_text(o, 1), "stderr", os_text(o, 2), "truncated",
			      o->truncated[1] || o->truncated[2]);
	if (e->message[0])
		json_object_set_new(j, "message", json_string(e->message));
	if (o->base64)
		json_object_set_new(j, "encoding", json_string("base64"));
	if (strcmp(e->reason, "lost") == 0)
		http_reply_error(o->r, 502, "bad_gateway", "the process's session broke: %s", e->message);
	else
		http_reply_json(o->r, 200, j), j = NULL;
	json_decref(j);
	struct http_req *r = o->r;
	o->r = NULL;
	http_complete(r);
}

static void os_release(struct hproc *hp)
{
	struct oneshot *o = hp->ud;
	if (o->r) { /* never started or adopted: the worker answers */
		o->r = NULL;
	}
	for (int i = 0; i < 3; i++)
		buf_release(&o->out[i]);
	free(o);
}

static const struct hproc_ops oneshot_ops = {
	.output = os_output,
	.exit = os_exit,
	.release = os_release,
};

struct hproc *oneshot_new(struct hub *h, const char *sandbox_id, struct http_req *r, size_t cap, bool base64)
{
	struct oneshot *o = xcalloc(1, sizeof(*o));
	o->r = r;
	o->cap = cap;
	o->base64 = base64;
	return hproc_new(h, sandbox_id, &oneshot_ops, o);
}
