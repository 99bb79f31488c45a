"""capsa serve: the server itself (listening, authentication, error shape,
hostile input, restarts), the native /v1 sandbox, image and template API,
admission (ledger, disk guard) and /metrics, against a real server and real
sandboxes."""
import concurrent.futures
import json
import os
import re
import socket
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import Capsa, image_path
from serve_env import Serve


def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def srv(store):
    s = Serve(store)
    yield s
    s.stop()


def create(srv, **kw):
    body = {"image": "busybox"}
    body.update(kw)
    return srv.ok("POST", "/v1/sandboxes", body, status=201)


# --- listening and authentication -------------------------------------------

def test_unix_socket_mode_and_tcp_token(srv, store):
    st = os.stat(srv.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    tok = os.path.join(store.root, "api-token")
    assert stat.S_IMODE(os.stat(tok).st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", srv.token)
    # the unix socket needs no token; TCP does
    assert srv.get("/v1/version", unix=True).status == 200
    assert srv.get("/v1/version").status == 200
    assert srv.get("/v1/version", headers={"X-API-Key": srv.token}, auth=False).status == 200


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "x"}, {"Authorization": "Basic Zm9vOg=="},
])
@pytest.mark.parametrize("path", ["/v1/version", "/v1/sandboxes/nonexistent", "/nope", "/v2/sandboxes"])
def test_tcp_without_token_is_401_with_nothing_else(srv, headers, path):
    r = srv.get(path, headers=headers, auth=False)
    assert r.status == 401
    assert r.json() == {"code": 401, "error": "unauthorized", "message": "unauthorized"}


