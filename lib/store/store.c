/* store.c: opening, checking, migrating and transacting on capsa.db.
 *
 * An open checks the file before anything is written to it (the WAL switch,
 * a migration): a file that is not a capsa store, or a damaged one, is
 * refused with its path and left as it is (docs/image-store.md, "Damaged
 * stores").  A new store is built under a temporary name and linked into
 * place complete.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "util/str.h"

/* Each entry moves the schema from version i to i+1.  Never edit a shipped
 * entry: add a new one (and its new tables to schema_tables below). */
static const char *const migrations[] = {
	/* 1: the initial schema, shared by the image store, sandboxes,
	 * events, templates and the capacity ledger. */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE blobs("
	"  digest TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  media_type TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE layers("
	"  diff_id TEXT PRIMARY KEY,"		  /* digest of the uncompressed tar: names layers/<hex> */
	"  size INTEGER NOT NULL DEFAULT 0,"	  /* bytes of file content unpacked */
	"  entries INTEGER NOT NULL DEFAULT 0,"
	"  state TEXT NOT NULL,"		  /* unpacking | ready */
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE images("
	"  id TEXT PRIMARY KEY,"		  /* config digest */
	"  manifest_digest TEXT NOT NULL,"
	"  manifest_media_type TEXT NOT NULL DEFAULT '',"
	"  config TEXT NOT NULL,"
	"  platform TEXT NOT NULL DEFAULT 'linux/amd64',"
	"  size INTEGER NOT NULL DEFAULT 0,"	  /* manifest + config + layer blobs, as stored */
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE image_layers("
	"  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"		  /* 0 is the bottom layer */
	"  diff_id TEXT NOT NULL REFERENCES layers(diff_id),"
	"  blob_digest TEXT NOT NULL,"		  /* the layer blob as distributed (compressed) */
	"  blob_size INTEGER NOT NULL DEFAULT 0,"
	"  media_type TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY(image_id, idx));"
	"CREATE INDEX image_layers_blob ON image_layers(blob_digest);"
	"CREATE INDEX image_layers_layer ON image_layers(diff_id);"
	"CREATE TABLE image_mounts("		  /* capsa image mount / capsa_image_mount_rootfs */
	"  target TEXT PRIMARY KEY,"		  /* absolute mount point */
	"  image_id TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE refs("
	"  name TEXT PRIMARY KEY,"		  /* docker.io/library/busybox:latest */
	"  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX refs_image ON refs(image_id);"
	"CREATE TABLE sandboxes("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  image_id TEXT,"
	"  image_ref TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL,"		  /* creating running paused exited */
	"  config TEXT NOT NULL DEFAULT '{}',"
	"  labels TEXT NOT NULL DEFAULT '{}',"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  exit_code INTEGER,"
	"  reason TEXT,"			  /* exited signaled oom stopped killed lost ... */
	"  error TEXT,"
	"  supervisor_pid INTEGER,"
	"  init_pid INTEGER,"
	"  auto_remove INTEGER NOT NULL DEFAULT 0,"
	"  deadline_at INTEGER,"		  /* max lifetime, ms since epoch */
	"  idle_timeout_ms INTEGER,"
	"  reserved_cpus_milli INTEGER NOT NULL DEFAULT 0,"
	"  reserved_memory INTEGER NOT NULL DEFAULT 0,"
	"  reserved_disk INTEGER NOT NULL DEFAULT 0,"
	"  reserved INTEGER NOT NULL DEFAULT 0);"  /* 1 while the ledger holds it */
	"CREATE INDEX sandboxes_state ON sandboxes(state);"
	"CREATE TABLE sandbox_layers("
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  layer_digest TEXT NOT NULL,"		  /* a layers.diff_id */
	"  PRIMARY KEY(sandbox_id, layer_digest));"
	"CREATE INDEX sandbox_layers_layer ON sandbox_layers(layer_digest);"
	"CREATE TABLE events("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  ts INTEGER NOT NULL,"
	"  sandbox_id TEXT,"
	"  type TEXT NOT NULL,"
	"  attrs TEXT NOT NULL DEFAULT '{}');"
	"CREATE INDEX events_ts ON events(ts);"
	"CREATE TABLE templates("
	"  name TEXT PRIMARY KEY,"
	"  image_ref TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);",
	/* 2: the resources a template gives its sandboxes (capsa serve,
	 * capsa template create). */
	"ALTER TABLE templates ADD COLUMN cpus_milli INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE templates ADD COLUMN memory INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE templates ADD COLUMN disk INTEGER NOT NULL DEFAULT 0;",
	/* 3: the block of subordinate ids each sandbox's user namespace maps
	 * (lib/sandbox/userns.c); released with the sandbox's row. */
	"CREATE TABLE userns_ranges("
	"  sandbox_id TEXT PRIMARY KEY REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  uid_start INTEGER NOT NULL UNIQUE,"
	"  gid_start INTEGER NOT NULL UNIQUE,"
	"  count INTEGER NOT NULL);",
	/* 4: what proves a sandbox's supervisor alive or gone without its
	 * runtime directory (lib/sandbox/liveness.c): the processes that
	 * create and supervise it, named by pid and start time within a boot;
	 * the cgroup it was given; and a removal asked for while it was still
	 * being created. */
	"ALTER TABLE sandboxes ADD COLUMN boot_id TEXT;"
	"ALTER TABLE sandboxes ADD COLUMN creator_pid INTEGER;"
	"ALTER TABLE sandboxes ADD COLUMN creator_start INTEGER;"
	"ALTER TABLE sandboxes ADD COLUMN supervisor_start INTEGER;"
	"ALTER TABLE sandboxes ADD COLUMN cgroup TEXT;"
	"ALTER TABLE sandboxes ADD COLUMN remove_requested INTEGER NOT NULL DEFAULT 0;",
	/* 5: networks (lib/net): named networks, and what each sandbox was
	 * given (its address while it runs, and its egress rules) */
	"CREATE TABLE networks("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  subnet TEXT NOT NULL,"
	"  bridge TEXT NOT NULL UNIQUE,"
	"  labels TEXT NOT NULL DEFAULT '{}',"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE sandbox_net("
	"  sandbox_id TEXT PRIMARY KEY REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  mode TEXT NOT NULL,"			  /* none bridge host container */
	"  network TEXT,"
	"  bridge TEXT,"
	"  ip TEXT,"
	"  policy TEXT NOT NULL DEFAULT '{}',"	  /* {"allowOut": [...], "denyOut": [...]} */
	"  container TEXT,"
	"  released INTEGER NOT NULL DEFAULT 0);",
};

const int store_schema_version = (int)ARRAY_SIZE(migrations);

/* The tables each schema version has (since: the version that made it).  A
 * store without one of its tables is damaged. */
static const struct {
	const char *name;
	int since;
} schema_tables[] = {
	{ "meta", 1 }, { "blobs", 1 }, { "layers", 1 }, { "images", 1 }, { "image_layers", 1 },
	{ "image_mounts", 1 }, { "refs", 1 }, { "sandboxes", 1 }, { "sandbox_layers", 1 }, { "events", 1 },
	{ "templates", 1 }, { "userns_ranges", 3 }, { "networks", 5 }, { "sandbox_net", 5 },
};

int store_refuse(const char *path, struct capsa_error **err, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return error_set(err, EUCLEAN,
			 "%s is not a usable capsa store (%s); it was left as it is: restore it from a backup, or move "
			 "it aside with its -wal and -shm files to start an empty store (images must then be imported "
			 "or pulled again)",
			 path, why);
}

/* A failed read while checking: damage when SQLite says so, else an error
 * as any other (busy, permissions, memory). */
static int check_failed(struct store *s, const char *what, struct capsa_error **err)
{
	int code = sqlite3_errcode(s->db);
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
		return store_refuse(s->path, err, "%s", sqlite3_errmsg(s->db));
	return store_error(s, what, err);
}

static int query_int(struct store *s, const char *sql, int *out, struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		return check_failed(s, sql, err);
	*out = sqlite3_column_int(st, 0);
	return 0;
}

int store_error(struct store *s, const char *what, struct capsa_error **err)
{
	int code = sqlite3_errcode(s->db);
	int e = code == SQLITE_BUSY ? EBUSY : code == SQLITE_FULL ? ENOSPC : code == SQLITE_READONLY ? EROFS : EIO;
	return error_set(err, e, "%s: database %s: %s", what, s->path, sqlite3_errmsg(s->db));
}

int store_exec(struct store *s, const char *sql, struct capsa_error **err)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		error_set(err, EIO, "database %s: %s", s->path, msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int store_prepare(struct store *s, const char *sql, sqlite3_stmt **out, struct capsa_error **err)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, out, NULL) != SQLITE_OK)
		return store_error(s, "prepare", err);
	return 0;
}

int store_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	if (!s)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

char *store_col_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? xstrdup((const char *)t) : NULL;
}

int store_begin(struct store *s, struct capsa_error **err)
{
	if (s->tx_depth++ > 0)
		return 0;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		s->tx_depth--;
		return store_error(s, "begin transaction", err);
	}
	return 0;
}

