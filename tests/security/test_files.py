"""Escape battery, part 3: the file API and `capsa cp`, which run on behalf
of the host against paths a hostile sandbox controls.  Symlinks to /,
magic links, and a process flipping a path between a directory and a
symlink (or renaming it away) while the host copies: the host must never
read or write outside the sandbox."""
import io
import json
import os
import re
import shutil
import tarfile
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


# --- the file API's user is a credential (issue 12) ---------------------------------


def _denied(p, path, user):
    """A refused attempt: a non-zero exit and one message naming the path
    and the user."""
    assert p.returncode != 0, f"{path} as {user}: the attempt worked: {p.out!r}"
    assert "permission denied" in p.err and path in p.err and user in p.err, p.err


def test_files_user_is_a_credential(store, box, tmp_path, marker):
    """Every file operation as a named user runs with that user's uid, gids
    and capabilities: what a shell of the user cannot do, the file API
    cannot either; root (and no user) still can."""
    sh(store, box, "echo secret > /secret && chmod 600 /secret && mkdir -p /home/nob && chown nobody /home/nob"
                   " && grep -q '^grp12:' /etc/group || echo 'grp12:x:4242:nobody' >> /etc/group;"
                   " echo g > /gsecret && chown 0:4242 /gsecret && chmod 640 /gsecret")
    # the shell's answer, for reference
    assert store.run("exec", "-u", "nobody", box, "cat", "/secret").returncode != 0
    r = store.run("files", "read", "-u", "nobody", box, "/secret")
    _denied(r, "/secret", "nobody")
    assert b"secret" not in r.stdout
    assert store.ok("files", "read", box, "/secret") == "secret\n"
    assert store.ok("files", "read", "-u", "root", box, "/secret") == "secret\n"
    _denied(store.run("files", "write", "-u", "nobody", box, f"/etc/{marker}", input=b"x"), f"/etc/{marker}", "nobody")
    _denied(store.run("files", "write", "-a", "-u", "nobody", box, "/secret", input=b"x"), "/secret", "nobody")
    _denied(store.run("files", "mkdir", "-u", "nobody", box, "/root/d"), "/root/d", "nobody")
    _denied(store.run("files", "ls", "-u", "nobody", box, "/root"), "/root", "nobody")
    _denied(store.run("files", "rm", "-u", "nobody", box, "/secret"), "/secret", "nobody")
    _denied(store.run("files", "mv", "-u", "nobody", box, "/secret", "/home/nob/s"), "/secret", "nobody")
    w = store.run("files", "watch", "-u", "nobody", box, "/root", timeout=30)
    _denied(w, "/root", "nobody")
    assert store.ok("exec", box, "cat", "/secret") == "secret\n"
    assert store.run("exec", box, "test", "-e", f"/etc/{marker}").returncode != 0
    assert store.run("exec", box, "test", "-e", "/root/d").returncode != 0
    # cp in and out as the user
    out = tmp_path / "out"
    r = store.run("cp", "-u", "nobody", f"{box}:/secret", out)
    assert r.returncode != 0 and "/secret" in r.err and "nobody" in r.err and not out.exists(), r.err
    (tmp_path / marker).write_text("x\n")
    r = store.run("cp", "-u", "nobody", tmp_path / marker, f"{box}:/root/")
    assert r.returncode != 0 and "nobody" in r.err, r.err
    assert store.run("exec", box, "test", "-e", f"/root/{marker}").returncode != 0
    # what the user may do works, and what it creates is the user's
    store.ok("files", "write", "-u", "nobody", box, "/home/nob/f", input=b"mine")
    store.ok("cp", "-u", "nobody", tmp_path / marker, f"{box}:/home/nob/")
    store.ok("files", "mkdir", "-u", "nobody", box, "/home/nob/d")
    owners = store.ok("exec", box, "stat", "-c", "%u:%g %n", "/home/nob/f", f"/home/nob/{marker}", "/home/nob/d")
    assert [l.split()[0] for l in owners.splitlines()] == ["65534:65534"] * 3, owners
    # supplementary groups from the image's /etc/group, as for exec; an
    # explicit group replaces them, as for exec
    assert store.ok("files", "read", "-u", "nobody", box, "/gsecret") == "g\n"
    assert store.run("exec", "-u", "nobody:nogroup", box, "cat", "/gsecret").returncode != 0
    _denied(store.run("files", "read", "-u", "nobody:nogroup", box, "/gsecret"), "/gsecret", "nobody:nogroup")


