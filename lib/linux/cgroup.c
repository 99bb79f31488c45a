/* cgroup.c: finding the cgroup hierarchies and the lifecycle of a sandbox's
 * cgroup: create, open, add a process, freeze, kill everything, list, remove.
 * Limits, statistics and device rules are in cgroup-limits.c.
 *
 * Which hierarchy is used is decided once per process: a cgroup2 mount at
 * /sys/fs/cgroup (one statfs) is a pure v2 host; otherwise the mount table
 * says whether v1 controllers are mounted (this is also the hybrid case: a
 * cgroup2 mount beside v1 controllers holds no controller).
 *
 * v2 rules this code keeps: controllers are enabled top-down in each
 * ancestor's cgroup.subtree_control, and processes live only in leaves (an
 * ancestor with processes cannot enable controllers: reported as such).
 * Rootless, the delegated group's own processes are moved into its child
 * capsa-procs first (rootless_vacate), as systemd's delegation rules ask.
 * Never removes anything but the leaf it created.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "mountinfo.h"
#include "rootless.h"
#include "util/fs.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define WAIT_MS 5000 /* bound on freezing and on emptying a cgroup */

/* --- discovery ------------------------------------------------------------ */

struct v1_mount {
	char *mount;
	char **controllers;
};

static struct {
	bool done;
	enum linux_cgroup_mode mode;
	char *v2_mount;
	struct v1_mount *v1;
	size_t nv1;
	bool rootless;
	char *rootless_why; /* rootless and CGROUP_MODE_NONE: why */
} disc;

static bool has_controller(char **controllers, const char *c)
{
	return strv_contains(controllers, c);
}

/* The cgroup2 mount: /sys/fs/cgroup itself, or a unified mount beside v1. */
static char *v2_mount_point(void)
{
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)CGROUP2_SUPER_MAGIC)
		return xstrdup("/sys/fs/cgroup");
	struct linux_mnt *mi;
	size_t n;
	struct capsa_error *e = NULL;
	if (linux_mountinfo_read(&mi, &n, &e) < 0) {
		capsa_error_free(e);
		return NULL;
	}
	char *point = NULL;
	for (size_t i = 0; i < n && !point; i++)
		if (strcmp(mi[i].fstype, "cgroup2") == 0 && strcmp(mi[i].root, "/") == 0)
			point = xstrdup(mi[i].point);
	linux_mountinfo_free(mi, n);
	return point;
}

/* Rootless: the child of the delegated group that the group's own
 * processes are moved to (rootless_vacate), since cgroup v2 lets a group
 * enable controllers for its children only while it holds no process. */
#define ROOTLESS_LEAF "capsa-procs"

static bool cg_dir_writable(const char *dir)
{
	_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", dir);
	return access(dir, W_OK) == 0 && access(procs, W_OK) == 0;
}

/* A process in <group>/capsa-procs was moved there by capsa (or started
 * from one that was): the delegated group is <group>. */
static char *rootless_unleaf(const char *mount, char *path)
{
	size_t n = strlen(path), l = strlen("/" ROOTLESS_LEAF);
	if (n <= l || strcmp(path + n - l, "/" ROOTLESS_LEAF) != 0)
		return path;
	_cleanup_free_ char *parent = xasprintf("%s%.*s", mount, (int)(n - l), path);
	if (!cg_dir_writable(parent))
		return path;
	path[n - l] = '\0';
	return path;
}

/* Rootless: only a cgroup v2 subtree delegated to the user, the one this
 * process is in (its directory and cgroup.procs writable by us), is used;
 * it plays the hierarchy's root.  v1 is never delegated. */
