/* userns.c: the supervisor's part of a sandbox's user namespace (the spec's
 * userns_uid/gid/count; count 0: none).  The steps and why are in
 * lib/linux/idmap.c.  Here: the namespace is opened before the clone, the
 * per-sandbox files and filesystems the sandbox owns (its /etc files, the
 * tmpfs mounts, devpts, the device nodes on its own /dev) are given to the
 * namespace's root, and the child enters the namespace last.
 * Must never: chown anything that is not the sandbox's own (a host device
 * node bound onto /dev, a volume).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/idmap.h"
#include "linux/rootfs.h"
#include "linux/rootless.h"
#include "linux/ns.h"
#include "supervisor.h"
#include "util/fs.h"
#include "util/str.h"

int sup_userns_fd = -1;

static void logmsg_userns(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg_userns(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool sup_userns_on(void)
{
	return sup.spec.userns_count > 0;
}

int sup_userns_prepare(struct capsa_error **err)
{
	if (!sup_userns_on())
		return 0;
	uid_t uid = (uid_t)sup.spec.userns_uid;
	gid_t gid = (gid_t)sup.spec.userns_gid;
	static const char *const files[] = { "hostname", "hosts", "resolv.conf" };
	/* root inside may edit its own /etc/hosts, as without a namespace */
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (fchownat(sup.run_fd, files[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			return error_sys(err, errno, "give %s/%s to the user namespace", sup.spec.run_dir, files[i]);
	sup_userns_fd = linux_rootless()
				? linux_userns_open_nested(err)
				: linux_userns_open((uint32_t)uid, (uint32_t)gid, (uint32_t)sup.spec.userns_count, err);
	return sup_userns_fd < 0 ? -1 : 0;
}

/* The sandbox's tmpfs mounts (/dev, /dev/shm, --tmpfs) belong to root
 * inside, and devpts gives new ptys the tty group inside.  The strings are
 * kept in *owned for the caller to free. */
void sup_userns_adjust_mounts(struct linux_mount *m, size_t n, char ***owned)
{
	if (!sup_userns_on())
		return;
	unsigned uid = (unsigned)sup.spec.userns_uid, gid = (unsigned)sup.spec.userns_gid;
	for (size_t i = 0; i < n; i++) {
		if (m[i].bind || !m[i].fstype)
			continue;
		char *d = NULL;
		const char *old = m[i].data ? m[i].data : "";
		if (strcmp(m[i].fstype, "tmpfs") == 0) {
			d = xasprintf("%s%suid=%u,gid=%u", old, *old ? "," : "", uid, gid);
		} else if (strcmp(m[i].fstype, "devpts") == 0) {
			struct buf b = BUF_INIT;
			_cleanup_free_ char *copy = xstrdup(old);
			char *save = NULL;
			for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
				unsigned g;
				if (sscanf(o, "gid=%u", &g) == 1)
					buf_appendf(&b, "%sgid=%u", b.len ? "," : "", gid + g);
				else
					buf_appendf(&b, "%s%s", b.len ? "," : "", o);
			}
			d = buf_steal(&b);
		}
		if (d) {
			*owned = strv_push_take(*owned, d);
			m[i].data = d;
		}
	}
}

/* In the child, own mount namespace, before the root is built: idmapped
 * views of the layers, or where they cannot be had, shifted copies (the
 * child is still host root, and its log is the supervisor's). */
int sup_userns_child_layers(struct linux_rootfs *r, struct capsa_error **err)
{
	/* rootless: the nested namespace maps the user's ids 1:1, and the
	 * layers were unpacked with those ids */
	if (sup_userns_fd < 0 || !r->overlay_data || linux_rootless())
		return 0;
	struct capsa_error *e = NULL;
	if (linux_idmap_layers(sup_userns_fd, r->overlay_dir, r->overlay_data, &e) == 0)
		return 0;
	if (e->code != ENOTSUP) {
		error_move(err, &e);
		return -1;
	}
	logmsg_userns("%s: using copies of the layers with shifted owners", e->msg);
	capsa_error_free(e);
	char *dir = NULL;
	if (linux_idmap_copy_layers(sup.spec.root_dir, r->overlay_dir, r->overlay_data, (uint32_t)sup.spec.userns_uid,
				    (uint32_t)sup.spec.userns_gid, (uint32_t)sup.spec.userns_count, &dir, err) < 0)
		return -1;
	r->overlay_dir = dir; /* the child's copy of the spec: it execs soon */
	return 0;
}

/* Volumes: an explicit idmap must work; a read-only volume is idmapped
 * where its filesystem allows (only reads, so host root's files are
 * readable as they are without a namespace), else bound as it is. */
int sup_userns_child_volumes(struct capsa_error **err)
{
	if (sup_userns_fd < 0 || linux_rootless())
		return 0;
	for (size_t i = 0; i < sup.spec.n_mounts; i++) {
		const struct proto_mount *m = &sup.spec.mounts[i];
		if (!m->bind || !m->source || !(m->idmap || (m->flags & MS_RDONLY)))
			continue;
		struct capsa_error *e = NULL;
		if (linux_idmap_path(sup_userns_fd, m->source, m->recursive, &e) < 0) {
			if (m->idmap) {
				error_move(err, &e);
				return -1;
			}
			capsa_error_free(e);
		}
	}
	return 0;
}

/* before_pivot, cwd in the new root: the device nodes made on the
 * sandbox's own /dev go to root inside.  A node on another filesystem is a
 * host node bound there (the mknod fallback) and is left alone. */
int sup_userns_before_pivot(void *unused, struct capsa_error **err)
{
	(void)unused;
	static const char *const nodes[] = { "dev/null", "dev/zero", "dev/full", "dev/random", "dev/urandom", "dev/tty" };
	struct stat dev;
	if (fstatat(AT_FDCWD, "dev", &dev, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		struct stat st;
		if (fstatat(AT_FDCWD, nodes[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev.st_dev ||
		    !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
			continue;
		if (fchownat(AT_FDCWD, nodes[i], (uid_t)sup.spec.userns_uid, (gid_t)sup.spec.userns_gid,
			     AT_SYMLINK_NOFOLLOW) < 0)
			return error_sys(err, errno, "give /%s to the user namespace", nodes[i]);
	}
	return 0;
}

int sup_userns_child_enter(struct capsa_error **err)
{
	if (sup_userns_fd < 0)
		return 0;
	int rc = linux_userns_enter(sup_userns_fd, err);
	close(sup_userns_fd);
	sup_userns_fd = -1;
	return rc;
}

void sup_userns_release(void)
{
	if (sup_userns_fd >= 0)
		close(sup_userns_fd);
	sup_userns_fd = -1;
}
