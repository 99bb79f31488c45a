/* userns.c: the block of host ids a sandbox's user namespace maps.
 *
 * Every sandbox (--userns auto) gets its own block of CAPSA_USERNS_BLOCK ids
 * from the subordinate ranges of the `capsa` user in /etc/subuid and
 * /etc/subgid (CAPSA_SUBUID_FILE / CAPSA_SUBGID_FILE name other files, for
 * tests).  The user and its ranges are created when missing.  The block is
 * recorded in the store's userns_ranges table in the same write transaction
 * that picks it, so two sandboxes of one store never share ids; the row goes
 * with the sandbox's row (ON DELETE CASCADE), which releases the block.
 * Must never: hand out a block that overlaps another user's range, or map
 * host root.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/rootless.h"
#include "sandbox.h"
#include "userns.h"
#include "util/fs.h"
#include "util/str.h"

#define CAPSA_USER "capsa"
/* what a new capsa range holds: this many blocks */
#define NEW_RANGE_BLOCKS 1024
#define FIRST_SUBID 100000ULL
#define MAX_ID 0xfffffffeULL

static bool is_capsa(const struct linux_subid_range *r, const char *uid_str)
{
	return strcmp(r->owner, CAPSA_USER) == 0 || (uid_str && strcmp(r->owner, uid_str) == 0);
}

/* capsa's ranges must not overlap anyone else's, nor reach host root */
static int subid_check(const struct linux_subid_file *f, const char *uid_str, struct capsa_error **err)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct linux_subid_range *a = &f->r[i];
		if (!is_capsa(a, uid_str))
			continue;
		if (a->start == 0 || a->start + a->count > MAX_ID + 1)
			return error_set(err, EINVAL, "%s line %d: range %s:%llu:%llu maps host root or passes the last id",
					 f->path, a->line, a->owner, (unsigned long long)a->start,
					 (unsigned long long)a->count);
		for (size_t j = 0; j < f->n; j++) {
			const struct linux_subid_range *b = &f->r[j];
			if (j == i || is_capsa(b, uid_str) || !b->count)
				continue;
			if (a->start < b->start + b->count && b->start < a->start + a->count)
				return error_set(err, EEXIST, "%s line %d: range %s:%llu:%llu overlaps %s:%llu:%llu (line %d)",
						 f->path, a->line, a->owner, (unsigned long long)a->start,
						 (unsigned long long)a->count, b->owner, (unsigned long long)b->start,
						 (unsigned long long)b->count, b->line);
		}
	}
	return 0;
}

/* Appends a range for capsa after every existing range (the file locked). */
static int subid_append(int fd, struct linux_subid_file *f, struct capsa_error **err)
{
	uint64_t start = FIRST_SUBID;
	for (size_t i = 0; i < f->n; i++)
		if (f->r[i].start + f->r[i].count > start)
			start = f->r[i].start + f->r[i].count;
	start = (start + CAPSA_USERNS_BLOCK - 1) / CAPSA_USERNS_BLOCK * CAPSA_USERNS_BLOCK;
	uint64_t count = (uint64_t)NEW_RANGE_BLOCKS * CAPSA_USERNS_BLOCK;
	if (start + count > MAX_ID + 1)
		return error_set(err, ENOSPC, "%s: no room for a range of %llu ids for the %s user after the existing ones",
				 f->path, (unsigned long long)count, CAPSA_USER);
	char line[96];
	int n = snprintf(line, sizeof(line), "%s:%llu:%llu\n", CAPSA_USER, (unsigned long long)start,
			 (unsigned long long)count);
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		char last;
		if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n' && write(fd, "\n", 1) != 1)
			return error_sys(err, errno, "append to %s", f->path);
	}
	if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
		return error_sys(err, errno, "append to %s", f->path);
	f->r = xrealloc(f->r, (f->n + 1) * sizeof(*f->r));
	f->r[f->n++] = (struct linux_subid_range){ xstrdup(CAPSA_USER), start, count, 0 };
	return 0;
}

