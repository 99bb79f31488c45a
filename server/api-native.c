/* api-native.c: the /v1 API: sandboxes and their egress rules, logs,
 * events, images, templates, networks, the ledger and /metrics
 * (docs/api.md).  Process sessions, files and tunnels are in
 * api-native-exec.c.
 *
 * Handlers run on worker threads with the worker's context; they decode
 * strictly (unknown fields are refused), call the library, and reply.
 * Library errors become {"code","error","message"} through their errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "capsa/admission.h"
#include "capsa/image.h"
#include "capsa/logs.h"
#include "capsa/network.h"
#include "capsa/pull.h"
#include "capsa/sandbox.h"
#include "capsa/template.h"
#include "json.h"
#include "server.h"
#include "stream.h"
#include "util/fs.h"

/* --- sandboxes --------------------------------------------------------- */

static char keep_sleep[] = "sleep", keep_inf[] = "infinity";
char *api_keepalive_cmd[] = { keep_sleep, keep_inf, NULL };

/* The JSON a library call returned (s, freed here), or its error. */
static void reply_library_json(struct http_req *r, unsigned status, char *s, struct capsa_error *err)
{
	if (!s) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *j = json_loads(s, 0, NULL);
	free(s);
	if (j)
		http_reply_json(r, status, j);
	else
		http_reply_error(r, 500, "internal", "the library returned malformed JSON");
}

static void reply_inspect(struct http_req *r, struct capsa_ctx *ctx, const char *id, unsigned status)
{
	struct capsa_error *err = NULL;
	char *s = capsa_sandbox_inspect(ctx, id, &err);
	reply_library_json(r, status, s, err);
}

int api_create_sandbox(struct http_req *r, struct capsa_ctx *ctx, struct capsa_sandbox_opts *o, char **id_out)
{
	struct metrics *m = &r->srv->metrics;
	struct capsa_error *err = NULL;
	if (capsa_sandbox_run(ctx, o, NULL, id_out, NULL, &err) < 0) {
		atomic_fetch_add(&m->create_errors, 1);
		http_reply_capsa_error(r, err);
		return -1;
	}
	atomic_fetch_add(&m->creates, 1);
	return 0;
}

/* Egress rules: at most the library's limit of entries per list. */
#define MAX_EGRESS_RULES 1024

/* The "network" object of a create: {"mode", "allowOut", "denyOut"}, the
 * forms of `capsa run --network --allow-out --deny-out` (the library checks
 * them, with the command line's messages).  false with the reply sent. */
