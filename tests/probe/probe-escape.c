/* probe-escape.c: the escape battery's probes (tests/security/), included
 * by probe.c.  Each one makes a real attempt the way an attacker would; the
 * test decides from the output (and from the host's state) whether it was
 * stopped.  escape_probe() returns -2 for a name it does not know. */

static int probe_mountfs(const char *type, const char *target, const char *data)
{
	mkdir(target, 0755);
	return report(mount(type, target, type, 0, data && *data ? data : NULL));
}

static int probe_unshare(const char *name)
{
	static const struct {
		const char *name;
		int flag;
	} flags[] = {
		{ "user", CLONE_NEWUSER }, { "mnt", CLONE_NEWNS }, { "net", CLONE_NEWNET },
		{ "pid", CLONE_NEWPID }, { "uts", CLONE_NEWUTS }, { "ipc", CLONE_NEWIPC },
		{ "cgroup", CLONE_NEWCGROUP }, { "time", 0x80 /* CLONE_NEWTIME */ },
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strcmp(flags[i].name, name))
			return report(unshare(flags[i].flag));
	fprintf(stderr, "capsa-probe: unknown namespace '%s'\n", name);
	return 2;
}

/* unshare -U and then try what root of the new namespace could do: a user
 * namespace made inside must not give capabilities over anything the
 * sandbox did not already own. */
static int probe_userns_regain(void)
{
	if (unshare(CLONE_NEWUSER) < 0)
		return report(-1);
	printf("unshared\n");
	/* full capabilities in the new namespace; now act on the host's */
	if (sethostname("capsa-regain", 12) == 0) {
		printf("sethostname worked\n");
		return report(0);
	}
	return report(mount("proc", "/tmp", "proc", 0, NULL));
}

/* shocker: guess the root inode of the filesystem behind / by handle */
static int probe_shocker(void)
{
	struct {
		struct file_handle h;
		unsigned char bytes[MAX_HANDLE_SZ];
	} fh = { .h = { .handle_bytes = 8, .handle_type = 1 } };
	uint32_t ino = 2; /* ext4's root directory, the classic target */
	memcpy(fh.h.f_handle, &ino, sizeof(ino));
	int mnt = open("/", O_RDONLY | O_DIRECTORY);
	return report(open_by_handle_at(mnt, &fh.h, O_RDONLY));
}

static int probe_vm_readv1(void)
{
	char buf[64];
	struct iovec local = { buf, sizeof(buf) }, remote = { (void *)0x400000, sizeof(buf) };
	return report(process_vm_readv(1, &local, 1, &remote, 1, 0));
}

static int probe_mem1(void)
{
	int fd = open("/proc/1/mem", O_RDWR);
	return report(fd);
}

/* CVE-2019-5736: reopen the runtime's binary for writing, by its path and
 * through an O_PATH fd re-opened via /proc/self/fd */
static int probe_exe_write(const char *path)
{
	int fd = open(path, O_WRONLY);
	if (fd >= 0) {
		long r = write(fd, "\x7f" "CAPSA", 6);
		printf("opened for write\n");
		return report(r);
	}
	int pfd = open(path, O_PATH);
	if (pfd < 0)
		return report(-1);
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", pfd);
	fd = open(p, O_WRONLY);
	if (fd < 0)
		return report(-1);
	printf("reopened for write\n");
	return report(write(fd, "\x7f" "CAPSA", 6));
}

/* the agent is a sealed memfd: a write through /proc/1/exe or /proc/1/fd
 * must fail even where the path can be opened */
static int probe_memfd_exe1(void)
{
	int fd = open("/proc/1/exe", O_RDWR);
	if (fd < 0)
		return report(-1);
	printf("opened /proc/1/exe\n");
	if (write(fd, "x", 1) == 1) {
		printf("wrote\n");
		return report(0);
	}
	return report(ftruncate(fd, 0));
}

/* the classic chroot break-out: chroot into a subdirectory while keeping a
 * cwd above it, walk up, chroot there; then look for a host-only path */
