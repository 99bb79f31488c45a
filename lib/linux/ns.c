/* ns.c: namespace names, clone3 with a fallback, joining namespaces by path,
 * sysctl writes.
 *
 * linux_clone() is a raw clone: the child gets a copy of the parent's memory
 * like fork(), but libc's fork bookkeeping (atfork handlers, musl's cached
 * thread id) is not run.  Callers must be single-threaded, and the child must
 * not use raise(), abort() or pthreads before it execs; it exits with
 * _exit().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ns.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

static const struct {
	const char *name;
	uint64_t flag;
} ns_table[] = {
	{ "mount", CLONE_NEWNS },   { "mnt", CLONE_NEWNS },	{ "pid", CLONE_NEWPID },
	{ "network", CLONE_NEWNET }, { "net", CLONE_NEWNET },	{ "ipc", CLONE_NEWIPC },
	{ "uts", CLONE_NEWUTS },     { "user", CLONE_NEWUSER }, { "cgroup", CLONE_NEWCGROUP },
	{ "time", CLONE_NEWTIME },
};

uint64_t linux_ns_flag(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(ns_table); i++)
		if (strcmp(name, ns_table[i].name) == 0)
			return ns_table[i].flag;
	return 0;
}

const char *linux_ns_name(uint64_t flag)
{
	switch (flag) {
	case CLONE_NEWNS:
		return "mnt";
	case CLONE_NEWPID:
		return "pid";
	case CLONE_NEWNET:
		return "net";
	case CLONE_NEWIPC:
		return "ipc";
	case CLONE_NEWUTS:
		return "uts";
	case CLONE_NEWUSER:
		return "user";
	case CLONE_NEWCGROUP:
		return "cgroup";
	case CLONE_NEWTIME:
		return "time";
	}
	return NULL;
}

static int clone3_state; /* 0 unknown, 1 works, -1 missing */

void linux_clone_force_fallback(bool on)
{
	clone3_state = on ? -1 : 0;
}

/* clone(2) with a NULL stack behaves like fork() for the child.  x86_64
 * argument order: flags, stack, parent_tid, child_tid, tls. */
static pid_t clone_legacy(uint64_t flags, int *pidfd_out, int exit_signal)
{
	int pidfd = -1;
	unsigned long f = (unsigned long)flags | (unsigned long)(exit_signal & 0xff);
	if (pidfd_out)
		f |= CLONE_PIDFD;
#if defined(__s390x__) || defined(__s390__)
	long r = syscall(SYS_clone, 0, f, pidfd_out ? &pidfd : NULL, NULL, 0);
#else
	long r = syscall(SYS_clone, f, 0, pidfd_out ? &pidfd : NULL, NULL, 0);
#endif
	if (r > 0 && pidfd_out)
		*pidfd_out = pidfd;
	return (pid_t)r;
}

pid_t linux_clone(uint64_t flags, int cgroup_fd, int *pidfd_out, int exit_signal)
{
	if (pidfd_out)
		*pidfd_out = -1;
	if (clone3_state >= 0) {
		int pidfd = -1;
		struct clone_args args = {
			.flags = flags,
			.exit_signal = (uint64_t)exit_signal,
		};
		if (pidfd_out) {
			args.flags |= CLONE_PIDFD;
			args.pidfd = (uint64_t)(uintptr_t)&pidfd;
		}
		if (cgroup_fd >= 0) {
			args.flags |= CLONE_INTO_CGROUP;
			args.cgroup = (uint64_t)cgroup_fd;
		}
		long r = syscall(SYS_clone3, &args, sizeof(args));
		if (r >= 0) {
			clone3_state = 1;
			if (r > 0 && pidfd_out)
				*pidfd_out = pidfd;
			return (pid_t)r;
		}
		/* ENOSYS: no clone3 (or a seccomp filter that hides it, as
		 * docker's profile does); E2BIG: a kernel older than
		 * CLONE_INTO_CGROUP's struct size. */
		if (errno != ENOSYS && errno != E2BIG)
			return -1;
		clone3_state = -1;
	}
	pid_t pid = clone_legacy(flags, pidfd_out, exit_signal);
	if (pid > 0 && cgroup_fd >= 0) {
		/* Without CLONE_INTO_CGROUP the child starts in our cgroup and
		 * is moved right away; callers hold it on a sync pipe until
		 * this returns, so it has not run sandbox code yet. */
		char num[32];
		snprintf(num, sizeof(num), "%d", (int)pid);
		if (write_str_at(cgroup_fd, "cgroup.procs", num) < 0) {
			int e = errno;
			kill(pid, SIGKILL);
			if (pidfd_out && *pidfd_out >= 0) {
				close(*pidfd_out);
				*pidfd_out = -1;
			}
			errno = e;
			return -1;
		}
	}
	return pid;
}

