"""capsa-runc under the real engines: podman (--runtime) and containerd
(ctr --runc-binary, through containerd's runc shim), each with its own
state directories, started and cleaned up by the test even when it fails.

Facts of this kind of machine the setup follows: root lacks
CAP_SYS_RESOURCE, so podman's default nofile=1048576 ulimit fails in any
runtime (a containers.conf with lower default_ulimits fixes that); there is
no systemd, so containerd is started by hand with its own config, state and
socket (CRI plugin disabled) and cgroupfs cgroups."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import image_path
from oci_env import container_cgroups, runc_bin

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def need(tool):
    if not shutil.which(tool):
        pytest.fail(f"{tool} is not installed: run scripts/deps.sh")


# --- podman -------------------------------------------------------------------------------


class Podman:
    def __init__(self, d):
        self.d = d
        conf = os.path.join(d, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.base = ["podman", "--root", os.path.join(d, "root"), "--runroot", os.path.join(d, "runroot"),
                     "--storage-driver", "overlay", "--tmpdir", os.path.join(d, "tmp")]

    def run(self, *args, runtime=None, check=None, timeout=120, input=None):
        cmd = self.base + ["--runtime", runtime or runc_bin(), *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout, input=input)
        if check is not None:
            assert p.returncode == check, f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def ok(self, *args, **kw):
        return self.run(*args, check=0, **kw).stdout

    def ids(self):
        return self.ok("ps", "-aq", "--no-trunc").split()


@pytest.fixture(scope="module")
def podman():
    need("podman")
    d = tempfile.mkdtemp(prefix="capsa-oci-podman-")
    pm = Podman(d)
    pm.ok("load", "-i", image_path("busybox-oci.tar"))
    yield pm
    pm.run("rm", "-fa", "-t", "0")
    subprocess.run(pm.base + ["system", "reset", "-f"], capture_output=True, env=pm.env)
    subprocess.run(["umount", "-R", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pm(podman):
    before = set(podman.ids())
    yield podman
    left = [i for i in podman.ids() if i not in before]
    for i in left:
        podman.run("rm", "-f", "-t", "0", i)
    for i in left:
        assert not container_cgroups(i), f"cgroup of {i} left behind"
        assert not os.path.exists(os.path.join("/run/capsa-oci", i)), f"state of {i} left behind"


def test_podman_run_echo(pm):
    p = pm.run("run", "--rm", "--network", "none", "busybox", "echo", "hi", check=0)
    assert p.stdout == "hi\n"
    assert pm.run("run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 5").returncode == 5
    p = pm.run("run", "--rm", "--network", "none", "busybox", "no-such-command")
    assert p.returncode == 127 and "not found" in p.stderr


def test_podman_security_options(pm):
    prof = os.path.join(pm.d, "seccomp.json")
    with open(prof, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}, f)
    out = pm.ok("run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL", "--user", "1000:1000",
                "--security-opt", f"seccomp={prof}", "busybox", "sh", "-c",
                "id -u; grep CapEff /proc/self/status; touch /x 2>&1; mkdir /tmp/d 2>&1; touch /tmp/f && echo tmp-rw")
    lines = out.splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "CapEff:\t0000000000000000"
    assert "Read-only file system" in lines[2]
    assert "Operation not permitted" in lines[3]
    assert lines[4] == "tmp-rw"


def test_podman_limits(pm):
    script = ("for c in memory pids; do p=$(grep \":$c:\" /proc/self/cgroup | cut -d: -f3); "
              "[ -n \"$p\" ] || p=$(grep '^0::' /proc/self/cgroup | cut -d: -f3); "
              "for f in memory.limit_in_bytes memory.max pids.max; do "
              "for r in /sys/fs/cgroup/$c$p /sys/fs/cgroup$p /sys/fs/cgroup/$c /sys/fs/cgroup; do "
              "[ -f $r/$f ] && { echo $f=$(cat $r/$f); break; }; done; done; done")
    out = pm.ok("run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "42", "busybox", "sh", "-c",
                script)
    assert ("memory.limit_in_bytes=67108864" in out) or ("memory.max=67108864" in out), out
    assert "pids.max=42" in out, out


def test_podman_detached_lifecycle(pm):
    cid = pm.ok("run", "-d", "--network", "none", "busybox", "sleep", "1000").strip()
    assert pm.ok("exec", cid, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline") == "exec-ok\nsleep\x001000\x00"
    pm.ok("pause", cid)
    assert pm.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "paused"
    pm.ok("unpause", cid)
    assert pm.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "running"
    pm.ok("stop", "-t", "1", cid)
    assert pm.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "exited"
    pm.ok("start", cid)
    pm.ok("kill", cid)
    assert pm.ok("wait", cid).strip() == "137"
    pm.ok("rm", cid)


def test_podman_tty_through_the_console_socket(pm):
    """podman run/exec -it drop what a container writes to its terminal
    before podman has attached to conmon (podman issue #9859): on this
    machine a bare 'tty' lost its output in 3-6 runs of 30 under crun,
    runc and capsa-runc alike. The commands wait half a second first,
    the workaround given there, so that what is tested is the console
    socket, not that race."""
    need("script")
    cmd = " ".join(pm.base + ["--runtime", runc_bin(), "run", "-it", "--rm", "--network", "none", "busybox",
                              "sh", "-c", "'sleep 0.5; tty; echo tty-ok'"])
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=pm.env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "/dev/pts/0" in p.stdout and "tty-ok" in p.stdout
    cid = pm.ok("run", "-d", "--network", "none", "busybox", "sleep", "1000").strip()
    cmd = " ".join(pm.base + ["--runtime", runc_bin(), "exec", "-it", cid, "sh", "-c", "'sleep 0.5; tty; echo exec-tty-ok'"])
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=pm.env,
                       timeout=120)
    assert "/dev/pts/" in p.stdout and "exec-tty-ok" in p.stdout, p.stdout + p.stderr
    pm.ok("rm", "-f", "-t", "0", cid)


# --- containerd ------------------------------------------------------------------------------


class Containerd:
    def __init__(self, d):
        self.d = d
        self.sock = os.path.join(d, "containerd.sock")
        self.runc_root = os.path.join(d, "runc")
        conf = os.path.join(d, "config.toml")
        with open(conf, "w") as f:
            f.write(f'''version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = "{d}/debug.sock"
''')
        self.log = open(os.path.join(d, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", conf], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.ctr("version").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("containerd did not start: " + open(os.path.join(d, "containerd.log")).read())

    def ctr(self, *args, check=None, timeout=120):
        p = subprocess.run(["ctr", "--address", self.sock, *map(str, args)], capture_output=True, text=True,
                           timeout=timeout)
        if check is not None:
            assert p.returncode == check, f"ctr {' '.join(map(str, args))}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def ok(self, *args, **kw):
        return self.ctr(*args, check=0, **kw).stdout

    def run_args(self):
        return ["--runc-binary", runc_bin(), "--runc-root", self.runc_root]

    def stop(self):
        for t in self.ctr("task", "ls", "-q").stdout.split():
            self.ctr("task", "kill", "-s", "KILL", t)
            time.sleep(0.2)
            self.ctr("task", "rm", "-f", t)
        for c in self.ctr("container", "ls", "-q").stdout.split():
            self.ctr("container", "rm", c)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        # the shims are in their own sessions: end the ones of this daemon
        # (their command line names its socket), by pid
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except (OSError, ValueError):
                continue
            if self.sock.encode() in cmd and cmd[0].endswith(b"containerd-shim-runc-v2"):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


IMAGE = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module")
def ctd():
    need("containerd")
    need("ctr")
    d = tempfile.mkdtemp(prefix="capsa-oci-ctd-")
    c = Containerd(d)
    try:
        c.ok("image", "import", "--base-name", "docker.io/library/busybox", image_path("busybox-oci.tar"))
        yield c
    finally:
        c.stop()
        subprocess.run(["umount", "-R", "-l", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_containerd_run_echo(ctd):
    out = ctd.ok("run", *ctd.run_args(), "--rm", IMAGE, "cd-echo", "echo", "hi")
    assert out == "hi\n"
    p = ctd.ctr("run", *ctd.run_args(), "--rm", IMAGE, "cd-exit", "sh", "-c", "exit 4")
    assert p.returncode == 4
    ns_root = os.path.join(ctd.runc_root, "default")
    assert not os.path.isdir(ns_root) or not os.listdir(ns_root), "state left in the runtime root"


def test_containerd_exec_and_kill(ctd):
    ctd.ok("run", *ctd.run_args(), "-d", IMAGE, "cd-1", "sleep", "1000")
    try:
        out = ctd.ok("task", "exec", "--exec-id", "e1", "cd-1", "sh", "-c", "echo exec-ok; cat /proc/1/cmdline")
        assert out == "exec-ok\nsleep\x001000\x00"
        p = ctd.ctr("task", "exec", "--exec-id", "e2", "cd-1", "sh", "-c", "exit 6")
        assert p.returncode == 6
        pids = ctd.ok("task", "ps", "cd-1")
        assert len(pids.strip().splitlines()) == 2
        ctd.ok("task", "pause", "cd-1")
        assert "PAUSED" in ctd.ok("task", "ls")
        ctd.ok("task", "resume", "cd-1")
        ctd.ok("task", "kill", "-s", "KILL", "cd-1")
        deadline = time.time() + 10
        while "STOPPED" not in ctd.ok("task", "ls") and time.time() < deadline:
            time.sleep(0.05)
        assert "STOPPED" in ctd.ok("task", "ls")
    finally:
        ctd.ctr("task", "rm", "-f", "cd-1")
        ctd.ctr("container", "rm", "cd-1")
    assert not container_cgroups("cd-1")
    assert not os.path.exists(os.path.join(ctd.runc_root, "default", "cd-1"))


def test_containerd_exec_with_tty(ctd):
    need("script")
    ctd.ok("run", *ctd.run_args(), "-d", IMAGE, "cd-tty", "sleep", "1000")
    try:
        cmd = f"ctr --address {ctd.sock} task exec -t --exec-id t1 cd-tty sh -c 'tty; echo tty-ok'"
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60)
        assert "/dev/pts/" in p.stdout and "tty-ok" in p.stdout, p.stdout + p.stderr
    finally:
        ctd.ctr("task", "kill", "-s", "KILL", "cd-tty")
        time.sleep(0.3)
        ctd.ctr("task", "rm", "-f", "cd-tty")
        ctd.ctr("container", "rm", "cd-tty")
