/* context.c: opening a store root and its runtime directory.
 *
 * Layout (docs/image-store.md): capsa.db, blobs/sha256/, layers/,
 * sandboxes/, tmp/ under the root; one directory per live sandbox under the
 * runtime root.  Directories are created 0700 (the root itself 0711) because
 * layer contents and sandbox uppers may hold files other users must not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "linux/rootless.h"
#include "util/fs.h"
#include "util/str.h"

CAPSA_EXPORT const char *capsa_version(void)
{
	return CAPSA_VERSION;
}

static char *pick(const char *opt, const char *env, const char *def)
{
	if (opt && *opt)
		return xstrdup(opt);
	const char *e = getenv(env);
	if (e && *e)
		return xstrdup(e);
	return xstrdup(def);
}

static int ensure_dir(const char *path, mode_t mode, struct capsa_error **err)
{
	if (mkdir_p(path, mode) < 0)
		return error_sys(err, errno, "create directory %s", path);
	return 0;
}

/* Rootless: a directory another user made first (/tmp/capsa-run-<uid> is
 * guessable) must not be used. */
static int check_own_dir(const char *path, struct capsa_error **err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return error_sys(err, errno, "stat %s", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return error_set(err, EPERM,
				 "%s is not a directory of this user's, writable by it alone (owner %u, mode %o): "
				 "refusing to keep a store there",
				 path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

CAPSA_EXPORT int capsa_rootless_enter(struct capsa_error **err)
{
	return linux_rootless_enter(err);
}

CAPSA_EXPORT bool capsa_rootless(void)
{
	return linux_rootless();
}

CAPSA_EXPORT int capsa_ctx_open(const struct capsa_ctx_opts *opts, struct capsa_ctx **out,
				struct capsa_error **err)
{
	bool rootless = linux_rootless();
	if (rootless && geteuid() != 0)
		return error_set(err, EPERM,
				 "rootless mode: uid %u is not root, and the store's files are owned by its subordinate "
				 "ids; call capsa_rootless_enter() first",
				 (unsigned)geteuid());
	_cleanup_free_ char *def_root = rootless ? linux_rootless_store_root() : xstrdup(CAPSA_DEFAULT_ROOT);
	_cleanup_free_ char *def_run = rootless ? linux_rootless_run_root() : xstrdup(CAPSA_DEFAULT_RUN_ROOT);
	struct capsa_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->root_fd = ctx->run_fd = ctx->ingest_lock_fd = -1;
	ctx->root = pick(opts ? opts->root : NULL, "CAPSA_ROOT", def_root);
	ctx->run_root = pick(opts ? opts->run_root : NULL, "CAPSA_RUN_ROOT", def_run);
	ctx->rootless = rootless;
	if (ctx->root[0] != '/' || ctx->run_root[0] != '/') {
		error_set(err, EINVAL, "store root %s and runtime root %s must be absolute paths", ctx->root,
			  ctx->run_root);
		goto fail;
	}
	ctx->cgroup_parent = pick(NULL, "CAPSA_CGROUP_PARENT", "capsa");
	for (const char *c = ctx->cgroup_parent; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			  *c == '-' || *c == '_' || *c == '.';
		if (!ok || strcmp(ctx->cgroup_parent, ".") == 0 || strcmp(ctx->cgroup_parent, "..") == 0) {
			error_set(err, EINVAL, "cgroup parent '%s': use one name of [A-Za-z0-9_.-]", ctx->cgroup_parent);
			goto fail;
		}
	}
	if (ensure_dir(ctx->root, rootless ? 0700 : 0711, err) < 0 ||
	    ensure_dir(ctx->run_root, rootless ? 0700 : 0711, err) < 0)
		goto fail;
	if (rootless && (check_own_dir(ctx->root, err) < 0 || check_own_dir(ctx->run_root, err) < 0))
		goto fail;
	ctx->root_fd = open(ctx->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ctx->run_fd = open(ctx->run_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctx->root_fd < 0 || ctx->run_fd < 0) {
		error_sys(err, errno, "open %s", ctx->root_fd < 0 ? ctx->root : ctx->run_root);
		goto fail;
	}
	static const char *const subdirs[] = { "blobs", "blobs/sha256", "layers", "sandboxes", "tmp" };
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		if (mkdirat(ctx->root_fd, subdirs[i], 0700) < 0 && errno != EEXIST) {
			error_sys(err, errno, "create directory %s/%s", ctx->root, subdirs[i]);
			goto fail;
		}
	}
	*out = ctx;
	return 0;
fail:
	capsa_ctx_free(ctx);
	return -1;
}

static bool dir_has_entries(int dirfd, const char *path)
{
	DIR *d = opendir_at(dirfd, path);
	if (!d)
		return false;
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d)))
		found = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return found;
}