static int probe_chroot_escape(const char *host_only)
{
	mkdir("/tmp/jail", 0755);
	int top = open("/", O_RDONLY | O_DIRECTORY);
	if (chroot("/tmp/jail") < 0)
		return report(-1);
	if (fchdir(top) < 0)
		return report(-1);
	for (int i = 0; i < 64; i++)
		if (chdir("..") < 0)
			break;
	if (chroot(".") < 0)
		return report(-1);
	struct stat st;
	if (stat(host_only, &st) == 0) {
		printf("host path visible\n");
		return report(0);
	}
	return report(-1);
}

/* every descriptor we hold: none may lead to a host namespace */
static int probe_setns_all(void)
{
	int ok = 0, tried = 0;
	for (int fd = 0; fd < 1024; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		tried++;
		if (setns(fd, 0) == 0) {
			printf("setns %d worked\n", fd);
			ok = 1;
		}
	}
	/* and the namespace files of PID 1 (the agent's own: same namespaces) */
	static const char *const ns[] = { "mnt", "pid", "net", "ipc", "uts", "cgroup", "user" };
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/1/ns/%s", ns[i]);
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			continue;
		tried++;
		if (setns(fd, 0) == 0 && strcmp(ns[i], "user") != 0) {
			printf("setns %s worked\n", p);
			ok = 1;
		}
		close(fd);
	}
	printf("tried %d\n", tried);
	if (ok)
		return report(0);
	errno = EPERM;
	return report(-1);
}

static int probe_dev(const char *kind, const char *maj, const char *min)
{
	const char *p = "/tmp/capsa-dev";
	unlink(p);
	mode_t t = kind[0] == 'b' ? S_IFBLK : S_IFCHR;
	if (mknod(p, t | 0600, makedev(atoi(maj), atoi(min))) < 0)
		return report(-1);
	printf("mknod worked\n");
	int fd = open(p, O_RDWR);
	if (fd < 0)
		fd = open(p, O_RDONLY);
	return report(fd);
}

/* where our terminal lives and whether keystrokes can be pushed into it */
static int probe_tiocsti(void)
{
	struct stat st, pts;
	if (fstat(0, &st) < 0 || !isatty(0)) {
		printf("stdin not a tty\n");
		errno = ENOTTY;
		return report(-1);
	}
	if (stat("/dev/pts", &pts) == 0)
		printf("tty dev %lu pts dev %lu %s\n", (unsigned long)st.st_dev, (unsigned long)pts.st_dev,
		       st.st_dev == pts.st_dev ? "own-pts" : "foreign");
	/* every fd: any terminal that is not our own devpts would be the host's */
	for (int fd = 0; fd < 1024; fd++) {
		struct stat s;
		if (fstat(fd, &s) == 0 && isatty(fd) && s.st_dev != pts.st_dev)
			printf("foreign tty fd %d\n", fd);
	}
	char c = '#';
	return report(ioctl(0, TIOCSTI, &c));
}

static int probe_tioclinux(void)
{
	char sub[2] = { 6 /* TIOCL_GETSHIFTSTATE */, 0 };
	int fd = open("/dev/tty0", O_RDWR);
	if (fd < 0)
		fd = 0;
	return report(ioctl(fd, TIOCLINUX, sub));
}

static int probe_packet_ifaces(void)
{
	struct if_nameindex *ifs = if_nameindex();
	for (struct if_nameindex *i = ifs; i && i->if_index; i++)
		printf("iface %s\n", i->if_name);
	int s = socket(AF_PACKET, SOCK_RAW, htons(0x0003 /* ETH_P_ALL */));
	if (s < 0)
		return report(-1);
	printf("capture socket\n");
	return report(0);
}

static int probe_connect(const char *port, const char *addr)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (*addr && inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "capsa-probe: bad address '%s'\n", addr);
		return 2;
	}
	return report(connect(s, (struct sockaddr *)&a, sizeof(a)));
}

static int probe_ptys(const char *n)
{
	int want = atoi(n), made = 0;
	for (int i = 0; i < want; i++) {
		if (open("/dev/ptmx", O_RDWR | O_NOCTTY) < 0)
			break;
		made++;
	}
	printf("ptys %d\n", made);
	return 0;
}

