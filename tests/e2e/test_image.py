"""capsa image: import of every format, ls/inspect/tag/rm/prune/gc, mounts,
layer sharing, and every hostile input of docs/image-store.md through the
real binary (exit 125, one line naming the entry, nothing left behind)."""
import json
import os
import random
import sqlite3
import stat
import subprocess
import threading

import pytest

from conftest import capsa_bin, image_path
from ocitools import (Layout, canonical, compress, config_for, docker_archive, layer, raw_header, sha256,
                      write_tar)

BASE = layer(("d", "bin"), ("f", "bin/tool", "v1", 0o755), ("d", "etc"), ("f", "etc/motd", "hello"),
             ("d", "var"), ("d", "var/lib"), ("f", "var/lib/a", "a"), ("f", "var/lib/b", "b"))
TOP = layer(("f", "etc/.wh.motd", ""), ("d", "var/lib"), ("f", "var/lib/.wh..wh..opq", ""),
            ("f", "var/lib/c", "c"), ("f", "bin/tool", "v2", 0o4755))


def store_files(c, sub):
    p = os.path.join(c.root, sub)
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def assert_store_empty(c):
    assert c.ok("image", "ls", "-q") == ""
    for sub in ("blobs/sha256", "layers", "tmp"):
        assert store_files(c, sub) == [], f"{sub} not empty: {store_files(c, sub)}"
    c.assert_clean()


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got: {err!r}"
    return lines[0]


# ---- formats ---------------------------------------------------------------

def test_import_busybox_oci_archive(capsa):
    out = capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox")
    iid, name = out.split()
    assert name == "docker.io/library/busybox:latest"
    info = capsa.json("image", "inspect", "busybox")
    assert info["id"] == iid and info["platform"] == "linux/amd64"
    assert info["config"]["config"]["Cmd"] == ["sh"]
    assert len(info["layers"]) == 1 and info["unpacked_size"] > 1000000
    layer_dir = os.path.join(capsa.root, "layers", info["layers"][0]["diff_id"][7:])
    st = os.lstat(os.path.join(layer_dir, "tmp"))
    assert stat.S_IMODE(st.st_mode) == 0o1777
    assert os.readlink(os.path.join(layer_dir, "bin", "sh")) == "/bin/busybox"
    assert os.stat(os.path.join(layer_dir, "home", "user")).st_uid == 1000
    # importing again is idempotent: same id, nothing unpacked twice
    assert capsa.ok("image", "import", image_path("busybox-oci.tar"), "-q").strip() == iid
    assert len(store_files(capsa, "layers")) == 1
    assert store_files(capsa, "tmp") == []
    capsa.assert_clean()


