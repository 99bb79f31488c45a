"""End-to-end test harness: drives the real capsa binaries as a user would.

Every test gets its own store root and runtime root under a temporary
directory (or shares the session store that has the test images imported),
and every test checks afterwards that it left nothing behind: no mount, no
cgroup, no process, no sandbox directory.
"""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import metrics_reg
from cli_runner import CliRunner

# Sandboxes of the tests have loopback only unless a test asks for a
# network: the bridge's tests run inside a fake internet of their own
# (netenv.py), never on this machine's real network.
os.environ.setdefault("CAPSA_DEFAULT_NETWORK", "none")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CAPSA_BUILD", os.path.join(REPO, "build"))
IMAGES = os.path.join(REPO, "tests", "images", "out")


def capsa_bin():
    return os.path.join(BUILD, "capsa")


# Sandboxes of this test run live under their own cgroup parent, so the leak
# checks see only what this run made, whatever else the host is running.
CGROUP_PARENT = f"capsa-e2e-{os.getpid()}"


def capsa_cgroups():
    """Cgroup directories of this run's sandboxes (<hierarchy>/<parent>/<id>)."""
    out = set()
    base = "/sys/fs/cgroup"
    cands = [base] + [os.path.join(base, d) for d in os.listdir(base)]
    for h in cands:
        c = os.path.join(h, CGROUP_PARENT)
        if os.path.isdir(c):
            for d in os.listdir(c):
                if os.path.isdir(os.path.join(c, d)):
                    out.add(os.path.join(c, d))
    return out


class Capsa(CliRunner):
    """A capsa command line bound to one store root and runtime root."""

    def __init__(self, root, run_root):
        self.root = root
        self.run_root = run_root
        self.env = dict(os.environ, CAPSA_ROOT=root, CAPSA_RUN_ROOT=run_root, CAPSA_CGROUP_PARENT=CGROUP_PARENT)
        self.env.pop("CAPSA_LIBEXEC_DIR", None)
        self.cgroups_before = capsa_cgroups()

    def argv(self, *args):
        return [capsa_bin(), *map(str, args)]

    # leftovers -----------------------------------------------------------
    def leftovers(self):
        """Everything this root still holds on the host beyond the store."""
        found = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if self.root in fields[4] or self.run_root in fields[4]:
                    found.append("mount " + fields[4])
        for cg in sorted(capsa_cgroups() - self.cgroups_before):
            found.append("cgroup " + cg)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    envb = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if b"CAPSA_ROOT=" + self.root.encode() in envb and "pytest" not in cmd:
                found.append(f"process {pid} {cmd}")
        rt = self.run_root
        if os.path.isdir(rt):
            for d in os.listdir(rt):
                if d == "names":  # the name index: only its entries count
                    for n in os.listdir(os.path.join(rt, d)):
                        found.append("runtime dir " + os.path.join(rt, d, n))
                elif d == "metrics":  # the registry stays: only live slots count
                    for sl in metrics_reg.live_slots(rt):
                        found.append(f"runtime dir metrics slot {sl['slot']} ({sl['id'][:12]})")
                elif d not in ("capsa.sock", "capsa.token"):
                    found.append("runtime dir " + os.path.join(rt, d))
        return found

    def assert_clean(self, allow_sandboxes=False, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            left = self.leftovers()
            if allow_sandboxes:
                left = [x for x in left if not x.startswith("runtime dir")]
            if not left or time.time() > deadline:
                break
            time.sleep(0.05)
        assert not left, "left behind: " + "; ".join(left)
        if not allow_sandboxes:
            sb = os.path.join(self.root, "sandboxes")
            if os.path.isdir(sb):
                assert os.listdir(sb) == [], f"sandbox dirs left: {os.listdir(sb)}"


@pytest.fixture
def tmpdir_capsa():
    d = tempfile.mkdtemp(prefix="capsa-e2e-")
    yield d
    subprocess.run(["umount", "-R", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def capsa(tmpdir_capsa):
    """A fresh, empty store."""
    c = Capsa(os.path.join(tmpdir_capsa, "root"), os.path.join(tmpdir_capsa, "run"))
    yield c


def image_path(name):
    p = os.path.join(IMAGES, name)
    if not os.path.exists(p):
        pytest.fail(f"test image {p} missing: run tests/images/build.sh")
    return p


@pytest.fixture(scope="session")
def session_store():
    """A store shared by the tests of one run, with the test images imported
    (busybox:latest always; debian:test when it was built)."""
    d = tempfile.mkdtemp(prefix="capsa-e2e-store-")
    c = Capsa(os.path.join(d, "root"), os.path.join(d, "run"))
    c.ok("image", "import", image_path("busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    deb = os.path.join(IMAGES, "debian-oci.tar")
    if os.path.exists(deb):
        c.ok("image", "import", deb, "--name", "debian:test", timeout=600)
    yield c
    subprocess.run([capsa_bin(), "rm", "-f", "--all"], env=c.env, capture_output=True)
    subprocess.run(["umount", "-R", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def store(session_store):
    """The shared store; asserts the test left no sandbox running."""
    yield session_store


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's (empty) cgroup parents: the sandboxes' and the OCI
    runtime's (oci_env sets CAPSA_OCI_CGROUP_PARENT)."""
    base = "/sys/fs/cgroup"
    parents = [CGROUP_PARENT, os.environ.get("CAPSA_OCI_CGROUP_PARENT")]
    for h in [base] + [os.path.join(base, d) for d in os.listdir(base)]:
        for parent in filter(None, parents):
            c = os.path.join(h, parent)
            if os.path.isdir(c):
                try:
                    os.rmdir(c)
                except OSError:
                    pass
