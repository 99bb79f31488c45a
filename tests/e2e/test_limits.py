"""Limits: --disk (a loop-mounted ext4 image per sandbox), /dev/shm and
--tmpfs sizes, the pty count, default pids and descriptor limits, `capsa
update` of a running sandbox's cgroup limits, and bad values.

Each test drives the real binaries and checks the host afterwards: no loop
device, mount, cgroup or file left behind."""
import glob
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import CGROUP_PARENT


def uniq(prefix="lim"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(c, name):
    return json.loads(c.ok("inspect", name))


def loops_backed_by(path):
    """Loop devices whose backing file is path (or path deleted)."""
    found = []
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(bf) as f:
                b = f.read().strip()
        except OSError:
            continue
        if b == path or b == path + " (deleted)":
            found.append(bf.split("/")[3])
    return found


def wait_no_loop(path, timeout=20.0):
    """The loop device detaches when its last mount goes (autoclear), which
    the kernel finishes asynchronously after the namespace dies."""
    deadline = time.time() + timeout
    while loops_backed_by(path) and time.time() < deadline:
        time.sleep(0.05)
    assert loops_backed_by(path) == [], f"loop device still attached to {path}"


def cgroup_file(sid, controller, name):
    """The host's view of one cgroup file of a sandbox (v1 or v2)."""
    for base in (f"/sys/fs/cgroup/{controller}", "/sys/fs/cgroup"):
        p = os.path.join(base, CGROUP_PARENT, sid, name)
        if os.path.exists(p):
            with open(p) as f:
                return f.read().strip()
    raise AssertionError(f"no cgroup file {name} for {sid}")


def cgroup_v1():
    return os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") or \
        os.path.isdir("/sys/fs/cgroup/memory")


def allocated(top):
    """Bytes allocated on the host's filesystem under top (du)."""
    total = 0
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            try:
                total += os.lstat(os.path.join(d, n)).st_blocks * 512
            except OSError:
                pass
    return total


# --- --disk --------------------------------------------------------------------

def test_disk_fill_gives_enospc_and_spares_host_and_neighbour(store):
    name, other = uniq(), uniq()
    store.ok("run", "-d", "--name", name, "--disk", "32m", "busybox", "sleep", "600")
    store.ok("run", "-d", "--name", other, "busybox", "sleep", "600")
    sid = inspect(store, name)["id"]
    image = os.path.join(store.root, "sandboxes", sid, "disk.img")
    try:
        assert os.path.getsize(image) == 32 << 20
        assert loops_backed_by(image), "the image is not on a loop device"
        # the mount is not on the host's mount table
        with open("/proc/self/mountinfo") as f:
            assert os.path.join(store.root, "sandboxes", sid, "disk") not in f.read()
        # the root filesystem inside is the image's size
        df = store.ok("exec", name, "df", "-k", "/").splitlines()[-1].split()
        assert 20000 < int(df[1]) <= 32768, df
        p = store.run("exec", name, "dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=100")
        assert p.returncode != 0 and "No space left on device" in p.err, p.err
        # the host lost at most the image: everything the sandbox holds on
        # the host's filesystem (the host's free space itself moves with
        # whatever else runs on this machine, so it is not the measure)
        assert allocated(os.path.join(store.root, "sandboxes", sid)) <= (32 << 20) + (1 << 20)
        # the file API says which sandbox and which limit
        big = os.path.join(store.root, "..", "big-" + name)
        with open(big, "wb") as f:
            f.write(os.urandom(4 << 20))
        try:
            store.fail("cp", big, f"{name}:/more", match=f"no space left on device in sandbox {name} (--disk 32M)")
            store.fail("files", "write", name, "/more2", input=b"x" * (4 << 20),
                       match=f"no space left on device in sandbox {name} (--disk 32M)")
        finally:
            os.unlink(big)
        # the sandbox itself still works once space is freed, and so does its neighbour
        store.ok("exec", name, "rm", "/fill")
        store.ok("exec", name, "sh", "-c", "echo ok > /after")
        assert store.ok("exec", other, "echo", "neighbour") == "neighbour\n"
    finally:
        store.ok("rm", "-f", name, other)
    assert not os.path.exists(image)
    wait_no_loop(image)
    store.assert_clean()


def test_cp_keeps_holes_both_ways_and_bounds_the_host(store, tmp_path):
    """A 1 GiB sparse file in a 16 MiB sandbox comes out sparse (cp to a
    directory, and as a tar stream GNU tar reads), a sparse host file goes
    in sparse, and --max-size bounds what a copy out writes on the host."""
    name = uniq()
    store.ok("run", "-d", "--name", name, "--disk", "16m", "busybox", "sleep", "600")
    try:
        store.ok("exec", name, "sh", "-c", "truncate -s 1G /big && echo tail >> /big")
        out = tmp_path / "big"
        store.ok("cp", f"{name}:/big", out)
        st = os.stat(out)
        assert st.st_size == (1 << 30) + 5 and st.st_blocks * 512 < (1 << 20), (st.st_size, st.st_blocks)
        with open(out, "rb") as f:
            f.seek(1 << 30)
            assert f.read() == b"tail\n"
        p = store.run("cp", f"{name}:/big", "-", check=0)
        assert len(p.stdout) < 65536, len(p.stdout)
        gnu = tmp_path / "gnu"
        gnu.mkdir()
        subprocess.run(["tar", "-x", "-C", str(gnu)], input=p.stdout, check=True)
        st = os.stat(gnu / "big")
        assert st.st_size == (1 << 30) + 5 and st.st_blocks * 512 < (1 << 20)
        host = tmp_path / "hs"
        with open(host, "wb") as f:
            f.truncate(1 << 30)
            f.seek(1 << 29)
            f.write(b"mid")
        store.ok("cp", host, f"{name}:/hs")
        size, blocks = store.ok("exec", name, "stat", "-c", "%s %b", "/hs").split()
        assert int(size) == 1 << 30 and int(blocks) * 512 < (1 << 20), (size, blocks)
        assert store.ok("exec", name, "dd", "if=/hs", "bs=1", "skip=536870912", "count=3") == "mid"
        store.ok("exec", name, "sh", "-c", "head -c 3000000 /dev/urandom > /rand")
        store.fail("cp", "--max-size", "1m", f"{name}:/rand", tmp_path / "rand", match="more than 1048576 bytes")
        assert sorted(os.listdir(tmp_path)) == ["big", "gnu", "hs"]  # no rand, no temporary
    finally:
        store.run("rm", "-f", name)
    store.assert_clean()


def test_cp_into_a_full_disk_leaves_nothing_and_says_so_once(store, tmp_path):
    """A copy that fills the sandbox's disk leaves no truncated file holding
    the space, and says what failed in one line."""
    name = uniq()
    store.ok("run", "-d", "--name", name, "--disk", "16m", "busybox", "sleep", "600")
    try:
        store.ok("exec", name, "mkdir", "/data")
        big = tmp_path / "big"
        big.write_bytes(os.urandom(30 << 20))
        err = store.fail("cp", big, f"{name}:/data/big")
        assert err == f"capsa: cp {big} {name}:/data/big: no space left on device in sandbox {name} (--disk 16M)\n", err
        assert store.ok("exec", name, "ls", "-A", "/data") == ""
        # the space is free again
        store.ok("exec", name, "dd", "if=/dev/zero", "of=/data/after", "bs=1M", "count=8")
    finally:
        store.run("rm", "-f", name)
    store.assert_clean()


def test_disk_survives_nothing_after_a_supervisor_crash(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "--disk", "16m", "busybox", "sleep", "600")
    info = inspect(store, name)
    sid = info["id"]
    image = os.path.join(store.root, "sandboxes", sid, "disk.img")
    os.kill(int(info["supervisorPid"]), 9)
    # the sandbox dies with it (PDEATHSIG), its namespace with it, and the
    # mount and the loop device with that
    wait_no_loop(image)
    store.ok("rm", "-f", name)
    assert not os.path.exists(image)
    store.assert_clean()


def test_disk_bad_values(store):
    for v, why in (("10q", "unknown unit 'q'"), ("0", "must be positive"), ("1m", "the minimum is 16 MiB"),
                   ("-5m", "--disk"), ("100000t", "--disk")):
        store.fail("run", "--rm", "--disk", v, "busybox", "true", match=why)
    err = store.fail("run", "--rm", "--disk", "1000t", "busybox", "true")
    assert "--disk" in err and "larger than the" in err
    store.assert_clean()


def test_disk_with_run_rm_foreground(store):
    out = store.ok("run", "--rm", "--disk", "16m", "busybox", "sh", "-c",
                   "echo hi > /f && cat /f && df -k / | tail -1")
    assert out.startswith("hi\n")
    assert int(out.splitlines()[1].split()[1]) <= 16384
    store.assert_clean()


# --- shm, tmpfs, ptys, defaults ----------------------------------------------------

def test_shm_default_and_flag(store):
    out = store.ok("run", "--rm", "busybox", "df", "-k", "/dev/shm")
    assert out.splitlines()[-1].split()[1] == str(64 * 1024)
    out = store.ok("run", "--rm", "--shm-size", "8m", "busybox", "sh", "-c",
                   "df -k /dev/shm | tail -1; dd if=/dev/zero of=/dev/shm/x bs=1M count=16 2>&1; echo rc=$?")
    assert out.splitlines()[0].split()[1] == str(8 * 1024)
    assert "No space left on device" in out and "rc=1" in out
    store.fail("run", "--rm", "--memory", "32m", "--shm-size", "64m", "busybox", "true",
               match="charged to the memory limit")
    store.fail("run", "--rm", "--shm-size", "12x", "busybox", "true", match="--shm-size")


def test_tmpfs_bounded(store):
    out = store.ok("run", "--rm", "--tmpfs", "/scratch:size=4m", "busybox", "sh", "-c",
                   "df -k /scratch | tail -1; dd if=/dev/zero of=/scratch/x bs=1M count=8 2>&1; echo rc=$?")
    assert out.splitlines()[0].split()[1] == str(4 * 1024)
    assert "No space left on device" in out and "rc=1" in out
    # without a size: half the memory limit
    out = store.ok("run", "--rm", "--memory", "32m", "--tmpfs", "/scratch", "busybox", "df", "-k", "/scratch")
    assert out.splitlines()[-1].split()[1] == str(16 * 1024)
    store.fail("run", "--rm", "--tmpfs", "/scratch:size=1q", "busybox", "true", match="--tmpfs")


def test_pty_count_is_bounded(store):
    out = store.ok("run", "--rm", "busybox", "sh", "-c", "grep ' /dev/pts ' /proc/mounts")
    assert "max=256" in out, out


def test_default_pids_and_nofile(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        sid = inspect(store, name)["id"]
        assert cgroup_file(sid, "pids", "pids.max") == "4096"
        assert inspect(store, name)["config"]["pidsLimit"] == 4096
        out = store.ok("exec", name, "sh", "-c", "ulimit -n; ulimit -Hn")
        soft, hard = map(int, out.split())
        assert soft == 1024 and 1024 <= hard <= 524288
    finally:
        store.ok("rm", "-f", name)
    out = store.ok("run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert out.split() == ["100", "200"]
    name = uniq()
    store.ok("run", "-d", "--name", name, "--pids-limit", "-1", "busybox", "sleep", "600")
    try:
        sid = inspect(store, name)["id"]
        assert cgroup_file(sid, "pids", "pids.max") == "max"
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()


def test_pids_limit_holds(store):
    p = store.run("run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
                  "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do sleep 30 & done 2>&1; echo all started")
    assert "can't fork" in p.out and "all started" not in p.out, p.out
    store.assert_clean()


# --- update ------------------------------------------------------------------------

def mem_limit(sid):
    try:
        return cgroup_file(sid, "memory", "memory.limit_in_bytes")
    except AssertionError:
        return cgroup_file(sid, "memory", "memory.max")


def cpu_quota(sid):
    try:
        return cgroup_file(sid, "cpu", "cpu.cfs_quota_us")
    except AssertionError:
        return cgroup_file(sid, "cpu", "cpu.max").split()[0]


def test_update_running(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "--memory", "64m", "busybox", "sleep", "600")
    try:
        sid = inspect(store, name)["id"]
        assert mem_limit(sid) == str(64 << 20)
        store.ok("update", "--memory", "128m", "--cpus", "0.5", "--pids-limit", "50", name)
        assert mem_limit(sid) == str(128 << 20)
        assert cpu_quota(sid) == "50000"
        assert cgroup_file(sid, "pids", "pids.max") == "50"
        cfg = inspect(store, name)["config"]
        assert cfg["memory"] == 128 << 20 and cfg["cpus"] == 0.5 and cfg["pidsLimit"] == 50
        # one at a time leaves the others
        store.ok("update", "--pids-limit", "60", name)
        assert mem_limit(sid) == str(128 << 20) and cgroup_file(sid, "pids", "pids.max") == "60"
        store.ok("update", "--pids-limit", "-1", name)
        assert cgroup_file(sid, "pids", "pids.max") == "max"
        assert inspect(store, name)["config"]["pidsLimit"] == 0
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()


@pytest.mark.skipif(not cgroup_v1(), reason="cgroup v2 reclaims (or OOM-kills) instead of refusing the write")
def test_update_refused_changes_nothing(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "40", "busybox", "sh", "-c",
             "dd if=/dev/zero of=/dev/shm/x bs=1M count=40 && sleep 600")
    try:
        sid = inspect(store, name)["id"]
        deadline = time.time() + 30
        while store.run("exec", name, "test", "-s", "/dev/shm/x").returncode != 0 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # let dd finish its 40 MiB (the size is checked below)
        assert store.ok("exec", name, "du", "-k", "/dev/shm/x").split()[0] == str(40 * 1024)
        # /dev/shm holds 40 MiB that cannot be reclaimed: 8m is refused
        store.fail("update", "--pids-limit", "20", "--memory", "8m", name, match=name)
        assert mem_limit(sid) == str(64 << 20)
        assert cgroup_file(sid, "pids", "pids.max") == "40"
        cfg = inspect(store, name)["config"]
        assert cfg["memory"] == 64 << 20 and cfg["pidsLimit"] == 40
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()


def test_update_stopped_and_bad_values(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "true")
    store.ok("wait", name)
    store.fail("update", "--memory", "64m", name, match="is not running")
    store.ok("rm", name)
    store.fail("update", "--memory", "64m", "nosuch-" + name, match="nosuch-")
    name = uniq()
    store.ok("run", "-d", "--name", name, "--memory", "64m", "busybox", "sleep", "600")
    try:
        sid = inspect(store, name)["id"]
        for args, why in ((["--memory", "10q"], "unknown unit 'q'"), (["--memory", "0"], "--memory"),
                          (["--memory", "-1"], "--memory"), (["--memory", "100t"], "more than the host's"),
                          (["--memory", "99999999999t"], "too large"), (["--memory", "1m"], "the minimum is 6 MiB"),
                          (["--cpus", "0"], "--cpus"), (["--cpus", "100000"], "--cpus"),
                          (["--cpus", "abc"], "--cpus"), (["--pids-limit", "0"], "--pids-limit"),
                          (["--pids-limit", "-7"], "--pids-limit"), ([], "nothing to update")):
            err = store.run("update", *args, name)
            assert err.returncode != 0 and why in err.err, (args, err.err)
        assert mem_limit(sid) == str(64 << 20)
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()


def test_run_bad_limits(store):
    for args, why in ((["--memory", "10q"], "unknown unit 'q'"), (["--memory", "100t"], "more than the host's"),
                      (["--memory", "1k"], "the minimum is 6 MiB"), (["--cpus", "100000"], "--cpus"),
                      (["--cpus", "-1"], "--cpus"), (["--pids-limit", "0"], "--pids-limit"),
                      (["--pids-limit", "99999999999"], "--pids-limit")):
        err = store.run("run", "--rm", *args, "busybox", "true")
        assert err.returncode != 0 and why in err.err, (args, err.err)
    store.assert_clean()


def test_disks_are_separate(store):
    """Two sandboxes with the same --disk size (their images are copies of
    one formatted template) at once: each has its own filesystem."""
    a, b = uniq(), uniq()
    store.ok("run", "-d", "--name", a, "--disk", "16m", "busybox", "sleep", "600")
    store.ok("run", "-d", "--name", b, "--disk", "16m", "busybox", "sleep", "600")
    try:
        store.ok("exec", a, "sh", "-c", "echo A > /mine && dd if=/dev/zero of=/fill bs=1M count=8 2>/dev/null")
        assert store.run("exec", b, "cat", "/mine").returncode != 0
        used = [int(store.ok("exec", n, "df", "-k", "/").splitlines()[-1].split()[2]) for n in (a, b)]
        assert used[0] >= 8 * 1024 > used[1], used
        ids = [inspect(store, n)["id"] for n in (a, b)]
        images = [os.path.join(store.root, "sandboxes", i, "disk.img") for i in ids]
        assert all(loops_backed_by(p) for p in images)
    finally:
        store.ok("rm", "-f", a, b)
    for p in images:
        wait_no_loop(p)
    store.assert_clean()


# --- the API: a default disk from the server's configuration ---------------------

def test_serve_default_disk(store):
    from serve_env import Serve
    store.fail("serve", "--default-disk", "1m", match="--default-disk")
    s = Serve(store, "--default-disk", "32m")
    try:
        a = s.ok("POST", "/v1/sandboxes", {"image": "busybox"}, status=201)
        b = s.ok("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"disk": "64m"}}, status=201)
        s.error("POST", "/v1/sandboxes", {"image": "busybox", "limits": {"disk": "1m"}}, status=400,
                match="16 MiB")
        for sb, size in ((a, 32), (b, 64)):
            assert inspect(store, sb["id"])["config"]["disk"] == size << 20
            df = store.ok("exec", sb["id"], "df", "-k", "/").splitlines()[-1].split()
            assert int(df[1]) <= size * 1024
        if "debian" in store.ok("image", "ls"):
            e = s.ok("POST", "/v2/sandboxes", {"templateID": "base", "timeout": 60}, status=201)
            try:
                sid = e["sandboxID"]
                store.ok("exec", sid, "dd", "if=/dev/zero", "of=/f", "bs=1M", "count=4")
                m = s.ok("GET", f"/sandboxes/{sid}/metrics")[0]
                assert m["diskTotal"] <= 32 << 20 and m["diskUsed"] >= 4 << 20, m
            finally:
                s.request("DELETE", f"/sandboxes/{e['sandboxID']}")
        for sb in (a, b):
            s.request("DELETE", f"/v1/sandboxes/{sb['id']}?force=1")
    finally:
        s.stop()
    store.assert_clean()


def test_disk_inode_exhaustion_stays_inside(store):
    """Files without data (a builtin's redirection, no fork) until the image's
    own inode table is full: ENOSPC inside, the host's inodes untouched."""
    name = uniq()
    store.ok("run", "-d", "--name", name, "--disk", "16m", "busybox", "sleep", "600")
    try:
        out = store.ok("exec", name, "sh", "-c",
                       "mkdir /many; i=0; while echo -n > /many/f$i 2>/dev/null; do i=$((i+1)); done; echo $i; "
                       "df -i / | tail -1", timeout=300)
        n = int(out.splitlines()[0])
        inodes = int(out.splitlines()[1].split()[1])
        assert 0 < n <= inodes, out
        # on the host, the sandbox is still a handful of inodes (counting the
        # host's free inodes would count whatever else runs on the machine)
        sid = inspect(store, name)["id"]
        assert sum(len(d) + len(f) for _, d, f in os.walk(os.path.join(store.root, "sandboxes", sid))) < 50
        store.ok("exec", name, "rm", "-rf", "/many")
        store.ok("exec", name, "sh", "-c", "echo ok > /again")
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()