def test_import_oci_layout_dir_multilayer_whiteouts_and_mount(capsa, tmp_path):
    lay = Layout()
    desc, cfg = lay.image([BASE, TOP], comp=["gzip", "zstd"], ref="docker.io/library/two:1")
    lay.index.append(desc)
    lay.write_dir(str(tmp_path / "layout"))
    out = capsa.ok("image", "import", str(tmp_path / "layout"))
    assert out.split() == [cfg, "docker.io/library/two:1"]
    info = capsa.json("image", "inspect", "two:1")
    assert [l["media_type"].rsplit("+", 1)[-1] for l in info["layers"]] == ["gzip", "zstd"]
    top = os.path.join(capsa.root, "layers", sha256(TOP)[7:])
    st = os.lstat(os.path.join(top, "etc", "motd"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, "whiteout is a 0/0 char device"
    assert os.getxattr(os.path.join(top, "var", "lib"), "trusted.overlay.opaque") == b"y"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    capsa.ok("image", "mount", "two:1", str(mnt))
    try:
        assert not (mnt / "etc" / "motd").exists(), "whited-out file hidden"
        assert sorted(os.listdir(mnt / "var" / "lib")) == ["c"], "opaque dir hides the lower layer"
        assert (mnt / "bin" / "tool").read_text() == "v2"
        assert stat.S_IMODE(os.stat(mnt / "bin" / "tool").st_mode) == 0o4755
        with pytest.raises(OSError):
            (mnt / "new").write_text("x")
        capsa.fail("image", "rm", "two:1", match="mounted")
    finally:
        capsa.ok("image", "umount", str(mnt))
    capsa.ok("image", "rm", "two:1")
    assert_store_empty(capsa)


def test_import_docker_archive_shared_layer(capsa, tmp_path):
    arc = docker_archive(str(tmp_path / "d.tar"), [([BASE, TOP], ["app:1", "app:latest"]),
                                                   ([BASE], ["base:1"])])
    out = capsa.ok("image", "import", arc)
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert capsa.json("image", "inspect", "app:1")["id"] == capsa.json("image", "inspect", "app")["id"]
    assert capsa.json("image", "inspect", "base:1")["layers"][0]["diff_id"] == sha256(BASE)
    assert len(store_files(capsa, "layers")) == 2, "the shared base layer is unpacked once"
    capsa.ok("image", "rm", "base:1")
    assert len(store_files(capsa, "layers")) == 2, "base layer still used by app"
    capsa.ok("image", "rm", "--force", capsa.json("image", "inspect", "app")["id"])
    assert_store_empty(capsa)


@pytest.mark.parametrize("comp", [None, "gzip", "zstd"])
def test_import_rootfs_tarball(capsa, tmp_path, comp):
    raw = layer(("d", "bin"), ("f", "bin/hello", "#!/bin/sh\necho hi\n", 0o755))
    p = tmp_path / "rootfs.tar"
    p.write_bytes(compress(raw, comp))
    capsa.ok("image", "import", str(p), "--name", "tools:1", "--cmd", '["/bin/hello", "x y"]',
             "--entrypoint", "/bin/sh -c", "-e", "A=1", "--env", "B=two words", "-w", "/bin", "-u", "1000:1000")
    info = capsa.json("image", "inspect", "tools:1")
    cfg = info["config"]["config"]
    assert cfg["Cmd"] == ["/bin/hello", "x y"] and cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Env"][0].startswith("PATH=") and cfg["Env"][1:] == ["A=1", "B=two words"]
    assert cfg["WorkingDir"] == "/bin" and cfg["User"] == "1000:1000"
    assert info["config"]["rootfs"]["diff_ids"] == [sha256(raw)]
    assert info["layers"][0]["media_type"].endswith({None: "tar", "gzip": "gzip", "zstd": "zstd"}[comp])


def test_config_options_refused_for_oci(capsa):
    err = capsa.fail("image", "import", image_path("busybox-oci.tar"), "--cmd", "sh", match="rootfs tarball")
    one_line(err)


def test_multi_platform_index(capsa, tmp_path):
    lay = Layout()
    amd = layer(("f", "arch", "amd64"))
    arm = layer(("f", "arch", "arm64"))
    d1, c1 = lay.image([amd], arch="amd64", platform=True)
    d2, c2 = lay.image([arm], arch="arm64", platform=True)
    lay.index.append(lay.nested_index([d2, d1], ref="docker.io/library/multi:1"))
    path = lay.write_archive(str(tmp_path / "multi.tar"))
    assert capsa.ok("image", "import", path, "-q").strip() == c1
    assert capsa.ok("image", "import", path, "-q", "--platform", "linux/arm64").strip() == c2
    err = capsa.fail("image", "import", path, "--platform", "linux/s390x")
    assert "linux/s390x" in one_line(err) and "linux/arm64" in err and "linux/amd64" in err
    assert capsa.json("image", "inspect", c2)["platform"] == "linux/arm64"


def test_import_from_compressed_archive(capsa, tmp_path):
    raw = open(image_path("busybox-oci.tar"), "rb").read()
    p = tmp_path / "bb.tar.gz"
    p.write_bytes(compress(raw, "gzip"))
    out = capsa.ok("image", "import", str(p), "--name", "bb")
    assert out.split()[1] == "docker.io/library/bb:latest"


# ---- names, rm, prune, gc --------------------------------------------------

def test_ls_tag_rm_prune_gc(capsa, tmp_path):
    iid = capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox", "-q").strip()
    capsa.ok("image", "tag", "busybox", "example.com:5000/team/bb:v1")
    capsa.ok("image", "tag", iid[7:19], "second")
    ls = capsa.json("image", "ls", "--json")
    assert len(ls) == 1 and ls[0]["names"] == ["docker.io/library/busybox:latest", "docker.io/library/second:latest",
                                               "example.com:5000/team/bb:v1"]
    table = capsa.ok("images")
    assert table.splitlines()[0].split()[:3] == ["NAME", "IMAGE", "ID"]
    assert table.count(iid[7:19]) == 3
    assert capsa.ok("image", "ls", "-q").strip() == iid[7:19]
    assert capsa.ok("image", "ls", "-q", "--no-trunc").strip() == iid
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox", iid, iid[7:], iid[7:11],
                "sha256:" + iid[7:15], ls[0]["digest"], "docker.io/library/busybox@" + ls[0]["digest"]):
        assert capsa.json("image", "inspect", ref)["id"] == iid, ref
    capsa.fail("image", "inspect", "nosuch", match="no image")
    capsa.fail("image", "inspect", "Bad_Name", match="invalid reference")
    capsa.fail("image", "tag", "busybox", "x@sha256:" + "0" * 64, match="digest")
    one_line(capsa.fail("image", "rm", iid, match="has 3 names"))
    assert capsa.ok("image", "rm", "second") == "Untagged: docker.io/library/second:latest\n"
    capsa.ok("image", "rm", "example.com:5000/team/bb:v1")
    out = capsa.ok("image", "rm", "busybox")
    assert f"Deleted: {iid}" in out
    assert_store_empty(capsa)

    # prune: unnamed images only (--all: unused ones too)
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "keep")
    lay = Layout()
    d, cfg = lay.image([BASE])
    lay.index.append(d)
    capsa.ok("image", "import", lay.write_archive(str(tmp_path / "anon.tar")))
    out = capsa.ok("image", "prune")
    assert f"Deleted: {cfg}" in out and "keep" not in out
    assert len(capsa.json("image", "ls", "--json")) == 1
    capsa.ok("image", "prune", "--all")
    assert_store_empty(capsa)
    assert capsa.ok("image", "gc").startswith("Removed 0 images")


