"""A real registry for the pull tests: Debian's docker-registry on a random
loopback port (filesystem storage in a temp dir), optionally behind htpasswd
basic auth or token auth served by a small RS256 token server, images built
here as OCI layouts (tarfile + hashlib + json) and pushed with skopeo, and an
HTTP proxy that can slow, stall, corrupt or redirect blob downloads.
Nothing here talks to any host but loopback.
"""
import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse

# --- OCI layouts -------------------------------------------------------------

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "tar": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_tar(files):
    """files: {path: bytes}; a deterministic tar."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 1700000000
                    tf.addfile(ti)
            data = files[path]
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def compress(raw, kind):
    if kind == "tar":
        return raw
    if kind == "gzip":
        return gzip.compress(raw, mtime=0)
    if kind == "zstd":
        p = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, capture_output=True, check=True)
        return p.stdout
    raise ValueError(kind)


class Layout:
    """An OCI image layout directory being built."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}

    def blob(self, data):
        d = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    def image(self, layers, arch="amd64", os_="linux", variant=None, cmd=("/bin/sh",)):
        """layers: [(files dict, compression)]; returns the manifest
        descriptor (not yet in index.json) and the layer blobs."""
        ldescs, diff_ids, blobs = [], [], []
        for files, kind in layers:
            raw = make_tar(files)
            comp = compress(raw, kind)
            ldescs.append({"mediaType": MT_LAYER[kind], "digest": self.blob(comp), "size": len(comp)})
            diff_ids.append(sha256(raw))
            blobs.append(comp)
        plat = {"architecture": arch, "os": os_}
        if variant:
            plat["variant"] = variant
        config = dict(plat, config={"Cmd": list(cmd), "Env": ["PATH=/bin"]},
                      rootfs={"type": "layers", "diff_ids": diff_ids})
        cbytes = json.dumps(config, sort_keys=True).encode()
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                    "config": {"mediaType": MT_CONFIG, "digest": self.blob(cbytes), "size": len(cbytes)},
                    "layers": ldescs}
        mbytes = json.dumps(manifest, sort_keys=True).encode()
        desc = {"mediaType": MT_MANIFEST, "digest": self.blob(mbytes), "size": len(mbytes),
                "platform": plat}
        return desc, blobs

    def tag(self, desc, tag):
        d = dict(desc)
        d.pop("platform", None)
        d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index["manifests"].append(d)

    def index_blob(self, descs):
        """An index over descs, stored as a blob; its descriptor."""
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": descs}
        ibytes = json.dumps(idx, sort_keys=True).encode()
        return {"mediaType": MT_INDEX, "digest": self.blob(ibytes), "size": len(ibytes)}

    def tag_index(self, descs, tag):
        d = dict(self.index_blob(descs), annotations={"org.opencontainers.image.ref.name": tag})
        self.index["manifests"].append(d)
        return d

    def save(self):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f)


