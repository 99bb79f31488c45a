/* api-e2b.c: the control plane of the E2B API (what the e2b SDK's
 * SandboxApi calls at E2B_API_URL), mapped onto capsa sandboxes.
 *
 * An E2B sandbox is a capsa sandbox made from a template (capsa/template.h)
 * whose main process keeps it alive, with the template name in the label
 * capsa.template, the caller's metadata as its other labels, and its
 * timeout as the maximum lifetime; it is removed when it ends (E2B has no
 * stopped sandboxes).  Bodies are decoded leniently, as E2B's API does
 * (the SDKs send fields capsa has no use for), except for features capsa
 * cannot honour, which are refused rather than ignored.
 *
 * Egress rules are E2B's (allowOut over denyOut) mapped onto capsa's
 * (capsa_egress_from_allow_wins) and applied by the library; what getInfo reports is derived
 * from the rules the sandbox has, so that it reads back what was set (in
 * the forms E2B documents) and stays true after any later change.
 */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "capsa/admission.h"
#include "capsa/network.h"
#include "capsa/sandbox.h"
#include "capsa/template.h"
#include "json.h"
#include "server.h"

#define LABEL_TEMPLATE "capsa.template"
#define LABEL_API "capsa.api"

const char e2b_envd_version[] = "0.5.7";

static json_t *inspect(struct capsa_ctx *ctx, const char *id, struct capsa_error **err)
{
	_cleanup_free_ char *s = capsa_sandbox_inspect(ctx, id, err);
	return s ? json_loads(s, 0, NULL) : NULL;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int host_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* The E2B view of a sandbox (ListedSandbox / SandboxDetail). */
static json_t *e2b_sandbox_json(struct server *srv, json_t *s)
{
	json_t *labels = json_object_get(s, "labels");
	json_t *cfg = json_object_get(s, "config");
	const char *tmpl = json_string_value(json_object_get(labels, LABEL_TEMPLATE));
	json_t *meta = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(labels, k, v) {
		if (!str_has_prefix(k, "capsa."))
			json_object_set(meta, k, v);
	}
	double cpus = json_number_value(json_object_get(cfg, "cpus"));
	int64_t mem = json_integer_value(json_object_get(cfg, "memory"));
	int64_t disk = json_integer_value(json_object_get(cfg, "disk"));
	const char *state = jstr(s, "state");
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:o, s:s, s:n}", "sandboxID", jstr(s, "id"),
			      "templateID", tmpl ? tmpl : jstr(s, "image"), "alias", tmpl ? tmpl : jstr(s, "image"),
			      "clientID", "capsa", "state", strcmp(state, "paused") == 0 ? "paused" : "running",
			      "cpuCount", cpus > 0 ? (int)(cpus + 0.999) : host_cpus(), "memoryMB",
			      (json_int_t)(mem > 0 ? mem >> 20 : (srv->capacity.memory >> 20)), "diskSizeMB",
			      (json_int_t)(disk >> 20), "metadata", meta, "envdVersion", e2b_envd_version, "domain");
	const char *started = json_string_value(json_object_get(s, "started"));
	json_object_set_new(o, "startedAt", json_string(started ? started : jstr(s, "created")));
	const char *deadline = json_string_value(json_object_get(s, "deadline"));
	if (deadline)
		json_object_set_new(o, "endAt", json_string(deadline));
	json_t *net = json_object_get(s, "network");
	char *text = net ? json_dumps(net, JSON_COMPACT) : NULL;
	char *view = capsa_egress_to_allow_wins(text);
	json_t *egress = view ? json_loads(view, 0, NULL) : NULL;
	if (egress)
		json_object_update_new(o, egress);
	free(text);
	free(view);
	return o;
}

/* The body create and connect return. */
static json_t *e2b_created_json(struct server *srv, json_t *s)
{
	const char *id = jstr(s, "id");
	const char *tmpl = json_string_value(json_object_get(json_object_get(s, "labels"), LABEL_TEMPLATE));
	_cleanup_free_ char *tok = server_sandbox_token(srv, id);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:n}", "sandboxID", id, "templateID",
			 tmpl ? tmpl : jstr(s, "image"), "alias", tmpl ? tmpl : jstr(s, "image"), "clientID", "capsa",
			 "envdVersion", e2b_envd_version, "envdAccessToken", tok, "trafficAccessToken", tok, "domain");
}

