/* layer.c: unpacking layers once, concurrently, atomically (see layer.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/ingest.h"
#include "image/layer.h"
#include "util/fs.h"
#include "util/str.h"

#define MAX_THREADS 4

struct pool {
	struct capsa_ctx *ctx;
	struct layer_job *jobs;
	size_t n, next;
	const struct unpack_opts *o;
	pthread_mutex_t mu;
};

static int lock_layer(struct capsa_ctx *ctx, const char *hex, struct capsa_error **err)
{
	_cleanup_free_ char *name = xasprintf("tmp/layer-%s.lock", hex);
	return image_lock_file(ctx, name, LOCK_EX, err);
}

static bool layer_dir_exists(struct capsa_ctx *ctx, const char *hex)
{
	_cleanup_free_ char *rel = xasprintf("layers/%s", hex);
	struct stat sb;
	return fstatat(ctx->root_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
}

/* One layer, in a worker thread: touches only the filesystem (the context's
 * database handle is not shared between threads). */
static int unpack_one(struct capsa_ctx *ctx, struct layer_job *j, const struct unpack_opts *o,
		      struct capsa_error **err)
{
	const char *hex = j->diff_id + 7;
	_cleanup_close_ int lock = lock_layer(ctx, hex, err);
	if (lock < 0)
		return -1;
	if (layer_dir_exists(ctx, hex))
		return 0;
	_cleanup_free_ char *rnd = random_hex(6);
	_cleanup_free_ char *tmp = xasprintf("tmp/unpack-%s-%s", hex, rnd);
	if (mkdirat(ctx->root_fd, tmp, 0700) < 0)
		return error_sys(err, errno, "create %s/%s", ctx->root, tmp);
	int rc = -1;
	_cleanup_close_ int dfd = openat(ctx->root_fd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int bfd = -1, lfd = -1;
	_cleanup_free_ char *dst = xasprintf("layers/%s", hex);
	struct unpack_result res;
	if (dfd < 0) {
		error_sys(err, errno, "open %s/%s", ctx->root, tmp);
		goto out;
	}
	bfd = blob_open(ctx, j->blob_digest, err);
	if (bfd < 0)
		goto out;
	if (layer_unpack(bfd, dfd, o, &res, err) < 0)
		goto out;
	if (!str_eq(res.diff_id, j->diff_id)) {
		error_set(err, EPROTO, "uncompressed content has digest %s, the image config says %s", res.diff_id,
			  j->diff_id);
		goto out;
	}
	if (syncfs(dfd) < 0) {
		error_sys(err, errno, "sync %s/%s", ctx->root, tmp);
		goto out;
	}
	if (renameat(ctx->root_fd, tmp, ctx->root_fd, dst) < 0) {
		error_sys(err, errno, "rename %s/%s to %s", ctx->root, tmp, dst);
		goto out;
	}
	lfd = openat(ctx->root_fd, "layers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lfd >= 0)
		fsync(lfd);
	j->entries = res.entries;
	j->bytes = res.bytes;
	j->unpacked = true;
	rc = 0;
out:
	if (rc < 0) {
		struct capsa_error *ignored = NULL;
		rm_rf_at(ctx->root_fd, tmp, &ignored);
		capsa_error_free(ignored);
	}
	return rc;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		size_t i = p->next < p->n ? p->next++ : p->n;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->n)
			return NULL;
		struct layer_job *j = &p->jobs[i];
		if (unpack_one(p->ctx, j, p->o, &j->err) < 0)
			error_wrap(&j->err, "layer %s", j->blob_digest);
	}
}

static int mark(struct store *db, const struct layer_job *j, const char *state, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "INSERT INTO layers(diff_id, size, entries, state, created_at) VALUES(?,?,?,?,?) "
			  "ON CONFLICT(diff_id) DO UPDATE SET state=excluded.state, "
			  "size=CASE WHEN excluded.size>0 THEN excluded.size ELSE size END, "
			  "entries=CASE WHEN excluded.entries>0 THEN excluded.entries ELSE entries END",
			  &st, err) < 0)
		return -1;
	store_bind_text(st, 1, j->diff_id);
	sqlite3_bind_int64(st, 2, (int64_t)j->bytes);
	sqlite3_bind_int64(st, 3, (int64_t)j->entries);
	store_bind_text(st, 4, state);
	sqlite3_bind_int64(st, 5, now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record layer", err);
	return 0;
}

/* A failed unpack leaves no directory: drop its row unless another process
 * finished the layer meanwhile. */
static void forget(struct store *db, const char *diff_id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "DELETE FROM layers WHERE diff_id=? AND state='unpacking'", &st, NULL) < 0)
		return;
	store_bind_text(st, 1, diff_id);
	sqlite3_step(st);
}

static bool layer_ready(struct store *db, struct capsa_ctx *ctx, const char *diff_id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT state FROM layers WHERE diff_id=?", &st, NULL) < 0)
		return false;
	store_bind_text(st, 1, diff_id);
	return sqlite3_step(st) == SQLITE_ROW && str_eq((const char *)sqlite3_column_text(st, 0), "ready") &&
	       layer_dir_exists(ctx, diff_id + 7);
}

int layers_ensure(struct capsa_ctx *ctx, struct layer_job *jobs, size_t n, const struct unpack_opts *o,
		  struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db || image_ingest_hold(ctx, err) < 0)
		return -1;
	/* duplicates within one image are unpacked once: later copies wait
	 * on the layer lock and find the directory there */
	_cleanup_free_ struct layer_job *pending = xcalloc(n ? n : 1, sizeof(*pending));
	_cleanup_free_ size_t *map = xcalloc(n ? n : 1, sizeof(*map));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (layer_ready(db, ctx, jobs[i].diff_id))
			continue;
		bool dup = false;
		for (size_t k = 0; k < m; k++)
			dup = dup || str_eq(pending[k].diff_id, jobs[i].diff_id);
		if (dup)
			continue;
		if (mark(db, &jobs[i], "unpacking", err) < 0)
			return -1;
		pending[m] = jobs[i];
		map[m++] = i;
	}
	if (m == 0)
		return 0;
	/* biggest first, so that the last layer to finish is a small one */
	for (size_t a = 1; a < m; a++)
		for (size_t b = a; b > 0 && pending[b].size > pending[b - 1].size; b--) {
			struct layer_job tj = pending[b];
			size_t tm = map[b];
			pending[b] = pending[b - 1];
			map[b] = map[b - 1];
			pending[b - 1] = tj;
			map[b - 1] = tm;
		}
	struct pool p = { .ctx = ctx, .jobs = pending, .n = m, .o = o };
	pthread_mutex_init(&p.mu, NULL);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nt = MIN(m, (size_t)MAX(1, MIN(cpus, MAX_THREADS)));
	pthread_t th[MAX_THREADS];
	size_t started = 0;
	for (size_t i = 1; i < nt; i++)
		if (pthread_create(&th[started], NULL, worker, &p) == 0)
			started++;
	worker(&p);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&p.mu);
	int rc = 0;
	for (size_t k = 0; k < m; k++) {
		struct layer_job *j = &pending[k];
		if (j->err) {
			if (rc == 0)
				error_move(err, &j->err);
			capsa_error_free(j->err);
			j->err = NULL;
			rc = -1;
			forget(db, j->diff_id);
			continue;
		}
		jobs[map[k]].entries = j->entries;
		jobs[map[k]].bytes = j->bytes;
		jobs[map[k]].unpacked = j->unpacked;
		if (mark(db, j, "ready", err) < 0)
			rc = -1;
	}
	return rc;
}
