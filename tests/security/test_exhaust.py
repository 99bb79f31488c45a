"""Escape battery, part 5: exhausting shared resources.  An attacker sandbox
takes all the pids, memory, descriptors, inodes or ptys it can; its own
limits must stop it, and while it holds them the host and a neighbour
sandbox keep working (the neighbour's `exec true` succeeds; how long it
takes is measured by bench/neighbour, never asserted here).  Disk
exhaustion belongs to the --disk tests."""
import json
import os
import subprocess
import time

import pytest

from battery import EXTRA, PROBE_DIR, ROOTLESS, capsa_argv, e2e, host_can_fork, probe_args, uniq


@pytest.fixture
def attacker(store):
    """attacker(*opts, cmd=[...]) starts a detached sandbox running cmd and
    removes it afterwards."""
    made = []

    def start(*opts, cmd):
        name = uniq("attacker")
        store.ok("run", "-d", "--name", name, "-v", f"{PROBE_DIR}:/probe:ro", *EXTRA, *opts, "busybox", *cmd)
        made.append(name)
        return name
    yield start
    for n in made:
        store.run("rm", "-f", n, timeout=60)


def wait_for(pred, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout}s")


def logs(store, name):
    return store.run("logs", name).out


def still_fine(store, neighbour):
    assert host_can_fork()
    assert store.run("exec", neighbour, "true", timeout=60).returncode == 0
    assert store.ok("exec", neighbour, "echo", "alive") == "alive\n"
    master, slave = os.openpty()  # the host's terminals are not used up
    os.close(master)
    os.close(slave)


def refused_without_a_cgroup(store, option, value, controller):
    """Rootless with no delegated cgroup v2 subtree: a limit that needs a
    cgroup is refused by name, never silently dropped."""
    store.fail("run", "--rm", option, value, "busybox", "true",
               match=f"{option} needs the {controller} cgroup controller, and in rootless mode")


def test_fork_bomb(store, attacker, neighbour):
    if ROOTLESS:
        return fork_bomb_rootless(store, attacker, neighbour)
    name = attacker("--pids-limit", "64", cmd=["/probe/capsa-probe", "fork", "100000", "hold"])
    wait_for(lambda: "forked" in logs(store, name), "the fork bomb to stop")
    still_fine(store, neighbour)
    # the bomb holds at its limit
    sid = json.loads(store.ok("inspect", name))["id"]
    counters = [os.path.join(d, "pids.current") for d in e2e.capsa_cgroups() if d.endswith(sid)]
    counters = [c for c in counters if os.path.exists(c)]
    assert counters
    for c in counters:
        with open(c) as f:
            assert 32 <= int(f.read()) <= 64


def fork_bomb_rootless(store, attacker, neighbour):
    """Rootless without a pids controller, --pids-limit is refused; the
    default RLIMIT_NPROC (4096) bounds the bomb instead.  The kernel counts
    it per uid of a user namespace, and each sandbox enters one of its own
    (nested in the user's), so it bounds this sandbox: the neighbour still
    execs, and still forks (docs/rootless.md)."""
    refused_without_a_cgroup(store, "--pids-limit", "64", "pids")
    name = attacker(cmd=["/probe/capsa-probe", "fork", "100000", "hold"])
    wait_for(lambda: "forked" in logs(store, name), "the fork bomb to stop", timeout=120)
    forked = int(logs(store, name).split("forked")[1].split()[0])
    assert forked < 4096, forked
    # every task of the user's (threads too, as the kernel counts them);
    # the supervisors and agents fork above the limit, a handful each
    assert store.tasks() <= 4096 + 64, store.tasks()
    still_fine(store, neighbour)
    assert store.ok("exec", neighbour, "sh", "-c", "sleep 0 & wait; echo forked") == "forked\n"


def test_memory_hog(store, attacker, neighbour):
    if ROOTLESS:
        # no memory controller: --memory is refused, and a sandbox has no
        # memory bound of its own; RLIMIT_AS is what bounds a process
        refused_without_a_cgroup(store, "--memory", "64m", "memory")
        name = attacker("--ulimit", "as=268435456", cmd=["sh", "-c", "while :; do /probe/capsa-probe alloc 500; done"])
        time.sleep(2)
        still_fine(store, neighbour)
        assert "ok" not in logs(store, name).split()
        return
    name = attacker("--memory", "64m", cmd=["sh", "-c", "while :; do /probe/capsa-probe alloc 500; done"])
    time.sleep(2)
    still_fine(store, neighbour)
    # the hog never got its 500 MiB: every try was killed
    assert "ok" not in logs(store, name).split()