/* empty files until the filesystem (or the memory they are charged to)
 * runs out */
static int probe_inodes(const char *dir, const char *n)
{
	long want = atol(n), made = 0;
	mkdir(dir, 0755);
	int d = open(dir, O_RDONLY | O_DIRECTORY);
	if (d < 0)
		return report(-1);
	for (long i = 0; i < want; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%lx", i);
		int fd = openat(d, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			break;
		close(fd);
		made++;
	}
	printf("inodes %ld%s\n", made, made < want ? " stopped" : "");
	if (made < want)
		return report(-1);
	return report(0);
}

/* the descriptors of a process and where they lead */
static int probe_fdlinks(const char *pid)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
	DIR *d = opendir(dir);
	if (!d)
		return report(-1);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[384], t[512];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(p, t, sizeof(t) - 1);
		t[n < 0 ? 0 : n] = '\0';
		printf("fd %s %s\n", e->d_name, n < 0 ? "?" : t);
	}
	closedir(d);
	return report(0);
}

static int probe_settime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return report(clock_settime(CLOCK_REALTIME, &ts));
}

/* steal a descriptor of the agent through a pidfd */
static int probe_pidfd_getfd1(void)
{
	int pfd = (int)syscall(SYS_pidfd_open, 1, 0);
	if (pfd < 0)
		return report(-1);
	for (int fd = 0; fd < 64; fd++) {
		int got = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
		if (got >= 0) {
			printf("got agent fd %d\n", fd);
			return report(got);
		}
		if (errno != EBADF)
			return report(-1);
	}
	errno = EBADF;
	return report(-1);
}

static int probe_sched_fifo(void)
{
	struct sched_param p = { .sched_priority = 1 };
	return report(sched_setscheduler(0, SCHED_FIFO, &p));
}

/* The host's device events: a NETLINK_KOBJECT_UEVENT socket on the group
 * the kernel broadcasts on, opened every way a filter could miss (datagram,
 * bits above the 32-bit family or protocol).  Prints "listening N" (sockets
 * open), waits for a line on stdin while the test makes a host uevent (queued
 * before the host's write returns), and prints "event ACTION@DEVPATH" for
 * every queued message that carries mark.  Verdict: "ok" when one did, else
 * the first open's error, or "denied none" when open but nothing came. */