/* The namespace type of fd (CLONE_NEW*), or -1 if fd is not a namespace. */
static int ns_type_of_fd(int fd)
{
	int t = ioctl(fd, NS_GET_NSTYPE);
	if (t >= 0)
		return t;
	/* Before 4.11 there is no NS_GET_NSTYPE: check the filesystem, and
	 * let setns() with the expected type check the rest. */
	struct statfs sf;
	if (fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)NSFS_MAGIC)
		return 0;
	return -1;
}

int linux_ns_fd_check(int fd, int nstype, const char *what, struct capsa_error **err)
{
	int t = ns_type_of_fd(fd);
	if (t < 0)
		return error_set(err, EINVAL, "join namespace %s: not a namespace", what);
	if (nstype && t && t != nstype) {
		const char *have = linux_ns_name((uint64_t)t), *want = linux_ns_name((uint64_t)nstype);
		return error_set(err, EINVAL, "join namespace %s: a %s namespace, expected %s", what,
				 have ? have : "different", want ? want : "another type");
	}
	return 0;
}

int linux_setns_fd(int fd, int nstype, const char *what, struct capsa_error **err)
{
	if (linux_ns_fd_check(fd, nstype, what, err) < 0)
		return -1;
	if (setns(fd, nstype) < 0)
		return error_sys(err, errno, "join namespace %s", what);
	return 0;
}

int linux_setns_path(const char *path, int nstype, struct capsa_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return error_sys(err, errno, "join namespace %s", path);
	return linux_setns_fd(fd, nstype, path, err);
}

size_t linux_idmap_read(const char *path, struct linux_idmap *out, size_t max)
{
	struct buf b = BUF_INIT;
	size_t n = 0;
	if (read_file_at(AT_FDCWD, path, 64 << 10, &b, NULL) == 0) {
		buf_cstr(&b);
		unsigned long in, outside, count;
		for (char *l = b.data; l && *l && n < max;) {
			if (sscanf(l, " %lu %lu %lu", &in, &outside, &count) == 3)
				out[n++] = (struct linux_idmap){ (uint32_t)in, (uint32_t)outside, (uint32_t)count };
			l = strchr(l, '\n');
			l = l ? l + 1 : NULL;
		}
	}
	buf_release(&b);
	return n;
}

static int write_map(pid_t pid, const char *file, const struct linux_idmap *m, size_t n, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++)
		buf_appendf(&b, "%u %u %u\n", m[i].inside, m[i].outside, m[i].count);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc = 0;
	/* the kernel takes the whole map in one write, or nothing */
	if (fd < 0 || write(fd, b.data ? b.data : "", b.len) != (ssize_t)b.len)
		rc = error_sys(err, errno, "write %s", path);
	if (fd >= 0)
		close(fd);
	buf_release(&b);
	return rc;
}

int linux_userns_set_maps(pid_t pid, const struct linux_idmap *uid, size_t n_uid, const struct linux_idmap *gid,
			  size_t n_gid, bool deny_setgroups, struct capsa_error **err)
{
	if (deny_setgroups) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "deny", 4) != 4)
			return error_sys(err, errno, "write %s", path);
	}
	if (n_uid && write_map(pid, "uid_map", uid, n_uid, err) < 0)
		return -1;
	if (n_gid && write_map(pid, "gid_map", gid, n_gid, err) < 0)
		return -1;
	return 0;
}

int linux_sysctl_set(const char *name, const char *value, struct capsa_error **err)
{
	if (!name || !*name || name[0] == '.' || name[0] == '/' || strstr(name, ".."))
		return error_set(err, EINVAL, "sysctl '%s': invalid name", name ? name : "");
	_cleanup_free_ char *rel = xstrdup(name);
	/* "net.ipv4.ip_forward" and "net/ipv4/ip_forward" both name the same
	 * file; a name with slashes keeps its dots (interface names). */
	if (!strchr(rel, '/'))
		for (char *p = rel; *p; p++)
			if (*p == '.')
				*p = '/';
	_cleanup_close_ int dir = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return error_sys(err, errno, "sysctl %s: open /proc/sys", name);
	_cleanup_close_ int fd = open_beneath(dir, rel, O_WRONLY | O_NOCTTY, 0, RES_NO_SYMLINKS);
	if (fd < 0)
		return error_sys(err, errno, "sysctl %s", name);
	size_t n = strlen(value);
	if (write(fd, value, n) != (ssize_t)n)
		return error_sys(err, errno, "sysctl %s=%s", name, value);
	return 0;
}
