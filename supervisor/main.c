/* main.c: capsa-supervisor: building the sandbox and seeing it to its end.
 *
 * Started by the library (lib/sandbox/spawn.c) detached from any terminal,
 * with fd 3 a socket to its creator, which sends the SPEC frame.  The steps,
 * in order:
 *   1. take the sandbox's lock (held until the end: reconciliation treats a
 *      free lock as a dead supervisor);
 *   2. copy the agent into a sealed memfd; write hostname/hosts/resolv.conf;
 *   3. create the cgroup with its limits;
 *   4. clone the sandbox child into new mount, pid, uts, ipc, net (and, on
 *      cgroup v2, cgroup) namespaces; on v1 put it in the cgroup, then let
 *      it unshare its cgroup namespace so it sees its own cgroup as root;
 *   5. the child sets the hostname, brings up loopback, builds the rootfs
 *      (lib/linux/rootfs.c: overlay, /proc, /dev, /sys, masks, pivot_root),
 *      arms PDEATHSIG, reduces its bounding set, closes every fd but the
 *      channel and execs the agent from the memfd;
 *   6. HELLO from the agent, INIT and PROC_START of the main process; READY
 *      to the creator when the main process runs;
 *   7. serve clients until the agent exits; then write the exit file, remove
 *      the cgroup, tell the clients, and finalize.
 * The overlay and every other mount exist only in the sandbox's mount
 * namespace, so they disappear with its last process whatever happens here.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/ns.h"
#include "linux/proc.h"
#include "linux/rootfs.h"
#include "supervisor.h"
#include "util/fs.h"
#include "util/trace.h"

struct sup sup;

/* Capabilities the agent itself needs beyond what it grants processes: to
 * switch users, lower bounding sets per process, signal, and serve files
 * whatever their owner. */
#define AGENT_CAPS                                                                                  \
	((1ULL << 0) /* CHOWN */ | (1ULL << 1) /* DAC_OVERRIDE */ | (1ULL << 2) /* DAC_READ_SEARCH */ | \
	 (1ULL << 3) /* FOWNER */ | (1ULL << 4) /* FSETID */ | (1ULL << 5) /* KILL */ |                 \
	 (1ULL << 6) /* SETGID */ | (1ULL << 7) /* SETUID */ | (1ULL << 8) /* SETPCAP */)

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	va_list ap;
	char ts[40];
	format_rfc3339(now_ms(), ts, sizeof(ts));
	fprintf(stderr, "%s ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void flush_agent_now(void)
{
	int r = proto_conn_flush(&sup.agent);
	if (r >= 0 && sup.agent_io.active)
		ev_io_set(&sup.loop, &sup.agent_io, EPOLLIN | (r > 0 ? EPOLLOUT : 0));
}

static bool flush_scheduled;

/* Frames queued during one batch of events go out together at its end:
 * to the agent, and to every client with something queued. */
static void flush_all(void *unused)
{
	(void)unused;
	flush_scheduled = false;
	if (sup.agent.fd >= 0 && proto_conn_pending(&sup.agent))
		flush_agent_now();
	clients_flush();
}

void sup_schedule_flush(void)
{
	if (!flush_scheduled) {
		flush_scheduled = true;
		ev_defer(&sup.loop, flush_all, NULL);
	}
}

void agent_flush(void)
{
	sup_schedule_flush();
}

void agent_send(uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n)
{
	if (sup.agent.fd < 0 || proto_conn_queue(&sup.agent, type, flags, stream, p, n) < 0)
		return;
	sup_schedule_flush();
}

/* ---- the sandbox child -------------------------------------------------- */

struct child_args {
	int sync;	/* SOCK_SEQPACKET to the parent */
	int chan;	/* the agent channel */
	int parent_sync, parent_chan; /* the parent's ends, closed first thing */
	int memfd;	/* the agent */
	bool own_cgroupns;
	bool joined;	/* in the sandbox's cgroup (and its namespace) */
	struct linux_rootfs rootfs;
};

static void child_fail(int sync, const char *what, struct capsa_error *err, int e)
{
	char msg[1024];
	if (err)
		snprintf(msg, sizeof(msg), "%s: %s", what, err->msg);
	else
		snprintf(msg, sizeof(msg), "%s: %s", what, strerror(e));
	if (send(sync, msg, strlen(msg), MSG_NOSIGNAL) < 0) {
		/* the parent is gone: nobody to tell */
	}
	_exit(1);
}

static int loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return rc;
}

/* Waits until the parent has put us in the sandbox's cgroup, then makes
 * that the root of our cgroup namespace.  On v1 the parent's attach waits
 * for an RCU grace period (5-15 ms here), so the setup before the cgroup
 * mount runs meanwhile; nothing of the sandbox's own runs before this. */
