/* test-linux-seccomp.c: lib/linux seccomp profiles: docker's default
 * profile compiled and installed in a child (what it refuses, what it
 * allows, on x86_64 and through the i386 entry), the ENOSYS prologue for
 * syscalls newer than the profile, the JSON round trip, docker/OCI JSON
 * actions, and the errors for bad profiles. */
#include <errno.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/proc.h"
#include "linux/seccomp-profile.h"
#include "tap.h"

#define CAP(n) (UINT64_C(1) << (n))
#define CAP_SYS_ADMIN_BIT 21

/* Installs bpf in a child, runs probe(), and returns its exit status. */
static int run_filtered(const struct buf *bpf, unsigned flags, int (*probe)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		struct linux_proc_sec s = { .no_new_privs = true, .seccomp_bpf = bpf->data,
					    .seccomp_len = bpf->len, .seccomp_flags = flags };
		struct capsa_error *err = NULL;
		if (linux_proc_apply(&s, &err) < 0) {
			printf("# apply: %s\n", err->msg);
			_exit(100);
		}
		_exit(probe());
	}
	int st;
	waitpid(pid, &st, 0);
	return st;
}

/* The probes return 0, or the number of the first check that failed (an
 * exit status holds 8 bits). */
static long errno_of(long r)
{
	return r < 0 ? errno : 0;
}

/* Each refusal is a distinct bit, so a failure says which one. */
static int probe_default(void)
{
	int bad = 0;
	if (errno_of(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1, 0)) != EPERM)
		bad = bad ? bad : 1;
	if (errno_of(syscall(SYS_bpf, 0, NULL, 0)) != EPERM)
		bad = bad ? bad : 2;
	if (errno_of(syscall(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */)) != EPERM)
		bad = bad ? bad : 3;
	if (errno_of(mount("none", "/mnt", "tmpfs", 0, NULL)) != EPERM)
		bad = bad ? bad : 4;
	/* wrong magic: EINVAL if it ever got through */
	if (errno_of(syscall(SYS_reboot, 0xfee1dead, 0, 0, NULL)) != EPERM)
		bad = bad ? bad : 5;
	if (errno_of(syscall(SYS_kexec_load, 0, 0, NULL, 0xffff0000UL)) != EPERM)
		bad = bad ? bad : 6;
	if (syscall(SYS_getpid) != getpid() || write(1, "", 0) != 0)
		bad = bad ? bad : 7;
	if (errno_of(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)) != EPERM)
		bad = bad ? bad : 8;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		bad = bad ? bad : 9;
	/* clone3 says ENOSYS (so libc falls back to clone); a syscall newer
	 * than the profile (fchmodat2 = 452) and an unassigned number too. */
	if (errno_of(syscall(435 /* clone3 */, NULL, 0)) != ENOSYS)
		bad = bad ? bad : 10;
	if (errno_of(syscall(452, -100, ".", 0, 0)) != ENOSYS || errno_of(syscall(1000)) != ENOSYS)
		bad = bad ? bad : 11;
	if (errno_of(syscall(SYS_personality, 0xffffffffUL)) != 0)
		bad = bad ? bad : 12;
#if defined(__x86_64__)
	/* The i386 entry: getpid (20) allowed, keyctl (288) refused.
	 * Without the x86 arch in the filter this kills the process. */
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	if (r != getpid())
		bad = bad ? bad : 13;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(288L), "b"(0L), "c"(-1L) : "memory");
	if (r != -EPERM)
		bad = bad ? bad : 14;
#endif
	return bad;
}

/* socket(2) under the default profile: a uevent netlink socket (the host's
 * device events) is refused, other netlink protocols and families are not,
 * and bits above the 32-bit int the kernel reads smuggle no refused family or
 * protocol through. */
static int probe_sockets(void)
{
	const unsigned long high = 1UL << 32;
	int bad = 0;
	if (errno_of(socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT)) != EPERM ||
	    errno_of(socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)) != EPERM)
		bad = bad ? bad : 1;
	if (errno_of(syscall(SYS_socket, high | AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT)) != EPERM ||
	    errno_of(syscall(SYS_socket, AF_NETLINK, SOCK_RAW, high | NETLINK_KOBJECT_UEVENT)) != EPERM)
		bad = bad ? bad : 2;
	if (errno_of(syscall(SYS_socket, high | 40 /* AF_VSOCK */, SOCK_STREAM, 0)) != EPERM)
		bad = bad ? bad : 3;
	if (socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) < 0 || socket(AF_INET, SOCK_DGRAM, 0) < 0 ||
	    socket(AF_UNIX, SOCK_DGRAM, 0) < 0)
		bad = bad ? bad : 4;
	/* refused by the kernel (no such protocol, or not built), not by us */
	if (errno_of(socket(AF_NETLINK, SOCK_RAW, 31)) == EPERM || errno_of(socket(AF_INET6, SOCK_DGRAM, 0)) == EPERM ||
	    errno_of(socket(45 /* AF_MCTP */, SOCK_DGRAM, 0)) == EPERM || errno_of(socket(17, 99, 0)) == EPERM)
		bad = bad ? bad : 5;
	/* no family at or above 64 exists: refused by the filter */
	if (errno_of(socket(64, SOCK_DGRAM, 0)) != EPERM)
		bad = bad ? bad : 6;
