"""A real `capsa serve` for the API tests: started on a random loopback port
and a unix socket in a temp dir, driven with http.client, stopped with
SIGTERM at the end; a server that crashed, leaked (under ASan) or printed a
sanitizer report fails the test that used it.

Given a netenv.NetCapsa, the server runs in the fake internet's host
namespace (its sandboxes get the network there) and TCP requests are made
from a socket of that namespace: its loopback is not this one's.
"""
import http.client
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import threading
import time



class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class NetnsHTTPConnection(http.client.HTTPConnection):
    """TCP from a socket of a netenv.FakeInternet's host namespace."""

    def __init__(self, net, port, timeout=60):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self.net = net

    def connect(self):
        s = self.net.host_socket()
        s.settimeout(self.timeout)
        s.connect((self.host, self.port))
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Follower:
    def __init__(self, srv, method, path, body, first):
        self.items = []
        self.conn = srv.conn(unix=True)
        h = {}
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=h)
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()[:300]
        # the first messages, read before the thread starts
        for _ in range(first):
            self.items.append(json.loads(self.resp.readline()))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for line in self.resp:
                self.items.append(json.loads(line))
        except (OSError, ValueError, http.client.HTTPException):
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.conn.close()


class Serve:
    """`capsa serve` bound to one store (a conftest Capsa)."""

    def __init__(self, capsa, *args, tcp=True, env=None):
        self.capsa = capsa
        self.dir = os.path.join(os.path.dirname(capsa.root), "serve")
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "capsa.sock")
        # NetCapsa.argv runs it in the fake internet's host namespace
        self.net = getattr(capsa, "net", None)
        cmd = capsa.argv("serve", "--socket", self.sock)
        if tcp:
            cmd += ["--listen", "127.0.0.1:0"]
        cmd += list(map(str, args))
        e = dict(capsa.env)
        if env:
            e.update(env)
        self.stderr_path = os.path.join(self.dir, f"stderr.{time.time_ns()}")
        self.errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=self.errf)
        self.url = None
        self.port = None
        want = 2 if tcp else 1
        got = 0
        deadline = time.time() + 30
        buf = b""
        while got < want:
            if time.time() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise AssertionError("capsa serve did not start: " + self.stderr())
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode()
                if "listening on http://" in line:
                    self.url = line.split("listening on ")[1]
                    self.port = int(self.url.rsplit(":", 1)[1])
                    got += 1
                elif "listening on unix:" in line:
                    got += 1
        args = list(map(str, args))
        tok = os.path.join(capsa.root, "api-token")
        if "--token-file" in args:
            tok = args[args.index("--token-file") + 1]
        self.token = open(tok).read().strip() if tcp else None

    def stderr(self):
        self.errf.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    # requests ---------------------------------------------------------------
    def conn(self, unix=False, timeout=120):
        if unix or not self.url:
            return UnixHTTPConnection(self.sock, timeout=timeout)
        if self.net:
            return NetnsHTTPConnection(self.net, self.port, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, unix=False, auth=True, timeout=120):
        h = dict(headers or {})
        if auth and not unix and self.token:
            h.setdefault("Authorization", "Bearer " + self.token)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = self.conn(unix, timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method, path, body=None, status=200, **kw):
        r = self.request(method, path, body=body, **kw)
        assert r.status == status, f"{method} {path}: {r.status} {r.body[:500]!r}"
        return r.json() if r.body else None

    def error(self, method, path, body=None, status=400, word=None, match=None, **kw):
        """Asserts an error reply in the {"code","error","message"} shape."""
        r = self.request(method, path, body=body, **kw)
        assert r.status == status, f"{method} {path}: {r.status} {r.body[:500]!r}"
        j = r.json()
        assert j["code"] == status and isinstance(j["error"], str) and isinstance(j["message"], str), j
        if word:
            assert j["error"] == word, j
        if match:
            assert match in j["message"], j
        return j

    def stream(self, method, path, body=None, unix=True, timeout=60):
        """A streaming response: yields its NDJSON objects (keepalives too)."""
        h = {}
        if not unix and self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c = self.conn(unix, timeout)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        assert r.status == 200, f"{method} {path}: {r.status} {r.read()[:300]!r}"
        try:
            while True:
                line = r.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            c.close()

    def our_sandbox_ids(self):
        """Every sandbox this store ever had (the event log keeps removed ones)."""
        db = sqlite3.connect(os.path.join(self.capsa.root, "capsa.db"), timeout=30)
        try:
            return {r[0] for r in db.execute("SELECT DISTINCT sandbox_id FROM events WHERE sandbox_id IS NOT NULL")}
        finally:
            db.close()

    def assert_clean(self, timeout=5.0):
        """The store's assert_clean, but the server itself may run, and
        cgroups of other stores (other test runs on this machine) are not
        ours to judge."""
        deadline = time.time() + timeout
        while True:
            ours = self.our_sandbox_ids()
            left = [x for x in self.capsa.leftovers()
                    if not x.startswith(f"process {self.proc.pid} ") and not x.startswith("runtime dir")
                    and not (x.startswith("cgroup ") and os.path.basename(x) not in ours)]
            if not left or time.time() > deadline:
                break
            time.sleep(0.05)
        assert not left, "left behind: " + "; ".join(left)

    def follow(self, method, path, body=None, first=0):
        """A streaming response read by a thread of its own into .items;
        .close() hangs up (shutting the socket down unblocks the reader)."""
        return Follower(self, method, path, body, first)

    # lifecycle -------------------------------------------------------------
    def stop(self, check=True):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("capsa serve did not stop on SIGTERM: " + self.stderr())
        self.proc.stdout.close()
        err = self.stderr()
        self.errf.close()
        if check:
            assert self.proc.returncode == 0, f"capsa serve exited {self.proc.returncode}: {err}"
            for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                assert bad not in err, f"capsa serve stderr: {err}"
        return err
