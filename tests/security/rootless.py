"""The escape battery against rootless mode (CAPSA_BATTERY_ROOTLESS=1):
a store driven by a real non-root user, the way tests/e2e/test_rootless.py
does it (docs/rootless.md).

The user is a system user of the battery's own (not test_rootless.py's,
which may run beside us), with a subordinate range of its own in
/etc/subuid and /etc/subgid; both are removed at the end.  capsa runs as
that user through setpriv, from a copy of the binaries it can read, with
its own HOME and XDG_RUNTIME_DIR and no CAPSA_* variable, so the store is
the default $XDG_DATA_HOME one.  pytest itself stays host root: it is the
host whose state every attempt must leave unchanged.  capsa starts in
pytest's cgroup, which is root's, so no cgroup is delegated to the user:
the sandboxes have none, and the limits that need one are refused."""
import os
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from rootless_env import RootlessCapsa, make_user, remove_user  # noqa: E402

USER = "capsa-rl-battery"


def session_store(build, image_path, images_dir):
    """A generator for the session fixture: the rootless user's store with
    the battery's images imported."""
    uid, gid, start, created = make_user(USER)
    base = tempfile.mkdtemp(prefix="capsa-rl-battery-")
    os.chmod(base, 0o755)
    try:
        # the user's own install (as in ~/.local/bin): writable by the
        # user, so that only the runtime stops a sandbox overwriting it
        c = RootlessCapsa(build, uid, gid, start, base, own_bin=True)
        c.ok("image", "import", c.file(image_path("busybox-oci.tar")), "--name", "busybox:latest", timeout=300)
        deb = os.path.join(images_dir, "debian-oci.tar")
        if os.path.exists(deb):
            c.ok("image", "import", c.file(deb), "--name", "debian:test", timeout=600)
        yield c
        c.run("rm", "-f", "--all")
    finally:
        remove_user(USER, uid, created)
        # the store's files belong to the user's subordinate ids: host root removes them
        shutil.rmtree(base, ignore_errors=True)



def user_dir(c):
    """A generator for a fixture: a scratch directory of the user's."""
    d = tempfile.mkdtemp(prefix="cp-", dir=c.home)
    os.chown(d, c.uid, c.gid)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)