int store_commit(struct store *s, struct capsa_error **err)
{
	if (s->tx_depth <= 0)
		return 0;
	if (--s->tx_depth > 0)
		return 0;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		store_error(s, "commit", err);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

void store_rollback(struct store *s)
{
	if (s->tx_depth <= 0)
		return;
	s->tx_depth = 0;
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* The checks of every open, tens of microseconds: the header (SQLite's "file
 * is not a database"), capsa's application_id, the schema version, and the
 * tables of that version in sqlite_master.  A database with no version, no
 * id and no table is a new store (migrate() makes the schema). */
static int check_schema(struct store *s, int *app, int *version, struct capsa_error **err)
{
	if (query_int(s, "PRAGMA application_id", app, err) < 0 || query_int(s, "PRAGMA user_version", version, err) < 0)
		return -1;
	if (*app != 0 && *app != STORE_APPLICATION_ID)
		return store_refuse(s->path, err, "application_id 0x%08x is another program's, capsa's is 0x%08x",
				    (unsigned)*app, (unsigned)STORE_APPLICATION_ID);
	if (*version > store_schema_version)
		return error_set(err, EPROTO,
				 "database %s: schema version %d is newer than this capsa understands (%d)", s->path,
				 *version, store_schema_version);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT name FROM sqlite_master WHERE type='table'", -1, &st, NULL) != SQLITE_OK)
		return check_failed(s, "read the schema", err);
	bool have[ARRAY_SIZE(schema_tables)] = { false };
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		for (size_t i = 0; i < ARRAY_SIZE(schema_tables); i++)
			if (str_eq((const char *)sqlite3_column_text(st, 0), schema_tables[i].name))
				have[i] = true;
	}
	if (rc != SQLITE_DONE)
		return check_failed(s, "read the schema", err);
	if (*version == 0)
		return n == 0 && *app == 0 ? 0 : store_refuse(s->path, err, "a SQLite database without capsa's schema");
	for (size_t i = 0; i < ARRAY_SIZE(schema_tables); i++)
		if (schema_tables[i].since <= *version && !have[i])
			return store_refuse(s->path, err, "table %s of schema version %d is missing",
					    schema_tables[i].name, *version);
	return 0;
}

/* PRAGMA quick_check, a pass over every page (docs/image-store.md has its
 * cost), of a store that holds images or sandboxes. */
static int verify(struct store *s, struct capsa_error **err)
{
	int used = 0;
	if (query_int(s, "SELECT EXISTS(SELECT 1 FROM images) OR EXISTS(SELECT 1 FROM sandboxes)", &used, err) < 0)
		return -1;
	if (!used)
		return 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		return check_failed(s, "quick_check", err);
	const char *res = (const char *)sqlite3_column_text(st, 0);
	if (!str_eq(res, "ok")) {
		/* the first problem, on one line: "*** in database main ***\nPage 3: ..." */
		res = res ? res : "no answer";
		if (str_has_prefix(res, "*** ") && strchr(res, '\n'))
			res = strchr(res, '\n') + 1;
		size_t n = strcspn(res, "\n");
		return store_refuse(s->path, err, "quick_check: %.*s%s", (int)(n < 200 ? n : 200), res,
				    res[n] || n > 200 ? " ..." : "");
	}
	s->verified = true;
	return 0;
}

/* Moves the schema to the current version and stamps capsa's application_id
 * (stores made before it had none); app and version are what the checks
 * read, and are read again under the write lock. */
static int migrate(struct store *s, int app, int version, struct capsa_error **err)
{
	if (version == store_schema_version && app == STORE_APPLICATION_ID)
		return 0;
	if (store_begin(s, err) < 0)
		return -1;
	/* another process may have migrated meanwhile */
	if (query_int(s, "PRAGMA user_version", &version, err) < 0) {
		store_rollback(s);
		return -1;
	}
	for (int v = version; v < store_schema_version; v++) {
		if (store_exec(s, migrations[v], err) < 0) {
			store_rollback(s);
			return error_wrap(err, "migrate schema to version %d", v + 1);
		}
	}
	char sql[96];
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d; PRAGMA application_id=%d", store_schema_version,
		 STORE_APPLICATION_ID);
	if (store_exec(s, sql, err) < 0) {
		store_rollback(s);
		return -1;
	}
	return store_commit(s, err);
}

static int open_db(const char *path, int flags, struct store **out, struct capsa_error **err)
{
	struct store *s = xcalloc(1, sizeof(*s));
	s->path = xstrdup(path);
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		error_set(err, EIO, "open database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		store_close(s);
		return -1;
	}
	sqlite3_busy_timeout(s->db, 30000);
	sqlite3_extended_result_codes(s->db, 0);
	*out = s;
	return 0;
}

/* A new store: the schema is made in <path>.new-<random> (a rollback
 * journal, nothing left beside it once closed) and the file linked to
 * path, which fails if another process linked its own first.  So capsa.db
 * is never an empty file while a store is being made (context.c refuses
 * one where the store has content). */
static int store_create(const char *path, struct capsa_error **err)
{
	_cleanup_free_ char *hex = random_hex(8);
	_cleanup_free_ char *tmp = xasprintf("%s.new-%s", path, hex);
	struct store *s = NULL;
	int rc = open_db(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s, err);
	if (rc == 0)
		rc = migrate(s, 0, 0, err);
	store_close(s);
	if (rc == 0 && link(tmp, path) < 0 && errno != EEXIST)
		rc = error_sys(err, errno, "create database %s", path);
	unlink(tmp);
	return rc < 0 ? error_wrap(err, "create a new store") : 0;
}

int store_open(const char *path, unsigned flags, struct store **out, struct capsa_error **err)
{
	bool readonly = flags & STORE_READONLY;
	if (!readonly && access(path, F_OK) < 0 && errno == ENOENT && store_create(path, err) < 0)
		return -1;
	struct store *s;
	if (open_db(path, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, &s, err) < 0)
		return -1;
	/* Every capsa command is a short-lived connection.  By default the
	 * last one to close deletes the WAL and the next re-creates it with a
	 * header sync.  Keep the file: the closing checkpoint still empties it
	 * (so the next connection has no WAL to replay into its index), but
	 * nobody pays for re-creating it. */
	int persist = 1;
	sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	/* ...and truncated after that checkpoint, so that the next connection
	 * does not scan already checkpointed frames to build its index */
	sqlite3_exec(s->db, "PRAGMA journal_size_limit=0", NULL, NULL, NULL);
	int app = 0, version = 0;
	if (check_schema(s, &app, &version, err) < 0 || ((flags & STORE_VERIFY) && version > 0 && verify(s, err) < 0)) {
		/* refused: not even the closing checkpoint may write to it */
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		store_close(s);
		return -1;
	}
	if (!readonly) {
		/* WAL: readers never block the writer.  synchronous=NORMAL: a
		 * commit survives a process crash; an OS crash may lose the
		 * last transactions but never corrupts the file. */
		if (store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err) < 0 ||
		    store_exec(s, "PRAGMA foreign_keys=ON;", err) < 0 || migrate(s, app, version, err) < 0) {
			store_close(s);
			return -1;
		}
	} else {
		store_exec(s, "PRAGMA foreign_keys=ON;", NULL);
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db)
		sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

int store_add_event(struct store *s, const char *sandbox_id, const char *type, const char *attrs_json,
		    struct capsa_error **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(s, "INSERT INTO events(ts, sandbox_id, type, attrs) VALUES(?,?,?,?)", &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms());
	store_bind_text(st, 2, sandbox_id);
	store_bind_text(st, 3, type);
	store_bind_text(st, 4, attrs_json ? attrs_json : "{}");
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(s, "record event", err);
	return 0;
}
