"""Rootless mode (docs/rootless.md): a user other than root runs capsa with
its own subordinate ids, its own store under $XDG_DATA_HOME, and cgroups
only where a v2 subtree is delegated to it.

The tests make a system user with a subordinate range of its own in
/etc/subuid and /etc/subgid (removed at the end), copy the binaries and the
busybox image where that user can read them, and drive the real capsa as
that user through setpriv, with no CAPSA_* variable: the defaults are what
is tested."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import BUILD, image_path
from rootless_env import COUNT, RootlessCapsa, make_user, remove_user

USER = "capsa-rl-test"
LEAF = "capsa-procs"  # where capsa moves a delegated group's own processes


@pytest.fixture(scope="module")
def rl_user():
    """(uid, gid, subid start) of a user with its own subordinate range."""
    uid, gid, start, created = make_user(USER)
    yield uid, gid, start
    remove_user(USER, uid, created)


class Rootless(RootlessCapsa):
    """capsa run by the rootless user; its refusals are one line."""

    def fail(self, *args, match, **kw):
        err = super().fail(*args, match=match, **kw)
        assert len(err.strip().splitlines()) == 1, err
        return err


@pytest.fixture(scope="module")
def rl(rl_user):
    base = tempfile.mkdtemp(prefix="capsa-rl-")
    os.chmod(base, 0o755)
    r = Rootless(BUILD, *rl_user, base)
    r.ok("image", "import", r.file(image_path("busybox-oci.tar")), "--name", "busybox:latest", timeout=300)
    yield r
    # the store's files belong to the user's subordinate ids: host root removes them
    subprocess.run(["pkill", "-KILL", "-u", str(r.uid)], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def test_run_maps_root_to_the_user_and_image_owners_to_its_range(rl):
    out = rl.ok("run", "--rm", "busybox", "sh", "-c",
                "id -u; ls -ln /etc/passwd | awk '{print $3, $4}'; ls -lnd /home/user | awk '{print $3}';"
                "cat /proc/self/uid_map")
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1] == "0 0", "image files owned by root read as root's"
    assert lines[2] == "1000"
    # inside: a namespace nested in the user's, mapping its ids 1:1
    assert [l.split() for l in lines[3:]] == [["0", "0", "1"], ["1", "1", str(COUNT)]]
    # from the host: root inside is the user, the rest its range
    sid = rl.ok("run", "-d", "busybox", "sleep", "1000").strip()
    pids = subprocess.run(["pgrep", "-u", str(rl.uid), "-f", "^sleep 1000"], capture_output=True,
                          text=True).stdout.split()
    assert len(pids) == 1, pids
    with open(f"/proc/{pids[0]}/uid_map") as f:
        maps = [l.split() for l in f.read().splitlines()]
    assert maps == [["0", str(rl.uid), "1"], ["1", str(rl.start), str(COUNT)]]
    rl.ok("rm", "-f", sid)
    # on the host, the store is the user's, and image uid 1000 is its subordinate id start+999
    st = os.stat(rl.root)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (rl.uid, 0o700)
    layers = os.path.join(rl.root, "layers")
    homes = [os.path.join(layers, d, "home", "user") for d in os.listdir(layers)]
    owners = {os.lstat(h).st_uid for h in homes if os.path.exists(h)}
    assert owners == {rl.start + 999}
    rl.assert_clean()


def test_detached_sandbox_exec_files_ports_logs_and_rm(rl):
    sid = rl.ok("run", "-d", "--name", "web", "-p", "127.0.0.1:0:8080", "busybox", "sh", "-c",
                "mkdir /www; echo hello > /www/index.html; chown 33:33 /www/index.html; echo up;"
                "exec httpd -f -p 8080 -h /www").strip()
    assert len(sid) == 64
    assert "web" in rl.ok("ps")
    deadline = time.time() + 10
    while "index.html" not in rl.run("exec", "web", "ls", "/www").out and time.time() < deadline:
        time.sleep(0.05)
    assert rl.ok("exec", "web", "stat", "-c", "%u", "/www/index.html").strip() == "33"
    # the upper dir holds the file under the user's subordinate id for 33
    upper = os.path.join(rl.root, "sandboxes", sid, "upper", "www", "index.html")
    assert os.stat(upper).st_uid == rl.start + 32
    rl.ok("files", "write", "web", "/tmp/in.txt", input=b"from host\n")
    assert rl.ok("exec", "web", "cat", "/tmp/in.txt") == "from host\n"
    rl.ok("cp", "web:/www/index.html", os.path.join(rl.home, "copied.html"))
    with open(os.path.join(rl.home, "copied.html")) as f:
        assert f.read() == "hello\n"
    assert rl.ok("exec", "-t", "web", "tty").strip().startswith("/dev/pts/")
    port = json.loads(rl.ok("inspect", "web"))
    port = port[0] if isinstance(port, list) else port
    host_port = None
    for p in rl.ok("port", "web").split():
        if ":" in p and p.rsplit(":", 1)[1].isdigit():
            host_port = int(p.rsplit(":", 1)[1])
    assert host_port, rl.ok("port", "web")
    deadline = time.time() + 10
    body = None
    while body is None and time.time() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{host_port}/index.html", timeout=2).read()
        except OSError:
            time.sleep(0.1)
    assert body == b"hello\n"
    assert "up" in rl.ok("logs", "web")
    stats = json.loads(rl.ok("stats", "--no-stream", "--json", "web").splitlines()[0])
    assert stats["running"] and "cgroup" in stats
    if not stats["cgroup"]:
        assert stats["pids"] is None and stats["memoryUsage"] is None, "unknown figures are null, not 0"
    rl.ok("rm", "-f", "web")
    assert not os.path.exists(os.path.join(rl.root, "sandboxes", sid))
    rl.assert_clean()


def test_refusals_name_the_reason(rl):
    rl.fail("run", "--rm", "--disk", "1g", "busybox", "true", match="--disk is not available in rootless mode")
    rl.fail("image", "import", "--allow-devices", rl.file(image_path("busybox-oci.tar")),
            match="--allow-devices is not available in rootless mode")
    rl.fail("image", "mount", "busybox", rl.home, match="image mount is not available in rootless mode")
    rl.fail("run", "--rm", "-v", f"{rl.home}:/h:idmap", "busybox", "true",
            match="idmap is not available in rootless mode")
    rl.fail("run", "--rm", "-p", "127.0.0.1:80:80", "busybox", "true", match="rootless mode: host ports below")
    rl.assert_clean()


def test_limits_without_a_delegated_cgroup_are_refused(rl):
    # the test runs in the host's root cgroup, which is not the user's
    p = rl.run("run", "--rm", "--memory", "64m", "busybox", "true", check=125)
    assert "--memory needs the memory cgroup controller, and in rootless mode" in p.err, p.err
    assert "delegated" in p.err or "v2" in p.err
    p = rl.run("run", "--rm", "--pids-limit", "10", "busybox", "true", check=125)
    assert "--pids-limit needs the pids cgroup controller" in p.err
    # no limit asked for: the sandbox runs, without a cgroup
    assert rl.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"
    rl.assert_clean()


def _v2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2" and fields[3] == "/":
                return fields[4]
    return None


def test_delegated_cgroup_v2_subtree(rl):
    mount = _v2_mount()
    if not mount:
        pytest.skip("no cgroup2 mount on this host")
    deleg = os.path.join(mount, f"capsa-rl-deleg-{os.getpid()}")
    os.mkdir(deleg)
    try:
        for f in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(deleg, f), rl.uid, rl.gid)
        with open(os.path.join(mount, "cgroup.subtree_control")) as f:
            root_ctl = f.read().split()
        mem = "memory" in root_ctl and "pids" in root_ctl

        def enter():
            # as the user's shell would be: in the delegated group, or in
            # capsa-procs once capsa moved the group's processes there
            # (cgroup v2 enables controllers only in a group without any)
            leaf = os.path.join(deleg, LEAF)
            with open(os.path.join(leaf if os.path.isdir(leaf) else deleg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

        sid = rl.ok("run", "-d", "busybox", "sleep", "60", preexec_fn=enter).strip()
        # the sandbox has its own cgroup below the delegated one, and sees it as its root
        assert os.path.isdir(os.path.join(deleg, "capsa", sid))
        assert "0::/" in rl.ok("exec", sid, "cat", "/proc/self/cgroup").splitlines()
        rl.ok("pause", sid, preexec_fn=enter)
        assert rl.ok("inspect", sid, preexec_fn=enter).count('"paused"') >= 1
        rl.ok("unpause", sid, preexec_fn=enter)
        rl.ok("rm", "-f", sid, preexec_fn=enter)
        assert not os.path.exists(os.path.join(deleg, "capsa", sid))
        # capsa's own processes left the delegated group for its leaf
        assert os.path.isdir(os.path.join(deleg, LEAF))
        if mem:
            _delegated_limits(rl, deleg, enter)
        else:
            # a hybrid host's cgroup2 has no controllers: the refusal says where it looked
            p = rl.run("run", "--rm", "--memory", "64m", "busybox", "true", preexec_fn=enter, check=125)
            assert f"the delegated cgroup {deleg} does not offer it" in p.err, p.err
        rl.assert_clean()
    finally:
        subprocess.run(["pkill", "-KILL", "-u", str(rl.uid)], capture_output=True)
        for d in sorted((os.path.join(r, x) for r, ds, _ in os.walk(deleg) for x in ds), key=len, reverse=True):
            os.rmdir(d)
        os.rmdir(deleg)


def _cg_read(deleg, sid, name):
    with open(os.path.join(deleg, "capsa", sid, name)) as f:
        return f.read()


def _delegated_limits(rl, deleg, enter):
    """The limits of a rootless sandbox in a delegated group with memory and
    pids (a pure cgroup v2 host, e.g. scripts/vm-cgroup2.sh): in force,
    changed by update, and shown by stats."""
    sid = rl.ok("run", "-d", "--memory", "64m", "--pids-limit", "50", "busybox", "sleep", "600",
                preexec_fn=enter).strip()
    assert rl.ok("exec", sid, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max").split() == \
        ["67108864", "50"]
    assert _cg_read(deleg, sid, "memory.max") == "67108864\n"
    # the pids controller stands in for RLIMIT_NPROC
    assert rl.ok("exec", sid, "sh", "-c", "ulimit -u") != "4096\n"
    rl.ok("update", "--memory", "128m", "--pids-limit", "40", sid, preexec_fn=enter)
    assert _cg_read(deleg, sid, "memory.max") == "134217728\n"
    assert _cg_read(deleg, sid, "pids.max") == "40\n"
    assert rl.ok("exec", sid, "cat", "/sys/fs/cgroup/memory.max").strip() == "134217728"
    st = json.loads(rl.ok("stats", "--no-stream", "--json", sid, preexec_fn=enter).splitlines()[0])
    assert st["cgroup"] is True, st
    assert isinstance(st["pids"], int) and st["pids"] >= 1, st
    assert st["memoryLimit"] == 128 << 20 and isinstance(st["memoryUsage"], int), st
    # past pids.max a fork fails (the shell stops at its first failure;
    # the sleeps it left count until rm)
    p = rl.run("exec", sid, "sh", "-c", "for i in $(seq 60); do sleep 30 & done")
    assert "can't fork" in p.err, p.err
    assert int(_cg_read(deleg, sid, "pids.events").split()[1]) > 0
    rl.ok("rm", "-f", sid, preexec_fn=enter)
    assert not os.path.exists(os.path.join(deleg, "capsa", sid))
    # past memory.max the kernel kills it, and capsa says why
    name = f"rl-oom-{os.getpid()}"
    p = rl.run("run", "--name", name, "--memory", "32m", "busybox", "sh", "-c", "a=$(yes | head -c 100000000)",
               preexec_fn=enter)
    assert p.returncode == 137, p.err
    assert json.loads(rl.ok("inspect", name, preexec_fn=enter))["reason"] == "oom"
    rl.ok("rm", name, preexec_fn=enter)


def test_user_without_a_range_gets_the_fix(rl):
    env = {"HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        os.path.join(rl.bin, "capsa"), "run", "--rm", "busybox", "true"],
                       capture_output=True, env=env, cwd="/", timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    assert "rootless mode needs subordinate ids, and user nobody (uid 65534) has no range in /etc/subuid" in err
    assert "usermod --add-subuids" in err


def test_without_a_cgroup_pause_is_refused_and_nproc_bounds_processes(rl):
    sid = rl.ok("run", "-d", "busybox", "sleep", "60").strip()
    p = rl.run("pause", sid, check=125)
    assert "pause needs a cgroup, and in rootless mode" in p.err, p.err
    # no pids controller: the default pids limit is RLIMIT_NPROC, in exec'd processes too
    assert rl.ok("exec", sid, "sh", "-c", "ulimit -u") == "4096\n"
    rl.ok("rm", "-f", sid)
    # and it holds: with 20, the 40th fork fails
    p = rl.run("run", "--rm", "--ulimit", "nproc=20:20", "busybox", "sh", "-c",
               "for i in $(seq 40); do sleep 5 & done")
    assert "can't fork" in p.err, p.err
    rl.assert_clean()


def test_oci_runtime_says_rootless_is_not_supported(rl):
    p = rl.run("oci", "create", "--bundle", "/nonexistent", "x", check=1)
    assert "rootless containers are not supported yet" in p.err, p.err


def test_serve_api_creates_and_removes_a_rootless_sandbox(rl):
    sock = os.path.join(rl.run_root, "capsa.sock")
    cmd = ["setpriv", f"--reuid={rl.uid}", f"--regid={rl.gid}", "--clear-groups",
           os.path.join(rl.bin, "capsa"), "serve"]
    srv = subprocess.Popen(cmd, env=rl.env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(sock), "the API socket did not appear"
        def api(method, path, body=None):
            # the unix socket is the user's alone (0660 in a 0700 directory): no token
            args = ["curl", "-s", "--unix-socket", sock, "-X", method]
            if body is not None:
                args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
            out = subprocess.run(args + [f"http://capsa{path}"], capture_output=True, timeout=30).stdout
            return json.loads(out) if out else None

        sb = api("POST", "/v1/sandboxes", {"image": "busybox", "command": ["sleep", "30"]})
        assert sb.get("state") == "running", sb
        # without a delegated cgroup, /metrics gives the tunnel figures
        # and leaves out the ones only a cgroup counts (not 0)
        sel = f'{{id="{sb["id"]}"'
        for _ in range(100):
            text = subprocess.run(["curl", "-s", "--unix-socket", sock, "http://capsa/metrics"],
                                  capture_output=True, text=True, timeout=30).stdout
            if f"capsa_sandbox_tunnel_rx_bytes_total{sel}" in text:
                break
            time.sleep(0.05)
        assert f"capsa_sandbox_tunnel_rx_bytes_total{sel}" in text, text
        for gone in ("cpu_seconds_total", "memory_bytes", "pids", "block_read_bytes_total"):
            assert f"capsa_sandbox_{gone}{sel}" not in text, text
        assert os.path.isdir(os.path.join(rl.root, "sandboxes", sb["id"]))
        api("DELETE", f"/v1/sandboxes/{sb['id']}?force=true")
        assert not os.path.exists(os.path.join(rl.root, "sandboxes", sb["id"]))
    finally:
        srv.terminate()
        out, err = srv.communicate(timeout=20)
    assert b"no default memory limit" in err, err
    assert not os.path.exists(sock), "capsa serve left its socket behind"
    rl.assert_clean()


def test_image_rm_and_prune_remove_the_layers_last(rl):
    # last in this file: the layers belong to the user's subordinate ids
    rl.ok("image", "rm", "busybox")
    rl.ok("image", "prune", "-a")
    assert os.listdir(os.path.join(rl.root, "layers")) == []
    assert os.listdir(os.path.join(rl.root, "blobs", "sha256")) == []
    rl.assert_clean()