/* E2B sandboxes are the ones that have not ended: an ended one is gone. */
static json_t *live_sandbox(struct http_req *r, struct capsa_ctx *ctx, const char *ref)
{
	struct capsa_error *err = NULL;
	json_t *s = inspect(ctx, ref, &err);
	if (!s) {
		http_reply_capsa_error(r, err);
		return NULL;
	}
	if (strcmp(jstr(s, "state"), "exited") == 0) {
		json_decref(s);
		http_reply_error(r, 404, "not_found", "sandbox %s has ended", ref);
		return NULL;
	}
	return s;
}

static int64_t timeout_seconds(struct jdec *d, const char *key, int64_t def)
{
	json_t *v = json_object_get(d->obj, key);
	if (!v || json_is_null(v))
		return def;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 366LL * 86400) {
		jdec_fail(d, "field '%s': expected a number of seconds", key);
		return def;
	}
	return json_integer_value(v) * 1000;
}

/* What an E2B body asks of the sandbox's network: create's network object
 * with allow_internet_access beside it, or an update's body (prefix ""). */
struct e2b_egress {
	char **allow_out, **deny_out;
	bool no_internet;
};

static void e2b_egress_release(struct e2b_egress *e)
{
	strv_free(e->allow_out);
	strv_free(e->deny_out);
	memset(e, 0, sizeof(*e));
}

static bool nonempty(json_t *v)
{
	return v && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0) &&
	       !(json_is_array(v) && json_array_size(v) == 0);
}

/* Reads the fields into e; a feature capsa does not have fails d. */
static void decode_egress(struct jdec *d, json_t *net, const char *prefix, bool create, struct e2b_egress *e)
{
	struct jdec nd;
	jdec_init(&nd, net, prefix);
	e->no_internet = !jdec_bool(d, "allow_internet_access", true);
	e->allow_out = jdec_strv(&nd, "allowOut", CAPSA_EGRESS_MAX_RULES);
	e->deny_out = jdec_strv(&nd, "denyOut", CAPSA_EGRESS_MAX_RULES);
	if (nonempty(json_object_get(net, "rules")))
		jdec_fail(&nd, "%srules: request transforms are not supported by capsa yet (a later issue)", prefix);
	if (nonempty(json_object_get(net, "egressProxy")))
		jdec_fail(&nd, "%segressProxy: an egress proxy is not supported by capsa yet (a later issue)", prefix);
	if (create && jdec_bool(&nd, "allowPublicTraffic", false))
		jdec_fail(&nd, "%sallowPublicTraffic: capsa's sandbox URLs always need the sandbox's access token "
			       "(E2B's default); public sandbox URLs are not supported",
			  prefix);
	if (create && nonempty(json_object_get(net, "maskRequestHost")))
		jdec_fail(&nd, "%smaskRequestHost: capsa passes the Host header of requests to sandbox ports "
			       "unchanged; masking it is not supported",
			  prefix);
	if (create && nonempty(json_object_get(net, "httpsPorts")))
		jdec_fail(&nd, "%shttpsPorts: capsa reaches sandbox ports over plain HTTP only", prefix);
	if (nd.failed)
		jdec_fail(d, "%s", nd.err);
}

/* capsa's rules for e (allow and deny NULL: none to apply); -1 with the
 * reply sent.  has_network: whether the sandbox has (or gets) a network
 * of capsa's; without one nothing is reachable, which honours any denial
 * and no allowance. */
static int egress_rules(struct http_req *r, const struct e2b_egress *e, bool has_network, const char *what,
			char ***allow, char ***deny)
{
	struct capsa_error *err = NULL;
	*allow = *deny = NULL;
	if (!has_network && e->allow_out && *e->allow_out) {
		http_reply_error(r, 400, "invalid_argument",
				 "network.allowOut: %s no network (loopback only): nothing outside can be allowed", what);
		return -1;
	}
	if (capsa_egress_from_allow_wins(e->allow_out, e->deny_out, e->no_internet, allow, deny, &err) < 0) {
		http_reply_capsa_error(r, err);
		return -1;
	}
	if (!has_network) {
		/* checked, and honoured by having nothing to apply them to */
		strv_free(*allow);
		strv_free(*deny);
		*allow = *deny = NULL;
	}
	return 0;
}

