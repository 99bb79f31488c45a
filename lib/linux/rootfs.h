/* rootfs.h: building a sandbox's (or an OCI container's) filesystem view in
 * a new mount namespace and pivoting into it.  libc only.
 *
 * Security: every mount target is resolved inside the new root with
 * open_beneath(RES_IN_ROOT) and mounted through /proc/self/fd/N, so an image
 * whose /proc or /dev is a symlink cannot redirect a mount onto the host.
 */
#ifndef CAPSA_LINUX_ROOTFS_H
#define CAPSA_LINUX_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

struct linux_mount {
	const char *source;
	const char *target;	 /* absolute, inside the new root */
	const char *fstype;	 /* NULL for bind mounts */
	const char *data;	 /* fs-specific options */
	unsigned long flags;	 /* MS_RDONLY MS_NOSUID MS_NODEV MS_NOEXEC ... */
	unsigned long propagation; /* MS_PRIVATE/MS_SLAVE/MS_SHARED/MS_UNBINDABLE (| MS_REC), 0: leave */
	bool bind;		 /* bind source (a host path) onto target */
	bool recursive;		 /* rbind */
	bool file;		 /* target is a file (created empty if missing) */
	bool copy_up;		 /* tmpfs: start with a copy of what it covers (OCI tmpcopyup) */
	/* v1 "cgroup" mount of a process without a cgroup namespace of its
	 * own: each hierarchy shows only this cgroup ("a/b", relative to the
	 * hierarchy's root), bound over it, as runc does; NULL: the whole
	 * hierarchy as the caller's cgroup namespace sees it. */
	const char *cgroup_path;
};

struct linux_device {
	const char *path; /* "/dev/null" */
	char type;	  /* 'c', 'b', 'p' */
	unsigned major, minor;
	mode_t mode;	  /* permission bits */
	uid_t uid;
	gid_t gid;
};

struct linux_rootfs {
	const char *root;	   /* host path of the new root directory */
	/* When set, an overlay is mounted on root first with these options;
	 * relative lowerdir/upperdir/workdir paths are taken relative to
	 * overlay_dir (keeps the option string under a page for many layers). */
	const char *overlay_data;
	const char *overlay_dir;
	bool readonly;		   /* root remounted read-only at the end */
	unsigned long propagation; /* of the new root; 0: MS_PRIVATE */
	const struct linux_mount *mounts; /* in order, after the root */
	size_t n_mounts;
	/* Create /dev/{null,zero,full,random,urandom,tty} and the symlinks
	 * fd stdin stdout stderr ptmx core (needs a tmpfs on /dev among the
	 * mounts; created by mknod, or bind-mounted from the host when mknod
	 * is not permitted, as in a user namespace). */
	bool default_devices;
	const struct linux_device *devices;
	size_t n_devices;
	char *const *masked_paths;   /* NULL-terminated; /dev/null (files) or ro tmpfs (dirs) over each */
	char *const *readonly_paths; /* NULL-terminated; bind-remounted read-only */
	bool no_pivot;		     /* MS_MOVE + chroot instead of pivot_root (OCI --no-pivot) */
	/* Called after every mount, device and path rule is in place, with
	 * the cwd in the new root, right before the pivot (OCI: where the
	 * runtime's prestart/createRuntime and the createContainer hooks
	 * run).  A failure stops the setup with its error. */
	int (*before_pivot)(void *ctx, struct capsa_error **err);
	void *before_pivot_ctx;
	/* Called right before the first cgroup or cgroup2 mount, if there is
	 * one: the sandbox runtime joins the sandbox's cgroup (namespace)
	 * there, so the mounts before it overlap with the parent's cgroup
	 * attach, which waits for an RCU grace period on v1. */
	int (*before_cgroup)(void *ctx, struct capsa_error **err);
	void *before_cgroup_ctx;
};

/* The docker/OCI defaults: proc, /dev tmpfs, devpts (newinstance,
 * ptmxmode=0666), /dev/shm (shm_size bytes), /dev/mqueue, sysfs (ro), and the
 * cgroup filesystem (ro, of the sandbox's cgroup namespace). */
extern const struct linux_mount *linux_default_mounts(size_t *n, const char *shm_size_opt);

/* Older kernels (Debian 12's 6.1 among them) read devpts' gid= as a
 * signed int, so a sandbox mapped above 2^31 cannot have its tty group
 * there: `data` without such a gid=, for a second try, or NULL when it has
 * none (malloc'd). */
char *linux_devpts_without_big_gid(const char *data);

/* The inode bound (nr_inodes) of a sandbox's tmpfs of `size` bytes.  An
 * empty file costs kernel memory (about 1 KiB of inode and dentry) but no
 * tmpfs size, and only a memory cgroup charges it: a rootless sandbox has
 * none, nor does a root one without --memory.  Left at the kernel's default
 * (half the host's pages), one tmpfs could pin gigabytes that no OOM kill
 * frees.  One inode per KiB keeps that memory near the size itself. */
static inline long long linux_tmpfs_nr_inodes(long long size)
{
	return size / 1024 < 1024 ? 1024 : size / 1024;
}
extern char *const linux_default_masked_paths[];
extern char *const linux_default_readonly_paths[];

/* Runs in the child, in its own (fresh) mount namespace: makes "/" a
 * slave/private tree so nothing propagates back to the host, mounts the
 * overlay, the mounts, the devices, masks paths, pivots into root and
 * detaches the old root.  Returns with cwd "/" inside the new root. */
int linux_rootfs_setup(const struct linux_rootfs *r, struct capsa_error **err);

#endif
