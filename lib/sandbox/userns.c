/* userns.c: the block of host ids a sandbox's user namespace maps.
 *
 * Every sandbox (--userns auto) gets its own block of CAPSA_USERNS_BLOCK ids
 * from the subordinate ranges of the `capsa` user in /etc/subuid and
 * /etc/subgid (CAPSA_SUBUID_FILE / CAPSA_SUBGID_FILE name other files, for
 * tests).  The user and its ranges are created when missing.
 *
 * A block is a host resource, not a store's: two stores on one host (root's
 * and a test's, two servers with their own roots) draw from the same ranges.
 * So a block is claimed host-wide, in CLAIMS_DIR (one file per block, u<uid>
 * and g<gid>, naming the store, the sandbox, its runtime directory and its
 * cgroup), under an flock of that directory, and recorded in the store's
 * userns_ranges table in the same write transaction (taken first: the
 * order is always database, then claims).  A claim is released when the
 * sandbox's row goes; one left behind (a crash, a store deleted whole) is
 * taken over only once it is shown stale: the sandbox's directory gone,
 * its lock free, its cgroup empty or gone.
 * Must never: hand out a block while a process or the files of its sandbox
 * may live, hand out a block that overlaps another user's range, or map
 * host root.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/cgroup.h"
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

/* ---- host-wide claims ---------------------------------------------------- */

#define CLAIMS_DIR "/run/capsa-userns"
#define CLAIM_MAX 8192

/* The claims directory, flocked exclusively: close the fd to unlock. */
static int claims_lock(bool wait, struct capsa_error **err)
{
	if (mkdir(CLAIMS_DIR, 0700) < 0 && errno != EEXIST)
		return error_sys(err, errno, "create %s", CLAIMS_DIR);
	int fd = open(CLAIMS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return error_sys(err, errno, "open %s", CLAIMS_DIR);
	if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		error_sys(err, errno, "lock %s", CLAIMS_DIR);
		close(fd);
		return -1;
	}
	return fd;
}

struct claim {
	char *root, *id, *run_dir, *cgroup;
};

static void claim_release(struct claim *c)
{
	free(c->root);
	free(c->id);
	free(c->run_dir);
	free(c->cgroup);
	memset(c, 0, sizeof(*c));
}

/* 0 and *c filled, or -1: no claim file (or one that says nothing). */
static int claim_read(int dfd, const char *name, struct claim *c)
{
	memset(c, 0, sizeof(*c));
	struct buf b = BUF_INIT;
	if (read_file_at(dfd, name, CLAIM_MAX, &b, NULL) < 0) {
		buf_release(&b);
		return -1;
	}
	char **lines = strv_split(buf_cstr(&b), '\n');
	buf_release(&b);
	for (char **l = lines; *l; l++) {
		char *eq = strchr(*l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char **slot = strcmp(*l, "root") == 0	  ? &c->root
			      : strcmp(*l, "id") == 0	  ? &c->id
			      : strcmp(*l, "run") == 0	  ? &c->run_dir
			      : strcmp(*l, "cgroup") == 0 ? &c->cgroup
							  : NULL;
		if (slot && !*slot)
			*slot = xstrdup(eq + 1);
	}
	strv_free(lines);
	if (!c->root || !c->id) {
		claim_release(c);
		return -1;
	}
	return 0;
}

static bool claim_is(const struct claim *c, struct capsa_ctx *ctx, const char *id)
{
	return strcmp(c->root, ctx->root) == 0 && strcmp(c->id, id) == 0;
}

/* Whether the sandbox a claim names may still have files or processes. */
static bool claim_live(const struct claim *c)
{
	struct stat st;
	_cleanup_free_ char *dir = xasprintf("%s/sandboxes/%s", c->root, c->id);
	if (stat(dir, &st) == 0 || errno != ENOENT)
		return true;
	if (c->run_dir) {
		_cleanup_free_ char *lock = xasprintf("%s/lock", c->run_dir);
		_cleanup_close_ int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0)
			return true;
	}
	if (c->cgroup && *c->cgroup && linux_cgroup_mode() != CGROUP_MODE_NONE) {
		struct linux_cgroup *cg = NULL;
		pid_t *pids = NULL;
		size_t n = 0;
		bool busy = false;
		if (linux_cgroup_open(c->cgroup, &cg, NULL) == 0) {
			busy = linux_cgroup_pids(cg, &pids, &n, NULL) < 0 || n > 0;
			free(pids);
			linux_cgroup_free(cg);
		}
		if (busy)
			return true;
	}
	return false;
}