#if defined(__x86_64__)
	/* the i386 entry point's socket (359) is filtered the same way */
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(359L), "b"(16L), "c"(3L), "d"(15L) : "memory");
	if (r != -EPERM)
		bad = bad ? bad : 7;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(359L), "b"(16L), "c"(3L), "d"(0L) : "memory");
	if (r < 0)
		bad = bad ? bad : 8;
#endif
	return bad;
}

static int probe_sysadmin(void)
{
	/* with CAP_SYS_ADMIN in the set, namespaces and mount are allowed */
	return syscall(SYS_unshare, 0x04000000 /* CLONE_NEWUTS */) == 0 ? 0 : 1;
}

static void test_default(void)
{
	struct buf bpf = BUF_INIT;
	struct capsa_error *err = NULL;
	ok(seccomp_profile_default(LINUX_CAPS_DEFAULT, &bpf, &err) == 0, "default profile compiles: %s",
	   err ? err->msg : "ok");
	ok(bpf.len > 0 && bpf.len % 8 == 0 && bpf.len / 8 <= 4096, "%zu instructions", bpf.len / 8);
	int st = run_filtered(&bpf, 0, probe_default);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "keyctl bpf unshare mount reboot kexec_load vsock refused with "
						      "EPERM, getpid write unix sockets allowed, ENOSYS for clone3 "
						      "and newer syscalls, i386 entry filtered (status 0x%x)",
	   st);
	st = run_filtered(&bpf, 0, probe_sockets);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "netlink uevent sockets refused with EPERM (also with high bits, also through the i386 entry), other "
	   "netlink protocols and families allowed (status 0x%x)",
	   st);
	struct buf admin = BUF_INIT;
	seccomp_profile_default(LINUX_CAPS_DEFAULT | CAP(CAP_SYS_ADMIN_BIT), &admin, &err);
	ok(admin.len != bpf.len || memcmp(admin.data, bpf.data, bpf.len) != 0, "CAP_SYS_ADMIN changes the program");
	st = run_filtered(&admin, 0, probe_sysadmin);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "with CAP_SYS_ADMIN, unshare is allowed");
	st = run_filtered(&bpf, 0, probe_sysadmin);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 1, "without it, unshare is refused");

	/* Round trip: the default profile as JSON compiles to the same bytes. */
	char *json = seccomp_profile_default_json();
	ok(json && strstr(json, "\"defaultAction\": \"SCMP_ACT_ERRNO\"") && strstr(json, "\"CAP_SYS_ADMIN\""),
	   "default profile as docker JSON");
	uint64_t sets[] = { LINUX_CAPS_DEFAULT, LINUX_CAPS_DEFAULT | CAP(CAP_SYS_ADMIN_BIT), 0, linux_caps_all() };
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		struct buf a = BUF_INIT, b = BUF_INIT;
		int ra = seccomp_profile_default(sets[i], &a, &err);
		int rb = seccomp_profile_compile_json(json, strlen(json), sets[i], &b, &err);
		ok(ra == 0 && rb == 0 && a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
		   "JSON round trip gives the same program for caps %llx (%zu/%zu bytes)", (unsigned long long)sets[i],
		   a.len, b.len);
		buf_release(&a);
		buf_release(&b);
	}
	free(json);
	buf_release(&bpf);
	buf_release(&admin);
	capsa_error_free(err);
}

static int probe_custom(void)
{
	int bad = 0;
	if (errno_of(syscall(SYS_getppid)) != EACCES)
		bad |= 1;
	if (errno_of(syscall(SYS_uname, NULL)) != EPERM)
		bad |= 2; /* uname(NULL) matches the arg rule */
	struct utsname u;
	if (uname(&u) != 0)
		bad |= 4;
	if (syscall(SYS_getpid) != getpid())
		bad |= 8;
	return bad;
}

