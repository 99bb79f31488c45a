/* test-store.c: lib/store: open/migrate, WAL, transactions, context dirs, and
 * the checks that refuse a damaged or foreign capsa.db without changing it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/context.h"
#include "store/store.h"
#include "tap.h"
#include "util/fs.h"

/* --- damaged stores ---------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	struct buf b = BUF_INIT;
	if (read_file_at(AT_FDCWD, path, 64 << 20, &b, NULL) < 0)
		return NULL;
	*len = b.len;
	return b.data ? b.data : xstrdup("");
}

static void spill(const char *path, const void *p, size_t n, off_t at, bool trunc)
{
	int fd = open(path, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
	if (fd < 0 || pwrite(fd, p, n, at) != (ssize_t)n)
		diag("write %s failed", path);
	if (fd >= 0)
		close(fd);
}

static void sql(const char *path, const char *q)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, q, NULL, NULL, &msg) != SQLITE_OK)
		diag("%s: %s", q, msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	sqlite3_close(db);
}

static int64_t query(const char *path, const char *q)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A store with one image and enough events to fill pages of their own. */
static void make_store(const char *path)
{
	unlink(path);
	struct store *db = NULL;
	struct capsa_error *err = NULL;
	if (store_open(path, 0, &db, &err) < 0)
		diag("make store: %s", err->msg);
	store_exec(db,
		   "INSERT INTO images(id, manifest_digest, config, created_at) VALUES('sha256:1', 'sha256:2', '{}', 1);"
		   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) "
		   "INSERT INTO events(ts, type, attrs) SELECT i, 'start', '{\"some\":\"attributes\"}' FROM n;",
		   &err);
	store_close(db);
	capsa_error_free(err);
	sql(path, "PRAGMA wal_checkpoint(TRUNCATE)");
}

/* Opening path with flags fails with the refusal, whose message has want,
 * and leaves the file's bytes as they were. */
static void refused(const char *path, unsigned flags, const char *want, const char *what)
{
	size_t n0 = 0, n1 = 0;
	char *before = slurp(path, &n0);
	struct store *db = NULL;
	struct capsa_error *err = NULL;
	int rc = store_open(path, flags, &db, &err);
	ok(rc < 0 && err && err->code == EUCLEAN && strstr(err->msg, path) && strstr(err->msg, want) &&
		   strstr(err->msg, "move it aside"),
	   "%s: refused: %s", what, err ? err->msg : "opened");
	char *after = slurp(path, &n1);
	ok(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "%s: the file is unchanged", what);
	if (rc == 0)
		store_close(db);
	capsa_error_free(err);
	free(before);
	free(after);
}

