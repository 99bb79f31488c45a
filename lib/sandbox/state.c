/* state.c: sandbox rows, liveness, reconciliation and the end of a sandbox.
 *
 * Liveness is a lock, not a pid: the creator takes <run>/<id>/lock before
 * the row exists and hands it to the supervisor, which holds it until the
 * sandbox is finalized.  A row that claims to be alive while its lock is
 * free lost its supervisor (crash, kill -9, reboot): reconciliation applies
 * the exit file the supervisor may have left, or marks it "lost", and
 * removes what the sandbox still holds on the host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <jansson.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "linux/cgroup.h"
#include "net/net.h"
#include "sandbox.h"
#include "userns.h"
#include "util/fs.h"
#include "util/trace.h"

void sb_row_release(struct sb_row *r)
{
	free(r->id);
	free(r->name);
	free(r->image_id);
	free(r->image_ref);
	free(r->state);
	free(r->config);
	free(r->labels);
	free(r->reason);
	free(r->error);
	free(r->boot_id);
	free(r->cgroup);
	memset(r, 0, sizeof(*r));
}

bool sandbox_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SANDBOX_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

bool sandbox_name_like_id(const char *name)
{
	size_t n = strlen(name);
	return n >= 12 && n <= 64 && strspn(name, "0123456789abcdef") == n;
}

#define ROW_COLUMNS                                                                                   \
	"id,name,image_id,image_ref,state,config,labels,reason,error,created_at,started_at,finished_at," \
	"exit_code,supervisor_pid,auto_remove,deadline_at,idle_timeout_ms,boot_id,creator_pid,creator_start," \
	"supervisor_start,cgroup,remove_requested,init_pid"

static void fill_row(sqlite3_stmt *st, struct sb_row *r)
{
	r->id = store_col_strdup(st, 0);
	r->name = store_col_strdup(st, 1);
	r->image_id = store_col_strdup(st, 2);
	r->image_ref = store_col_strdup(st, 3);
	r->state = store_col_strdup(st, 4);
	r->config = store_col_strdup(st, 5);
	r->labels = store_col_strdup(st, 6);
	r->reason = store_col_strdup(st, 7);
	r->error = store_col_strdup(st, 8);
	r->created_at = sqlite3_column_int64(st, 9);
	r->started_at = sqlite3_column_int64(st, 10);
	r->finished_at = sqlite3_column_int64(st, 11);
	r->has_exit = sqlite3_column_type(st, 12) != SQLITE_NULL;
	r->exit_code = sqlite3_column_int(st, 12);
	r->supervisor_pid = (pid_t)sqlite3_column_int64(st, 13);
	r->auto_remove = sqlite3_column_int(st, 14) != 0;
	r->deadline_at = sqlite3_column_int64(st, 15);
	r->idle_timeout_ms = sqlite3_column_int64(st, 16);
	r->boot_id = store_col_strdup(st, 17);
	r->creator_pid = (pid_t)sqlite3_column_int64(st, 18);
	r->creator_start = (uint64_t)sqlite3_column_int64(st, 19);
	r->supervisor_start = (uint64_t)sqlite3_column_int64(st, 20);
	r->cgroup = store_col_strdup(st, 21);
	r->remove_requested = sqlite3_column_int(st, 22) != 0;
	r->init_pid = (pid_t)sqlite3_column_int64(st, 23);
}

int sandbox_lookup(struct capsa_ctx *ctx, const char *ref, struct sb_row *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	if (!ref || !*ref || strlen(ref) > 256)
		return error_set(err, EINVAL, "invalid sandbox reference '%.64s'", ref ? ref : "");
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT " ROW_COLUMNS " FROM sandboxes WHERE id=?1 OR name=?1", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, ref);
	if (sqlite3_step(st) == SQLITE_ROW) {
		fill_row(st, out);
		return 0;
	}
	sqlite3_finalize(st);
	st = NULL;
	size_t n = strlen(ref);
	bool hex = n >= 4;
	for (size_t i = 0; i < n && hex; i++)
		hex = (ref[i] >= '0' && ref[i] <= '9') || (ref[i] >= 'a' && ref[i] <= 'f');
	if (hex) {
		if (store_prepare(db, "SELECT " ROW_COLUMNS " FROM sandboxes WHERE substr(id,1,?2)=?1 LIMIT 2",
				  &st, err) < 0)
			return -1;
		store_bind_text(st, 1, ref);
		sqlite3_bind_int(st, 2, (int)n);
		if (sqlite3_step(st) == SQLITE_ROW) {
			fill_row(st, out);
			if (sqlite3_step(st) == SQLITE_ROW) {
				sb_row_release(out);
				return error_set(err, EINVAL, "sandbox reference '%s' is ambiguous: several ids start with it",
						 ref);
			}
			return 0;
		}
	}
	return error_set(err, ENOENT, "no such sandbox: '%s'", ref);
}

char *sandbox_run_dir(struct capsa_ctx *ctx, const char *id)
{
	return xasprintf("%s/%s", ctx->run_root, id);
}

char *sandbox_dir(struct capsa_ctx *ctx, const char *id)
{
	return xasprintf("%s/sandboxes/%s", ctx->root, id);
}

int sandbox_connect(struct capsa_ctx *ctx, const struct sb_row *r, struct proto_conn *out, struct capsa_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/ctl.sock", ctx->run_root, r->id);
	int fd = unix_connect(path, false);
	if (fd < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			return error_set(err, ESRCH, "sandbox %s is not running", r->name);
		return error_sys(err, errno, "connect to sandbox %s", r->name);
	}
	proto_conn_init(out, fd);
	return 0;
}

/* The supervisor binds its control socket before the main process starts,
 * so a live supervisor of a running sandbox has one; only one whose creator
 * died while it was setting up may be a moment without. */
