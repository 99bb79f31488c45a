/* seccomp-default.c: docker's default seccomp profile as data (the facts of
 * moby's profiles/seccomp/default.json: an allowlist, EPERM for the rest,
 * with rules that depend on the granted capabilities and on the
 * architecture).  Only data lives here; seccomp-profile.c compiles it. */
#include <stddef.h>

#include "seccomp-internal.h"

#define NAMES(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const char *const allowed[] = {
	"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
	"chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
	"clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
	"connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
	"epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd",
	"eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
	"fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32",
	"fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
	"fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
	"ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
	"getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
	"getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
	"getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
	"getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
	"getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
	"inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
	"io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "io_uring_enter",
	"io_uring_register", "io_uring_setup", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
	"llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
	"membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
	"mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
	"mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
	"mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
	"name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause",
	"pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
	"ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
	"pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
	"readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
	"removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
	"rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
	"sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
	"sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
	"sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
	"semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
	"sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
	"setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
	"setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
	"set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32",
	"setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
	"sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
	"statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
	"tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
	"timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
	"timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
	"ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
	"utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev", NULL,
};

#define ALLOW "SCMP_ACT_ALLOW"
/* clone without any CLONE_NEW* flag (namespace creation needs CAP_SYS_ADMIN) */
#define CLONE_NS_MASK 2114060288ULL

/* socket(2) (capsa's change to docker's single "family != AF_VSOCK" rule):
 * allowed are the families below 64 (AF_MAX is 46 in Linux 6.18) except
 * AF_NETLINK (16) and AF_VSOCK (40), and AF_NETLINK with every protocol
 * below 32 (MAX_LINKS) except NETLINK_KOBJECT_UEVENT (15).  A uevent socket
 * would receive the host's device events: the kernel broadcasts them to every
 * network namespace the initial user namespace owns, and the sandbox's is one
 * (docs/security.md, "Seccomp").  The kernel reads the family and the
 * protocol as 32-bit ints, so every comparison is a masked compare of the low
 * 32 bits: a value with high bits set cannot pass as another family (with
 * docker's 64-bit "!= 40", 0x100000028 is AF_VSOCK to the kernel).  Rules
 * only allow (none refuses), so their order does not matter, and each is an
 * aligned block: LOW32(i, lo, n) is lo <= (uint32_t)arg i < lo + n, n a
 * power of two dividing lo. */
#define AF_NETLINK 16
#define LOW32(i, lo, n) { (i), 0xffffffffULL & ~(uint64_t)((n) - 1), (lo), "SCMP_CMP_MASKED_EQ" }

