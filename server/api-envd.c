/* api-envd.c: E2B's in-sandbox API (envd, port 49983), implemented by the
 * server on top of the library instead of by a daemon in the sandbox.
 * Requests name the sandbox with the E2b-Sandbox-Id header.
 *
 *   process.Process     Start, Connect (streams), List, SendInput,
 *                       SendSignal, Update, CloseStdin
 *   filesystem.Filesystem  Stat, MakeDir, Move, ListDir, Remove, WatchDir
 *                       (stream), CreateWatcher, GetWatcherEvents,
 *                       RemoveWatcher
 *   GET/POST /files, GET /health
 *
 * Processes started here are kept processes (capsa/session.h): like envd's,
 * they run on when the client's stream ends, and Connect re-attaches.  A
 * sandbox that is gone answers 502, as E2B's proxy does (the SDK reads it
 * as "not running").
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "api.h"
#include "capsa/files.h"
#include "capsa/sandbox.h"
#include "capsa/session.h"
#include "connect.h"
#include "envd.h"
#include "hub.h"
#include "multipart.h"
#include "procstream.h"
#include "watchstream.h"
#include "server.h"
#include "stream.h"
#include "util/base64.h"
#include "util/fs.h"

/* --- common ------------------------------------------------------------ */

/* The full id of the request's sandbox, or NULL after replying 502. */
char *envd_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	char *id = capsa_sandbox_resolve(ctx, r->sandbox_id, &err);
	if (!id) {
		http_reply_error(r, 502, "sandbox_not_found", "sandbox %.100s: %s", r->sandbox_id,
				 err && err->msg ? err->msg : "not found");
		capsa_error_free(err);
	}
	return id;
}

/* Errors that mean the sandbox (not the object asked about) is gone. */
bool envd_sandbox_gone(const struct capsa_error *err)
{
	return err && err->msg && strstr(err->msg, "is not running") && !strstr(err->msg, "process");
}

/* The user of "Authorization: Basic base64(user:)", malloc'd, or NULL. */
char *envd_user(struct http_req *r)
{
	const char *a = http_header(r, "Authorization");
	if (!a || strncasecmp(a, "Basic ", 6) != 0)
		return NULL;
	struct buf b = BUF_INIT;
	b.cap = 512;
	if (base64_decode(a + 6, strlen(a + 6), &b) < 0) {
		buf_release(&b);
		return NULL;
	}
	char *s = buf_steal(&b);
	char *colon = strchr(s, ':');
	if (colon)
		*colon = '\0';
	if (!*s || memchr(s, '\0', strlen(s))) {
		free(s);
		return NULL;
	}
	return s;
}

static void connect_error_for(struct http_req *r, struct capsa_error *err)
{
	if (envd_sandbox_gone(err)) {
		http_reply_error(r, 502, "sandbox_not_running", "%s", err->msg);
		capsa_error_free(err);
		return;
	}
	connect_reply_capsa_error(r, err);
}

static json_t *decode_unary(struct http_req *r)
{
	char msg[300];
	json_t *j = connect_decode_request(r->body.data, r->body.len, false, msg, sizeof(msg));
	if (!j)
		connect_reply_error(r, "invalid_argument", "%s", msg);
	return j;
}

static json_t *decode_stream(struct http_req *r)
{
	char msg[300];
	json_t *j = connect_decode_request(r->body.data, r->body.len, true, msg, sizeof(msg));
	if (!j)
		connect_reply_stream_error(r, "invalid_argument", "%s", msg);
	return j;
}