static int join_cgroup(void *ctx, struct capsa_error **err)
{
	struct child_args *a = ctx;
	if (a->joined)
		return 0;
	a->joined = true;
	char go;
	if (recv(a->sync, &go, 1, 0) != 1)
		_exit(1);
	if (!a->own_cgroupns && linux_cgroup_mode() != CGROUP_MODE_NONE && unshare(CLONE_NEWCGROUP) < 0)
		return error_sys(err, errno, "unshare cgroup namespace");
	return 0;
}

/* The sandbox's network namespace: a new one with loopback (cloned with
 * CLONE_NEWNET), the one the library made and configured (fd 5: eth0 on a
 * bridge, or another sandbox's), or the host's (nothing to do, and nothing
 * of the host's may be changed). */
static void child_network(struct child_args *a)
{
	struct capsa_error *err = NULL;
	if (sup.spec.net_mode == PROTO_NET_HOST)
		return;
	if (sup.spec.net_mode == PROTO_NET_JOIN && setns(SUP_NETNS_FD, CLONE_NEWNET) < 0)
		child_fail(a->sync, "join the sandbox's network namespace", NULL, errno);
	if (loopback_up() < 0)
		child_fail(a->sync, "bring up loopback", NULL, errno);
	/* root inside a user namespace lacks CAP_NET_BIND_SERVICE over this
	 * network namespace (the host's user namespace owns it): let every
	 * user bind low ports, as docker does */
	if (sup_userns_on() && linux_sysctl_set("net.ipv4.ip_unprivileged_port_start", "0", &err) < 0)
		child_fail(a->sync, "allow low ports", err, 0);
	/* ping without a raw socket (ICMP datagram sockets) for every group,
	 * as docker does: the raw socket needs CAP_NET_RAW over the namespace,
	 * which root in the sandbox's user namespace lacks.  The range is read
	 * in our user namespace: rootless, only the ids it maps.  A nicety,
	 * not a condition of the sandbox. */
	if (linux_sysctl_set("net.ipv4.ping_group_range", "0 4294967294", NULL) < 0 && sup.spec.userns_count > 0) {
		char range[32];
		snprintf(range, sizeof(range), "0 %llu", (unsigned long long)sup.spec.userns_count - 1);
		linux_sysctl_set("net.ipv4.ping_group_range", range, NULL);
	}
}

static __attribute__((noreturn)) void child_main(struct child_args *a)
{
	struct capsa_error *err = NULL;
	/* A supervisor that dies before this child runs the agent must take it
	 * along: with the parent's ends of the sockets closed here, a dead
	 * parent reads as EOF (the wait for the go, the check after the
	 * parent death signal), and the signal covers the steps before the
	 * user namespace, which resets it (it is armed again after). */
	close(a->parent_sync);
	close(a->parent_chan);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(a->sync, "set parent death signal", NULL, errno);
	struct pollfd alive = { .fd = a->sync, .events = 0 };
	if (poll(&alive, 1, 0) == 1 && (alive.revents & (POLLHUP | POLLERR)))
		_exit(1);
	a->rootfs.before_cgroup = join_cgroup;
	a->rootfs.before_cgroup_ctx = a;
	if (sup.spec.hostname && sethostname(sup.spec.hostname, strlen(sup.spec.hostname)) < 0)
		child_fail(a->sync, "set hostname", NULL, errno);
	child_network(a);
	if (sup_userns_child_layers(&a->rootfs, &err) < 0 || sup_userns_child_volumes(&err) < 0)
		child_fail(a->sync, "set up rootfs", err, 0);
	if (linux_rootfs_setup(&a->rootfs, &err) < 0)
		child_fail(a->sync, "set up rootfs", err, 0);
	if (join_cgroup(a, &err) < 0)
		child_fail(a->sync, "join the sandbox's cgroup", err, 0);
	/* stdio of the agent: the sandbox's own /dev/null, never a host file
	 * (the supervisor's stderr is its log in the runtime directory) */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		child_fail(a->sync, "open /dev/null", NULL, errno);
	/* Last of the host-root steps: from here on root inside is the
	 * namespace's (entering resets the bounding set and the parent death
	 * signal, so this comes before both). */
	if (sup_userns_child_enter(&err) < 0)
		child_fail(a->sync, "user namespace", err, 0);
	/* If the supervisor dies, so does the sandbox (and its mounts). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(a->sync, "set parent death signal", NULL, errno);
	struct pollfd pfd = { .fd = a->sync, .events = 0 };
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)))
		_exit(1);
	uint64_t keep = (sup.spec.proc.has_caps ? sup.spec.proc.cap_bounding : LINUX_CAPS_DEFAULT) | AGENT_CAPS;
	int last = linux_cap_last();
	for (int c = 0; c <= last; c++)
		if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			child_fail(a->sync, "drop bounding capabilities", NULL, errno);
	if (a->chan != 3) {
		if (dup2(a->chan, 3) < 0)
			child_fail(a->sync, "set up agent channel", NULL, errno);
	} else {
		fd_set_cloexec(3, false);
	}
	int memfd = a->memfd == 3 ? fcntl(3, F_DUPFD_CLOEXEC, 4) : a->memfd;
	int sync = a->sync;
	/* Everything but stdio (/dev/null) and the channel is closed at exec
	 * (the sync socket and the memfd are needed until then): no host fd
	 * reaches the sandbox. */
	if (syscall(SYS_close_range, 4, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 4; fd < 1024; fd++)
			if (fd != memfd && fd != sync)
				close(fd);
	}
	/* The sandbox's seccomp filter goes on the agent itself: every process
	 * inherits it without paying for its installation (a JIT compile of
	 * ~1,200 instructions) at each start, and PID 1 is confined too. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(sync, "set no_new_privs", NULL, errno);
	if (sup.spec.proc.seccomp && !sup.spec.proc.no_seccomp &&
	    linux_seccomp_install(sup.spec.proc.seccomp, sup.spec.proc.seccomp_len, 0, &err) < 0)
		child_fail(sync, "install seccomp filter", err, 0);
	char *const argv[] = { (char *)"capsa-agent", NULL };
	char *const envp[] = { NULL };
	syscall(SYS_execveat, memfd, "", argv, envp, AT_EMPTY_PATH);
	child_fail(sync, "execute agent", NULL, errno);
	_exit(1);
}

/* ---- creation ------------------------------------------------------------ */

static char *run_path(const char *name)
{
	return xasprintf("%s/%s", sup.spec.run_dir, name);
}

static int write_etc_files(struct capsa_error **err)
{
	const char *host = sup.spec.hostname ? sup.spec.hostname : sup.spec.id;
	_cleanup_free_ char *hostname = xasprintf("%s\n", host);
	_cleanup_free_ char *hosts = sup.spec.hosts ? xstrdup(sup.spec.hosts)
				     : xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
						 "127.0.1.1\t%s\n", host);
	const char *resolv = sup.spec.resolv ? sup.spec.resolv : "";
	if (write_file_atomic_at(sup.run_fd, "hostname", hostname, strlen(hostname), 0644, false, err) < 0 ||
	    write_file_atomic_at(sup.run_fd, "hosts", hosts, strlen(hosts), 0644, false, err) < 0 ||
	    write_file_atomic_at(sup.run_fd, "resolv.conf", resolv, strlen(resolv), 0644, false, err) < 0)
		return -1;
	return 0;
}

