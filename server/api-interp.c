/* api-interp.c: E2B's code interpreter (port 49999: POST /execute and the
 * /contexts endpoints), served by a small Python program capsa runs in the
 * sandbox (server/interp.py, embedded at build time).
 *
 * One interpreter process per sandbox, a kept process tagged
 * capsa-code-interpreter, so it (and every context's namespace) outlives
 * the requests and a restart of the server, which re-attaches to it by tag.
 * The server writes one JSON request per line to its stdin and routes the
 * reply lines, tagged with the request's id, back to the HTTP requests;
 * the interpreter serves them one at a time.  Requests are deferred: an
 * /execute answers 200 with its NDJSON stream when the first reply line
 * arrives (so an unknown context can still be a 404), the others with their
 * single reply.  A client that leaves while its cell runs interrupts it
 * (SIGINT: KeyboardInterrupt in the cell).
 *
 * Everything below the request handlers runs on the hub thread.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "api.h"
#include "envd.h"
#include "hub.h"
#include "interp-py.h"
#include "server.h"
#include "stream.h"

#define INTERP_TAG "capsa-code-interpreter"
#define INTERP_LINE_MAX (64 << 20)

struct ireq {
	uint64_t id;
	struct http_req *r; /* until answered */
	bool execute;
	struct stream *s;   /* an execute's stream, once it started */
	struct buf pending; /* stream bytes waiting for room */
	bool cancelled;
	struct ireq *next;
};

struct interp {
	struct hproc *hp;
	char sandbox[65];
	struct buf line;
	struct ireq *reqs;
	uint64_t next_id;
	uint64_t current; /* the request executing now */
	struct interp *next;
};

/* hub thread only */
static struct interp *interps;

/* --- the hub side ------------------------------------------------------ */

static struct ireq *ireq_find(struct interp *in, uint64_t id)
{
	for (struct ireq *q = in->reqs; q; q = q->next)
		if (q->id == id)
			return q;
	return NULL;
}

