/* test-store.c: lib/store: open/migrate, WAL, transactions, context dirs. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/context.h"
#include "store/store.h"
#include "tap.h"
#include "util/fs.h"

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
	ok(store_open(path, false, &db2, &err) == 0, "second connection");
	store_close(db2);
	ok(store_open("/nonexistent/dir/capsa.db", false, &db2, &err) < 0 && err &&
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

	int parent = open("/", O_PATH | O_DIRECTORY);
	rm_rf_at(parent, tmpl + 1, NULL);
	close(parent);
	free(root);
	free(run);
	free(path);
	free(blobs);
	return done_testing();
}
