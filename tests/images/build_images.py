#!/usr/bin/env python3
"""Builds the test images (OCI archives) the unit and end-to-end tests use.

Python stdlib only.  Deterministic: tar members sorted, fixed owners and (for
busybox) fixed times, gzip without a timestamp, JSON with sorted keys, so the
same inputs give byte-identical archives and the same image ids.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
CACHE = os.path.join(HERE, "cache")
EPOCH = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ["bash", "python3", "procps", "ca-certificates"]


def log(*a):
    print("images:", *a, file=sys.stderr, flush=True)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def gzip_bytes(raw):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as g:
        g.write(raw)
    return buf.getvalue()


class TarBuilder:
    """An in-memory tar of explicitly listed members (PAX, sorted by name)."""

    def __init__(self):
        self.members = {}

    def _info(self, name, kind, mode, uid=0, gid=0, mtime=EPOCH):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = mtime
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.members[name] = (self._info(name, tarfile.DIRTYPE, mode, uid, gid), None)

    def file(self, name, data, mode=0o644, uid=0, gid=0):
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.members[name] = (ti, data)

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.members[name] = (ti, None)

    def bytes(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name in sorted(self.members):
                ti, data = self.members[name]
                t.addfile(ti, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def tar_tree(root, skip_contents=("dev", "proc", "sys", "run", "tmp")):
    """A tar of a directory tree (sorted, owners kept, names empty), with the
    contents of the pseudo-filesystem mount points left out."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.inodes = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            entries = sorted(dirnames + filenames)
            if rel in skip_contents:
                dirnames[:] = []
                entries = []
            for name in entries:
                full = os.path.join(dirpath, name)
                arc = os.path.normpath(os.path.join(rel, name))
                st = os.lstat(full)
                import stat as S
                if S.S_ISSOCK(st.st_mode) or S.S_ISCHR(st.st_mode) or S.S_ISBLK(st.st_mode):
                    continue
                ti = t.gettarinfo(full, arc)
                ti.uname = ti.gname = ""
                if ti.isreg():
                    with open(full, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti)
    return buf.getvalue()