static void ireq_remove(struct interp *in, struct ireq *q)
{
	for (struct ireq **pp = &in->reqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	if (q->s) {
		hub_unwatch_stream(q->s);
		stream_close(q->s, false);
		stream_unref(q->s);
	}
	buf_release(&q->pending);
	free(q);
}

static void answer_error(struct ireq *q, unsigned status, const char *word, const char *msg)
{
	if (!q->r)
		return;
	http_reply_error(q->r, status, word, "%s", msg);
	http_complete(q->r);
	q->r = NULL;
}

/* Starts an execute's stream: the deferred request gets its 200. */
static void start_stream(struct interp *in, struct ireq *q)
{
	struct server *srv = q->r->srv;
	q->s = stream_new(srv, 0);
	stream_set_keepalive(q->s, 15000, "{\"type\":\"keepalive\"}\n", 21);
	hub_watch_stream(srv->hub, q->s, in->hp->id);
	http_reply_stream(q->r, 200, "application/x-ndjson", q->s);
	http_complete(q->r);
	q->r = NULL;
}

static bool flush_one(struct ireq *q)
{
	if (q->pending.len == 0)
		return true;
	if (stream_write(q->s, q->pending.data, q->pending.len, false) < 0 && errno == EAGAIN)
		return false;
	q->pending.len = 0; /* written, or the client left: either way done with it */
	return true;
}

/* One reply line of the interpreter.  Returns false when a stream is full. */
static bool on_line(struct interp *in, const char *p, size_t n)
{
	json_error_t je;
	json_t *j = json_loadb(p, n, 0, &je);
	if (!j)
		return true;
	json_t *idj = json_object_get(j, "id");
	const char *type = json_string_value(json_object_get(j, "type"));
	struct ireq *q = json_is_integer(idj) ? ireq_find(in, (uint64_t)json_integer_value(idj)) : NULL;
	bool ok = true, end;
	if (!q || !type)
		goto out;
	json_object_del(j, "id");
	if (strcmp(type, "started") == 0) {
		/* the context exists: the 200 and its stream go out now, so that
		 * a client that leaves can be noticed while the cell is silent */
		in->current = q->id;
		if (q->execute && !q->s && q->r)
			start_stream(in, q);
		if (q->cancelled)
			capsa_proc_signal(in->hp->p, SIGINT, NULL);
		goto out;
	}
	if (strcmp(type, "failure") == 0) {
		json_int_t code = json_integer_value(json_object_get(j, "code"));
		const char *msg = json_string_value(json_object_get(j, "message"));
		unsigned status = code == 404 ? 404 : code == 400 ? 400 : 500;
		answer_error(q, status, status == 404 ? "not_found" : status == 400 ? "invalid_argument" : "internal",
			     msg ? msg : "the interpreter refused the request");
		ireq_remove(in, q);
		goto out;
	}
	if (!q->execute) {
		if (strcmp(type, "context") == 0)
			http_reply_json(q->r, 200, json_incref(json_object_get(j, "context")));
		else if (strcmp(type, "contexts") == 0)
			http_reply_json(q->r, 200, json_incref(json_object_get(j, "contexts")));
		else
			http_reply_empty(q->r, 204);
		http_complete(q->r);
		q->r = NULL;
		ireq_remove(in, q);
		goto out;
	}
	if (!q->s)
		start_stream(in, q);
	end = strcmp(type, "end_of_execution") == 0;
	if (end && in->current == q->id)
		in->current = 0;
	if (!q->cancelled) {
		char *s = json_dumps(j, JSON_COMPACT);
		if (s)
			buf_appendf(&q->pending, "%s\n", s);
		free(s);
	}
	if (end) {
		stream_write_force(q->s, q->pending.data, q->pending.len);
		ireq_remove(in, q);
	} else {
		ok = flush_one(q);
	}
out:
	json_decref(j);
	return ok;
}

static bool in_output(struct hproc *hp, int channel, const void *data, size_t len)
{
	struct interp *in = hp->ud;
	if (channel != CAPSA_STDOUT || len == 0)
		return true; /* the interpreter's own stderr carries nothing for clients */
	if (in->line.len + len > INTERP_LINE_MAX)
		in->line.len = 0; /* a runaway line is dropped rather than buffered */
	buf_append(&in->line, data, len);
	bool ok = true;
	char *nl;
	while (in->line.len && (nl = memchr(in->line.data, '\n', in->line.len))) {
		size_t n = (size_t)(nl - in->line.data);
		ok &= on_line(in, in->line.data, n);
		buf_consume(&in->line, n + 1);
	}
	return ok;
}

static void interp_unlink(struct interp *in)
{
	for (struct interp **pp = &interps; *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			break;
		}
}

static void in_exit(struct hproc *hp, const struct capsa_exit *e)
{
	struct interp *in = hp->ud;
	char msg[600];
	snprintf(msg, sizeof(msg), "the code interpreter ended (%s%s%s)", e->reason, e->message[0] ? ": " : "",
		 e->message);
	while (in->reqs) {
		struct ireq *q = in->reqs;
		if (q->s) {
			json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "name", "InterpreterExited", "value",
						msg, "traceback", "");
			char *s = json_dumps(err, JSON_COMPACT);
			json_decref(err);
			buf_appendf(&q->pending, "%s\n{\"type\":\"end_of_execution\"}\n", s ? s : "{}");
			free(s);
			stream_write_force(q->s, q->pending.data, q->pending.len);
		} else {
			answer_error(q, 502, "bad_gateway", msg);
		}
		ireq_remove(in, q);
	}
	interp_unlink(in);
}

static void in_room(struct hproc *hp)
{
	struct interp *in = hp->ud;
	bool all = true;
	for (struct ireq *q = in->reqs; q; q = q->next) {
		if (!q->s)
			continue;
		if (stream_gone(q->s) && !q->cancelled) {
			/* the client left: interrupt its cell, drop its output */
			q->cancelled = true;
			q->pending.len = 0;
			if (in->current == q->id)
				capsa_proc_signal(hp->p, SIGINT, NULL);
		}
		all &= flush_one(q);
	}
	if (all)
		hproc_resume(hp);
}