/* A capsa.db of 0 bytes where the store has content lost its records (a
 * truncation, a failed copy, a stray `>`).  SQLite would take it for a new
 * store, and the next garbage collection would delete every blob and layer.
 * capsa never leaves one while making a store (store.c links it complete). */
static int check_not_emptied(struct capsa_ctx *ctx, const char *path, struct capsa_error **err)
{
	struct stat sb;
	if (fstatat(ctx->root_fd, "capsa.db", &sb, 0) < 0 || sb.st_size > 0)
		return 0; /* missing: a new store; other errors: store_open() names them */
	static const char *const dirs[] = { "blobs/sha256", "layers", "sandboxes" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (dir_has_entries(ctx->root_fd, dirs[i]))
			return store_refuse(path, err, "the file is empty, but %s/%s holds the store's content", ctx->root,
					    dirs[i]);
	return 0;
}

/* PRAGMA quick_check reads every page: 0.1 ms for a new store, 1.2 ms at
 * 0.9 MB, 30 ms at 14 MB, 150 ms at 129 MB (the events table grows with every
 * sandbox run), against ~15 ms for a whole `capsa run --rm`.  So it runs once
 * per database file and boot: <root>/store.verified holds the boot id,
 * device and inode of the last file that passed, and an open whose stamp
 * differs verifies (store.c skips a store without images or sandboxes,
 * and then no stamp is written).  The stamp costs a stat and two small
 * reads.  NULL: no stamp can be made (always verify). */
static char *verify_stamp(struct capsa_ctx *ctx)
{
	struct stat sb;
	struct buf boot = BUF_INIT;
	if (fstatat(ctx->root_fd, "capsa.db", &sb, 0) < 0 ||
	    read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 64, &boot, NULL) < 0) {
		buf_release(&boot);
		return NULL;
	}
	char *s = xasprintf("%.*s %llu %llu\n", (int)strcspn(boot.data ? boot.data : "", "\n"),
			    boot.data ? boot.data : "", (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino);
	buf_release(&boot);
	return s;
}

static bool verified_before(struct capsa_ctx *ctx, const char *stamp)
{
	struct buf b = BUF_INIT;
	bool same = stamp && read_file_at(ctx->root_fd, CTX_VERIFIED_STAMP, 256, &b, NULL) == 0 &&
		    b.len == strlen(stamp) && memcmp(b.data, stamp, b.len) == 0;
	buf_release(&b);
	return same;
}

struct store *ctx_db(struct capsa_ctx *ctx, struct capsa_error **err)
{
	if (ctx->db)
		return ctx->db;
	_cleanup_free_ char *path = xasprintf("%s/capsa.db", ctx->root);
	if (check_not_emptied(ctx, path, err) < 0)
		return NULL;
	_cleanup_free_ char *stamp = verify_stamp(ctx);
	bool verify = !verified_before(ctx, stamp);
	if (store_open(path, verify ? STORE_VERIFY : 0, &ctx->db, err) < 0)
		return NULL;
	if (ctx->db->verified) {
		/* the stamp of the file that was checked (it may be new) */
		free(stamp);
		stamp = verify_stamp(ctx);
		if (stamp)
			write_file_atomic_at(ctx->root_fd, CTX_VERIFIED_STAMP, stamp, strlen(stamp), 0600, false, NULL);
	}
	return ctx->db;
}

char *ctx_sandbox_cgroup(const struct capsa_ctx *ctx, const char *id)
{
	return xasprintf("/%s/%s", ctx->cgroup_parent, id);
}

CAPSA_EXPORT void capsa_ctx_free(struct capsa_ctx *ctx)
{
	if (!ctx)
		return;
	store_close(ctx->db);
	if (ctx->ingest_lock_fd >= 0)
		close(ctx->ingest_lock_fd);
	if (ctx->root_fd >= 0)
		close(ctx->root_fd);
	if (ctx->run_fd >= 0)
		close(ctx->run_fd);
	free(ctx->capacity);
	free(ctx->root);
	free(ctx->run_root);
	free(ctx->cgroup_parent);
	free(ctx);
}

CAPSA_EXPORT const char *capsa_ctx_root(const struct capsa_ctx *ctx)
{
	return ctx->root;
}

CAPSA_EXPORT const char *capsa_ctx_run_root(const struct capsa_ctx *ctx)
{
	return ctx->run_root;
}