static void discover_rootless(void)
{
	_cleanup_free_ char *mount = v2_mount_point();
	if (!mount) {
		disc.rootless_why = xstrdup("this host has no cgroup v2 hierarchy to delegate (cgroup v1 cannot be)");
		return;
	}
	struct buf b = BUF_INIT;
	char *path = NULL;
	if (read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &b, NULL) == 0) {
		buf_cstr(&b);
		for (char *l = b.data; l && *l && !path;) {
			char *nl = strchr(l, '\n');
			if (nl)
				*nl = '\0';
			if (str_has_prefix(l, "0::/"))
				path = xstrdup(l + 3);
			l = nl ? nl + 1 : NULL;
		}
	}
	buf_release(&b);
	if (!path) {
		disc.rootless_why = xasprintf("this process is in no cgroup v2 group (see /proc/self/cgroup)");
		return;
	}
	path = rootless_unleaf(mount, path);
	char *dir = xasprintf("%s%s", mount, strcmp(path, "/") == 0 ? "" : path);
	if (!cg_dir_writable(dir)) {
		disc.rootless_why = xasprintf("this process's cgroup %s is not delegated to the user (not writable); run "
					      "capsa in one that is, e.g. under systemd-run --user --scope -p "
					      "Delegate=yes",
					      path);
		free(dir);
		free(path);
		return;
	}
	free(path);
	disc.mode = CGROUP_MODE_V2;
	disc.v2_mount = dir;
}

static void discover(void)
{
	if (disc.done)
		return;
	disc.done = true;
	disc.mode = CGROUP_MODE_NONE;
	if (linux_rootless()) {
		disc.rootless = true;
		discover_rootless();
		return;
	}
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)CGROUP2_SUPER_MAGIC) {
		disc.mode = CGROUP_MODE_V2;
		disc.v2_mount = xstrdup("/sys/fs/cgroup");
		return;
	}
	struct linux_mnt *mi;
	size_t n;
	struct capsa_error *e = NULL;
	if (linux_mountinfo_read(&mi, &n, &e) < 0) {
		capsa_error_free(e);
		return;
	}
	bool v1_controllers = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(mi[i].fstype, "cgroup2") == 0 && !disc.v2_mount) {
			disc.v2_mount = xstrdup(mi[i].point);
			continue;
		}
		if (strcmp(mi[i].fstype, "cgroup") != 0)
			continue;
		/* Only a hierarchy's own root mount (not a bind of a subdir). */
		if (strcmp(mi[i].root, "/") != 0)
			continue;
		char **opts = strv_split(mi[i].super_opts, ',');
		char **ctl = xcalloc(1, sizeof(char *));
		for (size_t k = 0; opts[k]; k++) {
			const char *o = opts[k];
			if (strcmp(o, "rw") == 0 || strcmp(o, "ro") == 0 || strcmp(o, "clone_children") == 0 ||
			    str_has_prefix(o, "release_agent=") || strcmp(o, "noprefix") == 0 ||
			    strcmp(o, "xattr") == 0 || strcmp(o, "cpuset_v2_mode") == 0)
				continue;
			ctl = strv_push(ctl, o);
			if (!str_has_prefix(o, "name="))
				v1_controllers = true;
		}
		strv_free(opts);
		bool dup = false;
		for (size_t j = 0; j < disc.nv1; j++)
			if (ctl[0] && strv_contains(disc.v1[j].controllers, ctl[0]))
				dup = true;
		if (dup || !ctl[0]) {
			strv_free(ctl);
			continue;
		}
		disc.v1 = xrealloc(disc.v1, (disc.nv1 + 1) * sizeof(*disc.v1));
		disc.v1[disc.nv1++] = (struct v1_mount){ .mount = xstrdup(mi[i].point), .controllers = ctl };
	}
	linux_mountinfo_free(mi, n);
	if (v1_controllers)
		disc.mode = CGROUP_MODE_V1;
	else if (disc.v2_mount)
		disc.mode = CGROUP_MODE_V2;
}

enum linux_cgroup_mode linux_cgroup_mode(void)
{
	discover();
	return disc.mode;
}

static bool file_has_word(int dirfd, const char *file, const char *w)
{
	struct buf b = BUF_INIT;
	bool have = false;
	if (cg_read(dirfd, file, &b) == 0) {
		buf_cstr(&b);
		b.data[strcspn(b.data, "\n")] = '\0';
		_cleanup_strv_ char **v = strv_split(b.data, ' ');
		have = strv_contains(v, w);
	}
	buf_release(&b);
	return have;
}

