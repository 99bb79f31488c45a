"""Creation, removal and reconciliation racing each other (issue 12's
outside findings): a removal of a sandbox being created waits for its
creator and leaves nothing running; nothing is declared dead because a file
is missing where a command looked; a block of host ids belongs to one live
sandbox on the whole host; listings survive sandboxes ending under them.

The races are forced with the creation hook CAPSA_TEST_CREATE_DELAY_MS
(a pause between the row and the supervisor) and also run unforced in a
loop."""
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import Capsa, capsa_bin, image_path

CLAIMS = "/run/capsa-userns"


def uniq(prefix="r"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def popen(c, *args, env=None):
    e = dict(c.env)
    e.update(env or {})
    return subprocess.Popen([capsa_bin(), *map(str, args)], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_row(c, name, proc, timeout=20):
    """Until `inspect name` answers: the row exists (its creator is in the
    forced window)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"creator ended early: {proc.communicate()}")
        p = c.run("inspect", name)
        if p.returncode == 0:
            return c.json("inspect", name)
        time.sleep(0.01)
    pytest.fail(f"sandbox {name} never appeared")


def sandbox_cgroup_pids(c, sid):
    """Processes in the sandbox's cgroup, in any hierarchy."""
    base = "/sys/fs/cgroup"
    pids = set()
    for h in [base] + [os.path.join(base, d) for d in os.listdir(base)]:
        p = os.path.join(h, c.env["CAPSA_CGROUP_PARENT"], sid, "cgroup.procs")
        try:
            with open(p) as f:
                pids |= {int(x) for x in f.read().split()}
        except OSError:
            pass
    return pids


def claims_of(root):
    """Host-wide id block claims that name this store."""
    out = []
    if not os.path.isdir(CLAIMS):
        return out
    for n in os.listdir(CLAIMS):
        try:
            with open(os.path.join(CLAIMS, n)) as f:
                if f"root={root}\n" in f.read():
                    out.append(n)
        except OSError:
            pass
    return out


def test_rm_f_of_a_sandbox_being_created_waits_for_its_creator(store):
    name = uniq()
    creator = popen(store, "run", "-d", "--name", name, "busybox", "sleep", "1000",
                    env={"CAPSA_TEST_CREATE_DELAY_MS": "1500"})
    sid = wait_row(store, name, creator)["id"]
    p = store.run("rm", "-f", name)
    out, err = creator.communicate(timeout=60)
    assert p.returncode == 0, p.err
    # the creator gave up on it at the removal's request and says so
    assert creator.returncode != 0, (out, err)
    assert f"sandbox {name} was removed while it was being created" in err
    assert name not in store.ok("ps", "-a")
    assert not sandbox_cgroup_pids(store, sid)
    assert not claims_of(store.root)
    store.assert_clean()


def test_rm_f_of_a_sandbox_whose_creator_is_stopped_fails_and_keeps_it(store):
    name = uniq()
    creator = popen(store, "run", "-d", "--name", name, "busybox", "sleep", "1000",
                    env={"CAPSA_TEST_CREATE_DELAY_MS": "2000"})
    try:
        wait_row(store, name, creator)
        os.kill(creator.pid, signal.SIGSTOP)
        t0 = time.time()
        err = store.fail("rm", "-f", name, match="which is stopped")
        assert f"process {creator.pid}" in err
        assert time.time() - t0 < 20  # it says so at once, not after a long wait
        assert name in store.ok("ps", "-a")
    finally:
        os.kill(creator.pid, signal.SIGCONT)
    out, err = creator.communicate(timeout=60)
    # the removal it was asked for happens when it continues
    assert creator.returncode != 0 and "removed while it was being created" in err, (out, err)
    assert name not in store.ok("ps", "-a")
    store.assert_clean()


def running_sandbox_cgroups(c):
    """Ids of this harness's sandbox cgroups that have processes."""
    base = "/sys/fs/cgroup"
    out = set()
    for h in [base] + [os.path.join(base, d) for d in os.listdir(base)]:
        par = os.path.join(h, c.env["CAPSA_CGROUP_PARENT"])
        if not os.path.isdir(par):
            continue
        for d in os.listdir(par):
            try:
                with open(os.path.join(par, d, "cgroup.procs")) as f:
                    if f.read().strip():
                        out.add(d)
            except OSError:
                pass
    return out


def test_rm_f_racing_run_d_unforced_leaves_nothing_running(capsa):
    """The outside test's race: rm -f as soon as the sandbox's directory
    exists.  Whatever the interleaving, nothing runs that is not listed,
    and an rm -f that says 0 leaves nothing running."""
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    sbdir = os.path.join(capsa.root, "sandboxes")
    os.makedirs(sbdir, exist_ok=True)
    for i in range(18):
        before = set(os.listdir(sbdir))
        creator = popen(capsa, "run", "-d", "busybox", "sleep", "1000")
        sid = None
        deadline = time.time() + 20
        while sid is None and time.time() < deadline and creator.poll() is None:
            new = set(os.listdir(sbdir)) - before
            sid = new.pop() if new else None
        if sid is not None:
            time.sleep((i % 6) * 0.005)  # spread over the supervisor's start
            rm = capsa.run("rm", "-f", sid)
        creator.communicate(timeout=60)
        time.sleep(0.3)  # whatever a lost supervisor would still start
        listed = {line.split()[0] for line in capsa.ok("ps", "-aq").split()}
        orphans = {x for x in running_sandbox_cgroups(capsa) if x[:12] not in listed}
        assert not orphans, f"round {i}: sandboxes run unlisted: {orphans} (rm: {rm.err if sid else '-'})"
        if sid is not None and rm.returncode == 0:
            assert sid not in running_sandbox_cgroups(capsa), f"round {i}: rm -f said 0 but {sid} lives on"
        for x in listed:
            capsa.run("rm", "-f", x)
    capsa.assert_clean()


def test_a_listing_with_another_run_root_kills_nothing(store, tmp_path):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    try:
        other = {"CAPSA_RUN_ROOT": str(tmp_path / "elsewhere")}
        store.ok("ps", "-a", env=other)
        store.ok("inspect", name, env=other)
        info = store.json("inspect", name)
        assert info["state"] == "running", info
        assert store.ok("exec", name, "echo", "alive") == "alive\n"
        # a removal from there cannot reach the supervisor: it says so and
        # keeps the sandbox (row, id block, processes)
        err = store.fail("rm", "-f", name, env=other, match="CAPSA_RUN_ROOT")
        assert "supervisor" in err
        assert store.json("inspect", name)["state"] == "running"
        assert store.ok("exec", name, "echo", "still") == "still\n"
        assert claims_of(store.root)
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()


def test_two_stores_never_share_an_id_block(store, capsa):
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    a, b = uniq(), uniq()
    store.ok("run", "-d", "--name", a, "busybox", "sleep", "1000")
    capsa.ok("run", "-d", "--name", b, "busybox", "sleep", "1000")
    try:
        ua = store.json("inspect", a)["userns"]["uid"]
        ub = capsa.json("inspect", b)["userns"]["uid"]
        assert ua != ub
        ga = store.json("inspect", a)["userns"]["gid"]
        gb = capsa.json("inspect", b)["userns"]["gid"]
        assert ga != gb
        assert f"u{ub}" in claims_of(capsa.root) and f"u{ua}" in claims_of(store.root)
    finally:
        store.ok("rm", "-f", a)
        capsa.ok("rm", "-f", b)
    assert not claims_of(capsa.root)
    capsa.assert_clean()


def test_a_deleted_store_keeps_its_block_while_its_processes_live(capsa, tmp_path):
    """A store deleted whole under a running sandbox: its claim stays until
    its cgroup is empty, then it is taken over."""
    gone = Capsa(str(tmp_path / "gone-root"), str(tmp_path / "gone-run"))
    gone.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    capsa.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    x = gone.ok("run", "-d", "busybox", "sleep", "1000").strip()
    ux = gone.json("inspect", x)["userns"]["uid"]
    sup = gone.json("inspect", x)["supervisorPid"]
    subprocess.run(["rm", "-rf", gone.root, gone.run_root], check=True)
    a = b = None
    try:
        a = capsa.ok("run", "-d", "busybox", "sleep", "1000").strip()
        assert capsa.json("inspect", a)["userns"]["uid"] != ux
        assert sandbox_cgroup_pids(gone, x)
    finally:
        os.kill(sup, signal.SIGKILL)  # the sandbox dies with its supervisor (PDEATHSIG)
        deadline = time.time() + 20
        while sandbox_cgroup_pids(gone, x) and time.time() < deadline:
            time.sleep(0.05)
    try:
        # now the claim is stale: the block comes back into use
        b = capsa.ok("run", "-d", "busybox", "sleep", "1000").strip()
        assert capsa.json("inspect", b)["userns"]["uid"] == ux
    finally:
        for s in (a, b):
            if s:
                capsa.run("rm", "-f", s)
        for h in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", d) for d in os.listdir("/sys/fs/cgroup")]:
            p = os.path.join(h, gone.env["CAPSA_CGROUP_PARENT"], x)
            if os.path.isdir(p):
                os.rmdir(p)
    capsa.assert_clean()


def test_listings_survive_sandboxes_ending_meanwhile(store):
    stop = threading.Event()
    failures = []

    def churn():
        while not stop.is_set():
            ps = [popen(store, "run", "--rm", "busybox", "true") for _ in range(6)]
            for p in ps:
                p.communicate(timeout=60)

    t = threading.Thread(target=churn)
    t.start()
    try:
        for i in range(40):
            for cmd in (("ps", "-a"), ("ps",)):
                p = store.run(*cmd)
                if p.returncode != 0:
                    failures.append(f"{' '.join(cmd)}: {p.err}")
    finally:
        stop.set()
        t.join(timeout=120)
    assert not failures, failures[:3]
    store.assert_clean()


def test_names_that_read_as_ids_are_refused(store):
    for bad in ("0123456789ab", "deadbeef" * 8, "abcdef0123456789"):
        store.fail("run", "--rm", "--name", bad, "busybox", "true", match="read as a sandbox id")
    # shorter hex, or anything with another letter, is a name
    store.ok("run", "--rm", "--name", "cafe1234", "busybox", "true")
    store.ok("run", "--rm", "--name", "0123456789ag", "busybox", "true")


def test_stale_name_entries_are_swept(store):
    names = os.path.join(store.run_root, "names")
    os.makedirs(names, exist_ok=True)
    stale = os.path.join(names, uniq("stale"))
    os.symlink("f" * 64, stale)
    store.ok("ps")
    assert not os.path.lexists(stale)
    # and a removal takes its own entry with it
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert os.path.lexists(os.path.join(names, name))
    store.ok("rm", "-f", name)
    assert not os.path.lexists(os.path.join(names, name))
