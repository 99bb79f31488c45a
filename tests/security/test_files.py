"""Escape battery, part 3: the file API and `capsa cp`, which run on behalf
of the host against paths a hostile sandbox controls.  Symlinks to /,
magic links, and a process flipping a path between a directory and a
symlink (or renaming it away) while the host copies: the host must never
read or write outside the sandbox."""
import os
import re
import shutil
import subprocess
import uuid

import pytest

from battery import capsa_argv, sh


@pytest.fixture
def marker():
    """A name that must never appear at the host's root or in /etc."""
    m = f"capsa-escape-{uuid.uuid4().hex[:12]}"
    yield m
    for p in (f"/{m}", f"/etc/{m}", f"/tmp/{m}"):
        assert not os.path.exists(p), f"the host gained {p}"


def test_files_write_through_symlink_to_root(store, box, marker):
    sh(store, box, "rm -rf /data && mkdir -p /data && ln -s / /data/up && ln -s /etc /data/etc")
    w1 = store.run("files", "write", box, f"/data/up/{marker}", input=b"w")
    w2 = store.run("files", "write", box, f"/data/etc/{marker}", input=b"w")
    store.run("files", "mkdir", box, f"/data/up/{marker}.d")
    assert not os.path.exists(f"/{marker}.d")
    # the links resolve inside the sandbox's root
    if w1.returncode == 0:
        assert store.run("exec", box, "cat", f"/{marker}").out == "w"
    if w2.returncode == 0:
        assert store.run("exec", box, "cat", f"/etc/{marker}").out == "w"


def test_files_read_through_symlink_to_host_file(store, box):
    sh(store, box, "mkdir -p /data && ln -sf /etc/shadow /data/shadow && ln -sf ../../../../etc/shadow /data/s2")
    host = open("/etc/shadow", "rb").read()
    for p in ("/data/shadow", "/data/s2"):
        r = store.run("files", "read", box, p)
        if r.returncode == 0:
            assert r.stdout != host and b"root:" in r.stdout  # the sandbox's own shadow


MAGIC = ["/proc/1/root/etc/shadow", "/proc/self/root/etc/shadow", "/proc/1/cwd/etc/shadow",
         "/proc/self/fd/4/etc/shadow"]


@pytest.mark.parametrize("path", MAGIC)
def test_files_magic_links_refused(store, box, path):
    host = open("/etc/shadow", "rb").read()
    r = store.run("files", "read", box, path)
    assert r.stdout != host
    assert r.returncode != 0 or b"root:" in r.stdout


@pytest.mark.parametrize("path", MAGIC)
def test_cp_through_magic_links(store, box, path, tmp_path):
    """`capsa cp` out of /proc/<pid>/root and friends: refused, or the
    sandbox's own file, never the host's."""
    host = open("/etc/shadow", "rb").read()
    r = store.run("cp", f"{box}:{path}", tmp_path / "out")
    if r.returncode == 0:
        assert (tmp_path / "out").read_bytes() != host
    else:
        assert path in r.err or "shadow" in r.err, r.err


def test_cp_out_of_symlink_to_host_dir(store, box, tmp_path):
    sh(store, box, "mkdir -p /data && ln -sfn /etc /data/etclink")
    host = open("/etc/shadow", "rb").read()
    r = store.run("cp", f"{box}:/data/etclink/shadow", tmp_path / "shadow")
    if r.returncode == 0:
        assert (tmp_path / "shadow").read_bytes() != host
    r = store.run("cp", f"{box}:/data", tmp_path / "tree")
    assert r.returncode == 0, r.err
    # the link is copied as a link, never followed on the host
    assert os.path.islink(tmp_path / "tree" / "etclink")