static struct linux_mount *build_mounts(size_t *n_out, char **paths, char *shm_opt)
{
	size_t nd;
	const struct linux_mount *defs = linux_default_mounts(&nd, shm_opt);
	size_t n = nd + 3 + sup.spec.n_mounts;
	struct linux_mount *m = xcalloc(n, sizeof(*m));
	size_t i = 0;
	for (; i < nd; i++) {
		m[i] = defs[i];
		if (strcmp(m[i].target, "/dev/pts") == 0)
			m[i].data = sup_devpts_data();
	}
	static const char *const etc[] = { "/etc/hostname", "/etc/hosts", "/etc/resolv.conf" };
	for (int k = 0; k < 3; k++, i++)
		m[i] = (struct linux_mount){ .source = paths[k], .target = etc[k], .bind = true, .file = true,
					     .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC };
	for (size_t k = 0; k < sup.spec.n_mounts; k++, i++) {
		struct proto_mount *pm = &sup.spec.mounts[k];
		m[i] = (struct linux_mount){ .source = pm->source, .target = pm->target, .fstype = pm->fstype,
					     .data = pm->data, .flags = pm->flags, .propagation = pm->propagation,
					     .bind = pm->bind, .recursive = pm->recursive, .file = pm->file };
	}
	*n_out = i;
	return m;
}

/* Puts the cloned child in the sandbox's cgroup (v1: by pid; v2 cloned it
 * there), lets it go on, and waits until it has exec'd the agent (its end
 * of sync closes) or says why it could not.  The child sets up what it can
 * before it needs the go: it may have failed already, and then its reason
 * is waiting to be read. */
static int release_child(pid_t pid, int sync, int cgfd, struct capsa_error **err)
{
	char msg[1024];
	ssize_t r;
	if (sup.cg && cgfd < 0 && linux_cgroup_add_pid(sup.cg, pid, err) < 0) {
		/* a child that failed and left is in no cgroup: its reason counts */
		r = recv(sync, msg, sizeof(msg) - 1, MSG_DONTWAIT);
		if (r > 0 && err) {
			msg[r] = '\0';
			capsa_error_free(*err);
			*err = NULL;
			error_set(err, EIO, "%s", msg);
		}
		return -1;
	}
	char go = 'g';
	bool gone = false;
	if (send(sync, &go, 1, MSG_NOSIGNAL) != 1) {
		if (errno != EPIPE && errno != ECONNRESET)
			return error_sys(err, errno, "start sandbox child");
		gone = true;
	}
	do
		r = recv(sync, msg, sizeof(msg) - 1, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		msg[r] = '\0';
		return error_set(err, EIO, "%s", msg);
	}
	if (r < 0)
		return error_sys(err, errno, "start sandbox child");
	if (gone)
		return error_set(err, EIO, "the sandbox child exited during its setup");
	return 0;
}

