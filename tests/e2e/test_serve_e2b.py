"""capsa serve's E2B protocol driven by hand (no SDK): what the SDKs never
send but a hostile or broken client may, the Connect framing, the sandbox
plane's routing and tokens, and state that must survive a server restart."""
import base64
import json
import socket
import struct
import time
import uuid

import pytest

from serve_env import Serve

ENVD = {"E2b-Sandbox-Port": "49983"}
INTERP = {"E2b-Sandbox-Port": "49999"}


@pytest.fixture
def srv(store):
    if "debian" not in store.ok("image", "ls"):
        pytest.skip("the Debian test image (tests/images/build.sh) is needed for the E2B templates")
    s = Serve(store)
    yield s
    s.stop()


@pytest.fixture
def e2b(srv):
    got = srv.ok("POST", "/v2/sandboxes", {"templateID": "base", "timeout": 120}, status=201)
    yield got
    srv.request("DELETE", f"/sandboxes/{got['sandboxID']}")


def plane(sid, port=ENVD, token=None):
    h = {"E2b-Sandbox-Id": sid}
    h.update(port)
    if token:
        h["X-Access-Token"] = token
    return h


def envelope(obj, flags=0):
    data = json.dumps(obj).encode()
    return struct.pack(">BI", flags, len(data)) + data


def unframe(body):
    out = []
    while body:
        flags, n = struct.unpack(">BI", body[:5])
        out.append((flags, json.loads(body[5:5 + n])))
        body = body[5 + n:]
    return out


def rpc(srv, sid, method, msg, stream=False, raw=None, token=None, unix=True):
    h = plane(sid, token=token)
    h["Connect-Protocol-Version"] = "1"
    h["Content-Type"] = "application/connect+json" if stream else "application/json"
    body = raw if raw is not None else (envelope(msg) if stream else json.dumps(msg).encode())
    return srv.request("POST", f"/{method}", body=body, headers=h, unix=unix, auth=not token)


# --- control plane ------------------------------------------------------------

def test_create_info_list_kill_by_hand(srv, e2b):
    sid = e2b["sandboxID"]
    assert e2b["envdVersion"] == "0.5.7" and e2b["envdAccessToken"] == e2b["trafficAccessToken"]
    info = srv.ok("GET", f"/sandboxes/{sid}")
    assert info["state"] == "running" and info["templateID"] == "base" and info["metadata"] == {}
    assert srv.request("POST", f"/sandboxes/{sid}/timeout", {"timeout": 60}).status == 204
    assert srv.request("POST", f"/sandboxes/{sid}/refreshes", {"duration": 30}).status == 204
    listed = srv.get("/sandboxes").json()
    assert sid in [s["sandboxID"] for s in listed]
    # resume of a running sandbox is a conflict; connect of it is 200
    srv.error("POST", f"/sandboxes/{sid}/resume", {}, status=409)
    assert srv.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 10}).status == 200


@pytest.mark.parametrize("body,status,match", [
    ({}, 400, "templateID"),
    ({"templateID": 5}, 400, "templateID"),
    ({"templateID": "no-such-template"}, 404, "no-such-template"),
    ({"templateID": "base", "timeout": "long"}, 400, "timeout"),
    ({"templateID": "base", "timeout": -1}, 400, "timeout"),
    ({"templateID": "base", "metadata": {"a": 1}}, 400, "metadata"),
    ({"templateID": "base", "metadata": {"capsa.template": "x"}}, 400, "reserved"),
    ({"templateID": "base", "envVars": ["A=1"]}, 400, "envVars"),
    ({"templateID": "base", "mcp": {"x": {}}}, 400, "mcp"),
    ({"templateID": "base", "volumeMounts": [{"name": "v", "path": "/v"}]}, 400, "volumeMounts"),
    ({"templateID": "base", "autoPause": True}, 400, "autoPause"),
])
def test_create_refusals(srv, body, status, match):
    j = srv.error("POST", "/v2/sandboxes", body, status=status)
    assert match in j["message"], j


def test_unknown_sandbox_everywhere(srv):
    nope = "0" * 64
    for method, path in (("GET", f"/sandboxes/{nope}"), ("DELETE", f"/sandboxes/{nope}"),
                         ("POST", f"/sandboxes/{nope}/timeout"), ("POST", f"/sandboxes/{nope}/pause"),
                         ("POST", f"/v2/sandboxes/{nope}/connect"), ("GET", f"/sandboxes/{nope}/metrics")):
        r = srv.request(method, path, body={"timeout": 5} if method == "POST" else None)
        assert r.status == 404 and r.json()["code"] == 404, (method, path, r)
    r = srv.get("/v2/sandboxes?nextToken=garbage")
    assert r.status == 400
    # the sandbox plane answers 502 for a sandbox that is not there, as E2B's proxy does
    assert srv.get("/health", headers=plane(nope)).status == 502
    assert srv.get("/health", headers=plane("x" * 5000)).status == 502
    assert rpc(srv, nope, "process.Process/List", {}).status == 502