def test_fd_exhaustion(store, attacker, neighbour):
    name = attacker(cmd=["/probe/capsa-probe", "fds", "100000000", "hold"])
    wait_for(lambda: "opened" in logs(store, name), "the fd hog to stop")
    opened = int(logs(store, name).split("opened")[1].split()[0])
    assert opened < 1 << 21  # RLIMIT_NOFILE, not the host's file table
    with open("/proc/sys/fs/file-nr") as f:
        used, _, mx = map(int, f.read().split())
    assert used < mx // 2
    still_fine(store, neighbour)


def test_inode_exhaustion_in_shm(store, attacker, neighbour):
    """Empty files in a tmpfs cost kernel memory, charged to the sandbox;
    rootless without a memory controller, only the tmpfs's own inode
    bound (nr_inodes) stops them."""
    opts = ("--memory", "64m")
    if ROOTLESS:
        refused_without_a_cgroup(store, "--memory", "64m", "memory")
        opts = ()
    name = attacker(*opts, cmd=["/probe/capsa-probe", "inodes", "/dev/shm/x", "3000000", "hold"])
    wait_for(lambda: store.run("inspect", name).out.count('"running"') == 0 or "inodes" in logs(store, name),
             "the inode hog to stop")
    out = logs(store, name)
    assert "inodes 3000000\n" not in out, out
    if ROOTLESS:
        # nothing but nr_inodes (one per KiB of the 64 MiB) stopped it
        made = int(out.split("inodes")[1].split()[0])
        assert made <= 65536 and "stopped" in out, out
    still_fine(store, neighbour)


def test_tmpfs_inodes_are_bounded(store):
    """Every tmpfs of a sandbox has an inode bound of one per KiB of its
    size: kernel memory a memory cgroup would charge, and rootless (or
    root without --memory) has none to charge it to."""
    out = store.ok("run", "--rm", "--tmpfs", "/scratch:size=8m", *EXTRA, "busybox", "sh", "-c",
                   "df -i /dev /dev/shm /scratch | tail -n +2")
    inodes = {line.split()[-1]: int(line.split()[1]) for line in out.splitlines()}
    assert inodes == {"/dev": 65536, "/dev/shm": 65536, "/scratch": 8192}, out


def test_pty_exhaustion(store, attacker, neighbour):
    name = attacker(cmd=["/probe/capsa-probe", "ptys", "100000", "hold"])
    wait_for(lambda: "ptys" in logs(store, name), "the pty hog to stop")
    made = int(logs(store, name).split("ptys")[1].split()[0])
    with open("/proc/sys/kernel/pty/max") as f:
        assert made < int(f.read())
    still_fine(store, neighbour)


def test_pty_exhaustion_leaves_neighbours_their_terminals(store, attacker, neighbour):
    """Each sandbox's devpts is mounted with max=256: the hog stops there,
    far from the kernel's limit, and a neighbour still gets its terminal."""
    name = attacker(cmd=["/probe/capsa-probe", "ptys", "100000", "hold"])
    wait_for(lambda: "ptys" in logs(store, name), "the pty hog to stop")
    made = int(logs(store, name).split("ptys")[1].split()[0])
    assert made <= 256, made
    r = store.run("exec", "-t", neighbour, "true", timeout=60)
    assert r.returncode == 0, r.err


def test_cpu_spin(store, attacker, neighbour):
    opts = ("--cpus", "0.5")
    if ROOTLESS:
        # no cpu controller: the spinner runs unthrottled, at normal priority
        refused_without_a_cgroup(store, "--cpus", "0.5", "cpu")
        opts = ()
    attacker(*opts, cmd=["sh", "-c", "while :; do :; done"])
    time.sleep(1)
    still_fine(store, neighbour)


def test_exec_flood(store, box, neighbour):
    """Many processes started at once through the API in one sandbox."""
    procs = [subprocess.Popen(capsa_argv(store, "exec", box, *probe_args("fork", "50")), env=store.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(16)]
    try:
        still_fine(store, neighbour)
    finally:
        for p in procs:
            p.wait(timeout=120)
