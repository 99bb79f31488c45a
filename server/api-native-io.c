/* api-native-io.c: the /v1 API's I/O with running sandboxes: processes
 * (one-shot exec, streamed sessions, stdin, signals, resize, wait, list,
 * attach), files (read, write, stat, list, mkdir, remove, rename, watch,
 * tar archives), ports (publish, list, tunnel), and the event log.
 *
 * Streams are NDJSON (application/x-ndjson), or server-sent events when the
 * client asks for text/event-stream; process output is base64 in both.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api.h"
#include "capsa/events.h"
#include "capsa/files.h"
#include "capsa/session.h"
#include "capsa/tunnel.h"
#include "hub.h"
#include "procstream.h"
#include "server.h"
#include "stream.h"
#include "util/fs.h"
#include "watchstream.h"

#define ONESHOT_DEFAULT_CAP (16 << 20)

static char *resolve(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	char *id = capsa_sandbox_resolve(ctx, r->param[0], &err);
	if (!id)
		http_reply_capsa_error(r, err);
	return id;
}

static bool wants_sse(struct http_req *r)
{
	const char *f = http_query(r, "format");
	const char *acc = http_header(r, "Accept");
	return (f && strcmp(f, "sse") == 0) || (acc && strstr(acc, "text/event-stream"));
}

/* {pid}: digits for a pid, anything else a tag. */
static bool path_ref(const char *s, struct capsa_proc_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	int64_t pid;
	if (parse_int64(s, 1, (1 << 30) - 1, &pid) == 0)
		ref->pid = (pid_t)pid;
	else if (*s && strlen(s) <= CAPSA_PROC_TAG_MAX)
		ref->tag = s;
	else
		return false;
	return true;
}

/* --- processes --------------------------------------------------------- */

struct proc_req {
	struct capsa_proc_opts o;
	char **argv, **env;
	const char *stdin_text;
	struct buf stdin_data;
	bool base64;
	int64_t cap;
};

static void proc_req_release(struct proc_req *p)
{
	strv_free(p->argv);
	strv_free(p->env);
	buf_release(&p->stdin_data);
}

/* Decodes the fields a process takes; false after replying 400. */
static bool proc_decode(struct http_req *r, json_t *body, struct proc_req *p, bool oneshot)
{
	struct jdec d;
	jdec_init(&d, body, "");
	memset(p, 0, sizeof(*p));
	p->argv = jdec_strv(&d, "command", 4096);
	p->env = jdec_env(&d, "env", 4096);
	p->o.workdir = jdec_str(&d, "workdir", false);
	p->o.user = jdec_str(&d, "user", false);
	p->o.tty = jdec_bool(&d, "tty", false);
	p->o.rows = (uint16_t)jdec_int(&d, "rows", 0, 0, 65535);
	p->o.cols = (uint16_t)jdec_int(&d, "cols", 0, 0, 65535);
	p->o.timeout_ms = jdec_duration_ms(&d, "timeout", 0);
	p->o.tag = jdec_str(&d, "tag", false);
	if (oneshot) {
		p->stdin_text = jdec_str(&d, "stdin", false);
		const char *enc = jdec_str(&d, "encoding", false);
		p->base64 = enc && strcmp(enc, "base64") == 0;
		if (enc && !p->base64 && strcmp(enc, "utf8") != 0)
			jdec_fail(&d, "field 'encoding': expected \"utf8\" or \"base64\"");
		p->cap = jdec_size(&d, "maxOutput", ONESHOT_DEFAULT_CAP);
		if (p->cap > 256 << 20)
			jdec_fail(&d, "field 'maxOutput': at most 256 MiB");
	} else {
		p->o.stdin_open = jdec_bool(&d, "stdin", false);
		p->o.keep = jdec_bool(&d, "keep", false);
	}
	if (!p->argv || !p->argv[0])
		jdec_fail(&d, "field 'command' is required: the program and its arguments");
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		proc_req_release(p);
		return false;
	}
	p->o.argv = p->argv;
	p->o.env = p->env;
	return true;
}