def test_gc_removes_leftovers(capsa):
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "bb")
    # what a crash leaves: a temporary unpack dir, a blob without a row,
    # a layer dir without a row
    os.makedirs(os.path.join(capsa.root, "tmp", "unpack-x-y", "etc"))
    open(os.path.join(capsa.root, "blobs", "sha256", "ab" * 32), "w").write("orphan")
    os.makedirs(os.path.join(capsa.root, "layers", "cd" * 32, "bin"))
    out = capsa.ok("image", "gc")
    assert "1 blobs" not in out  # the orphan had no row: swept, not counted as a row
    assert store_files(capsa, "tmp") == []
    assert len(store_files(capsa, "blobs/sha256")) == 3
    assert len(store_files(capsa, "layers")) == 1
    capsa.ok("image", "inspect", "bb")


NO_IDMAP = {"CAPSA_TEST_NO_IDMAP": "1"}  # layers as shifted copies (the fallback)


def shifted(c, *parts):
    return os.path.join(c.root, "layers-shifted", *parts)


def test_prune_removes_unused_layer_copies_and_disk_templates(capsa):
    """The caches prune empties: the user namespace fallback's layer copies
    no sandbox uses (a free block's, and in a held block a layer its
    sandbox does not run on), and every --disk template."""
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox")
    capsa.ok("run", "-d", "--name", "keep", "busybox", "sleep", "1000", env=NO_IDMAP)
    try:
        ns = capsa.json("inspect", "keep")["userns"]
        held = f"{ns['uid']}-{ns['gid']}"
        mine = store_files(capsa, f"layers-shifted/{held}")
        capsa.ok("run", "--rm", "--disk", "16m", "busybox", "true", env=NO_IDMAP)
        free = [b for b in store_files(capsa, "layers-shifted") if b != held]
        assert len(free) == 1 and store_files(capsa, "disk-templates")
        n_free = len(store_files(capsa, f"layers-shifted/{free[0]}"))
        # an earlier holder's copy in the held block, and a copy being built
        os.makedirs(shifted(capsa, held, "ab" * 32, "bin"))
        os.makedirs(shifted(capsa, held, "." + "cd" * 32 + ".tmp"))
        out = capsa.ok("image", "prune")
        assert f"{n_free + 1} layer copies, 1 disk templates" in out, out
        assert store_files(capsa, "layers-shifted") == [held]
        assert store_files(capsa, f"layers-shifted/{held}") == sorted(mine + ["." + "cd" * 32 + ".tmp"])
        assert store_files(capsa, "disk-templates") == [] and store_files(capsa, "tmp") == []
        # the sandbox on the kept copies runs on, and --disk makes its template again
        assert capsa.ok("exec", "keep", "cat", "/proc/self/uid_map").split()[1] == str(ns["uid"])
        capsa.ok("run", "--rm", "--disk", "16m", "busybox", "true")
        assert len(store_files(capsa, "disk-templates")) == 1
    finally:
        capsa.run("rm", "-f", "keep")
    out = capsa.ok("image", "prune")
    assert "1 disk templates" in out and store_files(capsa, "layers-shifted") == []
    capsa.ok("image", "ls", "-q")  # the image is named: kept
    capsa.assert_clean()