#define CONNECT_WAIT_MS 10000

int sandbox_open_running(struct capsa_ctx *ctx, const char *ref, struct sb_row *r, struct proto_conn *c,
			 struct capsa_error **err)
{
	if (sandbox_lookup(ctx, ref, r, err) < 0)
		return -1;
	if (sandbox_wait_creation(ctx, r, 30000, err) < 0) {
		sb_row_release(r);
		return -1;
	}
	int64_t deadline = mono_ms() + CONNECT_WAIT_MS;
	while (strcmp(r->state, "exited") != 0) {
		if (sandbox_connect(ctx, r, c, NULL) == 0)
			return 0;
		if (!sandbox_alive(ctx, r)) {
			sandbox_reconcile_one(ctx, r->id, NULL);
			break;
		}
		/* alive but unreachable: never "not running" */
		_cleanup_free_ char *sock = xasprintf("%s/%s/ctl.sock", ctx->run_root, r->id);
		struct stat st;
		bool dir = fstatat(ctx->run_fd, r->id, &st, AT_SYMLINK_NOFOLLOW) == 0;
		if (!dir || mono_ms() > deadline) {
			error_set(err, EHOSTUNREACH,
				  "sandbox %s: its supervisor (pid %d) is running but has no control socket at %s%s", r->name,
				  (int)(r->supervisor_pid > 0 ? r->supervisor_pid : r->creator_pid), sock,
				  dir ? "" : ": is CAPSA_RUN_ROOT the one it was created with?");
			sb_row_release(r);
			return -1;
		}
		poll(NULL, 0, 5);
	}
	error_set(err, ESRCH, "sandbox %s is not running", r->name);
	sb_row_release(r);
	return -1;
}

struct reply_state {
	uint32_t stream;
	struct buf *reply;
	int code;
	char *msg;
	bool done;
	bool ok;
};

static int on_reply(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct reply_state *rs = ctx;
	if (h->stream != rs->stream)
		return 0;
	if (h->type == P_ERROR) {
		proto_error_decode(payload, h->len, &rs->code, &rs->msg);
		rs->done = true;
	} else if (h->type == P_OK || h->type == P_STATUS || h->type == P_PONG || h->type == P_PROCS ||
		   h->type == P_PORTS) {
		if (rs->reply)
			buf_append(rs->reply, payload, h->len);
		rs->ok = rs->done = true;
	}
	return 0;
}

