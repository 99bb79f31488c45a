/* limits.c: checking a sandbox's limits against the host, changing them on
 * a running sandbox (`capsa update --memory --cpus --pids-limit`), and the
 * disk usage of its `--disk` image.
 *
 * An update is all or nothing: every value is checked before anything is
 * written; if the kernel refuses a write midway (a memory limit below what
 * the sandbox already uses, say), the limits recorded for the sandbox are
 * written back, and the store changes only once the cgroup took them all.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "linux/loopdisk.h"
#include "sandbox.h"

#define CPU_PERIOD_US 100000

static void fmt_size(int64_t n, char *out, size_t len)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)n;
	size_t i = 0;
	while (d >= 1024 && i + 1 < ARRAY_SIZE(u)) {
		d /= 1024;
		i++;
	}
	snprintf(out, len, "%.1f %s", d, u[i]);
}

static int64_t host_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	return pages > 0 && psize > 0 ? (int64_t)pages * psize : 0;
}

static int check_memory(int64_t memory, struct capsa_error **err)
{
	char h[32], m[32];
	int64_t host = host_memory();
	if (memory < 0 || (memory > 0 && memory < (6 << 20)))
		return error_set(err, EINVAL, "invalid --memory %lld: the minimum is 6 MiB", (long long)memory);
	if (host > 0 && memory > host) {
		fmt_size(host, h, sizeof(h));
		fmt_size(memory, m, sizeof(m));
		return error_set(err, EINVAL, "invalid --memory %s: more than the host's %s", m, h);
	}
	return 0;
}

static int check_cpus(int64_t milli, struct capsa_error **err)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (milli < 0)
		return error_set(err, EINVAL, "invalid --cpus %.3f: must be positive", (double)milli / 1000);
	if (n > 0 && milli > n * 1000)
		return error_set(err, EINVAL, "invalid --cpus %.3f: the host has %ld cpus", (double)milli / 1000, n);
	return 0;
}

static int check_disk(struct capsa_ctx *ctx, int64_t disk, struct capsa_error **err)
{
	char a[32], b[32];
	if (disk < 0)
		return error_set(err, EINVAL, "invalid --disk %lld: must be positive", (long long)disk);
	if (disk > 0 && disk < LOOPDISK_MIN_SIZE) {
		fmt_size(disk, a, sizeof(a));
		return error_set(err, EINVAL, "invalid --disk %s: the minimum is 16 MiB", a);
	}
	struct statvfs v;
	if (disk > 0 && ctx->root && statvfs(ctx->root, &v) == 0 &&
	    (uint64_t)disk > (uint64_t)v.f_blocks * v.f_frsize) {
		fmt_size(disk, a, sizeof(a));
		fmt_size((int64_t)((uint64_t)v.f_blocks * v.f_frsize), b, sizeof(b));
		return error_set(err, EINVAL, "invalid --disk %s: larger than the %s filesystem of %s", a, b, ctx->root);
	}
	return 0;
}

/* What a rootless sandbox cannot have: a loop disk (attaching one needs
 * host root), or limits whose controller its delegated cgroup v2 subtree
 * does not offer. */
