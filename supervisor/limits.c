/* limits.c: the supervisor's share of a sandbox's limits that are not
 * cgroup files: the disk image (`--disk`) and the pty count.
 *
 * The disk image is mounted in a mount namespace of the supervisor's own,
 * a slave of the host's: the host's mount table never holds it, the
 * sandbox's child (cloned from this namespace) sees it under its overlay,
 * and when the supervisor and the sandbox are gone the namespace dies, the
 * mount with it, and the loop device (autoclear) detaches itself.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/mount.h>
#include <unistd.h>

#include "linux/loopdisk.h"
#include "supervisor.h"

static bool disk_mounted;

int sup_disk_mount(struct capsa_error **err)
{
	const struct proto_sandbox *s = &sup.spec;
	if (!s->disk_image)
		return 0;
	if (!s->disk_mount || s->disk_mount[0] != '/')
		return error_set(err, EINVAL, "sandbox spec: disk image without an absolute mount point");
	if (unshare(CLONE_NEWNS) < 0)
		return error_sys(err, errno, "disk image: new mount namespace");
	/* a shared / would carry the mount back to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return error_sys(err, errno, "disk image: make / a slave mount");
	if (loopdisk_mount(s->disk_image, s->disk_mount, err) < 0)
		return error_wrap(err, "--disk");
	disk_mounted = true;
	if (s->userns_count) {
		/* the writable layer's root is the sandbox's /: root inside owns it */
		char upper[PATH_MAX];
		snprintf(upper, sizeof(upper), "%s/upper", s->disk_mount);
		if (chown(upper, (uid_t)s->userns_uid, (gid_t)s->userns_gid) < 0)
			return error_sys(err, errno, "--disk: give %s to the user namespace", upper);
	}
	return 0;
}

void sup_disk_release(void)
{
	/* before _finalize, which may delete the sandbox's directory */
	if (disk_mounted && umount2(sup.spec.disk_mount, MNT_DETACH) == 0)
		disk_mounted = false;
}

const char *sup_devpts_data(void)
{
	static char data[128];
	long long max = sup.spec.pty_max > 0 ? (long long)sup.spec.pty_max : SUP_PTY_MAX_DEFAULT;
	snprintf(data, sizeof(data), "newinstance,ptmxmode=0666,mode=0620,gid=5,max=%lld", max);
	return data;
}