def write_oci_archive(path, layers, config, ref_name, annotations=None):
    """layers: list of (uncompressed tar bytes); each is stored gzip-compressed."""
    blobs = {}
    layer_descs = []
    diff_ids = []
    for raw in layers:
        gz = gzip_bytes(raw)
        d = sha256(gz)
        blobs[d] = gz
        diff_ids.append(sha256(raw))
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": d, "size": len(gz)})
    config = dict(config)
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    cfg = canonical(config)
    blobs[sha256(cfg)] = cfg
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha256(cfg), "size": len(cfg)},
                "layers": layer_descs}
    if annotations:
        manifest["annotations"] = annotations
    man = canonical(manifest)
    blobs[sha256(man)] = man
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": sha256(man), "size": len(man),
                            "annotations": {"org.opencontainers.image.ref.name": ref_name}}]}
    out = TarBuilder()
    out.file("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
    out.file("index.json", canonical(index))
    out.dir("blobs")
    out.dir("blobs/sha256")
    for d, b in blobs.items():
        out.file("blobs/sha256/" + d[7:], b)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(out.bytes())
    os.replace(tmp, path)
    return sha256(cfg)


def up_to_date(path, key):
    stamp = path + ".key"
    return os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == key


def mark(path, key):
    with open(path + ".key", "w") as f:
        f.write(key)


def find_busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            out = subprocess.run(["dpkg", "-S", os.path.realpath(p)], capture_output=True, text=True).stdout
            if "busybox-static" in out or "busybox-static" in subprocess.run(
                    ["dpkg", "-S", p], capture_output=True, text=True).stdout:
                return p
    sys.exit("images: /bin/busybox from busybox-static not found (apt-get install busybox-static)")


def build_busybox():
    bb = find_busybox()
    with open(bb, "rb") as f:
        binary = f.read()
    key = hashlib.sha256(binary + open(__file__, "rb").read()).hexdigest()
    path = os.path.join(OUT, "busybox-oci.tar")
    if up_to_date(path, key):
        log("busybox-oci.tar up to date")
        return
    applets = subprocess.run([bb, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    t = TarBuilder()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "var",
              "var/log", "home"):
        t.dir(d)
    t.dir("tmp", 0o1777)
    t.dir("var/tmp", 0o1777)
    t.dir("root", 0o700)
    t.dir("home/user", 0o755, 1000, 1000)
    t.file("bin/busybox", binary, 0o755)
    for a in applets:
        a = a.lstrip("/")
        if a != "bin/busybox":
            t.symlink(a, "/bin/busybox")
    t.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                         b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                         b"user:x:1000:1000:user:/home/user:/bin/sh\n")
    t.file("etc/group", b"root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n")
    t.file("etc/hostname", b"busybox\n")
    t.file("etc/hosts", b"127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    config = {"architecture": "amd64", "os": "linux", "created": CREATED,
              "config": {"Cmd": ["sh"], "Env": [PATH_ENV],
                         "Labels": {"org.opencontainers.image.title": "capsa busybox test image",
                                    "org.opencontainers.image.source": "tests/images/build.sh"}},
              "history": [{"created": CREATED, "created_by": "tests/images/build_images.py"}]}
    img = write_oci_archive(path, [t.bytes()], config, "docker.io/library/busybox:latest")
    mark(path, key)
    log("busybox-oci.tar", img, f"{os.path.getsize(path)} bytes")


def debian_mirror():
    """The Debian mirror this machine's apt uses."""
    import glob
    for p in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            text = open(p).read()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri
            if line.startswith("deb ") and "security" not in line:
                for w in line.split()[1:]:
                    if w.startswith("http"):
                        return w
    return "http://deb.debian.org/debian"


def build_debian():
    mirror = debian_mirror()
    pkgs = ",".join(sorted(DEBIAN_PACKAGES))
    ckey = hashlib.sha256(f"{DEBIAN_SUITE} {mirror} minbase {pkgs}".encode()).hexdigest()[:16]
    cached = os.path.join(CACHE, f"debian-{DEBIAN_SUITE}-{ckey}.tar")
    key = hashlib.sha256((ckey + hashlib.sha256(open(__file__, "rb").read()).hexdigest()).encode()).hexdigest()
    path = os.path.join(OUT, "debian-oci.tar")
    if up_to_date(path, key) and os.path.exists(cached):
        log("debian-oci.tar up to date")
        return
    if not os.path.exists(cached):
        if not shutil.which("debootstrap"):
            sys.exit("images: debootstrap missing (apt-get install debootstrap)")
        os.makedirs(CACHE, exist_ok=True)
        root = tempfile.mkdtemp(prefix="capsa-debootstrap-", dir=CACHE)
        try:
            log(f"debootstrap {DEBIAN_SUITE} from {mirror} (minbase + {pkgs}); cached afterwards")
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={pkgs}", DEBIAN_SUITE, root, mirror],
                           check=True, stdout=subprocess.DEVNULL)
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                d = os.path.join(root, junk)
                for n in os.listdir(d):
                    p = os.path.join(d, n)
                    if os.path.isfile(p):
                        os.unlink(p)
            raw = tar_tree(root)
            with open(cached + ".tmp", "wb") as f:
                f.write(raw)
            os.replace(cached + ".tmp", cached)
        finally:
            subprocess.run(["rm", "-rf", "--one-file-system", root])
    with open(cached, "rb") as f:
        raw = f.read()
    config = {"architecture": "amd64", "os": "linux", "created": CREATED,
              "config": {"Cmd": ["bash"], "Env": [PATH_ENV, "LANG=C.UTF-8"],
                         "Labels": {"org.opencontainers.image.title": "capsa debian test image"}},
              "history": [{"created": CREATED, "created_by": f"debootstrap --variant=minbase {DEBIAN_SUITE}"}]}
    img = write_oci_archive(path, [raw], config, "docker.io/library/debian:test")
    mark(path, key)
    log("debian-oci.tar", img, f"{os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    build_busybox()
    if "--busybox-only" not in sys.argv[1:]:
        build_debian()


if __name__ == "__main__":
    main()
