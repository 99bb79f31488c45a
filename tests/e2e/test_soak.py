"""Crash consistency under a random storm: create, exec and remove with the
client or a supervisor killed at random points, then nothing may be left
(processes, mounts, cgroups, loop devices, rows, id blocks, name entries),
and at no check may two live sandboxes share a block of host ids, or a
sandbox run unlisted.

CAPSA_SOAK_ROUNDS (default 300) and CAPSA_SOAK_SEED make long or repeatable
runs: `CAPSA_SOAK_ROUNDS=5000 pytest tests/e2e/test_soak.py`."""
import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import capsa_bin, image_path
from test_lifecycle_races import claims_of, running_sandbox_cgroups

ROUNDS = int(os.environ.get("CAPSA_SOAK_ROUNDS", "300"))
SEED = int(os.environ.get("CAPSA_SOAK_SEED", str(int(time.time()))))
MAX_LIVE = 6


def popen(c, *args):
    return subprocess.Popen([capsa_bin(), *map(str, args)], env=c.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill_after(p, delay):
    time.sleep(delay)
    p.kill()
    p.wait(timeout=60)


def supervisors(c):
    """Pids of this store's supervisors (their lock, fd 4, is in its run root)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("capsa-supervis"):
                    continue
            if os.readlink(f"/proc/{pid}/fd/4").startswith(c.run_root + "/"):
                out.append(int(pid))
        except OSError:
            pass
    return out


def listed(c):
    return c.ok("ps", "-aq").split()


def proc_uids(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return {int(x) for x in line.split()[1:]}
    except OSError:
        pass
    return set()


def check_invariants(c, where):
    """No sandbox runs unlisted; live sandboxes hold distinct blocks, and
    every process of one runs inside its own block."""
    ids = listed(c)
    live = running_sandbox_cgroups(c)
    orphans = {x for x in live if x[:12] not in ids}
    assert not orphans, f"{where}: sandboxes run unlisted: {orphans}"
    blocks = {}
    base = "/sys/fs/cgroup/pids"
    for sid in live:
        p = c.run("inspect", sid)
        if p.returncode != 0:
            continue  # ended and removed since
        ns = c.json("inspect", sid).get("userns")
        if not ns:
            continue
        start = ns["uid"]
        assert start not in blocks, f"{where}: {sid} and {blocks[start]} share the block at {start}"
        blocks[start] = sid
        try:
            with open(os.path.join(base, c.env["CAPSA_CGROUP_PARENT"], sid, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for pid in pids:
            for u in proc_uids(pid):
                assert start <= u < start + ns["size"], f"{where}: pid {pid} of {sid} runs as {u}"


def one_round(c, rng, i):
    ids = listed(c)
    action = rng.choice(["run_d_kill", "run_d_kill", "run_rm_kill", "exec_kill", "kill_sup", "kill_sup_starting", "run_d",
                         "rm_kill", "rm", "run_d", "disk_kill"])
    if len(ids) >= MAX_LIVE:
        action = "rm"
    delay = rng.uniform(0, 0.08)
    if action == "run_d_kill":
        kill_after(popen(c, "run", "-d", "busybox", "sleep", "1000"), delay)
    elif action == "run_d":
        popen(c, "run", "-d", "busybox", "sleep", "1000").wait(timeout=60)
    elif action == "disk_kill":
        kill_after(popen(c, "run", "-d", "--disk", "16m", "busybox", "sleep", "1000"), delay * 2)
    elif action == "run_rm_kill":
        kill_after(popen(c, "run", "--rm", "busybox", "sh", "-c", "sleep 0.05"), delay)
    elif action == "exec_kill" and ids:
        kill_after(popen(c, "exec", rng.choice(ids), "sleep", "1"), delay)
    elif action == "kill_sup":
        sups = supervisors(c)
        if sups:
            os.kill(rng.choice(sups), signal.SIGKILL)
    elif action == "kill_sup_starting":
        p = popen(c, "run", "-d", "busybox", "sleep", "1000")
        time.sleep(delay)
        sups = supervisors(c)
        if sups:
            os.kill(max(sups), signal.SIGKILL)  # most likely the one starting
        p.wait(timeout=60)
    elif action == "rm_kill" and ids:
        kill_after(popen(c, "rm", "-f", rng.choice(ids)), delay)
    elif action == "rm" and ids:
        c.run("rm", "-f", rng.choice(ids))


@pytest.mark.slow
def test_crash_consistency_soak(capsa):
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    rng = random.Random(SEED)
    print(f"soak: {ROUNDS} rounds, seed {SEED} (CAPSA_SOAK_SEED={SEED} repeats it)")
    try:
        for i in range(ROUNDS):
            one_round(capsa, rng, i)
            if i % 20 == 19:
                check_invariants(capsa, f"seed {SEED} round {i}")
                print(f"round {i}: {len(listed(capsa))} sandboxes, {len(running_sandbox_cgroups(capsa))} running")
        check_invariants(capsa, f"seed {SEED} end")
    finally:
        for sid in listed(capsa):
            capsa.run("rm", "-f", sid)
    # a creator killed before its row leaves a runtime directory that the
    # next command's reconciliation removes once it is not fresh
    time.sleep(2.1)
    assert listed(capsa) == [], f"seed {SEED}: sandboxes left after rm -f of all"
    capsa.assert_clean()
    db = sqlite3.connect(os.path.join(capsa.root, "capsa.db"))
    for table in ("sandboxes", "userns_ranges", "sandbox_layers"):
        n = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert n == 0, f"seed {SEED}: {n} rows left in {table}"
    db.close()
    assert not claims_of(capsa.root), f"seed {SEED}: id block claims left"
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert capsa.root not in loops, f"seed {SEED}: loop devices left: {loops}"
    assert not supervisors(capsa)