static void test_checks(const char *dir)
{
	char *path = xasprintf("%s/check.db", dir);
	struct store *db = NULL;
	struct capsa_error *err = NULL;

	make_store(path);
	is_int(query(path, "PRAGMA application_id"), STORE_APPLICATION_ID, "a new store has capsa's application_id");
	DIR *d = opendir(dir);
	int stray = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		stray += strstr(de->d_name, ".new-") != NULL;
	closedir(d);
	is_int(stray, 0, "no temporary file left beside it");

	/* a store made before application_id: opened, and stamped */
	sql(path, "PRAGMA application_id=0");
	ok(store_open(path, 0, &db, &err) == 0, "a store without application_id opens: %s", err ? err->msg : "ok");
	store_close(db);
	is_int(query(path, "PRAGMA application_id"), STORE_APPLICATION_ID, "...and gets capsa's");

	/* damage the cheap checks find */
	char junk[16384];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	spill(path, junk, sizeof(junk), 0, true);
	refused(path, 0, "file is not a database", "16 KiB of garbage");
	make_store(path);
	spill(path, "CAPSA", 5, 0, false);
	refused(path, 0, "file is not a database", "a broken header");
	make_store(path);
	sql(path, "PRAGMA application_id=42");
	refused(path, 0, "application_id 0x0000002a", "another program's application_id");
	unlink(path);
	sql(path, "CREATE TABLE notes(x)");
	refused(path, 0, "without capsa's schema", "a SQLite database of another program");
	make_store(path);
	sql(path, "PRAGMA foreign_keys=OFF; DROP TABLE refs");
	refused(path, 0, "table refs of schema version", "a missing table");
	make_store(path);
	sql(path, "PRAGMA user_version=99");
	int rc = store_open(path, 0, &db, &err);
	ok(rc < 0 && err->code == EPROTO && strstr(err->msg, "newer"), "a newer schema is refused as such: %s",
	   err ? err->msg : "opened");
	capsa_error_free(err);
	err = NULL;

	/* damage only quick_check finds: garbage over the events table's pages */
	make_store(path);
	int64_t page = query(path, "SELECT rootpage FROM sqlite_master WHERE name='events'");
	int64_t size = query(path, "PRAGMA page_size");
	spill(path, junk, (size_t)size, (off_t)((page - 1) * size), false);
	ok(store_open(path, 0, &db, &err) == 0, "without STORE_VERIFY, the cheap checks pass over it");
	ok(db && !db->verified, "...and it is not marked verified");
	store_close(db);
	refused(path, STORE_VERIFY, "quick_check: ", "garbage pages");
	make_store(path);
	ok(store_open(path, STORE_VERIFY, &db, &err) == 0 && db->verified, "a sound store passes quick_check");
	store_close(db);

	/* a 0-byte file: a new store, unless given to store_open() (context.c
	 * refuses it where the store has content, see test_ctx_checks) */
	spill(path, "", 0, 0, true);
	ok(store_open(path, 0, &db, &err) == 0, "a 0-byte file is a new store to store_open()");
	store_close(db);
	unlink(path);
	free(path);
}

/* ctx_db(): a 0-byte capsa.db where the store has content, and quick_check
 * once per file and boot (the stamp). */
static void test_ctx_checks(const char *dir)
{
	char *root = xasprintf("%s/croot", dir), *run = xasprintf("%s/crun", dir);
	char *path = xasprintf("%s/capsa.db", root), *stamp = xasprintf("%s/store.verified", root);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	struct store *db = NULL;

	capsa_ctx_open(&o, &ctx, &err);
	ok(ctx_db(ctx, &err) && !ctx->db->verified && access(stamp, F_OK) < 0,
	   "a new (empty) store is not verified and gets no stamp");
	capsa_ctx_free(ctx);
	make_store(path);
	capsa_ctx_open(&o, &ctx, &err);
	ok(ctx_db(ctx, &err) && ctx->db->verified && access(stamp, F_OK) == 0,
	   "first open of a store with an image: verified, stamped");
	capsa_ctx_free(ctx);
	capsa_ctx_open(&o, &ctx, &err);
	ok(ctx_db(ctx, &err) && !ctx->db->verified, "next open, same file and boot: not verified again");
	capsa_ctx_free(ctx);
	spill(stamp, "another-boot 1 2\n", 17, 0, true);
	capsa_ctx_open(&o, &ctx, &err);
	ok(ctx_db(ctx, &err) && ctx->db->verified, "a stamp of another boot or file: verified again");
	capsa_ctx_free(ctx);

	/* a restored copy with a damaged page: a new inode, so verified */
	char *copy = xasprintf("%s/copy.db", dir);
	size_t n = 0;
	char *bytes = slurp(path, &n);
	int64_t page = query(path, "SELECT rootpage FROM sqlite_master WHERE name='events'");
	int64_t size = query(path, "PRAGMA page_size");
	memset(bytes + (page - 1) * size, 0x5a, (size_t)size);
	spill(copy, bytes, n, 0, true);
	rename(copy, path);
	capsa_ctx_open(&o, &ctx, &err);
	db = ctx_db(ctx, &err);
	ok(!db && err && strstr(err->msg, "quick_check"), "a replaced file is verified: %s", err ? err->msg : "opened");
	capsa_ctx_free(ctx);
	capsa_error_free(err);
	err = NULL;

	/* emptied: refused where blobs/sha256 has a file, left at 0 bytes */
	spill(path, "", 0, 0, true);
	char *blob = xasprintf("%s/blobs/sha256/%064d", root, 0);
	capsa_ctx_open(&o, &ctx, &err);
	spill(blob, "x", 1, 0, true);
	struct stat sb;
	db = ctx_db(ctx, &err);
	ok(!db && err && err->code == EUCLEAN && strstr(err->msg, path) &&
		   strstr(err->msg, "the file is empty, but") && strstr(err->msg, "blobs/sha256"),
	   "a 0-byte capsa.db with blobs is refused: %s", err ? err->msg : "opened");
	ok(stat(path, &sb) == 0 && sb.st_size == 0, "...and left at 0 bytes");
	capsa_ctx_free(ctx);
	capsa_error_free(err);
	err = NULL;
	unlink(blob);
	capsa_ctx_open(&o, &ctx, &err);
	db = ctx_db(ctx, &err);
	ok(db != NULL, "without content, a 0-byte capsa.db is a new store: %s", err ? err->msg : "ok");
	capsa_ctx_free(ctx);
	free(bytes);
	free(copy);
	free(blob);
	free(root);
	free(run);
	free(path);
	free(stamp);
}

