/* probe.c: capsa-probe, a static test helper run inside sandboxes by the
 * end-to-end and escape tests.  Each sub-command attempts one thing and
 * prints "ok" (it worked) or "denied <errno name>" (it failed), exiting 0
 * either way, so the tests can assert the outcome precisely.
 *
 *   capsa-probe keyctl | bpf | ptrace1 | userns | mount | reboot | kexec |
 *               init_module | perf | userfaultfd | io_uring | add_key |
 *               open_by_handle | mknod | disk | raw_socket | setns FD |
 *               alloc MIB | fork N | fds N | write PATH
 *
 * The escape battery (tests/security/) adds:
 *   mountfs TYPE TARGET [DATA] | bindroot TARGET | remount PATH |
 *   finit_module | delete_module | kexec_file | shocker | vm_readv1 |
 *   mem1 | exe_write PATH | memfd_exe1 | chroot_escape PATH | setns_all |
 *   unshare FLAGNAME | dev c|b MAJ MIN | tiocsti | tioclinux |
 *   raw_inet | packet_ifaces | connect PORT [ADDR] | openw PATH |
 *   inodes DIR N | fsopen | open_tree | pidfd_getfd1 | sched_fifo | syslog |
 *   ioprio_rt | ptys N | fdlinks PID | uevent MARK |
 * *   sethostname | settime | swapon | acct | pivot | userns_regain
 * A last argument "hold" keeps what the probe made until it is killed.
 * Multi-line probes print their facts first and the verdict ("ok" or
 * "denied ...") on the last line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <termios.h>
#include <time.h>
#include <sys/time.h>
#include <sys/swap.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/reboot.h>

static int report(long r);
#include "probe-escape.c"

static int report(long r)
{
	if (r < 0) {
		int e = errno;
		printf("denied %s\n", e == EPERM ? "EPERM" : e == EACCES ? "EACCES" : e == ENOSYS ? "ENOSYS" :
					     e == EINVAL ? "EINVAL" : e == EROFS ? "EROFS" : e == ENOENT ? "ENOENT" :
					     e == EAGAIN ? "EAGAIN" : e == ENOMEM ? "ENOMEM" : e == EMFILE ? "EMFILE" :
					     e == ENOSPC ? "ENOSPC" : e == EBADF ? "EBADF" : e == ENOTTY ? "ENOTTY" :
					     e == ESTALE ? "ESTALE" : e == ETXTBSY ? "ETXTBSY" : e == ENODEV ? "ENODEV" :
					     e == ECONNREFUSED ? "ECONNREFUSED" : e == ENETUNREACH ? "ENETUNREACH" :
					     e == ESRCH ? "ESRCH" : e == ENXIO ? "ENXIO" : e == EIO ? "EIO" : strerror(e));
	} else {
		printf("ok\n");
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: capsa-probe WHAT [ARG]\n");
		return 2;
	}
	const char *w = argv[1];
	const char *arg = argc > 2 ? argv[2] : "";
	if (!strcmp(w, "keyctl"))
		return report(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
	if (!strcmp(w, "add_key"))
		return report(syscall(SYS_add_key, "user", "capsa", "x", 1, -3));
	if (!strcmp(w, "bpf"))
		return report(syscall(SYS_bpf, 0, NULL, 0));
	if (!strcmp(w, "ptrace1"))
		return report(ptrace(PTRACE_ATTACH, 1, 0, 0));
	if (!strcmp(w, "userns"))
		return report(unshare(CLONE_NEWUSER));
	if (!strcmp(w, "mount"))
		return report(mount("proc", "/tmp", "proc", 0, NULL));
	if (!strcmp(w, "reboot"))
		return report(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, 0));
	if (!strcmp(w, "kexec"))
		return report(syscall(SYS_kexec_load, 0, 0, NULL, 0));
	if (!strcmp(w, "init_module"))
		return report(syscall(SYS_init_module, NULL, 0, ""));
	if (!strcmp(w, "perf"))
		return report(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	if (!strcmp(w, "userfaultfd"))
		return report(syscall(SYS_userfaultfd, 0));
	if (!strcmp(w, "io_uring"))
		return report(syscall(SYS_io_uring_setup, 1, NULL));
	if (!strcmp(w, "open_by_handle"))
		return report(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
	if (!strcmp(w, "mknod"))
		return report(mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
	if (!strcmp(w, "disk")) {
		/* CAP_MKNOD is in docker's default set: creating the node may
		 * work, opening a host disk through it must not */
		unlink("/tmp/sda");
		if (mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)) < 0 && errno != EEXIST)
			return report(-1);
		return report(open("/tmp/sda", O_RDONLY));
	}
	if (!strcmp(w, "raw_socket"))
		return report(socket(AF_PACKET, SOCK_RAW, 0));
	if (!strcmp(w, "setns"))
		return report(setns(atoi(arg), 0));
	if (!strcmp(w, "write")) {
		int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return report(-1);
		long r = write(fd, "x", 1);
		close(fd);
		return report(r);
	}
	if (!strcmp(w, "alloc")) {
		size_t mib = (size_t)atol(arg);
		for (size_t i = 0; i < mib; i++) {
			char *p = malloc(1 << 20);
			if (!p)
				return report(-1);
			memset(p, 1, 1 << 20);
		}
		return report(0);
	}
	if (!strcmp(w, "fork")) {
		int n = atoi(arg), made = 0;
		pid_t *kids = calloc((size_t)n + 1, sizeof(pid_t));
		for (int i = 0; i < n; i++) {
			pid_t p = fork();
			if (p == 0) {
				pause();
				_exit(0);
			}
			if (p < 0)
				break;
			kids[made++] = p;
		}
		printf("forked %d\n", made);
		if (argc > 3 && !strcmp(argv[3], "hold")) {
			fflush(stdout);
			for (;;)
				pause();
		}
		for (int i = 0; i < made; i++) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
		return 0;
	}
	if (!strcmp(w, "fds")) {
		int n = atoi(arg), made = 0;
		for (int i = 0; i < n; i++) {
			if (open("/dev/null", O_RDONLY) < 0)
				break;
			made++;
		}
		printf("opened %d\n", made);
		if (argc > 3 && !strcmp(argv[3], "hold")) {
			fflush(stdout);
			for (;;)
				pause();
		}
		return 0;
	}
	int r = escape_probe(w, argc, argv);
	if (r != -2)
		return r;
	fprintf(stderr, "capsa-probe: unknown probe '%s'\n", w);
	return 2;
}
