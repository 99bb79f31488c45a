/* ns.h: namespaces and cloning.  libc only. */
#ifndef CAPSA_LINUX_NS_H
#define CAPSA_LINUX_NS_H

#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* "mount"/"mnt", "pid", "network"/"net", "ipc", "uts", "user", "cgroup",
 * "time" -> CLONE_NEW*; 0 if unknown. */
uint64_t linux_ns_flag(const char *name);
/* clone3(2) like fork(): returns 0 in the child.  cgroup_fd >= 0 adds
 * CLONE_INTO_CGROUP (cgroup v2); pidfd_out != NULL adds CLONE_PIDFD.
 * Falls back to clone(2)/fork semantics where clone3 is missing. */
pid_t linux_clone(uint64_t flags, int cgroup_fd, int *pidfd_out, int exit_signal);
/* setns() to the namespace at path, checking it is a namespace of the
 * expected type (nstype 0 = any). */
int linux_setns_path(const char *path, int nstype, struct capsa_error **err);
/* Writes /proc/sys/<name with dots as slashes>. */
int linux_sysctl_set(const char *name, const char *value, struct capsa_error **err);

#endif
