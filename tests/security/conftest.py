"""The escape battery's fixtures: the end-to-end store and images (the
fixtures of tests/e2e/conftest.py, re-used), a long-lived attacker sandbox
with capsa-probe mounted at /probe, a neighbour, and a check around every
test that the host is unchanged."""
import pytest

import rootless
from battery import BUILD, EXTRA, PROBE_DIR, ROOTLESS, assert_same_host, e2e, host_state, uniq

# the e2e harness's fixtures, by reference
tmpdir_capsa = e2e.tmpdir_capsa
capsa = e2e.capsa
store = e2e.store
pytest_sessionfinish = e2e.pytest_sessionfinish

if ROOTLESS:
    @pytest.fixture(scope="session")
    def session_store():
        """The battery's non-root user's store, with the test images."""
        yield from rootless.session_store(BUILD, e2e.image_path, e2e.IMAGES)

    @pytest.fixture
    def tmp_path(session_store):
        """A host directory the user may write: `capsa cp` copies out as
        the user in rootless mode, and pytest's own tmp_path is root's."""
        yield from rootless.user_dir(session_store)
else:
    session_store = e2e.session_store


def _start(c, image="busybox", *opts):
    name = uniq("box")
    c.ok("run", "-d", "--name", name, "-v", f"{PROBE_DIR}:/probe:ro", *EXTRA, *opts, image, "sleep", "1000000")
    return name


@pytest.fixture(scope="session", autouse=True)
def nothing_left(session_store):
    """After the battery (every attacker removed): no mount, cgroup, process
    or sandbox directory of it is left on the host."""
    yield
    session_store.assert_clean(timeout=15)


@pytest.fixture(scope="module")
def box(session_store):
    """An attacker sandbox (busybox) shared by a module's attempts."""
    name = _start(session_store)
    yield name
    session_store.run("rm", "-f", name)


@pytest.fixture(scope="module")
def debbox(session_store):
    """An attacker sandbox with Debian's tools (unshare, python3 if any)."""
    if "debian:test" not in session_store.ok("image", "ls"):
        pytest.skip("debian test image not built")
    name = _start(session_store, "debian:test")
    yield name
    session_store.run("rm", "-f", name)


@pytest.fixture(scope="module")
def neighbour(session_store):
    name = _start(session_store)
    yield name
    session_store.run("rm", "-f", name)


@pytest.fixture(autouse=True)
def host_unchanged():
    """Every attempt must leave the host as it found it."""
    before = host_state()
    yield
    after = host_state()
    if after["sysctl"]["kernel/core_pattern"] != before["sysctl"]["kernel/core_pattern"]:
        with open("/proc/sys/kernel/core_pattern", "wb") as f:  # undo before failing
            f.write(before["sysctl"]["kernel/core_pattern"])
    assert_same_host(before, after)


@pytest.fixture
def attempt(store, box):
    """attempt(*probe) runs capsa-probe in the attacker sandbox as root and
    returns its output."""
    def run(*args, sandbox=None):
        p = store.run("exec", sandbox or box, "/probe/capsa-probe", *args, check=0)
        return p.out
    return run