static void exec_oneshot(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct proc_req p;
	if (!proc_decode(r, body, &p, true)) {
		json_decref(body);
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (id) {
		p.o.stdin_open = p.stdin_text != NULL;
		struct metrics *m = &r->srv->metrics;
		struct hproc *hp = oneshot_new(r->srv->hub, id, r, (size_t)p.cap, p.base64);
		struct capsa_error *err = NULL;
		if (capsa_proc_start(ctx, id, &p.o, &hub_proc_callbacks, hp, &hp->p, &err) < 0) {
			atomic_fetch_add(&m->exec_errors, 1);
			hproc_discard(hp);
			http_reply_capsa_error(r, err);
		} else {
			atomic_fetch_add(&m->execs, 1);
			/* not adopted yet: still ours to touch */
			if (p.stdin_text)
				hproc_write(hp, p.stdin_text, strlen(p.stdin_text), true);
			http_defer(r);
			hub_adopt(r->srv->hub, hp);
		}
	}
	proc_req_release(&p);
	json_decref(body);
}

/* Replies with a stream for hp (made with s) once its session exists. */
static void start_stream(struct http_req *r, struct stream *s, struct hproc *hp, enum pfmt f)
{
	struct buf b = BUF_INIT;
	pfmt_start(&b, f, capsa_proc_pid(hp->p));
	stream_write(s, b.data, b.len, true);
	buf_release(&b);
	http_reply_stream(r, 200, f == PFMT_SSE ? "text/event-stream" : "application/x-ndjson", s);
	hub_adopt(r->srv->hub, hp);
}

static struct stream *new_proc_stream(struct http_req *r, enum pfmt f)
{
	struct stream *s = stream_new(r->srv, 0);
	struct buf b = BUF_INIT;
	pfmt_keepalive(&b, f);
	stream_set_keepalive(s, 15000, b.data, b.len);
	buf_release(&b);
	return s;
}

static void proc_start_stream(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct proc_req p;
	if (!proc_decode(r, body, &p, false)) {
		json_decref(body);
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (id) {
		enum pfmt f = wants_sse(r) ? PFMT_SSE : PFMT_NDJSON;
		struct stream *s = new_proc_stream(r, f);
		struct metrics *m = &r->srv->metrics;
		struct hproc *hp = pstream_new(r->srv->hub, id, s, f, p.o.tty, m, r->t_start_ns);
		struct capsa_error *err = NULL;
		if (capsa_proc_start(ctx, id, &p.o, &hub_proc_callbacks, hp, &hp->p, &err) < 0) {
			atomic_fetch_add(&m->exec_errors, 1);
			hproc_discard(hp);
			http_reply_capsa_error(r, err);
		} else {
			atomic_fetch_add(&m->execs, 1);
			start_stream(r, s, hp, f);
		}
		stream_unref(s);
	}
	proc_req_release(&p);
	json_decref(body);
}

static void proc_attach_stream(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_proc_ref ref;
	if (!path_ref(r->param[1], &ref)) {
		http_reply_error(r, 400, "invalid_argument", "expected a pid or a tag");
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	bool ok = true, replay = http_query_bool(r, "replay", true, &ok);
	struct capsa_proc_info *v = NULL;
	size_t n = 0;
	bool tty = false;
	struct capsa_error *err = NULL;
	if (capsa_proc_list(ctx, id, &v, &n, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if ((ref.pid && v[i].pid == ref.pid) || (ref.tag && v[i].tag && !strcmp(v[i].tag, ref.tag)))
			tty = v[i].tty;
	capsa_proc_info_free(v, n);
	enum pfmt f = wants_sse(r) ? PFMT_SSE : PFMT_NDJSON;
	struct stream *s = new_proc_stream(r, f);
	struct hproc *hp = pstream_new(r->srv->hub, id, s, f, tty, NULL, 0);
	struct capsa_attach_opts ao = { .output = true, .replay = replay };
	if (capsa_proc_attach(ctx, id, &ref, &ao, &hub_proc_callbacks, hp, &hp->p, &err) < 0) {
		hproc_discard(hp);
		http_reply_capsa_error(r, err);
	} else {
		start_stream(r, s, hp, f);
	}
	stream_unref(s);
}

static json_t *proc_info_json(const struct capsa_proc_info *p)
{
	json_t *argv = json_array();
	for (char **a = p->argv; a && *a; a++)
		json_array_append_new(argv, json_string(*a));
	char ts[40];
	format_rfc3339(p->started_at, ts, sizeof(ts));
	json_t *o = json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b, s:s, s:i, s:I}", "pid", (int)p->pid, "command", argv,
			      "tty", p->tty, "stdin", p->stdin_open, "keep", p->keep, "main", p->main, "running",
			      p->running, "started", ts, "attached", p->attached, "buffered", (json_int_t)p->buffered);
	if (p->tag)
		json_object_set_new(o, "tag", json_string(p->tag));
	if (p->workdir)
		json_object_set_new(o, "workdir", json_string(p->workdir));
	if (!p->running) {
		json_object_set_new(o, "exitCode", json_integer(p->exit_code));
		if (p->reason)
			json_object_set_new(o, "reason", json_string(p->reason));
	}
	return o;
}

static void proc_list(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct capsa_proc_info *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_proc_list(ctx, id, &v, &n, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, proc_info_json(&v[i]));
	capsa_proc_info_free(v, n);
	http_reply_json(r, 200, a);
}

/* Input-only sessions for stdin, close and resize (as in api-envd.c). */
static int input_session(struct capsa_ctx *ctx, const char *id, const struct capsa_proc_ref *ref,
			 struct capsa_proc **p, struct capsa_error **err)
{
	struct capsa_attach_opts ao = { .input = true };
	return capsa_proc_attach(ctx, id, ref, &ao, NULL, NULL, p, err);
}

static int drain(struct capsa_proc *p, struct capsa_error **err)
{
	int64_t end = mono_ms() + 30000;
	while (capsa_proc_want_write(p)) {
		struct pollfd pf = { .fd = capsa_proc_fd(p), .events = POLLOUT | POLLIN };
		int left = (int)(end - mono_ms());
		if (left <= 0 || poll(&pf, 1, left) == 0)
			return error_set(err, ETIMEDOUT, "the supervisor did not take the input in 30 s");
		int pr = capsa_proc_process(p, err);
		if (pr < 0)
			return -1;
		if (pr == 1)
			break;
	}
	return 0;
}

static int write_all_input(struct capsa_proc *p, const char *data, size_t len, struct capsa_error **err)
{
	size_t done = 0;
	int64_t end = mono_ms() + 30000;
	while (done < len) {
		ssize_t n = capsa_proc_write(p, data + done, len - done, err);
		if (n < 0)
			return -1;
		done += (size_t)n;
		if (done == len)
			break;
		struct pollfd pf = { .fd = capsa_proc_fd(p), .events = POLLIN };
		int left = (int)(end - mono_ms());
		if (left <= 0 || poll(&pf, 1, left) == 0)
			return error_set(err, ETIMEDOUT, "the process did not read its stdin for 30 s");
		int pr = capsa_proc_process(p, err);
		if (pr < 0)
			return -1;
		if (pr == 1)
			return error_set(err, ESRCH, "the process has ended");
	}
	return drain(p, err);
}

static void proc_stdin(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_proc_ref ref;
	bool ok = true, close_it = http_query_bool(r, "close", false, &ok);
	if (!path_ref(r->param[1], &ref) || !ok) {
		http_reply_error(r, 400, "invalid_argument", "expected a pid or a tag, and close=true|false");
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct capsa_proc *p = NULL, *q = NULL;
	struct capsa_error *err = NULL;
	/* the end of file goes in a session of its own: the supervisor (as of
	 * this writing) can lose an EOF that follows data on the same session
	 * after a pause */
	if ((r->body.len && (input_session(ctx, id, &ref, &p, &err) < 0 ||
			     write_all_input(p, r->body.data, r->body.len, &err) < 0)) ||
	    (close_it && (input_session(ctx, id, &ref, &q, &err) < 0 || capsa_proc_close_stdin(q, &err) < 0 ||
			  drain(q, &err) < 0)))
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
	capsa_proc_free(p);
	capsa_proc_free(q);
}

static void proc_resize(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	int64_t rows = jdec_int(&d, "rows", 0, 1, 65535), cols = jdec_int(&d, "cols", 0, 1, 65535);
	struct capsa_proc_ref ref;
	if (!rows || !cols)
		jdec_fail(&d, "fields 'rows' and 'cols' are required");
	if (!path_ref(r->param[1], &ref))
		jdec_fail(&d, "expected a pid or a tag in the path");
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		json_decref(body);
		return;
	}
	json_decref(body);
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct capsa_proc *p = NULL;
	struct capsa_error *err = NULL;
	if (input_session(ctx, id, &ref, &p, &err) < 0 ||
	    capsa_proc_resize(p, (uint16_t)rows, (uint16_t)cols, &err) < 0 || drain(p, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
	capsa_proc_free(p);
}

static void proc_signal(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, false);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *name = jdec_str(&d, "signal", false);
	bool group = jdec_bool(&d, "group", true);
	struct capsa_proc_ref ref;
	int sig = SIGTERM;
	if (name && parse_signal(name, &sig, NULL) < 0)
		jdec_fail(&d, "field 'signal': unknown signal '%.40s'", name);
	if (!path_ref(r->param[1], &ref))
		jdec_fail(&d, "expected a pid or a tag in the path");
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		json_decref(body);
		return;
	}
	json_decref(body);
	_cleanup_free_ char *id = resolve(r, ctx);
	struct capsa_error *err = NULL;
	if (!id)
		return;
	if (capsa_proc_kill(ctx, id, &ref, sig, group, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
}

/* wait: a session that only waits for the exit (hub), then one reply. */
struct waiter {
	struct http_req *r;
};

static bool w_output(struct hproc *hp, int channel, const void *data, size_t len)
{
	(void)hp;
	(void)channel;
	(void)data;
	(void)len;
	return true;
}

static void w_exit(struct hproc *hp, const struct capsa_exit *e)
{
	struct waiter *w = hp->ud;
	json_t *j = json_pack("{s:i, s:i, s:s}", "exitCode", e->exit_code, "signal", e->signal, "reason", e->reason);
	if (e->message[0])
		json_object_set_new(j, "message", json_string(e->message));
	if (strcmp(e->reason, "lost") == 0) {
		json_decref(j);
		http_reply_error(w->r, 502, "bad_gateway", "waiting for the process failed: %s", e->message);
	} else {
		http_reply_json(w->r, 200, j);
	}
	http_complete(w->r);
	w->r = NULL;
}

static void w_release(struct hproc *hp)
{
	free(hp->ud);
}

static const struct hproc_ops waiter_ops = { .output = w_output, .exit = w_exit, .release = w_release };

static void proc_wait(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_proc_ref ref;
	if (!path_ref(r->param[1], &ref)) {
		http_reply_error(r, 400, "invalid_argument", "expected a pid or a tag");
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->r = r;
	struct hproc *hp = hproc_new(r->srv->hub, id, &waiter_ops, w);
	struct capsa_attach_opts ao = { 0 };
	struct capsa_error *err = NULL;
	if (capsa_proc_attach(ctx, id, &ref, &ao, &hub_proc_callbacks, hp, &hp->p, &err) < 0) {
		hproc_discard(hp);
		http_reply_capsa_error(r, err);
		return;
	}
	http_defer(r);
	hub_adopt(r->srv->hub, hp);
}

/* --- files ------------------------------------------------------------- */

static const char *type_word(enum capsa_file_type t)
{
	static const char *const names[] = { "file", "dir", "symlink", "other" };
	return (size_t)t < ARRAY_SIZE(names) ? names[t] : "other";
}

static json_t *file_json(const struct capsa_file_info *i)
{
	char ts[40];
	format_rfc3339(i->mtime_ms, ts, sizeof(ts));
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:s}", "name", i->name ? i->name : "", "path",
			      i->path ? i->path : "", "type", type_word(i->type), "size", (json_int_t)i->size, "mode",
			      (int)(i->mode & 07777), "uid", (int)i->uid, "gid", (int)i->gid, "modified", ts);
	if (i->owner)
		json_object_set_new(o, "owner", json_string(i->owner));
	if (i->group)
		json_object_set_new(o, "group", json_string(i->group));
	if (i->link_target)
		json_object_set_new(o, "linkTarget", json_string(i->link_target));
	return o;
}

/* The sandbox's files handle (running as the "user" query's user, with
 * downloads bounded by --max-download) and the "path" query, or NULL after
 * replying. */
static struct capsa_files *files_for(struct http_req *r, struct capsa_ctx *ctx, const char **path, char **id_out)
{
	*path = http_query(r, "path");
	if (!*path || !**path) {
		http_reply_error(r, 400, "invalid_argument", "query 'path' is required");
		return NULL;
	}
	char *id = resolve(r, ctx);
	if (!id)
		return NULL;
	struct capsa_files *f = NULL;
	struct capsa_error *err = NULL;
	if (capsa_files_open(ctx, id, &f, &err) < 0) {
		free(id);
		http_reply_capsa_error(r, err);
		return NULL;
	}
	capsa_files_set_user(f, http_query(r, "user"));
	capsa_files_set_max(f, r->srv->max_download);
	if (id_out)
		*id_out = id;
	else
		free(id);
	return f;
}

static int tmp_fd(struct server *srv)
{
	_cleanup_free_ char *dir = xasprintf("%s/tmp", srv->root);
	return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

static void file_read(struct http_req *r, struct capsa_ctx *ctx)
{
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_error *err = NULL;
	int64_t size = 0;
	int fd = tmp_fd(r->srv);
	if (fd < 0)
		http_reply_error(r, 500, "internal", "temporary file: %s", strerror(errno));
	else if (capsa_files_read_fd(f, path, fd, &size, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_fd(r, 200, "application/octet-stream", fd, size), fd = -1;
	if (fd >= 0)
		close(fd);
	capsa_files_close(f);
}

static void file_write(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	struct capsa_write_opts wo = { .mode = -1 };
	wo.make_parents = http_query_bool(r, "parents", false, &ok);
	bool append = http_query_bool(r, "append", false, &ok);
	bool create = http_query_bool(r, "create", false, &ok);
	wo.how = append ? CAPSA_WRITE_APPEND : create ? CAPSA_WRITE_CREATE : CAPSA_WRITE_REPLACE;
	wo.user = http_query(r, "user");
	const char *mode = http_query(r, "mode");
	if (mode) {
		char *end;
		long m = strtol(mode, &end, 8);
		if (*end || m < 0 || m > 07777)
			ok = false;
		wo.mode = (int)m;
	}
	if (!ok || (append && create)) {
		http_reply_error(r, 400, "invalid_argument",
				 "query: parents/append/create take true or false (not both append and create), mode "
				 "is octal");
		return;
	}
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_error *err = NULL;
	struct capsa_file_info fi;
	if (capsa_files_write_fd(f, path, r->spool_fd, &wo, &err) < 0 || capsa_files_stat(f, path, &fi, &err) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		http_reply_json(r, 200, file_json(&fi));
		capsa_file_info_release(&fi);
	}
	capsa_files_close(f);
}

static void file_stat(struct http_req *r, struct capsa_ctx *ctx)
{
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_file_info fi;
	struct capsa_error *err = NULL;
	if (capsa_files_stat(f, path, &fi, &err) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		http_reply_json(r, 200, file_json(&fi));
		capsa_file_info_release(&fi);
	}
	capsa_files_close(f);
}

static void file_list(struct http_req *r, struct capsa_ctx *ctx)
{
	int64_t depth = 1;
	const char *ds = http_query(r, "depth");
	if (ds && parse_int64(ds, 1, 1000, &depth) < 0) {
		http_reply_error(r, 400, "invalid_argument", "query 'depth': 1-1000");
		return;
	}
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_file_info *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_files_list(f, path, (int)depth, &v, &n, &err) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, file_json(&v[i]));
		capsa_file_infos_free(v, n);
		http_reply_json(r, 200, a);
	}
	capsa_files_close(f);
}

static void file_remove(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true, recursive = http_query_bool(r, "recursive", false, &ok);
	if (!ok) {
		http_reply_error(r, 400, "invalid_argument", "query 'recursive': expected true or false");
		return;
	}
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_error *err = NULL;
	if (capsa_files_remove(f, path, recursive, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
	capsa_files_close(f);
}

static void file_mkdir(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *path = jdec_str(&d, "path", true);
	int64_t mode = jdec_int(&d, "mode", -1, -1, 07777);
	bool parents = jdec_bool(&d, "parents", false);
	const char *user = jdec_str(&d, "user", false);
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		json_decref(body);
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	struct capsa_files *f = NULL;
	struct capsa_error *err = NULL;
	int made;
	if (!id) {
	} else if (capsa_files_open(ctx, id, &f, &err) < 0 ||
		   (made = capsa_files_mkdir(f, path, (int)mode, parents, user, &err)) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		http_reply_json(r, made ? 201 : 200, json_pack("{s:s, s:b}", "path", path, "created", made == 1));
	}
	capsa_files_close(f);
	json_decref(body);
}

static void file_rename(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *from = jdec_str(&d, "from", true), *to = jdec_str(&d, "to", true);
	bool no_replace = jdec_bool(&d, "noReplace", false);
	const char *user = jdec_str(&d, "user", false);
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		json_decref(body);
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	struct capsa_files *f = NULL;
	struct capsa_error *err = NULL;
	if (id && capsa_files_open(ctx, id, &f, &err) == 0)
		capsa_files_set_user(f, user);
	if (!id) {
	} else if (!f || capsa_files_rename(f, from, to, no_replace, &err) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		http_reply_empty(r, 204);
	}
	capsa_files_close(f);
	json_decref(body);
}

static void file_watch(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true, recursive = http_query_bool(r, "recursive", false, &ok);
	const char *path = http_query(r, "path");
	if (!ok || !path || !*path) {
		http_reply_error(r, 400, "invalid_argument", "query 'path' is required; recursive takes true or false");
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct capsa_watch *cw = NULL;
	struct capsa_error *err = NULL;
	if (capsa_watch_open(ctx, id, path, recursive, http_query(r, "user"), &cw, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	struct stream *s = stream_new(r->srv, 0);
	stream_set_keepalive(s, 15000, "{\"type\":\"keepalive\"}\n", 21);
	stream_write(s, "{\"type\":\"start\"}\n", 17, true);
	struct hwatch *w = wstream_new(r->srv->hub, cw, s, WFMT_NDJSON, path);
	http_reply_stream(r, 200, "application/x-ndjson", s);
	hub_adopt_watch(r->srv->hub, w);
	stream_unref(s);
}

static void archive_get(struct http_req *r, struct capsa_ctx *ctx)
{
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_error *err = NULL;
	int fd = tmp_fd(r->srv);
	if (fd < 0) {
		http_reply_error(r, 500, "internal", "temporary file: %s", strerror(errno));
	} else if (capsa_files_tar_get(f, path, http_query(r, "name"), fd, &err) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		off_t size = lseek(fd, 0, SEEK_CUR);
		lseek(fd, 0, SEEK_SET);
		http_reply_fd(r, 200, "application/x-tar", fd, size);
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	capsa_files_close(f);
}

static void archive_put(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	struct capsa_tar_put_opts o = { .user = http_query(r, "user") };
	o.make_parents = http_query_bool(r, "parents", false, &ok);
	if (!ok) {
		http_reply_error(r, 400, "invalid_argument", "query 'parents': expected true or false");
		return;
	}
	const char *path;
	struct capsa_files *f = files_for(r, ctx, &path, NULL);
	if (!f)
		return;
	struct capsa_error *err = NULL;
	if (capsa_files_tar_put(f, path, r->spool_fd, &o, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
	capsa_files_close(f);
}

/* --- ports ------------------------------------------------------------- */

static json_t *port_json(const struct capsa_port_info *p)
{
	return json_pack("{s:s, s:i, s:i, s:I, s:I, s:I}", "hostIp", p->host_ip, "hostPort", (int)p->host_port, "port",
			 (int)p->port, "connections", (json_int_t)p->connections, "rxBytes", (json_int_t)p->rx_bytes,
			 "txBytes", (json_int_t)p->tx_bytes);
}

static void port_list(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct capsa_port_info *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_port_list(ctx, id, &v, &n, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, port_json(&v[i]));
	free(v);
	http_reply_json(r, 200, a);
}

static void port_publish(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	struct capsa_port p = { 0 };
	p.port = (uint16_t)jdec_int(&d, "port", 0, 1, 65535);
	p.host_port = (uint16_t)jdec_int(&d, "hostPort", 0, 0, 65535);
	p.host_ip = jdec_str(&d, "hostIp", false);
	if (!p.port)
		jdec_fail(&d, "field 'port' is required: the port inside the sandbox");
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		json_decref(body);
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	struct capsa_port_info info;
	struct capsa_error *err = NULL;
	if (!id) {
	} else if (capsa_port_publish(ctx, id, &p, &info, &err) < 0) {
		http_reply_capsa_error(r, err);
	} else {
		http_reply_json(r, 201, port_json(&info));
	}
	json_decref(body);
}

/* The tunnel: an HTTP upgrade, after which the connection carries the
 * bytes of one TCP connection to the port inside the sandbox. */
struct upgrade {
	struct hub *hub;
	int tunnel_fd;
	char sandbox[65];
};

static void upgrade_done(void *arg)
{
	MHD_upgrade_action(arg, MHD_UPGRADE_ACTION_CLOSE);
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in, size_t extra_in_size,
		       MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	(void)c;
	struct http_req *r = req_cls;
	struct upgrade *u = cls;
	int tfd = r->tunnel_fd;
	r->tunnel_fd = -1;
	if (tfd < 0 || (extra_in_size && write_all(tfd, extra_in, extra_in_size) < 0)) {
		if (tfd >= 0)
			close(tfd);
		MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		return;
	}
	hub_splice(u->hub, sock, tfd, u->sandbox, upgrade_done, urh);
}

static void port_tunnel(struct http_req *r, struct capsa_ctx *ctx)
{
	const char *conn = http_header(r, "Connection"), *up = http_header(r, "Upgrade");
	int64_t port;
	if (parse_int64(r->param[1], 1, 65535, &port) < 0) {
		http_reply_error(r, 400, "invalid_argument", "invalid port '%.20s'", r->param[1]);
		return;
	}
	if (!conn || !strcasestr(conn, "upgrade") || !up) {
		http_reply_error(r, 400, "upgrade_required",
				 "a tunnel is an HTTP upgrade: send Connection: Upgrade and Upgrade: tcp");
		return;
	}
	_cleanup_free_ char *id = resolve(r, ctx);
	if (!id)
		return;
	struct capsa_error *err = NULL;
	int fd = capsa_tunnel_open(ctx, id, (uint16_t)port, &err);
	if (fd < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	struct upgrade *u = xcalloc(1, sizeof(*u));
	u->hub = r->srv->hub;
	snprintf(u->sandbox, sizeof(u->sandbox), "%s", id);
	r->tunnel_fd = fd;
	r->upgrade = u; /* freed with the request */
	struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, u);
	if (!resp) {
		http_reply_error(r, 500, "internal", "cannot create the upgrade response");
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, up);
	http_reply_response(r, 101, resp);
}

/* --- events ------------------------------------------------------------ */

struct events_job {
	struct stream *s;
	struct capsa_events_filter f;
	char *sandbox, *type;
	char *sandboxes[2], *types[2];
	bool follow;
	int wake; /* eventfd: the client left */
};

static json_t *event_json(const struct capsa_event *e)
{
	char ts[40];
	format_rfc3339(e->time_ms, ts, sizeof(ts));
	json_t *attrs = e->attrs ? json_loads(e->attrs, 0, NULL) : NULL;
	json_t *o = json_pack("{s:I, s:s, s:s, s:o}", "seq", (json_int_t)e->seq, "time", ts, "type", e->type, "attrs",
			      attrs ? attrs : json_object());
	if (e->sandbox_id)
		json_object_set_new(o, "sandbox", json_string(e->sandbox_id));
	if (e->sandbox_name)
		json_object_set_new(o, "sandboxName", json_string(e->sandbox_name));
	return o;
}

static int event_cb(void *ud, const struct capsa_event *e)
{
	struct events_job *j = ud;
	return api_emit_json(j->s, event_json(e), true) < 0;
}

static void events_wake(void *arg)
{
	struct events_job *j = arg;
	uint64_t one = 1;
	if (write(j->wake, &one, sizeof(one)) < 0) {
		/* an eventfd only refuses when it would overflow: it is readable then */
	}
}

static void events_run(void *arg, struct capsa_ctx *ctx)
{
	struct events_job *j = arg;
	if (j->follow) {
		capsa_events_follow(ctx, &j->f, 200, j->wake, event_cb, j, NULL);
	} else {
		struct capsa_event *v = NULL;
		size_t n = 0;
		if (capsa_events_read(ctx, &j->f, 0, &v, &n, NULL) == 0)
			for (size_t i = 0; i < n && !event_cb(j, &v[i]); i++) {
			}
		capsa_events_free(v, n);
	}
	pthread_mutex_lock(&j->s->mu);
	j->s->on_room = NULL;
	pthread_mutex_unlock(&j->s->mu);
	stream_close(j->s, false);
	stream_unref(j->s);
	close(j->wake);
	free(j->sandbox);
	free(j->type);
	free(j);
}

static void events_get(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	struct events_job *j = xcalloc(1, sizeof(*j));
	j->wake = -1;
	j->follow = http_query_bool(r, "follow", false, &ok);
	const char *after = http_query(r, "after"), *since = http_query(r, "since"), *until = http_query(r, "until");
	if (after && parse_int64(after, 0, INT64_MAX, &j->f.after_seq) < 0)
		ok = false;
	if (since && parse_rfc3339(since, &j->f.since_ms) < 0)
		ok = false;
	if (until && parse_rfc3339(until, &j->f.until_ms) < 0)
		ok = false;
	if (!ok) {
		free(j);
		http_reply_error(r, 400, "invalid_argument",
				 "query: follow takes true or false, after a sequence number, since/until RFC 3339 times");
		return;
	}
	const char *sb = http_query(r, "sandbox"), *type = http_query(r, "type");
	if (sb) {
		j->sandbox = capsa_sandbox_resolve(ctx, sb, NULL);
		if (!j->sandbox) {
			/* a removed sandbox keeps its events: its full id still works */
			if (strlen(sb) != 64 || strspn(sb, "0123456789abcdef") != 64) {
				free(j);
				http_reply_error(r, 404, "not_found", "no such sandbox: '%.100s'", sb);
				return;
			}
			j->sandbox = xstrdup(sb);
		}
		j->sandboxes[0] = j->sandbox;
		j->f.sandboxes = j->sandboxes;
	}
	if (type) {
		j->type = xstrdup(type);
		j->types[0] = j->type;
		j->f.types = j->types;
	}
	if (j->follow && !after && !since) {
		/* following from now on: skip what happened before */
		struct capsa_event *v = NULL;
		size_t n = 0;
		struct capsa_events_filter all = { .after_seq = 0 };
		if (capsa_events_read(ctx, &all, 0, &v, &n, NULL) == 0 && n)
			j->f.after_seq = v[n - 1].seq;
		capsa_events_free(v, n);
	}
	j->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	j->s = stream_new(r->srv, 0);
	stream_set_keepalive(j->s, 15000, "{\"type\":\"keepalive\"}\n", 21);
	pthread_mutex_lock(&j->s->mu);
	j->s->on_room = events_wake;
	j->s->on_room_arg = j;
	pthread_mutex_unlock(&j->s->mu);
	http_reply_stream(r, 200, "application/x-ndjson", j->s);
	struct capsa_error *err = NULL;
	if (server_spawn(r->srv, events_run, j, &err) < 0) {
		capsa_error_free(err);
		pthread_mutex_lock(&j->s->mu);
		j->s->on_room = NULL;
		pthread_mutex_unlock(&j->s->mu);
		stream_close(j->s, true);
		stream_unref(j->s);
		close(j->wake);
		free(j->sandbox);
		free(j->type);
		free(j);
	}
}

const struct route native_io_routes[] = {
	{ "POST", "/v1/sandboxes/{}/exec", exec_oneshot, BODY_JSON, "exec" },
	{ "POST", "/v1/sandboxes/{}/processes", proc_start_stream, BODY_JSON, NULL },
	{ "GET", "/v1/sandboxes/{}/processes", proc_list, BODY_NONE, NULL },
	{ "GET", "/v1/sandboxes/{}/processes/{}/output", proc_attach_stream, BODY_NONE, NULL },
	{ "POST", "/v1/sandboxes/{}/processes/{}/stdin", proc_stdin, BODY_BYTES, NULL },
	{ "POST", "/v1/sandboxes/{}/processes/{}/signal", proc_signal, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/processes/{}/resize", proc_resize, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/processes/{}/wait", proc_wait, BODY_JSON, NULL },
	{ "GET", "/v1/sandboxes/{}/files", file_read, BODY_NONE, NULL },
	{ "PUT", "/v1/sandboxes/{}/files", file_write, BODY_SPOOL, NULL },
	{ "DELETE", "/v1/sandboxes/{}/files", file_remove, BODY_NONE, NULL },
	{ "GET", "/v1/sandboxes/{}/files/stat", file_stat, BODY_NONE, NULL },
	{ "GET", "/v1/sandboxes/{}/files/list", file_list, BODY_NONE, NULL },
	{ "GET", "/v1/sandboxes/{}/files/watch", file_watch, BODY_NONE, NULL },
	{ "POST", "/v1/sandboxes/{}/files/mkdir", file_mkdir, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/files/rename", file_rename, BODY_JSON, NULL },
	{ "GET", "/v1/sandboxes/{}/archive", archive_get, BODY_NONE, NULL },
	{ "PUT", "/v1/sandboxes/{}/archive", archive_put, BODY_SPOOL, NULL },
	{ "GET", "/v1/sandboxes/{}/ports", port_list, BODY_NONE, NULL },
	{ "POST", "/v1/sandboxes/{}/ports", port_publish, BODY_JSON, NULL },
	{ "GET", "/v1/sandboxes/{}/ports/{}/tunnel", port_tunnel, BODY_NONE, NULL },
	{ "GET", "/v1/events", events_get, BODY_NONE, NULL },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
