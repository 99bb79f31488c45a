/* idmap.c: a sandbox's user namespace and the idmapped views of its image
 * layers.  libc only (the musl supervisor links it).
 *
 * The order, and why (the supervisor drives it, supervisor/main.c):
 *  1. linux_userns_open(): a throwaway child unshares nothing but a user
 *     namespace; host root writes its uid_map/gid_map (0 -> the sandbox's
 *     block), keeps an fd to the namespace and lets the child go.  The
 *     namespace outlives the child through the fd.
 *  2. In the sandbox child, still host root in its own mount namespace:
 *     linux_idmap_layers() makes "/" private, then clones each read-only
 *     layer directory (open_tree OPEN_TREE_CLONE), idmaps the clone with
 *     the namespace (mount_setattr MOUNT_ATTR_IDMAP) and mounts it over the
 *     layer directory, in this mount namespace only.  The overlay mounted
 *     next sees file owner 0 as the block's first id: the layers on disk
 *     stay shared by every sandbox and unchanged.
 *  3. The rest of the root filesystem is built as host root (so mounts
 *     need no capability inside the namespace), then the child enters the
 *     namespace (setns) and becomes its root (uid/gid 0 inside = the
 *     block's first id on the host) right before the agent is executed.
 *     Every namespace but the user namespace stays owned by the host's:
 *     root inside has no CAP_SYS_ADMIN over its mount, network, uts or ipc
 *     namespace, only over files whose owner is mapped.
 * Must never: idmap or mount anything in the host's mount namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "idmap.h"
#include "ns.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr __NR_mount_setattr
#endif
#ifndef SYS_open_tree
#define SYS_open_tree __NR_open_tree
#endif
#ifndef SYS_move_mount
#define SYS_move_mount __NR_move_mount
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

static int userns_open_maps(const struct linux_idmap *um, size_t nu, const struct linux_idmap *gm, size_t ng,
			    struct capsa_error **err)
{
	int gate[2];
	if (pipe2(gate, O_CLOEXEC) < 0)
		return error_sys(err, errno, "create user namespace");
	pid_t pid = linux_clone(CLONE_NEWUSER, -1, NULL, SIGCHLD);
	if (pid < 0) {
		int e = errno;
		close(gate[0]);
		close(gate[1]);
		return error_sys(err, e, "create user namespace");
	}
	if (pid == 0) {
		/* wait until the parent holds the namespace, then vanish */
		char c;
		close(gate[1]);
		while (read(gate[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(gate[0]);
	int fd = -1;
	if (linux_userns_set_maps(pid, um, nu, gm, ng, false, err) == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			error_sys(err, errno, "open %s", path);
	}
	close(gate[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return fd;
}

int linux_userns_open(uint32_t uid, uint32_t gid, uint32_t count, struct capsa_error **err)
{
	struct linux_idmap um = { 0, uid, count }, gm = { 0, gid, count };
	int fd = userns_open_maps(&um, 1, &gm, 1, err);
	if (fd < 0)
		return error_wrap(err, "create user namespace for ids %u-%u", uid, uid + count - 1);
	return fd;
}

/* Each extent of a map file as an identity extent of the ids it maps. */
static size_t identity_of(const char *path, struct linux_idmap *out, size_t max)
{
	size_t n = linux_idmap_read(path, out, max);
	for (size_t i = 0; i < n; i++)
		out[i].outside = out[i].inside;
	return n;
}

/* The kernel wants every extent of a child's map inside one extent of the
 * parent's: the nested map copies the parent's extents one by one. */
int linux_userns_open_nested(struct capsa_error **err)
{
	struct linux_idmap um[340], gm[340];
	size_t nu = identity_of("/proc/self/uid_map", um, ARRAY_SIZE(um));
	size_t ng = identity_of("/proc/self/gid_map", gm, ARRAY_SIZE(gm));
	if (!nu || !ng)
		return error_set(err, EINVAL, "read this process's uid and gid maps");
	int fd = userns_open_maps(um, nu, gm, ng, err);
	if (fd < 0)
		return error_wrap(err, "create a user namespace nested in the user's, with its ids mapped 1:1");
	return fd;
}

bool linux_idmap_forced_off(void)
{
	const char *v = getenv("CAPSA_TEST_NO_IDMAP");
	return v && *v && strcmp(v, "0") != 0;
}

char *linux_overlay_lowers(const char *overlay_data)
{
	const char *l = overlay_data ? strstr(overlay_data, "lowerdir=") : NULL;
	if (!l || (l != overlay_data && l[-1] != ','))
		return NULL;
	l += strlen("lowerdir=");
	return xstrndup(l, strcspn(l, ","));
}

/* An idmapped clone of dir/name, detached; -1 with err if it cannot be
 * had (ENOTSUP: the kernel or the filesystem cannot idmap). */
static int idmap_clone(int dir, const char *name, int userns_fd, struct capsa_error **err)
{
	_cleanup_close_ int t = (int)syscall(SYS_open_tree, dir, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (t < 0)
		return error_sys(err, errno, "layer %s: clone mount", name);
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd };
	bool off = linux_idmap_forced_off();
	if (off || syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int e = off ? EINVAL : errno;
		if (e == EINVAL || e == ENOSYS || e == EPERM || e == EOPNOTSUPP)
			return error_set(err, ENOTSUP, "layer %s: this kernel or filesystem cannot idmap the mount (%s)",
					 name, off ? "turned off by CAPSA_TEST_NO_IDMAP" : strerror(e));
		return error_sys(err, e, "layer %s: idmap", name);
	}
	return steal_fd(&t);
}

int linux_idmap_layers(int userns_fd, const char *layer_dir, const char *overlay_data, struct capsa_error **err)
{
	/* nothing mounted below may propagate to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return error_sys(err, errno, "make / private");
	_cleanup_free_ char *list = linux_overlay_lowers(overlay_data);
	if (!list)
		return error_set(err, EINVAL, "overlay options without lowerdir");
	_cleanup_close_ int dir = open(layer_dir ? layer_dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return error_sys(err, errno, "open %s", layer_dir ? layer_dir : "/");
	/* every clone first, then every mount: a layer that cannot be
	 * idmapped leaves the layer directories as they are (the caller may
	 * fall back to copies of them).  An attached clone's fd closes
	 * without an unmount (which would wait for an RCU grace period). */
	char **names = strv_split(list, ':');
	size_t n = strv_len(names);
	int *fds = xcalloc(n ? n : 1, sizeof(int));
	int rc = 0;
	size_t made = 0;
	for (; made < n && rc == 0; made++) {
		fds[made] = idmap_clone(dir, names[made], userns_fd, err);
		if (fds[made] < 0)
			rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (syscall(SYS_move_mount, fds[i], "", dir, names[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
			rc = error_sys(err, errno, "layer %s: mount idmapped view", names[i]);
	for (size_t i = 0; i < made; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	strv_free(names);
	return rc < 0 ? error_wrap(err, "idmap image layers") : 0;
}

int linux_idmap_path(int userns_fd, const char *path, bool recursive, struct capsa_error **err)
{
	unsigned at = recursive ? AT_RECURSIVE : 0;
	_cleanup_close_ int t = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | at);
	if (t < 0)
		return error_sys(err, errno, "volume %s: clone mount", path);
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd };
	if (linux_idmap_forced_off() ||
	    syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | at, &attr, sizeof(attr)) < 0)
		return error_set(err, ENOTSUP, "volume %s: its filesystem or this kernel cannot idmap the mount (%s)", path,
				 linux_idmap_forced_off() ? "turned off by CAPSA_TEST_NO_IDMAP" : strerror(errno));
	if (syscall(SYS_move_mount, t, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return error_sys(err, errno, "volume %s: mount idmapped view", path);
	return 0;
}

int linux_userns_enter(int userns_fd, struct capsa_error **err)
{
	/* Full capabilities inside, none outside; then root inside (before
	 * this, our host ids are unmapped and show as the overflow id). */
	if (setns(userns_fd, CLONE_NEWUSER) < 0)
		return error_sys(err, errno, "enter user namespace");
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return error_sys(err, errno, "become root in the user namespace");
	return 0;
}
