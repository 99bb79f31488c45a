#!/usr/bin/python3
"""bench/stats.py: `capsa stats --no-stream` over N running sandboxes against
`podman stats --no-stream` over N running containers.

  bench/stats.py [--sandboxes N] [--podman N] [--runs R] [--build DIR]

capsa reads the metrics registry (docs/metrics.md): one mapping, no
supervisor asked.  podman reads every container's cgroup on demand (and
waits for a second sample for CPU %).  Also measured: what the sampling
costs, as CPU time of all the supervisors over a 10 s window.
Prints medians.  A benchmark, not a test: nothing is asserted.  Needs root
and tests/images/out/busybox-oci.tar; podman is skipped when absent.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
IMAGE = os.path.join(REPO, "tests", "images", "out", "busybox-oci.tar")
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import metrics_reg  # noqa: E402


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, **kw)


def timed(args, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, env=env)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"{args}: exit {p.returncode}: {p.stderr.decode()[-400:]}")
    return dt, p.stdout.decode()


def cpu_ns(pids):
    """CPU time of the processes (schedstat: ns, not clock ticks)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def bench_capsa(a, work):
    capsa = os.path.join(a.build, "capsa")
    env = dict(os.environ, CAPSA_DEFAULT_NETWORK="none", CAPSA_ROOT=os.path.join(work, "root"), CAPSA_RUN_ROOT=os.path.join(work, "run"),
               CAPSA_CGROUP_PARENT="capsa-bench-stats")
    sh(capsa, "image", "import", IMAGE, "--name", "busybox", env=env)
    t0 = time.perf_counter()
    for i in range(a.sandboxes):
        sh(capsa, "run", "-d", "--name", f"s{i}", "busybox", "sleep", "100000", env=env)
    print(f"started {a.sandboxes} sandboxes in {time.perf_counter() - t0:.1f} s")
    run_root = env["CAPSA_RUN_ROOT"]
    while len(metrics_reg.live_slots(run_root)) < a.sandboxes:
        time.sleep(0.2)
    res = {"capsa stats --no-stream": [], "capsa stats --no-stream --json": []}
    for _ in range(a.runs):
        dt, out = timed([capsa, "stats", "--no-stream"], env)
        assert len(out.splitlines()) == a.sandboxes + 1, out[-300:]
        res["capsa stats --no-stream"].append(dt)
        res["capsa stats --no-stream --json"].append(timed([capsa, "stats", "--no-stream", "--json"], env)[0])
    # the sampling: every supervisor's CPU time over a window
    sups = [s["supervisor_pid"] for s in metrics_reg.live_slots(run_root)]
    c0 = cpu_ns(sups)
    time.sleep(10)
    used = (cpu_ns(sups) - c0) / 1e9
    print(f"supervisors' CPU over 10 s with {len(sups)} sandboxes: {used * 1000:.0f} ms "
          f"({used * 1e6 / 10 / len(sups):.0f} µs per sandbox per second, sampling included)")
    subprocess.run([capsa, "rm", "-f", "--all"], env=env, capture_output=True)
    return res


def bench_podman(a, work):
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n')
    env = dict(os.environ, CONTAINERS_CONF=conf)
    base = ["podman", "--root", os.path.join(work, "podman-root"), "--runroot", os.path.join(work, "podman-run"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    sh(*base, "load", "-q", "-i", IMAGE, env=env)
    img = sh(*base, "images", "-q", env=env).stdout.decode().split()[0]
    t0 = time.perf_counter()
    try:
        for i in range(a.podman):
            sh(*base, "run", "-d", "--network", "none", "--name", f"p{i}", img, "sleep", "100000", env=env)
        print(f"started {a.podman} podman containers in {time.perf_counter() - t0:.1f} s")
        res = {"podman stats --no-stream": []}
        for _ in range(max(3, a.runs // 4)):
            dt, out = timed([*base, "stats", "--no-stream"], env)
            assert len(out.splitlines()) == a.podman + 1, out[-300:]
            res["podman stats --no-stream"].append(dt)
        return res
    finally:
        subprocess.run([*base, "rm", "-f", "-a", "-t", "0"], env=env, capture_output=True)
        subprocess.run([*base, "system", "reset", "-f"], env=env, capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sandboxes", type=int, default=100)
    ap.add_argument("--podman", type=int, default=100, help="containers for podman (0: skip)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--build", default=os.environ.get("CAPSA_BUILD", os.path.join(REPO, "build")))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/stats.py: needs root")
    work = tempfile.mkdtemp(prefix="capsa-bench-stats-")
    res = {}
    try:
        res.update(bench_capsa(a, work))
        if a.podman and shutil.which("podman"):
            res.update(bench_podman(a, work))
    finally:
        subprocess.run(["umount", "-R", "-l", work], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'':40} {'median ms':>10} {'min':>8} {'max':>8}  runs")
    for k, v in res.items():
        print(f"{k:40} {statistics.median(v):10.1f} {min(v):8.1f} {max(v):8.1f}  {len(v)}")


if __name__ == "__main__":
    main()
