"""capsa oci / capsa-runc driven directly, as an engine would, on bundles
made from the busybox test image: the lifecycle, the config's features,
hooks, the console socket, exec, update, the bad inputs of issue 6, and
that nothing is left behind (state dirs, cgroups, mounts).  Podman and
containerd drive it in test_oci_engines.py."""
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from oci_env import Runtime, busybox_rootfs, container_cgroups, make_bundle, runc_bin


@pytest.fixture(scope="module")
def cache():
    d = tempfile.mkdtemp(prefix="capsa-oci-cache-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rt():
    d = tempfile.mkdtemp(prefix="capsa-oci-e2e-")
    r = Runtime(d)
    yield r
    r.cleanup()
    subprocess.run(["umount", "-R", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def bundle(rt, cache):
    n = [0]

    def make(args, mutate=None):
        n[0] += 1
        return make_bundle(rt.tmp, f"b{n[0]}", busybox_rootfs(cache), args, mutate)
    return make


# --- lifecycle -------------------------------------------------------------------


def test_run_prints_and_returns_the_exit_code(rt, bundle):
    b = bundle(["sh", "-c", "echo hello from $(hostname) home=$HOME; exit 3"])
    p = rt.run("run", "--bundle", b, "r1")
    assert p.returncode == 3, p.err
    assert p.out == "hello from capsa home=/root\n", "HOME comes from the image's passwd when unset"
    rt.assert_clean(["r1"])


def test_version_names_the_spec():
    p = subprocess.run([runc_bin(), "--version"], capture_output=True, text=True, check=True)
    assert "spec: 1.2.0" in p.stdout
    p = subprocess.run([os.path.join(os.path.dirname(runc_bin()), "capsa"), "oci", "--version"],
                       capture_output=True, text=True, check=True)
    assert "spec: 1.2.0" in p.stdout


def test_lifecycle(rt, bundle):
    b = bundle(["sh", "-c", "echo started; exec sleep 1000"])
    pidfile = os.path.join(rt.tmp, "pid")
    rt.create("c1", b, "--pid-file", pidfile)
    st = rt.state("c1")
    assert st["status"] == "created" and st["id"] == "c1" and st["bundle"] == b
    assert st["ociVersion"] == "1.2.0"
    with open(pidfile) as f:
        assert int(f.read()) == st["pid"]
    assert rt.output("c1") == "", "the process must not run before start"
    assert container_cgroups("c1"), "the cgroup exists from create on"
    rt.ok("start", "c1")
    assert rt.state("c1")["status"] == "running"
    rt.fail("start", "c1", match="not in created state")
    pids = json.loads(rt.ok("ps", "--format", "json", "c1"))
    assert st["pid"] in pids
    assert "sleep" in rt.ok("ps", "c1")
    assert rt.ok("exec", "c1", "sh", "-c", "echo in-exec; cat /proc/1/cmdline") == "in-exec\nsleep\x001000\x00"
    p = rt.run("exec", "c1", "sh", "-c", "exit 7")
    assert p.returncode == 7
    rt.ok("pause", "c1")
    assert rt.state("c1")["status"] == "paused"
    rt.fail("exec", "c1", "true", match="paused")
    rt.ok("resume", "c1")
    assert rt.state("c1")["status"] == "running"
    rt.fail("delete", "c1", match="not stopped: running")
    listed = json.loads(rt.ok("list", "--format", "json"))
    assert [c["id"] for c in listed] == ["c1"]
    rt.ok("kill", "c1", "KILL")
    assert rt.wait_status("c1", "stopped") == "stopped"
    assert rt.state("c1")["pid"] == 0
    rt.fail("kill", "c1", "TERM", match="container not running")
    rt.ok("delete", "c1")
    rt.fail("state", "c1", match="does not exist")
    assert "started" in rt.output("c1")
    rt.assert_clean(["c1"])


def test_foreground_run_and_exec_pass_signals_on(rt, bundle):
    b = bundle(["sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"])
    p = subprocess.Popen(rt.cmd("run", "--bundle", b, "fg1"), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(15)
    assert p.stdout.read() == "got-term\n"
    assert p.wait(timeout=10) == 7
    rt.assert_clean(["fg1"])


def test_delete_force_and_created(rt, bundle):
    b = bundle(["sleep", "1000"])
    rt.create("d1", b)
    rt.ok("delete", "d1")  # runc deletes a created container without --force
    rt.create("d2", b)
    rt.ok("start", "d2")
    rt.ok("delete", "--force", "d2")
    rt.ok("delete", "--force", "never-existed")
    rt.assert_clean(["d1", "d2"])


def test_kill_all_and_signal_names(rt, bundle):
    b = bundle(["sh", "-c", "trap 'echo got-usr1' USR1; sleep 1000 & while :; do wait; done"])
    rt.create("k1", b)
    rt.ok("start", "k1")
    time.sleep(0.2)
    rt.ok("kill", "k1", "SIGUSR1")
    deadline = time.time() + 5
    while "got-usr1" not in rt.output("k1") and time.time() < deadline:
        time.sleep(0.05)
    assert "got-usr1" in rt.output("k1")
    assert len(json.loads(rt.ok("ps", "--format", "json", "k1"))) == 2
    rt.ok("kill", "--all", "k1", "9")
    assert rt.wait_status("k1", "stopped") == "stopped"
    rt.ok("delete", "k1")
    rt.assert_clean(["k1"])


def test_create_of_an_existing_id_fails_and_keeps_it(rt, bundle):
    b = bundle(["sleep", "1000"])
    rt.create("dup", b)
    rt.fail("create", "--bundle", b, "dup", match="container 'dup' already exists")
    assert rt.state("dup")["status"] == "created"
    rt.ok("delete", "dup")
    rt.assert_clean(["dup"])


# --- what the config asks for -------------------------------------------------------


def test_process_settings(rt, bundle):
    def mutate(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5], "umask": 0o077}
        c["process"]["cwd"] = "/work/dir"
        c["process"]["env"].append("GREETING=hi there")
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
        c["process"]["capabilities"] = {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")}
        c["hostname"] = "oci-host"
    b = bundle(["sh", "-c", "id -u; id -g; id -G; pwd; echo $GREETING; ulimit -n; ulimit -Hn; umask; hostname;"
                "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"], mutate)
    out = rt.ok("run", "--bundle", b, "p1").splitlines()
    assert out[:10] == ["1000", "1000", "1000 5", "/work/dir", "hi there", "123", "456", "0077", "oci-host",
                        "CapEff:\t0000000000000000"]
    assert "CapBnd:\t0000000000000020" in out and "NoNewPrivs:\t1" in out
    rt.assert_clean(["p1"])


def test_root_readonly_masked_and_readonly_paths(rt, bundle):
    def mutate(c):
        c["root"]["readonly"] = True
        c["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "size=1m"]})
    b = bundle(["sh", "-c", "touch /x 2>/dev/null && echo root-rw || echo root-ro;"
                "touch /scratch/x && echo scratch-rw; echo 1 > /proc/sys/kernel/hostname 2>/dev/null "
                "&& echo sys-rw || echo sys-ro; ls /sys/firmware | wc -l; cat /proc/kcore | wc -c"], mutate)
    out = rt.ok("run", "--bundle", b, "ro1").split()
    assert out == ["root-ro", "scratch-rw", "sys-ro", "0", "0"]
    rt.assert_clean(["ro1"])


def test_mounts_bind_relative_source_and_tmpcopyup(rt, bundle):
    def mutate(c):
        c["mounts"].append({"destination": "/data", "type": "bind", "source": "vol", "options": ["rbind", "ro"]})
        c["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup", "size=2m"]})
    b = bundle(["sh", "-c", "cat /data/f; touch /data/g 2>/dev/null || echo data-ro; test -f /etc/passwd && "
                "echo copied; touch /etc/new && echo etc-rw"], mutate)
    os.makedirs(os.path.join(b, "vol"))
    with open(os.path.join(b, "vol", "f"), "w") as f:
        f.write("from-host\n")
    assert rt.ok("run", "--bundle", b, "m1").split() == ["from-host", "data-ro", "copied", "etc-rw"]
    assert not os.path.exists(os.path.join(b, "rootfs", "etc", "new")), "the tmpfs, not the image, got the file"
    rt.assert_clean(["m1"])


def test_seccomp_profile_from_the_config(rt, bundle):
    def mutate(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                               "errnoRet": 13}]}
    b = bundle(["sh", "-c", "mkdir /tmp/d 2>&1; grep Seccomp: /proc/self/status"], mutate)
    out = rt.ok("run", "--bundle", b, "s1")
    assert "Permission denied" in out and "Seccomp:\t2" in out
    rt.assert_clean(["s1"])


def test_seccomp_cache_never_mixes_profiles(rt, bundle):
    def profile(errno_ret):
        def mutate(c):
            c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                     "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                                   "errnoRet": errno_ret}]}
        return mutate
    b13 = bundle(["sh", "-c", "mkdir /tmp/d 2>&1"], profile(13))
    b1 = bundle(["sh", "-c", "mkdir /tmp/d 2>&1"], profile(1))
    for i in range(2):  # the second round comes from the cache
        assert "Permission denied" in rt.run("run", "--bundle", b13, f"sc13-{i}").out
        assert "Operation not permitted" in rt.run("run", "--bundle", b1, f"sc1-{i}").out
    assert len(os.listdir(os.path.join(rt.root, "@seccomp-cache"))) == 2
    rt.assert_clean()


def test_default_spec_seccomp_refuses_what_docker_refuses(rt, bundle):
    b = bundle(["sh", "-c", "unshare -U true 2>&1 || echo refused; grep Seccomp: /proc/self/status"])
    out = rt.ok("run", "--bundle", b, "s2")
    assert "refused" in out and "Seccomp:\t2" in out
    rt.assert_clean(["s2"])


def test_resources_and_update(rt, bundle):
    def mutate(c):
        c["linux"]["resources"]["memory"] = {"limit": 64 << 20}
        c["linux"]["resources"]["pids"] = {"limit": 20}
    b = bundle(["sleep", "1000"], mutate)
    rt.create("u1", b)
    rt.ok("start", "u1")
    cgs = container_cgroups("u1")

    def read(name):
        for d in cgs:
            p = os.path.join(d, name)
            if os.path.exists(p):
                with open(p) as f:
                    return f.read().strip()
        return None
    v1 = read("memory.limit_in_bytes") is not None
    assert read("memory.limit_in_bytes" if v1 else "memory.max") == str(64 << 20)
    assert read("pids.max") == "20"
    res = os.path.join(rt.tmp, "res.json")
    with open(res, "w") as f:
        json.dump({"memory": {"limit": 32 << 20}, "pids": {"limit": 10}}, f)
    rt.ok("update", "--resources", res, "u1")
    assert read("memory.limit_in_bytes" if v1 else "memory.max") == str(32 << 20)
    assert read("pids.max") == "10"
    rt.run("update", "--resources", "-", "u1", input=b'{"pids":{"limit":7}}', check=0)
    assert read("pids.max") == "7"
    rt.ok("update", "--pids-limit", "9", "u1")
    assert read("pids.max") == "9"
    rt.ok("delete", "--force", "u1")
    rt.assert_clean(["u1"])


def test_cgroup_mount_shows_the_containers_own_limits(rt, bundle):
    """Programs (JVMs, Go's automaxprocs) read their limits under
    /sys/fs/cgroup: without a cgroup namespace of its own, a container on
    cgroup v1 sees its own cgroup there, read-only, not the host's root."""
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("cgroup v1 only: on v2 the container has its own cgroup namespace")

    def mutate(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]
        c["linux"]["resources"]["memory"] = {"limit": 48 << 20}
        c["linux"]["resources"]["pids"] = {"limit": 33}
    b = bundle(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max;"
                "touch /sys/fs/cgroup/memory/x 2>/dev/null || echo ro"], mutate)
    assert rt.ok("run", "--bundle", b, "cgv1").split() == [str(48 << 20), "33", "ro"]
    rt.assert_clean(["cgv1"])


