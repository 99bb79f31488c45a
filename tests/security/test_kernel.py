"""Escape battery, part 1: the kernel's interfaces.  Each test is one attempt
made from inside a sandbox as root-in-sandbox; it asserts the attempt fails,
and the autouse host_unchanged fixture asserts the host's sysctls, modules,
mounts, identity files and cgroup release agents are as before.  The
assertions hold with and without a user namespace."""
import os
import subprocess
import uuid

import pytest

from battery import ROOTLESS, assert_denied, capsa_argv, probe_args, sh, verdict


# --- mounting kernel filesystems elsewhere ----------------------------------------

@pytest.mark.parametrize("fstype,data", [
    ("proc", ""), ("sysfs", ""), ("cgroup", "memory"), ("cgroup", "rdma"), ("cgroup2", ""),
    ("devpts", "newinstance"), ("tmpfs", ""), ("debugfs", ""), ("securityfs", ""), ("bpf", ""),
])
def test_mount_filesystem_elsewhere(attempt, store, box, fstype, data):
    out = attempt("mountfs", fstype, f"/tmp/m-{fstype}", data)
    assert_denied(out, f"mount {fstype}")
    # nothing appeared in the sandbox's mount table either
    assert f"/tmp/m-{fstype}" not in sh(store, box, "cat /proc/self/mountinfo")


def test_bind_mount_of_root(attempt):
    assert_denied(attempt("bindroot", "/tmp/r"))


def test_remount_proc_sys_writable(attempt):
    assert_denied(attempt("remount", "/proc/sys"))


def test_pivot_root(attempt):
    assert_denied(attempt("pivot"))


# --- kernel settings ----------------------------------------------------------------

def test_core_pattern_write(attempt):
    before = open("/proc/sys/kernel/core_pattern", "rb").read()
    v = assert_denied(attempt("write", "/proc/sys/kernel/core_pattern"))
    assert v in ("denied EROFS", "denied EACCES", "denied EPERM"), v
    assert open("/proc/sys/kernel/core_pattern", "rb").read() == before


def test_core_pattern_write_by_shell(store, box):
    out = sh(store, box, "echo '|/tmp/evil %p' > /proc/sys/kernel/core_pattern && echo WROTE; "
                         "cat /proc/sys/kernel/core_pattern")
    assert "WROTE" not in out and "/tmp/evil" not in out


def test_sysrq_trigger_write(store, box):
    # the kernel here may lack /proc/sysrq-trigger; where it exists it is read-only
    out = sh(store, box, "test -e /proc/sysrq-trigger || echo absent; echo h > /proc/sysrq-trigger && echo WROTE")
    assert "WROTE" not in out


@pytest.mark.parametrize("path", ["/proc/sys/kernel/modprobe", "/proc/sys/vm/panic_on_oom",
                                  "/proc/sys/kernel/hostname", "/proc/sys/fs/suid_dumpable"])
def test_proc_sys_write(attempt, path):
    assert_denied(attempt("openw", path), path)


@pytest.mark.parametrize("path", ["/sys/kernel/uevent_helper", "/sys/kernel/mm/transparent_hugepage/enabled",
                                  "/sys/kernel/profiling", "/sys/power/state", "/sys/module/printk/parameters/time"])
def test_sys_kernel_write(attempt, path):
    out = attempt("openw", path)
    assert verdict(out) in ("denied EROFS", "denied EACCES", "denied ENOENT", "denied EPERM"), (path, out)


def test_sys_fs_cgroup_writes(store, box):
    """No file of the sandbox's cgroup tree can be written, no cgroup made,
    no release agent set (the cgroup v1 release_agent escape)."""
    out = sh(store, box, "for f in /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent "
                         "/sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs "
                         "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max "
                         "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do "
                         "  test -e $f || continue; echo checked $f; "
                         "  (echo 1 >> $f) 2>/dev/null && echo WROTE $f; done; "
                         "mkdir /sys/fs/cgroup/memory/evil 2>/dev/null && echo MADE; "
                         "mkdir /sys/fs/cgroup/evil 2>/dev/null && echo MADE; true")
    if ROOTLESS and not cgroup_mounted(store, box):
        # rootless without a delegated cgroup v2 subtree: the sandbox has no
        # cgroup of its own, and no cgroup filesystem is mounted in it, so
        # there is no file to try; the mkdirs above still must fail
        assert sh(store, box, "ls -A /sys/fs/cgroup") == "", out
    else:
        assert "checked" in out, out
    assert "WROTE" not in out and "MADE" not in out, out


def cgroup_mounted(store, box):
    return any(line.split(" - ")[1].startswith("cgroup")
               for line in sh(store, box, "cat /proc/self/mountinfo").splitlines())


def test_cgroup_v1_release_agent_via_new_mount(attempt):
    """The classic escape mounts a v1 hierarchy to reach release_agent."""
    assert_denied(attempt("mountfs", "cgroup", "/tmp/rdma", "rdma"))


# --- devices ------------------------------------------------------------------------

def host_root_device():
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


def test_host_root_block_device(attempt):
    maj, mino = host_root_device()
    out = attempt("dev", "b", maj, mino)
    assert_denied(out, f"block device {maj}:{mino}")