# --- processes and ports -----------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(port, path="/v2/", timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Server:
    """An HTTP server on a random port whose GET and HEAD requests go to
    self.handle(handler, method)."""

    http11 = False

    def serve(self, bind="127.0.0.1"):
        self.port = free_port()
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if srv.http11 else "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.handle(self, "GET")

            def do_HEAD(self):
                srv.handle(self, "HEAD")

        self.httpd = http.server.ThreadingHTTPServer((bind, self.port), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class TokenServer(Server):
    """Issues RS256 JWTs the way the distribution token spec describes, for
    users in `users` ({name: password}), granting `grants` ({repo: [actions]})
    to authenticated users and `anon` to anonymous ones.  The signature comes
    from `openssl dgst -sign` so that no Python crypto module is needed."""

    def __init__(self, workdir, service, users, grants, anon=None):
        self.dir = workdir
        self.service = service
        self.issuer = "capsa-test-issuer"
        self.users = users
        self.grants = grants
        self.anon = anon or {}
        self.key = os.path.join(workdir, "token.key")
        self.cert = os.path.join(workdir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-days", "2", "-subj", "/CN=capsa-test-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []
        self.serve()

    @property
    def realm(self):
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, claims):
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input,
                             check=True, capture_output=True).stdout
        return signing_input.decode() + "." + b64url(sig)

    def handle(self, h, method):
        u = urllib.parse.urlparse(h.path)
        q = urllib.parse.parse_qs(u.query)
        auth = h.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            try:
                name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                name, pw = None, None
            if name not in self.users or self.users[name] != pw:
                self.requests.append({"path": h.path, "user": name, "result": 401})
                h.send_response(401)
                h.send_header("Content-Type", "application/json")
                h.end_headers()
                h.wfile.write(b'{"details":"invalid username or password"}')
                return
            user = name
        access = []
        for scope in q.get("scope", []):
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            allowed = (self.grants if user else self.anon).get(parts[1], [])
            acts = [a for a in parts[2].split(",") if a in allowed]
            if acts:
                access.append({"type": "repository", "name": parts[1], "actions": acts})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": q.get("service", [""])[0],
                  "exp": now + 600, "nbf": now - 60, "iat": now, "jti": os.urandom(8).hex(),
                  "access": access}
        tok = self.sign(claims)
        self.requests.append({"path": h.path, "user": user, "result": 200, "scope": q.get("scope", [])})
        body = json.dumps({"token": tok, "expires_in": 600}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


class Registry:
    """docker-registry on 127.0.0.1:<random port>, storage in workdir."""

    def __init__(self, workdir, htpasswd=None, token=None):
        self.dir = workdir
        self.storage = os.path.join(workdir, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        cfg = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
               "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
               "  delete:", "    enabled: true",
               "http:", f"  addr: 127.0.0.1:{self.port}"]
        if htpasswd:
            path = os.path.join(workdir, "htpasswd")
            with open(path, "w"):
                pass
            for user, pw in htpasswd.items():
                subprocess.run(["htpasswd", "-Bb", path, user, pw], check=True, capture_output=True)
            cfg += ["auth:", "  htpasswd:", "    realm: capsa-test", f"    path: {path}"]
        if token:
            cfg += ["auth:", "  token:", f"    realm: {token.realm}", f"    service: {token.service}",
                    f"    issuer: {token.issuer}", f"    rootcertbundle: {token.cert}"]
        self.config = os.path.join(workdir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.log = open(os.path.join(workdir, "registry.log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_http(self.port)
        except Exception:
            self.stop()
            raise

    def blob_path(self, digest):
        h = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256", h[:2], h, "data")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def push(layout_dir, tag, dest, creds=None, all_=False):
    """skopeo copy oci:DIR:TAG docker://DEST."""
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if all_:
        cmd.append("--all")
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout_dir}:{tag}", f"docker://{dest}"]
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(k, None)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"skopeo push {tag} -> {dest}: {p.stderr}")


def put_manifest(registry, repo, tag, layout, desc):
    """PUT a manifest or index of the layout straight through the registry
    API (skopeo cannot push an index of indexes); what it references must
    be in the repository already."""
    with open(os.path.join(layout.path, "blobs", "sha256", desc["digest"][7:]), "rb") as f:
        body = f.read()
    c = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
    c.request("PUT", f"/v2/{repo}/manifests/{tag}", body=body, headers={"Content-Type": desc["mediaType"]})
    r = c.getresponse()
    text = r.read()
    c.close()
    if r.status != 201:
        raise RuntimeError(f"put manifest {repo}:{tag}: HTTP {r.status}: {text[:300]}")


# --- a proxy that misbehaves on purpose ------------------------------------

class Proxy(Server):
    """Forwards every request to 127.0.0.1:<upstream> and records each one
    (path, Range, Authorization, body bytes sent).  Modes, for blob GETs
    unless said otherwise:
      pass              forward as is
      stall             send `stall_after` bytes of blob `stall_digest`, then
                        hold the connection until stop()
      norange           drop the Range header (a registry without Range)
      corrupt           flip the first byte of blob `stall_digest` (every
                        blob when None)
      corrupt-manifest  append a space to manifests (valid JSON, wrong digest)
      huge-manifest     announce a 64 MiB manifest and stream zeros
      gate              hold each blob answer until `gate` are in flight (or
                        every blob of the image asked), to count parallelism
      redirect          answer 307 to the blob at `storage` (another host name)
    """

    def __init__(self, upstream_port, mode="pass", stall_after=0, stall_digest=None, storage=None,
                 gate=0, gate_total=7, bind="127.0.0.1"):
        self.upstream = upstream_port
        self.mode = mode
        self.stall_after = stall_after
        self.stall_digest = stall_digest
        self.storage = storage
        self.gate = gate
        self.gate_total = gate_total
        self.requests = []
        self.sent = {}
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.inflight = 0
        self.max_inflight = 0
        self.gate_seen = 0
        self.http11 = True
        self.serve(bind)
        self.host = f"127.0.0.1:{self.port}"

    def blob_requests(self):
        return [r for r in self.requests if "/blobs/" in r["path"]]

    def handle(self, h, method):
        rec = {"path": h.path, "method": method, "range": h.headers.get("Range"),
               "auth": h.headers.get("Authorization"), "sent": 0}
        self.requests.append(rec)
        is_blob = "/blobs/sha256:" in h.path and method == "GET"
        is_manifest = "/manifests/" in h.path and method == "GET"
        try:
            if is_blob and self.mode == "gate":
                with self.cond:
                    self.inflight += 1
                    self.gate_seen += 1
                    self.max_inflight = max(self.max_inflight, self.inflight)
                    self.cond.notify_all()
                    self.cond.wait_for(lambda: self.inflight >= self.gate or self.gate_seen >= self.gate_total,
                                       timeout=10)
                try:
                    self.forward(h, method, rec, is_blob, is_manifest)
                finally:
                    with self.cond:
                        self.inflight -= 1
                return
            self.forward(h, method, rec, is_blob, is_manifest)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def forward(self, h, method, rec, is_blob, is_manifest):
        if is_blob and self.mode == "redirect":
            digest = h.path.rsplit("/", 1)[1]
            h.send_response(307)
            h.send_header("Location", f"http://localhost:{self.storage.port}/data/{digest}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if is_manifest and self.mode == "huge-manifest":
            h.send_response(200)
            h.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            h.send_header("Content-Length", str(64 << 20))
            h.end_headers()
            chunk = b"\0" * 65536
            for _ in range(1024):
                h.wfile.write(chunk)
                self.sent["huge"] = self.sent.get("huge", 0) + len(chunk)
            return
        c = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
        drop = {"host", "connection"}
        if is_blob and self.mode == "norange":
            drop.add("range")
        headers = {k: v for k, v in h.headers.items() if k.lower() not in drop}
        c.request(method, h.path, headers=headers)
        r = c.getresponse()
        body = r.read() if method == "GET" else b""
        c.close()
        if is_manifest and self.mode == "corrupt-manifest" and r.status == 200:
            body = body + b" "
        if (is_blob and self.mode == "corrupt" and r.status == 200 and body and
                (self.stall_digest is None or h.path.endswith(self.stall_digest))):
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                h.send_header(k, v)
        length = len(body) if method == "GET" else int(r.headers.get("Content-Length", "0"))
        h.send_header("Content-Length", str(length))
        h.end_headers()
        if method == "HEAD":
            return
        stall = (is_blob and self.mode == "stall" and r.status in (200, 206) and
                 h.path.endswith(self.stall_digest or "-") and len(body) > self.stall_after)
        if stall:
            h.wfile.write(body[:self.stall_after])
            h.wfile.flush()
            rec["sent"] = self.stall_after
            self.release.wait()
            return
        h.wfile.write(body)
        rec["sent"] = len(body)

    def stop(self):
        self.release.set()
        super().stop()


class Storage(Server):
    """Serves the registry's stored blob files at /data/<digest>, like a
    blob storage backend a registry redirects to; records Authorization."""

    def __init__(self, registry):
        self.registry = registry
        self.requests = []
        self.serve()

    def handle(self, h, method):
        self.requests.append({"path": h.path, "auth": h.headers.get("Authorization"),
                              "range": h.headers.get("Range")})
        digest = h.path.rsplit("/", 1)[1]
        try:
            with open(self.registry.blob_path(digest), "rb") as f:
                data = f.read()
        except OSError:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method == "GET":
            h.wfile.write(data)


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)
