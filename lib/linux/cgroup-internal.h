/* cgroup-internal.h: what cgroup.c (hierarchies, lifecycle) and
 * cgroup-limits.c (limits, stats, device rules) share.  Not a public
 * interface. */
#ifndef CAPSA_LINUX_CGROUP_INTERNAL_H
#define CAPSA_LINUX_CGROUP_INTERNAL_H

#include "cgroup.h"
#include "util/str.h"

/* One v1 hierarchy the cgroup lives in. */
struct cg_hier {
	char *mount;	   /* "/sys/fs/cgroup/memory" */
	char **controllers; /* {"memory", NULL}; "name=systemd" for named ones */
	int fd;		   /* the cgroup's directory in this hierarchy */
};

struct linux_cgroup {
	enum linux_cgroup_mode mode;
	char *path; /* relative to the hierarchy root: "capsa/<name>" */
	int fd;	    /* v2: the cgroup directory */
	struct cg_hier *h; /* v1 */
	size_t nh;
};

/* The directory fd of the v1 hierarchy holding controller, or (v2) the
 * cgroup's; -1 when the controller is not mounted. */
int cg_dir(const struct linux_cgroup *cg, const char *controller);
/* Writes s to dirfd/file; on failure fills err naming the file. */
int cg_write(int dirfd, const char *file, const char *s, struct capsa_error **err);
int cg_writef(int dirfd, const char *file, struct capsa_error **err, const char *fmt, ...) PRINTF(4, 5);
/* Reads a small cgroup file (capped at 1 MiB) into b. */
int cg_read(int dirfd, const char *file, struct buf *b);
/* The unsigned number in a one-value file ("max" -> UINT64_MAX). */
int cg_read_u64(int dirfd, const char *file, uint64_t *out);
/* The value of "key N" in a flat-keyed file (memory.events, cpu.stat). */
int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *out);
/* Sets up the device allowlist at creation (v1 devices.*, v2 a
 * BPF_CGROUP_DEVICE program). */
int cg_apply_devices(struct linux_cgroup *cg, const struct linux_cgroup_limits *l, struct capsa_error **err);
/* Sleeps a little longer each call (100 µs doubling to 10 ms). */
void cg_backoff(unsigned *step);

#endif
