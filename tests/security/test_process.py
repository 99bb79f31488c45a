"""Escape battery, part 2: the agent (PID 1), the runtime's binaries, /proc
tricks, namespaces and descriptors, the terminal.  Every attempt runs as
root inside the sandbox and must fail; the host must be unchanged."""
import hashlib
import json
import os
import stat
import sys
import uuid

import pytest

from battery import BUILD, assert_denied, capsa_argv, probe_args, sh

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from ptyterm import Term  # noqa: E402


@pytest.fixture
def host_marker():
    """A file only the host can see; an escape would find it."""
    d = f"/var/tmp/capsa-sec-{uuid.uuid4().hex[:12]}"
    os.makedirs(d)
    with open(os.path.join(d, "host-only"), "w") as f:
        f.write("host secret\n")
    yield os.path.join(d, "host-only")
    os.unlink(os.path.join(d, "host-only"))
    os.rmdir(d)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def agent_pid(store, box):
    sup = json.loads(store.ok("inspect", box))["supervisorPid"]
    with open(f"/proc/{sup}/task/{sup}/children") as f:
        kids = f.read().split()
    for k in kids:
        with open(f"/proc/{k}/comm") as f:
            if f.read().startswith("memfd:capsa"):
                return int(k)
    pytest.fail(f"no agent among the supervisor's children {kids}")


# --- the agent -----------------------------------------------------------------------

@pytest.mark.parametrize("what", ["ptrace1", "vm_readv1", "mem1", "pidfd_getfd1"])
def test_agent_memory(attempt, what):
    """ptrace, process_vm_readv, /proc/1/mem of the agent, and stealing its
    descriptors with pidfd_getfd."""
    assert_denied(attempt(what), what)


def test_agent_is_not_dumpable(store, box):
    out = sh(store, box, "ls /proc/1/fd 2>&1 >/dev/null | head -1; cat /proc/1/environ 2>&1 | head -c 80; "
                         "readlink /proc/1/cwd || echo nocwd")
    assert "Permission denied" in out and "nocwd" in out, out


@pytest.mark.parametrize("target", ["/proc/self/exe", "/proc/1/exe"])
def test_overwrite_runtime_binary(attempt, store, box, target):
    """runc CVE-2019-5736: writing the binary of the process itself (busybox)
    or of the agent (a sealed memfd) through /proc/*/exe.  Rootless, the
    binaries are the user's own (store.bin), as in a user's install."""
    bins = [os.path.join(getattr(store, "bin", BUILD), b) for b in ("capsa-agent", "capsa-supervisor", "capsa")]
    before = {b: sha(b) for b in bins if os.path.exists(b)}
    assert_denied(attempt("exe_write", target), target)
    assert_denied(attempt("memfd_exe1"), "agent memfd")
    assert {b: sha(b) for b in before} == before
    assert sh(store, box, "echo still-works") == "still-works\n"


def test_agent_memfd_is_sealed(store, box):
    """Even a process that holds the agent's memfd cannot change it: the
    host sees the seals on PID 1's executable."""
    pid = agent_pid(store, box)
    with open(f"/proc/{pid}/exe", "rb") as f:
        import fcntl
        seals = fcntl.fcntl(f.fileno(), 1034)  # F_GET_SEALS
    for bit, name in ((1, "seal"), (2, "shrink"), (4, "grow"), (8, "write")):
        assert seals & bit, f"agent memfd lacks F_SEAL_{name.upper()}"


# --- /proc tricks and chroot --------------------------------------------------------------

def test_proc_1_root_stays_inside(store, box, host_marker):
    out = sh(store, box, f"cat /proc/1/root{host_marker} 2>&1; ls /proc/1/root/../../../.. 2>&1; "
                         f"cat /proc/1/root/../../..{host_marker} 2>&1; readlink /proc/1/root")
    assert "host secret" not in out, out


def test_proc_pid_cwd_stays_inside(store, box, host_marker):
    out = sh(store, box, "sleep 30 & p=$!; cd /proc/$p/cwd/../../../.. && "
                         f"(cat .{host_marker} 2>&1; cat /proc/$p/cwd/../../..{host_marker} 2>&1; "
                         "cat /proc/self/root/../..{host_marker} 2>&1); kill $p")
    assert "host secret" not in out, out


def test_chroot_breakout(attempt, host_marker):
    """CAP_SYS_CHROOT is in the default set; after pivot_root the old root is
    gone, so climbing out of a nested chroot ends at the sandbox root."""
    out = attempt("chroot_escape", host_marker)
    assert "host path visible" not in out
    assert_denied(out)


# --- namespaces ----------------------------------------------------------------------------

@pytest.mark.parametrize("ns", ["user", "mnt", "net", "pid", "uts", "ipc", "cgroup", "time"])
def test_unshare(attempt, ns):
    assert_denied(attempt("unshare", ns), ns)