int main(void)
{
	char tmpl[] = "/tmp/capsa-store-XXXXXX";
	ok(mkdtemp(tmpl) != NULL, "mkdtemp");
	char *root = xasprintf("%s/root", tmpl), *run = xasprintf("%s/run", tmpl);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	ok(capsa_ctx_open(&o, &ctx, &err) == 0, "open context");
	struct store *db = ctx_db(ctx, &err);
	ok(db != NULL, "open database");
	sqlite3_stmt *st;
	store_prepare(db, "PRAGMA journal_mode", &st, &err);
	sqlite3_step(st);
	is_str((const char *)sqlite3_column_text(st, 0), "wal", "WAL mode");
	sqlite3_finalize(st);
	store_prepare(db, "PRAGMA user_version", &st, &err);
	sqlite3_step(st);
	is_int(sqlite3_column_int(st, 0), store_schema_version, "migrated to the current schema");
	sqlite3_finalize(st);

	ok(store_begin(db, &err) == 0, "begin");
	ok(store_add_event(db, NULL, "test", NULL, &err) == 0, "insert in tx");
	store_rollback(db);
	store_prepare(db, "SELECT count(*) FROM events", &st, &err);
	sqlite3_step(st);
	is_int(sqlite3_column_int(st, 0), 0, "rollback discards");
	sqlite3_finalize(st);

	/* a second connection sees the schema and does not re-migrate */
	struct store *db2 = NULL;
	char *path = xasprintf("%s/capsa.db", root);
	ok(store_open(path, 0, &db2, &err) == 0, "second connection");
	store_close(db2);
	ok(store_open("/nonexistent/dir/capsa.db", 0, &db2, &err) < 0 && err &&
		   strstr(err->msg, "/nonexistent/dir/capsa.db"),
	   "error names the path: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;

	struct stat sb;
	char *blobs = xasprintf("%s/blobs/sha256", root);
	ok(stat(blobs, &sb) == 0 && (sb.st_mode & 0777) == 0700, "blob dir 0700");
	capsa_ctx_free(ctx);

	o.root = "relative/path";
	ok(capsa_ctx_open(&o, &ctx, &err) < 0 && strstr(err->msg, "absolute"), "relative root refused");
	capsa_error_free(err);

	test_checks(tmpl);
	test_ctx_checks(tmpl);

	int parent = open("/", O_PATH | O_DIRECTORY);
	rm_rf_at(parent, tmpl + 1, NULL);
	close(parent);
	free(root);
	free(run);
	free(path);
	free(blobs);
	return done_testing();
}
