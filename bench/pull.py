#!/usr/bin/env python3
"""bench/pull.py: `capsa pull` from a local docker-registry against
`capsa image import` of the same image from disk (the unpacking share),
`skopeo copy docker://... oci:DIR` (download and verify only, no unpack) and
plain `curl` fetches of the same blobs (the floor).  A benchmark, not a test:
prints medians and ratios.

Usage: bench/pull.py [--layers N] [--mib M] [--runs R]   (CAPSA_BUILD=build dir)
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from registry_env import Layout, Registry, push  # noqa: E402


def timed(cmd, env=None):
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--mib", type=int, default=48, help="MiB of random data per layer")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    capsa = os.path.join(os.environ.get("CAPSA_BUILD", os.path.join(HERE, "..", "build")), "capsa")
    work = tempfile.mkdtemp(prefix="capsa-bench-pull-")
    try:
        lay = Layout(os.path.join(work, "layout"))
        desc, blobs = lay.image([({f"l{i}/data": os.urandom(a.mib << 20)}, "gzip") for i in range(a.layers)])
        lay.tag(desc, "bench")
        lay.save()
        reg = Registry(os.path.join(work, "reg"))
        try:
            ref = f"{reg.host}/bench/img:v1"
            push(lay.path, "bench", ref)
            total = sum(len(b) for b in blobs)
            urls = [f"http://{reg.host}/v2/bench/img/blobs/{d}" for d in
                    [l["digest"] for l in __import__("json").load(
                        open(os.path.join(lay.path, "blobs", "sha256", desc["digest"][7:])))["layers"]]]
            res = {"capsa pull": [], "capsa image import (no network)": [], "skopeo copy (no unpack)": [],
                   "curl, parallel (floor)": []}
            for _ in range(a.runs):
                root = os.path.join(work, "root")
                env = dict(os.environ, CAPSA_ROOT=root, CAPSA_RUN_ROOT=os.path.join(work, "run"))
                res["capsa pull"].append(timed([capsa, "pull", "-q", ref], env))
                shutil.rmtree(root)
                res["capsa image import (no network)"].append(
                    timed([capsa, "image", "import", lay.path, "--name", "bench:x"], env))
                shutil.rmtree(root)
                oci = os.path.join(work, "oci")
                res["skopeo copy (no unpack)"].append(
                    timed(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:x"]))
                shutil.rmtree(oci)
                out = os.path.join(work, "curl")
                os.makedirs(out)
                cmd = ["curl", "-sf", "--parallel", "--parallel-max", "3"]
                for i, u in enumerate(urls):
                    cmd += ["-o", os.path.join(out, str(i)), u]
                res["curl, parallel (floor)"].append(timed(cmd))
                shutil.rmtree(out)
        finally:
            reg.stop()
        print(f"image: {a.layers} layers, {total / (1 << 20):.0f} MiB compressed; {a.runs} runs; medians")
        floor = statistics.median(res["curl, parallel (floor)"])
        for k, v in res.items():
            m = statistics.median(v)
            print(f"  {k:32s} {m * 1000:8.0f} ms  {total / (1 << 20) / m:7.0f} MiB/s  {m / floor:5.2f}x floor")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
