"""The sandbox runtime core, driven through the capsa CLI: run, exec, logs,
ps, inspect, wait, stop, kill, rm, pause, limits, bad input, crash safety.
Every failure case checks that nothing was left behind."""
import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BUILD

PROBE_DIR = os.path.join(BUILD, "tests")


def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def web(store):
    name = uniq("web")
    store.ok("run", "--name", name, "-d", "busybox", "--", "httpd", "-f", "-p", "8080")
    yield name
    store.run("rm", "-f", name)


def status_of(c, name, field):
    return json.loads(c.ok("inspect", name))[field]


# --- run ---------------------------------------------------------------------

def test_run_echo(store):
    p = store.run("run", "--rm", "busybox", "--", "echo", "hello", check=0)
    assert p.out == "hello\n"
    store.assert_clean()


def test_run_exit_codes(store):
    assert store.run("run", "--rm", "busybox", "sh", "-c", "exit 7").returncode == 7
    assert store.run("run", "--rm", "busybox", "sh", "-c", "kill -9 $$").returncode == 137
    err = store.fail("run", "--rm", "busybox", "--", "nosuchcommand", rc=127)
    assert "nosuchcommand" in err and "not found" in err
    err = store.fail("run", "--rm", "busybox", "--", "/etc", rc=126)
    assert "/etc" in err
    store.assert_clean()


def test_run_stdout_stderr_separate(store):
    p = store.run("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2", check=0)
    assert p.out == "out\n" and p.err == "err\n"


def test_run_stdin(store):
    p = store.run("run", "--rm", "-i", "busybox", "--", "cat", input=b"piped input\n", check=0)
    assert p.out == "piped input\n"