static const char *jstr_field(json_t *o, const char *camel, const char *snake)
{
	json_t *v = connect_get(o, camel, snake);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* {"pid": N} or {"tag": "x"} (the selector oneof, flattened in JSON). */
static bool proc_ref(json_t *sel, struct capsa_proc_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	json_t *pid = connect_get(sel, "pid", NULL);
	json_t *tag = connect_get(sel, "tag", NULL);
	if (json_is_integer(pid) && json_integer_value(pid) > 0 && json_integer_value(pid) < (1 << 30)) {
		ref->pid = (pid_t)json_integer_value(pid);
		return true;
	}
	if (json_is_string(pid)) {
		int64_t v;
		if (parse_int64(json_string_value(pid), 1, (1 << 30) - 1, &v) == 0) {
			ref->pid = (pid_t)v;
			return true;
		}
	}
	if (json_is_string(tag) && *json_string_value(tag)) {
		ref->tag = json_string_value(tag);
		return true;
	}
	return false;
}

static int64_t header_int(struct http_req *r, const char *name, int64_t max)
{
	const char *v = http_header(r, name);
	int64_t n = 0;
	if (v && parse_int64(v, 0, max, &n) < 0)
		n = -1;
	return n;
}

/* --- process.Process --------------------------------------------------- */

static char **envs_strv(json_t *envs)
{
	char **env = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(envs, k, v) {
		if (json_is_string(v) && *k && !strchr(k, '='))
			env = strv_push_take(env, xasprintf("%s=%s", k, json_string_value(v)));
	}
	return env;
}

/* A streaming response for a process, with envd's keepalives when the
 * client asked for them (Keepalive-Ping-Interval, seconds). */
static struct stream *proc_stream(struct http_req *r)
{
	struct stream *s = stream_new(r->srv, 0);
	int64_t ka = header_int(r, "Keepalive-Ping-Interval", 3600);
	if (ka > 0) {
		struct buf b = BUF_INIT;
		pfmt_keepalive(&b, PFMT_E2B);
		stream_set_keepalive(s, (int)(ka * 1000), b.data, b.len);
		buf_release(&b);
	}
	return s;
}

/* Queues the start message (before the hub can add output), replies with
 * the stream and hands the session to the hub. */
static void proc_go(struct http_req *r, struct stream *s, struct hproc *hp)
{
	struct buf b = BUF_INIT;
	pfmt_start(&b, PFMT_E2B, capsa_proc_pid(hp->p));
	stream_write(s, b.data, b.len, true);
	buf_release(&b);
	http_reply_stream(r, 200, "application/connect+json", s);
	hub_adopt(r->srv->hub, hp);
}

static void proc_start(struct http_req *r, struct capsa_ctx *ctx)
{
	struct metrics *m = &r->srv->metrics;
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_stream(r);
	if (!req)
		return;
	_cleanup_free_ char *user = envd_user(r);
	json_t *proc = connect_get(req, "process", NULL);
	const char *cmd = jstr_field(proc, "cmd", NULL);
	json_t *args = connect_get(proc, "args", NULL), *envs = connect_get(proc, "envs", NULL);
	json_t *pty = connect_get(req, "pty", NULL);
	json_t *size = connect_get(pty, "size", NULL);
	char **argv = NULL, **env = NULL;
	struct hproc *hp;
	struct stream *s = NULL;
	struct capsa_error *err = NULL;
	struct capsa_proc_opts o = { 0 };
	int64_t timeout = header_int(r, "Connect-Timeout-Ms", INT32_MAX);
	if (!cmd || !*cmd || (args && !json_is_array(args)) || (envs && !json_is_object(envs)) || timeout < 0) {
		connect_reply_stream_error(r, "invalid_argument",
					   "process.cmd is required; args must be strings, envs a map of strings");
		goto out;
	}
	argv = strv_push(NULL, cmd);
	size_t i;
	json_t *a;
	json_array_foreach(args, i, a) {
		if (!json_is_string(a)) {
			connect_reply_stream_error(r, "invalid_argument", "process.args[%zu] is not a string", i);
			goto out;
		}
		argv = strv_push(argv, json_string_value(a));
	}
	env = envs_strv(envs);
	o.argv = argv;
	o.env = env;
	o.workdir = jstr_field(proc, "cwd", NULL);
	o.user = user;
	o.tty = pty != NULL;
	o.rows = (uint16_t)json_integer_value(connect_get(size, "rows", NULL));
	o.cols = (uint16_t)json_integer_value(connect_get(size, "cols", NULL));
	o.stdin_open = pty != NULL || json_is_true(connect_get(req, "stdin", NULL));
	o.timeout_ms = timeout;
	o.kill_grace_ms = 1000;
	o.tag = jstr_field(req, "tag", NULL);
	o.keep = true;
	if (o.workdir && !*o.workdir)
		o.workdir = NULL;
	s = proc_stream(r);
	hp = pstream_new(r->srv->hub, id, s, PFMT_E2B, o.tty, m, r->t_start_ns);
	if (capsa_proc_start(ctx, id, &o, &hub_proc_callbacks, hp, &hp->p, &err) < 0) {
		atomic_fetch_add(&m->exec_errors, 1);
		hproc_discard(hp);
		if (envd_sandbox_gone(err)) {
			http_reply_error(r, 502, "sandbox_not_running", "%s", err->msg);
			capsa_error_free(err);
		} else {
			const char *code = err->code == ENOENT || err->code == EACCES ? "invalid_argument"
					   : err->code == EEXIST			 ? "already_exists"
										 : connect_code_for_errno(err->code);
			connect_reply_stream_error(r, code, "%s", err->msg);
			capsa_error_free(err);
		}
		goto out;
	}
	atomic_fetch_add(&m->execs, 1);
	proc_go(r, s, hp);
out:
	stream_unref(s);
	strv_free(argv);
	strv_free(env);
	json_decref(req);
}

static void proc_connect(struct http_req *r, struct capsa_ctx *ctx)
{
	struct metrics *m = &r->srv->metrics;
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_stream(r);
	if (!req)
		return;
	struct capsa_proc_ref ref;
	struct capsa_error *err = NULL;
	struct capsa_proc_info *v = NULL;
	size_t n = 0;
	bool tty = false;
	struct stream *s = NULL;
	struct hproc *hp;
	struct capsa_attach_opts ao = { .output = true, .replay = true };
	if (!proc_ref(connect_get(req, "process", NULL), &ref)) {
		connect_reply_stream_error(r, "invalid_argument", "process: give a pid or a tag");
		goto out;
	}
	/* whether it has a terminal decides how its output is named */
	if (capsa_proc_list(ctx, id, &v, &n, &err) < 0) {
		if (envd_sandbox_gone(err))
			http_reply_error(r, 502, "sandbox_not_running", "%s", err->msg);
		else
			connect_reply_stream_error(r, connect_code_for_errno(err->code), "%s", err->msg);
		capsa_error_free(err);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((ref.pid && v[i].pid == ref.pid) || (ref.tag && v[i].tag && strcmp(v[i].tag, ref.tag) == 0))
			tty = v[i].tty;
	s = proc_stream(r);
	hp = pstream_new(r->srv->hub, id, s, PFMT_E2B, tty, m, r->t_start_ns);
	if (capsa_proc_attach(ctx, id, &ref, &ao, &hub_proc_callbacks, hp, &hp->p, &err) < 0) {
		hproc_discard(hp);
		connect_reply_stream_error(r, err->code == ESRCH ? "not_found" : connect_code_for_errno(err->code), "%s",
					   err->msg);
		capsa_error_free(err);
		goto out;
	}
	proc_go(r, s, hp);
out:
	stream_unref(s);
	capsa_proc_info_free(v, n);
	json_decref(req);
}

static void proc_list(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_unary(r);
	if (!req)
		return;
	json_decref(req);
	struct capsa_proc_info *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_proc_list(ctx, id, &v, &n, &err) < 0) {
		connect_error_for(r, err);
		return;
	}
	json_t *procs = json_array();
	for (size_t i = 0; i < n; i++) {
		if (v[i].main || !v[i].running || !v[i].argv || !v[i].argv[0])
			continue;
		json_t *args = json_array();
		for (char **a = v[i].argv + 1; *a; a++)
			json_array_append_new(args, json_string(*a));
		json_t *cfg = json_pack("{s:s, s:o, s:{}}", "cmd", v[i].argv[0], "args", args, "envs");
		if (v[i].workdir)
			json_object_set_new(cfg, "cwd", json_string(v[i].workdir));
		json_t *p = json_pack("{s:o, s:i}", "config", cfg, "pid", (int)v[i].pid);
		if (v[i].tag)
			json_object_set_new(p, "tag", json_string(v[i].tag));
		json_array_append_new(procs, p);
	}
	capsa_proc_info_free(v, n);
	connect_reply(r, json_pack("{s:o}", "processes", procs));
}

/* Runs op on a session attached to the process for input only, then
 * waits until what it queued has reached the supervisor. */
static int with_input(struct capsa_ctx *ctx, const char *id, const struct capsa_proc_ref *ref,
		      int (*op)(struct capsa_proc *p, void *arg, struct capsa_error **err), void *arg,
		      struct capsa_error **err)
{
	struct capsa_attach_opts ao = { .input = true };
	struct capsa_proc *p = NULL;
	if (capsa_proc_attach(ctx, id, ref, &ao, NULL, NULL, &p, err) < 0)
		return -1;
	int rc = op(p, arg, err);
	int64_t end = mono_ms() + 30000;
	while (rc == 0 && capsa_proc_want_write(p)) {
		struct pollfd pf = { .fd = capsa_proc_fd(p), .events = POLLOUT | POLLIN };
		int left = (int)(end - mono_ms());
		if (left <= 0 || poll(&pf, 1, left) == 0) {
			rc = error_set(err, ETIMEDOUT, "the supervisor did not take the input in 30 s");
			break;
		}
		int pr = capsa_proc_process(p, err);
		if (pr < 0)
			rc = -1;
		if (pr != 0)
			break;
	}
	capsa_proc_free(p);
	return rc;
}

struct input_arg {
	const char *data;
	size_t len;
};

static int op_write(struct capsa_proc *p, void *arg, struct capsa_error **err)
{
	struct input_arg *in = arg;
	size_t done = 0;
	int64_t end = mono_ms() + 30000;
	while (done < in->len) {
		ssize_t n = capsa_proc_write(p, in->data + done, in->len - done, err);
		if (n < 0)
			return -1;
		done += (size_t)n;
		if (done == in->len)
			break;
		/* no credit: the process has not read what it was given yet */
		struct pollfd pf = { .fd = capsa_proc_fd(p), .events = POLLIN };
		int left = (int)(end - mono_ms());
		if (left <= 0 || poll(&pf, 1, left) == 0)
			return error_set(err, ETIMEDOUT, "the process did not read its input for 30 s");
		int pr = capsa_proc_process(p, err);
		if (pr < 0)
			return -1;
		if (pr == 1)
			return error_set(err, ESRCH, "the process has ended");
	}
	return 0;
}

static int op_close(struct capsa_proc *p, void *arg, struct capsa_error **err)
{
	(void)arg;
	return capsa_proc_close_stdin(p, err);
}

struct size_arg {
	uint16_t rows, cols;
};

static int op_resize(struct capsa_proc *p, void *arg, struct capsa_error **err)
{
	struct size_arg *a = arg;
	return capsa_proc_resize(p, a->rows, a->cols, err);
}

static void input_error(struct http_req *r, struct capsa_error *err)
{
	if (err && err->code == ESRCH && !envd_sandbox_gone(err)) {
		connect_reply_error(r, "not_found", "%s", err->msg);
		capsa_error_free(err);
		return;
	}
	connect_error_for(r, err);
}

static void proc_send_input(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_unary(r);
	if (!req)
		return;
	struct capsa_proc_ref ref;
	json_t *input = connect_get(req, "input", NULL);
	const char *b64 = jstr_field(input, "stdin", NULL);
	if (!b64)
		b64 = jstr_field(input, "pty", NULL);
	struct buf data = BUF_INIT;
	data.cap = HTTP_MAX_BYTES_BODY;
	struct capsa_error *err = NULL;
	if (!proc_ref(connect_get(req, "process", NULL), &ref) || !b64 ||
	    base64_decode(b64, strlen(b64), &data) < 0) {
		connect_reply_error(r, "invalid_argument", "give process {pid|tag} and input {stdin|pty} as base64");
	} else {
		struct input_arg in = { data.data ? data.data : "", data.len };
		if (with_input(ctx, id, &ref, op_write, &in, &err) < 0)
			input_error(r, err);
		else
			connect_reply(r, json_object());
	}
	buf_release(&data);
	json_decref(req);
}

static void proc_close_stdin(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_unary(r);
	if (!req)
		return;
	struct capsa_proc_ref ref;
	struct capsa_error *err = NULL;
	if (!proc_ref(connect_get(req, "process", NULL), &ref))
		connect_reply_error(r, "invalid_argument", "process: give a pid or a tag");
	else if (with_input(ctx, id, &ref, op_close, NULL, &err) < 0)
		input_error(r, err);
	else
		connect_reply(r, json_object());
	json_decref(req);
}

static void proc_update(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_unary(r);
	if (!req)
		return;
	struct capsa_proc_ref ref;
	struct capsa_error *err = NULL;
	json_t *size = connect_get(connect_get(req, "pty", NULL), "size", NULL);
	json_t *rows = connect_get(size, "rows", NULL), *cols = connect_get(size, "cols", NULL);
	if (!proc_ref(connect_get(req, "process", NULL), &ref)) {
		connect_reply_error(r, "invalid_argument", "process: give a pid or a tag");
	} else if (!size) {
		connect_reply(r, json_object()); /* nothing to update */
	} else if (!json_is_integer(rows) || !json_is_integer(cols) || json_integer_value(rows) < 1 ||
		   json_integer_value(rows) > 65535 || json_integer_value(cols) < 1 || json_integer_value(cols) > 65535) {
		connect_reply_error(r, "invalid_argument", "pty.size: rows and cols are 1-65535");
	} else {
		struct size_arg a = { (uint16_t)json_integer_value(rows), (uint16_t)json_integer_value(cols) };
		if (with_input(ctx, id, &ref, op_resize, &a, &err) < 0)
			input_error(r, err);
		else
			connect_reply(r, json_object());
	}
	json_decref(req);
}

static int signal_of(json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) > 0 && json_integer_value(v) < 65 ? (int)json_integer_value(v) : -1;
	const char *s = json_string_value(v);
	if (!s)
		return SIGKILL; /* the enum's zero value is unspecified; envd kills */
	if (str_has_prefix(s, "SIGNAL_"))
		s += 7;
	int sig;
	return parse_signal(s, &sig, NULL) == 0 ? sig : -1;
}