static const struct sc_rule rules[] = {
	{ .names = allowed, .action = ALLOW, .errno_ret = -1 },
	{ .names = NAMES("process_vm_readv", "process_vm_writev", "ptrace"), .action = ALLOW, .errno_ret = -1,
	  .min_kernel = "4.8" },
	/* socket(2): see LOW32 above */
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 0, 16) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 17, 1) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 18, 2) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 20, 4) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 24, 8) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 32, 8) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 41, 1) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 42, 2) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 44, 4) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1, .args = { LOW32(0, 48, 16) }, .n_args = 1 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1,
	  .args = { LOW32(0, AF_NETLINK, 1), LOW32(2, 0, 8) }, .n_args = 2 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1,
	  .args = { LOW32(0, AF_NETLINK, 1), LOW32(2, 8, 4) }, .n_args = 2 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1,
	  .args = { LOW32(0, AF_NETLINK, 1), LOW32(2, 12, 2) }, .n_args = 2 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1,
	  .args = { LOW32(0, AF_NETLINK, 1), LOW32(2, 14, 1) }, .n_args = 2 },
	{ .names = NAMES("socket"), .action = ALLOW, .errno_ret = -1,
	  .args = { LOW32(0, AF_NETLINK, 1), LOW32(2, 16, 16) }, .n_args = 2 },
	{ .names = NAMES("personality"), .action = ALLOW, .errno_ret = -1,
	  .args = { { 0, 0, 0, "SCMP_CMP_EQ" } }, .n_args = 1 },
	{ .names = NAMES("personality"), .action = ALLOW, .errno_ret = -1,
	  .args = { { 0, 8, 0, "SCMP_CMP_EQ" } }, .n_args = 1 },
	{ .names = NAMES("personality"), .action = ALLOW, .errno_ret = -1,
	  .args = { { 0, 131072, 0, "SCMP_CMP_EQ" } }, .n_args = 1 },
	{ .names = NAMES("personality"), .action = ALLOW, .errno_ret = -1,
	  .args = { { 0, 131080, 0, "SCMP_CMP_EQ" } }, .n_args = 1 },
	{ .names = NAMES("personality"), .action = ALLOW, .errno_ret = -1,
	  .args = { { 0, 4294967295ULL, 0, "SCMP_CMP_EQ" } }, .n_args = 1 },
	{ .names = NAMES("sync_file_range2", "swapcontext"), .action = ALLOW, .errno_ret = -1,
	  .arches_in = NAMES("ppc64le") },
	{ .names = NAMES("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
			 "set_tls"),
	  .action = ALLOW, .errno_ret = -1, .arches_in = NAMES("arm", "arm64") },
	{ .names = NAMES("arch_prctl"), .action = ALLOW, .errno_ret = -1, .arches_in = NAMES("amd64", "x32") },
	{ .names = NAMES("modify_ldt"), .action = ALLOW, .errno_ret = -1,
	  .arches_in = NAMES("amd64", "x32", "x86") },
	{ .names = NAMES("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"), .action = ALLOW,
	  .errno_ret = -1, .arches_in = NAMES("s390", "s390x") },
	{ .names = NAMES("riscv_flush_icache"), .action = ALLOW, .errno_ret = -1, .arches_in = NAMES("riscv64") },
	{ .names = NAMES("open_by_handle_at"), .action = ALLOW, .errno_ret = -1,
	  .caps_in = NAMES("CAP_DAC_READ_SEARCH") },
	{ .names = NAMES("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
			 "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
			 "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
			 "umount2", "unshare"),
	  .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_ADMIN") },
	{ .names = NAMES("clone"), .action = ALLOW, .errno_ret = -1,
	  .args = { { 0, CLONE_NS_MASK, 0, "SCMP_CMP_MASKED_EQ" } }, .n_args = 1,
	  .caps_out = NAMES("CAP_SYS_ADMIN"), .arches_out = NAMES("s390", "s390x") },
	{ .names = NAMES("clone"), .action = ALLOW, .errno_ret = -1, /* s390 orders clone's arguments differently */
	  .args = { { 1, CLONE_NS_MASK, 0, "SCMP_CMP_MASKED_EQ" } }, .n_args = 1,
	  .arches_in = NAMES("s390", "s390x"), .caps_out = NAMES("CAP_SYS_ADMIN") },
	/* clone3's flags are behind a pointer seccomp cannot read: ENOSYS
	 * makes libc fall back to clone, which the rule above filters. */
	{ .names = NAMES("clone3"), .action = "SCMP_ACT_ERRNO", .errno_ret = 38, .caps_out = NAMES("CAP_SYS_ADMIN") },
	{ .names = NAMES("reboot"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_BOOT") },
	{ .names = NAMES("chroot"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_CHROOT") },
	{ .names = NAMES("delete_module", "init_module", "finit_module"), .action = ALLOW, .errno_ret = -1,
	  .caps_in = NAMES("CAP_SYS_MODULE") },
	{ .names = NAMES("acct"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_PACCT") },
	{ .names = NAMES("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
			 "ptrace"),
	  .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_PTRACE") },
	{ .names = NAMES("iopl", "ioperm"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_RAWIO") },
	{ .names = NAMES("settimeofday", "stime", "clock_settime", "clock_settime64"), .action = ALLOW,
	  .errno_ret = -1, .caps_in = NAMES("CAP_SYS_TIME") },
	{ .names = NAMES("vhangup"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYS_TTY_CONFIG") },
	{ .names = NAMES("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"), .action = ALLOW,
	  .errno_ret = -1, .caps_in = NAMES("CAP_SYS_NICE") },
	{ .names = NAMES("syslog"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_SYSLOG") },
	{ .names = NAMES("bpf"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_BPF") },
	{ .names = NAMES("perf_event_open"), .action = ALLOW, .errno_ret = -1, .caps_in = NAMES("CAP_PERFMON") },
};

const struct sc_profile seccomp_default_profile = {
	.default_action = "SCMP_ACT_ERRNO",
	.default_errno = 1, /* EPERM */
#if defined(__x86_64__)
	.arches = NAMES("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
#elif defined(__aarch64__)
	.arches = NAMES("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
#else
	.arches = NULL,
#endif
	.rules = rules,
	.n_rules = sizeof(rules) / sizeof(rules[0]),
};