def test_run_image_defaults_and_overrides(store):
    # Cmd of the test image is ["sh"]; Env has PATH
    out = store.ok("run", "--rm", "-e", "A=1", "-e", "PATH=/bin", "-w", "/tmp", "busybox", "sh", "-c",
                   "echo $A $PATH; pwd")
    assert out == "1 /bin\n/tmp\n"
    out = store.ok("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert out == "from entrypoint\n"
    out = store.ok("run", "--rm", "-w", "/new/dir", "busybox", "pwd")
    assert out == "/new/dir\n"


def test_run_env_file(store, tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\nX=from file\n\nY=2\n")
    assert store.ok("run", "--rm", "--env-file", f, "busybox", "sh", "-c", "echo $X $Y") == "from file 2\n"


def test_run_user(store):
    assert store.ok("run", "--rm", "-u", "1000:1000", "busybox", "id", "-u") == "1000\n"
    out = store.ok("run", "--rm", "-u", "user", "busybox", "sh", "-c", "id -un; echo $HOME")
    assert out == "user\n/home/user\n"
    err = store.fail("run", "--rm", "-u", "nosuchuser", "busybox", "true", rc=125, match="nosuchuser")
    store.assert_clean()


def test_run_detached_and_logs(store):
    name = uniq()
    sid = store.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
                   "for i in 1 2 3; do echo line$i; done; echo oops >&2").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", sid)
    assert store.ok("wait", name) == "0\n"
    p = store.run("logs", name, check=0)
    assert p.out == "line1\nline2\nline3\n" and p.err == "oops\n"
    assert store.ok("logs", "--tail", "1", "--stdout", name) == "line3\n"
    ts = store.ok("logs", "-t", "--stdout", name).splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line1$", ts)
    assert store.ok("logs", "--since", "1h", "--stdout", name).count("line") == 3
    assert store.ok("logs", "--until", "2000-01-01T00:00:00Z", name) == ""
    store.ok("rm", name)
    store.assert_clean()


def test_logs_follow(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo a; sleep 1; echo b")
    p = store.run("logs", "-f", name, timeout=30, check=0)
    assert p.out == "a\nb\n"
    store.ok("rm", name)


def test_log_rotation_bounds_disk(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
             "i=0; while [ $i -lt 400000 ]; do echo 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'; "
             "i=$((i+1)); done")
    store.ok("wait", name, timeout=300)
    sid = json.loads(store.ok("inspect", name))["id"]
    logs = os.path.join(store.root, "sandboxes", sid, "logs")
    total = sum(os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs))
    assert total <= 4 * 16 * 1024 * 1024 + 65536, total
    assert len(os.listdir(logs)) > 1  # it did rotate
    last = store.ok("logs", "--tail", "2", name).splitlines()
    assert last == ["x" * 45] * 2
    store.ok("rm", name)


# --- exec --------------------------------------------------------------------

def test_exec(store, web):
    out = store.ok("exec", web, "ps")
    assert "httpd" in out
    assert store.run("exec", web, "sh", "-c", "exit 5").returncode == 5
    out = store.ok("exec", "-e", "A=1", "-w", "/tmp", "-u", "1000:1000", web, "--", "sh", "-c",
                   "id; pwd; echo $A")
    assert re.match(r"uid=1000(\(\w+\))? gid=1000", out) and "/tmp\n1\n" in out
    store.fail("exec", web, "nosuch", rc=127, match="nosuch")
    store.fail("exec", "-w", "/nonexistent", web, "pwd", rc=126, match="/nonexistent")
    p = store.run("exec", "-i", web, "cat", input=b"hi\n", check=0)
    assert p.out == "hi\n"


def test_exec_parallel(store, web):
    procs = [subprocess.Popen([os.path.join(BUILD, "capsa"), "exec", web, "sh", "-c", f"sleep 0.5; echo {i}"],
                              env=store.env, stdout=subprocess.PIPE) for i in range(8)]
    outs = sorted(p.communicate(timeout=30)[0].decode() for p in procs)
    assert outs == [f"{i}\n" for i in range(8)]


def test_exec_flood_is_bounded(store, web):
    """A process flooding stdout into a reader that does not read must not grow
    the supervisor's memory: credit stops the process instead."""
    sup = status_of(store, web, "supervisorPid")
    p = subprocess.Popen([os.path.join(BUILD, "capsa"), "exec", web, "yes"], env=store.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2)  # nobody reads p.stdout
    with open(f"/proc/{sup}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    assert rss < 8 * 1024, f"supervisor RSS {rss} kB"
    # now drain some of it for real
    data = p.stdout.read(50 * 1024 * 1024)
    assert data[:4] == b"y\ny\n" and len(data) == 50 * 1024 * 1024
    p.kill()
    p.wait()


def test_exec_not_running(store):
    name = uniq()
    store.ok("run", "--name", name, "busybox", "true")
    store.fail("exec", name, "true", rc=125, match="not running")
    store.ok("rm", name)
    store.fail("exec", "nosuchsandbox", "true", rc=125, match="nosuchsandbox")


# --- ps / inspect / wait / stop / kill / rm / pause ---------------------------

def test_ps_inspect(store, web):
    ps = json.loads(store.ok("ps", "--json"))
    mine = [s for s in ps if s["name"] == web]
    assert len(mine) == 1 and mine[0]["state"] == "running"
    assert web in store.ok("ps")
    info = json.loads(store.ok("inspect", web))
    assert info["config"]["cmd"] == ["httpd", "-f", "-p", "8080"]
    assert info["state"] == "running" and info["supervisorPid"] > 0


def test_stop_kill_rm(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    t0 = time.time()
    store.ok("stop", "-t", "1", name)
    assert time.time() - t0 < 10
    info = json.loads(store.ok("inspect", name))
    assert info["state"] == "exited" and info["reason"] == "stopped"
    store.ok("stop", name)  # idempotent
    store.ok("rm", name)
    store.ok("rm", "-f", name)  # idempotent with -f
    store.assert_clean()

    store.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    time.sleep(0.5)
    store.ok("kill", "-s", "SIGUSR1", name)
    assert store.ok("wait", name) == "42\n"
    store.ok("rm", name)

    for sig in ("TERM", "15", "SIGTERM"):
        store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
        store.ok("kill", "-s", sig, name)
        assert store.ok("wait", name) == "143\n"
        assert status_of(store, name, "reason") == "killed"
        store.ok("rm", name)
    store.fail("kill", "-s", "BOGUS", name, match="BOGUS")

    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    store.fail("rm", name, rc=125, match="running")
    store.ok("rm", "-f", name)
    store.assert_clean()


def test_pause(store, web):
    store.ok("pause", web)
    assert status_of(store, web, "state") == "paused"
    store.fail("exec", web, "true", rc=125, match="paused")
    store.ok("unpause", web)
    assert store.ok("exec", web, "echo", "back") == "back\n"


# --- limits and options ----------------------------------------------------------

def test_limits_and_options(store, tmp_path):
    (tmp_path / "f").write_text("host file\n")
    out = store.ok("run", "--rm", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "64", "--hostname", "box",
                   "--read-only", "-v", f"{tmp_path}:/data:ro", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
                   "hostname; cat /data/f; touch /x 2>&1 || echo rofs; touch /data/y 2>&1 || echo robind; "
                   "echo ok > /scratch/z && cat /scratch/z; df /scratch | tail -1")
    lines = out.splitlines()
    assert lines[0] == "box" and lines[1] == "host file"
    assert "rofs" in out and "robind" in out and "ok" in out
    assert " 1024 " in lines[-1] or "1.0M" in lines[-1]
    store.assert_clean()


def test_cgroup_limits_applied(store):
    out = store.ok("run", "--rm", "--memory", "64m", "--pids-limit", "64", "--cpus", "0.5", "busybox", "sh", "-c",
                   "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>/dev/null || "
                   "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max")
    assert "67108864" in out and "64" in out


def test_caps_and_seccomp_options(store):
    def status(*opts):
        return store.ok("run", "--rm", *opts, "busybox", "grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status")
    assert "CapEff:\t00000000a80425fb" in status()
    assert "CapEff:\t00000000a80425fa" in status("--cap-drop", "CHOWN")
    assert "CapEff:\t00000000a80435fb" in status("--cap-add", "NET_ADMIN")
    assert "CapEff:\t0000000000000000" in status("--cap-drop", "ALL")
    assert "Seccomp:\t0" in status("--security-opt", "seccomp=unconfined")
    store.fail("run", "--rm", "--cap-add", "CAP_BOGUS", "busybox", "true", match="BOGUS")
    store.fail("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", "busybox", "true",
               match="/nonexistent.json")
    store.assert_clean()


def test_ulimit(store):
    out = store.ok("run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert out == "100\n200\n"
    store.fail("run", "--rm", "--ulimit", "nofiles=1", "busybox", "true", match="nofiles")


def test_labels(store):
    name = uniq()
    store.ok("run", "--name", name, "-l", "team=a", "--label", "x=y", "busybox", "true")
    assert status_of(store, name, "labels") == {"team": "a", "x": "y"}
    store.ok("rm", name)


# --- isolation ------------------------------------------------------------------

def probe(store, what, *opts, arg=None):
    args = ["run", "--rm", "-v", f"{PROBE_DIR}:/probe:ro", *opts, "busybox", "/probe/capsa-probe", what]
    if arg is not None:
        args.append(str(arg))
    return store.ok(*args).strip()


def test_isolation_basics(store):
    out = store.ok("run", "--rm", "busybox", "sh", "-c",
                   "hostname; cat /proc/1/comm; ps -o pid | wc -l; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
                   "/proc/self/status; touch /proc/sys/x 2>/dev/null || echo procsys-ro; "
                   "echo 1 > /proc/sys/kernel/panic 2>/dev/null || echo panic-ro; "
                   "touch /sys/x 2>/dev/null || echo sys-ro; cat /proc/kcore 2>/dev/null | wc -c")
    lines = out.splitlines()
    assert lines[0] != os.uname().nodename
    assert lines[1].startswith("memfd:capsa")  # PID 1 is the agent, from a memfd
    assert int(lines[2]) <= 6  # header + a handful of processes: the host's are invisible
    assert "CapEff:\t00000000a80425fb" in out and "CapBnd:\t00000000a80425fb" in out
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    assert "procsys-ro" in out and "panic-ro" in out and "sys-ro" in out
    assert lines[-1] == "0"  # /proc/kcore is masked


@pytest.mark.parametrize("what", ["keyctl", "add_key", "bpf", "ptrace1", "userns", "mount", "reboot", "kexec",
                                  "init_module", "perf", "open_by_handle", "disk"])
def test_isolation_denied(store, what):
    out = probe(store, what)
    assert out.startswith("denied"), f"{what}: {out}"


def test_dev_nodes(store):
    out = store.ok("run", "--rm", "busybox", "sh", "-c",
                   "ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c; test -c /dev/pts/ptmx && echo pts; "
                   "readlink /dev/fd")
    for node in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "shm", "mqueue", "pts"):
        assert node in out.split(), node
    assert "4\n" in out and "/proc/self/fd" in out


def test_oom_reason(store):
    name = uniq()
    p = store.run("run", "--name", name, "--memory", "32m", "-v", f"{PROBE_DIR}:/probe:ro", "busybox",
                  "/probe/capsa-probe", "alloc", "200")
    assert p.returncode == 137
    assert status_of(store, name, "reason") == "oom"
    # the host and other sandboxes carry on
    assert store.ok("run", "--rm", "busybox", "echo", "alive") == "alive\n"
    store.ok("rm", name)
    store.assert_clean()


def test_fork_bomb_stopped_by_pids_limit(store):
    out = probe(store, "fork", "--pids-limit", "32", arg=1000)
    n = int(out.split()[1])
    assert 20 <= n < 32, out
    assert store.ok("run", "--rm", "busybox", "echo", "alive") == "alive\n"


# --- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["run", "--rm", "nosuchimage:latest", "true"], "nosuchimage"),
    (["run", "--rm", "--memory", "12q", "busybox", "true"], "12q"),
    (["run", "--rm", "--cpus", "-1", "busybox", "true"], "-1"),
    (["run", "--rm", "--pids-limit", "x", "busybox", "true"], "x"),
    (["run", "--rm", "-v", "/nonexistent/dir:/x", "busybox", "true"], "/nonexistent/dir"),
    (["run", "--rm", "-v", "relative:/x", "busybox", "true"], "relative"),
    (["run", "--rm", "-v", "/tmp:/a/../b", "busybox", "true"], "/a/../b"),
    (["run", "--rm", "--name", "bad/name", "busybox", "true"], "bad/name"),
    (["run", "--rm", "--name", "x" * 200, "busybox", "true"], "invalid sandbox name"),
    (["run", "--rm", "--tmpfs", "/x:size=1q", "busybox", "true"], "1q"),
    (["run", "--rm", "--idle-timeout", "5x", "busybox", "true"], "5x"),
    (["run", "--rm", "--hostname", "h" * 100, "busybox", "true"], "hostname"),
    (["run"], "IMAGE"),
    (["exec", "nosuch", "true"], "nosuch"),
    (["rm", "nosuch"], "nosuch"),
    (["stop", "nosuch"], "nosuch"),
    (["kill", "nosuch"], "nosuch"),
    (["logs", "nosuch"], "nosuch"),
    (["inspect", "nosuch"], "nosuch"),
])
def test_bad_input(store, args, needle):
    err = store.fail(*args, rc=125)
    assert needle in err, err
    assert err.count("\n") <= 2, err  # a one-line error (plus a usage hint)
    store.assert_clean(allow_sandboxes=False)


def test_duplicate_name(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
    store.fail("run", "--name", name, "busybox", "true", match=name)
    store.ok("rm", "-f", name)
    store.assert_clean()


# --- crash safety ------------------------------------------------------------------

def test_supervisor_killed_is_reconciled(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    sup = status_of(store, name, "supervisorPid")
    os.kill(sup, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{sup}"):
        time.sleep(0.05)
    info = json.loads(store.ok("inspect", name))
    assert info["state"] == "exited" and info["reason"] == "lost", info
    store.assert_clean(allow_sandboxes=True)  # no process, cgroup, mount or runtime dir
    store.ok("rm", name)
    store.assert_clean()