/* The controllers sandboxes can have: v1, every mounted one; v2, those of
 * the hierarchy's root (rootless: of the delegated subtree). */
bool linux_cgroup_has_controller(const char *c)
{
	discover();
	if (disc.mode == CGROUP_MODE_V1) {
		for (size_t i = 0; i < disc.nv1; i++)
			if (has_controller(disc.v1[i].controllers, c))
				return true;
		return false;
	}
	if (disc.mode != CGROUP_MODE_V2)
		return false;
	_cleanup_close_ int fd = open(disc.v2_mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* rootless too: the delegated root's processes are moved out of the
	 * way (rootless_vacate) before it enables controllers */
	return file_has_word(fd, "cgroup.controllers", c);
}

char *linux_cgroup_rootless_why(const char *controller)
{
	discover();
	if (disc.rootless_why)
		return xstrdup(disc.rootless_why);
	if (disc.mode == CGROUP_MODE_V2)
		return xasprintf("the delegated cgroup %s does not offer it (see its cgroup.controllers)", disc.v2_mount);
	return xasprintf("no cgroup offers the %s controller", controller);
}

/* --- small file helpers --------------------------------------------------- */

void cg_backoff(unsigned *step)
{
	unsigned us = 100u << MIN(*step, 7u); /* 100 µs .. 12.8 ms */
	if (*step < 7)
		(*step)++;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)MIN(us, 10000u) * 1000 };
	nanosleep(&ts, NULL);
}

int cg_write(int dirfd, const char *file, const char *s, struct capsa_error **err)
{
	if (write_str_at(dirfd, file, s) < 0)
		return error_sys(err, errno, "write %s to %s", s, file);
	return 0;
}

int cg_writef(int dirfd, const char *file, struct capsa_error **err, const char *fmt, ...)
{
	char v[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	return cg_write(dirfd, file, v, err);
}

/* Most cgroup files are a few bytes and read every second by the metrics
 * sampler: read through a stack buffer, so the buffer grows to the content
 * and not to a 64 KiB read chunk (an mmap and munmap per file in musl). */
int cg_read(int dirfd, const char *file, struct buf *b)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	char chunk[4096];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (b->len + (size_t)r > (1u << 20)) {
			errno = EFBIG;
			return -1;
		}
		buf_append(b, chunk, (size_t)r);
	}
	buf_cstr(b);
	return 0;
}

int cg_read_u64(int dirfd, const char *file, uint64_t *out)
{
	struct buf b = BUF_INIT;
	if (cg_read(dirfd, file, &b) < 0) {
		buf_release(&b);
		return -1;
	}
	int rc = 0;
	if (str_has_prefix(b.data, "max"))
		*out = UINT64_MAX;
	else {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(b.data, &end, 10);
		if (end == b.data || errno)
			rc = -1;
		else
			*out = v;
	}
	buf_release(&b);
	return rc;
}

