/* ledger.c: the capacity ledger and the disk-pressure guard
 * (capsa/admission.h).
 *
 * The ledger is not a separate counter that could drift: a sandbox's
 * reservation is the reserved_* columns of its own row, and what is in use
 * is the sum over the rows of sandboxes that hold one (reserved=1) and have
 * not ended.  Admission reads that sum and inserts the new row inside one
 * BEGIN IMMEDIATE transaction, so concurrent creates (any process) are
 * serialized and never overbook.  The end of a sandbox releases its
 * reservation by the state change alone ("exited" rows never count); the
 * flag is cleared as well for clarity, and removing the row removes the
 * reservation with it.  So a reservation is released exactly once,
 * whichever path ends the sandbox: its supervisor, reconciliation after a
 * crash, or the undo of a failed create.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "capsa/admission.h"
#include "sandbox.h"
#include "ledger.h"

static void fmt_bytes(int64_t n, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%lld B", (long long)n);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

static int64_t mem_total(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	char line[256];
	long long kb = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return (int64_t)kb * 1024;
}

CAPSA_EXPORT int capsa_capacity_from_host(struct capsa_ctx *ctx, struct capsa_capacity *out,
					  struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	cpu_set_t set;
	int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
	if (cpus <= 0)
		cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	out->cpus_milli = (int64_t)(cpus > 0 ? cpus : 1) * 1000;
	out->memory = mem_total();
	struct statvfs vfs;
	if (statvfs(ctx->root, &vfs) < 0)
		return error_sys(err, errno, "statfs %s", ctx->root);
	out->disk = (int64_t)vfs.f_blocks * (int64_t)vfs.f_frsize;
	out->min_free_disk = 1LL << 30;
	return 0;
}

CAPSA_EXPORT void capsa_ctx_set_capacity(struct capsa_ctx *ctx, const struct capsa_capacity *cap)
{
	free(ctx->capacity);
	ctx->capacity = NULL;
	if (cap) {
		ctx->capacity = xmalloc(sizeof(*cap));
		*ctx->capacity = *cap;
	}
}

int ledger_check_disk(struct capsa_ctx *ctx, struct capsa_error **err)
{
	if (!ctx->capacity || ctx->capacity->min_free_disk <= 0)
		return 0;
	struct statvfs vfs;
	if (statvfs(ctx->root, &vfs) < 0)
		return error_sys(err, errno, "statfs %s", ctx->root);
	int64_t avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
	if (avail >= ctx->capacity->min_free_disk)
		return 0;
	char a[32], m[32];
	fmt_bytes(avail, a, sizeof(a));
	fmt_bytes(ctx->capacity->min_free_disk, m, sizeof(m));
	return error_set(err, ENOSPC, "disk pressure: %s free on the filesystem of %s, below the minimum of %s", a,
			 ctx->root, m);
}

static int usage_locked(struct store *db, struct capsa_ledger *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (store_prepare(db,
			  "SELECT coalesce(sum(reserved_cpus_milli),0), coalesce(sum(reserved_memory),0), "
			  "coalesce(sum(reserved_disk),0), count(*) FROM sandboxes WHERE reserved=1 AND state!='exited'",
			  &st, err) < 0)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW)
		return store_error(db, "read the capacity ledger", err);
	out->cpus_milli = sqlite3_column_int64(st, 0);
	out->memory = sqlite3_column_int64(st, 1);
	out->disk = sqlite3_column_int64(st, 2);
	out->sandboxes = sqlite3_column_int64(st, 3);
	return 0;
}

static int exhausted(struct capsa_error **err, const char *what, int64_t want, int64_t used, int64_t cap, bool bytes)
{
	char w[32], f[32], c[32];
	int64_t left = cap > used ? cap - used : 0;
	if (bytes) {
		fmt_bytes(want, w, sizeof(w));
		fmt_bytes(left, f, sizeof(f));
		fmt_bytes(cap, c, sizeof(c));
	} else {
		snprintf(w, sizeof(w), "%.3g", (double)want / 1000);
		snprintf(f, sizeof(f), "%.3g", (double)left / 1000);
		snprintf(c, sizeof(c), "%.3g", (double)cap / 1000);
	}
	return error_set(err, EDQUOT, "capacity exhausted: %s: %s requested, %s of %s left", what, w, f, c);
}

int ledger_admit(struct capsa_ctx *ctx, struct store *db, const struct capsa_sandbox_opts *o, struct capsa_error **err)
{
	const struct capsa_capacity *cap = ctx->capacity;
	if (!cap)
		return 0;
	struct capsa_ledger u;
	if (usage_locked(db, &u, err) < 0)
		return -1;
	if (cap->cpus_milli > 0 && o->cpus_milli > 0 && u.cpus_milli + o->cpus_milli > cap->cpus_milli)
		return exhausted(err, "cpus", o->cpus_milli, u.cpus_milli, cap->cpus_milli, false);
	if (cap->memory > 0 && o->memory > 0 && u.memory + o->memory > cap->memory)
		return exhausted(err, "memory", o->memory, u.memory, cap->memory, true);
	if (cap->disk > 0 && o->disk > 0 && u.disk + o->disk > cap->disk)
		return exhausted(err, "disk", o->disk, u.disk, cap->disk, true);
	return 0;
}

void ledger_release(struct capsa_ctx *ctx, const char *id)
{
	struct store *db = ctx_db(ctx, NULL);
	sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "UPDATE sandboxes SET reserved=0 WHERE id=? AND reserved=1", &st, NULL) < 0)
		return;
	store_bind_text(st, 1, id);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

CAPSA_EXPORT int capsa_ledger_usage(struct capsa_ctx *ctx, struct capsa_ledger *out, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	return usage_locked(db, out, err);
}