static int create_sandbox(struct capsa_error **err)
{
	struct proto_sandbox *s = &sup.spec;
	trace_mark("sup: create");
	if (sup_disk_mount(err) < 0)
		return -1;
	if (write_etc_files(err) < 0 || sup_userns_prepare(err) < 0)
		return -1;
	_cleanup_close_ int memfd = linux_sealed_memfd(s->agent_path, "capsa-agent", err);
	if (memfd < 0)
		return -1;
	trace_mark("sup: etc files + memfd");

	struct linux_cgroup_limits lim = LINUX_CGROUP_LIMITS_INIT;
	lim.memory = s->cg_memory > 0 ? s->cg_memory : -1;
	lim.memory_swap = s->cg_memory > 0 ? (s->cg_swap > 0 ? s->cg_swap : s->cg_memory) : -1;
	lim.cpu_quota_us = s->cg_cpu_quota > 0 ? s->cg_cpu_quota : -1;
	lim.cpu_period_us = s->cg_cpu_period > 0 ? s->cg_cpu_period : -1;
	lim.cpu_shares = s->cg_cpu_shares > 0 ? s->cg_cpu_shares : -1;
	lim.pids = s->cg_pids > 0 ? s->cg_pids : -1;
	bool have_cg = linux_cgroup_mode() != CGROUP_MODE_NONE;
	if (have_cg && linux_cgroup_create(s->cg_name ? s->cg_name : s->id, &lim, &sup.cg, err) < 0)
		return -1;
	if (sup.cg)
		linux_cgroup_oom_kills(sup.cg, &sup.oom_base);
	trace_mark("sup: cgroup created");

	int chan[2], sync[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0)
		return error_sys(err, errno, "create sandbox channel");

	char *paths[3] = { run_path("hostname"), run_path("hosts"), run_path("resolv.conf") };
	long long shm_size = s->shm_size > 0 ? s->shm_size : 64LL << 20;
	_cleanup_free_ char *shm_opt = xasprintf("size=%lld,nr_inodes=%lld", shm_size, linux_tmpfs_nr_inodes(shm_size));
	size_t n_mounts;
	struct linux_mount *mounts = build_mounts(&n_mounts, paths, shm_opt);
	char **owned = NULL;
	sup_userns_adjust_mounts(mounts, n_mounts, &owned);
	int cgfd = sup.cg ? linux_cgroup_fd(sup.cg) : -1;
	struct child_args a = {
		.sync = sync[1],
		.chan = chan[1],
		.parent_sync = sync[0],
		.parent_chan = chan[0],
		.memfd = memfd,
		.own_cgroupns = cgfd >= 0,
		.rootfs = {
			.root = s->rootfs,
			.overlay_data = s->overlay_data,
			.overlay_dir = s->overlay_dir,
			.readonly = s->readonly,
			.mounts = mounts,
			.n_mounts = n_mounts,
			.default_devices = true,
			.masked_paths = linux_default_masked_paths,
			.readonly_paths = linux_default_readonly_paths,
			.before_pivot = sup_userns_on() ? sup_userns_before_pivot : NULL,
		},
	};
	uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
	if (s->net_mode == PROTO_NET_OWN)
		flags |= CLONE_NEWNET;
	if (cgfd >= 0)
		flags |= CLONE_NEWCGROUP;
	pid_t pid = linux_clone(flags, cgfd, NULL, SIGCHLD);
	if (pid < 0) {
		int e = errno;
		for (int i = 0; i < 3; i++)
			free(paths[i]);
		free(mounts);
		strv_free(owned);
		sup_userns_release();
		return error_sys(err, e, "clone sandbox");
	}
	if (pid == 0)
		child_main(&a);
	trace_mark("sup: cloned");
	close(chan[1]);
	close(sync[1]);
	for (int i = 0; i < 3; i++)
		free(paths[i]);
	free(mounts);
	strv_free(owned);
	sup_userns_release();
	sup.init_pid = pid;
	int rc = release_child(pid, sync[0], cgfd, err);
	close(sync[0]);
	trace_mark("sup: child exec'd agent");
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		sup.init_pid = 0;
		close(chan[0]);
		return -1;
	}
	fd_set_nonblock(chan[0], true);
	proto_conn_init(&sup.agent, chan[0]);
	sup.agent.accept_fds = true;
	return 0;
}

/* ---- the agent channel --------------------------------------------------- */

static void send_main(void)
{
	struct buf b = BUF_INIT;
	/* INIT: the main process's settings are every exec's defaults */
	struct proto_proc d = sup.spec.proc;
	d.argv = NULL;
	d.main = false;
	d.tty = false;
	d.open_stdin = false;
	d.timeout_ms = 0;
	proto_proc_encode(&b, &d);
	agent_send(P_INIT, 0, 0, b.data, b.len);
	b.len = 0;
	sup.spec.proc.main = true;
	proto_proc_encode(&b, &sup.spec.proc);
	agent_send(P_PROC_START, 0, MAIN_STREAM, b.data, b.len);
	buf_release(&b);
}