int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *out)
{
	struct buf b = BUF_INIT;
	if (cg_read(dirfd, file, &b) < 0) {
		buf_release(&b);
		return -1;
	}
	int rc = -1;
	size_t kl = strlen(key);
	for (char *p = b.data; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			*out = strtoull(p + kl + 1, NULL, 10);
			rc = 0;
			break;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	buf_release(&b);
	if (rc < 0)
		errno = ENOENT;
	return rc;
}

int cg_dir(const struct linux_cgroup *cg, const char *controller)
{
	if (cg->mode == CGROUP_MODE_V2)
		return cg->fd;
	for (size_t i = 0; i < cg->nh; i++)
		if (has_controller(cg->h[i].controllers, controller))
			return cg->h[i].fd;
	return -1;
}

/* --- paths ------------------------------------------------------------- */

/* "<id>" -> "capsa/<id>"; "/a/b" (OCI cgroupsPath) -> "a/b".  No empty,
 * "." or ".." component: the path is joined below a hierarchy root. */
static char *cg_rel_path(const char *name, struct capsa_error **err)
{
	if (!name || !*name) {
		error_set(err, EINVAL, "cgroup name is empty");
		return NULL;
	}
	char *rel = name[0] == '/' ? xstrdup(name + 1) : xasprintf("capsa/%s", name);
	if (name[0] != '/' && strchr(name, '/')) {
		error_set(err, EINVAL, "cgroup name '%s': contains '/'", name);
		free(rel);
		return NULL;
	}
	if (strlen(rel) > 1024) {
		error_set(err, ENAMETOOLONG, "cgroup path '%s': too long", name);
		free(rel);
		return NULL;
	}
	char **parts = strv_split(rel, '/');
	bool bad = !parts[0];
	for (size_t i = 0; parts[i]; i++)
		if (!*parts[i] || strcmp(parts[i], ".") == 0 || strcmp(parts[i], "..") == 0)
			bad = true;
	strv_free(parts);
	if (bad) {
		error_set(err, EINVAL, "cgroup path '%s': empty, '.' or '..' component", name);
		free(rel);
		return NULL;
	}
	return rel;
}

/* mkdir -p of rel under rootfd; on_level(dirfd, depth, ctx) runs for each
 * directory that will have children (the root and every ancestor), before
 * its child is made.  Returns the leaf's fd. */
typedef int (*level_fn)(int dirfd, const char *what, void *ctx, struct capsa_error **err);
static int cg_mkdirs(int rootfd, const char *mount, const char *rel, bool create, level_fn on_level, void *ctx,
		     struct capsa_error **err)
{
	int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return error_sys(err, errno, "dup cgroup root fd");
	char **parts = strv_split(rel, '/');
	for (size_t i = 0; parts[i]; i++) {
		if (on_level && on_level(cur, i == 0 ? mount : parts[i - 1], ctx, err) < 0)
			goto fail;
		if (create && mkdirat(cur, parts[i], 0755) < 0 && errno != EEXIST) {
			error_sys(err, errno, "create cgroup %s/%s", mount, rel);
			goto fail;
		}
		int next = openat(cur, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			error_sys(err, errno, "open cgroup %s/%s", mount, rel);
			goto fail;
		}
		close(cur);
		cur = next;
	}
	strv_free(parts);
	return cur;
fail:
	strv_free(parts);
	close(cur);
	return -1;
}

/* v2: enable the controllers we use in dirfd's cgroup.subtree_control. */
static int v2_enable_from(int dirfd, const char *what, char *avail, char *on, struct capsa_error **err)
{
	static const char *const want[] = { "cpu", "cpuset", "io", "memory", "pids", "hugetlb" };
	avail[strcspn(avail, "\n")] = '\0';
	on[strcspn(on, "\n")] = '\0';
	_cleanup_strv_ char **av = strv_split(avail, ' ');
	_cleanup_strv_ char **en = strv_split(on, ' ');
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		if (!strv_contains(av, want[i]) || strv_contains(en, want[i]))
			continue;
		char v[32];
		snprintf(v, sizeof(v), "+%s", want[i]);
		if (write_str_at(dirfd, "cgroup.subtree_control", v) == 0)
			continue;
		if (errno == EBUSY)
			return error_set(err, EBUSY,
					 "enable %s in cgroup %s: it has processes of its own, and cgroup v2 "
					 "allows controllers only above leaves",
					 want[i], what);
		return error_sys(err, errno, "enable %s in cgroup %s", want[i], what);
	}
	return 0;
}

/* Moves the pids listed in rootfd's cgroup.procs to its child leaffd. */
static int rootless_move_procs(int rootfd, int leaffd, bool *moved, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	if (cg_read(rootfd, "cgroup.procs", &b) < 0) {
		buf_release(&b);
		return error_sys(err, errno, "read %s/cgroup.procs", disc.v2_mount);
	}
	int rc = 0;
	*moved = false;
	for (char *l = b.data; l && *l && rc == 0;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		/* a process that exited meanwhile is gone from both */
		if (*l && write_str_at(leaffd, "cgroup.procs", l) < 0 && errno != ESRCH)
			rc = error_sys(err, errno, "move process %s to cgroup %s/%s", l, disc.v2_mount,
				       ROOTLESS_LEAF);
		*moved = true;
		l = nl ? nl + 1 : NULL;
	}
	buf_release(&b);
	return rc;
}