static void in_release(struct hproc *hp)
{
	struct interp *in = hp->ud;
	interp_unlink(in);
	while (in->reqs) {
		answer_error(in->reqs, 502, "bad_gateway", "the code interpreter's session ended");
		ireq_remove(in, in->reqs);
	}
	buf_release(&in->line);
	free(in);
}

static const struct hproc_ops interp_ops = {
	.output = in_output,
	.exit = in_exit,
	.room = in_room,
	.release = in_release,
};

struct submit {
	const char *sandbox;
	struct hproc *fresh; /* a session the worker made, or NULL */
	json_t *msg;	     /* the request, without its id */
	struct http_req *r;
	bool execute;
	bool queued;
};

static void submit_call(void *arg)
{
	struct submit *sb = arg;
	struct interp *in = NULL;
	for (struct interp *i = interps; i && !in; i = i->next)
		if (strcmp(i->sandbox, sb->sandbox) == 0 && !i->hp->closing)
			in = i;
	if (!in && !sb->fresh)
		return; /* the worker makes a session and comes back */
	if (!in) {
		in = sb->fresh->ud;
		in->next = interps;
		interps = in;
		hub_adopt(in->hp->hub, in->hp);
		sb->fresh = NULL;
	}
	struct ireq *q = xcalloc(1, sizeof(*q));
	q->id = ++in->next_id;
	q->r = sb->r;
	q->execute = sb->execute;
	q->next = in->reqs;
	in->reqs = q;
	json_object_set_new(sb->msg, "id", json_integer((json_int_t)q->id));
	char *s = json_dumps(sb->msg, JSON_COMPACT);
	size_t len = strlen(s);
	s = xrealloc(s, len + 2);
	s[len] = '\n';
	hproc_write(in->hp, s, len + 1, false);
	free(s);
	sb->queued = true;
}

/* --- requests ---------------------------------------------------------- */

static char interp_arg0[] = "python3", interp_arg1[] = "-u", interp_arg2[] = "-c";

/* A session with the sandbox's interpreter: attached to the running one,
 * or a new one started. */
static struct hproc *interp_session(struct http_req *r, struct capsa_ctx *ctx, const char *id)
{
	struct interp *in = xcalloc(1, sizeof(*in));
	snprintf(in->sandbox, sizeof(in->sandbox), "%s", id);
	struct hproc *hp = hproc_new(r->srv->hub, id, &interp_ops, in);
	in->hp = hp;
	struct capsa_proc_ref ref = { .tag = INTERP_TAG };
	struct capsa_attach_opts ao = { .input = true, .output = true };
	struct capsa_error *err = NULL;
	for (int attempt = 0; attempt < 3; attempt++) {
		if (capsa_proc_attach(ctx, id, &ref, &ao, &hub_proc_callbacks, hp, &hp->p, &err) == 0)
			return hp;
		if (err->code != ESRCH || envd_sandbox_gone(err))
			break;
		capsa_error_free(err);
		err = NULL;
		char *argv[] = { interp_arg0, interp_arg1, interp_arg2, (char *)interp_py, NULL };
		char *env[] = { (char *)"PYTHONDONTWRITEBYTECODE=1", (char *)"PYTHONIOENCODING=utf-8", NULL };
		struct capsa_proc_opts o = { .argv = argv, .env = env, .stdin_open = true, .tag = INTERP_TAG, .keep = true };
		if (capsa_proc_start(ctx, id, &o, &hub_proc_callbacks, hp, &hp->p, &err) == 0)
			return hp;
		if (err->code != EEXIST)
			break; /* EEXIST: another request started it first: attach */
		capsa_error_free(err);
		err = NULL;
	}
	if (err && (err->code == ENOENT || err->code == EACCES))
		http_reply_error(r, 500, "interpreter_unavailable",
				 "sandbox %s cannot run the code interpreter: %s (it needs python3 in the image: use "
				 "the code-interpreter-v1 template or an image with python3)",
				 id, err->msg);
	else if (envd_sandbox_gone(err))
		http_reply_error(r, 502, "sandbox_not_running", "%s", err->msg);
	else
		http_reply_capsa_error(r, err), err = NULL;
	capsa_error_free(err);
	hproc_discard(hp);
	return NULL;
}