static int probe_uevent(const char *mark)
{
	const long high = 1L << 32, uev = NETLINK_KOBJECT_UEVENT;
	const long how[][3] = { { AF_NETLINK, SOCK_RAW, uev }, { AF_NETLINK, SOCK_DGRAM, uev },
				{ high | AF_NETLINK, SOCK_RAW, uev }, { AF_NETLINK, SOCK_RAW, high | uev } };
	int fds[4], n = 0, first = 0;
	for (size_t i = 0; i < 4; i++) {
		long fd = syscall(SYS_socket, how[i][0], how[i][1] | SOCK_CLOEXEC, how[i][2]);
		struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
		if (fd >= 0 && bind((int)fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			fds[n++] = (int)fd;
		else if (!first)
			first = errno;
	}
	printf("listening %d\n", n);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 2;
	int events = 0;
	static char buf[8192];
	for (int i = 0; i < n; i++) {
		ssize_t len;
		while ((len = recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
			buf[len] = '\0';
			if (memmem(buf, (size_t)len, mark, strlen(mark))) {
				printf("event %s\n", buf);
				events++;
			}
		}
	}
	if (events)
		return report(0);
	if (n)
		return printf("denied none\n"), 0;
	errno = first;
	return report(-1);
}

static int escape_probe_one(const char *w, int argc, char **argv);

/* "... hold": keep what the probe made (descriptors, ptys) until killed */
int escape_probe(const char *w, int argc, char **argv);
int escape_probe(const char *w, int argc, char **argv)
{
	bool hold = argc > 2 && !strcmp(argv[argc - 1], "hold");
	int r = escape_probe_one(w, hold ? argc - 1 : argc, argv);
	if (hold && r != -2) {
		fflush(stdout);
		for (;;)
			pause();
	}
	return r;
}

static int escape_probe_one(const char *w, int argc, char **argv)
{
	const char *a1 = argc > 2 ? argv[2] : "", *a2 = argc > 3 ? argv[3] : "", *a3 = argc > 4 ? argv[4] : "";
	if (!strcmp(w, "mountfs"))
		return probe_mountfs(a1, a2, a3);
	if (!strcmp(w, "bindroot")) {
		mkdir(a1, 0755);
		return report(mount("/", a1, NULL, MS_BIND | MS_REC, NULL));
	}
	if (!strcmp(w, "remount"))
		return report(mount(NULL, a1, NULL, MS_REMOUNT | MS_BIND, NULL));
	if (!strcmp(w, "finit_module")) {
		int fd = open("/probe/capsa-probe", O_RDONLY);
		return report(syscall(SYS_finit_module, fd, "", 0));
	}
	if (!strcmp(w, "delete_module"))
		return report(syscall(SYS_delete_module, "loop", O_NONBLOCK));
	if (!strcmp(w, "kexec_file"))
		return report(syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 4 /* KEXEC_FILE_NO_INITRAMFS */));
	if (!strcmp(w, "shocker"))
		return probe_shocker();
	if (!strcmp(w, "vm_readv1"))
		return probe_vm_readv1();
	if (!strcmp(w, "mem1"))
		return probe_mem1();
	if (!strcmp(w, "exe_write"))
		return probe_exe_write(a1);
	if (!strcmp(w, "memfd_exe1"))
		return probe_memfd_exe1();
	if (!strcmp(w, "chroot_escape"))
		return probe_chroot_escape(a1);
	if (!strcmp(w, "setns_all"))
		return probe_setns_all();
	if (!strcmp(w, "unshare"))
		return probe_unshare(a1);
	if (!strcmp(w, "userns_regain"))
		return probe_userns_regain();
	if (!strcmp(w, "dev"))
		return probe_dev(a1, a2, a3);
	if (!strcmp(w, "tiocsti"))
		return probe_tiocsti();
	if (!strcmp(w, "tioclinux"))
		return probe_tioclinux();
	if (!strcmp(w, "raw_inet"))
		return report(socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
	if (!strcmp(w, "packet_ifaces"))
		return probe_packet_ifaces();
	if (!strcmp(w, "connect"))
		return probe_connect(a1, a2);
	if (!strcmp(w, "ptys"))
		return probe_ptys(a1);
	if (!strcmp(w, "inodes"))
		return probe_inodes(a1, a2);
	if (!strcmp(w, "fdlinks"))
		return probe_fdlinks(a1);
	if (!strcmp(w, "fsopen"))
		return report(syscall(SYS_fsopen, "proc", 0));
	if (!strcmp(w, "open_tree"))
		return report(syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */ | 0x8000 /* AT_RECURSIVE */));
	if (!strcmp(w, "pidfd_getfd1"))
		return probe_pidfd_getfd1();
	if (!strcmp(w, "sched_fifo"))
		return probe_sched_fifo();
	if (!strcmp(w, "uevent"))
		return probe_uevent(a1);
	if (!strcmp(w, "syslog"))
		return report(syscall(SYS_syslog, 3 /* SYSLOG_ACTION_READ_ALL */, (char[64]){ 0 }, 64));
	if (!strcmp(w, "ioprio_rt"))
		return report(syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (1 << 13) | 0 /* RT class */));
	if (!strcmp(w, "openw"))
		return report(open(a1, O_WRONLY | O_NOCTTY));
	if (!strcmp(w, "sethostname"))
		return report(sethostname("capsa-evil", 10));
	if (!strcmp(w, "settime"))
		return probe_settime();
	if (!strcmp(w, "swapon"))
		return report(swapon("/probe/capsa-probe", 0));
	if (!strcmp(w, "acct"))
		return report(acct("/tmp/acct"));
	if (!strcmp(w, "pivot")) {
		mkdir("/tmp/old", 0755);
		return report(syscall(SYS_pivot_root, "/", "/tmp/old"));
	}
	return -2;
}
