"""Escape battery, part 6: what only rootless mode has to prove
(CAPSA_BATTERY_ROOTLESS=1; skipped otherwise).  The sandboxes of one user
share its user namespace and its uid on the host (docs/rootless.md), so
beyond the attempts of parts 1-5: whatever a sandbox's root does, it acts
as that user at most, never as host root; it cannot read or change another
user's files or signal another user's processes (or the user's own outside
the sandbox); it cannot change the user's store outside its own sandbox;
and it cannot reach its supervisor."""
import hashlib
import json
import os
import shutil
import subprocess
import uuid

import pytest

from battery import ROOTLESS, sh
from test_process import agent_pid

pytestmark = pytest.mark.skipif(not ROOTLESS, reason="rootless mode only (CAPSA_BATTERY_ROOTLESS=1)")


def status_ids(pid):
    """The real, effective, saved and fs uids and gids of a host process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("Uid:", "Gid:")):
                out[line[:3]] = [int(x) for x in line.split()[1:]]
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for t in os.listdir(f"/proc/{p}/task"):
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def test_sandbox_root_is_the_user_on_the_host(store, box):
    """The supervisor, the agent and every process root starts in the
    sandbox run as the user's own uid and gid on the host: an escape from
    every namespace would land there, never on host root."""
    sh(store, box, "sleep 30 >/dev/null 2>&1 & echo started")
    sup = json.loads(store.ok("inspect", box))["supervisorPid"]
    agent = agent_pid(store, box)
    procs = [sup, agent] + descendants(agent)
    assert len(procs) >= 3, procs
    for p in procs:
        ids = status_ids(p)
        assert ids["Uid"] == [store.uid] * 4 and ids["Gid"] == [store.gid] * 4, (p, ids)
    # and the namespace, seen from the host, maps root to the user and
    # nothing to host root (inside, it is nested in the user's, 1:1)
    for p in [agent] + descendants(agent):
        for kind, own in (("uid_map", store.uid), ("gid_map", store.gid)):
            with open(f"/proc/{p}/{kind}") as f:
                rows = [r.split() for r in f.read().splitlines() if r.strip()]
            assert ["0", str(own), "1"] in rows, (p, kind, rows)
            assert all(r[1] != "0" for r in rows), (p, kind, rows)
    inside = sh(store, box, "cat /proc/self/uid_map").split()
    assert inside[:3] == ["0", "0", "1"], inside
    store.run("proc", "kill", box, "sleep")


@pytest.fixture
def foreign_dir():
    """A host directory of root's, with a file of root's and one of
    nobody's that nobody else may read, and a world-readable one of root's."""
    d = f"/var/tmp/capsa-rl-foreign-{uuid.uuid4().hex[:12]}"
    os.mkdir(d, 0o755)
    files = {"root-secret": (0, 0o600), "nobody-secret": (65534, 0o600), "root-public": (0, 0o644)}
    for name, (uid, mode) in files.items():
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write(f"{name} host content\n")
        os.chown(p, uid, uid)
        os.chmod(p, mode)

    def snapshot():
        out = {}
        for name in sorted(os.listdir(d)):
            st = os.lstat(os.path.join(d, name))
            with open(os.path.join(d, name), "rb") as f:
                out[name] = (st.st_uid, st.st_gid, st.st_mode, hashlib.sha256(f.read()).hexdigest())
        st = os.lstat(d)
        out["."] = (st.st_uid, st.st_gid, st.st_mode)
        return out
    before = snapshot()
    yield d
    assert snapshot() == before, "another user's files changed"
    shutil.rmtree(d)


def test_other_users_files(store, foreign_dir):
    """A volume the user may name shows root's and nobody's files inside;
    the sandbox's root (CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_CHOWN, but in
    the user's namespace, where those owners are unmapped) can read or
    change none of them beyond what the user itself could."""
    out = store.ok("run", "--rm", "-v", f"{foreign_dir}:/foreign", "busybox", "sh", "-c",
                   "cd /foreign; ls -ln; "
                   "cat root-secret nobody-secret 2>&1; "
                   "echo x >> root-public && echo WROTE public; echo x > planted && echo WROTE planted; "
                   "chmod 666 root-public && echo CHMOD; chown 0:0 nobody-secret && echo CHOWN; "
                   "rm -f root-public && echo REMOVED; mv root-public moved && echo MOVED; "
                   "touch root-public && echo TOUCHED; cat root-public")
    # what the user could do, the sandbox could do: read the public file
    assert out.rstrip().endswith("root-public host content"), out
    for word in ("root-secret host content", "nobody-secret host content", "WROTE", "CHMOD", "CHOWN",
                 "REMOVED", "MOVED", "TOUCHED"):
        assert word not in out, (word, out)
    # unmapped owners read as nobody inside
    assert all(line.split()[2] == "65534" for line in out.splitlines() if line.startswith("-")), out


@pytest.fixture
def bystanders(store):
    """Host processes the sandbox must not reach: one of another user's
    (nobody) and one of the rootless user itself, outside any sandbox."""
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    procs = [subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sleep", marker])
             for uid, gid in ((65534, 65534), (store.uid, store.gid))]
    yield marker, procs
    for p in procs:
        p.kill()
        p.wait()


def test_other_processes_cannot_be_seen_or_signalled(store, box, neighbour, bystanders):
    """Same uid or not, a host process outside the sandbox is not in its
    pid namespace: not listed, and a signal sent to its host pid finds
    nothing (or one of the sandbox's own processes, never the host's)."""
    marker, procs = bystanders
    pids = [p.pid for p in procs]
    sh(store, neighbour, f"sleep 1{marker} >/dev/null 2>&1 &")
    npid = int(subprocess.run(["pgrep", "-f", f"sleep 1{marker}"], capture_output=True,
                              text=True).stdout.split()[0])
    out = sh(store, box, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; echo; "
                         f"for p in {' '.join(map(str, pids + [npid]))}; do kill -9 $p 2>&1 || echo nokill $p; done")
    assert marker not in out, out
    assert sum(line.startswith("nokill ") for line in out.splitlines()) == 3, out
    for p in procs:
        assert p.poll() is None, "a host process was killed from the sandbox"
    assert os.path.exists(f"/proc/{npid}"), "the neighbour's process was killed from the sandbox"
    store.run("proc", "kill", neighbour, "sleep")


def store_snapshot(root, skip):
    """Owner, mode, size and mtime of everything in the user's store except
    the attacker's own sandbox directory and the database, which the host
    side's own commands write."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
        for name in dirs + [f for f in files if not (d == root and f.startswith("capsa.db"))]:
            p = os.path.join(d, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_uid, st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_store_outside_own_sandbox(store, box, neighbour, tmp_path):
    """The user's store (layers, images, the neighbour's writable layer)
    is out of the sandbox's reach: its host paths do not exist inside, and
    the file API and cp resolve them inside the sandbox."""
    sid = json.loads(store.ok("inspect", box))["id"]
    nid = json.loads(store.ok("inspect", neighbour))["id"]
    skip = {os.path.join(store.root, "sandboxes", sid)}
    before = store_snapshot(store.root, skip)
    layers = os.path.join(store.root, "layers")
    victim = os.path.join(store.root, "sandboxes", nid, "upper")
    assert os.path.isdir(layers) and os.path.isdir(victim)
    out = sh(store, box, f"ls {store.root} {store.home} {store.run_root} 2>&1; "
                         f"echo x > {layers}/planted 2>&1 || echo nowrite; "
                         f"ls /proc/1/root{store.root} 2>&1 || echo noroot; "
                         f"mkdir -p {victim} && echo evil > {victim}/planted && echo planted-inside")
    assert out.count("No such file or directory") >= 3, out
    assert "nowrite" in out and "noroot" in out, out
    target = f"{victim}/planted-by-api"
    store.run("files", "write", box, target, input=b"evil")
    (tmp_path / "f").write_text("evil\n")
    store.run("cp", tmp_path / "f", f"{box}:{layers}/planted-by-cp")
    store.run("files", "mkdir", box, f"{layers}/made-by-api")
    after = store_snapshot(store.root, skip)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    # what landed, landed in the attacker's own sandbox
    assert store.run("exec", box, "cat", f"{victim}/planted").out == "evil\n"


def test_supervisor_unreachable(store, box):
    """The supervisor runs as the same user, but outside the sandbox's
    mount, pid and network namespaces: its control socket and its process
    are nowhere inside."""
    sid = json.loads(store.ok("inspect", box))["id"]
    sup = json.loads(store.ok("inspect", box))["supervisorPid"]
    ctl = os.path.join(store.run_root, sid, "ctl.sock")
    assert os.path.exists(ctl), ctl
    out = sh(store, box, f"ls -l {ctl} 2>&1; find / -xdev -type s 2>/dev/null | head; "
                         "grep -c ctl.sock /proc/net/unix; "
                         f"kill -0 {sup} 2>&1 || echo nosup; ls /proc/{sup} >/dev/null 2>&1 || echo noproc")
    assert "No such file or directory" in out and "nosup" in out and "noproc" in out, out
    assert "ctl.sock" not in out.replace(f"ls: {ctl}", ""), out


@pytest.fixture
def user_secret(store):
    """A file only the user may read, in its home: rootless, the file API
    and cp act as the user on the host, so this (not /etc/shadow, which the
    user cannot read anyway) is what they must never reach."""
    path = os.path.join(store.home, f"secret-{uuid.uuid4().hex[:12]}")
    with open(path, "w") as f:
        f.write("the user's secret\n")
    os.chown(path, store.uid, store.gid)
    os.chmod(path, 0o600)
    yield path
    with open(path) as f:
        assert f.read() == "the user's secret\n", "the user's file was changed"
    os.unlink(path)


def test_file_api_and_cp_stay_out_of_the_users_files(store, box, user_secret, tmp_path):
    """Symlinks and magic links planted in the sandbox, to a file of the
    user's and to its home: the file API and cp resolve them inside the
    sandbox, never on the host as the user."""
    home = os.path.dirname(user_secret)
    planted = f"{home}/planted-{uuid.uuid4().hex[:8]}"
    # the same paths inside, with a decoy: where a link resolves, it is to these
    sh(store, box, f"mkdir -p {home} && echo decoy > {user_secret} && "
                   f"rm -rf /data; mkdir -p /data && ln -s {user_secret} /data/abs && "
                   f"ln -s ../../../../../..{user_secret} /data/rel && ln -s / /data/up && ln -s {home} /data/home")
    reads = ["/data/abs", "/data/rel", f"/data/up{user_secret}", f"/data/home/{os.path.basename(user_secret)}",
             f"/proc/1/root{user_secret}", f"/proc/self/root{user_secret}", f"/proc/1/cwd{user_secret}",
             user_secret]
    for p in reads:
        r = store.run("files", "read", box, p)
        assert b"the user's secret" not in r.stdout, p
        assert r.returncode != 0 or r.stdout == b"decoy\n", (p, r.stdout)
        out = tmp_path / f"out-{reads.index(p)}"
        store.run("cp", f"{box}:{p}", out)
        if out.is_file() and not out.is_symlink():
            assert b"the user's secret" not in out.read_bytes(), p
    store.run("cp", f"{box}:/data", tmp_path / "tree")
    for root, _, files in os.walk(tmp_path / "tree"):
        for f in files:
            p = os.path.join(root, f)
            assert os.path.islink(p) or b"the user's secret" not in open(p, "rb").read(), p
    (tmp_path / "in").write_text("evil\n")
    for target in (f"/data/up{planted}", f"/data/home/{os.path.basename(planted)}", f"/proc/1/root{planted}"):
        store.run("files", "write", box, target, input=b"evil")
        store.run("cp", tmp_path / "in", f"{box}:{target}")
        store.run("files", "mkdir", box, target + ".d")
        store.run("files", "mv", box, "/etc/hostname", target + ".mv")
        store.run("files", "rm", box, f"/data/up{user_secret}")
    assert not [x for x in os.listdir(home) if x.startswith("planted-")], os.listdir(home)
    # what was written went to the sandbox's own path of that name
    assert store.run("exec", box, "cat", planted).out.startswith("evil"), "the writes went nowhere"


def test_users_supplementary_groups_are_dropped(store, box, foreign_dir):
    """A user in host groups (disk, say) must not hand them to its
    sandboxes: they would reach what those groups may, as nogroup inside.
    The sandbox's processes, first and exec'd, hold no supplementary group,
    and a file of the group's stays unreadable."""
    path = os.path.join(foreign_dir, "root-secret")
    os.chown(path, 0, 6)
    os.chmod(path, 0o640)

    def as_member(*args):
        argv = [a if a != "--clear-groups" else "--groups=6" for a in store.argv(*args)]
        p = subprocess.run(argv, env=store.env, capture_output=True, cwd="/", timeout=120)
        return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    out = as_member("run", "--rm", "-v", f"{foreign_dir}:/foreign:ro", "busybox", "sh", "-c",
                    "grep Groups: /proc/self/status; cat /foreign/root-secret")
    assert out.splitlines()[0].split() == ["Groups:"], out
    assert "host content" not in out, out
    out = as_member("exec", box, "grep", "Groups:", "/proc/self/status")
    assert out.split() == ["Groups:"], out
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
