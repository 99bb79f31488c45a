/* rootless.c: entering a non-root user's own user namespace.
 *
 * The order (user_namespaces(7)): fork a helper that stays in the host's
 * namespace; unshare(CLONE_NEWUSER) here; the helper, told so over a pipe,
 * runs the setuid newuidmap and newgidmap on our pid, which check the
 * ranges against /etc/subuid and /etc/subgid; then become root of the
 * namespace and take a private mount namespace, so that the overlay and
 * bind mounts of the store and its sandboxes are ours alone.
 *
 * The mapping is root -> the user's uid, 1..count -> the user's first
 * subordinate range: the one podman uses, so that layer files owned by
 * image uids land on the user's subordinate ids on disk.
 * Must never: run a helper found through $PATH, or map an id the user was
 * not given (newuidmap is the judge of that, not us).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns.h"
#include "rootless.h"
#include "util/fs.h"
#include "util/str.h"

#define MAX_SUBID 0xfffffffeULL

static struct {
	bool done, rootless;
	uid_t host_uid;
} st;

#define MAX_EXTENTS 340 /* the kernel's limit per map */

/* "0 0 4294967295" is the host's namespace; anything else is not. */
static void detect(void)
{
	if (st.done)
		return;
	st.done = true;
	st.host_uid = geteuid();
	st.rootless = st.host_uid != 0;
	struct linux_idmap m[MAX_EXTENTS];
	size_t n = linux_idmap_read("/proc/self/uid_map", m, ARRAY_SIZE(m));
	if (n == 0 || (m[0].inside == 0 && m[0].outside == 0 && m[0].count == UINT32_MAX))
		return;
	st.rootless = true;
	/* root of this namespace, if mapped, is who we act as on the host */
	uid_t me = geteuid();
	for (size_t i = 0; i < n; i++) {
		if (m[i].inside <= me && me - m[i].inside < m[i].count) {
			st.host_uid = (uid_t)(m[i].outside + (me - m[i].inside));
			break;
		}
	}
}

/* The ids a map file maps (the sum of its counts). */
static uint64_t mapped(const char *path)
{
	struct linux_idmap m[MAX_EXTENTS];
	size_t n = linux_idmap_read(path, m, ARRAY_SIZE(m));
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += m[i].count;
	return sum;
}

uint32_t linux_rootless_id_count(void)
{
	uint64_t u = mapped("/proc/self/uid_map"), g = mapped("/proc/self/gid_map");
	uint64_t n = MIN(u, g);
	return (uint32_t)MIN(n, (uint64_t)UINT32_MAX);
}

bool linux_rootless(void)
{
	detect();
	return st.rootless;
}

uid_t linux_rootless_host_uid(void)
{
	detect();
	return st.host_uid;
}

char *linux_rootless_store_root(void)
{
	const char *x = getenv("XDG_DATA_HOME");
	if (x && x[0] == '/')
		return xasprintf("%s/capsa", x);
	const char *home = getenv("HOME");
	if (home && home[0] == '/')
		return xasprintf("%s/.local/share/capsa", home);
	struct passwd *pw = getpwuid(linux_rootless_host_uid());
	if (pw && pw->pw_dir && pw->pw_dir[0] == '/')
		return xasprintf("%s/.local/share/capsa", pw->pw_dir);
	return xasprintf("/tmp/capsa-data-%u", (unsigned)linux_rootless_host_uid());
}

char *linux_rootless_run_root(void)
{
	/* only one that exists: a session without one (su, cron, ssh
	 * without pam_systemd) may still carry another login's */
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat sb;
	if (x && x[0] == '/' && stat(x, &sb) == 0 && S_ISDIR(sb.st_mode))
		return xasprintf("%s/capsa", x);
	return xasprintf("/tmp/capsa-run-%u", (unsigned)linux_rootless_host_uid());
}

void linux_subid_file_release(struct linux_subid_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->r[i].owner);
	free(f->r);
	f->r = NULL;
	f->n = 0;
}

int linux_subid_parse(struct linux_subid_file *f, const char *text, struct capsa_error **err)
{
	int line = 0;
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		_cleanup_free_ char *l = xstrndup(p, len);
		p = nl ? nl + 1 : NULL;
		line++;
		if (!*l || *l == '#')
			continue;
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		int64_t start, count;
		if (!c1 || !c2)
			return error_set(err, EINVAL, "%s line %d: expected NAME:START:COUNT", f->path, line);
		*c1 = *c2 = '\0';
		if (parse_int64(c1 + 1, 0, (int64_t)MAX_SUBID, &start) < 0 ||
		    parse_int64(c2 + 1, 0, (int64_t)MAX_SUBID, &count) < 0)
			return error_set(err, EINVAL, "%s line %d: bad range '%s:%s'", f->path, line, c1 + 1, c2 + 1);
		f->r = xrealloc(f->r, (f->n + 1) * sizeof(*f->r));
		f->r[f->n++] = (struct linux_subid_range){ xstrdup(l), (uint64_t)start, (uint64_t)count, line };
	}
	return 0;
}