static void create_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct server *srv = r->srv;
	struct jdec d;
	jdec_init(&d, body, "");
	const char *tmpl = jdec_str(&d, "templateID", true);
	int64_t timeout = timeout_seconds(&d, "timeout", srv->o.e2b_default_timeout_ms);
	char **env = jdec_labels(&d, "envVars", 4096);
	char **meta = jdec_labels(&d, "metadata", 256);
	struct e2b_egress eg = { 0 };
	decode_egress(&d, jdec_obj(&d, "network"), "network.", true, &eg);
	if (json_is_true(json_object_get(body, "autoPause")))
		jdec_fail(&d, "autoPause: capsa ends a sandbox when its timeout expires; pausing instead is not "
			      "supported");
	static const char *const refused[] = { "mcp", "volumeMounts", "iam", "autoResume" };
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (nonempty(json_object_get(body, refused[i])))
			jdec_fail(&d, "%s: not supported by capsa", refused[i]);
	for (char **m = meta; m && *m; m++)
		if (str_has_prefix(*m, "capsa."))
			jdec_fail(&d, "metadata key '%.100s': the capsa. prefix is reserved", *m);
	struct capsa_template t = { 0 };
	struct capsa_error *err = NULL;
	char **labels = NULL;
	_cleanup_free_ char *id = NULL;
	json_t *s = NULL;
	struct capsa_sandbox_opts o = { 0 };
	char **allow = NULL, **deny = NULL;
	if (!jdec_finish(&d, false)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		goto out;
	}
	/* the server's sandboxes have the default network; with none (as
	 * CAPSA_DEFAULT_NETWORK may say) allow_internet_access true, which
	 * SDKs send unasked, gets loopback only and getInfo says so */
	if (egress_rules(r, &eg, strcmp(capsa_network_default(ctx), "none") != 0, "this server's sandboxes have",
			 &allow, &deny) < 0)
		goto out;
	if (capsa_template_get(ctx, tmpl, &t, &err) < 0) {
		http_reply_capsa_error(r, err);
		goto out;
	}
	labels = strv_dup(meta);
	labels = strv_push_take(labels, xasprintf(LABEL_TEMPLATE "=%s", tmpl));
	labels = strv_push(labels, LABEL_API "=e2b");
	o.image = t.image;
	o.cmd = api_keepalive_cmd;
	o.entrypoint_set = true;
	o.env = env;
	o.labels = labels;
	o.memory = t.memory;
	o.cpus_milli = t.cpus_milli;
	o.disk = t.disk > 0 ? t.disk : r->srv->o.default_disk;
	o.timeout_ms = timeout;
	o.auto_remove = true;
	o.allow_out = allow && *allow ? allow : NULL;
	o.deny_out = deny && *deny ? deny : NULL;
	if (api_create_sandbox(r, ctx, &o, &id) < 0)
		goto out;
	s = inspect(ctx, id, &err);
	if (!s) {
		http_reply_capsa_error(r, err);
		goto out;
	}
	http_reply_json(r, 201, e2b_created_json(srv, s));
out:
	json_decref(s);
	capsa_template_release(&t);
	strv_free(env);
	strv_free(meta);
	strv_free(labels);
	strv_free(allow);
	strv_free(deny);
	e2b_egress_release(&eg);
	json_decref(body);
}

/* SandboxNetworkUpdateConfig: replaces the rules; omitted fields clear
 * theirs. */