static void main_frame(const struct proto_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case P_PROC_STARTED: {
		trace_mark("sup: main started");
		sup.main_started = true;
		sup.state = SUP_RUNNING;
		sup.started_at = now_ms();
		if (sup.creator) {
			struct buf b = BUF_INIT;
			tlv_put_u64(&b, T_PID, (uint64_t)sup.init_pid);
			tlv_put_u64(&b, T_SUPERVISOR_PID, (uint64_t)getpid());
			tlv_put_i64(&b, T_STARTED_AT, sup.started_at);
			client_send(sup.creator, P_READY, 0, 0, b.data, b.len);
			buf_release(&b);
		}
		sup_arm_timers();
		route_from_agent(h, payload);
		break;
	}
	case P_EXIT:
		proto_exit_release(&sup.main_exit);
		if (proto_exit_decode(payload, h->len, &sup.main_exit) == 0)
			sup.main_exited = true;
		route_from_agent(h, payload);
		break;
	case P_ERROR: {
		int code;
		char *msg = NULL;
		route_from_agent(h, payload);
		if (proto_error_decode(payload, h->len, &code, &msg) == 0)
			logmsg("agent: main process: %s", msg);
		if (!sup.main_started && !sup.main_exited) {
			proto_exit_release(&sup.main_exit);
			sup.main_exit.exit_code = 125;
			sup.main_exit.code = code;
			sup.main_exit.message = msg;
			msg = NULL;
			sup.main_exit.reason = xstrdup("start_failed");
			sup.main_exited = true;
		}
		free(msg);
		break;
	}
	default:
		route_from_agent(h, payload);
		break;
	}
}

int agent_frame_fd(void)
{
	if (sup.n_frame_fds == 0)
		return -1;
	int fd = sup.frame_fds[0];
	memmove(sup.frame_fds, sup.frame_fds + 1, (size_t)(sup.n_frame_fds - 1) * sizeof(int));
	sup.n_frame_fds--;
	return fd;
}

static int handle_agent_frame(const struct proto_hdr *h, const uint8_t *payload);

/* Frames that carry descriptors say how many (T_COUNT): they are taken
 * with the frame, so a frame nobody wants cannot leave them to the next. */
static int on_agent_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)ctx;
	sup.n_frame_fds = 0;
	if (h->type == P_PROC_STARTED || h->type == P_OK) {
		uint64_t n = 0;
		tlv_find_u64(payload, h->len, T_COUNT, &n);
		for (uint64_t i = 0; i < n && i < 3; i++) {
			int fd = proto_conn_take_fd(c);
			if (fd >= 0)
				sup.frame_fds[sup.n_frame_fds++] = fd;
		}
	}
	int rc = handle_agent_frame(h, payload);
	while (sup.n_frame_fds > 0)
		close(sup.frame_fds[--sup.n_frame_fds]);
	return rc;
}

static int handle_agent_frame(const struct proto_hdr *h, const uint8_t *payload)
{
	if (h->type == P_HELLO) {
		struct tlv_iter it;
		tlv_iter_init(&it, payload, h->len);
		uint16_t tag;
		const uint8_t *val;
		uint32_t len;
		uint64_t magic = 0, version = 0;
		while (tlv_next(&it, &tag, &val, &len) > 0) {
			if (tag == T_MAGIC)
				tlv_u64(val, len, &magic);
			else if (tag == T_VERSION)
				tlv_u64(val, len, &version);
		}
		if (magic != PROTO_MAGIC || version != PROTO_VERSION) {
			logmsg("agent speaks protocol %llu, magic %llx: refusing", (unsigned long long)version,
			       (unsigned long long)magic);
			sup_kill_all();
			return -1;
		}
		sup.agent_hello = true;
		trace_mark("sup: hello");
		send_main();
		return 0;
	}
	if (h->type == P_PONG)
		return 0;
	if (h->stream == MAIN_STREAM) {
		main_frame(h, payload);
		return 0;
	}
	if (h->stream == 0) {
		if (h->type == P_ERROR) {
			int code;
			char *msg = NULL;
			if (proto_error_decode(payload, h->len, &code, &msg) == 0)
				logmsg("agent: %s", msg);
			free(msg);
		}
		return 0;
	}
	route_from_agent(h, payload);
	return 0;
}

static void on_agent(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)io;
	if (revents & EPOLLOUT)
		flush_agent_now();
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int r = proto_conn_read(&sup.agent, on_agent_frame, NULL);
		if (r != 0) {
			/* EOF: the agent is exiting; SIGCHLD finishes the job */
			if (r < 0)
				logmsg("agent channel: %s", strerror(errno));
			ev_io_stop(l, &sup.agent_io);
		}
	}
}