static int rootless_check(const struct capsa_sandbox_opts *o, struct capsa_error **err)
{
	if (o->disk > 0)
		return error_set(err, ENOTSUP,
				 "--disk is not available in rootless mode: attaching its loop device needs host root "
				 "(docs/rootless.md)");
	const struct {
		bool wanted;
		const char *flag, *controller;
	} need[] = {
		{ o->memory > 0, "--memory", "memory" },
		{ o->cpus_milli > 0, "--cpus", "cpu" },
		{ o->pids > 0, "--pids-limit", "pids" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
		if (!need[i].wanted || linux_cgroup_has_controller(need[i].controller))
			continue;
		_cleanup_free_ char *why = linux_cgroup_rootless_why(need[i].controller);
		return error_set(err, ENOTSUP, "%s needs the %s cgroup controller, and in rootless mode %s", need[i].flag,
				 need[i].controller, why);
	}
	return 0;
}

int sandbox_limits_validate(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *o, struct capsa_error **err)
{
	if (check_memory(o->memory, err) < 0 || check_cpus(o->cpus_milli, err) < 0 || check_disk(ctx, o->disk, err) < 0)
		return -1;
	if (ctx->rootless && rootless_check(o, err) < 0)
		return -1;
	if (o->shm_size < 0 || (o->memory > 0 && o->shm_size > o->memory))
		return error_set(err, EINVAL, "invalid --shm-size %lld: /dev/shm is charged to the memory limit (%lld)",
				 (long long)o->shm_size, (long long)o->memory);
	return 0;
}

/* The limits recorded in the sandbox's config (what the cgroup has). */
static void recorded(json_t *cfg, struct linux_cgroup_limits *l)
{
	*l = (struct linux_cgroup_limits)LINUX_CGROUP_LIMITS_INIT;
	json_int_t mem = json_integer_value(json_object_get(cfg, "memory"));
	double cpus = json_number_value(json_object_get(cfg, "cpus"));
	json_int_t pids = json_integer_value(json_object_get(cfg, "pidsLimit"));
	/* "none" is written as the largest value each file takes (a quota
	 * of 0 is written as "max" / -1) */
	l->memory = mem > 0 ? mem : INT64_MAX;
	l->memory_swap = l->memory;
	l->cpu_period_us = CPU_PERIOD_US;
	l->cpu_quota_us = cpus > 0 ? (int64_t)(cpus * CPU_PERIOD_US + 0.5) : 0;
	l->pids = pids > 0 ? pids : INT64_MAX;
}

static void wanted(const struct capsa_limits_update *u, const struct linux_cgroup_limits *old,
		   struct linux_cgroup_limits *l)
{
	*l = (struct linux_cgroup_limits)LINUX_CGROUP_LIMITS_INIT;
	if (u->memory > 0) {
		l->memory = u->memory;
		/* v1 wants memory+swap >= memory at every step: order them */
		l->memory_swap = u->memory;
	}
	if (u->cpus_milli > 0) {
		l->cpu_period_us = CPU_PERIOD_US;
		l->cpu_quota_us = u->cpus_milli * CPU_PERIOD_US / 1000;
	}
	if (u->pids != 0)
		l->pids = u->pids > 0 ? u->pids : INT64_MAX;
	(void)old;
}

static int record(struct capsa_ctx *ctx, const char *id, json_t *cfg, const struct capsa_limits_update *u,
		  struct capsa_error **err)
{
	if (u->memory > 0)
		json_object_set_new(cfg, "memory", json_integer(u->memory));
	if (u->cpus_milli > 0)
		json_object_set_new(cfg, "cpus", json_real((double)u->cpus_milli / 1000.0));
	if (u->pids != 0)
		json_object_set_new(cfg, "pidsLimit", json_integer(u->pids > 0 ? u->pids : 0));
	_cleanup_free_ char *text = json_dumps(cfg, JSON_COMPACT);
	struct store *db = ctx_db(ctx, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (!db || store_prepare(db, "UPDATE sandboxes SET config=?2 WHERE id=?1", &st, err) < 0)
		return -1;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, text);
	if (sqlite3_step(st) != SQLITE_DONE)
		return store_error(db, "record the new limits", err);
	char attrs[160];
	snprintf(attrs, sizeof(attrs), "{\"memory\":%lld,\"cpus\":%.3f,\"pidsLimit\":%lld}", (long long)u->memory,
		 (double)u->cpus_milli / 1000, (long long)u->pids);
	sandbox_event(ctx, id, "update", attrs);
	return 0;
}

int sandbox_limits_check_update(const struct capsa_limits_update *u, struct capsa_error **err)
{
	if (u->memory == 0 && u->cpus_milli == 0 && u->pids == 0)
		return error_set(err, EINVAL, "nothing to update: give --memory, --cpus or --pids-limit");
	if (u->memory != 0 && (u->memory < 0 || check_memory(u->memory, err) < 0))
		return u->memory < 0 ? error_set(err, EINVAL, "invalid --memory %lld: must be positive",
						 (long long)u->memory)
				     : -1;
	if (u->cpus_milli != 0 && (u->cpus_milli < 10 || check_cpus(u->cpus_milli, err) < 0))
		return u->cpus_milli < 10 ? error_set(err, EINVAL, "invalid --cpus %.3f: the minimum is 0.01",
						      (double)u->cpus_milli / 1000)
					  : -1;
	if (u->pids < -1 || u->pids > CAPSA_MAX_PIDS)
		return error_set(err, EINVAL, "invalid --pids-limit %lld: expected 1-%d, or -1 for none",
				 (long long)u->pids, CAPSA_MAX_PIDS);
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_set_limits(struct capsa_ctx *ctx, const char *sandbox,
					  const struct capsa_limits_update *u, struct capsa_error **err)
{
	if (sandbox_limits_check_update(u, err) < 0)
		return -1;
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	int rc = -1;
	struct linux_cgroup *cg = NULL;
	json_t *cfg = json_loads(r.config ? r.config : "{}", 0, NULL);
	_cleanup_free_ char *cgname = ctx_sandbox_cgroup(ctx, r.id);
	if (!cfg)
		cfg = json_object();
	if (strcmp(r.state, "running") != 0 && strcmp(r.state, "paused") != 0) {
		error_set(err, ESRCH, "sandbox %s is not running (%s): limits change only on a running sandbox", r.name,
			  r.state);
		goto out;
	}
	if (linux_cgroup_open(cgname, &cg, err) < 0) {
		error_wrap(err, "sandbox %s", r.name);
		goto out;
	}
	struct linux_cgroup_limits old, now;
	recorded(cfg, &old);
	wanted(u, &old, &now);
	if (linux_cgroup_set_limits(cg, &now, err) < 0) {
		/* put back what was recorded; the first error is the one to tell */
		linux_cgroup_set_limits(cg, &old, NULL);
		error_wrap(err, "update sandbox %s", r.name);
		goto out;
	}
	if (record(ctx, r.id, cfg, u, err) < 0) {
		linux_cgroup_set_limits(cg, &old, NULL);
		goto out;
	}
	rc = 0;
out:
	if (cg)
		linux_cgroup_free(cg);
	json_decref(cfg);
	sb_row_release(&r);
	return rc;
}

CAPSA_EXPORT int capsa_sandbox_disk_usage(struct capsa_ctx *ctx, const char *sandbox, uint64_t *used,
					  uint64_t *limit, struct capsa_error **err)
{
	*used = *limit = 0;
	struct sb_row r;
	if (sandbox_lookup(ctx, sandbox, &r, err) < 0)
		return -1;
	_cleanup_free_ char *dir = sandbox_dir(ctx, r.id);
	_cleanup_free_ char *image = xasprintf("%s/" LOOPDISK_IMAGE, dir);
	int rc = 0;
	struct stat st;
	if (stat(image, &st) < 0) {
		/* no --disk: nothing bounds it and nothing is counted here */
		rc = errno == ENOENT ? 0 : error_sys(err, errno, "sandbox %s: disk image", r.name);
	} else {
		*limit = (uint64_t)st.st_size;
		*used = (uint64_t)st.st_blocks * 512;
		/* the mount lives in the supervisor's mount namespace: look
		 * through its /proc/PID/root for the filesystem's own count */
		if (r.supervisor_pid > 0 && strcmp(r.state, "exited") != 0) {
			_cleanup_free_ char *p = xasprintf("/proc/%d/root%s/" LOOPDISK_MOUNT, (int)r.supervisor_pid, dir);
			uint64_t u2, t2;
			if (loopdisk_usage(p, &u2, &t2, NULL) == 0 && t2 > 0 && t2 <= *limit) {
				*used = u2;
				*limit = t2;
			}
		}
	}
	sb_row_release(&r);
	return rc;
}