int sandbox_request(struct proto_conn *c, uint16_t type, uint16_t flags, const struct buf *payload, struct buf *reply,
		    struct capsa_error **err)
{
	static uint32_t next = 100;
	struct reply_state rs = { .stream = next++, .reply = reply };
	if (proto_conn_queue(c, type, flags, rs.stream, payload ? payload->data : NULL, payload ? payload->len : 0) < 0 ||
	    proto_conn_flush_all(c, 10000) < 0)
		return error_sys(err, errno, "send %s request to the supervisor", proto_type_name(type));
	while (!rs.done) {
		int r = proto_conn_wait(c, 30000, on_reply, &rs);
		if (r == 0)
			return error_set(err, ESRCH, "the supervisor closed the connection");
		if (r < 0)
			return error_sys(err, errno, "wait for the supervisor");
	}
	if (!rs.ok) {
		error_set(err, rs.code ? rs.code : EIO, "%s", rs.msg ? rs.msg : "request failed");
		free(rs.msg);
		return -1;
	}
	return 0;
}

int sandbox_event(struct capsa_ctx *ctx, const char *id, const char *type, const char *attrs_json)
{
	struct store *db = ctx_db(ctx, NULL);
	if (!db)
		return -1;
	return store_add_event(db, id, type, attrs_json, NULL);
}

/* exit file: key=value lines written by the supervisor */
static int read_exit_file(struct capsa_ctx *ctx, const char *id, struct proto_exit *e)
{
	_cleanup_free_ char *dir = sandbox_run_dir(ctx, id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	struct buf b = BUF_INIT;
	if (read_file_at(dfd, "exit", 64 * 1024, &b, NULL) < 0) {
		buf_release(&b);
		return -1;
	}
	memset(e, 0, sizeof(*e));
	char **lines = strv_split(buf_cstr(&b), '\n');
	buf_release(&b);
	for (char **l = lines; *l; l++) {
		char *eq = strchr(*l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		const char *v = eq + 1;
		if (strcmp(*l, "exit_code") == 0)
			e->exit_code = strtoll(v, NULL, 10);
		else if (strcmp(*l, "signal") == 0)
			e->signal = strtoll(v, NULL, 10);
		else if (strcmp(*l, "started_at") == 0)
			e->started_at = strtoll(v, NULL, 10);
		else if (strcmp(*l, "finished_at") == 0)
			e->finished_at = strtoll(v, NULL, 10);
		else if (strcmp(*l, "oom") == 0)
			e->oom = strcmp(v, "1") == 0;
		else if (strcmp(*l, "reason") == 0 && !e->reason)
			e->reason = xstrdup(v);
		else if (strcmp(*l, "message") == 0 && !e->message)
			e->message = xstrdup(v);
	}
	strv_free(lines);
	return 0;
}

int sandbox_forget(struct capsa_ctx *ctx, const char *id, const char *name, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	/* a sandbox undone before it ran was never finalized */
	net_sandbox_release(ctx, id);
	_cleanup_free_ char *rdir = sandbox_run_dir(ctx, id);
	if (rm_rf_at(AT_FDCWD, rdir, err) < 0)
		return error_wrap(err, "remove sandbox %s", id);
	_cleanup_free_ char *dir = sandbox_dir(ctx, id);
	if (rm_rf_at(AT_FDCWD, dir, err) < 0)
		return error_wrap(err, "remove sandbox %s", id);
	trace_mark("destroy: dirs removed");
	struct userns_block blk;
	bool has_block = sandbox_userns_block(ctx, id, &blk) == 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_begin(db, err) < 0)
		return -1;
	if (store_prepare(db, "DELETE FROM sandboxes WHERE id=?", &st, err) < 0)
		goto fail;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		store_error(db, "remove sandbox", err);
		goto fail;
	}
	if (sqlite3_changes(db->db) > 0)
		sandbox_event(ctx, id, "remove", NULL);
	if (store_commit(db, err) < 0)
		return -1;
	/* the row went first: a claim left by a crash here is stale, and
	 * the next allocation that wants the block shows that (userns.c) */
	if (has_block)
		sandbox_userns_release(ctx, id, &blk);
	if (name)
		runindex_remove(ctx->run_fd, name, id);
	return 0;
fail:
	store_rollback(db);
	return -1;
}

