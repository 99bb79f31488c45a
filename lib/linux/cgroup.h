/* cgroup.h: per-sandbox cgroups on v1, v2 and hybrid hosts.  libc only.
 *
 * Layout: v2 "<mount>/capsa/<name>"; v1 "<mount of each controller>/capsa/<name>".
 * On a hybrid host (v1 controllers plus a cgroup2 mount with none) the v1
 * controllers are used.  Which one is chosen is decided once per process
 * (linux_cgroup_mode()).  Rootless (lib/linux/rootless.h): only the cgroup
 * v2 subtree delegated to the user, if this process is in one, is used, as
 * if it were the root of the hierarchy; else none.
 */
#ifndef CAPSA_LINUX_CGROUP_H
#define CAPSA_LINUX_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

enum linux_cgroup_mode {
	CGROUP_MODE_NONE,   /* no usable cgroup filesystem */
	CGROUP_MODE_V1,	    /* v1 controllers (with or without a cgroup2 mount beside) */
	CGROUP_MODE_V2,	    /* unified hierarchy */
};

enum linux_cgroup_mode linux_cgroup_mode(void);
/* Whether sandboxes can have controller c ("memory", "pids", "cpu"). */
bool linux_cgroup_has_controller(const char *c);
/* Rootless mode: why a controller is missing, for an error message. */
char *linux_cgroup_rootless_why(const char *controller);

/* One device cgroup rule, as OCI's linux.resources.devices[]. */
struct linux_device_rule {
	bool allow;
	char type;	  /* 'a' (all), 'c', 'b' */
	int64_t major, minor; /* -1: any */
	const char *access; /* subset of "rwm" */
};

/* -1 means "not set / unlimited" everywhere.  Limits apply on create and
 * set_limits (update: unset fields are left as they are); the device rules
 * only on create. */
struct linux_cgroup_limits {
	int64_t memory;		/* bytes */
	int64_t memory_swap;	/* bytes of memory+swap; == memory disables swap */
	int64_t cpu_quota_us;	/* with cpu_period_us */
	int64_t cpu_period_us;
	int64_t cpu_shares;	/* v1 shares; converted to weight on v2 */
	int64_t pids;
	int64_t blkio_weight;	/* best effort */
	const char *cpuset_cpus;
	const char *cpuset_mems;
	/* Device access.  NULL: docker's default allowlist (null zero full
	 * random urandom tty console ptmx, the ptys, tun, and mknod of anything),
	 * so that CAP_MKNOD cannot open a host disk.  Otherwise exactly these
	 * rules, evaluated in order, last match wins, default deny (OCI). */
	const struct linux_device_rule *device_rules;
	size_t n_device_rules;
	bool devices_allow_all; /* no device restriction (privileged) */
};
#define LINUX_CGROUP_LIMITS_INIT { -1, -1, -1, -1, -1, -1, -1, NULL, NULL }

struct linux_cgroup_stats {
	uint64_t cpu_usage_ns;
	uint64_t memory_current, memory_limit, memory_max_usage;
	uint64_t pids_current, pids_limit;
	uint64_t io_read_bytes, io_write_bytes;
	uint64_t oom_kills;
};

struct linux_cgroup;

/* Creates the cgroup (all controllers), applies limits.  name: "<id>" under
 * "capsa/", or an absolute cgroupsPath from an OCI config. */
int linux_cgroup_create(const char *name, const struct linux_cgroup_limits *l, struct linux_cgroup **out,
			struct capsa_error **err);
/* Opens an existing one (reconcile, update, pause); ENOENT if it is gone. */
int linux_cgroup_open(const char *name, struct linux_cgroup **out, struct capsa_error **err);
int linux_cgroup_set_limits(struct linux_cgroup *cg, const struct linux_cgroup_limits *l, struct capsa_error **err);
int linux_cgroup_add_pid(struct linux_cgroup *cg, pid_t pid, struct capsa_error **err);
/* v2 only: an O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP); -1 on v1. */
int linux_cgroup_fd(struct linux_cgroup *cg);
/* Number of OOM kills so far (v2 memory.events oom_kill, v1
 * memory.oom_control oom_kill). */
int linux_cgroup_oom_kills(struct linux_cgroup *cg, uint64_t *out);
int linux_cgroup_stats(struct linux_cgroup *cg, struct linux_cgroup_stats *out);
/* Reclaimable page cache in the memory usage (memory.stat inactive_file;
 * cgroup-stats.c). */
int linux_cgroup_inactive_file(struct linux_cgroup *cg, uint64_t *out);
/* Freezer (v1 freezer.state, v2 cgroup.freeze), waiting until the state is
 * reached. */
int linux_cgroup_freeze(struct linux_cgroup *cg, bool frozen, struct capsa_error **err);
bool linux_cgroup_frozen(struct linux_cgroup *cg);
/* SIGKILLs every process in it (v2 cgroup.kill where present) and waits
 * (bounded) until it is empty. */
int linux_cgroup_kill_all(struct linux_cgroup *cg, struct capsa_error **err);
/* Pids in the cgroup (cgroup.procs); *out is malloc'd. */
int linux_cgroup_pids(struct linux_cgroup *cg, pid_t **out, size_t *n, struct capsa_error **err);
/* Removes the directories (after kill_all when not empty).  Missing is
 * success. */
int linux_cgroup_destroy(struct linux_cgroup *cg, struct capsa_error **err);
/* "capsa/<name>" (or the OCI path without its leading slash): the path
 * relative to the hierarchy roots, also what /proc/PID/cgroup shows. */
const char *linux_cgroup_path(const struct linux_cgroup *cg);
void linux_cgroup_free(struct linux_cgroup *cg);

#endif