/* Reads path (under an exclusive lock), adding capsa's range if missing. */
static int subid_load(struct linux_subid_file *f, const char *path, const char *uid_str, struct capsa_error **err)
{
	f->path = path;
	_cleanup_close_ int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return error_sys(err, errno, "open %s", path);
	if (flock(fd, LOCK_EX) < 0)
		return error_sys(err, errno, "lock %s", path);
	struct buf b = BUF_INIT;
	int rc = 0;
	if (read_all(fd, &b, 4 << 20) < 0)
		rc = error_sys(err, errno, "read %s", path);
	buf_cstr(&b);
	if (rc == 0)
		rc = linux_subid_parse(f, b.data ? b.data : "", err);
	buf_release(&b);
	if (rc < 0)
		return -1;
	bool have = false;
	for (size_t i = 0; i < f->n; i++)
		have |= is_capsa(&f->r[i], uid_str) && f->r[i].count > 0;
	if (!have && subid_append(fd, f, err) < 0)
		return -1;
	return subid_check(f, uid_str, err);
}

/* The capsa system user (no login, no home), created with useradd. */
static int ensure_user(char **uid_str, struct capsa_error **err)
{
	struct passwd *pw = getpwnam(CAPSA_USER);
	if (!pw) {
		char *argv[] = { (char *)"useradd", (char *)"--system", (char *)"--user-group", (char *)"--no-create-home",
				 (char *)"--home-dir", (char *)"/nonexistent", (char *)"--shell", (char *)"/usr/sbin/nologin",
				 (char *)"--comment", (char *)"capsa sandboxes", (char *)CAPSA_USER, NULL };
		pid_t pid;
		int status = 0;
		extern char **environ;
		if (posix_spawnp(&pid, "useradd", NULL, NULL, argv, environ) != 0 || waitpid(pid, &status, 0) < 0 ||
		    !WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 9 /* exists */))
			return error_set(err, EIO, "create the %s user with useradd: failed (create it by hand, or run "
					 "with --userns host)", CAPSA_USER);
		pw = getpwnam(CAPSA_USER);
	}
	*uid_str = pw ? xasprintf("%u", (unsigned)pw->pw_uid) : NULL;
	return 0;
}

struct block_pick {
	uint64_t uid, gid;
};

static void blocks_of(const struct linux_subid_file *f, const char *uid_str, uint64_t **out, size_t *n)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct linux_subid_range *r = &f->r[i];
		if (!is_capsa(r, uid_str))
			continue;
		for (uint64_t s = r->start; s + CAPSA_USERNS_BLOCK <= r->start + r->count; s += CAPSA_USERNS_BLOCK) {
			*out = xrealloc(*out, (*n + 1) * sizeof(**out));
			(*out)[(*n)++] = s;
		}
	}
}

static bool used_has(const uint64_t *v, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static char *ranges_text(const struct linux_subid_file *f, const char *uid_str)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < f->n; i++)
		if (is_capsa(&f->r[i], uid_str))
			buf_appendf(&b, "%s%s:%llu:%llu", b.len ? ", " : "", f->r[i].owner,
				    (unsigned long long)f->r[i].start, (unsigned long long)f->r[i].count);
	return buf_steal(&b);
}