/* Rootless: the delegated group holds processes (capsa's own, and any
 * other there, e.g. the shell that started capsa), and cgroup v2 lets a
 * group enable controllers for its children only while it holds none.
 * Moves them all into its child ROOTLESS_LEAF, within the delegated
 * subtree (their limits do not change: capsa sets none on the group).
 * A process forked meanwhile is in the leaf with its parent, or moved by
 * the next round; one that keeps arriving makes the enabling fail with
 * EBUSY, which says so. */
static int rootless_vacate(int rootfd, struct capsa_error **err)
{
	if (mkdirat(rootfd, ROOTLESS_LEAF, 0755) < 0 && errno != EEXIST)
		return error_sys(err, errno, "create cgroup %s/%s", disc.v2_mount, ROOTLESS_LEAF);
	_cleanup_close_ int leaf = openat(rootfd, ROOTLESS_LEAF, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (leaf < 0)
		return error_sys(err, errno, "open cgroup %s/%s", disc.v2_mount, ROOTLESS_LEAF);
	bool moved = true;
	for (int round = 0; round < 4 && moved; round++)
		if (rootless_move_procs(rootfd, leaf, &moved, err) < 0)
			return -1;
	return 0;
}

/* v2: enable the controllers we use in dirfd's cgroup.subtree_control. */
static int v2_enable(int dirfd, const char *what, void *ctx, struct capsa_error **err)
{
	struct buf avail = BUF_INIT, on = BUF_INIT;
	struct capsa_error *e = NULL;
	int rc;
	if (ctx && strcmp(what, disc.v2_mount) == 0 && rootless_vacate(dirfd, &e) < 0)
		rc = -1;
	else if (cg_read(dirfd, "cgroup.controllers", &avail) < 0 || cg_read(dirfd, "cgroup.subtree_control", &on) < 0)
		rc = error_sys(&e, errno, "read the controllers of cgroup %s", what);
	else
		rc = v2_enable_from(dirfd, what, avail.data, on.data, &e);
	buf_release(&avail);
	buf_release(&on);
	if (rc < 0)
		error_move(err, &e);
	capsa_error_free(e);
	return rc;
}

/* v1 cpuset: a new cgroup starts with no cpus and mems, and no task can
 * join it until they are set; copy the parent's. */
static int v1_cpuset_inherit(int parent, int child, struct capsa_error **err)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct buf cur = BUF_INIT, par = BUF_INIT;
		int rc = 0;
		if (cg_read(child, files[i], &cur) == 0 && cur.len > 0 && cur.data[0] == '\n') {
			if (cg_read(parent, files[i], &par) < 0)
				rc = error_sys(err, errno, "read parent %s", files[i]);
			else
				rc = cg_write(child, files[i], par.data, err);
		}
		buf_release(&cur);
		buf_release(&par);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* --- create / open ------------------------------------------------------- */

static struct linux_cgroup *cg_new(enum linux_cgroup_mode mode, char *rel)
{
	struct linux_cgroup *cg = xcalloc(1, sizeof(*cg));
	cg->mode = mode;
	cg->path = rel;
	cg->fd = -1;
	return cg;
}

/* The v1 hierarchies a sandbox needs: limits (memory, pids, cpu, cpuset),
 * accounting (cpuacct, blkio), pause (freezer) and the device allowlist
 * (devices).  Others (hugetlb, net_cls, perf_event, name=systemd, ...) are
 * left alone: creating a directory in each costs a few hundred microseconds
 * of every sandbox start on a host with ten hierarchies, for nothing. */
static bool v1_wanted(char **controllers, bool cpuset)
{
	static const char *const used[] = { "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio" };
	for (size_t i = 0; i < ARRAY_SIZE(used); i++)
		if (has_controller(controllers, used[i]))
			return true;
	return cpuset && has_controller(controllers, "cpuset");
}

static int v1_open_all(struct linux_cgroup *cg, bool create, bool cpuset, struct capsa_error **err)
{
	cg->h = xcalloc(disc.nv1 ? disc.nv1 : 1, sizeof(*cg->h));
	for (size_t i = 0; i < disc.nv1; i++) {
		if (create && !v1_wanted(disc.v1[i].controllers, cpuset))
			continue;
		_cleanup_close_ int root = open(disc.v1[i].mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			return error_sys(err, errno, "open %s", disc.v1[i].mount);
		struct capsa_error *e = NULL;
		int fd = cg_mkdirs(root, disc.v1[i].mount, cg->path, create, NULL, NULL, &e);
		if (fd < 0) {
			if (!create && e->code == ENOENT) {
				/* a hierarchy the cgroup was not made in (unused
				 * controllers), or mounted after it was made */
				capsa_error_free(e);
				continue;
			}
			error_move(err, &e);
			capsa_error_free(e);
			return -1;
		}
		struct cg_hier *h = &cg->h[cg->nh++];
		h->mount = xstrdup(disc.v1[i].mount);
		h->controllers = strv_dup(disc.v1[i].controllers);
		h->fd = fd;
		if (create && has_controller(h->controllers, "cpuset")) {
			/* every level from the root down needs cpus and mems */
			_cleanup_strv_ char **parts = strv_split(cg->path, '/');
			int par = fcntl(root, F_DUPFD_CLOEXEC, 3);
			for (size_t k = 0; parts[k] && par >= 0; k++) {
				int ch = openat(par, parts[k], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				int r = ch < 0 ? -1 : v1_cpuset_inherit(par, ch, err);
				close(par);
				par = ch;
				if (r < 0) {
					close(ch);
					return -1;
				}
			}
			if (par >= 0)
				close(par);
		}
	}
	return 0;
}

static int cg_setup(const char *name, bool create, bool cpuset, struct linux_cgroup **out, struct capsa_error **err)
{
	*out = NULL;
	discover();
	if (disc.mode == CGROUP_MODE_NONE && disc.rootless_why)
		return error_set(err, ENOTSUP, "cgroup %s: none in rootless mode: %s", name ? name : "", disc.rootless_why);
	if (disc.mode == CGROUP_MODE_NONE)
		return error_set(err, ENOTSUP, "cgroup %s: no cgroup filesystem is mounted", name ? name : "");
	char *rel = cg_rel_path(name, err);
	if (!rel)
		return -1;
	struct linux_cgroup *cg = cg_new(disc.mode, rel);
	if (disc.mode == CGROUP_MODE_V2) {
		_cleanup_close_ int root = open(disc.v2_mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (root < 0) {
			error_sys(err, errno, "open %s", disc.v2_mount);
			goto fail;
		}
		cg->fd = cg_mkdirs(root, disc.v2_mount, rel, create, create ? v2_enable : NULL,
				   linux_rootless() ? &disc : NULL, err);
		if (cg->fd < 0)
			goto fail;
	} else if (v1_open_all(cg, create, cpuset, err) < 0) {
		goto fail;
	}
	if (cg->mode == CGROUP_MODE_V1 && cg->nh == 0) {
		error_set(err, ENOENT, "cgroup %s: not found in any hierarchy", name);
		goto fail;
	}
	*out = cg;
	return 0;
fail:
	linux_cgroup_free(cg);
	return -1;
}

int linux_cgroup_create(const char *name, const struct linux_cgroup_limits *l, struct linux_cgroup **out,
			struct capsa_error **err)
{
	struct linux_cgroup *cg;
	if (cg_setup(name, true, l && (l->cpuset_cpus || l->cpuset_mems), &cg, err) < 0)
		return error_wrap(err, "create cgroup");
	struct linux_cgroup_limits none = LINUX_CGROUP_LIMITS_INIT;
	if (!l)
		l = &none;
	if (linux_cgroup_set_limits(cg, l, err) < 0 || cg_apply_devices(cg, l, err) < 0) {
		linux_cgroup_destroy(cg, NULL);
		linux_cgroup_free(cg);
		return error_wrap(err, "create cgroup %s", name);
	}
	*out = cg;
	return 0;
}

int linux_cgroup_open(const char *name, struct linux_cgroup **out, struct capsa_error **err)
{
	return cg_setup(name, false, false, out, err);
}

const char *linux_cgroup_path(const struct linux_cgroup *cg)
{
	return cg->path;
}

int linux_cgroup_fd(struct linux_cgroup *cg)
{
	return cg->mode == CGROUP_MODE_V2 ? cg->fd : -1;
}

void linux_cgroup_free(struct linux_cgroup *cg)
{
	if (!cg)
		return;
	if (cg->fd >= 0)
		close(cg->fd);
	for (size_t i = 0; i < cg->nh; i++) {
		close(cg->h[i].fd);
		free(cg->h[i].mount);
		strv_free(cg->h[i].controllers);
	}
	free(cg->h);
	free(cg->path);
	free(cg);
}

/* --- processes ----------------------------------------------------------- */

int linux_cgroup_add_pid(struct linux_cgroup *cg, pid_t pid, struct capsa_error **err)
{
	char num[32];
	snprintf(num, sizeof(num), "%d", (int)pid);
	if (cg->mode == CGROUP_MODE_V2)
		return cg_write(cg->fd, "cgroup.procs", num, err) < 0 ? error_wrap(err, "cgroup %s", cg->path) : 0;
	for (size_t i = 0; i < cg->nh; i++)
		if (cg_write(cg->h[i].fd, "cgroup.procs", num, err) < 0)
			return error_wrap(err, "cgroup %s/%s", cg->h[i].mount, cg->path);
	return 0;
}

/* The fd whose cgroup.procs lists the members: v2's, or on v1 the pids
 * hierarchy (any will do: every member is in every hierarchy). */
static int procs_dir(const struct linux_cgroup *cg)
{
	if (cg->mode == CGROUP_MODE_V2)
		return cg->fd;
	int fd = cg_dir(cg, "pids");
	if (fd < 0)
		fd = cg_dir(cg, "freezer");
	if (fd < 0 && cg->nh)
		fd = cg->h[0].fd;
	return fd;
}

#define PIDS_MAX (1u << 22) /* pid_max's ceiling */

int linux_cgroup_pids(struct linux_cgroup *cg, pid_t **out, size_t *n, struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	struct buf b = BUF_INIT;
	if (cg_read(procs_dir(cg), "cgroup.procs", &b) < 0) {
		buf_release(&b);
		return error_sys(err, errno, "read cgroup.procs of %s", cg->path);
	}
	size_t cap = 0;
	for (char *p = b.data; p && *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			if (cap > PIDS_MAX)
				break;
			*out = xrealloc(*out, cap * sizeof(pid_t));
		}
		(*out)[(*n)++] = (pid_t)v;
		p = end;
		while (*p == '\n')
			p++;
	}
	buf_release(&b);
	return 0;
}

/* Empty, or gone (a removed cgroup has no processes either). */
static bool cg_empty(struct linux_cgroup *cg)
{
	struct buf b = BUF_INIT;
	int r = cg_read(procs_dir(cg), "cgroup.procs", &b);
	bool empty = (r == 0 && b.len == 0) || (r < 0 && errno == ENOENT);
	buf_release(&b);
	return empty;
}

/* --- freezer ------------------------------------------------------------ */

bool linux_cgroup_frozen(struct linux_cgroup *cg)
{
	if (cg->mode == CGROUP_MODE_V2) {
		uint64_t v = 0;
		return cg_read_key(cg->fd, "cgroup.events", "frozen", &v) == 0 && v == 1;
	}
	int fd = cg_dir(cg, "freezer");
	struct buf b = BUF_INIT;
	bool frozen = fd >= 0 && cg_read(fd, "freezer.state", &b) == 0 && str_has_prefix(b.data, "FROZEN");
	buf_release(&b);
	return frozen;
}

int linux_cgroup_freeze(struct linux_cgroup *cg, bool frozen, struct capsa_error **err)
{
	int fd;
	const char *file, *value;
	if (cg->mode == CGROUP_MODE_V2) {
		fd = cg->fd;
		file = "cgroup.freeze";
		value = frozen ? "1" : "0";
	} else {
		fd = cg_dir(cg, "freezer");
		if (fd < 0)
			return error_set(err, ENOTSUP, "freeze cgroup %s: no freezer hierarchy is mounted", cg->path);
		file = "freezer.state";
		value = frozen ? "FROZEN" : "THAWED";
	}
	if (cg_write(fd, file, value, err) < 0)
		return error_wrap(err, "%s cgroup %s", frozen ? "freeze" : "thaw", cg->path);
	int64_t deadline = mono_ms() + WAIT_MS;
	unsigned step = 0;
	while (linux_cgroup_frozen(cg) != frozen) {
		if (mono_ms() > deadline) {
			if (frozen)
				write_str_at(fd, file, cg->mode == CGROUP_MODE_V2 ? "0" : "THAWED");
			return error_set(err, ETIMEDOUT, "%s cgroup %s: state not reached in %d ms",
					 frozen ? "freeze" : "thaw", cg->path, WAIT_MS);
		}
		cg_backoff(&step);
		/* v1 can stay FREEZING when a task was busy: ask again. */
		if (cg->mode == CGROUP_MODE_V1)
			write_str_at(fd, file, value);
	}
	return 0;
}

/* --- kill, destroy ------------------------------------------------------- */

int linux_cgroup_kill_all(struct linux_cgroup *cg, struct capsa_error **err)
{
	bool used_kill_file = cg->mode == CGROUP_MODE_V2 && write_str_at(cg->fd, "cgroup.kill", "1") == 0;
	int64_t deadline = mono_ms() + WAIT_MS;
	unsigned step = 0;
	for (;;) {
		if (!used_kill_file) {
			/* Freeze first so a fork loop cannot outrun us; the
			 * kill is delivered on thaw. */
			bool froze = linux_cgroup_freeze(cg, true, NULL) == 0;
			pid_t *pids;
			size_t n;
			if (linux_cgroup_pids(cg, &pids, &n, err) < 0)
				return error_wrap(err, "kill cgroup");
			for (size_t i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
			free(pids);
			if (froze)
				linux_cgroup_freeze(cg, false, NULL);
		}
		if (cg_empty(cg))
			return 0;
		if (mono_ms() > deadline)
			return error_set(err, ETIMEDOUT, "kill cgroup %s: processes left after %d ms", cg->path,
					 WAIT_MS);
		cg_backoff(&step);
	}
}

/* rmdir of one leaf; EBUSY right after the last process died is normal
 * for a moment (the memory cgroup drains), so retry briefly. */
static int rmdir_leaf(const char *mount, const char *rel, struct capsa_error **err)
{
	_cleanup_free_ char *full = xasprintf("%s/%s", mount, rel);
	int64_t deadline = mono_ms() + 1000;
	unsigned step = 0;
	for (;;) {
		if (rmdir(full) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || mono_ms() > deadline)
			return error_sys(err, errno, "remove cgroup %s", full);
		cg_backoff(&step);
	}
}

int linux_cgroup_destroy(struct linux_cgroup *cg, struct capsa_error **err)
{
	if (!cg_empty(cg) && linux_cgroup_kill_all(cg, err) < 0)
		return -1;
	if (cg->mode == CGROUP_MODE_V2)
		return rmdir_leaf(disc.v2_mount, cg->path, err);
	int rc = 0;
	for (size_t i = 0; i < cg->nh; i++)
		if (rmdir_leaf(cg->h[i].mount, cg->path, err) < 0)
			rc = -1;
	return rc;
}