def test_sandbox_plane_routing_and_tokens(srv, e2b):
    sid, tok = e2b["sandboxID"], e2b["envdAccessToken"]
    assert srv.get("/health", headers=plane(sid)).status == 204
    assert srv.get("/health", headers=plane(sid, INTERP)).status == 200
    r = srv.get("/", headers=plane(sid, {"E2b-Sandbox-Port": "8080"}))
    assert r.status == 502 and "8080" in r.json()["message"]
    # over TCP the sandbox's token opens its plane, and only its plane
    assert srv.request("GET", "/health", headers=plane(sid, token=tok), auth=False).status == 204
    assert srv.request("GET", "/health", headers=plane(sid, token="0" * 64), auth=False).status == 401
    other = srv.ok("POST", "/v2/sandboxes", {"templateID": "base"}, status=201)
    try:
        assert srv.request("GET", "/health", headers=plane(other["sandboxID"], token=tok), auth=False).status == 401
        assert srv.request("GET", "/v2/sandboxes", headers={"X-Access-Token": tok}, auth=False).status == 401
    finally:
        srv.request("DELETE", f"/sandboxes/{other['sandboxID']}")


# --- Connect framing and bad input --------------------------------------------

def test_connect_unary_and_stream_by_hand(srv, e2b):
    sid = e2b["sandboxID"]
    r = rpc(srv, sid, "process.Process/Start",
            {"process": {"cmd": "/bin/sh", "args": ["-c", "echo hi; exit 7"]}}, stream=True)
    assert r.status == 200 and r.header("Content-Type") == "application/connect+json"
    frames = unframe(r.body)
    assert frames[0][1]["event"]["start"]["pid"] > 0
    data = b"".join(base64.b64decode(f[1]["event"]["data"]["stdout"]) for f in frames
                    if "data" in f[1].get("event", {}))
    assert data == b"hi\n"
    end = [f[1]["event"]["end"] for f in frames if "end" in f[1].get("event", {})][0]
    assert end["exitCode"] == 7 and end["exited"] is True and end["status"] == "exit status 7"
    assert frames[-1] == (2, {})
    # snake_case is accepted too
    r = rpc(srv, sid, "filesystem.Filesystem/ListDir", {"path": "/", "depth": 1})
    names = [e["name"] for e in r.json()["entries"]]
    assert "etc" in names and "tmp" in names


@pytest.mark.parametrize("raw,stream,code", [
    (b"{", False, "invalid_argument"),
    (b"[]", False, "invalid_argument"),
    (b"\x00\x00\x00\x00\x05{}", True, "invalid_argument"),    # length mismatch
    (b"\x01\x00\x00\x00\x02{}", True, "invalid_argument"),    # compressed
    (b"\x00\x00", True, "invalid_argument"),                  # short envelope
])
def test_malformed_connect_messages(srv, e2b, raw, stream, code):
    method = "process.Process/Start" if stream else "filesystem.Filesystem/Stat"
    r = rpc(srv, e2b["sandboxID"], method, None, stream=stream, raw=raw)
    if stream:
        assert r.status == 200
        flags, end = unframe(r.body)[-1]
        assert flags == 2 and end["error"]["code"] == code, end
    else:
        assert r.status == 400 and r.json()["code"] == code


def test_connect_errors(srv, e2b):
    sid = e2b["sandboxID"]
    r = rpc(srv, sid, "filesystem.Filesystem/Stat", {"path": "/no/such"})
    assert r.status == 404 and r.json()["code"] == "not_found"
    r = rpc(srv, sid, "process.Process/SendSignal", {"process": {"pid": 99999}, "signal": "SIGNAL_SIGKILL"})
    assert r.status == 404 and r.json()["code"] == "not_found"
    r = rpc(srv, sid, "process.Process/SendInput", {"process": {"pid": 1}, "input": {"stdin": "!!notbase64"}})
    assert r.status == 400
    r = rpc(srv, sid, "process.Process/Start", {"process": {"args": ["x"]}}, stream=True)
    flags, end = unframe(r.body)[-1]
    assert end["error"]["code"] == "invalid_argument"
    r = rpc(srv, sid, "process.Process/StreamInput", {})
    assert r.status == 501 and r.json()["code"] == "unimplemented"
    r = rpc(srv, sid, "filesystem.Filesystem/MakeDir", {"path": "/tmp"})
    assert r.status == 409 and r.json()["code"] == "already_exists"
    r = rpc(srv, sid, "filesystem.Filesystem/GetWatcherEvents", {"watcherId": "w999999"})
    assert r.status == 404
    r = rpc(srv, sid, "nope.Service/Method", {})
    assert r.status == 404