/* ---- stopping and ending --------------------------------------------------- */

void sup_kill_all(void)
{
	if (sup.cg) {
		linux_cgroup_freeze(sup.cg, false, NULL);
		struct capsa_error *err = NULL;
		if (linux_cgroup_kill_all(sup.cg, &err) < 0) {
			logmsg("%s", err->msg);
			capsa_error_free(err);
		}
	}
	if (sup.init_pid > 0)
		kill(sup.init_pid, SIGKILL);
}

static void on_stop_timer(struct ev_loop *l, struct ev_timer *t)
{
	(void)l;
	(void)t;
	logmsg("grace period over: killing the sandbox");
	sup_kill_all();
}

void sup_stop(int64_t timeout_ms, int sig, const char *reason)
{
	if (sup.state == SUP_ENDING)
		return;
	if (!sup.end_reason)
		sup.end_reason = reason;
	sup.stop_requested = true;
	if (sup.state == SUP_PAUSED && sup.cg) {
		linux_cgroup_freeze(sup.cg, false, NULL);
		sup.state = SUP_RUNNING;
	}
	if (timeout_ms <= 0 || !sup.main_started || sup.main_exited) {
		sup_kill_all();
		return;
	}
	uint8_t s[4];
	put_be32(s, (uint32_t)sig);
	agent_send(P_SIGNAL, 0, MAIN_STREAM, s, 4);
	if (!sup.stop_timer.active)
		ev_timer_start(&sup.loop, &sup.stop_timer, timeout_ms, on_stop_timer);
}

static void on_deadline(struct ev_loop *l, struct ev_timer *t)
{
	(void)l;
	(void)t;
	logmsg("maximum lifetime reached");
	sup_stop(10000, sup.spec.stop_signal > 0 ? (int)sup.spec.stop_signal : SIGTERM, "max_duration");
}

static void on_idle(struct ev_loop *l, struct ev_timer *t)
{
	/* a client waiting on a process it started is not idle */
	if (procs_busy())
		sup_touch();
	int64_t idle = mono_ms() - sup.last_activity;
	if (idle >= sup.spec.idle_timeout_ms) {
		logmsg("idle for %lld ms", (long long)idle);
		sup_stop(10000, sup.spec.stop_signal > 0 ? (int)sup.spec.stop_signal : SIGTERM, "idle_timeout");
		return;
	}
	ev_timer_start(l, t, sup.spec.idle_timeout_ms - idle, on_idle);
}

void sup_arm_timers(void)
{
	if (sup.spec.deadline_ms > 0) {
		int64_t left = sup.spec.deadline_ms - now_ms();
		ev_timer_start(&sup.loop, &sup.deadline_timer, left, on_deadline);
	} else {
		ev_timer_stop(&sup.loop, &sup.deadline_timer);
	}
	if (sup.spec.idle_timeout_ms > 0)
		ev_timer_start(&sup.loop, &sup.idle_timer, sup.spec.idle_timeout_ms, on_idle);
	else
		ev_timer_stop(&sup.loop, &sup.idle_timer);
}

void sup_touch(void)
{
	sup.last_activity = mono_ms();
}

static const char *end_reason(int agent_status, struct proto_exit *e)
{
	uint64_t ooms = 0;
	if (sup.cg)
		linux_cgroup_oom_kills(sup.cg, &ooms);
	if (ooms > sup.oom_base && (e->exit_code == 137 || e->signal == SIGKILL)) {
		e->oom = true;
		return "oom";
	}
	if (sup.end_reason)
		return sup.end_reason;
	if (sup.stop_requested)
		return "stopped";
	if (sup.kill_requested && e->signal)
		return "killed";
	if (!sup.main_exited)
		return WIFSIGNALED(agent_status) ? "killed" : "lost";
	if (e->reason && strcmp(e->reason, "start_failed") == 0)
		return "start_failed";
	return e->signal ? "signaled" : "exited";
}

static void write_exit_file(const struct proto_exit *e)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "exit_code=%lld\nsignal=%lld\nreason=%s\nstarted_at=%lld\nfinished_at=%lld\noom=%d\n",
		    (long long)e->exit_code, (long long)e->signal, e->reason ? e->reason : "exited",
		    (long long)e->started_at, (long long)e->finished_at, e->oom ? 1 : 0);
	if (e->message) {
		buf_appendf(&b, "message=");
		for (const char *p = e->message; *p; p++)
			buf_putc(&b, *p == '\n' ? ' ' : *p);
		buf_putc(&b, '\n');
	}
	struct capsa_error *err = NULL;
	if (write_file_atomic_at(sup.run_fd, "exit", b.data, b.len, 0644, true, &err) < 0) {
		logmsg("%s", err->msg);
		capsa_error_free(err);
	}
	buf_release(&b);
}

