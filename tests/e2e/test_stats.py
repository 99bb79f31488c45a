"""capsa stats and the metrics registry (docs/metrics.md): what a sandbox
does shows up in its sample (CPU, memory, processes, tunnel bytes), the
JSON shape, the slot's release at rm and after a supervisor is killed, and
bad input (unknown sandbox, corrupt registry).  Conditions are polled with
deadlines; no timing is asserted.
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import metrics_reg
from conftest import capsa_bin

KEYS = {"id", "name", "running", "sampledAt", "cpuPercent", "cpuUsageNs", "memoryUsage", "memoryCharged",
        "memoryLimit", "memoryPercent", "memoryPeak", "pids", "pidsLimit", "blockRead", "blockWrite", "netRx",
        "netTx", "diskOwn", "diskUsed", "diskLimit", "oomKills", "paused", "slot", "generation", "cgroup"}


def uniq(prefix="st"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stats(c, *names):
    out = c.ok("stats", "--no-stream", "--json", *names)
    return [json.loads(line) for line in out.splitlines()]


def wait_stat(c, name, cond, what, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        [last] = stats(c, name)
        if last["running"] and cond(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: last sample {last}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_stats_cpu_pids_and_json_shape(store):
    name = uniq()
    sid = store.ok("run", "-d", "--name", name, "--pids-limit", "50", "busybox", "sh", "-c",
                   "sleep 1000 & while :; do :; done").strip()
    try:
        s = wait_stat(store, name, lambda s: s["cpuPercent"] > 20 and s["pids"] >= 3, "a busy loop's CPU")
        assert set(s) == KEYS, set(s) ^ KEYS
        assert s["id"] == sid and s["name"] == name
        assert s["pidsLimit"] == 50
        assert s["cpuUsageNs"] > 0
        assert s["memoryLimit"] is None and s["diskLimit"] is None and s["diskOwn"] is False
        assert isinstance(s["slot"], int) and s["generation"] >= 1
        # the table: one header, one row naming the sandbox with its CPU
        out = store.ok("stats", "--no-stream", name).splitlines()
        assert out[0].split()[:3] == ["SANDBOX", "ID", "NAME"] and "CPU %" in out[0] and "DISK" in out[0]
        assert len(out) == 2 and out[1].startswith(sid[:12]) and name in out[1]
        assert float(out[1].split()[2].rstrip("%")) > 0
        # without names: every running sandbox, this one among them
        assert name in [x["name"] for x in stats(store)]
    finally:
        store.ok("rm", "-f", name)


def test_stats_memory_matches_allocation(store):
    name = uniq()
    # 48 MB of tmpfs pages are charged to the sandbox and are not page cache
    store.ok("run", "-d", "--name", name, "--memory", "256m", "busybox", "sh", "-c",
             "head -c 48000000 /dev/zero > /dev/shm/fill; sleep 1000")
    try:
        s = wait_stat(store, name, lambda s: s["memoryUsage"] >= 48000000, "48 MB in /dev/shm")
        assert s["memoryLimit"] == 256 << 20
        assert s["memoryUsage"] < 256 << 20
        assert 17 < s["memoryPercent"] < 100
        row = store.ok("stats", "--no-stream", name).splitlines()[1]
        assert "/ 256MiB" in row, row
    finally:
        store.ok("rm", "-f", name)


def test_stats_tunnel_bytes(store):
    name = uniq()
    port = free_port()
    store.ok("run", "-d", "--name", name, "-p", f"{port}:8080", "busybox", "sh", "-c",
             "mkdir /www && head -c 200000 /dev/zero > /www/f && httpd -f -p 8080 -h /www")
    try:
        deadline = time.time() + 30
        body = None
        while body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/f", timeout=10).read()
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert len(body) == 200000
        s = wait_stat(store, name, lambda s: s["netTx"] >= 200000 and s["netRx"] > 0, "tunnel bytes")
        assert s["netRx"] < 100000  # the requests only
    finally:
        store.ok("rm", "-f", name)


def test_stats_slot_released_after_rm(store):
    name = uniq()
    sid = store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000").strip()
    [s] = stats(store, name)
    slot = metrics_reg.slot_of(store.run_root, sid)
    assert slot and slot["locked"] and slot["slot"] == s["slot"] and slot["generation"] == s["generation"]
    store.ok("rm", "-f", name)
    after = metrics_reg.read(store.run_root)["slots"][s["slot"]]
    assert not (after["state"] == 1 and after["id"] == sid), after
    assert metrics_reg.slot_of(store.run_root, sid) is None
    store.fail("stats", "--no-stream", name, match=name)


def test_stats_killed_supervisor_is_not_live(store):
    name = uniq()
    sid = store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000").strip()
    slot = metrics_reg.slot_of(store.run_root, sid)
    assert slot and slot["locked"]
    pid = slot["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
        time.sleep(0.05)
    # the slot still says live, but nobody holds it: no reader takes it for live
    raw = metrics_reg.read(store.run_root)["slots"][slot["slot"]]
    assert not raw["locked"]
    assert sid not in [x["id"] for x in metrics_reg.live_slots(store.run_root)]
    [s] = stats(store, "-a", name)
    assert s["running"] is False and "cpuPercent" not in s
    # the slot is taken again by the next sandbox, with a new generation
    other = uniq()
    oid = store.ok("run", "-d", "--name", other, "busybox", "sleep", "1000").strip()
    try:
        reused = metrics_reg.slot_of(store.run_root, oid)
        assert reused and reused["locked"]
        if reused["slot"] == slot["slot"]:
            assert reused["generation"] > slot["generation"]
    finally:
        store.ok("rm", "-f", name, other)


def test_stats_stream_refreshes(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    p = subprocess.Popen([capsa_bin(), "stats", "--json", name], stdout=subprocess.PIPE, env=store.env)
    try:
        samples = set()
        deadline = time.time() + 30
        while len(samples) < 2 and time.time() < deadline:
            line = p.stdout.readline()
            assert line, "stats stream ended"
            s = json.loads(line)
            assert s["name"] == name
            samples.add(s["sampledAt"])
        assert len(samples) >= 2, "the stream showed one sample only"
    finally:
        p.kill()
        p.wait()
        store.ok("rm", "-f", name)


def test_stats_bad_input(capsa, store):
    store.fail("stats", "--no-stream", "no-such-sandbox-xyz", match="no-such-sandbox-xyz")
    store.fail("stats", "--bogus", match="unknown option")
    # a runtime root where nothing ran yet: no registry, an empty table
    out = capsa.ok("stats", "--no-stream").splitlines()
    assert len(out) == 1 and out[0].startswith("SANDBOX ID")
    # a corrupt registry: stats names it and the reason; sandboxes still run
    os.makedirs(capsa.run_root, exist_ok=True)
    reg = os.path.join(capsa.run_root, "metrics")
    with open(reg, "wb") as f:
        f.write(b"not a registry" * 100)
    capsa.fail("stats", "--no-stream", match=reg)
    err = capsa.fail("stats", "--no-stream", "--json", match="bad magic")
    assert err.count("\n") == 1
    capsa.ok("image", "import", os.path.join(os.path.dirname(__file__), "..", "images", "out", "busybox-oci.tar"),
             "--name", "busybox:latest", timeout=300)
    assert capsa.ok("run", "--rm", "busybox", "echo", "still runs") == "still runs\n"
    # truncated: the header promises more slots than the file holds
    with open(reg, "r+b") as f:
        f.truncate(0)
    capsa.fail("stats", "--no-stream", match="truncated")
    os.unlink(reg)