def test_token_file_must_be_private(capsa, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("0123456789abcdef0123\n")
    os.chmod(tf, 0o644)
    p = capsa.run("serve", "--listen", "127.0.0.1:0", "--socket", "none", "--token-file", str(tf), timeout=30)
    assert p.returncode == 125 and "readable by its owner only" in p.err
    os.chmod(tf, 0o600)
    s = Serve(capsa, "--token-file", str(tf), "--socket", str(tmp_path / "s.sock"))
    try:
        r = s.get("/v1/version", headers={"Authorization": "Bearer 0123456789abcdef0123"}, auth=False)
        assert r.status == 200
    finally:
        s.stop()


def test_second_server_on_the_same_socket_is_refused(srv, store):
    p = store.run("serve", "--socket", srv.sock, timeout=30)
    assert p.returncode == 125 and "another server is listening" in p.err


# --- sandboxes --------------------------------------------------------------

def test_sandbox_lifecycle_is_shared_with_the_cli(srv, store):
    name = uniq("api")
    sb = create(srv, name=name, labels={"team": "a"}, limits={"memory": "64m", "cpus": 0.5, "pids": 32})
    assert sb["name"] == name and sb["state"] == "running"
    assert sb["config"]["memory"] == 64 << 20 and sb["config"]["cpus"] == 0.5
    assert sb["config"]["cmd"] == ["sleep", "infinity"]
    # the CLI sees it and can exec into it
    assert name in store.ok("ps")
    assert store.ok("exec", name, "echo", "hi") == "hi\n"
    got = srv.ok("GET", f"/v1/sandboxes/{name}")
    assert got["id"] == sb["id"]
    assert srv.ok("GET", f"/v1/sandboxes/{sb['id'][:12]}")["name"] == name
    ids = [s["id"] for s in srv.ok("GET", "/v1/sandboxes?label=team=a")]
    assert sb["id"] in ids
    assert sb["id"] not in [s["id"] for s in srv.ok("GET", "/v1/sandboxes?label=team=b")]
    # a running sandbox is not removed without force
    srv.error("DELETE", f"/v1/sandboxes/{name}", status=409, word="conflict")
    st = srv.ok("POST", f"/v1/sandboxes/{name}/stop", {"timeout": "1s"})
    assert st["state"] == "exited"
    w = srv.ok("POST", f"/v1/sandboxes/{name}/wait")
    assert w["exitCode"] in (137, 143) and w["reason"]
    assert srv.request("DELETE", f"/v1/sandboxes/{name}").status == 204
    srv.error("GET", f"/v1/sandboxes/{name}", status=404, word="not_found", match=name)
    srv.assert_clean()


def test_sandbox_with_its_own_command_and_logs(srv, store):
    sb = create(srv, command=["sh", "-c", "echo out; echo err >&2; echo bye"], autoRemove=False)
    w = srv.ok("POST", f"/v1/sandboxes/{sb['id']}/wait")
    assert w == {"exitCode": 0, "reason": "exited"}
    lines = [x for x in srv.stream("GET", f"/v1/sandboxes/{sb['id']}/logs") if x["stream"] != "keepalive"]
    assert {"stream": "stdout", "line": "out"} in lines and {"stream": "stderr", "line": "err"} in lines
    assert [x["line"] for x in lines if x["stream"] == "stdout"] == ["out", "bye"]
    only_err = list(srv.stream("GET", f"/v1/sandboxes/{sb['id']}/logs?stdout=false"))
    assert only_err == [{"stream": "stderr", "line": "err"}]
    tail = list(srv.stream("GET", f"/v1/sandboxes/{sb['id']}/logs?tail=1&stderr=0"))
    assert tail == [{"stream": "stdout", "line": "bye"}]
    assert srv.request("DELETE", f"/v1/sandboxes/{sb['id']}").status == 204


def test_logs_follow_streams_until_the_sandbox_ends(srv):
    sb = create(srv, command=["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"])
    got = [x["line"] for x in srv.stream("GET", f"/v1/sandboxes/{sb['id']}/logs?follow=true")
           if x["stream"] == "stdout"]
    assert got == ["line1", "line2", "line3"]
    srv.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=true")


def test_kill_pause_unpause_timeout(srv, store):
    sb = create(srv)
    sid = sb["id"]
    assert srv.ok("POST", f"/v1/sandboxes/{sid}/pause")["state"] == "paused"
    assert srv.ok("POST", f"/v1/sandboxes/{sid}/unpause")["state"] == "running"
    got = srv.ok("POST", f"/v1/sandboxes/{sid}/timeout", {"timeout": "1h"})
    assert got["deadline"]
    srv.error("POST", f"/v1/sandboxes/{sid}/kill", {"signal": "NOPE"}, status=400, match="signal")
    assert srv.request("POST", f"/v1/sandboxes/{sid}/kill", {"signal": "KILL"}).status == 204
    w = srv.ok("POST", f"/v1/sandboxes/{sid}/wait")
    assert w["exitCode"] == 137
    srv.request("DELETE", f"/v1/sandboxes/{sid}")


def test_sandbox_timeout_ends_it(srv):
    sb = create(srv, timeout=700, autoRemove=False)
    w = srv.ok("POST", f"/v1/sandboxes/{sb['id']}/wait")
    assert w["reason"] == "max_duration"
    srv.request("DELETE", f"/v1/sandboxes/{sb['id']}")


def test_create_errors(srv):
    srv.error("POST", "/v1/sandboxes", {"image": "no-such-image:1"}, status=404, word="not_found",
              match="no-such-image")
    srv.error("POST", "/v1/sandboxes", {"template": "nope"}, status=404, match="nope")
    srv.error("POST", "/v1/sandboxes", {}, status=400, match="either 'image' or 'template'")
    srv.error("POST", "/v1/sandboxes", {"image": "busybox", "name": "bad name!"}, status=400, match="bad name!")
    # a command that cannot start makes a sandbox that ended at once, saying why
    bad = srv.ok("POST", "/v1/sandboxes", {"image": "busybox", "command": ["/no/such"]}, status=201)
    assert bad["state"] == "exited" and bad["exitCode"] == 127 and "/no/such" in bad["error"]
    srv.request("DELETE", f"/v1/sandboxes/{bad['id']}")
    name = uniq("dup")
    create(srv, name=name)
    srv.error("POST", "/v1/sandboxes", {"image": "busybox", "name": name}, status=409, word="already_exists")
    srv.request("DELETE", f"/v1/sandboxes/{name}?force=1")


# --- hostile input ----------------------------------------------------------

@pytest.mark.parametrize("body,match", [
    (b"{", "malformed JSON"),
    (b"[]", "must be a JSON object"),
    (b"\"image\"", "must be a JSON object"),
    (b"{\"image\": 1}", "field 'image': expected a string"),
    (b"{\"image\": \"busybox\", \"limits\": {\"memory\": true}}", "field 'limits.memory'"),
    (b"{\"image\": \"busybox\", \"limits\": {\"cpus\": \"two\"}}", "field 'limits.cpus'"),
    (b"{\"image\": \"busybox\", \"command\": [1, 2]}", "field 'command'"),
    (b"{\"image\": \"busybox\", \"env\": {\"A\": 1}}", "field 'env.A'"),
    (b"{\"image\": \"busybox\", \"timeout\": -5}", "field 'timeout'"),
    (b"{\"image\": \"busybox\", \"imagee\": \"x\"}", "unknown field 'imagee'"),
    (b"{\"image\": \"busybox\", \"limits\": {\"memroy\": 1}}", "unknown field 'limits.memroy'"),
    (b"{\"image\": \"busybox\", \"image\": \"busybox\"}", "duplicate"),
    (b"{\"image\": \"busy\\u0000box\"}", "malformed JSON"),
    (b"{\"image\": \"\xff\xfe\"}", "malformed JSON"),
    # the library's hostname rule (RFC 1123), the same as the command line's
    (b"{\"image\": \"busybox\", \"hostname\": \"a\\nb\"}", "hostname"),
    (b"{\"image\": \"busybox\", \"hostname\": \"-web\"}", "hostname"),
])
def test_bad_json_is_400_naming_the_problem(srv, body, match):
    j = srv.error("POST", "/v1/sandboxes", body, status=400, headers={"Content-Type": "application/json"})
    assert match in j["message"], j


def test_huge_body_is_413_before_it_is_read(srv):
    c = srv.conn()
    c.putrequest("POST", "/v1/sandboxes")
    c.putheader("Authorization", "Bearer " + srv.token)
    c.putheader("Content-Length", str(100 << 20))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413
    j = json.loads(r.read())
    assert j["error"] == "too_large" and "104857600" in j["message"]
    c.close()
    assert srv.get("/v1/version").status == 200


def test_huge_chunked_body_is_cut_off(srv):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + srv.token.encode() +
              b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent = 0
    try:
        for _ in range(200):
            s.sendall(b"100000\r\n" + b"x" * 0x100000 + b"\r\n")
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    assert sent < 200, "the server swallowed 200 MiB of body"
    assert srv.get("/v1/version").status == 200


def test_body_limit_is_configurable(store):
    s = Serve(store, "--max-body", "2m")
    try:
        body = b"{\"image\": \"" + b"a" * (1 << 20) + b"\"}"
        s.error("POST", "/v1/sandboxes", body, status=400, match="too long",
                headers={"Content-Type": "application/json"})
        c = s.conn()
        c.putrequest("POST", "/v1/sandboxes")
        c.putheader("Authorization", "Bearer " + s.token)
        c.putheader("Content-Length", str(3 << 20))
        c.endheaders()
        r = c.getresponse()
        assert r.status == 413 and b"2097152" in r.read()
        c.close()
    finally:
        s.stop()


def test_10000_headers(srv):
    s = socket.create_connection(("127.0.0.1", srv.port))
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
    s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
    resp = s.recv(65536)
    s.close()
    assert resp.startswith(b"HTTP/1.1 431 ")
    # a count the connection can hold still gets our JSON
    r = srv.get("/v1/version", headers={f"X-H{i}": "v" for i in range(150)})
    assert r.status == 431 and r.json()["error"] == "too_many_headers"
    assert srv.get("/v1/version").status == 200


def test_half_sent_request_times_out_and_others_are_served(store):
    s = Serve(store, "--conn-timeout", "2s")
    try:
        stalled = socket.create_connection(("127.0.0.1", s.port))
        stalled.sendall(b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + s.token.encode() +
                        b"\r\nContent-Length: 100\r\n\r\n{\"ima")
        stalled_head = socket.create_connection(("127.0.0.1", s.port))
        stalled_head.sendall(b"GET /v1/vers")
        for _ in range(5):
            assert s.get("/v1/version").status == 200
        stalled.settimeout(30)
        stalled_head.settimeout(30)
        assert stalled.recv(100) == b""  # closed by the server
        assert stalled_head.recv(100) == b""
        stalled.close()
        stalled_head.close()
    finally:
        s.stop()


def test_client_that_never_reads_a_stream(srv):
    sb = create(srv, command=["sh", "-c", "while :; do echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; done"])
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(f"GET /v1/sandboxes/{sb['id']}/logs?follow=1 HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {srv.token}\r\n\r\n".encode())
    time.sleep(1.5)
    # the server keeps serving everybody else, and its memory stays bounded
    for _ in range(5):
        assert srv.get("/v1/version").status == 200
    rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{srv.proc.pid}/status").read()).group(1))
    assert rss < 200 * 1024, f"server RSS {rss} kB while a client does not read"
    s.close()
    srv.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=1")


@pytest.mark.parametrize("path,status", [
    ("/v1/sandboxes/" + "a" * 5000, 400),
    ("/v1/sandboxes/0123456789abcdef", 404),
    ("/v1/sandboxes/ab%00cd", 400),
    ("/v1/sandboxes?state=run%00ning", 400),
    ("/v1/sandboxes/%zz", 400),
    ("/v1/nothing-here", 404),
    ("/" + "/x" * 40, 404),
])
def test_bad_paths(srv, path, status):
    j = srv.error("GET", path, status=status)
    assert len(j["message"]) < 400


def test_wrong_method_is_405(srv):
    srv.error("PUT", "/v1/sandboxes", status=405, word="method_not_allowed")


# --- restart ----------------------------------------------------------------

def test_sandboxes_survive_a_restart_of_the_server(store):
    s = Serve(store)
    sb = create(s)
    s.stop()
    assert store.ok("exec", sb["id"], "echo", "alive") == "alive\n"
    s = Serve(store)
    try:
        assert s.ok("GET", f"/v1/sandboxes/{sb['id']}")["state"] == "running"
        assert s.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=true").status == 204
    finally:
        s.stop()


# --- admission --------------------------------------------------------------

@pytest.fixture
def bare_store(capsa):
    """A fresh store with busybox: its ledger holds only this test's sandboxes."""
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    yield capsa
    capsa.run("rm", "-f", "--all")


@pytest.mark.slow
def test_200_parallel_creates_against_a_ledger_of_50(bare_store):
    s = Serve(bare_store, "--capacity-memory", str(50 * 64) + "m", "--workers", "32")
    try:
        def one(_):
            return s.request("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"memory": "64m"}},
                             unix=True, timeout=300)
        with concurrent.futures.ThreadPoolExecutor(200) as ex:
            res = list(ex.map(one, range(200)))
        codes = [r.status for r in res]
        assert codes.count(201) == 50, codes
        assert codes.count(429) == 150, codes
        for r in res:
            if r.status == 429:
                j = r.json()
                assert j["error"] == "capacity_exhausted" and "memory" in j["message"], j
        led = s.ok("GET", "/v1/ledger")
        assert led["reserved"]["memory"] == 50 * (64 << 20) and led["sandboxes"] == 50
        ids = [r.json()["id"] for r in res if r.status == 201]
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            dels = list(ex.map(lambda i: s.request("DELETE", f"/v1/sandboxes/{i}?force=1", unix=True), ids))
        assert [d.status for d in dels] == [204] * 50
        led = s.ok("GET", "/v1/ledger")
        assert led["reserved"] == {"cpus": 0.0, "memory": 0, "disk": 0} and led["sandboxes"] == 0
    finally:
        s.stop()
    bare_store.assert_clean()


def test_429_names_the_exhausted_resource(bare_store):
    s = Serve(bare_store, "--capacity-cpus", "1", "--capacity-disk", "1g")
    try:
        a = s.ok("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"cpus": 0.75}}, status=201)
        s.error("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"cpus": 0.5}}, status=429,
                word="capacity_exhausted", match="cpus: 0.5 requested, 0.25 of 1 left")
        s.error("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"disk": "2g"}}, status=429,
                match="disk")
        # a sandbox without a cpu limit reserves no cpu
        b = s.ok("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"disk": "512m"}}, status=201)
        for x in (a, b):
            s.request("DELETE", f"/v1/sandboxes/{x['id']}?force=1")
        assert s.ok("GET", "/v1/ledger")["sandboxes"] == 0
    finally:
        s.stop()


def test_ledger_released_when_a_sandbox_crashes(bare_store):
    s = Serve(bare_store, "--capacity-memory", "128m")
    try:
        sb = s.ok("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"memory": "100m"}}, status=201)
        s.error("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"memory": "100m"}}, status=429)
        os.kill(sb["supervisorPid"], 9)
        # reconciliation (the server's ticker, or any library call) marks it lost
        deadline = time.time() + 30
        while time.time() < deadline:
            if s.ok("GET", "/v1/ledger")["sandboxes"] == 0:
                break
            time.sleep(0.2)
        assert s.ok("GET", f"/v1/sandboxes/{sb['id']}")["reason"] == "lost"
        assert s.ok("GET", "/v1/ledger")["reserved"]["memory"] == 0
        again = s.ok("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"memory": "100m"}}, status=201)
        s.request("DELETE", f"/v1/sandboxes/{again['id']}?force=1")
        s.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=1")
    finally:
        s.stop()
    bare_store.assert_clean()


def test_disk_pressure_guard(bare_store):
    s = Serve(bare_store)
    sb = s.ok("POST", "/v1/sandboxes", {"image": "busybox"}, status=201)
    s.stop()
    s = Serve(bare_store, "--min-free-disk", "1000000000g")
    try:
        j = s.error("POST", "/v1/sandboxes", {"image": "busybox"}, status=507, word="insufficient_storage")
        assert "disk pressure" in j["message"] and "below the minimum" in j["message"]
        # running sandboxes carry on
        assert bare_store.ok("exec", sb["id"], "echo", "fine") == "fine\n"
        s.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=1")
    finally:
        s.stop()


def test_cli_created_sandboxes_count_in_the_ledger(bare_store):
    name = uniq("cli")
    bare_store.ok("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "1000")
    s = Serve(bare_store)
    try:
        led = s.ok("GET", "/v1/ledger")
        assert led["reserved"]["memory"] == 32 << 20 and led["sandboxes"] == 1
    finally:
        s.stop()
    bare_store.ok("rm", "-f", name)


# --- metrics ----------------------------------------------------------------

def test_metrics(srv):
    sb = create(srv, name=uniq("m"))
    r = srv.get("/metrics")
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) capsa_\w+ ", line), line
            continue
        m = re.fullmatch(r'(capsa_\w+)(\{[^}]*\})? (-?[0-9.e+]+|\+Inf)', line)
        assert m, line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    assert samples['capsa_sandboxes{state="running"}'] >= 1
    assert samples["capsa_sandbox_creates_total"] >= 1
    assert samples['capsa_sandbox_create_duration_seconds_bucket{le="+Inf"}'] >= 1
    assert samples['capsa_ledger_reserved{resource="memory_bytes"}'] >= 512 << 20
    key = f'capsa_sandbox_memory_bytes{{id="{sb["id"]}",name="{sb["name"]}"}}'
    assert samples[key] > 0
    assert f'capsa_sandbox_pids{{id="{sb["id"]}",name="{sb["name"]}"}}' in samples
    assert f'capsa_sandbox_cpu_seconds_total{{id="{sb["id"]}",name="{sb["name"]}"}}' in samples
    assert "# TYPE capsa_sandbox_tunnel_rx_bytes_total counter" in text
    srv.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=1")


# --- templates and images ---------------------------------------------------

def test_templates(srv, store):
    name = uniq("tpl")
    store.ok("template", "create", name, "--image", "busybox", "--memory", "48m", "--cpus", "0.25")
    listed = json.loads(store.ok("template", "ls", "--json"))
    t = [x for x in listed if x["name"] == name][0]
    assert t == {"name": name, "image": "busybox", "cpus": 0.25, "memory": 48 << 20, "disk": 0, "builtin": False}
    assert srv.ok("GET", f"/v1/templates/{name}")["memory"] == 48 << 20
    sb = srv.ok("POST", "/v1/sandboxes", {"template": name}, status=201)
    assert sb["config"]["memory"] == 48 << 20 and sb["config"]["cpus"] == 0.25
    srv.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=1")
    store.fail("template", "create", uniq(), "--image", "nope:1", match="nope:1")
    store.fail("template", "create", "bad name", "--image", "busybox", match="bad name")
    assert store.ok("template", "rm", name) == name + "\n"
    store.fail("template", "rm", name, match=name)
    srv.error("GET", f"/v1/templates/{name}", status=404)
    made = srv.ok("POST", "/v1/templates", {"name": name, "image": "busybox", "disk": "1g"}, status=201)
    assert made["disk"] == 1 << 30
    srv.error("POST", "/v1/templates", {"name": name, "image": "busybox", "cpu": 1}, status=400,
              match="unknown field 'cpu'")
    assert srv.request("DELETE", f"/v1/templates/{name}").status == 204


def test_builtin_templates(srv, store):
    names = {t["name"]: t for t in srv.ok("GET", "/v1/templates")}
    if "debian:test" not in store.ok("image", "ls"):
        pytest.skip("debian test image not built")
    assert names["base"]["builtin"] and names["base"]["image"] == "debian:test"
    assert names["code-interpreter-v1"]["builtin"]
    store.fail("template", "rm", "base", match="built in")


def test_images(srv, store):
    imgs = srv.ok("GET", "/v1/images")
    bb = [i for i in imgs if "docker.io/library/busybox:latest" in i["names"]][0]
    assert bb["id"].startswith("sha256:") and bb["layers"] >= 1
    got = srv.ok("GET", "/v1/images/docker.io/library/busybox:latest")
    assert got["id"] == bb["id"]
    assert srv.ok("GET", "/v1/images/busybox")["id"] == bb["id"]
    srv.error("GET", "/v1/images/nope:nope", status=404)
    # upload an archive under a new name, then remove that name
    name = "upload-" + uuid.uuid4().hex[:6] + ":1"
    data = open(image_path("busybox-oci.tar"), "rb").read()
    res = srv.ok("POST", f"/v1/images/import?name={name}", data, status=201,
                 headers={"Content-Type": "application/x-tar"})
    assert res["format"] == "oci-archive" and res["ids"] == [bb["id"]]
    gone = srv.ok("DELETE", f"/v1/images/{name}")
    assert gone["untagged"] and not gone["deleted"]
    srv.error("POST", "/v1/images/import", b"not a tar", status=400,
              headers={"Content-Type": "application/x-tar"})


def test_openapi_describes_every_native_route():
    """docs/openapi.yaml and the route tables agree, both ways."""
    import yaml
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.join(here, "..", "..")
    routes = set()
    for f in ("server/api-native.c", "server/api-native-io.c"):
        for m in re.finditer(r'\{ "(\w+)", "(/[^"]+)"', open(os.path.join(repo, f)).read()):
            routes.add((m.group(1).lower(), re.sub(r"\{\*?\}", "{x}", m.group(2))))
    doc = yaml.safe_load(open(os.path.join(repo, "docs", "openapi.yaml")))
    documented = {(m, re.sub(r"\{[a-z]+\}", "{x}", p)) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "post", "put", "delete")}
    assert routes == documented, (sorted(routes - documented), sorted(documented - routes))