static int probe_kill(void)
{
	syscall(SYS_getppid);
	return 0;
}

static void test_json(void)
{
	struct capsa_error *err = NULL;
	struct buf bpf = BUF_INIT;
	unsigned flags = 99;
	const char *oci = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\"],"
			  "\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],\"syscalls\":["
			  "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13},"
			  "{\"names\":[\"mkdirat\",\"no_such_syscall\"],\"action\":\"SCMP_ACT_LOG\"},"
			  "{\"names\":[\"uname\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":0,"
			  "\"valueTwo\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}";
	int r = seccomp_profile_compile_json_flags(oci, strlen(oci), 0, &bpf, &flags, &err);
	ok(r == 0, "OCI profile compiles (unknown syscall skipped): %s", err ? err->msg : "ok");
	is_int(flags, 2, "flags: SECCOMP_FILTER_FLAG_LOG");
	int st = run_filtered(&bpf, flags, probe_custom);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "errnoRet 13, argument rule, allow by default (status 0x%x)", st);

	const char *kill = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getppid\"],"
			   "\"action\":\"SCMP_ACT_KILL_PROCESS\"}]}";
	bpf.len = 0;
	ok(seccomp_profile_compile_json(kill, strlen(kill), 0, &bpf, &err) == 0, "KILL_PROCESS profile");
	st = run_filtered(&bpf, 0, probe_kill);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "SCMP_ACT_KILL_PROCESS kills with SIGSYS");
	const char *trap = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"name\":\"getppid\","
			   "\"action\":\"SCMP_ACT_TRAP\"}]}";
	bpf.len = 0;
	ok(seccomp_profile_compile_json(trap, strlen(trap), 0, &bpf, &err) == 0, "TRAP profile, old 'name' field");
	st = run_filtered(&bpf, 0, probe_kill);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "SCMP_ACT_TRAP raises SIGSYS");
	/* repeated argument index: any of the conditions */
	const char *any = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"personality\"],"
			  "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"},"
			  "{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]},{\"names\":[\"exit_group\",\"exit\"],"
			  "\"action\":\"SCMP_ACT_ALLOW\"},{\"names\":[\"trace\"],\"action\":\"SCMP_ACT_TRACE\"}]}";
	bpf.len = 0;
	ok(seccomp_profile_compile_json(any, strlen(any), 0, &bpf, &err) == 0, "repeated index and TRACE compile: %s",
	   err ? err->msg : "ok");
	buf_release(&bpf);

	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{", "invalid JSON" },
		{ "[]", "not a JSON object" },
		{ "{\"syscalls\":[]}", "missing defaultAction" },
		{ "{\"defaultAction\":\"SCMP_ACT_FOO\"}", "unknown action 'SCMP_ACT_FOO'" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_Z80\"]}",
		  "unknown architecture 'SCMP_ARCH_Z80'" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\","
		  "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_ALMOST\"}]}]}",
		  "unknown operator 'SCMP_CMP_ALMOST'" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\","
		  "\"args\":[{\"index\":7,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
		  "index" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"flags\":[\"SECCOMP_FILTER_FLAG_FAST\"]}",
		  "unknown flag 'SECCOMP_FILTER_FLAG_FAST'" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
		  "SCMP_ACT_NOTIFY is not supported" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"listenerPath\":\"/run/x.sock\"}", "not supported" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":\"read\",\"action\":\"SCMP_ACT_ALLOW\"}]}",
		  "not an array" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"]}]}", "missing action" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
		  "\"errnoRet\":99999}]}",
		  "errnoRet" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\","
		  "\"includes\":{\"caps\":[\"CAP_TELEPORT\"]}}]}",
		  "unknown capability 'CAP_TELEPORT'" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultAction\":\"SCMP_ACT_ALLOW\"}", "duplicate" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = BUF_INIT;
		err = NULL;
		r = seccomp_profile_compile_json(bad[i].json, strlen(bad[i].json), 0, &b, &err);
		ok(r < 0 && err && strstr(err->msg, bad[i].want), "bad profile %zu refused: %s", i,
		   err ? err->msg : "accepted");
		capsa_error_free(err);
		buf_release(&b);
	}
	size_t big = (5u << 20);
	char *huge = malloc(big);
	memset(huge, ' ', big);
	err = NULL;
	struct buf b = BUF_INIT;
	r = seccomp_profile_compile_json(huge, big, 0, &b, &err);
	ok(r < 0 && err->code == EFBIG, "a 5 MiB profile is refused before parsing");
	capsa_error_free(err);
	free(huge);
}

int main(void)
{
	test_default();
	test_json();
	return done_testing();
}
