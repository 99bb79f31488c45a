"""capsa pull / login / logout against a real registry.

Debian's docker-registry runs on a random loopback port with its storage in
a temp dir; images are OCI layouts built here and pushed with skopeo.  A
token-auth registry (with a small RS256 token server) and an htpasswd one
cover authentication; a proxy in front of the registry stalls, corrupts,
strips Range or redirects to cover resume, verification and redirects.
"""
import base64
import json
import os
import pty
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import capsa_bin
from registry_env import Layout, Proxy, Registry, Storage, TokenServer, push, put_manifest, rmtree, sha256

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in ("/usr/bin/docker-registry", "/usr/bin/skopeo", "/usr/bin/htpasswd")),
    reason="docker-registry, skopeo and apache2-utils are needed (scripts/deps.sh)")

BIG = 8 << 20  # the layer the resume tests interrupt


class Images:
    """The OCI layout every registry here is filled from."""

    def __init__(self, d):
        lay = Layout(os.path.join(d, "layout"))
        self.single, self.single_blobs = lay.image(
            [({"bin/hello": b"hello from gzip\n"}, "gzip"),
             ({"etc/zstd-layer": b"zstd content\n" * 100}, "zstd")])
        lay.tag(self.single, "single")
        self.amd64, _ = lay.image([({"bin/arch": b"amd64\n"}, "gzip")], arch="amd64")
        self.arm64, _ = lay.image([({"bin/arch": b"arm64\n"}, "gzip")], arch="arm64", variant="v8")
        self.index = lay.tag_index([self.amd64, self.arm64], "multi")
        # an index whose one entry is an index (pushed by hand, see registry())
        self.inner = lay.index_blob([self.amd64, self.arm64])
        self.nested = lay.index_blob([self.inner])
        # incompressible, so the layer really is about BIG bytes (gzip: skopeo
        # would compress a plain tar layer on push and change its digest)
        self.big, self.big_blobs = lay.image([({"data/random": os.urandom(BIG)}, "gzip")])
        lay.tag(self.big, "big")
        self.many, _ = lay.image([({f"l{i}/f": os.urandom(4096)}, "gzip") for i in range(6)])
        lay.tag(self.many, "many")
        lay.save()
        self.layout = lay
        self.path = lay.path

    def manifest(self, desc):
        with open(os.path.join(self.path, "blobs", "sha256", desc["digest"][7:]), "rb") as f:
            return json.load(f)

    def layers(self, desc):
        return [l["digest"] for l in self.manifest(desc)["layers"]]

    def layer_size(self, desc, i):
        return self.manifest(desc)["layers"][i]["size"]

    def config(self, desc):
        return self.manifest(desc)["config"]["digest"]

    def diff_ids(self, desc):
        with open(os.path.join(self.path, "blobs", "sha256", self.config(desc)[7:]), "rb") as f:
            return json.load(f)["rootfs"]["diff_ids"]


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="capsa-pull-")
    yield d
    rmtree(d)


@pytest.fixture(scope="module")
def images(workdir):
    return Images(workdir)


@pytest.fixture(scope="module")
def registry(workdir, images):
    r = Registry(os.path.join(workdir, "open"))
    try:
        push(images.path, "single", f"{r.host}/test/single:v1")
        push(images.path, "multi", f"{r.host}/test/multi:v1", all_=True)
        push(images.path, "multi", f"{r.host}/test/nested:inner", all_=True)
        put_manifest(r, "test/nested", "v1", images.layout, images.nested)
        push(images.path, "big", f"{r.host}/test/big:v1")
        push(images.path, "many", f"{r.host}/test/many:v1")
    except Exception:
        r.stop()
        raise
    yield r
    r.stop()


@pytest.fixture(scope="module")
def token_registry(workdir, images):
    d = os.path.join(workdir, "token")
    os.makedirs(d)
    ts = TokenServer(d, "capsa-test", users={"alice": "s3cret"},
                     grants={"private/app": ["pull", "push"]})
    r = Registry(d, token=ts)
    try:
        push(images.path, "single", f"{r.host}/private/app:v1", creds="alice:s3cret")
    except Exception:
        r.stop()
        ts.stop()
        raise
    r.tokens = ts
    yield r
    r.stop()
    ts.stop()