static void proc_send_signal(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_unary(r);
	if (!req)
		return;
	struct capsa_proc_ref ref;
	struct capsa_error *err = NULL;
	int sig = signal_of(connect_get(req, "signal", NULL));
	if (!proc_ref(connect_get(req, "process", NULL), &ref))
		connect_reply_error(r, "invalid_argument", "process: give a pid or a tag");
	else if (sig < 0)
		connect_reply_error(r, "invalid_argument", "unknown signal");
	else if (capsa_proc_kill(ctx, id, &ref, sig, true, &err) < 0)
		input_error(r, err);
	else
		connect_reply(r, json_object());
	json_decref(req);
}

static void proc_stream_input(struct http_req *r, struct capsa_ctx *ctx)
{
	(void)ctx;
	connect_reply_error(r, "unimplemented",
			    "StreamInput (client streaming) is not served: send input with SendInput");
}

/* --- filesystem.Filesystem --------------------------------------------- */

static const char *file_type_name(enum capsa_file_type t)
{
	switch (t) {
	case CAPSA_FILE_REGULAR:
		return "FILE_TYPE_FILE";
	case CAPSA_FILE_DIR:
		return "FILE_TYPE_DIRECTORY";
	case CAPSA_FILE_SYMLINK:
		return "FILE_TYPE_SYMLINK";
	default:
		return "FILE_TYPE_UNSPECIFIED";
	}
}

