/* proc.c: the last steps a process takes before execve: resource limits,
 * identity, capabilities, no_new_privs and the seccomp filter; plus the
 * sealed memfd the agent is executed from.
 *
 * Runs in a forked child (the agent's exec path, an OCI init): every call
 * here is a plain syscall wrapper, no allocation after the error path
 * begins.  The order of linux_proc_apply() is the contract in proc.h; the
 * reasons are in the comments at each step.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>

#include "caps.h"
#include "proc.h"
#include "util/fs.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range __NR_close_range
#endif

static const struct {
	const char *name;
	int res;
} rlimit_names[] = {
	{ "cpu", RLIMIT_CPU },		{ "fsize", RLIMIT_FSIZE },	 { "data", RLIMIT_DATA },
	{ "stack", RLIMIT_STACK },	{ "core", RLIMIT_CORE },	 { "rss", RLIMIT_RSS },
	{ "nproc", RLIMIT_NPROC },	{ "nofile", RLIMIT_NOFILE },	 { "memlock", RLIMIT_MEMLOCK },
	{ "as", RLIMIT_AS },		{ "locks", RLIMIT_LOCKS },	 { "sigpending", RLIMIT_SIGPENDING },
	{ "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE },	 { "rtprio", RLIMIT_RTPRIO },
	{ "rttime", RLIMIT_RTTIME },
};

int linux_rlimit_from_name(const char *name)
{
	if (!name)
		return -1;
	if (strncasecmp(name, "RLIMIT_", 7) == 0)
		name += 7;
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
		if (strcasecmp(name, rlimit_names[i].name) == 0)
			return rlimit_names[i].res;
	return -1;
}

const char *linux_rlimit_name(int res)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
		if (rlimit_names[i].res == res)
			return rlimit_names[i].name;
	return NULL;
}

void linux_proc_sec_set_caps(struct linux_proc_sec *s, uint64_t caps, uint64_t ambient)
{
	s->set_caps = true;
	s->cap_bounding = caps;
	ambient &= caps;
	if (!s->set_ids || s->uid == 0) {
		s->cap_effective = s->cap_permitted = caps;
		s->cap_inheritable = s->cap_ambient = ambient;
	} else {
		/* docker: a non-root user starts with no capabilities; the
		 * bounding set still limits what a setuid binary may gain. */
		s->cap_effective = s->cap_permitted = s->cap_inheritable = s->cap_ambient = ambient;
	}
}

static int capset_sets(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)eff, .permitted = (uint32_t)prm, .inheritable = (uint32_t)inh },
		{ .effective = (uint32_t)(eff >> 32), .permitted = (uint32_t)(prm >> 32),
		  .inheritable = (uint32_t)(inh >> 32) },
	};
	return (int)syscall(SYS_capset, &hdr, data);
}

static int apply_caps(const struct linux_proc_sec *s, struct capsa_error **err)
{
	uint64_t known = linux_caps_all();
	if (capset_sets(s->cap_effective & known, s->cap_permitted & known, s->cap_inheritable & known) < 0)
		return error_sys(err, errno, "set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return error_sys(err, errno, "clear ambient capabilities");
	for (int c = 0; c <= linux_cap_last(); c++) {
		if (!(s->cap_ambient & (UINT64_C(1) << c)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)c, 0, 0) < 0)
			return error_sys(err, errno, "raise ambient capability %s", linux_cap_name(c));
	}
	return 0;
}

static int write_oom_score_adj(int v, struct capsa_error **err)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", v);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "set oom_score_adj %d", v);
	ssize_t w = write(fd, num, strlen(num));
	int e = errno;
	close(fd);
	if (w < 0)
		return error_sys(err, e, "set oom_score_adj %d", v);
	return 0;
}

int linux_proc_apply(const struct linux_proc_sec *s, struct capsa_error **err)
{
	/* 1. oom_score_adj: lowering it needs CAP_SYS_RESOURCE, which the
	 *    process is about to lose. */
	if (s->set_oom_score_adj && write_oom_score_adj(s->oom_score_adj, err) < 0)
		return -1;
	/* 2. rlimits, while we may still raise soft limits up to hard ones. */
	for (size_t i = 0; i < s->n_rlimits; i++) {
		const struct linux_rlimit *r = &s->rlimits[i];
		struct rlimit rl = { .rlim_cur = (rlim_t)r->soft, .rlim_max = (rlim_t)r->hard };
		if (r->soft > r->hard)
			return error_set(err, EINVAL, "rlimit %s: soft limit above hard limit",
					 linux_rlimit_name(r->resource) ? linux_rlimit_name(r->resource) : "?");
		if (setrlimit(r->resource, &rl) < 0) {
			const char *n = linux_rlimit_name(r->resource);
			return error_sys(err, errno, "set rlimit %s=%llu:%llu", n ? n : "?",
					 (unsigned long long)r->soft, (unsigned long long)r->hard);
		}
	}
	/* 3. bounding set: dropping needs CAP_SETPCAP in the effective set,
	 *    so before any set is lowered. */
	if (s->set_caps) {
		for (int c = 0; c <= linux_cap_last(); c++) {
			if (s->cap_bounding & (UINT64_C(1) << c))
				continue;
			/* already out of the caller's bounding set: nothing to drop */
			if (s->cap_bounding_have && !(s->cap_bounding_have & (UINT64_C(1) << c)))
				continue;
			if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0, 0, 0) < 0 && errno != EINVAL)
				return error_sys(err, errno, "drop %s from the bounding set",
						 linux_cap_name(c) ? linux_cap_name(c) : "capability");
		}
	}
	/* 4-6. groups, gid, uid.  KEEPCAPS keeps the permitted set across the
	 *      switch away from uid 0; step 7 then sets exactly what is
	 *      configured. */
	if (s->set_ids) {
		if (setgroups(s->n_groups, s->groups) < 0)
			return error_sys(err, errno, "set supplementary groups");
		if (setresgid(s->gid, s->gid, s->gid) < 0)
			return error_sys(err, errno, "set gid %u", (unsigned)s->gid);
		if (s->set_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return error_sys(err, errno, "keep capabilities");
		if (setresuid(s->uid, s->uid, s->uid) < 0)
			return error_sys(err, errno, "set uid %u", (unsigned)s->uid);
		if (s->set_caps && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return error_sys(err, errno, "reset keep capabilities");
	}
	/* 7-8. effective/permitted/inheritable, then ambient (which must be a
	 *      subset of permitted and inheritable). */
	if (s->set_caps && apply_caps(s, err) < 0)
		return -1;
	/* 9. no_new_privs: setuid binaries and file capabilities cannot add
	 *    anything after execve; also lets an unprivileged process install
	 *    the filter below. */
	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return error_sys(err, errno, "set no_new_privs");
	/* 10. umask */
	if (s->set_umask)
		umask(s->umask);
	/* 11. seccomp last: nothing above is subject to the filter, and the
	 *     only syscall left before the program runs is execve. */
	if (s->seccomp_bpf && linux_seccomp_install(s->seccomp_bpf, s->seccomp_len, s->seccomp_flags, err) < 0)
		return -1;
	return 0;
}

int linux_proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = pid > 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	errno = ESRCH;
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the command name may contain anything: fields start after the last ')' */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	char st = *p;
	/* p is field 3; start_time is field 22 */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*state = st;
	*start = strtoull(p, NULL, 10);
	return 0;
}

