/* state.c: a container's directory under the runtime root (--root):
 * <root>/<id>/{state.json, config.json, seccomp.bpf, exec.fifo}, its lock,
 * and the container's status derived from the init process.
 *
 * Status: the record names the init by pid and start time (so a reused pid
 * is not mistaken for it).  No init, or a dead or zombie one: stopped.
 * exec.fifo still there: created (the init waits on it).  A frozen cgroup:
 * paused.  Otherwise running.  A directory without a complete record is a
 * create in progress (or one that crashed): creating.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "linux/proc.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

#define STATE_MAX (1u << 20)
#define ID_MAX 255

int oci_id_check(const char *id, struct capsa_error **err)
{
	if (!id || !*id)
		return error_set(err, EINVAL, "container id is empty");
	size_t n = strlen(id);
	if (n > ID_MAX)
		return error_set(err, EINVAL, "container id '%.32s...': %zu characters, more than %d", id, n, ID_MAX);
	for (const char *p = id; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-' || c == '.' || c == '+'))
			return error_set(err, EINVAL, "container id '%s': only letters, digits and _ - . + are allowed",
					 id);
	}
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return error_set(err, EINVAL, "container id '%s': not a name", id);
	return 0;
}

const char *oci_root(const struct oci_global *g)
{
	return g && g->root && *g->root ? g->root : OCI_DEFAULT_ROOT;
}

int oci_dir_open(const struct oci_global *g, const char *id, enum oci_open how, int *dirfd,
		 struct capsa_error **err)
{
	bool create = how == OCI_OPEN_CREATE;
	*dirfd = -1;
	if (oci_id_check(id, err) < 0)
		return -1;
	const char *root = oci_root(g);
	_cleanup_close_ int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0 && errno == ENOENT && create) {
		if (mkdir_p(root, 0700) < 0 && errno != EEXIST)
			return error_sys(err, errno, "create state root %s", root);
		rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (rfd < 0) {
		if (errno == ENOENT)
			return error_set(err, ENOENT, "container '%s' does not exist", id);
		return error_sys(err, errno, "open state root %s", root);
	}
	if (create && mkdirat(rfd, id, 0700) < 0) {
		if (errno == EEXIST)
			return error_set(err, EEXIST, "container '%s' already exists", id);
		return error_sys(err, errno, "create %s/%s", root, id);
	}
	int fd = openat(rfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return error_set(err, ENOENT, "container '%s' does not exist", id);
		return error_sys(err, errno, "open %s/%s", root, id);
	}
	/* readers never wait: records are replaced atomically, and one that
	 * is being written reads as what it was (or "creating") */
	if (how == OCI_OPEN_READ)
		flock(fd, LOCK_SH | LOCK_NB);
	else if (flock(fd, LOCK_EX) < 0) {
		int e = errno;
		close(fd);
		return error_sys(err, e, "lock container '%s'", id);
	}
	*dirfd = fd;
	return 0;
}

int oci_state_write(int dirfd, const struct oci_state *st, struct capsa_error **err)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(st->id));
	json_object_set_new(o, "bundle", json_string(st->bundle ? st->bundle : ""));
	json_object_set_new(o, "rootfs", json_string(st->rootfs ? st->rootfs : ""));
	json_object_set_new(o, "cgroup", json_string(st->cgroup ? st->cgroup : ""));
	json_object_set_new(o, "pid", json_integer(st->pid));
	json_object_set_new(o, "start_time", json_integer((json_int_t)st->start_time));
	json_object_set_new(o, "created_ms", json_integer(st->created_ms));
	json_object_set_new(o, "created", json_boolean(st->created));
	json_object_set_new(o, "has_hooks", json_boolean(st->has_hooks));
	json_t *an = st->annotations ? json_loads(st->annotations, 0, NULL) : NULL;
	json_object_set_new(o, "annotations", an ? an : json_object());
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int rc = write_file_atomic_at(dirfd, "state.json", text, strlen(text), 0600, false, err);
	free(text);
	return rc;
}

static char *dup_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? xstrdup(s) : NULL;
}

int oci_state_read(int dirfd, const char *id, struct oci_state *st, struct capsa_error **err)
{
	memset(st, 0, sizeof(*st));
	st->id = xstrdup(id);
	struct buf b = BUF_INIT;
	if (read_file_at(dirfd, "state.json", STATE_MAX, &b, NULL) < 0) {
		buf_release(&b);
		if (errno == ENOENT)
			return 0; /* creating: nothing recorded yet */
		return error_sys(err, errno, "read the state of container '%s'", id);
	}
	json_t *o = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
	buf_release(&b);
	if (!json_is_object(o)) {
		json_decref(o);
		return error_set(err, EINVAL, "state of container '%s': not valid JSON", id);
	}
	st->bundle = dup_str(o, "bundle");
	st->rootfs = dup_str(o, "rootfs");
	st->cgroup = dup_str(o, "cgroup");
	if (st->cgroup && !*st->cgroup) {
		free(st->cgroup);
		st->cgroup = NULL;
	}
	st->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	st->start_time = (uint64_t)json_integer_value(json_object_get(o, "start_time"));
	st->created_ms = json_integer_value(json_object_get(o, "created_ms"));
	st->created = json_is_true(json_object_get(o, "created"));
	st->has_hooks = json_is_true(json_object_get(o, "has_hooks"));
	json_t *an = json_object_get(o, "annotations");
	st->annotations = json_is_object(an) ? json_dumps(an, JSON_COMPACT) : NULL;
	json_decref(o);
	return 0;
}