int sandbox_destroy(struct capsa_ctx *ctx, const struct sb_row *r, struct capsa_error **err)
{
	/* a sandbox that ended before its cgroup could be removed (crash
	 * while reconciling) must not keep it, and one whose processes cannot
	 * be shown gone keeps its row, directories and id block */
	if (sandbox_prove_dead(ctx, r, 10000, err) < 0)
		return error_wrap(err, "remove sandbox %s", r->name);
	return sandbox_forget(ctx, r->id, r->name, err);
}

static bool sandbox_state_is(struct store *db, const char *id, const char *state)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT 1 FROM sandboxes WHERE id=? AND state=?", &st, NULL) < 0)
		return false;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, state);
	return sqlite3_step(st) == SQLITE_ROW;
}

int sandbox_finalize(struct capsa_ctx *ctx, const char *id, const struct proto_exit *given, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	struct sb_row r;
	if (sandbox_lookup(ctx, id, &r, err) < 0)
		return -1;
	struct proto_exit e = { 0 };
	bool have = false;
	if (given) {
		e = *given;
		have = true;
	} else if (read_exit_file(ctx, r.id, &e) == 0) {
		have = true;
	}
	int rc = 0;
	bool tx = store_begin(db, NULL) == 0;
	/* ended before its creator recorded the start: the start comes first */
	bool unstarted = have && e.started_at && sandbox_state_is(db, r.id, "creating");
	if (strcmp(r.state, "exited") != 0) {
		const char *reason = have && e.reason ? e.reason : "lost";
		int64_t code = have ? e.exit_code : 125;
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if (store_prepare(db,
				  "UPDATE sandboxes SET state='exited', exit_code=?2, reason=?3, error=?4, "
				  "finished_at=?5, started_at=coalesce(started_at, nullif(?6, 0)), supervisor_pid=NULL, init_pid=NULL "
				  "WHERE id=?1 AND state!='exited'",
				  &st, err) < 0) {
			rc = -1;
			goto out;
		}
		store_bind_text(st, 1, r.id);
		sqlite3_bind_int64(st, 2, code);
		store_bind_text(st, 3, reason);
		store_bind_text(st, 4, have ? e.message : "the supervisor disappeared without recording an exit");
		sqlite3_bind_int64(st, 5, have && e.finished_at ? e.finished_at : now_ms());
		sqlite3_bind_int64(st, 6, have ? e.started_at : 0);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = store_error(db, "record sandbox exit", err);
			goto out;
		}
		bool changed = sqlite3_changes(db->db) > 0;
		ledger_release(ctx, r.id);
		if (changed) {
			if (unstarted)
				sandbox_event(ctx, r.id, "start", NULL);
			sandbox_events_import(ctx, r.id);
			if (strcmp(reason, "oom") == 0)
				sandbox_event(ctx, r.id, "oom", NULL);
			json_t *a = json_pack("{s:I, s:s}", "exitCode", (json_int_t)code, "reason", reason);
			char *attrs = json_dumps(a, JSON_COMPACT);
			sandbox_event(ctx, r.id, "die", attrs);
			free(attrs);
			json_decref(a);
		}
	}
	/* the end is on record before the host is cleaned: a crash from here
	 * on leaves an exited row, and the cleaning is idempotent */
	if (tx) {
		tx = false;
		if (store_commit(db, err) < 0) {
			rc = -1;
			goto out;
		}
	}
	trace_mark("finalize: recorded");
	runindex_remove(ctx->run_fd, r.name, r.id);
	sandbox_cgroup_remove(ctx, r.id, r.cgroup, NULL);
	net_sandbox_release(ctx, r.id);
	sandbox_events_import(ctx, r.id);
	char *rdir = sandbox_run_dir(ctx, r.id);
	rm_rf_at(AT_FDCWD, rdir, NULL);
	free(rdir);
	sandbox_events_forget(ctx, r.id);
	trace_mark("finalize: run dir removed");
	if (r.auto_remove)
		rc = sandbox_destroy(ctx, &r, err);
out:
	if (tx)
		store_rollback(db);
	if (!given)
		proto_exit_release(&e);
	sb_row_release(&r);
	return rc;
}

int sandbox_reconcile_one(struct capsa_ctx *ctx, const char *id, struct capsa_error **err)
{
	struct sb_row r;
	if (sandbox_lookup(ctx, id, &r, err) < 0)
		return -1;
	int rc = 0;
	if (strcmp(r.state, "exited") != 0 && !sandbox_alive(ctx, &r))
		rc = sandbox_finalize(ctx, r.id, NULL, err);
	sb_row_release(&r);
	return rc;
}

