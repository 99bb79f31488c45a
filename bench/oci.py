#!/usr/bin/python3
"""bench/oci.py: capsa-runc against crun and runc on the same bundle, and
under podman.  A benchmark, not a test: prints medians and ratios.

1. `RUNTIME run` of /bin/true (create + start + wait + delete in one call)
   on one busybox bundle with `runc spec`'s config, RUNS times each,
   interleaved so drift hits all alike.
2. The same lifecycle as engines drive it, one process per step:
   create, start, wait for exit, delete.
3. `podman run --rm --network none busybox true` with --runtime capsa-runc
   and crun (PODMAN_RUNS times each).

Usage: bench/oci.py [--runs N] [--podman-runs N]   (CAPSA_BUILD=build dir)
Needs root, crun, runc, podman (scripts/deps.sh) and tests/images/out.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
BUILD = os.environ.get("CAPSA_BUILD", os.path.join(REPO, "build"))
os.environ.setdefault("CAPSA_BUILD", BUILD)
from oci_env import unpack_image  # noqa: E402

IMAGE = os.path.join(REPO, "tests", "images", "out", "busybox-oci.tar")


def bundle(work):
    b = os.path.join(work, "bundle")
    unpack_image(IMAGE, os.path.join(b, "rootfs"))
    subprocess.run(["runc", "spec", "--bundle", b], check=True)
    with open(os.path.join(b, "config.json")) as f:
        c = json.load(f)
    c["process"]["terminal"] = False
    c["process"]["args"] = ["/bin/true"]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(c, f)
    return b


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def run_once(rt, root, b, cid):
    subprocess.run([rt, "--root", root, "run", "--bundle", b, cid], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)


def lifecycle_once(rt, root, b, cid):
    """create, start, wait until stopped, delete: four processes, as engines call them."""
    def call(*a):
        subprocess.run([rt, "--root", root, *a], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    call("create", "--bundle", b, cid)
    call("start", cid)
    while True:
        p = subprocess.run([rt, "--root", root, "state", cid], capture_output=True, text=True, check=True)
        if json.loads(p.stdout)["status"] == "stopped":
            break
        time.sleep(0.0005)
    call("delete", cid)


def report(title, res, base_names):
    print(f"\n{title}")
    med = {k: statistics.median(v) * 1000 for k, v in res.items()}
    for k, m in med.items():
        print(f"  {k:<34} median {m:7.2f} ms   (min {min(res[k]) * 1000:6.2f}, max {max(res[k]) * 1000:6.2f})")
    for a, b in base_names:
        if a in med and b in med:
            print(f"  ratio {a} / {b}: {med[a] / med[b]:.2f}x")
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--podman-runs", type=int, default=15)
    a = ap.parse_args()
    capsa = os.path.join(BUILD, "capsa-runc")
    runtimes = {"capsa-runc": capsa, "crun": shutil.which("crun"), "runc": shutil.which("runc")}
    missing = [k for k, v in runtimes.items() if not v]
    if missing:
        sys.exit(f"missing: {missing} (scripts/deps.sh)")
    work = tempfile.mkdtemp(prefix="capsa-bench-oci-")
    try:
        b = bundle(work)
        roots = {k: os.path.join(work, "state-" + k) for k in runtimes}
        for k, rt in runtimes.items():  # warm up caches
            run_once(rt, roots[k], b, "warm")
        res = {k: [] for k in runtimes}
        for i in range(a.runs):
            for k, rt in runtimes.items():
                res[k].append(timed(lambda: run_once(rt, roots[k], b, f"r{i}")))
        pairs = [("capsa-runc", "crun"), ("capsa-runc", "runc")]
        report(f"RUNTIME run /bin/true (create+start+wait+delete in one call), {a.runs} runs", res, pairs)
        res = {k: [] for k in runtimes}
        for i in range(a.runs):
            for k, rt in runtimes.items():
                res[k].append(timed(lambda: lifecycle_once(rt, roots[k], b, f"l{i}")))
        report(f"create, start, state until stopped, delete (separate calls), {a.runs} runs", res, pairs)
        if shutil.which("podman"):
            pd = os.path.join(work, "podman")
            os.makedirs(pd)
            conf = os.path.join(pd, "containers.conf")
            with open(conf, "w") as f:
                f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
            env = dict(os.environ, CONTAINERS_CONF=conf)
            base = ["podman", "--root", os.path.join(pd, "root"), "--runroot", os.path.join(pd, "runroot"),
                    "--storage-driver", "overlay"]
            subprocess.run(base + ["load", "-q", "-i", IMAGE], check=True, env=env, stdout=subprocess.DEVNULL)
            pres = {"podman + capsa-runc": [], "podman + crun": []}
            rts = {"podman + capsa-runc": capsa, "podman + crun": runtimes["crun"]}
            for k, rt in rts.items():
                subprocess.run(base + ["--runtime", rt, "run", "--rm", "--network", "none", "busybox", "true"],
                               check=True, env=env)
            for _ in range(a.podman_runs):
                for k, rt in rts.items():
                    pres[k].append(timed(lambda: subprocess.run(
                        base + ["--runtime", rt, "run", "--rm", "--network", "none", "busybox", "true"],
                        check=True, env=env)))
            report(f"podman run --rm --network none busybox true, {a.podman_runs} runs", pres,
                   [("podman + capsa-runc", "podman + crun")])
            subprocess.run(base + ["system", "reset", "-f"], env=env, capture_output=True)
    finally:
        subprocess.run(["umount", "-R", "-l", work], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
