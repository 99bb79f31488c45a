/* proc.h: the security context of one process (the sandbox's main process,
 * an exec, an OCI container process), applied by the child right before
 * execve.  libc only: the agent calls this. */
#ifndef CAPSA_LINUX_PROC_H
#define CAPSA_LINUX_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct linux_rlimit {
	int resource; /* RLIMIT_* */
	uint64_t soft, hard;
};

struct linux_proc_sec {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* supplementary groups */
	size_t n_groups;
	bool set_ids; /* false: keep the current uid/gid/groups */

	/* Capability sets after the uid switch.  The bounding set is reduced
	 * to cap_bounding (needs CAP_SETPCAP, so it is done before the sets
	 * are lowered). */
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	bool set_caps;
	/* The caller's own bounding set when it knows it (0: unknown): only
	 * what is in it and not in cap_bounding is dropped, one prctl each. */
	uint64_t cap_bounding_have;

	bool no_new_privs;
	const struct linux_rlimit *rlimits;
	size_t n_rlimits;
	/* classic BPF (struct sock_filter array), or NULL for none */
	const void *seccomp_bpf;
	size_t seccomp_len; /* bytes */
	unsigned seccomp_flags; /* SECCOMP_FILTER_FLAG_* */
	int oom_score_adj;
	bool set_oom_score_adj;
	mode_t umask;
	bool set_umask;
};

/* Applies, in this order: oom_score_adj, rlimits, bounding set, groups, gid,
 * uid (with PR_SET_KEEPCAPS so the configured sets survive), the
 * effective/permitted/inheritable sets, ambient caps, no_new_privs, umask,
 * and last the seccomp filter (so that no syscall above is filtered).  On
 * failure the process is left half-configured: callers _exit() after
 * reporting the error. */
int linux_proc_apply(const struct linux_proc_sec *s, struct capsa_error **err);

/* Fills the capability sets docker's way for s->uid (set s->uid/set_ids
 * first): root gets caps in the bounding, effective and permitted sets; a
 * non-root user gets only the bounding set, plus ambient (raised in every
 * set) when asked for.  Inheritable holds only the ambient caps. */
void linux_proc_sec_set_caps(struct linux_proc_sec *s, uint64_t caps, uint64_t ambient);

/* "nofile", "NOFILE", "RLIMIT_NOFILE" -> RLIMIT_NOFILE; -1 if unknown. */
int linux_rlimit_from_name(const char *name);
/* RLIMIT_NOFILE -> "nofile"; NULL if unknown. */
const char *linux_rlimit_name(int res);

/* Looks file up the way execvp() would, in path (a $PATH value; NULL: the
 * default /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin),
 * without executing it: 0 and the full path in out, or an errno: ENOENT
 * when it is nowhere, EACCES when what was found is not an executable
 * regular file. */
int linux_find_executable(const char *file, const char *path, char *out, size_t n);

/* Marks every fd >= first close-on-exec (close_range(2), or a walk of
 * /proc/self/fd before 5.11), so nothing leaks into the exec'd program. */
int linux_fds_cloexec_from(int first);

/* The start time of process pid (/proc/PID/stat field 22, clock ticks
 * since boot): with the pid it names one process for the life of the boot,
 * whatever pids are reused.  -1 (errno ESRCH) when there is no such process
 * or it is a zombie. */
int linux_proc_start_time(pid_t pid, uint64_t *out);
/* The state letter (R, S, T, Z, ...) and start time of process pid; -1
 * (ESRCH) when there is none. */
int linux_proc_stat(pid_t pid, char *state, uint64_t *start);
/* This boot's id (/proc/sys/kernel/random/boot_id, 36 characters), read
 * once per process; "" when the kernel does not have it. */
const char *linux_boot_id(void);

/* Installs a classic BPF seccomp filter (requires no_new_privs or
 * CAP_SYS_ADMIN).  len must be a multiple of sizeof(struct sock_filter). */
int linux_seccomp_install(const void *bpf, size_t len, unsigned flags, struct capsa_error **err);

/* A sealed (F_SEAL_SEAL|SHRINK|GROW|WRITE), close-on-exec memfd holding a
 * copy of the executable at path: a sandbox can neither see the file it came
 * from nor overwrite the copy (runc CVE-2019-5736). */
int linux_sealed_memfd(const char *path, const char *name, struct capsa_error **err);

#endif