static bool decode_network(struct http_req *r, struct jdec *d, struct capsa_sandbox_opts *o)
{
	struct jdec nd;
	jdec_init(&nd, jdec_obj(d, "network"), "network.");
	o->network = jdec_str(&nd, "mode", false);
	o->allow_out = jdec_strv(&nd, "allowOut", MAX_EGRESS_RULES);
	o->deny_out = jdec_strv(&nd, "denyOut", MAX_EGRESS_RULES);
	if (!jdec_finish(&nd, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", nd.err);
		return false;
	}
	/* the host's network takes the sandbox out of every rule: only the
	 * operator may hand that out (a server whose default network is the
	 * host's was told so by its operator) */
	if (o->network && strcmp(o->network, "host") == 0 && !r->srv->o.allow_host_network) {
		http_reply_error(r, 403, "permission_denied",
				 "network.mode 'host': this server does not give sandboxes the host's network (capsa "
				 "serve --allow-host-network)");
		return false;
	}
	return true;
}

static void create_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d, lim;
	jdec_init(&d, body, "");
	struct capsa_sandbox_opts o = { 0 };
	struct capsa_template t = { 0 };
	char **cmd = NULL, **entry = NULL, **env = NULL, **labels = NULL;
	_cleanup_free_ char *id = NULL;
	o.image = jdec_str(&d, "image", false);
	const char *tmpl = jdec_str(&d, "template", false);
	o.name = jdec_str(&d, "name", false);
	cmd = jdec_strv(&d, "command", 4096);
	entry = jdec_strv(&d, "entrypoint", 4096);
	bool image_cmd = jdec_bool(&d, "useImageCommand", false);
	env = jdec_env(&d, "env", 4096);
	o.workdir = jdec_str(&d, "workdir", false);
	o.user = jdec_str(&d, "user", false);
	o.hostname = jdec_str(&d, "hostname", false);
	labels = jdec_labels(&d, "labels", 256);
	o.timeout_ms = jdec_duration_ms(&d, "timeout", 0);
	o.idle_timeout_ms = jdec_duration_ms(&d, "idleTimeout", 0);
	o.auto_remove = jdec_bool(&d, "autoRemove", false);
	o.readonly = jdec_bool(&d, "readOnly", false);
	const char *userns = jdec_str(&d, "userns", false);
	json_t *limits = jdec_obj(&d, "limits");
	jdec_init(&lim, limits, "limits.");
	o.memory = jdec_size(&lim, "memory", -1);
	o.cpus_milli = jdec_cpus(&lim, "cpus", -1);
	o.pids = jdec_int(&lim, "pids", 0, 0, 1 << 22);
	o.disk = jdec_size(&lim, "disk", -1);
	if (!decode_network(r, &d, &o))
		goto out;
	if (!jdec_finish(&d, true) || !jdec_finish(&lim, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.failed ? d.err : lim.err);
		goto out;
	}
	if (userns && strcmp(userns, "auto") != 0 && strcmp(userns, "host") != 0) {
		http_reply_error(r, 400, "invalid_argument", "userns: '%.64s' is neither auto nor host", userns);
		goto out;
	}
	o.userns = userns && strcmp(userns, "host") == 0 ? CAPSA_USERNS_HOST : CAPSA_USERNS_AUTO;
	if (!o.image == !tmpl) {
		http_reply_error(r, 400, "invalid_argument", "give either 'image' or 'template'");
		goto out;
	}
	if (tmpl) {
		struct capsa_error *err = NULL;
		if (capsa_template_get(ctx, tmpl, &t, &err) < 0) {
			http_reply_capsa_error(r, err);
			goto out;
		}
		o.image = t.image;
		if (o.memory < 0)
			o.memory = t.memory;
		if (o.cpus_milli < 0)
			o.cpus_milli = t.cpus_milli;
		if (o.disk < 0)
			o.disk = t.disk;
	}
	if (o.memory < 0)
		o.memory = r->srv->o.default_memory;
	if (o.cpus_milli < 0)
		o.cpus_milli = 0;
	if (o.disk < 0)
		o.disk = r->srv->o.default_disk;
	if (entry) {
		o.entrypoint = entry;
		o.entrypoint_set = true;
	}
	if (cmd) {
		o.cmd = cmd;
	} else if (!image_cmd && !entry) {
		/* an API sandbox is something to exec into: keep it alive */
		o.cmd = api_keepalive_cmd;
		o.entrypoint_set = true;
	}
	o.env = env;
	o.labels = labels;
	if (api_create_sandbox(r, ctx, &o, &id) == 0)
		reply_inspect(r, ctx, id, 201);
out:
	capsa_template_release(&t);
	strv_free(cmd);
	strv_free(entry);
	strv_free(env);
	strv_free(labels);
	strv_free(o.allow_out);
	strv_free(o.deny_out);
	json_decref(body);
}

static bool label_match(json_t *labels, const char *want)
{
	const char *eq = strchr(want, '=');
	_cleanup_free_ char *k = eq ? xstrndup(want, (size_t)(eq - want)) : xstrdup(want);
	json_t *v = json_object_get(labels, k);
	if (!v)
		return false;
	return !eq || (json_is_string(v) && strcmp(json_string_value(v), eq + 1) == 0);
}

static void list_sandboxes(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	bool all = http_query_bool(r, "all", false, &ok);
	if (!ok) {
		http_reply_error(r, 400, "invalid_argument", "query 'all': expected true or false");
		return;
	}
	const char *state = http_query(r, "state");
	const char *image = http_query(r, "image");
	const char *name = http_query(r, "name");
	struct capsa_error *err = NULL;
	_cleanup_free_ char *s = capsa_sandbox_list(ctx, all || (state && strcmp(state, "exited") == 0), &err);
	if (!s) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *arr = json_loads(s, 0, NULL);
	json_t *out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		if (state && strcmp(state, json_string_value(json_object_get(e, "state"))) != 0)
			continue;
		if (image && strcmp(image, json_string_value(json_object_get(e, "image"))) != 0)
			continue;
		if (name && !str_has_prefix(json_string_value(json_object_get(e, "name")), name))
			continue;
		bool keep = true;
		for (size_t q = 0; q < r->n_query && keep; q++)
			if (strcmp(r->query[q].key, "label") == 0)
				keep = label_match(json_object_get(e, "labels"), r->query[q].value);
		if (keep)
			json_array_append(out, e);
	}
	json_decref(arr);
	http_reply_json(r, 200, out);
}