static void update_network(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, false);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	struct e2b_egress eg = { 0 };
	decode_egress(&d, body, "", false, &eg);
	char **allow = NULL, **deny = NULL;
	json_t *s = NULL;
	struct capsa_error *err = NULL;
	_cleanup_free_ char *what = NULL;
	const char *mode = NULL;
	bool has_network = false;
	if (!jdec_finish(&d, false)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		goto out;
	}
	s = live_sandbox(r, ctx, r->param[0]);
	if (!s)
		goto out;
	mode = json_string_value(json_object_get(json_object_get(s, "network"), "mode"));
	what = xasprintf("sandbox %s has", jstr(s, "name"));
	has_network = mode && strcmp(mode, "none") != 0;
	if (egress_rules(r, &eg, has_network, what, &allow, &deny) < 0)
		goto out;
	if (has_network && capsa_sandbox_set_egress(ctx, jstr(s, "id"), allow, deny, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
out:
	json_decref(s);
	strv_free(allow);
	strv_free(deny);
	e2b_egress_release(&eg);
	json_decref(body);
}

static void info(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *s = live_sandbox(r, ctx, r->param[0]);
	if (!s)
		return;
	http_reply_json(r, 200, e2b_sandbox_json(r->srv, s));
	json_decref(s);
}

static void kill_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	struct capsa_error *err = NULL;
	if (capsa_sandbox_remove(ctx, r->param[0], true, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
}

static void set_timeout(struct http_req *r, struct capsa_ctx *ctx, int64_t ms, unsigned ok_status)
{
	struct capsa_error *err = NULL;
	if (capsa_sandbox_update(ctx, r->param[0], &(struct capsa_sandbox_update){ .timeout_ms = ms, .idle_timeout_ms = -1 }, &err) < 0)
		http_reply_capsa_error(r, err);
	else if (ok_status)
		http_reply_empty(r, ok_status);
}

static void timeout_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, true);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	if (!jdec_has(&d, "timeout"))
		jdec_fail(&d, "field 'timeout' is required");
	int64_t ms = timeout_seconds(&d, "timeout", 0);
	if (!jdec_finish(&d, false))
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
	else
		set_timeout(r, ctx, ms, 204);
	json_decref(body);
}

static void refresh(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *body = http_json_body(r, false);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	int64_t ms = timeout_seconds(&d, "duration", r->srv->o.e2b_default_timeout_ms);
	if (!jdec_finish(&d, false))
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
	else
		set_timeout(r, ctx, ms, 204);
	json_decref(body);
}

static void pause_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *s = live_sandbox(r, ctx, r->param[0]);
	if (!s)
		return;
	struct capsa_error *err = NULL;
	if (strcmp(jstr(s, "state"), "running") != 0)
		http_reply_error(r, 409, "conflict", "sandbox %s is %s, not running", r->param[0], jstr(s, "state"));
	else if (capsa_sandbox_pause(ctx, r->param[0], true, &err) < 0)
		http_reply_capsa_error(r, err);
	else
		http_reply_empty(r, 204);
	json_decref(s);
}

/* connect (and the older resume): resumes a paused sandbox (201) or
 * answers for a running one (200); a timeout extends its life to at least
 * that long from now. */
static void connect_common(struct http_req *r, struct capsa_ctx *ctx, bool resume_only)
{
	json_t *body = http_json_body(r, false);
	if (!body)
		return;
	struct jdec d;
	jdec_init(&d, body, "");
	int64_t ms = timeout_seconds(&d, "timeout", 0);
	json_t *s = NULL;
	bool paused = false;
	struct capsa_error *err = NULL;
	if (!jdec_finish(&d, false)) {
		http_reply_error(r, 400, "invalid_argument", "%s", d.err);
		goto out;
	}
	s = live_sandbox(r, ctx, r->param[0]);
	if (!s)
		goto out;
	paused = strcmp(jstr(s, "state"), "paused") == 0;
	if (!paused && resume_only) {
		http_reply_error(r, 409, "conflict", "sandbox %s is already running", r->param[0]);
		goto out;
	}
	if (paused && capsa_sandbox_pause(ctx, r->param[0], false, &err) < 0) {
		http_reply_capsa_error(r, err);
		goto out;
	}
	if (ms > 0) {
		int64_t until = 0;
		const char *deadline = json_string_value(json_object_get(s, "deadline"));
		if (!deadline || (parse_rfc3339(deadline, &until) == 0 && until < now_ms() + ms)) {
			if (capsa_sandbox_update(ctx, r->param[0], &(struct capsa_sandbox_update){ .timeout_ms = ms, .idle_timeout_ms = -1 }, &err) < 0) {
				http_reply_capsa_error(r, err);
				goto out;
			}
		}
	}
	json_decref(s);
	s = inspect(ctx, r->param[0], &err);
	if (!s) {
		http_reply_capsa_error(r, err);
		goto out;
	}
	http_reply_json(r, paused ? 201 : 200, e2b_created_json(r->srv, s));
out:
	json_decref(s);
	json_decref(body);
}