def test_prune_racing_creates_takes_nothing_they_use(capsa):
    """Prunes in a loop while sandboxes that need a layer copy and a disk
    template are created: every create finds what it uses (a template is
    never taken between its lookup and its open, a free block's copies
    never while a create that picked the block copies into it)."""
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox")
    stop = threading.Event()
    failures = []

    def prune_loop():
        while not stop.is_set():
            p = capsa.run("image", "prune")
            if p.returncode != 0:
                failures.append(p.err)

    t = threading.Thread(target=prune_loop)
    t.start()
    try:
        for _ in range(8):
            p = capsa.run("run", "--rm", "--disk", "16m", "busybox", "ls", "/bin/busybox", env=NO_IDMAP)
            if p.returncode != 0:
                failures.append(p.err)
    finally:
        stop.set()
        t.join()
    assert failures == []
    capsa.assert_clean()


def sandbox_row(c, image_id, name="sb1", layers=()):
    db = sqlite3.connect(os.path.join(c.root, "capsa.db"))
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("INSERT INTO sandboxes(id, name, image_id, state, created_at) VALUES(?,?,?,?,?)",
               (name + "-id", name, image_id, "running", 1))
    for l in layers:
        db.execute("INSERT INTO sandbox_layers(sandbox_id, layer_digest) VALUES(?,?)", (name + "-id", l))
    db.commit()
    db.close()


def drop_sandbox(c, name="sb1"):
    db = sqlite3.connect(os.path.join(c.root, "capsa.db"))
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("DELETE FROM sandboxes WHERE name=?", (name,))
    db.commit()
    db.close()


def test_rm_refuses_image_in_use_and_force(capsa):
    iid = capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "bb", "-q").strip()
    diff_id = capsa.json("image", "inspect", "bb")["layers"][0]["diff_id"]
    sandbox_row(capsa, iid, layers=[diff_id])
    assert capsa.json("image", "ls", "--json")[0]["sandboxes"] == 1
    err = capsa.fail("image", "rm", "bb", match="in use by sandbox sb1 (running)")
    one_line(err)
    capsa.fail("image", "prune", "--all", rc=0)  # succeeds, keeps the used image
    assert capsa.ok("image", "ls", "-q").strip()
    out = capsa.ok("image", "rm", "--force", "bb")
    assert "Deleted" in out and capsa.ok("image", "ls", "-q") == ""
    assert store_files(capsa, "layers") == [diff_id[7:]], "the sandbox's layer stays"
    drop_sandbox(capsa)
    capsa.ok("image", "gc")
    assert_store_empty(capsa)