int linux_proc_start_time(pid_t pid, uint64_t *out)
{
	char state;
	if (linux_proc_stat(pid, &state, out) < 0)
		return -1;
	if (state == 'Z' || state == 'X' || state == 'x') {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

const char *linux_boot_id(void)
{
	static char id[40];
	static bool done;
	if (!done) {
		int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, id, 36) : -1;
		if (fd >= 0)
			close(fd);
		id[n == 36 ? 36 : 0] = '\0';
		done = true;
	}
	return id;
}

int linux_seccomp_install(const void *bpf, size_t len, unsigned flags, struct capsa_error **err)
{
	if (!bpf || len == 0 || len % sizeof(struct sock_filter) != 0 ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return error_set(err, EINVAL, "install seccomp filter: invalid program of %zu bytes", len);
	struct sock_fprog prog = {
		.len = (unsigned short)(len / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)(uintptr_t)bpf,
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0)
		return 0;
	if (errno == ENOSYS && flags == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0)
		return 0;
	if (errno == EACCES)
		return error_sys(err, errno, "install seccomp filter (needs no_new_privs or CAP_SYS_ADMIN)");
	return error_sys(err, errno, "install seccomp filter");
}

static int copy_fd(int in, int out, off_t size)
{
	off_t done = 0;
	while (done < size) {
		ssize_t n = sendfile(out, in, NULL, (size_t)MIN(size - done, (off_t)1 << 30));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EINVAL || errno == ENOSYS) && done == 0)
			break;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0; /* the file shrank under us: copy what there is */
		done += n;
	}
	if (done >= size)
		return 0;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		if (write_all(out, buf, (size_t)n) < 0)
			return -1;
	}
}

int linux_sealed_memfd(const char *path, const char *name, struct capsa_error **err)
{
	_cleanup_close_ int src = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (src < 0)
		return error_sys(err, errno, "open %s", path);
	struct stat st;
	if (fstat(src, &st) < 0)
		return error_sys(err, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "%s: not a regular file", path);
	/* MFD_EXEC (6.3+) keeps vm.memfd_noexec from refusing or sealing
	 * the copy non-executable; older kernels reject the flag. */
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return error_sys(err, errno, "memfd for %s", path);
	if (copy_fd(src, fd, st.st_size) < 0 || fchmod(fd, 0555) < 0) {
		int e = errno;
		close(fd);
		return error_sys(err, e, "copy %s to a memfd", path);
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		int e = errno;
		close(fd);
		return error_sys(err, e, "seal the memfd copy of %s", path);
	}
	return fd;
}

static int executable(const char *p)
{
	struct stat st;
	if (stat(p, &st) < 0)
		return errno == ENOTDIR ? ENOENT : errno;
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return EACCES;
	return 0;
}

int linux_find_executable(const char *file, const char *path, char *out, size_t n)
{
	if (!file || !*file)
		return ENOENT;
	if (strchr(file, '/')) {
		if ((size_t)snprintf(out, n, "%s", file) >= n)
			return ENAMETOOLONG;
		return executable(out);
	}
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int best = ENOENT;
	for (const char *p = path;;) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);
		int w = snprintf(out, n, "%.*s%s%s", (int)dl, p, dl ? "/" : "", file);
		if (w > 0 && (size_t)w < n) {
			int e = executable(out);
			if (e == 0)
				return 0;
			if (e != ENOENT)
				best = e;
		}
		if (!colon)
			break;
		p = colon + 1;
	}
	return best;
}

int linux_fds_cloexec_from(int first)
{
	if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0;
	/* Before 5.11: walk /proc/self/fd. */
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end || end == de->d_name || fd < first || fd == dirfd(d))
			continue;
		fd_set_cloexec((int)fd, true);
	}
	closedir(d);
	return 0;
}