def test_new_user_namespace_with_mappings(rt, bundle):
    def mutate(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys/fs/cgroup",)]
    b = bundle(["sh", "-c", "id -u; cat /proc/self/uid_map"], mutate)
    subprocess.run(["chown", "-R", "100000:100000", os.path.join(b, "rootfs")], check=True)
    os.chmod(rt.tmp, 0o755)  # the container's root (host uid 100000) must reach the bundle
    out = rt.ok("run", "--bundle", b, "un1").split()
    assert out == ["0", "0", "100000", "65536"]
    rt.assert_clean(["un1"])


def test_join_namespace_by_path_and_sysctl(rt, bundle):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        host_value = f.read().strip()
    holder = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
    try:
        time.sleep(0.2)

        def mutate(c):
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
            c["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
            c["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "80"}
        b = bundle(["sh", "-c", "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"],
                   mutate)
        out = rt.ok("run", "--bundle", b, "ns1").split()
        assert out[0] == os.readlink(f"/proc/{holder.pid}/ns/net")
        assert out[1] == "80"
        p = subprocess.run(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "cat",
                            "/proc/sys/net/ipv4/ip_unprivileged_port_start"], capture_output=True, text=True)
        assert p.stdout.strip() == "80", "the sysctl was written in the joined namespace"
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            assert f.read().strip() == host_value, "and not on the host"
    finally:
        holder.kill()
        holder.wait()
    rt.assert_clean(["ns1"])


def test_hooks_get_the_state_on_stdin(rt, bundle):
    out = os.path.join(rt.tmp, "hooks")
    os.makedirs(out)

    def hook(name, inside=False):
        dest = f"/hook-{name}.json" if inside else os.path.join(out, f"{name}.json")
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {dest}"], "timeout": 10}

    def mutate(c):
        c["hooks"] = {k: [hook(k, k == "startContainer")] for k in
                      ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")}
        c["annotations"] = {"org.example/k": "v"}
    b = bundle(["sleep", "1000"], mutate)
    rt.create("h1", b)
    pid = rt.state("h1")["pid"]
    for k in ("prestart", "createRuntime", "createContainer"):
        with open(os.path.join(out, f"{k}.json")) as f:
            st = json.load(f)
        assert st["id"] == "h1" and st["pid"] == pid and st["status"] == "creating", (k, st)
        assert st["annotations"] == {"org.example/k": "v"} and st["bundle"] == b
    assert not os.path.exists(os.path.join(out, "poststart.json"))
    rt.ok("start", "h1")
    with open(os.path.join(out, "poststart.json")) as f:
        assert json.load(f)["status"] == "running"
    # the startContainer hook runs in the container after start returns:
    # wait until its cat has written the whole state, not just created the file
    deadline = time.time() + 10
    inside = os.path.join(b, "rootfs", "hook-startContainer.json")
    st = None
    while st is None and time.time() < deadline:
        try:
            with open(inside) as f:
                st = json.load(f)
        except (OSError, ValueError):
            time.sleep(0.05)
    assert st is not None and st["pid"] == pid, "startContainer ran in the container's root"
    rt.ok("delete", "--force", "h1")
    with open(os.path.join(out, "poststop.json")) as f:
        assert json.load(f)["status"] == "stopped"
    rt.assert_clean(["h1"])


def test_state_is_creating_while_create_runs(rt, bundle):
    flag = os.path.join(rt.tmp, "go")
    b = bundle(["true"], lambda c: c.update(hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.02; done"], "timeout": 30}]}))
    out = open(os.path.join(rt.tmp, "cr.out"), "wb")
    p = subprocess.Popen(rt.cmd("create", "--bundle", b, "cr1"), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        seen = None
        deadline = time.time() + 10
        while time.time() < deadline:
            r = rt.run("state", "cr1")
            if r.returncode == 0:
                seen = json.loads(r.out)["status"]
                if seen == "creating":
                    break
            time.sleep(0.02)
        assert seen == "creating", "state does not wait for create, and says creating"
    finally:
        open(flag, "w").close()
        p.wait(timeout=30)
        out.close()
    assert p.returncode == 0
    assert rt.state("cr1")["status"] == "created"
    rt.ok("delete", "cr1")
    rt.assert_clean(["cr1"])


def test_a_failing_or_hanging_hook_fails_create(rt, bundle):
    b = bundle(["true"], lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/false"}]}))
    rt.fail("create", "--bundle", b, "hk1", match="hooks.createRuntime[0] /bin/false: exited with status 1")
    b2 = bundle(["true"], lambda c: c.update(
        hooks={"prestart": [{"path": "/bin/sleep", "args": ["sleep", "100"], "timeout": 1}]}))
    rt.fail("create", "--bundle", b2, "hk2", match="timed out after 1 s")
    rt.assert_clean(["hk1", "hk2"])


def test_preserve_fds(rt, bundle):
    b = bundle(["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    r, w = os.pipe()
    os.write(w, b"through-fd-3\n")
    os.close(w)
    cmd = " ".join(rt.cmd("run", "--bundle", b, "--preserve-fds", "1", "fd1"))
    p = subprocess.run(["bash", "-c", f"exec 3<&{r} {r}<&-; exec {cmd}"], pass_fds=(r,), capture_output=True,
                       text=True, timeout=60)
    os.close(r)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("through-fd-3\n")
    assert p.stdout.split("\n")[1].split()[:4] == ["0", "1", "2", "3"]
    # asked for more fds than were passed: the runtime's own fds never fill the gap
    b2 = bundle(["sh", "-c", "for f in 3 4 5; do readlink /proc/self/fd/$f; done"])
    p = rt.run("--log", os.path.join(rt.tmp, "log"), "run", "--bundle", b2, "--preserve-fds", "3", "fd2")
    assert p.returncode == 0, p.err
    assert p.out.split() == ["/dev/null"] * 3, p.out
    rt.assert_clean(["fd1", "fd2"])


# --- the console socket ---------------------------------------------------------------


def recv_pty(srv):
    conn, _ = srv.accept()
    with conn:
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    assert len(fds) == 1
    return fds[0]


def read_all_pty(fd, timeout=10):
    data = b""
    deadline = time.time() + timeout
    os.set_blocking(fd, False)
    while time.time() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        except OSError:
            break  # EIO: the slave side closed
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def test_terminal_through_the_console_socket(rt, bundle):
    def mutate(c):
        c["process"]["terminal"] = True
        c["process"]["consoleSize"] = {"height": 33, "width": 101}
    b = bundle(["sh", "-c", "tty; stty size; ls -l /dev/console | cut -c1"], mutate)
    sock = os.path.join(rt.tmp, "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock)
    srv.listen(1)
    try:
        rt.fail("create", "--bundle", b, "t0", match="--console-socket is required")
        rt.create("t1", b, "--console-socket", sock)
        master = recv_pty(srv)
        rt.ok("start", "t1")
        out = read_all_pty(master)
        os.close(master)
    finally:
        srv.close()
    assert "/dev/pts/0" in out and "33 101" in out and "c" in out.split()[-1], out
    assert rt.wait_status("t1", "stopped") == "stopped"
    rt.ok("delete", "t1")
    rt.assert_clean(["t0", "t1"])


def test_exec_with_a_terminal_and_process_file(rt, bundle):
    b = bundle(["sleep", "1000"])
    rt.create("e1", b)
    rt.ok("start", "e1")
    proc = os.path.join(rt.tmp, "proc.json")
    with open(proc, "w") as f:
        json.dump({"args": ["sh", "-c", "tty; id -u"], "cwd": "/", "terminal": True, "env": ["PATH=/bin"],
                   "user": {"uid": 7, "gid": 7}}, f)
    sock = os.path.join(rt.tmp, "exec.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock)
    srv.listen(1)
    pidfile = os.path.join(rt.tmp, "exec.pid")
    try:
        rt.ok("exec", "--process", proc, "--console-socket", sock, "--detach", "--pid-file", pidfile, "e1")
        master = recv_pty(srv)
        out = read_all_pty(master)
        os.close(master)
    finally:
        srv.close()
    assert "/dev/pts/" in out and "7" in out.split(), out
    with open(pidfile) as f:
        assert int(f.read()) > 0
    rt.ok("delete", "--force", "e1")
    rt.assert_clean(["e1"])


# --- bad input ---------------------------------------------------------------------------


def edit(b, fn):
    p = os.path.join(b, "config.json")
    with open(p) as f:
        c = json.load(f)
    fn(c)
    with open(p, "w") as f:
        json.dump(c, f)


BAD = [
    ("missing config", lambda b: os.unlink(os.path.join(b, "config.json")), "config.json"),
    ("malformed config", lambda b: open(os.path.join(b, "config.json"), "w").write("{\"ociVersion\":"),
     "invalid JSON"),
    ("unsupported version", lambda b: edit(b, lambda c: c.update(ociVersion="0.9.0")), "ociVersion '0.9.0'"),
    ("root escapes the bundle", lambda b: edit(b, lambda c: c["root"].update(path="../../../etc")),
     "root.path '../../../etc'"),
    ("mount destination with ..", lambda b: edit(b, lambda c: c["mounts"].append(
        {"destination": "/tmp/../../x", "type": "tmpfs", "source": "tmpfs"})), "contains '..'"),
    ("unknown namespace type", lambda b: edit(b, lambda c: c["linux"]["namespaces"].append({"type": "wormhole"})),
     "unknown namespace type 'wormhole'"),
    ("namespace path that is not a namespace", lambda b: edit(b, lambda c: [
        n.update(path="/etc/hostname") for n in c["linux"]["namespaces"] if n["type"] == "network"]),
     "not a namespace"),
    ("namespace of the wrong type", lambda b: edit(b, lambda c: [
        n.update(path="/proc/self/ns/uts") for n in c["linux"]["namespaces"] if n["type"] == "ipc"]),
     "a uts namespace, expected ipc"),
    ("unknown capability", lambda b: edit(b, lambda c: c["process"]["capabilities"]["bounding"].append(
        "CAP_TELEPORT")), "unknown capability 'CAP_TELEPORT'"),
    ("missing executable", lambda b: edit(b, lambda c: c["process"].update(args=["no-such-program"])),
     "executable file not found in $PATH"),
    ("missing root", lambda b: shutil.rmtree(os.path.join(b, "rootfs")), "root.path"),
]


@pytest.mark.parametrize("what,breakit,match", BAD, ids=[x[0] for x in BAD])
def test_bad_config_fails_cleanly(rt, bundle, what, breakit, match):
    b = bundle(["true"])
    breakit(b)
    log = os.path.join(rt.tmp, "log.json")
    p = rt.run("--log", log, "--log-format", "json", "create", "--bundle", b, "bad1")
    assert p.returncode != 0, what
    assert match in p.err, f"{what}: stderr {p.err!r} does not mention {match!r}"
    with open(log) as f:
        entries = [json.loads(line) for line in f]
    assert entries and entries[-1]["level"] == "error" and match in entries[-1]["msg"] and "time" in entries[-1]
    rt.assert_clean(["bad1"])


@pytest.mark.parametrize("cid", ["a/b", "x" * 2000, "..", ""])
def test_bad_container_ids(rt, bundle, cid):
    b = bundle(["true"])
    err = rt.fail("create", "--bundle", b, cid)
    assert "container id" in err
    rt.assert_clean()


def test_text_log_format_and_unknown_container(rt):
    log = os.path.join(rt.tmp, "log.txt")
    err = rt.fail("--log", log, "state", "nope", match="container 'nope' does not exist")
    assert err
    with open(log) as f:
        line = f.read()
    assert line.startswith('time="') and 'level=error msg="container \'nope\' does not exist"' in line


def test_spec_and_features(rt):
    d = os.path.join(rt.tmp, "spec")
    os.makedirs(d)
    rt.ok("spec", "--bundle", d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["ociVersion"] == "1.2.0" and cfg["process"]["args"] == ["sh"]
    assert cfg["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    rt.fail("spec", "--bundle", d, match="exists")
    feats = json.loads(rt.ok("features"))
    assert feats["ociVersionMax"] == "1.2.0" and "createRuntime" in feats["hooks"]
    assert "user" in feats["linux"]["namespaces"] and feats["linux"]["seccomp"]["enabled"] is True
    assert "CAP_SYS_ADMIN" in feats["linux"]["capabilities"]
    assert stat.S_ISREG(os.stat(os.path.join(d, "config.json")).st_mode)