def test_concurrent_imports_share_one_layer(capsa):
    procs = [subprocess.Popen([capsa_bin(), "image", "import",
                               image_path("busybox-oci.tar"), "-q"], env=capsa.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len({o[0] for o in outs}) == 1
    assert len(store_files(capsa, "layers")) == 1
    capsa.ok("image", "gc")
    assert store_files(capsa, "tmp") == []


def test_many_layers_mount(capsa, tmp_path):
    """70 layers: the relative lowerdir list no longer fits in a page."""
    layers_raw = [layer(("f", f"l{i:03}", str(i))) for i in range(70)]
    lay = Layout()
    d, cfg = lay.image(layers_raw, comp=None)
    lay.index.append(d)
    capsa.ok("image", "import", lay.write_archive(str(tmp_path / "many.tar")), "--name", "many")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = capsa.run("image", "mount", "many", str(mnt))
    if p.returncode != 0:
        assert "lowerdir+" in p.err, p.err  # an old kernel says so plainly
        return
    try:
        assert len(os.listdir(mnt)) == 70
    finally:
        capsa.ok("image", "umount", str(mnt))


def test_help_texts(capsa):
    for sub in ("import", "ls", "inspect", "tag", "rm", "prune", "gc", "mount", "umount"):
        out = capsa.ok("image", sub, "--help")
        assert out.startswith(f"Usage: capsa image {sub}"), sub
        assert len(out.splitlines()) >= 4, sub
    assert "import" in capsa.ok("image", "--help")
    capsa.fail("image", "nosuch", match="unknown command")
    capsa.fail("image", "import", match="exactly one PATH")


# ---- damaged stores (docs/image-store.md, "Damaged stores") ----------------

def db_bytes(c):
    with open(os.path.join(c.root, "capsa.db"), "rb") as f:
        return f.read()


def assert_refused(c, reason):
    """`capsa image ls` refuses the store: exit 125, one line naming
    capsa.db and the reason, and capsa.db is left byte for byte."""
    before = db_bytes(c)
    err = one_line(c.fail("image", "ls", match=os.path.join(c.root, "capsa.db")))
    assert reason in err and "is not a usable capsa store" in err and "move it aside" in err, err
    assert db_bytes(c) == before
    return err


def garbage(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def test_store_truncated_to_zero_is_refused(capsa):
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "bb")
    os.truncate(os.path.join(capsa.root, "capsa.db"), 0)
    assert_refused(capsa, "the file is empty, but")
    # nothing was collected meanwhile
    assert len(store_files(capsa, "blobs/sha256")) == 3 and len(store_files(capsa, "layers")) == 1


def test_store_of_random_bytes_is_refused(capsa):
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "bb")
    with open(os.path.join(capsa.root, "capsa.db"), "wb") as f:
        f.write(garbage(16384, 1))
    assert_refused(capsa, "file is not a database")


def test_store_with_random_pages_is_refused(capsa):
    """16 KiB of random pages inside a store whose header is intact: what
    PRAGMA quick_check finds, run at the first open of a file in a boot."""
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "bb")
    assert len(capsa.json("image", "ls", "--json")) == 1  # this open verified the file
    path = os.path.join(capsa.root, "capsa.db")
    good = db_bytes(capsa)
    # a restored copy (a new file) with 4 pages of garbage from page 3 on
    damaged = good[:8192] + garbage(16384, 2) + good[8192 + 16384:]
    with open(path + ".restore", "wb") as f:
        f.write(damaged)
    os.replace(path + ".restore", path)
    assert_refused(capsa, "quick_check: ")
    # the same damage written into a file verified in an earlier boot
    with open(path, "wb") as f:
        f.write(good)
    assert len(capsa.json("image", "ls", "--json")) == 1
    stamp = os.path.join(capsa.root, "store.verified")
    dev_ino = open(stamp).read().split(" ", 1)[1]
    with open(stamp, "w") as f:
        f.write("another-boot " + dev_ino)
    with open(path, "r+b") as f:
        f.seek(8192)
        f.write(garbage(16384, 2))
    assert_refused(capsa, "quick_check: ")


