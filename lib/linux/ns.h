/* ns.h: namespaces and cloning.  libc only. */
#ifndef CAPSA_LINUX_NS_H
#define CAPSA_LINUX_NS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* "mount"/"mnt", "pid", "network"/"net", "ipc", "uts", "user", "cgroup",
 * "time" -> CLONE_NEW*; 0 if unknown. */
uint64_t linux_ns_flag(const char *name);
/* CLONE_NEWNET -> "net" (the name under /proc/PID/ns); NULL if unknown. */
const char *linux_ns_name(uint64_t flag);
/* clone3(2) like fork(): returns 0 in the child.  cgroup_fd >= 0 adds
 * CLONE_INTO_CGROUP (cgroup v2); pidfd_out != NULL adds CLONE_PIDFD.
 * Falls back to clone(2)/fork semantics where clone3 is missing. */
pid_t linux_clone(uint64_t flags, int cgroup_fd, int *pidfd_out, int exit_signal);
/* Test hook: behave as if clone3 were missing. */
void linux_clone_force_fallback(bool on);
/* setns() to the namespace at path, checking it is a namespace of the
 * expected type (nstype 0 = any). */
int linux_setns_path(const char *path, int nstype, struct capsa_error **err);
/* Checks that fd is a namespace of type nstype (0: any); what names it in
 * errors ("not a namespace", or both types when they differ). */
int linux_ns_fd_check(int fd, int nstype, const char *what, struct capsa_error **err);
/* The same for an open fd; what names it in errors. */
int linux_setns_fd(int fd, int nstype, const char *what, struct capsa_error **err);
/* One line of /proc/PID/uid_map or gid_map. */
struct linux_idmap {
	uint32_t inside, outside, count;
};
/* The extents of a map file (/proc/self/uid_map, ...), at most max (the
 * kernel allows 340); 0 when it cannot be read. */
size_t linux_idmap_read(const char *path, struct linux_idmap *out, size_t max);
/* Writes the uid and gid maps of the user namespace pid lives in (once, by
 * a process with the capabilities the kernel asks for: the creator's
 * parent, root on the host).  deny_setgroups writes "deny" to
 * /proc/PID/setgroups first (needed when the writer lacks CAP_SETGID in
 * the parent namespace). */
int linux_userns_set_maps(pid_t pid, const struct linux_idmap *uid, size_t n_uid, const struct linux_idmap *gid,
			  size_t n_gid, bool deny_setgroups, struct capsa_error **err);
/* Writes /proc/sys/<name with dots as slashes>. */
int linux_sysctl_set(const char *name, const char *value, struct capsa_error **err);

#endif