static void connect_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	connect_common(r, ctx, false);
}

static void resume_sandbox(struct http_req *r, struct capsa_ctx *ctx)
{
	connect_common(r, ctx, true);
}

/* metadata=k%3Dv%26k2%3Dv2 as the SDK sends it: a form-encoded string of
 * URI-encoded keys and values. */
static bool metadata_match(json_t *labels, const char *query)
{
	char **pairs = strv_split(query, '&');
	bool ok = true;
	for (char **p = pairs; *p && ok; p++) {
		if (!**p)
			continue;
		char *eq = strchr(*p, '=');
		if (eq)
			*eq = '\0';
		char *k1 = NULL, *v1 = NULL, *k = NULL, *v = NULL;
		if (http_unescape(*p, strlen(*p), true, &k1) < 0 ||
		    http_unescape(eq ? eq + 1 : "", eq ? strlen(eq + 1) : 0, true, &v1) < 0 ||
		    http_unescape(k1, strlen(k1), false, &k) < 0 || http_unescape(v1, strlen(v1), false, &v) < 0) {
			ok = false;
		} else {
			json_t *have = json_object_get(labels, k);
			ok = have && json_is_string(have) && strcmp(json_string_value(have), v) == 0;
		}
		free(k1);
		free(v1);
		free(k);
		free(v);
	}
	strv_free(pairs);
	return ok;
}

