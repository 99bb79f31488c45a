#!/usr/bin/env python3
"""bench/api/run.py: capsa serve, end to end.  A benchmark, not a test:
prints medians and ratios.

  1. E2B SDK (npm e2b, unmodified): Sandbox.create('base') ->
     commands.run('echo hi') -> kill, ROUNDS times: create-to-first-output
     and the whole round (E2B's hosted service quotes ~150 ms for a create).
  2. The native API with curl (one process per call, as a shell script would
     drive it): POST /v1/sandboxes -> POST .../exec echo hi -> DELETE.
  3. Exec round trip: the library (capsa_sandbox_exec, bench-api-lib)
     against POST /v1/sandboxes/{id}/exec on a kept-alive connection.
  4. Sustained exec throughput: CLIENTS concurrent clients, each on its own
     kept-alive connection, POSTing exec echo hi for SECONDS.

Usage: bench/api/run.py [--rounds 50] [--clients 16] [--seconds 10]
(CAPSA_BUILD: the build directory; needs tests/images/build.sh's images
and the SDK from tests/e2e/e2b, installed by `npm ci` there if missing.)
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("CAPSA_BUILD", os.path.join(REPO, "build"))
SDK = os.path.join(REPO, "tests", "e2e", "e2b")
IMAGES = os.path.join(REPO, "tests", "images", "out")


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def med(v):
    return statistics.median(v) if v else float("nan")


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    capsa = os.path.join(BUILD, "capsa")
    subprocess.run(["ninja", "-C", BUILD, "bench/bench-api-lib"], check=True, stdout=subprocess.DEVNULL)
    if not os.path.isdir(os.path.join(SDK, "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--cache", os.path.join(SDK, ".npm-cache")],
                       cwd=SDK, check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="capsa-bench-api-")
    env = dict(os.environ, CAPSA_ROOT=os.path.join(work, "root"), CAPSA_RUN_ROOT=os.path.join(work, "run"),
               CAPSA_DEFAULT_NETWORK="none")  # no network made on this machine
    sock = os.path.join(work, "capsa.sock")
    srv = None
    try:
        for img, name in (("busybox-oci.tar", "busybox:latest"), ("debian-oci.tar", "debian:test")):
            subprocess.run([capsa, "image", "import", os.path.join(IMAGES, img), "--name", name], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        srv = subprocess.Popen([capsa, "serve", "--socket", sock, "--listen", "127.0.0.1:0", "--workers", "32"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = None
        while not url:
            line = srv.stdout.readline()
            if not line:
                sys.exit("capsa serve did not start")
            if "listening on http://" in line:
                url = line.split("listening on ")[1].strip()
        token = open(os.path.join(env["CAPSA_ROOT"], "api-token")).read().strip()
        print(f"capsa serve at {url}; {os.cpu_count()} cpus; {a.rounds} rounds", flush=True)

        # 1. the E2B SDK
        e = dict(os.environ, E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY=token,
                 NODE_PATH=os.path.join(SDK, "node_modules"))
        out = subprocess.run(["node", os.path.join(HERE, "sdk.cjs"), str(a.rounds)], env=e, check=True,
                             capture_output=True, text=True).stdout
        rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        print("\nE2B SDK (e2b 2.51) against capsa serve, ms:")
        for k in ("create", "firstOutput", "exec", "kill", "total"):
            v = [r[k] for r in rows]
            print(f"  {k:12s} median {med(v):7.1f}   p90 {pct(v, 0.9):7.1f}")
        sdk_first = med([r["firstOutput"] for r in rows])

        # 2. the native API with curl
        def curl(*args):
            t = time.monotonic()
            p = subprocess.run(["curl", "-sS", "--fail-with-body", "--unix-socket", sock, *args], check=True,
                               capture_output=True, text=True)
            return time.monotonic() - t, p.stdout

        rounds = []
        for i in range(a.rounds + 2):
            t0 = time.monotonic()
            dc, body = curl("-X", "POST", "http://x/v1/sandboxes", "-H", "Content-Type: application/json",
                            "-d", '{"image":"busybox"}')
            sid = json.loads(body)["id"]
            de, body = curl("-X", "POST", f"http://x/v1/sandboxes/{sid}/exec", "-H",
                            "Content-Type: application/json", "-d", '{"command":["echo","hi"]}')
            assert json.loads(body)["stdout"] == "hi\n"
            dd, _ = curl("-X", "DELETE", f"http://x/v1/sandboxes/{sid}?force=true")
            if i >= 2:
                rounds.append((dc, de, dd, time.monotonic() - t0))
        print("\nnative API with curl (a process per call), ms:")
        for i, k in enumerate(("create", "exec", "delete", "total")):
            v = [r[i] * 1000 for r in rounds]
            print(f"  {k:12s} median {med(v):7.1f}   p90 {pct(v, 0.9):7.1f}")

        # 3. exec round trip: library against API
        c = UnixConn(sock)
        sids = [call(c, "POST", "/v1/sandboxes", {"image": "busybox"})["id"] for _ in range(4)]
        lib = subprocess.run([os.path.join(BUILD, "bench", "bench-api-lib"), sids[0], str(a.rounds * 4)], env=env,
                             check=True, capture_output=True, text=True).stdout
        lib_us = [int(x) for x in lib.split()][10:]
        api_us = []
        for i in range(a.rounds * 4):
            t = time.monotonic()
            got = call(c, "POST", f"/v1/sandboxes/{sids[0]}/exec", {"command": ["echo", "hi"]})
            if i >= 10:
                api_us.append((time.monotonic() - t) * 1e6)
            assert got["stdout"] == "hi\n"
        print("\nexec echo hi round trip, ms:")
        print(f"  library (capsa_sandbox_exec)      median {med(lib_us) / 1000:6.2f}   p90 {pct(lib_us, .9) / 1000:6.2f}")
        print(f"  API (POST exec, kept-alive conn)  median {med(api_us) / 1000:6.2f}   p90 {pct(api_us, .9) / 1000:6.2f}")
        print(f"  ratio API / library               {med(api_us) / med(lib_us):6.2f}  (target <= 2)")

        # 4. sustained throughput
        stop = time.monotonic() + a.seconds
        counts, lats, errors = [0] * a.clients, [], []
        lock = threading.Lock()

        def client(i):
            cc = UnixConn(sock)
            mine = []
            try:
                while time.monotonic() < stop:
                    t = time.monotonic()
                    call(cc, "POST", f"/v1/sandboxes/{sids[i % len(sids)]}/exec", {"command": ["echo", "hi"]})
                    mine.append(time.monotonic() - t)
                    counts[i] += 1
            except Exception as ex:  # noqa: BLE001 - reported below
                errors.append(str(ex))
            with lock:
                lats.extend(mine)

        ths = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        el = time.monotonic() - t0
        n = sum(counts)
        print(f"\nsustained: {a.clients} clients, {el:.1f} s: {n} execs, {n / el:.0f} execs/s, "
              f"latency median {med(lats) * 1000:.1f} ms p90 {pct(lats, .9) * 1000:.1f} ms, errors {len(errors)}")
        for s in sids:
            call(c, "DELETE", f"/v1/sandboxes/{s}?force=true")
        print(f"\nSDK create-to-first-output median {sdk_first:.1f} ms (target < 50)")
    finally:
        if srv:
            srv.send_signal(signal.SIGTERM)
            srv.wait(60)
        subprocess.run([capsa, "rm", "-f", "--all"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