/* The user's first range in path, by name or by numeric uid. */
static int own_range(const char *path, const char *name, uid_t uid, uint64_t *start, uint64_t *count,
		     struct capsa_error **err)
{
	struct buf text = BUF_INIT;
	struct capsa_error *e = NULL;
	if (read_file_at(AT_FDCWD, path, 16 << 20, &text, &e) < 0 && e->code != ENOENT) {
		buf_release(&text);
		error_move(err, &e);
		return -1;
	}
	capsa_error_free(e);
	buf_cstr(&text);
	struct linux_subid_file f = { .path = path };
	int prc = linux_subid_parse(&f, text.data ? text.data : "", err);
	buf_release(&text);
	if (prc < 0) {
		linux_subid_file_release(&f);
		return -1;
	}
	char num[16];
	snprintf(num, sizeof(num), "%u", (unsigned)uid);
	int rc = -1;
	for (size_t i = 0; i < f.n && rc < 0; i++) {
		if ((strcmp(f.r[i].owner, name) == 0 || strcmp(f.r[i].owner, num) == 0) && f.r[i].count > 0) {
			*start = f.r[i].start;
			*count = f.r[i].count;
			rc = 0;
		}
	}
	linux_subid_file_release(&f);
	if (rc < 0)
		error_set(err, ENOENT,
			  "rootless mode needs subordinate ids, and user %s (uid %u) has no range in %s; as root, add "
			  "one with: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s",
			  name, (unsigned)uid, path, name);
	return rc;
}

static const char *find_helper(const char *name)
{
	static const char *const dirs[] = { "/usr/bin", "/usr/sbin", "/bin", "/sbin" };
	static char path[64];
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

/* In the helper child: newuidmap PID 0 ID 1 1 START COUNT; exit code. */
static int run_map(const char *tool, pid_t pid, unsigned id, uint64_t start, uint64_t count)
{
	const char *path = find_helper(tool);
	if (!path)
		return 127;
	char a[4][24], zero[] = "0", one[] = "1";
	snprintf(a[0], sizeof(a[0]), "%d", (int)pid);
	snprintf(a[1], sizeof(a[1]), "%u", id);
	snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)start);
	snprintf(a[3], sizeof(a[3]), "%llu", (unsigned long long)count);
	char *argv[] = { (char *)tool, a[0], zero, a[1], one, one, a[2], a[3], NULL };
	pid_t c = fork();
	if (c < 0)
		return 126;
	if (c == 0) {
		execv(path, argv);
		_exit(127);
	}
	int status;
	while (waitpid(c, &status, 0) < 0)
		if (errno != EINTR)
			return 126;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct maps {
	unsigned uid, gid;
	uint64_t ustart, ucount, gstart, gcount;
};

/* Forked before the unshare: waits for it, maps the parent, exits with
 * 0, or 1 (newuidmap failed) / 2 (newgidmap failed), or 3 (parent gone). */
static __attribute__((noreturn)) void map_helper(int rfd, const struct maps *m)
{
	char c;
	pid_t parent = getppid();
	if (read(rfd, &c, 1) != 1)
		_exit(3);
	if (run_map("newuidmap", parent, m->uid, m->ustart, m->ucount) != 0)
		_exit(1);
	if (run_map("newgidmap", parent, m->gid, m->gstart, m->gcount) != 0)
		_exit(2);
	_exit(0);
}

static int load_maps(struct maps *m, struct capsa_error **err)
{
	m->uid = (unsigned)geteuid();
	m->gid = (unsigned)getegid();
	struct passwd *pw = getpwuid(m->uid);
	_cleanup_free_ char *name = pw ? xstrdup(pw->pw_name) : xasprintf("%u", m->uid);
	if (own_range("/etc/subuid", name, m->uid, &m->ustart, &m->ucount, err) < 0 ||
	    own_range("/etc/subgid", name, m->uid, &m->gstart, &m->gcount, err) < 0)
		return -1;
	/* root plus the range must fit in the namespace's 32-bit ids */
	m->ucount = MIN(m->ucount, (uint64_t)MAX_SUBID - 1);
	m->gcount = MIN(m->gcount, (uint64_t)MAX_SUBID - 1);
	if (!find_helper("newuidmap") || !find_helper("newgidmap"))
		return error_set(err, ENOENT,
				 "rootless mode needs newuidmap and newgidmap (Debian package uidmap), not found in "
				 "/usr/bin, /usr/sbin, /bin or /sbin");
	return 0;
}

static int become_root(struct capsa_error **err)
{
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return error_sys(err, errno, "become root of the user namespace");
	if (setgroups(0, NULL) < 0)
		return error_sys(err, errno, "drop supplementary groups in the user namespace");
	if (unshare(CLONE_NEWNS) < 0)
		return error_sys(err, errno, "unshare mount namespace in the user namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return error_sys(err, errno, "make mounts private to the user namespace");
	return 0;
}

int linux_rootless_enter(struct capsa_error **err)
{
	if (geteuid() == 0)
		return 0; /* host root, or root of a namespace already */
	struct maps m;
	if (load_maps(&m, err) < 0)
		return -1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return error_sys(err, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return error_sys(err, errno, "fork");
	}
	if (pid == 0) {
		close(p[1]);
		map_helper(p[0], &m);
	}
	close(p[0]);
	int rc = unshare(CLONE_NEWUSER), e = errno;
	if (rc == 0 && write(p[1], "x", 1) != 1)
		rc = -1, e = errno;
	close(p[1]); /* on failure: the helper reads EOF and leaves */
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc < 0)
		return error_sys(err, e,
				 "create a user namespace (is kernel.unprivileged_userns_clone or "
				 "user.max_user_namespaces 0?)");
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	if (code != 0)
		return error_set(err, EPERM,
				 "%s refused to map uid %u's subordinate range %llu+%llu (gid %u: %llu+%llu); its message "
				 "is above",
				 code == 2 ? "newgidmap" : "newuidmap", m.uid, (unsigned long long)m.ustart,
				 (unsigned long long)m.ucount, m.gid, (unsigned long long)m.gstart,
				 (unsigned long long)m.gcount);
	if (become_root(err) < 0)
		return -1;
	st.done = false; /* root of a namespace now: detect again */
	return 0;
}