static void get_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	reply_inspect(r, ctx, r->param[0], 200);
}

static void delete_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	bool force = http_query_bool(r, "force", false, &ok);
	if (!ok) {
		http_reply_error(r, 400, "invalid_argument", "query 'force': expected true or false");
		return;
	}
	struct capsa_error *err = NULL;
	if (capsa_sandbox_remove(ctx, r->param[0], force, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	http_reply_empty(r, 204);
}

/* Actions with an optional JSON body of known fields. */
static json_t *action_body(struct http_req *r, struct jdec *d)
{
	json_t *body = http_json_body(r, false);
	if (body)
		jdec_init(d, body, "");
	return body;
}

static bool action_ok(struct http_req *r, struct jdec *d)
{
	if (jdec_finish(d, true))
		return true;
	http_reply_error(r, 400, "invalid_argument", "%s", d->err);
	return false;
}

static void stop_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	struct jdec d;
	json_t *body = action_body(r, &d);
	if (!body)
		return;
	int64_t t = jdec_duration_ms(&d, "timeout", 10000);
	if (action_ok(r, &d)) {
		struct capsa_error *err = NULL;
		if (capsa_sandbox_stop(ctx, r->param[0], t, &err) < 0)
			http_reply_capsa_error(r, err);
		else
			reply_inspect(r, ctx, r->param[0], 200);
	}
	json_decref(body);
}

static void kill_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	struct jdec d;
	json_t *body = action_body(r, &d);
	if (!body)
		return;
	const char *s = jdec_str(&d, "signal", false);
	int sig = SIGKILL;
	if (action_ok(r, &d)) {
		struct capsa_error *err = NULL;
		if (s && parse_signal(s, &sig, &err) < 0)
			http_reply_error(r, 400, "invalid_argument", "field 'signal': %s", err->msg);
		else if (capsa_sandbox_kill(ctx, r->param[0], sig, &err) < 0)
			http_reply_capsa_error(r, err);
		else
			http_reply_empty(r, 204);
		capsa_error_free(s ? err : NULL);
	}
	json_decref(body);
}

static void pause_common(struct http_req *r, struct capsa_ctx *ctx, bool pause)
{
	struct capsa_error *err = NULL;
	if (capsa_sandbox_pause(ctx, r->param[0], pause, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		reply_inspect(r, ctx, r->param[0], 200);
}

static void pause_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	pause_common(r, ctx, true);
}

static void unpause_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	pause_common(r, ctx, false);
}

static void timeout_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	struct jdec d;
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	jdec_init(&d, body, "");
	if (!jdec_has(&d, "timeout"))
		jdec_fail(&d, "field 'timeout' is required");
	int64_t t = jdec_duration_ms(&d, "timeout", 0);
	if (action_ok(r, &d)) {
		struct capsa_error *err = NULL;
		if (capsa_sandbox_update(ctx, r->param[0], &(struct capsa_sandbox_update){ .timeout_ms = t, .idle_timeout_ms = -1 }, &err) < 0)
			http_reply_capsa_error(r, err);
		else
			reply_inspect(r, ctx, r->param[0], 200);
	}
	json_decref(body);
}

/* {allowOut, denyOut} replace the running sandbox's egress rules; an
 * omitted list is emptied. */
static void set_egress(struct http_req *r, struct capsa_ctx *ctx)
{
	struct jdec d;
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	jdec_init(&d, body, "");
	char **allow = jdec_strv(&d, "allowOut", MAX_EGRESS_RULES);
	char **deny = jdec_strv(&d, "denyOut", MAX_EGRESS_RULES);
	if (action_ok(r, &d)) {
		struct capsa_error *err = NULL;
		if (capsa_sandbox_set_egress(ctx, r->param[0], allow, deny, &err) < 0)
			http_reply_capsa_error(r, err);
		else
			reply_inspect(r, ctx, r->param[0], 200);
	}
	strv_free(allow);
	strv_free(deny);
	json_decref(body);
}

