"""The unmodified E2B SDKs (npm e2b, @e2b/code-interpreter) against a real
`capsa serve` with real sandboxes.  The packages are installed from the npm
registry with `npm ci` from tests/e2e/e2b/package-lock.json (the versions
the lock pins) into tests/e2e/e2b/node_modules; each scenario is a small
Node script there that asserts what the SDK returns and exits non-zero on
the first surprise."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from serve_env import Serve

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DIR = os.path.join(HERE, "e2b")


@pytest.fixture(scope="session")
def e2b_sdk():
    npm = shutil.which("npm")
    node = shutil.which("node")
    if not npm or not node:
        pytest.fail("node and npm are needed for the E2B SDK tests (scripts/deps.sh installs them)")
    lock = os.path.join(SDK_DIR, "package-lock.json")
    stamp = os.path.join(SDK_DIR, "node_modules", ".capsa-lock")
    want = open(lock, "rb").read()
    if not os.path.exists(stamp) or open(stamp, "rb").read() != want:
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--cache", os.path.join(SDK_DIR, ".npm-cache")],
                           cwd=SDK_DIR, capture_output=True, timeout=600)
        assert p.returncode == 0, f"npm ci failed: {p.stderr.decode()[-2000:]}"
        with open(stamp, "wb") as f:
            f.write(want)
    return node


@pytest.fixture
def e2b_srv(store):
    out = store.ok("image", "ls")
    if "debian" not in out:
        pytest.skip("the Debian test image (tests/images/build.sh) is needed for the E2B templates")
    s = Serve(store)
    yield s
    s.stop()


def run_node(node, srv, script, *args, timeout=300, env=None):
    """The script's last JSON line; a server in the fake internet's host
    namespace (srv.net) is reached from there."""
    e = dict(os.environ, E2B_API_URL=srv.url, E2B_SANDBOX_URL=srv.url, E2B_API_KEY=srv.token)
    e.pop("E2B_DEBUG", None)
    e.pop("E2B_DOMAIN", None)
    if env:
        e.update(env)
    argv = [node, os.path.join(SDK_DIR, script), *map(str, args)]
    if srv.net:
        argv = srv.net.host_argv(argv)
    p = subprocess.run(argv, cwd=SDK_DIR, env=e, capture_output=True, timeout=timeout)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, f"node {script}: exit {p.returncode}\nstdout: {out[-3000:]}\nstderr: {err[-5000:]}"
    last = [l for l in out.splitlines() if l.startswith("{")]
    return json.loads(last[-1]) if last else None


def test_control_plane(e2b_sdk, e2b_srv, store):
    tag = uuid.uuid4().hex[:8]
    got = run_node(e2b_sdk, e2b_srv, "control.mjs", tag)
    assert got["envdVersion"]
    # killed sandboxes are gone from the store too, not only from the API
    ps = store.ok("ps", "-a", "--json")
    for sid in (got["a"], got["b"], got["legacy"]):
        assert sid not in ps
    e2b_srv.assert_clean()


def test_commands_and_pty(e2b_sdk, e2b_srv):
    got = run_node(e2b_sdk, e2b_srv, "commands.mjs")
    assert got["ok"]
    e2b_srv.assert_clean()


def test_files(e2b_sdk, e2b_srv):
    got = run_node(e2b_sdk, e2b_srv, "files.mjs")
    assert got["ok"]
    e2b_srv.assert_clean()


def test_code_interpreter(e2b_sdk, e2b_srv):
    got = run_node(e2b_sdk, e2b_srv, "interpreter.mjs")
    assert got["ok"]
    e2b_srv.assert_clean()