/* Held by another sandbox (of this store or another) that may live. */
static bool claim_taken(int dfd, const char *name, struct capsa_ctx *ctx, const char *id)
{
	struct claim c;
	if (claim_read(dfd, name, &c) < 0)
		return false;
	bool taken = !claim_is(&c, ctx, id) && claim_live(&c);
	claim_release(&c);
	return taken;
}

static int claim_write(int dfd, const char *name, const char *text, struct capsa_error **err)
{
	if (write_file_atomic_at(dfd, name, text, strlen(text), 0600, false, err) < 0)
		return error_wrap(err, "claim ids %s in %s", name, CLAIMS_DIR);
	return 0;
}

static char *claim_text(struct capsa_ctx *ctx, const char *id)
{
	_cleanup_free_ char *run = sandbox_run_dir(ctx, id);
	_cleanup_free_ char *cg = ctx_sandbox_cgroup(ctx, id);
	if (strchr(ctx->root, '\n') || strchr(run, '\n') || strchr(cg, '\n'))
		return NULL;
	return xasprintf("root=%s\nid=%s\nrun=%s\ncgroup=%s\n", ctx->root, id, run, cg);
}

static void claim_drop(int dfd, const char *name, struct capsa_ctx *ctx, const char *id)
{
	struct claim c;
	if (claim_read(dfd, name, &c) < 0)
		return;
	if (claim_is(&c, ctx, id))
		unlinkat(dfd, name, 0);
	claim_release(&c);
}

void sandbox_userns_release(struct capsa_ctx *ctx, const char *id, const struct userns_block *b)
{
	/* a claim that stays (the lock is busy too long) is stale from now
	 * on, and the next allocation that wants it shows that */
	int fd = -1;
	for (int i = 0; i < 200 && fd < 0; i++) {
		fd = claims_lock(false, NULL);
		if (fd < 0)
			poll(NULL, 0, 5);
	}
	if (fd < 0)
		return;
	char name[32];
	snprintf(name, sizeof(name), "u%llu", (unsigned long long)b->uid);
	claim_drop(fd, name, ctx, id);
	snprintf(name, sizeof(name), "g%llu", (unsigned long long)b->gid);
	claim_drop(fd, name, ctx, id);
	close(fd);
}

int sandbox_userns_block(struct capsa_ctx *ctx, const char *id, struct userns_block *out)
{
	struct store *db = ctx_db(ctx, NULL);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "SELECT uid_start, gid_start FROM userns_ranges WHERE sandbox_id=?", &st, NULL) < 0)
		return -1;
	store_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return -1;
	out->uid = (uint64_t)sqlite3_column_int64(st, 0);
	out->gid = (uint64_t)sqlite3_column_int64(st, 1);
	return 0;
}

/* ---- picking ---------------------------------------------------------------- */

/* In the store's write transaction, under the claims lock: the first block
 * free in both files, in this store and on the host; claimed for id. */