/* A creator that died between taking the lock and inserting the row leaves
 * a runtime directory no row names: remove those whose lock is free. */
static void remove_orphan_run_dirs(struct capsa_ctx *ctx, struct store *db)
{
	DIR *d = opendir_at(ctx->run_fd, ".");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != 64 || strspn(de->d_name, "0123456789abcdef") != 64)
			continue;
		sqlite3_stmt *st = NULL;
		if (store_prepare(db, "SELECT 1 FROM sandboxes WHERE id=?", &st, NULL) < 0)
			break;
		store_bind_text(st, 1, de->d_name);
		bool known = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
		if (known)
			continue;
		/* no row: only the locks here can say whether a creator or
		 * supervisor still works in it (the creator holds the
		 * directory itself from just after its mkdir; leave a
		 * directory younger than that moment alone) */
		_cleanup_free_ char *lock = xasprintf("%s/lock", de->d_name);
		_cleanup_close_ int lfd = openat(dirfd(d), lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (lfd >= 0 && flock(lfd, LOCK_SH | LOCK_NB) < 0)
			continue;
		_cleanup_close_ int dfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		struct stat sb;
		if (dfd < 0 || flock(dfd, LOCK_SH | LOCK_NB) < 0 || fstat(dfd, &sb) < 0 || time(NULL) - sb.st_ctime < 2)
			continue;
		if (sandbox_cgroup_remove(ctx, de->d_name, NULL, NULL) == 0)
			rm_rf_at(dirfd(d), de->d_name, NULL);
	}
	closedir(d);
}

/* Name index entries (runindex.c) whose sandbox has no runtime directory
 * any more: left by a crash between the end of a sandbox and its
 * bookkeeping.  The index is only a cache of the database. */
static void sweep_names(struct capsa_ctx *ctx)
{
	DIR *d = opendir_at(ctx->run_fd, "names");
	if (!d)
		return;
	struct dirent *de;
	char link[80];
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		struct stat st;
		if (n == 64 && fstatat(ctx->run_fd, link, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		runindex_remove(ctx->run_fd, de->d_name, link);
	}
	closedir(d);
}

/* Rows not recorded as ended, whole: liveness needs more than the id. */
static int open_rows(struct capsa_ctx *ctx, struct sb_row **out, size_t *n, struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	struct store *db = ctx_db(ctx, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "SELECT " ROW_COLUMNS " FROM sandboxes WHERE state!='exited'", &st, err) < 0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		fill_row(st, &(*out)[(*n)++]);
	}
	return 0;
}

/* --rm sandboxes whose end was recorded but whose removal a crash cut short
 * (sandbox_finalize commits the end first).  Only old ones: a young one's
 * finalizer may still be at work. */
static void remove_ended_auto(struct capsa_ctx *ctx, struct store *db)
{
	char **ids = NULL;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if (store_prepare(db, "SELECT id FROM sandboxes WHERE state='exited' AND auto_remove=1 AND finished_at<?",
				  &st, NULL) < 0)
			return;
		sqlite3_bind_int64(st, 1, now_ms() - 60000);
		while (sqlite3_step(st) == SQLITE_ROW)
			ids = strv_push(ids, (const char *)sqlite3_column_text(st, 0));
	}
	for (char **p = ids; p && *p; p++) {
		struct sb_row r;
		if (sandbox_lookup(ctx, *p, &r, NULL) < 0)
			continue;
		if (!sandbox_alive(ctx, &r))
			sandbox_destroy(ctx, &r, NULL);
		sb_row_release(&r);
	}
	strv_free(ids);
}