static __attribute__((noreturn)) void finalize(void)
{
	/* the creator said it would do the bookkeeping and is still there */
	if (sup.spec.creator_finalizes && sup.creator && !sup.creator->closing)
		_exit(0);
	if (!sup.spec.capsa_path)
		_exit(0);
	/* Hand over to `capsa _finalize`, keeping the lock (fd stays open across
	 * exec) so that reconciliation does not race it. */
	fd_set_cloexec(sup.lock_fd, false);
	char *root_env = xasprintf("CAPSA_ROOT=%s", sup.spec.root_dir ? sup.spec.root_dir : "");
	_cleanup_free_ char *run_root = xstrdup(sup.spec.run_dir);
	char *slash = strrchr(run_root, '/');
	if (slash)
		*slash = '\0';
	char *run_env = xasprintf("CAPSA_RUN_ROOT=%s", run_root);
	char *envp[] = { root_env, run_env, (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	char *argv[] = { sup.spec.capsa_path, (char *)"_finalize", sup.spec.id, NULL };
	execve(sup.spec.capsa_path, argv, envp);
	logmsg("exec %s _finalize: %s", sup.spec.capsa_path, strerror(errno));
	_exit(1);
}

static __attribute__((noreturn)) void sandbox_ended(int status)
{
	trace_mark("sup: agent exited");
	sup.state = SUP_ENDING;
	sup_metrics_stop();
	/* The agent flushed everything before exiting: read the rest. */
	if (sup.agent.fd >= 0) {
		fd_set_nonblock(sup.agent.fd, false);
		while (proto_conn_read(&sup.agent, on_agent_frame, NULL) == 0) {
		}
	}
	struct proto_exit e = { 0 };
	if (sup.main_exited) {
		e = sup.main_exit;
		memset(&sup.main_exit, 0, sizeof(sup.main_exit));
	} else if (WIFSIGNALED(status)) {
		e.signal = WTERMSIG(status);
		e.exit_code = 128 + e.signal;
	} else {
		e.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 125;
	}
	const char *reason = end_reason(status, &e);
	free(e.reason);
	e.reason = xstrdup(reason);
	e.started_at = sup.started_at;
	if (!e.finished_at)
		e.finished_at = now_ms();
	if (sup.cg) {
		struct capsa_error *err = NULL;
		if (linux_cgroup_kill_all(sup.cg, &err) < 0 || linux_cgroup_destroy(sup.cg, &err) < 0) {
			logmsg("%s", err->msg);
			capsa_error_free(err);
		}
	}
	trace_mark("sup: cgroup removed");
	sup_disk_release();
	write_exit_file(&e);
	logw_close(&sup.log);
	struct buf b = BUF_INIT;
	proto_exit_encode(&b, &e);
	clients_broadcast_final(&b);
	buf_release(&b);
	proto_exit_release(&e);
	for (struct client *c = sup.clients; c; c = c->next)
		if (!c->closing)
			proto_conn_flush_all(&c->conn, 2000);
	finalize();
}

static void on_signal(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)io;
	(void)revents;
	struct signalfd_siginfo si;
	while (read(sup.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
				if (p == sup.init_pid)
					sandbox_ended(st);
			}
		} else {
			/* asked to go away ourselves: stop the sandbox properly */
			sup_stop(10000, SIGTERM, NULL);
		}
	}
}

static int on_spec(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	const char **why = ctx;
	if (h->type != P_SPEC) {
		*why = "first frame is not a sandbox spec";
		return -1;
	}
	if (proto_sandbox_decode(payload, h->len, &sup.spec, why) < 0)
		return -1;
	return 0;
}

static __attribute__((noreturn)) void fail_start(struct client *creator, struct capsa_error *err)
{
	logmsg("%s", err->msg);
	sup_metrics_stop();
	/* Everything we leave is in place before the creator hears of it: it
	 * removes the runtime directory at once, and an exit file written
	 * after that would keep the directory alive. */
	if (sup.cg) {
		linux_cgroup_kill_all(sup.cg, NULL);
		linux_cgroup_destroy(sup.cg, NULL);
	}
	if (sup.run_fd >= 0) {
		struct proto_exit e = { .exit_code = 125, .code = err->code, .message = err->msg,
					.reason = (char *)"start_failed", .finished_at = now_ms() };
		write_exit_file(&e);
	}
	if (creator) {
		struct buf b = BUF_INIT;
		proto_error_encode(&b, err->code, err->msg);
		proto_conn_queue(&creator->conn, P_ERROR, 0, 0, b.data, b.len);
		proto_conn_flush_all(&creator->conn, 2000);
		buf_release(&b);
	}
	_exit(1);
}

/* The runtime directory, our own diagnostics, the sandbox lock and its
 * main log; a failure is the creator's to hear. */