def _agent_host_pid(store, box):
    sup = json.loads(store.ok("inspect", box))["supervisorPid"]
    with open(f"/proc/{sup}/task/{sup}/children") as f:
        kids = f.read().split()
    assert len(kids) == 1, kids
    return int(kids[0])


OWN_PROC = ["/proc/1/maps", "/proc/self/maps", "/proc/thread-self/status", "/proc/1/task/1/environ",
            "/proc/self/../1/maps", "/proc/2/../1/environ", "/tmp/own1/maps", "/tmp/ownself/maps",
            "/tmp/ownself/../1/status"]


@pytest.mark.parametrize("user", [None, "root", "nobody"])
def test_agent_own_proc_entries_off_limits(store, box, user, tmp_path):
    """The agent's own /proc entries (its maps, environ, oom_score_adj),
    which no sandbox process can read or lower, are refused to every file
    operation whatever the user and whatever the path goes through."""
    sh(store, box, "ln -sfn /proc/1 /tmp/own1 && ln -sfn /proc/self /tmp/ownself")
    u = ["-u", user] if user else []
    for path in OWN_PROC:
        r = store.run("files", "read", *u, box, path)
        assert r.returncode != 0 and "off limits" in r.err and not r.stdout, (path, r.err)
        r = store.run("files", "stat", *u, box, path)
        assert r.returncode != 0 and "off limits" in r.err, (path, r.err)
    for path in ("/proc/1", "/proc/self", "/proc/thread-self", "/tmp/own1/task", "/tmp/ownself/"):
        for args in (("files", "ls"), ("files", "watch")):
            r = store.run(*args, *u, box, path, timeout=30)
            assert r.returncode != 0 and "off limits" in r.err, (args, path, r.err)
        if path == "/tmp/ownself/":
            continue  # stat and cp take a final symlink as it is: the sandbox's own link
        r = store.run("files", "stat", *u, box, path)
        assert r.returncode != 0 and "off limits" in r.err, (path, r.err)
        r = store.run("cp", *u, f"{box}:{path}", tmp_path / "procout")
        assert r.returncode != 0 and "off limits" in r.err and not (tmp_path / "procout").exists(), (path, r.err)
    # oom_score_adj: the agent's stays what it was (read from the host)
    agent = _agent_host_pid(store, box)
    before = open(f"/proc/{agent}/oom_score_adj").read()
    for path in ("/proc/1/oom_score_adj", "/proc/self/oom_score_adj", "/tmp/own1/oom_score_adj"):
        for extra in ((), ("-a",)):
            r = store.run("files", "write", *extra, *u, box, path, input=b"-1000\n")
            assert r.returncode != 0 and "off limits" in r.err, (path, r.err)
    assert open(f"/proc/{agent}/oom_score_adj").read() == before
    # a listing or an archive of /proc leaves the agent out; its
    # neighbours' entries are still there
    listing = store.json("files", "ls", "--json", "-d", "2", *u, box, "/proc")
    paths = {e["path"] for e in listing}
    assert "/proc/uptime" in paths and not {"/proc/1", "/proc/self", "/proc/thread-self"} & paths
    assert not [p for p in paths if p.startswith("/proc/1/")]
    tar = store.run("cp", *u, f"{box}:/proc", "-")
    assert tar.returncode == 0, tar.err
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as tf:
        names = tf.getnames()
    assert "proc/uptime" in names and not [n for n in names if n.split("/")[1:2] in (["1"], ["self"], ["thread-self"])]
