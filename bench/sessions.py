#!/usr/bin/env python3
"""bench/sessions.py: working inside a sandbox, in one run:

  1. exec round trip of `true`: the library (capsa_sandbox_exec, and the
     asynchronous capsa_proc_start) and the CLI (`capsa exec ID true`),
     with its floor (the same busybox spawned on the host: static glibc,
     whose start-up runs cpuid, a trap to the hypervisor on a VM), and the
     round trip of a static musl no-op;
  2. 1,000 sequential small-file (1 KiB) writes + reads through the file API,
     against `podman cp` in and out of a podman container (podman is sampled:
     --podman-n pairs, default 100, and its median is scaled to 1,000);
  3. a 1 GiB `cat` from a sandbox to the host (`capsa exec ID cat FILE`),
     against the same `cat` of the same file on the host into a plain pipe;
  4. 1 GiB over a tunnel (a published port, and capsa_tunnel_open) against a
     direct loopback connection, the same static server on both sides.

A benchmark, not a test: prints medians and ratios.  Targets (issue 4):
exec under 1 ms median via the library; sandbox->host stream and tunnel at
least 0.5x their floors.

Usage: bench/sessions.py [--runs R] [--exec-n N] [--files-n N] [--podman-n N]
       (CAPSA_BUILD=build dir; run as root; podman optional)
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
BUILD = os.path.abspath(os.environ.get("CAPSA_BUILD", os.path.join(REPO, "build")))
IMAGE = os.path.join(REPO, "tests", "images", "out", "busybox-oci.tar")
GIB = 1 << 30


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, **kw).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rate(line):
    """'bytes seconds MB/s' -> seconds"""
    b, s, _ = line.split()
    assert int(b) == GIB, line
    return float(s)


def med(v):
    return statistics.median(v)


def podman_files(work, n):
    if not shutil.which("podman"):
        return None
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n')
    env = dict(os.environ, CONTAINERS_CONF=conf)
    pm = ["podman", "--root", os.path.join(work, "podman-root"), "--runroot", os.path.join(work, "podman-run")]
    try:
        out = run(pm + ["load", "-i", IMAGE], env)
        img = out.strip().split()[-1]
        run(pm + ["run", "-d", "--name", "bench", "--network", "none", img, "sleep", "100000"], env)
        src = os.path.join(work, "pm-src")
        with open(src, "wb") as f:
            f.write(bytes(range(256)) * 4)
        times = []
        for i in range(n):
            t = time.monotonic()
            subprocess.run(pm + ["cp", src, f"bench:/tmp/f{i}"], check=True, env=env, capture_output=True)
            subprocess.run(pm + ["cp", f"bench:/tmp/f{i}", os.path.join(work, "pm-back")], check=True, env=env,
                           capture_output=True)
            times.append(time.monotonic() - t)
        return times
    except subprocess.CalledProcessError as e:
        print(f"podman failed: {e.stderr.strip()[:300]}", file=sys.stderr)
        return None
    finally:
        subprocess.run(pm + ["rm", "-f", "-t", "0", "bench"], env=env, capture_output=True)
        subprocess.run(pm + ["system", "reset", "-f"], env=env, capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="runs of each throughput measurement")
    ap.add_argument("--exec-n", type=int, default=500)
    ap.add_argument("--files-n", type=int, default=1000)
    ap.add_argument("--podman-n", type=int, default=100)
    a = ap.parse_args()
    subprocess.run(["ninja", "-C", BUILD, "bench/bench-sessions", "bench/bench-blast", "bench/bench-noop"],
                   check=True, capture_output=True)
    capsa = os.path.join(BUILD, "capsa")
    helper = os.path.join(BUILD, "bench", "bench-sessions")
    blast = os.path.join(BUILD, "bench", "bench-blast")
    noop = os.path.join(BUILD, "bench", "bench-noop")
    work = tempfile.mkdtemp(prefix="capsa-bench-sessions-")
    root, runr = os.path.join(work, "root"), os.path.join(work, "run")
    env = dict(os.environ, CAPSA_ROOT=root, CAPSA_RUN_ROOT=runr, CAPSA_DEFAULT_NETWORK="none")
    port = free_port()
    res = {}
    try:
        run([capsa, "image", "import", IMAGE, "--name", "busybox:latest"], env)
        run([capsa, "run", "-d", "--name", "bench", "-p", f"{port}:9000", "-v", f"{os.path.dirname(blast)}:/bench:ro",
             "busybox", "sleep", "1000000"], env)

        # 1. exec round trips: busybox's `true` (static glibc, whose start-up
        # runs cpuid: a trap to the hypervisor on a VM), its floor (the same
        # binary spawned on the host), and a static musl no-op (no cpuid)
        def medians(out, suffix=""):
            for line in out.splitlines():
                k = line.split()
                res[k[0] + suffix] = float(k[2])
        medians(run([helper, "exec", root, runr, "bench", str(a.exec_n)], env))
        medians(run([helper, "exec", root, runr, "bench", str(a.exec_n), "/bench/bench-noop"], env), "_noop")
        bb = os.path.join(work, "busybox")
        run([capsa, "cp", "bench:/bin/busybox", bb], env)
        medians(run([helper, "spawn", bb, "true", str(a.exec_n)]), "_true")
        medians(run([helper, "spawn", noop, "bench-noop", str(a.exec_n)]), "_noop")
        cli = []
        for _ in range(min(a.exec_n, 200)):
            t = time.monotonic()
            subprocess.run([capsa, "exec", "bench", "true"], check=True, env=env)
            cli.append(time.monotonic() - t)
        res["exec_cli"] = med(cli) * 1000

        # 2. small files
        out = run([helper, "files", root, runr, "bench", str(a.files_n)], env)
        for line in out.splitlines():
            k = line.split()
            res[k[0]] = float(k[2] if k[1] == "median_ms" else k[1])
        pm = podman_files(work, a.podman_n)
        res["podman_cp_pair"] = med(pm) * 1000 if pm else None

        # 3. 1 GiB cat: the same data in the page cache on both sides
        host_file = os.path.join(work, "big")
        subprocess.run(["dd", "if=/dev/zero", f"of={host_file}", "bs=1M", "count=1024"], check=True,
                       capture_output=True)
        run([capsa, "exec", "bench", "dd", "if=/dev/zero", "of=/big", "bs=1048576", "count=1024"], env)
        plain, cat = [], []
        for _ in range(a.runs):
            p = subprocess.run(f"busybox cat {host_file} | {helper} sink", shell=True, check=True,
                               capture_output=True, text=True)
            plain.append(rate(p.stdout))
            p = subprocess.run(f"{capsa} exec bench cat /big | {helper} sink", shell=True, check=True,
                               capture_output=True, text=True, env=env)
            cat.append(rate(p.stdout))
        res["cat_plain_s"], res["cat_capsa_s"] = med(plain), med(cat)

        # 4. tunnels: the same static server on the host and in the sandbox
        direct, published, library = [], [], []
        for _ in range(a.runs):
            hp = free_port()
            srv = subprocess.Popen([blast, str(hp), str(GIB)])
            time.sleep(0.2)
            direct.append(rate(run([helper, "connect", "127.0.0.1", str(hp)])))
            srv.wait()
            srv = subprocess.Popen([capsa, "exec", "bench", "/bench/bench-blast", "9000", str(GIB), "2"], env=env)
            time.sleep(0.3)
            published.append(rate(run([helper, "connect", "127.0.0.1", str(port)])))
            library.append(rate(run([helper, "tunnel", root, runr, "bench", "9000"], env)))
            srv.wait()
        res["tunnel_direct_s"], res["tunnel_published_s"], res["tunnel_library_s"] = \
            med(direct), med(published), med(library)
    finally:
        subprocess.run([capsa, "rm", "-f", "bench"], env=env, capture_output=True)
        subprocess.run(["umount", "-R", "-l", work], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    gib = GIB / 1e6
    print(f"\n{'measurement':58s} {'median':>12s}")
    print(f"{'exec true, library (capsa_sandbox_exec)':58s} {res['exec_library']:9.3f} ms")
    print(f"{'exec true, library (capsa_proc_start, async)':58s} {res['exec_async']:9.3f} ms")
    print(f"{'  floor: the same busybox true spawned on the host':58s} {res['spawn_host_true']:9.3f} ms")
    print(f"{'  capsa above the floor':58s} {res['exec_library'] - res['spawn_host_true']:9.3f} ms")
    print(f"{'exec static no-op (musl), library (capsa_sandbox_exec)':58s} {res['exec_library_noop']:9.3f} ms")
    print(f"{'  floor: the same no-op spawned on the host':58s} {res['spawn_host_noop']:9.3f} ms")
    print(f"{'exec true, CLI (capsa exec)':58s} {res['exec_cli']:9.3f} ms")
    print(f"{'file write+read 1 KiB, capsa file API (per pair)':58s} {res['files_write_read']:9.3f} ms")
    print(f"{'  1,000 pairs, total':58s} {res['files_total_s']:9.3f} s")
    if res["podman_cp_pair"]:
        print(f"{'file write+read 1 KiB, podman cp in + out (per pair)':58s} {res['podman_cp_pair']:9.3f} ms")
        print(f"{'  1,000 pairs, scaled from %d' % a.podman_n:58s} {res['podman_cp_pair']:9.3f} s")
        print(f"{'  ratio podman / capsa':58s} {res['podman_cp_pair'] / res['files_write_read']:9.1f} x")
    else:
        print("podman cp: not measured (podman missing or failing)")
    print(f"{'1 GiB cat, plain pipe on the host':58s} {gib / res['cat_plain_s']:9.0f} MB/s")
    print(f"{'1 GiB cat, sandbox -> host (capsa exec)':58s} {gib / res['cat_capsa_s']:9.0f} MB/s")
    print(f"{'  ratio capsa / plain (target >= 0.5)':58s} {res['cat_plain_s'] / res['cat_capsa_s']:9.2f}")
    print(f"{'1 GiB TCP, direct loopback':58s} {gib / res['tunnel_direct_s']:9.0f} MB/s")
    print(f"{'1 GiB TCP, published port (-p)':58s} {gib / res['tunnel_published_s']:9.0f} MB/s")
    print(f"{'1 GiB TCP, capsa_tunnel_open':58s} {gib / res['tunnel_library_s']:9.0f} MB/s")
    print(f"{'  ratio published / direct (target >= 0.5)':58s} {res['tunnel_direct_s'] / res['tunnel_published_s']:9.2f}")
    print(f"{'  ratio library / direct':58s} {res['tunnel_direct_s'] / res['tunnel_library_s']:9.2f}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