void oci_state_release(struct oci_state *st)
{
	free(st->id);
	free(st->bundle);
	free(st->rootfs);
	free(st->cgroup);
	free(st->annotations);
	memset(st, 0, sizeof(*st));
}

bool oci_init_alive(const struct oci_state *st)
{
	uint64_t t;
	return st->pid > 0 && linux_proc_start_time(st->pid, &t) == 0 && t == st->start_time;
}

enum oci_status oci_status_of(int dirfd, const struct oci_state *st)
{
	if (!st->created)
		return st->pid > 0 && !oci_init_alive(st) ? OCI_STOPPED : OCI_CREATING;
	if (!oci_init_alive(st))
		return OCI_STOPPED;
	if (faccessat(dirfd, "exec.fifo", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return OCI_CREATED;
	if (st->cgroup) {
		struct linux_cgroup *cg;
		if (linux_cgroup_open(st->cgroup, &cg, NULL) == 0) {
			bool frozen = linux_cgroup_frozen(cg);
			linux_cgroup_free(cg);
			if (frozen)
				return OCI_PAUSED;
		}
	}
	return OCI_RUNNING;
}

const char *oci_status_name(enum oci_status s)
{
	static const char *const names[] = { "creating", "created", "running", "paused", "stopped" };
	return names[s];
}

char *oci_state_json(const struct oci_state *st, enum oci_status s)
{
	json_t *o = json_object();
	json_object_set_new(o, "ociVersion", json_string(OCI_SPEC_VERSION));
	json_object_set_new(o, "id", json_string(st->id));
	json_object_set_new(o, "status", json_string(oci_status_name(s)));
	json_object_set_new(o, "pid", json_integer(s == OCI_STOPPED ? 0 : st->pid));
	json_object_set_new(o, "bundle", json_string(st->bundle ? st->bundle : ""));
	/* runc's extra fields, which engines read */
	json_object_set_new(o, "rootfs", json_string(st->rootfs ? st->rootfs : ""));
	char ts[48];
	format_rfc3339(st->created_ms, ts, sizeof(ts));
	json_object_set_new(o, "created", json_string(ts));
	json_object_set_new(o, "owner", json_string(""));
	json_t *an = st->annotations ? json_loads(st->annotations, 0, NULL) : NULL;
	if (an && json_object_size(an))
		json_object_set_new(o, "annotations", an);
	else
		json_decref(an);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* systemd's "slice:prefix:name" -> "/a.slice/a-b.slice/prefix-name.scope",
 * the path systemd would give the unit, so that --systemd-cgroup works on
 * hosts without systemd too. */
static char *systemd_path(const char *spec, struct capsa_error **err)
{
	_cleanup_strv_ char **parts = strv_split(spec, ':');
	if (strv_len(parts) != 3) {
		error_set(err, EINVAL, "linux.cgroupsPath '%s': expected slice:prefix:name with --systemd-cgroup", spec);
		return NULL;
	}
	const char *slice = *parts[0] ? parts[0] : "system.slice";
	if (!str_has_suffix(slice, ".slice") || strchr(slice, '/')) {
		error_set(err, EINVAL, "linux.cgroupsPath '%s': '%s' is not a slice", spec, slice);
		return NULL;
	}
	struct buf b = BUF_INIT;
	if (strcmp(slice, "-.slice") != 0) {
		/* a-b-c.slice lives in a.slice/a-b.slice/a-b-c.slice */
		size_t base = strlen(slice) - strlen(".slice");
		for (size_t i = 0; i <= base; i++)
			if (i == base || slice[i] == '-')
				buf_appendf(&b, "/%.*s.slice", (int)i, slice);
	}
	if (*parts[1])
		buf_appendf(&b, "/%s-%s.scope", parts[1], parts[2]);
	else
		buf_appendf(&b, "/%s", parts[2]);
	return buf_steal(&b);
}

char *oci_cgroup_name(const struct oci_global *g, const char *cgroups_path, const char *id, struct capsa_error **err)
{
	if (!cgroups_path || !*cgroups_path) {
		/* the parent is configurable so that two users of one host (two
		 * test runs) cannot share a container's cgroup by its id */
		const char *parent = getenv("CAPSA_OCI_CGROUP_PARENT");
		if (!parent || !*parent || strchr(parent, '/') || strcmp(parent, "..") == 0 || strcmp(parent, ".") == 0)
			parent = "capsa-oci";
		return xasprintf("/%s/%s", parent, id);
	}
	if (g->systemd_cgroup || (cgroups_path[0] != '/' && strchr(cgroups_path, ':')))
		return systemd_path(cgroups_path, err);
	/* relative paths: below the root of each hierarchy, as crun does */
	return cgroups_path[0] == '/' ? xstrdup(cgroups_path) : xasprintf("/%s", cgroups_path);
}

int oci_write_pid_file(const char *path, pid_t pid, struct capsa_error **err)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%d", (int)pid);
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	const char *base = path;
	_cleanup_close_ int dfd = -1;
	if (slash) {
		base = path + (slash - dir) + 1;
		*slash = '\0';
		dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dfd < 0)
		return error_sys(err, errno, "pid file %s", path);
	if (write_file_atomic_at(dfd, base, num, (size_t)n, 0644, false, err) < 0)
		return error_wrap(err, "pid file");
	return 0;
}

int oci_console_connect(const char *path, struct capsa_error **err)
{
	int fd = unix_connect(path, false);
	if (fd < 0)
		return error_sys(err, errno, "connect to console socket %s", path);
	return fd;
}

int oci_wait_status(int status)
{
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}