/* ls -l's mode string, as Go's FileMode.String() prints it */
static void perm_string(uint32_t mode, char out[11])
{
	out[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'L' : S_ISREG(mode) ? '-' : '?';
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
	out[10] = '\0';
}

json_t *envd_entry_json(const struct capsa_file_info *i)
{
	char perm[11], mtime[40], id[16];
	perm_string(i->mode, perm);
	format_rfc3339(i->mtime_ms, mtime, sizeof(mtime));
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:i, s:s, s:s}", "name", i->name ? i->name : "", "type",
			      file_type_name(i->type), "path", i->path ? i->path : "", "size", (json_int_t)i->size,
			      "mode", (int)(i->mode & 07777), "permissions", perm, "modifiedTime", mtime);
	snprintf(id, sizeof(id), "%u", i->uid);
	json_object_set_new(o, "owner", json_string(i->owner ? i->owner : id));
	snprintf(id, sizeof(id), "%u", i->gid);
	json_object_set_new(o, "group", json_string(i->group ? i->group : id));
	if (i->link_target)
		json_object_set_new(o, "symlinkTarget", json_string(i->link_target));
	return o;
}

/* The user a request names: `Authorization: Basic base64(user:)` (what the
 * SDK sends with RPCs), else the `username` query (what it sends to
 * /files); NULL: root. */