def test_cp_into_symlink_to_root(store, box, tmp_path, marker):
    sh(store, box, "mkdir -p /data && ln -sfn / /data/rootlink")
    (tmp_path / marker).write_text("x\n")
    r1 = store.run("cp", tmp_path / marker, f"{box}:/data/rootlink/")
    r2 = store.run("cp", tmp_path / marker, f"{box}:/data/rootlink/etc/{marker}")
    # where a copy worked, it landed inside the sandbox (the marker fixture
    # checks the host's / and /etc)
    if r1.returncode == 0:
        assert store.run("exec", box, "test", "-e", f"/{marker}").returncode == 0
    if r2.returncode == 0:
        assert store.run("exec", box, "test", "-e", f"/etc/{marker}").returncode == 0


def test_cp_out_does_not_follow_a_host_symlink(store, box, tmp_path, marker):
    """A symlink already in the host destination stays a fence."""
    sh(store, box, f"mkdir -p /data/out && echo evil > /data/out/{marker}")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink("/etc", dest / "out")
    store.run("cp", f"{box}:/data/out", dest)
    assert not os.path.exists(f"/etc/{marker}")


def _race(store, box, tmp_path, swap_script, marker):
    sh(store, box, "rm -rf /race && mkdir -p /race/d /race/real && echo mine > /race/real/own")
    swapper = subprocess.Popen(capsa_argv(store, "exec", box, "sh", "-c", f"cd /race; while :; do {swap_script}; done"),
                               env=store.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        host_shadow = open("/etc/shadow", "rb").read()
        for i in range(12):
            out = tmp_path / f"out{i}"
            p = store.run("cp", f"{box}:/race", out)
            assert p.returncode in (0, 125), p.err
            if p.returncode == 0:
                for root, dirs, files in os.walk(out):
                    for f in files:
                        assert re.fullmatch(r"own|capsa-escape-.*", f), os.path.join(root, f)
            r = store.run("files", "read", box, "/race/d/own")
            assert host_shadow not in r.stdout
            (tmp_path / "in").write_text("x\n")
            store.run("cp", tmp_path / "in", f"{box}:/race/d/{marker}")
            store.run("files", "write", box, f"/race/d/{marker}", input=b"w")
            store.run("files", "mkdir", box, f"/race/d/{marker}.d")
            store.run("files", "rm", box, f"/race/d/{marker}")
    finally:
        swapper.kill()
        swapper.wait()
        store.run("proc", "kill", box, "sh")
    assert os.path.exists("/etc/passwd") and not os.path.exists(f"/{marker}.d")


def test_race_directory_flipped_to_symlink(store, box, tmp_path, marker):
    _race(store, box, tmp_path, "rm -rf d; ln -s / d; rm d; cp -r real d", marker)


def test_race_rename_swap(store, box, tmp_path, marker):
    _race(store, box, tmp_path, "ln -sfn / link; mv -T d d.old; mv -T link d; mv -T d link; mv -T d.old d",
          marker)


@pytest.fixture
def host_victim():
    """A host file an escaping rm or mv through the file API would touch."""
    d = f"/var/tmp/capsa-victim-{uuid.uuid4().hex[:12]}"
    os.makedirs(d)
    with open(os.path.join(d, "keep"), "w") as f:
        f.write("host\n")
    yield d
    with open(os.path.join(d, "keep")) as f:
        assert f.read() == "host\n"
    assert sorted(os.listdir(d)) == ["keep"], os.listdir(d)
    shutil.rmtree(d)


def test_files_rm_and_mv_through_symlink_to_root(store, box, host_victim):
    sh(store, box, "mkdir -p /data && ln -sfn / /data/up && ln -sfn ../../../../../ /data/dots")
    for link in ("/data/up", "/data/dots", "/proc/1/root", "/proc/self/cwd"):
        store.run("files", "rm", box, f"{link}{host_victim}/keep")
        store.run("files", "mv", box, f"{link}{host_victim}/keep", f"{link}{host_victim}/moved")
        store.run("files", "mv", box, "/etc/hostname", f"{link}{host_victim}/planted")
        store.run("files", "mkdir", box, f"{link}{host_victim}/made")