/* In the store's write transaction: the first block free in both files. */
static int pick_block(struct store *db, const struct linux_subid_file *uf, const struct linux_subid_file *gf, const char *uid_str,
		      struct block_pick *out, struct capsa_error **err)
{
	_cleanup_free_ uint64_t *ub = NULL, *gb = NULL, *uu = NULL, *gu = NULL;
	size_t nub = 0, ngb = 0, nused = 0;
	blocks_of(uf, uid_str, &ub, &nub);
	blocks_of(gf, uid_str, &gb, &ngb);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db, "SELECT uid_start, gid_start FROM userns_ranges", &st, err) < 0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		uu = xrealloc(uu, (nused + 1) * sizeof(*uu));
		gu = xrealloc(gu, (nused + 1) * sizeof(*gu));
		uu[nused] = (uint64_t)sqlite3_column_int64(st, 0);
		gu[nused++] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	for (size_t i = 0; i < nub && i < ngb; i++) {
		if (!used_has(uu, nused, ub[i]) && !used_has(gu, nused, gb[i])) {
			*out = (struct block_pick){ ub[i], gb[i] };
			return 0;
		}
	}
	_cleanup_free_ char *ut = ranges_text(uf, uid_str), *gt = ranges_text(gf, uid_str);
	return error_set(err, ENOSPC,
			 "user namespace: no free block of %u ids in %s (%s) and %s (%s): %zu sandboxes hold the %zu "
			 "blocks there; remove a sandbox, give the %s user a larger range, or use --userns host",
			 CAPSA_USERNS_BLOCK, uf->path, ut && *ut ? ut : "no range", gf->path, gt && *gt ? gt : "no range",
			 nused, nub < ngb ? nub : ngb, CAPSA_USER);
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

int sandbox_userns_alloc(struct capsa_ctx *ctx, const char *id, struct proto_sandbox *s, struct capsa_error **err)
{
	_cleanup_free_ char *uid_str = NULL;
	struct linux_subid_file uf = { 0 }, gf = { 0 };
	struct block_pick pick = { 0, 0 };
	sqlite3_stmt *st = NULL;
	int rc = -1;
	struct store *db = ctx_db(ctx, err);
	if (!db || ensure_user(&uid_str, err) < 0)
		return -1;
	if (subid_load(&uf, env_or("CAPSA_SUBUID_FILE", "/etc/subuid"), uid_str, err) < 0 ||
	    subid_load(&gf, env_or("CAPSA_SUBGID_FILE", "/etc/subgid"), uid_str, err) < 0)
		goto out;
	if (store_begin(db, err) < 0)
		goto out;
	if (pick_block(db, &uf, &gf, uid_str, &pick, err) < 0) {
		store_rollback(db);
		goto out;
	}
	if (store_prepare(db, "INSERT INTO userns_ranges(sandbox_id, uid_start, gid_start, count) VALUES(?,?,?,?)", &st,
			  err) < 0) {
		store_rollback(db);
		goto out;
	}
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)pick.uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)pick.gid);
	sqlite3_bind_int64(st, 4, CAPSA_USERNS_BLOCK);
	if (sqlite3_step(st) != SQLITE_DONE) {
		store_error(db, "record user namespace range", err);
		store_rollback(db);
		goto out;
	}
	if (store_commit(db, err) < 0)
		goto out;
	s->userns_uid = pick.uid;
	s->userns_gid = pick.gid;
	s->userns_count = CAPSA_USERNS_BLOCK;
	rc = 0;
out:
	sqlite3_finalize(st);
	linux_subid_file_release(&uf);
	linux_subid_file_release(&gf);
	return rc;
}

json_t *sandbox_userns_json(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "SELECT uid_start, gid_start, count FROM userns_ranges WHERE sandbox_id=?", &st,
				 NULL) < 0)
		return NULL;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	return json_pack("{s:I, s:I, s:I}", "uid", (json_int_t)sqlite3_column_int64(st, 0), "gid",
			 (json_int_t)sqlite3_column_int64(st, 1), "size", (json_int_t)sqlite3_column_int64(st, 2));
}

int sandbox_userns_own_dirs(const struct proto_sandbox *s, struct capsa_error **err)
{
	/* with --disk the upper dir is made in the image once the supervisor
	 * has mounted it, and given to the block there (sup_disk_mount) */
	if (!s->userns_count || s->disk_mount)
		return 0;
	/* the writable layer's root is the sandbox's /, owned by root inside */
	_cleanup_free_ char *upper = xasprintf("%s/upper", s->sandbox_dir);
	if (chown(upper, (uid_t)s->userns_uid, (gid_t)s->userns_gid) < 0)
		return error_sys(err, errno, "give %s to the user namespace", upper);
	return 0;
}