static void list_common(struct http_req *r, struct capsa_ctx *ctx, bool paginate)
{
	const char *states = http_query(r, "state");
	const char *meta = http_query(r, "metadata");
	const char *limit_s = http_query(r, "limit");
	const char *token = http_query(r, "nextToken");
	int64_t limit = 100, offset = 0;
	if (limit_s && parse_int64(limit_s, 1, 1000, &limit) < 0) {
		http_reply_error(r, 400, "invalid_argument", "query 'limit': expected 1 to 1000");
		return;
	}
	if (token && parse_int64(token, 0, INT32_MAX, &offset) < 0) {
		http_reply_error(r, 400, "invalid_argument", "query 'nextToken': not a token this server issued");
		return;
	}
	struct capsa_error *err = NULL;
	_cleanup_free_ char *s = capsa_sandbox_list(ctx, false, &err);
	if (!s) {
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *arr = json_loads(s, 0, NULL);
	json_t *out = json_array();
	size_t i, matched = 0;
	json_t *e;
	bool more = false;
	json_array_foreach(arr, i, e) {
		const char *st = jstr(e, "state");
		const char *e2b_state = strcmp(st, "paused") == 0 ? "paused" : "running";
		if (states) {
			char **want = strv_split(states, ',');
			bool hit = strv_contains(want, e2b_state);
			strv_free(want);
			if (!hit)
				continue;
		}
		if (meta && *meta && !metadata_match(json_object_get(e, "labels"), meta))
			continue;
		if (paginate && (int64_t)matched++ < offset)
			continue;
		if (paginate && (int64_t)json_array_size(out) == limit) {
			more = true;
			break;
		}
		json_t *full = inspect(ctx, jstr(e, "id"), NULL);
		if (full) {
			json_array_append_new(out, e2b_sandbox_json(r->srv, full));
			json_decref(full);
		}
	}
	json_decref(arr);
	http_reply_json(r, 200, out);
	if (more) {
		char next[32];
		snprintf(next, sizeof(next), "%lld", (long long)(offset + limit));
		http_reply_header(r, "X-Next-Token", next);
	}
}

static void list_v1(struct http_req *r, struct capsa_ctx *ctx)
{
	list_common(r, ctx, false);
}

static void list_v2(struct http_req *r, struct capsa_ctx *ctx)
{
	list_common(r, ctx, true);
}

/* One sample per call: capsa keeps no history.  cpuUsedPct is the average
 * since the sandbox started. */
static void sandbox_metrics(struct http_req *r, struct capsa_ctx *ctx)
{
	json_t *s = live_sandbox(r, ctx, r->param[0]);
	if (!s)
		return;
	struct capsa_sandbox_stats st;
	struct capsa_error *err = NULL;
	if (capsa_sandbox_stats(ctx, r->param[0], &st, &err) < 0) {
		json_decref(s);
		http_reply_capsa_error(r, err);
		return;
	}
	json_t *e2b = e2b_sandbox_json(r->srv, s);
	int cpus = (int)json_integer_value(json_object_get(e2b, "cpuCount"));
	int64_t started = 0;
	parse_rfc3339(jstr(e2b, "startedAt"), &started);
	double wall = started ? (double)(now_ms() - started) / 1000 : 0;
	/* E2B's figures are numbers: one unknown without a cgroup (rootless
	 * with none delegated) is sent as 0 */
	if (st.cpu_usage_ns == UINT64_MAX)
		st.cpu_usage_ns = 0;
	if (st.memory_current == UINT64_MAX)
		st.memory_current = 0;
	double pct = wall > 0 ? (double)st.cpu_usage_ns / 1e9 / wall * 100 / (cpus ? cpus : 1) : 0;
	char ts[40];
	format_rfc3339(now_ms(), ts, sizeof(ts));
	uint64_t mem_total = st.memory_limit != UINT64_MAX && st.memory_limit ? st.memory_limit
						: (uint64_t)r->srv->capacity.memory;
	/* a --disk sandbox's own count; without one, nothing is measured */
	uint64_t disk_used = 0, disk_total = 0;
	capsa_sandbox_disk_usage(ctx, r->param[0], &disk_used, &disk_total, NULL);
	if (!disk_total)
		disk_total = (uint64_t)json_integer_value(json_object_get(e2b, "diskSizeMB")) << 20;
	json_t *sample = json_pack("{s:s, s:I, s:i, s:f, s:I, s:I, s:I, s:I}", "timestamp", ts, "timestampUnix",
				   (json_int_t)(now_ms() / 1000), "cpuCount", cpus, "cpuUsedPct", pct, "memUsed",
				   (json_int_t)st.memory_current, "memTotal", (json_int_t)mem_total, "diskUsed",
				   (json_int_t)disk_used, "diskTotal", (json_int_t)disk_total);
	json_decref(e2b);
	json_decref(s);
	json_t *arr = json_array();
	json_array_append_new(arr, sample);
	http_reply_json(r, 200, arr);
}

static void health(struct http_req *r, struct capsa_ctx *ctx)
{
	(void)ctx;
	http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

const struct route e2b_routes[] = {
	{ "GET", "/health", health, BODY_NONE, NULL },
	{ "POST", "/sandboxes", create_sandbox, BODY_JSON, "create" },
	{ "POST", "/v2/sandboxes", create_sandbox, BODY_JSON, "create" },
	{ "GET", "/sandboxes", list_v1, BODY_NONE, NULL },
	{ "GET", "/v2/sandboxes", list_v2, BODY_NONE, NULL },
	{ "GET", "/sandboxes/{}", info, BODY_NONE, NULL },
	{ "DELETE", "/sandboxes/{}", kill_sandbox, BODY_NONE, NULL },
	{ "POST", "/sandboxes/{}/timeout", timeout_sandbox, BODY_JSON, NULL },
	{ "POST", "/sandboxes/{}/refreshes", refresh, BODY_JSON, NULL },
	{ "POST", "/sandboxes/{}/pause", pause_sandbox, BODY_JSON, NULL },
	{ "POST", "/sandboxes/{}/resume", resume_sandbox, BODY_JSON, NULL },
	{ "POST", "/sandboxes/{}/connect", connect_sandbox, BODY_JSON, NULL },
	{ "POST", "/v2/sandboxes/{}/connect", connect_sandbox, BODY_JSON, NULL },
	{ "GET", "/sandboxes/{}/metrics", sandbox_metrics, BODY_NONE, NULL },
	{ "PUT", "/sandboxes/{}/network", update_network, BODY_JSON, NULL },
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