static char *request_user(struct http_req *r)
{
	char *user = envd_user(r);
	const char *u = user ? NULL : http_query(r, "username");
	return user ? user : u && *u ? xstrdup(u) : NULL;
}

/* A files handle on the request's sandbox, running as the request's user,
 * or NULL after replying. */
static struct capsa_files *files_open(struct http_req *r, struct capsa_ctx *ctx, const char *id, bool rpc)
{
	struct capsa_files *f = NULL;
	struct capsa_error *err = NULL;
	if (capsa_files_open(ctx, id, &f, &err) < 0) {
		if (err->code == ESRCH || err->code == ENOENT) {
			http_reply_error(r, 502, "sandbox_not_running", "%s", err->msg);
			capsa_error_free(err);
		} else if (rpc) {
			connect_reply_capsa_error(r, err);
		} else {
			http_reply_capsa_error(r, err);
		}
		return NULL;
	}
	_cleanup_free_ char *user = request_user(r);
	capsa_files_set_user(f, user);
	capsa_files_set_max(f, r->srv->max_download);
	return f;
}

/* The request message and an open files handle, or NULL after replying. */
static json_t *fs_begin(struct http_req *r, struct capsa_ctx *ctx, struct capsa_files **f)
{
	*f = NULL;
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return NULL;
	json_t *req = decode_unary(r);
	if (!req)
		return NULL;
	*f = files_open(r, ctx, id, true);
	if (!*f) {
		json_decref(req);
		return NULL;
	}
	return req;
}

static void fs_error(struct http_req *r, struct capsa_error *err)
{
	connect_reply_capsa_error(r, err);
}

/* Replies {"entry": EntryInfo} for path. */
static void reply_entry(struct http_req *r, struct capsa_files *f, const char *path)
{
	struct capsa_file_info fi;
	struct capsa_error *err = NULL;
	if (capsa_files_stat(f, path, &fi, &err) < 0) {
		fs_error(r, err);
		return;
	}
	connect_reply(r, json_pack("{s:o}", "entry", envd_entry_json(&fi)));
	capsa_file_info_release(&fi);
}

static void fs_stat(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_files *f;
	json_t *req = fs_begin(r, ctx, &f);
	if (!req)
		return;
	const char *path = jstr_field(req, "path", NULL);
	if (!path || !*path)
		connect_reply_error(r, "invalid_argument", "path is required");
	else
		reply_entry(r, f, path);
	capsa_files_close(f);
	json_decref(req);
}

static void fs_make_dir(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_files *f;
	json_t *req = fs_begin(r, ctx, &f);
	if (!req)
		return;
	_cleanup_free_ char *user = envd_user(r);
	const char *path = jstr_field(req, "path", NULL);
	struct capsa_error *err = NULL;
	int made;
	if (!path || !*path)
		connect_reply_error(r, "invalid_argument", "path is required");
	else if ((made = capsa_files_mkdir(f, path, -1, true, user, &err)) < 0)
		fs_error(r, err);
	else if (made == 0)
		connect_reply_error(r, "already_exists", "directory already exists: %s", path);
	else
		reply_entry(r, f, path);
	capsa_files_close(f);
	json_decref(req);
}

static void fs_move(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_files *f;
	json_t *req = fs_begin(r, ctx, &f);
	if (!req)
		return;
	const char *src = jstr_field(req, "source", NULL), *dst = jstr_field(req, "destination", NULL);
	struct capsa_error *err = NULL;
	if (!src || !dst || !*src || !*dst)
		connect_reply_error(r, "invalid_argument", "source and destination are required");
	else if (capsa_files_rename(f, src, dst, false, &err) < 0)
		fs_error(r, err);
	else
		reply_entry(r, f, dst);
	capsa_files_close(f);
	json_decref(req);
}