def test_polled_watcher(srv, e2b):
    sid = e2b["sandboxID"]
    rpc(srv, sid, "filesystem.Filesystem/MakeDir", {"path": "/tmp/pw"})
    wid = rpc(srv, sid, "filesystem.Filesystem/CreateWatcher", {"path": "/tmp/pw"}).json()["watcherId"]
    srv.request("POST", "/files?path=/tmp/pw/f.txt", body=b"x",
                headers=dict(plane(sid), **{"Content-Type": "application/octet-stream"}))
    events = []
    end = time.time() + 20
    while time.time() < end and not any(e["name"] == "f.txt" for e in events):
        events += rpc(srv, sid, "filesystem.Filesystem/GetWatcherEvents", {"watcherId": wid}).json()["events"]
        time.sleep(0.1)
    assert any(e["name"] == "f.txt" and e["type"] == "EVENT_TYPE_CREATE" for e in events), events
    assert rpc(srv, sid, "filesystem.Filesystem/RemoveWatcher", {"watcherId": wid}).status == 200
    assert rpc(srv, sid, "filesystem.Filesystem/GetWatcherEvents", {"watcherId": wid}).status == 404


def test_files_endpoint_bad_input(srv, e2b):
    sid = e2b["sandboxID"]
    h = plane(sid)
    r = srv.get("/files?path=/tmp/nope", headers=h)
    assert r.status == 404 and r.json()["code"] == 404
    assert srv.get("/files?path=/tmp", headers=h).status == 400
    assert srv.get("/files?path=/tm%00p", headers=h).status == 400
    assert srv.get("/files", headers=h).status == 400
    r = srv.request("POST", "/files?path=/tmp/x", body=b"data", headers=dict(h, **{"Content-Type": "text/plain"}))
    assert r.status == 400
    r = srv.request("POST", "/files", body=b"--B\r\nbroken",
                    headers=dict(h, **{"Content-Type": "multipart/form-data; boundary=B"}))
    assert r.status == 400
    r = srv.request("POST", "/files?path=/tmp/gz", body=b"not gzip",
                    headers=dict(h, **{"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}))
    assert r.status == 400 and "gzip" in r.json()["message"]
    r = srv.request("POST", "/files?path=/tmp/x", body=b"x",
                    headers=dict(h, **{"Content-Type": "application/octet-stream", "Content-Encoding": "br"}))
    assert r.status == 415
    # a raw upload names its path, a multipart part may instead
    body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/m1\"\r\n\r\none\r\n"
            b"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nignored\r\n--B--\r\n")
    r = srv.request("POST", "/files", body=body, headers=dict(h, **{"Content-Type": "multipart/form-data; boundary=B"}))
    assert r.status == 200 and r.json() == [{"name": "m1", "type": "file", "path": "/tmp/m1"}]
    assert srv.get("/files?path=/tmp/m1", headers=h).body == b"one"


def test_envd_files_as_a_user(srv, e2b):
    """envd's user (Authorization: Basic, or ?username= on /files) is a
    credential for every filesystem call: nobody gets permission_denied /
    403 where nobody's shell gets "Permission denied"; no user is root."""
    sid = e2b["sandboxID"]
    nobody = {"Authorization": "Basic " + base64.b64encode(b"nobody:").decode()}

    def call(method, msg):
        h = plane(sid)
        h.update(nobody)
        h["Connect-Protocol-Version"] = "1"
        h["Content-Type"] = "application/json"
        # over the unix socket: no API token to share Authorization with
        return srv.request("POST", f"/{method}", body=json.dumps(msg).encode(), headers=h, unix=True)

    for method, msg, named in (("filesystem.Filesystem/ListDir", {"path": "/root", "depth": 1}, "/root"),
                               ("filesystem.Filesystem/MakeDir", {"path": "/root/d"}, "/root/d"),
                               ("filesystem.Filesystem/Remove", {"path": "/etc/hostname"}, "/etc/hostname"),
                               ("filesystem.Filesystem/Move", {"source": "/etc/hostname", "destination": "/h"},
                                "/etc/hostname")):
        r = call(method, msg)
        j = r.json()
        assert r.status == 403 and j["code"] == "permission_denied", (method, r.status, j)
        assert named in j["message"] and "nobody" in j["message"], j
    r = srv.request("GET", "/files?path=/etc/shadow&username=nobody", headers=plane(sid))
    assert r.status == 403 and "permission denied" in r.json()["message"] and "nobody" in r.json()["message"]
    r = srv.request("POST", "/files?path=/etc/evil&username=nobody", body=b"x",
                    headers=dict(plane(sid), **{"Content-Type": "application/octet-stream"}))
    assert r.status == 403, r.body
    r = srv.request("GET", "/files?path=/etc/shadow", headers=plane(sid))
    assert r.status == 200 and r.body.startswith(b"root:")
    assert srv.request("GET", "/files?path=/etc/evil", headers=plane(sid)).status == 404
    r = srv.request("GET", "/files?path=/proc/1/maps", headers=plane(sid))
    assert r.status == 403 and "off limits" in r.json()["message"], r.body


# --- the code interpreter -------------------------------------------------------

def execute(srv, sid, code, **kw):
    body = dict(code=code, **kw)
    r = srv.request("POST", "/execute", body=body, headers=plane(sid, INTERP))
    if r.status != 200:
        return r.status, r.json()
    return 200, [json.loads(l) for l in r.body.splitlines() if l.strip()]


def test_interpreter_survives_a_server_restart(store):
    if "debian" not in store.ok("image", "ls"):
        pytest.skip("the Debian test image is needed")
    s = Serve(store)
    sid = s.ok("POST", "/v2/sandboxes", {"templateID": "code-interpreter-v1"}, status=201)["sandboxID"]
    ctx = s.ok("POST", "/contexts", {"cwd": "/tmp"}, headers=plane(sid, INTERP))
    st, out = execute(s, sid, "kept = 'across restarts'", context_id=ctx["id"])
    assert st == 200 and out[-1] == {"type": "end_of_execution"}
    s.stop()
    s = Serve(store)
    try:
        st, out = execute(s, sid, "kept", context_id=ctx["id"])
        assert st == 200 and {"type": "result", "is_main_result": True, "text": "'across restarts'"} in out, out
        ids = [c["id"] for c in s.ok("GET", "/contexts", headers=plane(sid, INTERP))]
        assert ctx["id"] in ids and "default" in ids
    finally:
        s.request("DELETE", f"/sandboxes/{sid}")
        s.stop()


def test_interpreter_errors(srv, e2b):
    sid = e2b["sandboxID"]
    st, j = execute(srv, sid, "1", context_id="nope")
    assert st == 404 and j["code"] == 404
    st, j = execute(srv, sid, "1", language="r")
    assert st == 400 and "Python" in j["message"]
    r = srv.request("POST", "/execute", body={"context_id": "x"}, headers=plane(sid, INTERP))
    assert r.status == 400 and "code" in r.json()["message"]
    assert srv.request("DELETE", "/contexts/nope", headers=plane(sid, INTERP)).status == 404
    assert srv.request("DELETE", "/contexts/default", headers=plane(sid, INTERP)).status == 400


def test_interpreter_without_python(srv, store):
    sb = srv.ok("POST", "/v1/sandboxes", {"image": "busybox"}, status=201)["id"]
    try:
        st, j = execute(srv, sb, "1")
        assert st == 500 and "python3" in j["message"], j
    finally:
        srv.request("DELETE", f"/v1/sandboxes/{sb}?force=true")


# --- backpressure -----------------------------------------------------------------

def test_process_client_that_never_reads(srv, e2b):
    """A process flooding stdout to a client that does not read blocks in
    write(2); the server's memory stays bounded and others are served."""
    sid = e2b["sandboxID"]
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = envelope({"process": {"cmd": "/bin/sh", "args": ["-c", "yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},
                     "tag": "flood"})
    head = (f"POST /process.Process/Start HTTP/1.1\r\nHost: x\r\nE2b-Sandbox-Id: {sid}\r\n"
            f"E2b-Sandbox-Port: 49983\r\nAuthorization: Bearer {srv.token}\r\n"
            f"Content-Type: application/connect+json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body)
    time.sleep(2)
    rss = [int(l.split()[1]) for l in open(f"/proc/{srv.proc.pid}/status") if l.startswith("VmRSS")][0]
    assert rss < 200 * 1024, f"server RSS {rss} kB"
    for _ in range(3):
        assert srv.get("/v1/version").status == 200
    # the flooding process is blocked, not spinning: its cpu time barely moves
    r = rpc(srv, sid, "process.Process/List", {})
    pid = [p["pid"] for p in r.json()["processes"] if p.get("tag") == "flood"][0]
    s.close()
    rpc(srv, sid, "process.Process/SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"})