static void open_runtime_files(void)
{
	struct capsa_error *err = NULL;
	sup.run_fd = open(sup.spec.run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sup.run_fd < 0) {
		error_sys(&err, errno, "open runtime directory %s", sup.spec.run_dir);
		fail_start(sup.creator, err);
	}
	/* our own diagnostics go to the runtime directory */
	int logfd = openat(sup.run_fd, "supervisor.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd >= 0) {
		dup2(logfd, 2);
		close(logfd);
	}
	/* fd 5: the sandbox's network namespace, made by the library
	 * (PROTO_NET_JOIN); the child joins it, nothing else keeps it */
	if (sup.spec.net_mode == PROTO_NET_JOIN) {
		if (fcntl(SUP_NETNS_FD, F_GETFD) < 0) {
			error_set(&err, EBADF, "sandbox %s: no network namespace was handed over", sup.spec.id);
			fail_start(sup.creator, err);
		}
		fd_set_cloexec(SUP_NETNS_FD, true);
	}
	/* fd 4: the sandbox lock, taken by the creator before the sandbox
	 * existed and held (same open file) until the sandbox is finalized */
	if (fcntl(4, F_GETFD) >= 0) {
		sup.lock_fd = 4;
		fd_set_cloexec(4, true);
	} else {
		sup.lock_fd = openat(sup.run_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (sup.lock_fd < 0 || flock(sup.lock_fd, LOCK_EX | LOCK_NB) < 0) {
			error_sys(&err, errno, "lock sandbox %s", sup.spec.id);
			fail_start(sup.creator, err);
		}
	}
	if (sup.spec.sandbox_dir) {
		_cleanup_free_ char *logs = xasprintf("%s/logs", sup.spec.sandbox_dir);
		mkdir(logs, 0700);
		sup.log_dirfd = open(logs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (sup.log_dirfd < 0 ||
	    logw_open(&sup.log, sup.log_dirfd, "main.log", sup.spec.log_max_size, (int)sup.spec.log_max_files) < 0) {
		error_sys(&err, errno, "open log of sandbox %s", sup.spec.id);
		fail_start(sup.creator, err);
	}
}

/* The sandbox's main process, its output going to the creator when it
 * attached. */
static void start_main_process(void)
{
	sup.main_proc = proc_new(MAIN_STREAM);
	sup.main_proc->main = true;
	sup.main_proc->argv = strv_dup(sup.spec.proc.argv);
	sup.main_proc->cwd = sup.spec.proc.cwd ? xstrdup(sup.spec.proc.cwd) : NULL;
	sup.main_proc->tty = sup.spec.proc.tty;
	sup.main_proc->stdin_open = sup.spec.proc.open_stdin;
	if (sup.spec.creator_attach)
		proc_add_sink(sup.main_proc, sup.creator, MAIN_STREAM, (unsigned)sup.spec.creator_attach);
	sup.creator->wants_final = true;
	client_activate(sup.creator);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct capsa_error *err = NULL;
	sup.run_fd = sup.lock_fd = sup.log_dirfd = sup.listen_fd = -1;
	sup.next_stream = MAIN_STREAM + 1;
	signal(SIGPIPE, SIG_IGN);
	if (fcntl(3, F_GETFD) < 0) {
		fprintf(stderr, "capsa-supervisor: started without a creator socket; this program is started by capsa\n");
		return 2;
	}
	fd_set_cloexec(3, true);
	struct proto_conn boot;
	proto_conn_init(&boot, 3);
	const char *why = "no sandbox spec received";
	if (proto_conn_wait(&boot, 30000, on_spec, &why) != 1) {
		fprintf(stderr, "capsa-supervisor: %s\n", why);
		return 2;
	}
	sup.creator = client_add(3, true);
	/* frames that followed the spec in the same read belong to the client */
	buf_append(&sup.creator->conn.in, boot.in.data, boot.in.len);
	buf_release(&boot.in);

	open_runtime_files();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sup.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ev_init(&sup.loop) < 0 || sup.sigfd < 0) {
		error_sys(&err, errno, "event loop");
		fail_start(sup.creator, err);
	}
	for (size_t i = 0; i < sup.spec.n_ports; i++) {
		if (tunnel_listen(&sup.spec.ports[i], &err) < 0)
			fail_start(sup.creator, err);
	}
	if (create_sandbox(&err) < 0) {
		error_wrap(&err, "create sandbox %s", sup.spec.name ? sup.spec.name : sup.spec.id);
		fail_start(sup.creator, err);
	}
	sup_metrics_start();
	/* tunnels and clients need descriptors */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	_cleanup_free_ char *sock = run_path("ctl.sock");
	sup.listen_fd = unix_listen(sock, 0600, 64);
	if (sup.listen_fd < 0) {
		error_sys(&err, errno, "listen on %s", sock);
		sup_kill_all();
		fail_start(sup.creator, err);
	}
	sup_touch();
	ev_io_start(&sup.loop, &sup.sig_io, sup.sigfd, EPOLLIN, on_signal);
	ev_io_start(&sup.loop, &sup.agent_io, sup.agent.fd, EPOLLIN, on_agent);
	ev_io_start(&sup.loop, &sup.listen_io, sup.listen_fd, EPOLLIN, client_accept);
	start_main_process();
	ev_run(&sup.loop);
	return 0;
}