@pytest.mark.parametrize("name,kind,maj,mino", [
    ("sda", "b", 8, 0), ("nvme0n1", "b", 259, 0), ("loop0", "b", 7, 0), ("kmsg", "c", 1, 11),
    ("mem", "c", 1, 1), ("kmem", "c", 1, 2), ("port", "c", 1, 4), ("tty0", "c", 4, 0), ("fuse", "c", 10, 229),
    ("loop-control", "c", 10, 237),
])
def test_mknod_and_open_device(attempt, name, kind, maj, mino):
    """CAP_MKNOD is in the default set, so the node may be made; opening it
    must fail (cgroup device rules)."""
    assert_denied(attempt("dev", kind, maj, mino), name)


def test_dev_has_no_host_devices(store, box):
    out = sh(store, box, "ls /dev")
    for dev in ("kmsg", "mem", "sda", "vda", "nvme0n1", "loop0", "tty0", "console0"):
        assert dev not in out.split(), dev


# --- kernel code and machine state ---------------------------------------------------

@pytest.mark.parametrize("what", ["init_module", "finit_module", "delete_module", "kexec", "kexec_file",
                                  "reboot", "swapon", "acct", "settime", "sethostname"])
def test_privileged_syscall(attempt, what):
    assert_denied(attempt(what), what)


@pytest.mark.parametrize("what", ["fsopen", "open_tree"])
def test_new_mount_api(attempt, what):
    """fsopen/fsmount and open_tree/move_mount, the mount API beside mount(2)."""
    assert_denied(attempt(what), what)


@pytest.mark.parametrize("what", ["sched_fifo", "ioprio_rt"])
def test_realtime_priority(attempt, what):
    """A realtime scheduling or I/O class would let a sandbox starve the host."""
    assert_denied(attempt(what), what)


def test_kernel_log_read(attempt):
    assert_denied(attempt("syslog"), "syslog(READ_ALL)")


# a device of the host's that no sandbox owns; "change" makes the kernel send a
# uevent for it and nothing else (no device is added, removed or reset)
UEVENT_DEVICE = "/sys/devices/virtual/mem/zero/uevent"


@pytest.mark.skipif(not os.access(UEVENT_DEVICE, os.W_OK), reason="cannot make a host uevent here")
def test_host_uevents_not_received(store, box):
    """The kernel broadcasts device events to every network namespace the
    initial user namespace owns, the sandbox's included: a uevent netlink
    socket is refused (seccomp), so a host event made while the probe
    listens never reaches it.  The event is synthetic, marked with a uuid
    (SYNTH_UUID), and queued before the host's write returns."""
    mark = str(uuid.uuid4())
    p = subprocess.Popen(capsa_argv(store, "exec", "-i", box, *probe_args("uevent", mark)), env=store.env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert first.startswith("listening "), first + p.stderr.read()
        with open(UEVENT_DEVICE, "w") as f:
            f.write(f"change {mark}")
        out, err = p.communicate("go\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = first + out
    assert "event " not in out, out
    assert first.strip() == "listening 0", out
    assert verdict(out) == "denied EPERM", out + err


def test_oom_score_adj_lowered(store, box):
    """A sandbox must not make itself the last process the OOM killer picks."""
    out = sh(store, box, "echo -1000 > /proc/self/oom_score_adj && echo LOWERED; cat /proc/self/oom_score_adj")
    assert "LOWERED" not in out, out


@pytest.mark.parametrize("what", ["keyctl", "add_key", "bpf", "perf", "userfaultfd", "io_uring"])
def test_dangerous_kernel_interface(attempt, what):
    """Blocked by the seccomp profile (docker's default set)."""
    assert_denied(attempt(what), what)


def test_open_by_handle_at_shocker(attempt):
    assert_denied(attempt("shocker"), "open_by_handle_at")


def test_kernel_info_masked(store, box):
    out = sh(store, box, "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do "
                         "test -e $f && wc -c < $f; done; ls /sys/firmware | wc -l")
    assert all(x.strip() == "0" for x in out.split()), out


DEBIAN_PROBES = ["mountfs proc /tmp/p", "mountfs sysfs /tmp/s", "mountfs cgroup2 /tmp/c", "bindroot /tmp/r",
                 "init_module", "finit_module", "kexec", "reboot", "shocker", "keyctl", "add_key", "bpf", "perf",
                 "userfaultfd", "io_uring", "ptrace1", "vm_readv1", "mem1", "memfd_exe1", "unshare user",
                 "unshare mnt", "userns_regain", "setns_all", "dev b 8 0", "dev c 1 11", "sethostname", "settime"]


def test_attempts_from_debian(store, debbox):
    """The same attempts from a Debian root filesystem (glibc, util-linux,
    a full /etc): nothing about the image changes the outcome."""
    script = "; ".join(f"echo \"== {p}\"; /probe/capsa-probe {p}" for p in DEBIAN_PROBES)
    out = sh(store, debbox, script)
    for part in out.split("== ")[1:]:
        what, _, rest = part.partition("\n")
        assert_denied(rest, what)
    assert out.count("== ") == len(DEBIAN_PROBES)
