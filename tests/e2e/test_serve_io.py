"""capsa serve: the /v1 API's I/O with running sandboxes: one-shot exec,
streamed processes (stdin, signals, resize, wait, attach), files (read,
write, stat, list, mkdir, rename, remove, watch, tar), ports (publish,
tunnel over an HTTP upgrade) and the event log, against real sandboxes."""
import base64
import io
import json
import socket
import tarfile
import threading
import time
import uuid

import pytest

from serve_env import Serve


@pytest.fixture
def srv(store):
    s = Serve(store)
    yield s
    s.stop()


@pytest.fixture
def sb(srv):
    got = srv.ok("POST", "/v1/sandboxes", {"image": "busybox", "name": "io-" + uuid.uuid4().hex[:8]}, status=201)
    yield got["id"]
    srv.request("DELETE", f"/v1/sandboxes/{got['id']}?force=true")


def until(what, fn, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- one-shot exec ------------------------------------------------------------

def test_exec_one_shot(srv, sb):
    r = srv.ok("POST", f"/v1/sandboxes/{sb}/exec", {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    assert r == {"exitCode": 3, "signal": 0, "reason": "exited", "stdout": "out\n", "stderr": "err\n",
                 "truncated": False}
    r = srv.ok("POST", f"/v1/sandboxes/{sb}/exec", {"command": ["cat"], "stdin": "fed\n"})
    assert r["stdout"] == "fed\n" and r["exitCode"] == 0
    r = srv.ok("POST", f"/v1/sandboxes/{sb}/exec",
               {"command": ["sh", "-c", "echo $X; pwd"], "env": {"X": "1"}, "workdir": "/tmp"})
    assert r["stdout"] == "1\n/tmp\n"
    # binary output as base64; a cap on what is kept
    r = srv.ok("POST", f"/v1/sandboxes/{sb}/exec",
               {"command": ["sh", "-c", "printf '\\377\\000\\001'"], "encoding": "base64"})
    assert base64.b64decode(r["stdout"]) == b"\xff\x00\x01" and r["encoding"] == "base64"
    r = srv.ok("POST", f"/v1/sandboxes/{sb}/exec",
               {"command": ["sh", "-c", "yes | head -c 100000"], "maxOutput": 1000})
    assert len(r["stdout"]) == 1000 and r["truncated"] is True
    r = srv.ok("POST", f"/v1/sandboxes/{sb}/exec", {"command": ["sleep", "30"], "timeout": "300ms"})
    assert r["reason"] == "timeout" and r["exitCode"] == 124
    srv.error("POST", f"/v1/sandboxes/{sb}/exec", {"command": ["/no/such/program"]}, status=404)
    srv.error("POST", f"/v1/sandboxes/{sb}/exec", {"command": []}, status=400, match="command")
    srv.error("POST", f"/v1/sandboxes/{sb}/exec", {"command": ["true"], "encoding": "hex"}, status=400)
    srv.error("POST", "/v1/sandboxes/nope-nope/exec", {"command": ["true"]}, status=404)


def test_exec_in_a_stopped_sandbox(srv):
    got = srv.ok("POST", "/v1/sandboxes", {"image": "busybox", "command": ["true"]}, status=201)
    srv.ok("POST", f"/v1/sandboxes/{got['id']}/wait")
    srv.error("POST", f"/v1/sandboxes/{got['id']}/exec", {"command": ["true"]}, status=409, word="not_running")
    srv.request("DELETE", f"/v1/sandboxes/{got['id']}")


# --- streamed processes -------------------------------------------------------

def test_process_stream(srv, sb):
    msgs = list(srv.stream("POST", f"/v1/sandboxes/{sb}/processes",
                           {"command": ["sh", "-c", "echo a; echo b >&2; sleep 0.1; echo c; exit 4"]}))
    assert msgs[0]["type"] == "start" and msgs[0]["pid"] > 0
    out = b"".join(base64.b64decode(m["data"]) for m in msgs if m["type"] == "stdout")
    err = b"".join(base64.b64decode(m["data"]) for m in msgs if m["type"] == "stderr")
    assert out == b"a\nc\n" and err == b"b\n"
    assert msgs[-1] == {"type": "exit", "exitCode": 4, "signal": 0, "reason": "exited"}


def test_process_stream_sse(srv, sb):
    c = srv.conn(unix=True)
    c.request("POST", f"/v1/sandboxes/{sb}/processes", body=json.dumps({"command": ["echo", "hi"]}),
              headers={"Accept": "text/event-stream", "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    text = r.read().decode()
    c.close()
    events = [blk for blk in text.split("\n\n") if blk.strip()]
    assert events[0].startswith("event: start\ndata: ")
    assert any(b.startswith("event: stdout\n") and base64.b64encode(b"hi\n").decode() in b for b in events)
    assert events[-1].startswith("event: exit\n")


def test_process_stdin_signal_resize_wait_list(srv, sb):
    body = {"command": ["cat"], "stdin": True, "keep": True, "tag": "feeder"}
    got = []
    t = threading.Thread(target=lambda: got.extend(srv.stream("POST", f"/v1/sandboxes/{sb}/processes", body)))
    t.start()
    procs = until("the process", lambda: [p for p in srv.ok("GET", f"/v1/sandboxes/{sb}/processes")
                                           if p.get("tag") == "feeder"])
    pid = procs[0]["pid"]
    assert procs[0]["keep"] and procs[0]["stdin"] and procs[0]["command"] == ["cat"]
    assert srv.request("POST", f"/v1/sandboxes/{sb}/processes/{pid}/stdin", b"line one\n").status == 204
    assert srv.request("POST", f"/v1/sandboxes/feeder/processes/feeder/stdin", b"x", unix=True).status in (404,)
    assert srv.request("POST", f"/v1/sandboxes/{sb}/processes/feeder/stdin?close=true", b"line two\n").status == 204
    t.join(20)
    out = b"".join(base64.b64decode(m["data"]) for m in got if m["type"] == "stdout")
    assert out == b"line one\nline two\n" and got[-1]["exitCode"] == 0
    # a terminal: resize, then a signal; wait reports the end
    tty = {"command": ["sh", "-c", "sleep 0.3; stty size; sleep 100"], "tty": True, "rows": 10, "cols": 20, "keep": True}
    out2 = []
    t = threading.Thread(target=lambda: out2.extend(srv.stream("POST", f"/v1/sandboxes/{sb}/processes", tty)))
    t.start()
    pid = until("the start", lambda: out2 and out2[0].get("pid"))
    assert srv.request("POST", f"/v1/sandboxes/{sb}/processes/{pid}/resize", {"rows": 33, "cols": 77}).status == 204
    until("the new size", lambda: b"33 77" in b"".join(base64.b64decode(m["data"]) for m in out2
                                                       if m["type"] == "stdout"))
    waited = []
    w = threading.Thread(target=lambda: waited.append(srv.ok("POST", f"/v1/sandboxes/{sb}/processes/{pid}/wait")))
    w.start()
    time.sleep(0.2)
    assert srv.request("POST", f"/v1/sandboxes/{sb}/processes/{pid}/signal", {"signal": "KILL"}).status == 204
    w.join(20)
    t.join(20)
    assert waited and waited[0]["signal"] == 9 and waited[0]["exitCode"] == 137
    srv.error("POST", f"/v1/sandboxes/{sb}/processes/{pid}/signal", {"signal": "NOPE"}, status=400)
    srv.error("POST", f"/v1/sandboxes/{sb}/processes/999999/signal", {"signal": "TERM"}, status=409)


def test_kept_process_outlives_its_client_and_replays(srv, sb):
    c = srv.conn(unix=True)
    c.request("POST", f"/v1/sandboxes/{sb}/processes",
              body=json.dumps({"command": ["sh", "-c", "for i in 1 2 3 4 5; do echo n$i; sleep 0.2; done"],
                               "keep": True}), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    start = json.loads(r.readline())
    c.close()  # the client leaves; the kept process runs on, its output is buffered
    time.sleep(1.5)
    msgs = list(srv.stream("GET", f"/v1/sandboxes/{sb}/processes/{start['pid']}/output"))
    out = b"".join(base64.b64decode(m["data"]) for m in msgs if m["type"] == "stdout")
    assert out.endswith(b"n5\n") and b"n3\n" in out
    assert msgs[-1]["type"] == "exit" and msgs[-1]["exitCode"] == 0


def test_unkept_process_ends_with_its_client(srv, sb):
    c = srv.conn(unix=True)
    c.request("POST", f"/v1/sandboxes/{sb}/processes", body=json.dumps({"command": ["sleep", "1000"], "tag": "t1"}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    json.loads(r.readline())
    c.close()
    until("the process to end", lambda: not [p for p in srv.ok("GET", f"/v1/sandboxes/{sb}/processes")
                                             if p.get("tag") == "t1" and p["running"]])


# --- files --------------------------------------------------------------------

def test_files(srv, sb):
    base = f"/v1/sandboxes/{sb}"
    info = srv.ok("PUT", f"{base}/files?path=/tmp/f/a.txt&parents=true&mode=0640", b"hello")
    assert info["size"] == 5 and info["mode"] == 0o640 and info["type"] == "file"
    r = srv.get(f"{base}/files?path=/tmp/f/a.txt")
    assert r.status == 200 and r.body == b"hello" and r.header("Content-Length") == "5"
    srv.ok("PUT", f"{base}/files?path=/tmp/f/a.txt&append=true", b" world")
    assert srv.get(f"{base}/files?path=/tmp/f/a.txt").body == b"hello world"
    srv.error("PUT", f"{base}/files?path=/tmp/f/a.txt&create=true", b"x", status=409)
    st = srv.ok("GET", f"{base}/files/stat?path=/tmp/f")
    assert st["type"] == "dir"
    assert srv.ok("POST", f"{base}/files/mkdir", {"path": "/tmp/f/d/e", "parents": True}, status=201)["created"]
    assert srv.ok("POST", f"{base}/files/mkdir", {"path": "/tmp/f/d/e"}, status=200)["created"] is False
    names = sorted(e["path"] for e in srv.ok("GET", f"{base}/files/list?path=/tmp/f&depth=2"))
    assert names == ["/tmp/f/a.txt", "/tmp/f/d", "/tmp/f/d/e"]
    assert srv.request("POST", f"{base}/files/rename", {"from": "/tmp/f/a.txt", "to": "/tmp/f/b.txt"}).status == 204
    srv.error("GET", f"{base}/files?path=/tmp/f/a.txt", status=404)
    srv.error("DELETE", f"{base}/files?path=/tmp/f", status=409)  # not empty
    assert srv.request("DELETE", f"{base}/files?path=/tmp/f&recursive=true").status == 204
    srv.error("GET", f"{base}/files/stat?path=/tmp/f", status=404)
    # paths stay inside the sandbox
    srv.ok("PUT", f"{base}/files?path=/../../../tmp/escape.txt", b"inside")
    got = srv.ok("POST", f"{base}/exec", {"command": ["cat", "/tmp/escape.txt"]})
    assert got["stdout"] == "inside"
    srv.error("GET", f"{base}/files?path=/tmp/x%00y", status=400)
    srv.error("GET", f"{base}/files", status=400, match="path")


def test_files_large_and_binary(srv, sb):
    base = f"/v1/sandboxes/{sb}"
    blob = bytes(range(256)) * 40000  # 10 MB
    srv.ok("PUT", f"{base}/files?path=/tmp/blob", blob)
    r = srv.get(f"{base}/files?path=/tmp/blob")
    assert r.body == blob


def test_archive_round_trip(srv, sb):
    base = f"/v1/sandboxes/{sb}"
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as tf:
        for name, data in (("t/one.txt", b"1"), ("t/sub/two.txt", b"22")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    assert srv.request("PUT", f"{base}/archive?path=/srv/x&parents=true", bio.getvalue()).status == 204
    assert srv.ok("POST", f"{base}/exec", {"command": ["cat", "/srv/x/t/sub/two.txt"]})["stdout"] == "22"
    r = srv.get(f"{base}/archive?path=/srv/x/t")
    assert r.status == 200 and r.header("Content-Type") == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tf:
        names = sorted(tf.getnames())
        assert "t/sub/two.txt" in names and tf.extractfile("t/one.txt").read() == b"1"
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as tf:
        ti = tarfile.TarInfo("../../evil")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    srv.error("PUT", f"{base}/archive?path=/srv/x", bad.getvalue(), status=403)


def test_watch_stream(srv, sb):
    base = f"/v1/sandboxes/{sb}"
    srv.ok("POST", f"{base}/files/mkdir", {"path": "/tmp/w"}, status=201)
    f = srv.follow("GET", f"{base}/files/watch?path=/tmp/w&recursive=true", first=1)
    assert f.items[0] == {"type": "start"}
    srv.ok("PUT", f"{base}/files?path=/tmp/w/new.txt", b"x")
    srv.ok("POST", f"{base}/exec", {"command": ["rm", "/tmp/w/new.txt"]})
    until("create and remove", lambda: {"create", "remove"} <= {e["type"] for e in f.items
                                                               if e.get("path") == "/tmp/w/new.txt"})
    f.close()


def test_files_as_a_user(srv, sb):
    """`user` on every file endpoint is a credential: nobody is refused (403)
    what nobody's shell is refused, with the path and the user named."""
    base = f"/v1/sandboxes/{sb}"
    srv.ok("POST", f"{base}/exec", {"command": ["sh", "-c", "echo s > /secret && chmod 600 /secret && "
                                                "mkdir -p /home/nob && chown nobody /home/nob"]})
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        ti = tarfile.TarInfo("planted")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    for method, path, body, named in (
            ("GET", "/files?path=/secret&user=nobody", None, "/secret"),
            ("PUT", "/files?path=/etc/evil&user=nobody", b"x", "/etc/evil"),
            ("PUT", "/files?path=/secret&append=true&user=nobody", b"x", "/secret"),
            ("GET", "/files/list?path=/root&user=nobody", None, "/root"),
            ("DELETE", "/files?path=/secret&user=nobody", None, "/secret"),
            ("POST", "/files/mkdir", {"path": "/root/d", "user": "nobody"}, "/root/d"),
            ("POST", "/files/rename", {"from": "/secret", "to": "/home/nob/s", "user": "nobody"}, "/secret"),
            ("GET", "/archive?path=/secret&user=nobody", None, "/secret"),
            ("PUT", "/archive?path=/root&user=nobody", tar.getvalue(), "/root"),
            ("GET", "/files/watch?path=/root&user=nobody", None, "/root")):
        msg = srv.error(method, base + path, body, status=403, word="permission_denied")["message"]
        assert named in msg and "nobody" in msg, (method, path, msg)
    assert srv.get(f"{base}/files?path=/secret").body == b"s\n"
    assert srv.get(f"{base}/files?path=/secret&user=root").body == b"s\n"
    got = srv.ok("POST", f"{base}/exec", {"command": ["ls", "-A", "/etc/evil", "/root"]})
    assert "planted" not in got["stdout"] and "d" not in got["stdout"].split()
    info = srv.ok("PUT", f"{base}/files?path=/home/nob/f&user=nobody", b"mine")
    assert (info["uid"], info["gid"]) == (65534, 65534)
    # the agent's own /proc entries, whoever asks
    for user in ("", "&user=nobody"):
        for path in ("/files?path=/proc/1/maps", "/files/stat?path=/proc/self", "/files/list?path=/proc/1",
                     "/archive?path=/proc/1", "/files/watch?path=/proc/self"):
            msg = srv.error("GET", base + path + user, status=403)["message"]
            assert "off limits" in msg, (path, msg)
        srv.error("PUT", f"{base}/files?path=/proc/1/oom_score_adj&append=true{user}", b"-1000", status=403,
                  match="off limits")


def test_sparse_download_is_bounded(store):
    """A raw download streams a sparse file's zeros, up to --max-download
    (413 past it, before anything is sent); an archive carries only its
    data."""
    s = Serve(store, "--max-download", "64m")
    try:
        sb = s.ok("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"disk": "16m"}}, status=201)["id"]
        base = f"/v1/sandboxes/{sb}"
        got = s.ok("POST", f"{base}/exec", {"command": ["sh", "-c", "truncate -s 32M /s32 && echo end >> /s32 && "
                                                        "truncate -s 200M /s200 && echo end >> /s200"]})
        assert got["exitCode"] == 0, got
        r = s.get(f"{base}/files?path=/s32")
        assert r.status == 200 and len(r.body) == (32 << 20) + 4 and r.body.endswith(b"end\n")
        assert r.body[:1 << 20] == bytes(1 << 20)
        s.error("GET", f"{base}/files?path=/s200", status=413, match="/s200")
        r = s.get(f"{base}/archive?path=/s200")
        assert r.status == 200 and len(r.body) < 65536, len(r.body)
        with tarfile.open(fileobj=io.BytesIO(r.body)) as tf:
            m = tf.getmember("s200")
            assert m.size == (200 << 20) + 4
            f = tf.extractfile(m)
            f.seek(200 << 20)
            assert f.read() == b"end\n"
        s.request("DELETE", f"{base}?force=true")
    finally:
        s.stop()


# --- ports --------------------------------------------------------------------

def test_ports_publish_and_tunnel(srv, store):
    sb = srv.ok("POST", "/v1/sandboxes", {"image": "busybox",
                                          "command": ["sh", "-c", "mkdir -p /www && echo tunnelled > /www/index.html "
                                                      "&& exec httpd -f -p 8080 -h /www"]}, status=201)["id"]
    try:
        pub = srv.ok("POST", f"/v1/sandboxes/{sb}/ports", {"port": 8080}, status=201)
        assert pub["port"] == 8080 and pub["hostIp"] == "127.0.0.1" and pub["hostPort"] > 0

        def fetch_direct():
            # until httpd listens, the connection is accepted and then reset
            data = b""
            try:
                with socket.create_connection(("127.0.0.1", pub["hostPort"]), timeout=5) as s:
                    s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                    while chunk := s.recv(4096):
                        data += chunk
            except OSError:
                return None
            return data if b"tunnelled" in data else None

        until("httpd through the published port", fetch_direct)
        ports = srv.ok("GET", f"/v1/sandboxes/{sb}/ports")
        assert ports[0]["connections"] >= 1 and ports[0]["txBytes"] > 0

        # a tunnel over an HTTP upgrade, through the unix socket
        s = socket.socket(socket.AF_UNIX)
        s.connect(srv.sock)
        s.sendall(f"GET /v1/sandboxes/{sb}/ports/8080/tunnel HTTP/1.1\r\nHost: x\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert b"200 OK" in data and b"tunnelled" in data
        srv.error("GET", f"/v1/sandboxes/{sb}/ports/8080/tunnel", status=400, word="upgrade_required")
        # nothing listens on 9999: the tunnel is refused before the upgrade
        s = socket.socket(socket.AF_UNIX)
        s.connect(srv.sock)
        s.sendall(f"GET /v1/sandboxes/{sb}/ports/9999/tunnel HTTP/1.1\r\nHost: x\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 502 ")
        s.close()
        # the supervisor counts the bytes and publishes them with its next
        # sample (once a second, docs/metrics.md)
        deadline = time.time() + 15
        while True:
            metrics = srv.get("/metrics").body.decode()
            line = [l for l in metrics.splitlines()
                    if l.startswith("capsa_sandbox_tunnel_tx_bytes_total") and sb in l]
            if (line and float(line[0].split()[-1]) > 0) or time.time() > deadline:
                break
            time.sleep(0.2)
        assert line and float(line[0].split()[-1]) > 0, line
    finally:
        srv.request("DELETE", f"/v1/sandboxes/{sb}?force=true")


# --- events -------------------------------------------------------------------

def test_events(srv, store):
    f = srv.follow("GET", "/v1/events?follow=true")
    sb = srv.ok("POST", "/v1/sandboxes", {"image": "busybox", "command": ["true"]}, status=201)["id"]
    srv.ok("POST", f"/v1/sandboxes/{sb}/wait")
    srv.request("DELETE", f"/v1/sandboxes/{sb}")
    until("create, start, die, remove", lambda: {"create", "start", "die", "remove"} <=
          {e["type"] for e in f.items if e.get("sandbox") == sb})
    f.close()
    old = list(srv.stream("GET", f"/v1/events?sandbox={sb}"))
    assert [e["type"] for e in old][:2] == ["create", "start"] and old[0]["sandbox"] == sb
    seqs = [e["seq"] for e in old]
    assert seqs == sorted(seqs)
    after = list(srv.stream("GET", f"/v1/events?sandbox={sb}&after={seqs[0]}"))
    assert [e["seq"] for e in after] == seqs[1:]
    only = list(srv.stream("GET", f"/v1/events?sandbox={sb}&type=die"))
    assert [e["type"] for e in only] == ["die"] and only[0]["attrs"]["exitCode"] == 0
    srv.error("GET", "/v1/events?sandbox=nope", status=404)
    srv.error("GET", "/v1/events?since=yesterday", status=400)