/* Hands msg (stolen) to the sandbox's interpreter; the reply comes later. */
static void submit(struct http_req *r, struct capsa_ctx *ctx, json_t *msg, bool execute)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id) {
		json_decref(msg);
		return;
	}
	struct submit sb = { .sandbox = id, .msg = msg, .r = r, .execute = execute };
	http_defer(r);
	hub_call(r->srv->hub, submit_call, &sb, true);
	if (!sb.queued) {
		sb.fresh = interp_session(r, ctx, id);
		if (sb.fresh)
			hub_call(r->srv->hub, submit_call, &sb, true);
		if (sb.fresh)
			hproc_discard(sb.fresh); /* lost a race: somebody else's session serves */
	}
	json_decref(msg);
	if (!sb.queued) {
		if (!r->resp)
			http_reply_error(r, 503, "unavailable", "the code interpreter is not reachable (the server is stopping?)");
		http_complete(r);
	}
}

/* Replies 400 and returns false unless jdec_finish passed and lang is
 * Python (or not given). */
static bool request_ok(struct http_req *r, struct jdec *d, const char *lang)
{
	if (!jdec_finish(d, false)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d->err);
		return false;
	}
	if (lang && *lang && strcmp(lang, "python") != 0 && strcmp(lang, "python3") != 0) {
		http_reply_error(r, 400, "invalid_argument",
				 "language %.40s is not supported: the capsa code interpreter runs Python", lang);
		return false;
	}
	return true;
}

static void interp_execute(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *code = jdec_str(&d, "code", true);
	const char *context = jdec_str(&d, "context_id", false);
	const char *lang = jdec_str(&d, "language", false);
	json_t *env = jdec_obj(&d, "env_vars");
	if (request_ok(r, &d, lang)) {
		json_t *msg = json_pack("{s:s, s:s}", "op", "execute", "code", code);
		if (context)
			json_object_set_new(msg, "context", json_string(context));
		if (env)
			json_object_set(msg, "env", env);
		submit(r, ctx, msg, true);
	}
	json_decref(body);
}

static void interp_create_context(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, false);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *lang = jdec_str(&d, "language", false);
	const char *cwd = jdec_str(&d, "cwd", false);
	if (request_ok(r, &d, lang)) {
		json_t *msg = json_pack("{s:s, s:s}", "op", "create", "language", "python");
		if (cwd)
			json_object_set_new(msg, "cwd", json_string(cwd));
		submit(r, ctx, msg, false);
	}
	json_decref(body);
}

static void interp_list_contexts(struct http_req *r, struct capsa_ctx *ctx)
{
	submit(r, ctx, json_pack("{s:s}", "op", "list"), false);
}

static void interp_delete_context(struct http_req *r, struct capsa_ctx *ctx)
{
	submit(r, ctx, json_pack("{s:s, s:s}", "op", "delete", "context", r->param[0]), false);
}

static void interp_restart_context(struct http_req *r, struct capsa_ctx *ctx)
{
	submit(r, ctx, json_pack("{s:s, s:s}", "op", "restart", "context", r->param[0]), false);
}

static void interp_health(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (id)
		http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

const struct route interp_routes[] = {
	{ "GET", "/health", interp_health, BODY_NONE, NULL },
	{ "POST", "/execute", interp_execute, BODY_JSON, NULL },
	{ "POST", "/contexts", interp_create_context, BODY_JSON, NULL },
	{ "GET", "/contexts", interp_list_contexts, BODY_NONE, NULL },
	{ "DELETE", "/contexts/{}", interp_delete_context, BODY_NONE, NULL },
	{ "POST", "/contexts/{}/restart", interp_restart_context, BODY_JSON, NULL },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