@pytest.fixture(scope="module")
def basic_registry(workdir, images):
    r = Registry(os.path.join(workdir, "basic"), htpasswd={"bob": "hunter2"})
    try:
        push(images.path, "single", f"{r.host}/team/tool:v1", creds="bob:hunter2")
    except Exception:
        r.stop()
        raise
    yield r
    r.stop()


@pytest.fixture
def proxy_factory():
    made = []

    def make(upstream, **kw):
        p = Proxy(upstream.port, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def blob_file(c, digest):
    return os.path.join(c.root, "blobs", "sha256", digest[7:])


def recorded(c, ref):
    """(image id, manifest digest, platform) of ref, as `capsa image inspect` shows it."""
    j = c.json("image", "inspect", ref)
    assert ref in j["names"]
    return j["id"], j["digest"], j["platform"]


def layer_file(c, diff_id, path):
    with open(os.path.join(c.root, "layers", diff_id[7:], path), "rb") as f:
        return f.read()


def tmp_files(c):
    """Blob downloads left in the store's tmp/ (partial or not)."""
    t = os.path.join(c.root, "tmp")
    names = sorted(os.listdir(t)) if os.path.isdir(t) else []
    return [n for n in names if n.startswith(("sha256-", "blob-"))]


# --- pulling --------------------------------------------------------------

def test_pull_single_platform_gzip_and_zstd_layers(capsa, registry, images):
    out = capsa.ok("pull", f"{registry.host}/test/single:v1")
    assert f"Digest: {images.single['digest']}" in out
    assert out.strip().splitlines()[-1] == f"Digest: {images.single['digest']}"
    layers = images.layers(images.single)
    assert len(layers) == 2
    for d in layers + [images.config(images.single), images.single["digest"]]:
        with open(blob_file(capsa, d), "rb") as f:
            assert sha256(f.read()) == d
    # plain lines when stdout is not a terminal
    assert f"layer {layers[0]}: downloading" in out
    assert f"layer {layers[1]}: done" in out
    assert tmp_files(capsa) == []
    # recorded and unpacked: the gzip and the zstd layer
    ref = f"{registry.host}/test/single:v1"
    assert recorded(capsa, ref) == (images.config(images.single), images.single["digest"], "linux/amd64")
    gz, zst = images.diff_ids(images.single)
    assert layer_file(capsa, gz, "bin/hello") == b"hello from gzip\n"
    assert layer_file(capsa, zst, "etc/zstd-layer") == b"zstd content\n" * 100
    capsa.assert_clean()


def test_pull_twice_downloads_nothing_again(capsa, registry, images, proxy_factory):
    px = proxy_factory(registry)
    capsa.ok("pull", f"{px.host}/test/single:v1")
    first = len(px.blob_requests())
    assert first == 3
    out = capsa.ok("pull", f"{px.host}/test/single:v1")
    assert len(px.blob_requests()) == first
    assert out.count("already present") == 3


def test_pull_quiet_prints_only_the_digest(capsa, registry, images):
    out = capsa.ok("pull", "--quiet", f"{registry.host}/test/single:v1")
    assert out == images.single["digest"] + "\n"


@pytest.mark.parametrize("platform", [None, "linux/arm64"])
def test_pull_index_picks_the_platform(capsa, registry, images, platform):
    """linux/amd64 by default; --platform picks the other entry."""
    want, other = (images.amd64, images.arm64) if platform is None else (images.arm64, images.amd64)
    name = "linux/amd64" if platform is None else "linux/arm64/v8"
    ref = f"{registry.host}/test/multi:v1"
    out = capsa.ok("pull", *(["--platform", platform] if platform else []), ref)
    # the digest printed is the index's: pulling by it gives the same image
    assert out.strip().splitlines()[-1] == f"Digest: {images.index['digest']}"
    assert f"for {name}" in out
    assert os.path.exists(blob_file(capsa, want["digest"]))
    assert not os.path.exists(blob_file(capsa, other["digest"]))
    for d in images.layers(want):
        assert os.path.exists(blob_file(capsa, d))
    assert recorded(capsa, ref) == (images.config(want), want["digest"], name)
    arch = name.split("/")[1].encode()
    assert layer_file(capsa, images.diff_ids(want)[0], "bin/arch") == arch + b"\n"


def test_pull_nested_index(capsa, registry, images):
    """An index whose one entry is an index (as some builders write)."""
    ref = f"{registry.host}/test/nested:v1"
    out = capsa.ok("pull", "--platform", "linux/arm64", ref)
    assert out.strip().splitlines()[-1] == f"Digest: {images.nested['digest']}"
    assert recorded(capsa, ref) == (images.config(images.arm64), images.arm64["digest"], "linux/arm64/v8")


def test_pull_unknown_platform_lists_what_the_index_has(capsa, registry):
    err = capsa.fail("pull", "--platform", "linux/s390x", f"{registry.host}/test/multi:v1",
                     match="linux/s390x")
    assert "linux/amd64" in err and "linux/arm64/v8" in err


def test_pull_by_digest(capsa, registry, images):
    ref = f"{registry.host}/test/multi@{images.index['digest']}"
    out = capsa.ok("pull", "-q", ref)
    assert out.strip() == images.index["digest"]
    assert os.path.exists(blob_file(capsa, images.amd64["digest"]))
    assert recorded(capsa, ref)[0] == images.config(images.amd64)


def test_pull_manifest_unknown(capsa, registry):
    err = capsa.fail("pull", f"{registry.host}/test/single:nope", match="manifest unknown")
    assert f"pull {registry.host}/test/single:nope" in err
    assert f"registry {registry.host}" in err
    err = capsa.fail("pull", f"{registry.host}/no/such/repo:v1", match="manifest unknown")
    missing = "sha256:" + "ab" * 32
    capsa.fail("pull", f"{registry.host}/test/single@{missing}", match="manifest unknown")
    assert tmp_files(capsa) == []


def test_pull_unreachable_registry(capsa):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    err = capsa.fail("pull", f"127.0.0.1:{port}/x/y:1", match="unreachable")
    assert f"registry 127.0.0.1:{port}" in err


def test_pull_invalid_reference_and_platform(capsa):
    capsa.fail("pull", "UPPER/Case:1", match="UPPER/Case")
    capsa.fail("pull", "--platform", "linux", "127.0.0.1:1/a/b", match="linux")
    capsa.fail("pull", match="expected one image reference")


def non_loopback_ip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def test_plain_http_only_for_loopback_or_insecure_registries(capsa, registry, images):
    ip = non_loopback_ip()
    if not ip:
        pytest.skip("no non-loopback address on this machine")
    px = Proxy(registry.port, bind="0.0.0.0")
    try:
        host = f"{ip}:{px.port}"
        # HTTPS is tried, and the plain-HTTP server cannot speak TLS
        err = capsa.fail("pull", f"{host}/test/single:v1", match="TLS failure")
        assert "--insecure-registry" in err
        assert px.requests == []
        out = capsa.ok("pull", "--insecure-registry", host, f"{host}/test/single:v1")
        assert images.single["digest"] in out
        # a host without a port covers every port of that host
        capsa.ok("pull", "-q", "--insecure-registry", ip, f"{host}/test/multi:v1")
    finally:
        px.stop()


# --- verification -----------------------------------------------------------

def test_corrupted_blob_is_refused_and_nothing_kept(capsa, registry, images, proxy_factory):
    bad = images.layers(images.single)[1]
    px = proxy_factory(registry, mode="corrupt", stall_digest=bad)
    err = capsa.fail("pull", f"{px.host}/test/single:v1", match=bad)
    assert "mismatch" in err
    # the digest the content really had is named too
    assert len(set(w for w in err.replace(",", " ").split() if w.startswith("sha256:"))) >= 2, err
    assert not os.path.exists(blob_file(capsa, bad))
    assert not [f for f in tmp_files(capsa) if bad[7:] in f]
    # once the registry serves the right bytes, the same store pulls fine
    px.mode = "pass"
    capsa.ok("pull", f"{px.host}/test/single:v1")
    assert tmp_files(capsa) == []


def test_manifest_digest_mismatch_is_refused(capsa, registry, images, proxy_factory):
    px = proxy_factory(registry, mode="corrupt-manifest")
    err = capsa.fail("pull", f"{px.host}/test/single:v1", match=images.single["digest"])
    assert "mismatch" in err
    assert not os.path.exists(blob_file(capsa, images.single["digest"]))
    assert tmp_files(capsa) == []


def test_oversized_manifest_is_refused_before_download(capsa, registry, proxy_factory):
    px = proxy_factory(registry, mode="huge-manifest")
    capsa.fail("pull", f"{px.host}/test/single:v1", match="larger than")
    # the proxy announced 64 MiB; the client hung up long before
    assert px.sent.get("huge", 0) < (8 << 20)


# --- parallelism ------------------------------------------------------------

def test_layer_downloads_are_bounded_to_three(capsa, registry, images, proxy_factory):
    px = proxy_factory(registry, mode="gate", gate=3)
    capsa.ok("pull", f"{px.host}/test/many:v1")
    # 6 layers and a config; the gate holds each answer until 3 are in flight
    assert len(px.blob_requests()) == 7
    assert px.max_inflight == 3


# --- resume -----------------------------------------------------------------

def start_stalled_pull(capsa, px, ref):
    """Starts a pull that the proxy stalls after px.stall_after bytes of the
    big layer, and waits until those bytes are in the partial file."""
    p = subprocess.Popen([capsa_bin(), "pull", ref], env=capsa.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        parts = [f for f in tmp_files(capsa) if f.endswith(".partial")]
        if parts and os.path.getsize(os.path.join(capsa.root, "tmp", parts[0])) >= px.stall_after:
            return p, parts[0]
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    out, err = p.communicate()
    pytest.fail(f"the pull never stalled: {err.decode()}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_pull_resumes_with_range(capsa, registry, images, proxy_factory, sig):
    big = images.layers(images.big)[0]
    px = proxy_factory(registry, mode="stall", stall_after=3 << 20, stall_digest=big)
    ref = f"{px.host}/test/big:v1"
    p, partial = start_stalled_pull(capsa, px, ref)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert p.returncode == 130, err.decode()
        assert "interrupted" in err.decode()
    assert not os.path.exists(blob_file(capsa, big))
    kept = os.path.getsize(os.path.join(capsa.root, "tmp", partial))
    assert kept >= 3 << 20
    px.mode = "pass"
    n_before = len(px.requests)
    out = capsa.ok("pull", ref)
    assert "resuming at" in out
    again = [r for r in px.requests[n_before:] if r["path"].endswith(big)]
    assert len(again) == 1 and again[0]["range"] == f"bytes={kept}-", again
    assert again[0]["sent"] == images.layer_size(images.big, 0) - kept
    with open(blob_file(capsa, big), "rb") as f:
        assert sha256(f.read()) == big
    assert tmp_files(capsa) == []


def test_resume_when_the_registry_ignores_range(capsa, registry, images, proxy_factory):
    big = images.layers(images.big)[0]
    px = proxy_factory(registry, mode="stall", stall_after=2 << 20, stall_digest=big)
    ref = f"{px.host}/test/big:v1"
    p, _ = start_stalled_pull(capsa, px, ref)
    p.kill()
    p.wait()
    px.mode = "norange"
    n_before = len(px.requests)
    capsa.ok("pull", ref)
    again = [r for r in px.requests[n_before:] if r["path"].endswith(big)]
    assert len(again) == 1 and again[0]["range"] and again[0]["sent"] == images.layer_size(images.big, 0)
    with open(blob_file(capsa, big), "rb") as f:
        assert sha256(f.read()) == big
    assert tmp_files(capsa) == []


# --- authentication -----------------------------------------------------------

def auth_file(c):
    return os.path.join(c.root, "auth.json")


def test_private_repository_needs_a_token(capsa, token_registry):
    err = capsa.fail("pull", f"{token_registry.host}/private/app:v1", match="authentication required")
    assert f"registry {token_registry.host}" in err
    # the anonymous token request was made, for the right scope
    scopes = [r.get("scope") for r in token_registry.tokens.requests if r["user"] is None]
    assert ["repository:private/app:pull"] in scopes


def test_login_then_pull_with_bearer_token(capsa, token_registry, images):
    out = capsa.ok("login", "--username", "alice", "--password-stdin", token_registry.host,
                   input=b"s3cret\n")
    assert "Login Succeeded" in out
    st = os.stat(auth_file(capsa))
    assert stat.S_IMODE(st.st_mode) == 0o600
    with open(auth_file(capsa)) as f:
        data = json.load(f)
    assert base64.b64decode(data["auths"][token_registry.host]["auth"]) == b"alice:s3cret"
    n = len(token_registry.tokens.requests)
    out = capsa.ok("pull", f"{token_registry.host}/private/app:v1")
    assert images.single["digest"] in out
    reqs = token_registry.tokens.requests[n:]
    # one token for the pull, reused for the manifest and every blob
    assert len(reqs) == 1, reqs
    assert reqs[0]["user"] == "alice" and reqs[0]["scope"] == ["repository:private/app:pull"]


def test_login_with_wrong_password_stores_nothing(capsa, token_registry):
    capsa.fail("login", "-u", "alice", "--password-stdin", token_registry.host, input=b"wrong\n",
               match="invalid username or password")
    assert not os.path.exists(auth_file(capsa))
    capsa.fail("login", "-u", "mallory", "--password-stdin", token_registry.host, input=b"s3cret",
               match="invalid username or password")


def test_basic_auth_login_pull_logout(capsa, basic_registry, images):
    ref = f"{basic_registry.host}/team/tool:v1"
    capsa.fail("pull", ref, match="authentication required")
    capsa.fail("login", "-u", "bob", "--password-stdin", basic_registry.host, input=b"nope\n",
               match="invalid username or password")
    assert not os.path.exists(auth_file(capsa))
    err = capsa.run("login", "-u", "bob", "-p", "hunter2", basic_registry.host, check=0).err
    assert "--password-stdin" in err  # the warning about a visible password
    out = capsa.ok("pull", ref)
    assert images.single["digest"] in out
    out = capsa.ok("logout", basic_registry.host)
    assert basic_registry.host in out
    with open(auth_file(capsa)) as f:
        assert json.load(f)["auths"] == {}
    capsa.fail("logout", basic_registry.host, match="not logged in")
    # a fresh store: the blobs are gone, and so are the credentials
    rmtree(os.path.join(capsa.root, "blobs"))
    rmtree(os.path.join(capsa.root, "capsa.db"))
    capsa.fail("pull", ref, match="authentication required")


def test_stored_password_that_became_wrong(capsa, basic_registry):
    capsa.ok("login", "-u", "bob", "--password-stdin", basic_registry.host, input=b"hunter2")
    with open(auth_file(capsa)) as f:
        data = json.load(f)
    data["auths"][basic_registry.host]["auth"] = base64.b64encode(b"bob:changed").decode()
    with open(auth_file(capsa), "w") as f:
        json.dump(data, f)
    capsa.fail("pull", f"{basic_registry.host}/team/tool:v1", match="invalid username or password")


def test_login_requires_username_and_password_without_terminal(capsa, basic_registry):
    capsa.fail("login", "--password-stdin", basic_registry.host, input=b"x", match="--username")
    capsa.fail("login", "-u", "bob", basic_registry.host, input=b"", match="--password-stdin")
    capsa.fail("login", "-u", "bob", "-p", "x", "--password-stdin", basic_registry.host, input=b"x",
               match="exclude")


def test_redirect_to_blob_storage_drops_authorization(capsa, token_registry, images, proxy_factory):
    storage = Storage(token_registry)
    try:
        px = proxy_factory(token_registry, mode="redirect", storage=storage)
        capsa.ok("login", "-u", "alice", "--password-stdin", px.host, input=b"s3cret")
        out = capsa.ok("pull", f"{px.host}/private/app:v1")
        assert images.single["digest"] in out
        manifests = [r for r in px.requests if "/manifests/" in r["path"]]
        assert manifests and all(r["auth"] and r["auth"].startswith("Bearer ") for r in manifests[-1:])
        blobs = px.blob_requests()
        assert len(blobs) == 3 and all(r["auth"].startswith("Bearer ") for r in blobs)
        # the storage host got the blobs, and never the token
        assert len(storage.requests) == 3
        assert all(r["auth"] is None for r in storage.requests), storage.requests
    finally:
        storage.stop()


# --- the terminal display -----------------------------------------------------

def test_progress_on_a_terminal_redraws_in_place(capsa, registry, images):
    master, slave = pty.openpty()
    p = subprocess.Popen([capsa_bin(), "pull", f"{registry.host}/test/single:v1"], env=capsa.env,
                         stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    p.wait(timeout=60)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, p.stderr.read()
    assert "\r\x1b[K" in out and "\x1b[3A" in out  # 3 blob lines, redrawn
    assert "done" in out and images.single["digest"] in out
    assert "downloading" not in out  # the plain-line form is for pipes
