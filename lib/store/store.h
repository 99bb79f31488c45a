/* store.h: the SQLite state database (capsa.db, WAL).
 *
 * One schema for every module, versioned with PRAGMA user_version and
 * migrated forward in one transaction at open.  Write transactions are
 * BEGIN IMMEDIATE so that concurrent capsa processes queue on the busy
 * timeout instead of failing half-way.
 */
#ifndef CAPSA_STORE_H
#define CAPSA_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

struct store {
	sqlite3 *db;
	char *path;
	int tx_depth;
	bool verified; /* STORE_VERIFY ran PRAGMA quick_check, and it passed */
};

/* PRAGMA application_id of every capsa.db ("caps"); set at creation, and by
 * the first open of a store made before it. */
#define STORE_APPLICATION_ID 0x63617073

enum {
	STORE_READONLY = 1 << 0,
	/* PRAGMA quick_check at open, when the store holds images or
	 * sandboxes: a pass over every page, so not for every open (see
	 * ctx_db()) */
	STORE_VERIFY = 1 << 1,
};

/* Opens path, creating a new store where there is no file.  Before anything
 * is written the file is checked (header, application_id, schema version
 * and tables; with STORE_VERIFY, quick_check): a file that is not a usable
 * capsa store is refused with store_refuse()'s error (EUCLEAN) and left as
 * it is.  A newer schema version is refused with EPROTO. */
int store_open(const char *path, unsigned flags, struct store **out, struct capsa_error **err);
void store_close(struct store *s);

/* Nested calls join the outer transaction. */
int store_begin(struct store *s, struct capsa_error **err);
int store_commit(struct store *s, struct capsa_error **err);
void store_rollback(struct store *s);

int store_exec(struct store *s, const char *sql, struct capsa_error **err);
/* Prepares sql; the statement is finalized by the caller (or by the
 * _cleanup_stmt_ attribute). */
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **out, struct capsa_error **err);
/* Error from the last failed sqlite call on s, wrapped with what. */
int store_error(struct store *s, const char *what, struct capsa_error **err);

/* Binds a NUL-terminated text (NULL binds SQL NULL). */
int store_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Column text copied to the heap (NULL for SQL NULL). */
char *store_col_strdup(sqlite3_stmt *st, int col);

static inline void cleanup_stmtp(sqlite3_stmt **st)
{
	if (*st)
		sqlite3_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(cleanup_stmtp)))

/* The error for a capsa.db that is damaged or not capsa's: the path, the
 * reason (printf-style) and how to recover; returns -1. */
int store_refuse(const char *path, struct capsa_error **err, const char *fmt, ...) PRINTF(3, 4);

/* Appends an event row (the events log that `capsa events` reads). */
int store_add_event(struct store *s, const char *sandbox_id, const char *type, const char *attrs_json,
		    struct capsa_error **err);

extern const int store_schema_version;

#endif