CAPSA_EXPORT int capsa_sandbox_reconcile(struct capsa_ctx *ctx, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	struct sb_row *rows;
	size_t n;
	if (!db || open_rows(ctx, &rows, &n, err) < 0)
		return -1;
	int rc = 0;
	remove_orphan_run_dirs(ctx, db);
	remove_ended_auto(ctx, db);
	sweep_names(ctx);
	for (size_t i = 0; i < n; i++) {
		struct capsa_error *e = NULL;
		if (!sandbox_alive(ctx, &rows[i]) && sandbox_finalize(ctx, rows[i].id, NULL, &e) < 0 &&
		    (!e || e->code != ENOENT) /* removed meanwhile: nothing to reconcile */) {
			if (err && !*err)
				error_move(err, &e);
			rc = -1;
		}
		capsa_error_free(e);
		sb_row_release(&rows[i]);
	}
	free(rows);
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_finalize(struct capsa_ctx *ctx, const char *id, struct capsa_error **err)
{
	return sandbox_finalize(ctx, id, NULL, err);
}

CAPSA_EXPORT char *capsa_sandbox_resolve(struct capsa_ctx *ctx, const char *sandbox, struct capsa_error **err)
{
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return NULL;
	char *id = steal_pointer(&r.id);
	sb_row_release(&r);
	return id;
}

static json_t *row_json(const struct sb_row *r, bool full)
{
	char created[40], started[40], finished[40];
	format_rfc3339(r->created_at, created, sizeof(created));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", r->id, "name", r->name, "image",
			      r->image_ref ? r->image_ref : "", "imageId", r->image_id ? r->image_id : "", "state",
			      r->state, "created", created);
	if (r->started_at) {
		format_rfc3339(r->started_at, started, sizeof(started));
		json_object_set_new(o, "started", json_string(started));
	}
	if (r->finished_at) {
		format_rfc3339(r->finished_at, finished, sizeof(finished));
		json_object_set_new(o, "finished", json_string(finished));
	}
	if (r->deadline_at && strcmp(r->state, "exited") != 0) {
		char deadline[40];
		format_rfc3339(r->deadline_at, deadline, sizeof(deadline));
		json_object_set_new(o, "deadline", json_string(deadline));
	}
	if (r->has_exit)
		json_object_set_new(o, "exitCode", json_integer(r->exit_code));
	if (r->reason)
		json_object_set_new(o, "reason", json_string(r->reason));
	json_t *labels = json_loads(r->labels ? r->labels : "{}", 0, NULL);
	json_object_set_new(o, "labels", labels ? labels : json_object());
	if (full) {
		if (r->error)
			json_object_set_new(o, "error", json_string(r->error));
		json_object_set_new(o, "autoRemove", json_boolean(r->auto_remove));
		if (r->supervisor_pid)
			json_object_set_new(o, "supervisorPid", json_integer(r->supervisor_pid));
		json_t *cfg = json_loads(r->config ? r->config : "{}", 0, NULL);
		json_object_set_new(o, "config", cfg ? cfg : json_object());
	}
	return o;
}

CAPSA_EXPORT char *capsa_sandbox_inspect(struct capsa_ctx *ctx, const char *sandbox, struct capsa_error **err)
{
	if (capsa_sandbox_reconcile(ctx, err) < 0)
		return NULL;
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return NULL;
	json_t *o = row_json(&r, true);
	_cleanup_free_ char *dir = sandbox_dir(ctx, r.id);
	json_object_set_new(o, "logPath", json_sprintf("%s/logs/main.log", dir));
	json_t *userns = sandbox_userns_json(ctx, r.id);
	if (userns)
		json_object_set_new(o, "userns", userns);
	json_t *net = net_sandbox_json(ctx, r.id);
	if (net)
		json_object_set_new(o, "network", net);
	char *s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	sb_row_release(&r);
	return s;
}

CAPSA_EXPORT char *capsa_sandbox_list(struct capsa_ctx *ctx, bool all, struct capsa_error **err)
{
	if (capsa_sandbox_reconcile(ctx, err) < 0)
		return NULL;
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return NULL;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  all ? "SELECT " ROW_COLUMNS " FROM sandboxes ORDER BY created_at DESC"
			      : "SELECT " ROW_COLUMNS " FROM sandboxes WHERE state!='exited' ORDER BY created_at DESC",
			  &st, err) < 0)
		return NULL;
	json_t *arr = json_array();
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct sb_row r;
		fill_row(st, &r);
		json_array_append_new(arr, row_json(&r, false));
		sb_row_release(&r);
	}
	char *s = json_dumps(arr, JSON_INDENT(2));
	json_decref(arr);
	return s;
}