def test_unshare_user_to_regain_capabilities(attempt):
    out = attempt("userns_regain")
    assert "sethostname worked" not in out
    assert_denied(out)


def test_unshare_command_debian(store, debbox):
    """util-linux's unshare(1), as an attacker would type it."""
    out = sh(store, debbox, "unshare -Urm sh -c 'mount -t tmpfs x /mnt && echo MOUNTED' 2>&1; "
                            "unshare -U --map-root-user grep CapEff /proc/self/status 2>&1; echo done")
    assert "MOUNTED" not in out and "CapEff" not in out, out
    assert "Operation not permitted" in out, out


def test_setns_through_leaked_fds(attempt):
    """Every descriptor an exec'd process holds, and PID 1's namespace files:
    none joins anything."""
    out = attempt("setns_all")
    assert "worked" not in out, out
    assert_denied(out)


# --- leaked descriptors ------------------------------------------------------------------------

def fd_lines(out):
    return [line.split(None, 2) for line in out.splitlines() if line.startswith("fd ")]


def test_exec_process_holds_only_stdio(attempt):
    out = attempt("fdlinks", "self")
    fds = {int(f[1]): f[2] for f in fd_lines(out)}
    # 0-2 and the directory the probe itself is reading
    assert set(fds) == {0, 1, 2, 3}, out
    assert fds[3].startswith("/proc/"), out


def test_first_process_holds_only_stdio(store):
    out = store.ok("run", "--rm", "-v", f"{os.path.join(BUILD, 'tests')}:/probe:ro", "busybox",
                   *probe_args("fdlinks", "self"))
    assert {int(f[1]) for f in fd_lines(out)} == {0, 1, 2, 3}, out


def test_agent_fds_inside_and_from_the_host(attempt, store, box):
    """PID 1's descriptors: unreadable from inside; seen from the host, only
    /dev/null, pipes, sockets, anonymous inodes and the sandbox's own root."""
    out = attempt("fdlinks", "1")
    for f in fd_lines(out):
        assert f[2] == "?", out
    pid = agent_pid(store, box)
    root = os.stat(f"/proc/{pid}/root")
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
        if link.startswith(("pipe:", "socket:", "anon_inode:")) or link == "/dev/null":
            continue
        st = os.stat(f"/proc/{pid}/fd/{fd}")
        assert stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino), \
            f"agent fd {fd} -> {link} is not the sandbox's own"


# --- the terminal ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["exec", "run"])
def test_tiocsti_from_exec_it(store, box, how):
    """Keystrokes pushed with TIOCSTI land in the sandbox's own pty, never
    in the user's terminal: no descriptor of the host's terminal is inside."""
    if how == "exec":
        args = ["exec", "-it", box, *probe_args("tiocsti")]
    else:
        args = ["run", "--rm", "-it", "-v", f"{os.path.join(BUILD, 'tests')}:/probe:ro", "busybox",
                *probe_args("tiocsti")]
    argv = capsa_argv(store, *args)
    t = Term(argv[0], argv[1:], store.env)
    try:
        out = t.expect(r"(?s).*?(ok|denied \w+)\r*\n", timeout=30).group(0).decode(errors="replace")
        assert t.wait(timeout=30) == 0
        assert "own-pts" in out and "foreign" not in out, out
        # nothing was queued as input on the host's terminal
        import fcntl
        import struct
        import termios
        pending = struct.unpack("i", fcntl.ioctl(t.slave, termios.FIONREAD, b"\0\0\0\0"))[0]
        assert pending == 0
    finally:
        t.close()


def test_tioclinux_from_exec_it(store, box):
    argv = capsa_argv(store, "exec", "-it", box, *probe_args("tioclinux"))
    t = Term(argv[0], argv[1:], store.env)
    try:
        out = t.expect(r"(ok|denied \w+)\r*\n", timeout=30).group(0).decode(errors="replace")
        t.wait(timeout=30)
        assert out.startswith("denied"), out
    finally:
        t.close()


def test_capabilities_are_docker_defaults_or_fewer(store, box):
    out = sh(store, box, "grep -E '^Cap(Eff|Bnd|Amb|Inh):' /proc/self/status")
    caps = {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()}
    for k in ("CapEff", "CapBnd"):
        assert caps[k] & ~0xa80425fb == 0, out  # never CAP_SYS_ADMIN, SYS_MODULE, SYS_PTRACE...
    assert caps["CapAmb"] == 0 and caps["CapInh"] == 0


def test_setuid_binary_gains_nothing(store, box):
    """no_new_privs: a setuid copy made inside gives no more than we had."""
    out = sh(store, box, "cp /bin/busybox /tmp/cat && chmod 4755 /tmp/cat && "
                         "/tmp/cat /proc/self/status 2>&1 | grep -E '^(NoNewPrivs|CapEff)'")
    assert "NoNewPrivs:\t1" in out, out
    assert int(out.split("CapEff:")[1].split()[0], 16) & ~0xa80425fb == 0, out
