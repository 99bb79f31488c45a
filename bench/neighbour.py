#!/usr/bin/python3
"""bench/neighbour.py: how much a hostile sandbox slows its neighbour.

A neighbour sandbox's `capsa exec ID true` latency is measured idle, then
while an attacker sandbox (with ordinary limits) runs each of the escape
battery's exhaustion attacks: a fork bomb (--pids-limit 64), a memory hog
(--memory 64m, killed and restarted in a loop), a descriptor hog, a pty hog,
a cpu spinner (--cpus 1) and an exec flood (16 clients starting processes
in the attacker).  Prints the median and p90 of each and the ratio of the
median to idle.  Target (issue 7): every ratio under 2x.

A benchmark, not a test: on a shared machine the numbers are noisy; run it
alone for figures worth quoting.

Usage: bench/neighbour.py [--n N]  (CAPSA_BUILD=build dir; run as root)
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("CAPSA_BUILD", os.path.join(REPO, "build"))
CAPSA = os.path.join(BUILD, "capsa")
PROBE_DIR = os.path.join(BUILD, "tests")


def capsa(env, *args, check=True, **kw):
    p = subprocess.run([CAPSA, *map(str, args)], env=env, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        sys.exit(f"capsa {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p


def latencies(env, box, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        capsa(env, "exec", box, "true")
        out.append((time.perf_counter() - t) * 1000)
    return out


ATTACKS = [
    ("fork bomb", ["--pids-limit", "64"], ["/probe/capsa-probe", "fork", "100000", "hold"]),
    ("memory hog", ["--memory", "64m"], ["sh", "-c", "while :; do /probe/capsa-probe alloc 500; done"]),
    ("fd hog", [], ["/probe/capsa-probe", "fds", "100000000", "hold"]),
    ("pty hog", [], ["/probe/capsa-probe", "ptys", "100000", "hold"]),
    ("cpu spin", ["--cpus", "1"], ["sh", "-c", "while :; do :; done"]),
    ("exec flood", [], ["sleep", "100000"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="execs per measurement")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="capsa-bench-neighbour-")
    env = dict(os.environ, CAPSA_DEFAULT_NETWORK="none", CAPSA_ROOT=f"{tmp}/root", CAPSA_RUN_ROOT=f"{tmp}/run",
               CAPSA_CGROUP_PARENT=f"capsa-bench-{os.getpid()}")
    try:
        capsa(env, "image", "import", os.path.join(REPO, "tests/images/out/busybox-oci.tar"),
              "--name", "busybox:latest", timeout=300)
        nb = "neighbour"
        capsa(env, "run", "-d", "--name", nb, "busybox", "sleep", "1000000")
        latencies(env, nb, 10)  # warm
        idle = latencies(env, nb, a.n)
        base = statistics.median(idle)
        print(f"{'idle':<12} median {base:6.2f} ms  p90 {sorted(idle)[int(a.n * 0.9)]:6.2f} ms")
        worst = 0.0
        for name, opts, cmd in ATTACKS:
            att = f"att-{uuid.uuid4().hex[:6]}"
            capsa(env, "run", "-d", "--name", att, "-v", f"{PROBE_DIR}:/probe:ro", *opts, "busybox", *cmd)
            flood = []
            if name == "exec flood":
                flood = [subprocess.Popen([CAPSA, "exec", att, "sh", "-c", "while :; do true; done"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(16)]
            time.sleep(2)
            lat = latencies(env, nb, a.n)
            for p in flood:
                p.kill()
                p.wait()
            capsa(env, "rm", "-f", att, check=False, timeout=60)
            med = statistics.median(lat)
            worst = max(worst, med / base)
            print(f"{name:<12} median {med:6.2f} ms  p90 {sorted(lat)[int(a.n * 0.9)]:6.2f} ms  "
                  f"ratio {med / base:4.2f}x")
        print(f"worst ratio {worst:.2f}x (target < 2x)")
    finally:
        subprocess.run([CAPSA, "rm", "-f", "--all"], env=env, capture_output=True)
        subprocess.run(["umount", "-R", "-l", tmp], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        for h in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", d) for d in os.listdir("/sys/fs/cgroup")]:
            try:
                os.rmdir(os.path.join(h, env["CAPSA_CGROUP_PARENT"]))
            except OSError:
                pass


if __name__ == "__main__":
    main()