def test_store_of_another_program_is_refused(capsa):
    os.makedirs(capsa.root)
    db = sqlite3.connect(os.path.join(capsa.root, "capsa.db"))
    db.execute("CREATE TABLE notes(x)")
    db.execute("PRAGMA application_id=42")
    db.commit()
    db.close()
    assert_refused(capsa, "application_id 0x0000002a")


# ---- hostile input ---------------------------------------------------------

def oci_with_layer(tmp_path, raw_blob, comp=None, diff_raw=None):
    """An oci-archive whose single layer blob is raw_blob (maybe hostile)."""
    lay = Layout()
    cfg = config_for([diff_raw if diff_raw is not None else raw_blob])
    d, _ = lay.image([raw_blob], comp=comp, config=cfg, layer_blobs=[raw_blob])
    lay.index.append(d)
    return lay.write_archive(str(tmp_path / "hostile.tar"))


def victim(tmp_path):
    v = tmp_path / "victim"
    v.mkdir(exist_ok=True)
    return v


def hostile_layers(tmp_path):
    v = str(victim(tmp_path))
    return {
        "dotdot": (layer(("f", "../../../../../../.." + v + "/pwned", "x")), "pwned"),
        "absolute": (layer(("f", v + "/pwned", "x")), v + "/pwned"),
        "symlink-parent": (layer(("l", "a", v), ("f", "a/pwned", "x")), "a/pwned"),
        "symlink-parent-etc": (layer(("l", "a", "/etc"), ("f", "a/passwd", "x")), "a/passwd"),
        "hardlink-outside": (layer(("h", "passwd", "../../etc/passwd")), "passwd"),
        "hardlink-absolute": (layer(("h", "shadow", "/etc/shadow")), "shadow"),
        "device": (layer(("c", "dev/mem", 1, 1)), "dev/mem"),
        "negative-size": (raw_header("neg", bytes([0xff] * 12)) + bytes(1024), "neg"),
        "overflow-size": (raw_header("big", bytes([0x80] + [0xff] * 11)) + bytes(1024), "big"),
        "octal-size-past-end": (raw_header("past", b"77777777777\0") + b"abc" + bytes(509) + bytes(1024), "past"),
    }


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink-parent", "symlink-parent-etc", "hardlink-outside",
                                  "hardlink-absolute", "device", "negative-size", "overflow-size",
                                  "octal-size-past-end"])
def test_hostile_layer_refused(capsa, tmp_path, case):
    raw, entry = hostile_layers(tmp_path)[case]
    path = oci_with_layer(tmp_path, raw)
    err = one_line(capsa.fail("image", "import", path, "--name", "evil"))
    assert entry in err, err
    assert list(victim(tmp_path).iterdir()) == []
    assert_store_empty(capsa)


def test_device_allowed_with_flag(capsa, tmp_path):
    path = oci_with_layer(tmp_path, layer(("c", "dev/null", 1, 3)))
    capsa.ok("image", "import", path, "--name", "dev", "--allow-devices")
    info = capsa.json("image", "inspect", "dev")
    st = os.lstat(os.path.join(capsa.root, "layers", info["layers"][0]["diff_id"][7:], "dev", "null"))
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


@pytest.mark.parametrize("comp", ["gzip", "zstd"])
def test_truncated_compressed_layer(capsa, tmp_path, comp):
    raw = layer(("f", "data", os.urandom(200000)))
    blob = compress(raw, comp)[:-100]
    path = oci_with_layer(tmp_path, blob, comp=comp, diff_raw=raw)
    err = one_line(capsa.fail("image", "import", path))
    assert "truncated" in err and comp in err, err
    assert_store_empty(capsa)