static void wait_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_exit e;
	struct capsa_error *err = NULL;
	if (capsa_sandbox_wait(ctx, r->param[0], &e, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *j = json_pack("{s:i, s:s}", "exitCode", e.exit_code, "reason", e.reason);
	if (e.message[0])
		json_object_set_new(j, "message", json_string(e.message));
	http_reply_json(r, 200, j);
}

/* --- logs -------------------------------------------------------------- */

struct logs_job {
	struct stream *s;
	char *id;
	struct capsa_logs_opts o;
	int out[2], err[2];
	struct capsa_ctx *ctx;
};

static void *logs_reader(void *p)
{
	struct logs_job *j = p;
	capsa_sandbox_logs(j->ctx, j->id, &j->o, j->out[1], j->err[1], NULL);
	close(j->out[1]);
	close(j->err[1]);
	return NULL;
}

/* One NDJSON object per line of output, read from the two pipes the
 * library writes to. */
static void logs_pump(void *arg, struct capsa_ctx *ctx)
{
	struct logs_job *j = arg;
	j->ctx = ctx;
	pthread_t t;
	struct buf line[2] = { BUF_INIT, BUF_INIT };
	int fds[2] = { j->out[0], j->err[0] };
	int open_n = 2;
	if (pthread_create(&t, NULL, logs_reader, j) != 0) {
		close(j->out[1]);
		close(j->err[1]);
		close(fds[0]);
		close(fds[1]);
		goto done;
	}
	while (open_n > 0) {
		struct pollfd p[2] = { { .fd = fds[0], .events = POLLIN }, { .fd = fds[1], .events = POLLIN } };
		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			break;
		if (stream_gone(j->s))
			break;
		for (int c = 0; c < 2; c++) {
			if (fds[c] < 0 || !(p[c].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char chunk[16384];
			ssize_t n = read(fds[c], chunk, sizeof(chunk));
			bool eof = n <= 0;
			if (n > 0)
				buf_append(&line[c], chunk, (size_t)n);
			/* whole lines; a line longer than 64 KiB goes out in pieces */
			for (;;) {
				char *nl = line[c].len ? memchr(line[c].data, '\n', line[c].len) : NULL;
				size_t take = nl ? (size_t)(nl - line[c].data) : line[c].len;
				if (!nl && !eof && line[c].len < 65536)
					break;
				if (!nl && take == 0)
					break;
				if (api_emit_line(j->s, c ? "stderr" : "stdout", line[c].data, take) < 0)
					break;
				buf_consume(&line[c], take + (nl ? 1 : 0));
			}
			if (eof) {
				close(fds[c]);
				fds[c] = -1;
				open_n--;
			}
		}
	}
	for (int c = 0; c < 2; c++) {
		if (fds[c] >= 0)
			close(fds[c]); /* the library's writes fail with EPIPE: it returns */
		buf_release(&line[c]);
	}
	pthread_join(t, NULL);
done:
	stream_close(j->s, false);
	stream_unref(j->s);
	free(j->id);
	free(j);
}

static void get_logs(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	struct logs_job *j = xcalloc(1, sizeof(*j));
	j->o.follow = http_query_bool(r, "follow", false, &ok);
	j->o.timestamps = http_query_bool(r, "timestamps", false, &ok);
	j->o.stdout_ = http_query_bool(r, "stdout", true, &ok);
	j->o.stderr_ = http_query_bool(r, "stderr", true, &ok);
	j->o.tail = -1;
	const char *tail = http_query(r, "tail");
	if (tail && strcmp(tail, "all") != 0 && parse_int64(tail, 0, INT32_MAX, &j->o.tail) < 0)
		ok = false;
	const char *since = http_query(r, "since"), *until = http_query(r, "until");
	if (since && parse_rfc3339(since, &j->o.since_ms) < 0)
		ok = false;
	if (until && parse_rfc3339(until, &j->o.until_ms) < 0)
		ok = false;
	if (!ok) {
		free(j);
		http_reply_error(r, 400, "invalid_argument",
				 "query: follow/timestamps/stdout/stderr take true or false, tail a count or 'all', "
				 "since/until RFC 3339 times");
		return;
	}
	struct capsa_error *err = NULL;
	j->id = capsa_sandbox_resolve(ctx, r->param[0], &err);
	if (!j->id) {
		free(j);
		http_reply_capsa_error(r, err);
		return;
	}
	if (pipe2(j->out, O_CLOEXEC) < 0 || pipe2(j->err, O_CLOEXEC) < 0) {
		http_reply_error(r, 500, "internal", "pipe: %s", strerror(errno));
		free(j->id);
		free(j);
		return;
	}
	j->s = stream_new(r->srv, 0);
	stream_set_keepalive(j->s, 15000, "{\"stream\":\"keepalive\"}\n", 23);
	http_reply_stream(r, 200, "application/x-ndjson", j->s);
	if (server_spawn(r->srv, logs_pump, j, &err) < 0) {
		capsa_error_free(err);
		close(j->out[0]);
		close(j->out[1]);
		close(j->err[0]);
		close(j->err[1]);
		stream_close(j->s, true);
		stream_unref(j->s);
		free(j->id);
		free(j);
	}
}

/* --- images ------------------------------------------------------------ */

static void list_images(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_image_info *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_image_list(ctx, &v, &n, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char ts[40];
		format_rfc3339(v[i].imported_at, ts, sizeof(ts));
		json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:I, s:I}", "id", v[i].id, "digest",
				      v[i].manifest_digest, "names", json_strv(v[i].names), "platform", v[i].platform,
				      "imported", ts, "size", (json_int_t)v[i].size, "unpackedSize",
				      (json_int_t)v[i].unpacked_size, "layers", (json_int_t)v[i].n_layers, "sandboxes",
				      (json_int_t)v[i].n_sandboxes);
		if (v[i].created)
			json_object_set_new(o, "created", json_string(v[i].created));
		json_array_append_new(a, o);
	}
	capsa_image_list_free(v, n);
	http_reply_json(r, 200, a);
}

static void get_image(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	char *s = capsa_image_inspect(ctx, r->rest, &err);
	reply_library_json(r, 200, s, err);
}

static void delete_image(struct http_req *r, struct capsa_ctx *ctx)
{
	bool ok = true;
	bool force = http_query_bool(r, "force", false, &ok);
	if (!ok) {
		http_reply_error(r, 400, "invalid_argument", "query 'force': expected true or false");
		return;
	}
	struct capsa_image_rm_result res = { 0 };
	struct capsa_error *err = NULL;
	if (capsa_image_rm(ctx, r->rest, force, &res, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	http_reply_json(r, 200, json_pack("{s:o, s:o}", "untagged", json_strv(res.untagged), "deleted",
					  json_strv(res.deleted)));
	capsa_image_rm_result_release(&res);
}

static void import_image(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_image_import_opts o = { 0 };
	o.name = http_query(r, "name");
	o.platform = http_query(r, "platform");
	if (r->body_len == 0) {
		http_reply_error(r, 400, "invalid_argument", "the request body must be the image archive");
		return;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->spool_fd);
	struct capsa_image_import_result res = { 0 };
	struct capsa_error *err = NULL;
	if (capsa_image_import(ctx, path, &o, &res, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	http_reply_json(r, 201, json_pack("{s:s, s:o, s:o}", "format", res.format, "ids", json_strv(res.ids), "names",
					  json_strv(res.names)));
	capsa_image_import_result_release(&res);
}

struct pull_job {
	struct stream *s;
	char *ref, *platform;
	char **insecure;
	volatile int cancel;
};

static void pull_progress(const struct capsa_pull_progress *p, void *arg)
{
	struct pull_job *j = arg;
	static const char *const names[] = { "resolved", "exists", "start", "progress", "retry", "done", "unpacking" };
	json_t *o = json_pack("{s:s}", "type", (size_t)p->event < ARRAY_SIZE(names) ? names[p->event] : "progress");
	if (p->digest)
		json_object_set_new(o, "digest", json_string(p->digest));
	if (p->kind)
		json_object_set_new(o, "kind", json_string(p->kind));
	if (p->platform)
		json_object_set_new(o, "platform", json_string(p->platform));
	json_object_set_new(o, "index", json_integer(p->index));
	json_object_set_new(o, "count", json_integer(p->count));
	json_object_set_new(o, "done", json_integer(p->done));
	json_object_set_new(o, "total", json_integer(p->total));
	if (api_emit_json(j->s, o, true) < 0)
		j->cancel = 1; /* the client left: stop, keeping partial blobs */
}

static void pull_run(void *arg, struct capsa_ctx *ctx)
{
	struct pull_job *j = arg;
	struct capsa_pull_opts o = { .platform = j->platform, .insecure = (const char *const *)j->insecure,
				     .progress = pull_progress, .progress_arg = j, .cancel = &j->cancel };
	struct capsa_pull_result res = { 0 };
	struct capsa_error *err = NULL;
	if (capsa_image_pull(ctx, j->ref, &o, &res, &err) < 0) {
		const char *word;
		unsigned status = http_status_for_errno(err->code, &word);
		api_emit_json(j->s, json_pack("{s:s, s:i, s:s, s:s}", "type", "error", "code", (int)status, "error", word,
					      "message", err->msg),
			      true);
		capsa_error_free(err);
	} else {
		api_emit_json(j->s, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "pulled", "ref", res.ref, "digest",
					      res.digest, "id", res.image_id, "platform", res.platform),
			      true);
		capsa_pull_result_release(&res);
	}
	stream_close(j->s, false);
	stream_unref(j->s);
	free(j->ref);
	free(j->platform);
	strv_free(j->insecure);
	free(j);
}

static void pull_image(struct http_req *r, struct capsa_ctx *ctx)
{
	(void)ctx;
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *ref = jdec_str(&d, "ref", true);
	const char *platform = jdec_str(&d, "platform", false);
	char **insecure = jdec_strv(&d, "insecureRegistries", 64);
	if (!jdec_finish(&d, true)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		strv_free(insecure);
		json_decref(body);
		return;
	}
	struct pull_job *j = xcalloc(1, sizeof(*j));
	j->ref = xstrdup(ref);
	j->platform = platform ? xstrdup(platform) : NULL;
	j->insecure = insecure;
	json_decref(body);
	j->s = stream_new(r->srv, 0);
	stream_set_keepalive(j->s, 15000, "{\"type\":\"keepalive\"}\n", 21);
	http_reply_stream(r, 200, "application/x-ndjson", j->s);
	struct capsa_error *err = NULL;
	if (server_spawn(r->srv, pull_run, j, &err) < 0) {
		capsa_error_free(err);
		stream_close(j->s, true);
		stream_unref(j->s);
		free(j->ref);
		free(j->platform);
		strv_free(j->insecure);
		free(j);
	}
}

/* --- templates --------------------------------------------------------- */

json_t *api_template_json(const struct capsa_template *t)
{
	json_t *o = json_pack("{s:s, s:s, s:f, s:I, s:I, s:b}", "name", t->name, "image", t->image, "cpus",
			      (double)t->cpus_milli / 1000, "memory", (json_int_t)t->memory, "disk", (json_int_t)t->disk,
			      "builtin", t->builtin);
	if (t->created_at) {
		char ts[40];
		format_rfc3339(t->created_at, ts, sizeof(ts));
		json_object_set_new(o, "created", json_string(ts));
	}
	return o;
}

static void list_templates(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_template *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_template_list(ctx, &v, &n, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, api_template_json(&v[i]));
	capsa_template_list_free(v, n);
	http_reply_json(r, 200, a);
}

static void get_template(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_template t;
	struct capsa_error *err = NULL;
	if (capsa_template_get(ctx, r->param[0], &t, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	http_reply_json(r, 200, api_template_json(&t));
	capsa_template_release(&t);
}

static void create_template(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	struct capsa_template t = { 0 };
	t.name = (char *)jdec_str(&d, "name", true);
	t.image = (char *)jdec_str(&d, "image", true);
	t.cpus_milli = jdec_cpus(&d, "cpus", 0);
	t.memory = jdec_size(&d, "memory", CAPSA_TEMPLATE_DEFAULT_MEMORY);
	t.disk = jdec_size(&d, "disk", 0);
	struct capsa_error *err = NULL;
	if (!jdec_finish(&d, true))
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
	else if (capsa_template_create(ctx, &t, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_json(r, 201, api_template_json(&t));
	json_decref(body);
}

static void delete_template(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	if (capsa_template_remove(ctx, r->param[0], &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
}

/* --- networks ---------------------------------------------------------- */

static void list_networks(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	char *s = capsa_network_list(ctx, &err);
	reply_library_json(r, 200, s, err);
}

static void get_network(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	char *s = capsa_network_inspect(ctx, r->param[0], &err);
	reply_library_json(r, 200, s, err);
}

static void create_network(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	struct capsa_network_opts o = { 0 };
	o.name = jdec_str(&d, "name", true);
	o.subnet = jdec_str(&d, "subnet", false);
	o.labels = jdec_labels(&d, "labels", 256);
	struct capsa_error *err = NULL;
	char *made;
	if (!jdec_finish(&d, true))
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
	else if (capsa_network_create(ctx, &o, &err) < 0)
		http_reply_capsa_error(r, err);
	else {
		made = capsa_network_inspect(ctx, o.name, &err);
		reply_library_json(r, 201, made, err);
	}
	strv_free(o.labels);
	json_decref(body);
}

static void delete_network(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	if (capsa_network_remove(ctx, r->param[0], &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
}

/* --- server ------------------------------------------------------------ */

static void get_version(struct http_req *r, struct capsa_ctx *ctx)
{
	(void)ctx;
	http_reply_json(r, 200, json_pack("{s:s, s:s}", "version", capsa_version(), "api", "v1"));
}

static void get_ledger(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_ledger u;
	struct capsa_error *err = NULL;
	if (capsa_ledger_usage(ctx, &u, &err) < 0) {
		http_reply_capsa_error(r, err);
		return;
	}
	const struct capsa_capacity *c = &r->srv->capacity;
	http_reply_json(r, 200,
			json_pack("{s:{s:f, s:I, s:I, s:I}, s:{s:f, s:I, s:I}, s:I}", "capacity", "cpus",
				  (double)c->cpus_milli / 1000, "memory", (json_int_t)c->memory, "disk",
				  (json_int_t)c->disk, "minFreeDisk", (json_int_t)c->min_free_disk, "reserved", "cpus",
				  (double)u.cpus_milli / 1000, "memory", (json_int_t)u.memory, "disk",
				  (json_int_t)u.disk, "sandboxes", (json_int_t)u.sandboxes));
}

static void get_metrics(struct http_req *r, struct capsa_ctx *ctx)
{
	struct buf b = BUF_INIT;
	struct capsa_error *err = NULL;
	if (metrics_render(&r->srv->metrics, ctx, &r->srv->capacity, &b, &err) < 0) {
		buf_release(&b);
		http_reply_capsa_error(r, err);
		return;
	}
	http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
	buf_release(&b);
}

const struct route native_routes[] = {
	{ "GET", "/v1/version", get_version, BODY_NONE, NULL },
	{ "GET", "/v1/ledger", get_ledger, BODY_NONE, NULL },
	{ "GET", "/metrics", get_metrics, BODY_NONE, NULL },
	{ "POST", "/v1/sandboxes", create_sandbox, BODY_JSON, "create" },
	{ "GET", "/v1/sandboxes", list_sandboxes, BODY_NONE, NULL },
	{ "GET", "/v1/sandboxes/{}", get_sandbox, BODY_NONE, NULL },
	{ "DELETE", "/v1/sandboxes/{}", delete_sandbox, BODY_NONE, NULL },
	{ "POST", "/v1/sandboxes/{}/stop", stop_sandbox, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/kill", kill_sandbox, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/pause", pause_sandbox, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/unpause", unpause_sandbox, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/timeout", timeout_sandbox, BODY_JSON, NULL },
	{ "POST", "/v1/sandboxes/{}/wait", wait_sandbox, BODY_JSON, NULL },
	{ "PUT", "/v1/sandboxes/{}/network", set_egress, BODY_JSON, NULL },
	{ "GET", "/v1/sandboxes/{}/logs", get_logs, BODY_NONE, NULL },
	{ "GET", "/v1/images", list_images, BODY_NONE, NULL },
	{ "POST", "/v1/images/pull", pull_image, BODY_JSON, NULL },
	{ "POST", "/v1/images/import", import_image, BODY_SPOOL, NULL },
	{ "GET", "/v1/images/{*}", get_image, BODY_NONE, NULL },
	{ "DELETE", "/v1/images/{*}", delete_image, BODY_NONE, NULL },
	{ "GET", "/v1/templates", list_templates, BODY_NONE, NULL },
	{ "POST", "/v1/templates", create_template, BODY_JSON, NULL },
	{ "GET", "/v1/templates/{}", get_template, BODY_NONE, NULL },
	{ "DELETE", "/v1/templates/{}", delete_template, BODY_NONE, NULL },
	{ "GET", "/v1/networks", list_networks, BODY_NONE, NULL },
	{ "POST", "/v1/networks", create_network, BODY_JSON, NULL },
	{ "GET", "/v1/networks/{}", get_network, BODY_NONE, NULL },
	{ "DELETE", "/v1/networks/{}", delete_network, BODY_NONE, NULL },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