static void fs_list_dir(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_files *f;
	json_t *req = fs_begin(r, ctx, &f);
	if (!req)
		return;
	const char *path = jstr_field(req, "path", NULL);
	json_t *dj = connect_get(req, "depth", NULL);
	int64_t depth = json_is_integer(dj) ? json_integer_value(dj) : 1;
	struct capsa_error *err = NULL;
	struct capsa_file_info *v = NULL, fi;
	size_t n = 0;
	if (!path || !*path) {
		connect_reply_error(r, "invalid_argument", "path is required");
	} else if ((dj && !json_is_integer(dj)) || depth < 0 || depth > 1000) {
		connect_reply_error(r, "invalid_argument", "depth must be 1-1000");
	} else if (capsa_files_stat(f, path, &fi, &err) < 0) {
		fs_error(r, err);
	} else {
		bool dir = fi.type == CAPSA_FILE_DIR || fi.type == CAPSA_FILE_SYMLINK;
		capsa_file_info_release(&fi);
		if (!dir)
			connect_reply_error(r, "invalid_argument", "path is not a directory: %s", path);
		else if (capsa_files_list(f, path, depth ? (int)depth : 1, &v, &n, &err) < 0)
			fs_error(r, err);
		else {
			json_t *a = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(a, envd_entry_json(&v[i]));
			capsa_file_infos_free(v, n);
			connect_reply(r, json_pack("{s:o}", "entries", a));
		}
	}
	capsa_files_close(f);
	json_decref(req);
}

static void fs_remove(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_files *f;
	json_t *req = fs_begin(r, ctx, &f);
	if (!req)
		return;
	const char *path = jstr_field(req, "path", NULL);
	struct capsa_error *err = NULL;
	if (!path || !*path)
		connect_reply_error(r, "invalid_argument", "path is required");
	else if (capsa_files_remove(f, path, true, &err) < 0)
		fs_error(r, err);
	else
		connect_reply(r, json_object());
	capsa_files_close(f);
	json_decref(req);
}

/* WatchDir (a server stream of events) and CreateWatcher (events polled
 * with GetWatcherEvents) open the same watch. */
static void fs_watch(struct http_req *r, struct capsa_ctx *ctx, bool stream)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = stream ? decode_stream(r) : decode_unary(r);
	if (!req)
		return;
	const char *path = jstr_field(req, "path", NULL);
	_cleanup_free_ char *user = request_user(r);
	struct capsa_watch *cw = NULL;
	struct capsa_error *err = NULL;
	if (!path || !*path) {
		if (stream)
			connect_reply_stream_error(r, "invalid_argument", "path is required");
		else
			connect_reply_error(r, "invalid_argument", "path is required");
	} else if (capsa_watch_open(ctx, id, path, json_is_true(connect_get(req, "recursive", NULL)), user, &cw,
				    &err) < 0) {
		if (!stream || envd_sandbox_gone(err)) {
			connect_error_for(r, err);
		} else {
			connect_reply_stream_error(r, connect_code_for_errno(err->code), "%s", err->msg);
			capsa_error_free(err);
		}
	} else if (stream) {
		struct stream *s = proc_stream(r);
		json_t *start = json_pack("{s:{}}", "start");
		struct buf b = BUF_INIT;
		connect_envelope(&b, 0, start);
		json_decref(start);
		stream_write(s, b.data, b.len, true);
		buf_release(&b);
		struct hwatch *w = wstream_new(r->srv->hub, cw, s, WFMT_E2B, path);
		http_reply_stream(r, 200, "application/connect+json", s);
		hub_adopt_watch(r->srv->hub, w);
		stream_unref(s);
	} else {
		struct hwatch *w = wpoll_new(r->srv->hub, cw, id, path);
		char wid[32];
		snprintf(wid, sizeof(wid), "w%llu", (unsigned long long)w->id);
		hub_adopt_watch(r->srv->hub, w);
		connect_reply(r, json_pack("{s:s}", "watcherId", wid));
	}
	json_decref(req);
}

static void fs_watch_dir(struct http_req *r, struct capsa_ctx *ctx)
{
	fs_watch(r, ctx, true);
}

static void fs_create_watcher(struct http_req *r, struct capsa_ctx *ctx)
{
	fs_watch(r, ctx, false);
}

struct watcher_call {
	struct hub *hub;
	uint64_t id;
	const char *sandbox;
	json_t *events; /* out: NULL when there is no such watcher */
	bool remove;
};

static void watcher_call(void *arg)
{
	struct watcher_call *c = arg;
	wpoll_sweep(c->hub);
	struct hwatch *w = hub_find_watch(c->hub, c->id);
	if (!w || !wpoll_is(w, c->sandbox))
		return;
	if (c->remove) {
		c->events = json_array();
		hwatch_close(w);
	} else {
		c->events = wpoll_take(w);
	}
}

static bool watcher_id(json_t *req, uint64_t *id)
{
	const char *s = jstr_field(req, "watcherId", "watcher_id");
	int64_t v;
	if (!s || s[0] != 'w' || parse_int64(s + 1, 1, INT64_MAX, &v) < 0)
		return false;
	*id = (uint64_t)v;
	return true;
}

static void watcher_common(struct http_req *r, struct capsa_ctx *ctx, bool remove)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	json_t *req = decode_unary(r);
	if (!req)
		return;
	struct watcher_call c = { .hub = r->srv->hub, .sandbox = id, .remove = remove };
	if (!watcher_id(req, &c.id)) {
		connect_reply_error(r, "invalid_argument", "watcherId is required");
	} else {
		hub_call(r->srv->hub, watcher_call, &c, true);
		if (!c.events)
			connect_reply_error(r, "not_found", "no such watcher");
		else if (remove)
			json_decref(c.events), connect_reply(r, json_object());
		else
			connect_reply(r, json_pack("{s:o}", "events", c.events));
	}
	json_decref(req);
}