static int pick_block(struct capsa_ctx *ctx, struct store *db, int claims, const struct linux_subid_file *uf,
		      const struct linux_subid_file *gf, const char *uid_str, const char *id, struct userns_block *out,
		      struct capsa_error **err)
{
	_cleanup_free_ uint64_t *ub = NULL, *gb = NULL, *uu = NULL, *gu = NULL;
	size_t nub = 0, ngb = 0, nused = 0, nclaimed = 0;
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
	_cleanup_free_ char *text = claim_text(ctx, id);
	if (!text)
		return error_set(err, EINVAL, "user namespace: the store's paths contain a newline");
	for (size_t i = 0; i < nub && i < ngb; i++) {
		if (used_has(uu, nused, ub[i]) || used_has(gu, nused, gb[i]))
			continue;
		char un[32], gn[32];
		snprintf(un, sizeof(un), "u%llu", (unsigned long long)ub[i]);
		snprintf(gn, sizeof(gn), "g%llu", (unsigned long long)gb[i]);
		if (claim_taken(claims, un, ctx, id) || claim_taken(claims, gn, ctx, id)) {
			nclaimed++;
			continue;
		}
		if (claim_write(claims, un, text, err) < 0 || claim_write(claims, gn, text, err) < 0) {
			claim_drop(claims, un, ctx, id);
			return -1;
		}
		*out = (struct userns_block){ ub[i], gb[i] };
		return 0;
	}
	_cleanup_free_ char *ut = ranges_text(uf, uid_str), *gt = ranges_text(gf, uid_str);
	return error_set(err, ENOSPC,
			 "user namespace: no free block of %u ids in %s (%s) and %s (%s): of the %zu blocks there, "
			 "this store's sandboxes hold %zu and other stores' on this host %zu (%s); remove a sandbox, "
			 "give the %s user a larger range, or use --userns host",
			 CAPSA_USERNS_BLOCK, uf->path, ut && *ut ? ut : "no range", gf->path, gt && *gt ? gt : "no range",
			 nub < ngb ? nub : ngb, nused, nclaimed, CLAIMS_DIR, CAPSA_USER);
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
	struct userns_block pick = { 0, 0 };
	sqlite3_stmt *st = NULL;
	int rc = -1, claims = -1;
	bool claimed = false;
	struct store *db = ctx_db(ctx, err);
	if (!db || ensure_user(&uid_str, err) < 0)
		return -1;
	if (subid_load(&uf, env_or("CAPSA_SUBUID_FILE", "/etc/subuid"), uid_str, err) < 0 ||
	    subid_load(&gf, env_or("CAPSA_SUBGID_FILE", "/etc/subgid"), uid_str, err) < 0)
		goto out;
	/* database first, then the claims: every path takes them in this order */
	if (store_begin(db, err) < 0)
		goto out;
	claims = claims_lock(true, err);
	if (claims < 0 || pick_block(ctx, db, claims, &uf, &gf, uid_str, id, &pick, err) < 0)
		goto fail;
	claimed = true;
	if (store_prepare(db, "INSERT INTO userns_ranges(sandbox_id, uid_start, gid_start, count) VALUES(?,?,?,?)", &st,
			  err) < 0)
		goto fail;
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)pick.uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)pick.gid);
	sqlite3_bind_int64(st, 4, CAPSA_USERNS_BLOCK);
	if (sqlite3_step(st) != SQLITE_DONE) {
		store_error(db, "record user namespace range", err);
		goto fail;
	}
	if (store_commit(db, err) < 0)
		goto fail_claimed;
	s->userns_uid = pick.uid;
	s->userns_gid = pick.gid;
	s->userns_count = CAPSA_USERNS_BLOCK;
	rc = 0;
	goto out;
fail:
	store_rollback(db);
fail_claimed:
	if (claimed) {
		char name[32];
		snprintf(name, sizeof(name), "u%llu", (unsigned long long)pick.uid);
		claim_drop(claims, name, ctx, id);
		snprintf(name, sizeof(name), "g%llu", (unsigned long long)pick.gid);
		claim_drop(claims, name, ctx, id);
	}
out:
	if (claims >= 0)
		close(claims);
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