def test_layer_digest_mismatch(capsa, tmp_path):
    raw = layer(("f", "a", "good"))
    lay = Layout()
    d, _ = lay.image([raw], comp=None)
    lay.index.append(d)
    lay.write_dir(str(tmp_path / "l"))
    ldigest = json.loads(lay.blobs[d["digest"]])["layers"][0]["digest"]
    # same size, other content
    with open(tmp_path / "l" / "blobs" / "sha256" / ldigest[7:], "r+b") as f:
        f.seek(600)
        f.write(b"X")
    err = one_line(capsa.fail("image", "import", str(tmp_path / "l")))
    assert ldigest in err and "mismatch" in err
    assert_store_empty(capsa)


def test_layer_larger_than_declared(capsa, tmp_path):
    raw = layer(("f", "a", "x" * 5000))

    def shrink(m):
        m["layers"][0]["size"] -= 100

    lay = Layout()
    d, _ = lay.image([raw], comp=None, manifest_override=shrink)
    lay.index.append(d)
    err = one_line(capsa.fail("image", "import", lay.write_archive(str(tmp_path / "big.tar"))))
    assert "declared size" in err, err
    assert_store_empty(capsa)


def test_diff_id_mismatch(capsa, tmp_path):
    raw = layer(("f", "a", "x"))
    path = oci_with_layer(tmp_path, compress(raw, "gzip"), comp="gzip", diff_raw=layer(("f", "b", "y")))
    err = one_line(capsa.fail("image", "import", path))
    assert "image config says" in err
    assert_store_empty(capsa)


def test_manifest_with_10000_layers(capsa, tmp_path):
    raw = layer(("f", "a", "x"))

    def many(m):
        m["layers"] = m["layers"] * 10000

    lay = Layout()
    d, _ = lay.image([raw], comp=None, manifest_override=many)
    lay.index.append(d)
    err = one_line(capsa.fail("image", "import", lay.write_archive(str(tmp_path / "m.tar"))))
    assert "10000 layers" in err
    assert_store_empty(capsa)


@pytest.mark.parametrize("where", ["config", "manifest", "index"])
def test_json_nested_10000_deep(capsa, tmp_path, where):
    deep = b"[" * 10000 + b"]" * 10000
    lay = Layout()
    raw = layer(("f", "a", "x"))
    if where == "config":
        cfg = config_for([raw])[:-1] + b',"deep":' + deep + b"}"
        d, _ = lay.image([raw], comp=None, config=cfg)
        lay.index.append(d)
    elif where == "manifest":
        d, _ = lay.image([raw], comp=None, manifest_override=lambda m: canonical(m)[:-1] + b',"x":' + deep + b"}")
        lay.index.append(d)
    else:
        d, _ = lay.image([raw], comp=None)
        idx = canonical({"schemaVersion": 2, "manifests": [d], "x": json.loads("[]")})[:-1] + b',"y":' + deep + b"}"
        lay.index.append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": lay.blob(idx),
                          "size": len(idx)})
    err = one_line(capsa.fail("image", "import", lay.write_archive(str(tmp_path / "deep.tar"))))
    assert "nested more than" in err, err
    assert_store_empty(capsa)


def test_not_an_image(capsa, tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"this is not a tar archive, not a layout, nothing at all" * 20)
    one_line(capsa.fail("image", "import", str(p)))
    d = tmp_path / "emptydir"
    d.mkdir()
    one_line(capsa.fail("image", "import", str(d), match="not an OCI image layout"))
    one_line(capsa.fail("image", "import", str(tmp_path / "missing"), match="missing"))
    assert_store_empty(capsa)


def test_session_store_has_busybox(store):
    info = store.json("image", "inspect", "busybox:latest")
    assert info["names"][0] == "docker.io/library/busybox:latest"