static void fs_get_watcher_events(struct http_req *r, struct capsa_ctx *ctx)
{
	watcher_common(r, ctx, false);
}

static void fs_remove_watcher(struct http_req *r, struct capsa_ctx *ctx)
{
	watcher_common(r, ctx, true);
}

/* --- /files ------------------------------------------------------------ */

static int tmpfile_fd(struct server *srv)
{
	_cleanup_free_ char *dir = xasprintf("%s/tmp", srv->root);
	return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

/* envd answers plain HTTP errors as {"code": <status>, "message"}: ours
 * add "error", and a full disk is 507. */
static void files_error(struct http_req *r, struct capsa_error *err)
{
	if (err && err->code == ENOSPC) {
		http_reply_error(r, 507, "insufficient_storage", "%s", err->msg);
		capsa_error_free(err);
		return;
	}
	if (envd_sandbox_gone(err)) {
		http_reply_error(r, 502, "sandbox_not_running", "%s", err->msg);
		capsa_error_free(err);
		return;
	}
	http_reply_capsa_error(r, err);
}

static void files_get(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	const char *path = http_query(r, "path");
	if (!path || !*path) {
		http_reply_error(r, 400, "invalid_argument", "query 'path' is required");
		return;
	}
	struct capsa_files *f = files_open(r, ctx, id, false);
	if (!f)
		return;
	struct capsa_file_info fi;
	struct capsa_error *err = NULL;
	int fd = -1;
	int64_t size = 0;
	bool dir;
	if (capsa_files_stat(f, path, &fi, &err) < 0) {
		files_error(r, err);
		goto out;
	}
	dir = fi.type == CAPSA_FILE_DIR;
	capsa_file_info_release(&fi);
	if (dir) {
		http_reply_error(r, 400, "is_a_directory", "path '%s' is a directory", path);
		goto out;
	}
	/* through a temporary file: the response then has its length, and a
	 * slow client holds disk, not memory */
	fd = tmpfile_fd(r->srv);
	if (fd < 0) {
		http_reply_error(r, 500, "internal", "temporary file: %s", strerror(errno));
		goto out;
	}
	if (capsa_files_read_fd(f, path, fd, &size, &err) < 0) {
		files_error(r, err);
		goto out;
	}
	http_reply_fd(r, 200, "application/octet-stream", fd, size);
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	capsa_files_close(f);
}

/* Inflates a gzip body into a new temporary file, bounded. */
static int gunzip_to_tmp(struct server *srv, int in, int64_t max, char *err, size_t errlen)
{
	/* zlib would pass a body without the gzip header through as it is */
	unsigned char magic[2];
	if (pread(in, magic, 2, 0) != 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
		snprintf(err, errlen, "the body is not gzip data, as Content-Encoding says it is");
		return -1;
	}
	int out = tmpfile_fd(srv);
	if (out < 0) {
		snprintf(err, errlen, "temporary file: %s", strerror(errno));
		return -1;
	}
	int dup_in = dup(in);
	gzFile gz = dup_in >= 0 ? gzdopen(dup_in, "rb") : NULL;
	if (!gz) {
		if (dup_in >= 0)
			close(dup_in);
		close(out);
		snprintf(err, errlen, "cannot read the gzip body");
		return -1;
	}
	char buf[65536];
	int64_t total = 0;
	int n;
	while ((n = gzread(gz, buf, sizeof(buf))) > 0) {
		total += n;
		if (total > max || write_all(out, buf, (size_t)n) < 0) {
			snprintf(err, errlen, total > max ? "the body inflates past the upload limit" : "cannot store the body");
			gzclose(gz);
			close(out);
			return -1;
		}
	}
	int e;
	const char *msg = gzerror(gz, &e);
	if (n < 0 || (e != Z_OK && e != Z_STREAM_END)) {
		snprintf(err, errlen, "malformed gzip body: %s", msg ? msg : "error");
		gzclose(gz);
		close(out);
		return -1;
	}
	gzclose(gz);
	lseek(out, 0, SEEK_SET);
	return out;
}

/* One part's bytes as a file of its own (for capsa_files_write_fd). */
static int part_fd(struct server *srv, int body, int64_t off, int64_t len)
{
	int fd = tmpfile_fd(srv);
	if (fd < 0)
		return -1;
	loff_t in_off = off;
	while (len > 0) {
		ssize_t n = copy_file_range(body, &in_off, fd, NULL, (size_t)MIN(len, (int64_t)1 << 30), 0);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		len -= n;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static int write_one(struct http_req *r, struct capsa_files *f, const char *path, int fd, const char *user,
		     json_t *out, struct capsa_error **err)
{
	struct capsa_write_opts wo = { .how = CAPSA_WRITE_REPLACE, .mode = -1, .make_parents = true, .user = user };
	(void)r;
	if (capsa_files_write_fd(f, path, fd, &wo, err) < 0)
		return -1;
	const char *slash = strrchr(path, '/');
	json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "name", slash ? slash + 1 : path, "type", "file",
					     "path", path));
	return 0;
}

static void files_post(struct http_req *r, struct capsa_ctx *ctx)
{
	_cleanup_free_ char *id = envd_sandbox(r, ctx);
	if (!id)
		return;
	_cleanup_free_ char *user = request_user(r);
	const char *qpath = http_query(r, "path");
	const char *ct = http_header(r, "Content-Type");
	const char *enc = http_header(r, "Content-Encoding");
	_cleanup_free_ char *boundary = multipart_boundary(ct);
	char msg[300];
	int body = r->spool_fd, inflated = -1;
	int64_t len = r->body_len;
	struct mpart *parts = NULL;
	size_t n = 0;
	json_t *out = json_array();
	struct capsa_files *f = NULL;
	struct capsa_error *err = NULL;
	if (enc && strcasecmp(enc, "gzip") == 0) {
		inflated = gunzip_to_tmp(r->srv, body, r->srv->max_upload, msg, sizeof(msg));
		if (inflated < 0) {
			http_reply_error(r, 400, "invalid_argument", "%s", msg);
			goto out;
		}
		body = inflated;
		len = lseek(body, 0, SEEK_END);
		lseek(body, 0, SEEK_SET);
	} else if (enc && strcasecmp(enc, "identity") != 0) {
		http_reply_error(r, 415, "unsupported_media_type", "Content-Encoding %.40s is not supported", enc);
		goto out;
	}
	f = files_open(r, ctx, id, false);
	if (!f)
		goto out;
	if (boundary) {
		if (multipart_parse(body, len, boundary, &parts, &n, msg, sizeof(msg)) < 0) {
			http_reply_error(r, 400, "invalid_argument", "%s", msg);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (!parts[i].name || strcmp(parts[i].name, "file") != 0)
				continue;
			const char *path = qpath && *qpath ? qpath : parts[i].filename;
			if (!path || !*path) {
				http_reply_error(r, 400, "invalid_argument", "part %zu names no path (query 'path' or its filename)", i);
				goto out;
			}
			int fd = part_fd(r->srv, body, parts[i].off, parts[i].len);
			if (fd < 0) {
				http_reply_error(r, errno == ENOSPC ? 507 : 500, "internal", "temporary file: %s", strerror(errno));
				goto out;
			}
			int rc = write_one(r, f, path, fd, user, out, &err);
			close(fd);
			if (rc < 0) {
				files_error(r, err);
				goto out;
			}
		}
	} else if (ct && strncasecmp(ct, "application/octet-stream", 24) == 0) {
		if (!qpath || !*qpath) {
			http_reply_error(r, 400, "invalid_argument", "query 'path' is required for a raw upload");
			goto out;
		}
		if (write_one(r, f, qpath, body, user, out, &err) < 0) {
			files_error(r, err);
			goto out;
		}
	} else {
		http_reply_error(r, 400, "invalid_argument",
				 "unsupported content type %.80s: expected multipart/form-data or application/octet-stream",
				 ct ? ct : "(none)");
		goto out;
	}
	http_reply_json(r, 200, out);
	out = NULL;
out:
	json_decref(out);
	multipart_free(parts, n);
	if (inflated >= 0)
		close(inflated);
	capsa_files_close(f);
}

/* The SDK's isRunning(): 204 while the sandbox runs, 502 otherwise. */
static void envd_health(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	_cleanup_free_ char *s = capsa_sandbox_inspect(ctx, r->sandbox_id, &err);
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	const char *state = json_string_value(json_object_get(j, "state"));
	if (state && strcmp(state, "exited") != 0)
		http_reply_empty(r, 204);
	else
		http_reply_error(r, 502, "sandbox_not_running", "sandbox %.100s is not running", r->sandbox_id);
	json_decref(j);
	capsa_error_free(err);
}

const struct route envd_routes[] = {
	{ "GET", "/health", envd_health, BODY_NONE, NULL },
	{ "GET", "/files", files_get, BODY_NONE, NULL },
	{ "POST", "/files", files_post, BODY_SPOOL, NULL },
	{ "POST", "/process.Process/Start", proc_start, BODY_BYTES, NULL },
	{ "POST", "/process.Process/Connect", proc_connect, BODY_BYTES, NULL },
	{ "POST", "/process.Process/List", proc_list, BODY_BYTES, NULL },
	{ "POST", "/process.Process/SendInput", proc_send_input, BODY_BYTES, NULL },
	{ "POST", "/process.Process/SendSignal", proc_send_signal, BODY_BYTES, NULL },
	{ "POST", "/process.Process/Update", proc_update, BODY_BYTES, NULL },
	{ "POST", "/process.Process/CloseStdin", proc_close_stdin, BODY_BYTES, NULL },
	{ "POST", "/process.Process/StreamInput", proc_stream_input, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/Stat", fs_stat, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/MakeDir", fs_make_dir, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/Move", fs_move, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/ListDir", fs_list_dir, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/Remove", fs_remove, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/WatchDir", fs_watch_dir, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/CreateWatcher", fs_create_watcher, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/GetWatcherEvents", fs_get_watcher_events, BODY_BYTES, NULL },
	{ "POST", "/filesystem.Filesystem/RemoveWatcher", fs_remove_watcher, BODY_BYTES, NULL },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
