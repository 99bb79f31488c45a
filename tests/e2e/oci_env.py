"""Helpers for the OCI runtime tests: bundles made from the busybox test
image, the runtime's command line bound to a private --root, and the
leftover checks (state directories, cgroups, mounts, processes)."""
import atexit
import json
import os
import shutil
import subprocess
import tarfile
import time

from conftest import BUILD, image_path

# each run its own default cgroup parent: two runs on one host (or a
# leftover of an earlier one) never share a container's cgroup by its id
CGROUP_PARENT = f"capsa-oci-e2e-{os.getpid()}"
os.environ["CAPSA_OCI_CGROUP_PARENT"] = CGROUP_PARENT


@atexit.register
def _remove_cgroup_parent():
    """The parent is empty once every container is deleted (the tests
    check that); remove it from every hierarchy, also after a benchmark."""
    base = "/sys/fs/cgroup"
    for h in [base] + [os.path.join(base, d) for d in os.listdir(base)]:
        try:
            os.rmdir(os.path.join(h, CGROUP_PARENT))
        except OSError:
            pass


def runc_bin():
    return os.path.join(BUILD, "capsa-runc")


def unpack_image(archive, dest):
    """Unpacks an OCI archive's (single-platform) layers into dest."""
    tmp = dest + ".img"
    os.makedirs(tmp, exist_ok=True)
    with tarfile.open(archive) as t:
        t.extractall(tmp)
    with open(os.path.join(tmp, "index.json")) as f:
        idx = json.load(f)

    def blob(d):
        return os.path.join(tmp, "blobs", *d.split(":"))

    with open(blob(idx["manifests"][0]["digest"])) as f:
        man = json.load(f)
    os.makedirs(dest, exist_ok=True)
    for layer in man["layers"]:
        with tarfile.open(blob(layer["digest"])) as t:
            t.extractall(dest, numeric_owner=True)
    shutil.rmtree(tmp)


_ROOTFS_CACHE = {}


def busybox_rootfs(cache_dir):
    if "busybox" not in _ROOTFS_CACHE:
        d = os.path.join(cache_dir, "busybox-rootfs")
        if not os.path.isdir(d):
            unpack_image(image_path("busybox-oci.tar"), d)
        _ROOTFS_CACHE["busybox"] = d
    return _ROOTFS_CACHE["busybox"]


def container_cgroups(cid):
    """The cgroup directories of a container made with the default path."""
    found = []
    base = "/sys/fs/cgroup"
    for h in [base] + [os.path.join(base, d) for d in os.listdir(base)]:
        p = os.path.join(h, CGROUP_PARENT, cid)
        if os.path.isdir(p):
            found.append(p)
    return found


class Runtime:
    """capsa-runc with its own --root under a temporary directory."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = os.path.join(tmp, "state")
        self.n = 0

    def cmd(self, *args):
        return [runc_bin(), "--root", self.root, *map(str, args)]

    def run(self, *args, check=None, input=None, timeout=60, stdout=None, stderr=None, cwd=None):
        kw = {}
        if stdout is None and stderr is None:
            kw["capture_output"] = True
        else:
            kw["stdout"], kw["stderr"] = stdout, stderr
        p = subprocess.run(self.cmd(*args), input=input, timeout=timeout, cwd=cwd, **kw)
        p.out = (p.stdout or b"").decode(errors="replace")
        p.err = (p.stderr or b"").decode(errors="replace")
        if check is not None:
            assert p.returncode == check, (f"capsa-runc {' '.join(map(str, args))}: exit {p.returncode}, "
                                           f"expected {check}\nstdout: {p.out}\nstderr: {p.err}")
        return p

    def ok(self, *args, **kw):
        return self.run(*args, check=0, **kw).out

    def fail(self, *args, match=None, **kw):
        p = self.run(*args, **kw)
        assert p.returncode != 0, f"capsa-runc {args} succeeded: {p.out}"
        if match is not None:
            assert match in p.err, f"stderr {p.err!r} does not mention {match!r}"
        return p.err

    def state(self, cid):
        return json.loads(self.ok("state", cid))

    def create(self, cid, bundle, *extra):
        """create with the container's stdio in files (the init keeps them,
        so a pipe would never see EOF)."""
        out = open(os.path.join(self.tmp, f"{cid}.out"), "wb")
        err = open(os.path.join(self.tmp, f"{cid}.err"), "w+b")
        try:
            p = subprocess.run(self.cmd("create", "--bundle", bundle, *extra, cid), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=err, timeout=60)
            err.seek(0)
            msg = err.read().decode(errors="replace")
        finally:
            out.close()
            err.close()
        assert p.returncode == 0, f"create {cid}: {msg}"

    def output(self, cid):
        with open(os.path.join(self.tmp, f"{cid}.out"), "rb") as f:
            return f.read().decode(errors="replace")

    def wait_status(self, cid, want, timeout=10):
        deadline = time.time() + timeout
        while True:
            st = self.state(cid)["status"]
            if st == want or time.time() > deadline:
                return st
            time.sleep(0.02)

    def ids(self):
        """Containers under the root (the seccomp cache is not one)."""
        if not os.path.isdir(self.root):
            return []
        return [d for d in os.listdir(self.root) if d != "@seccomp-cache"]

    def cleanup(self):
        for cid in self.ids():
            self.run("delete", "--force", cid)

    def leftovers(self, cids=()):
        found = [f"state dir {c}" for c in self.ids()]
        for cid in cids:
            found += [f"cgroup {p}" for p in container_cgroups(cid)]
        with open("/proc/self/mountinfo") as f:
            for line in f:
                if self.tmp in line.split()[4]:
                    found.append("mount " + line.split()[4])
        return found

    def assert_clean(self, cids=(), timeout=5.0):
        deadline = time.time() + timeout
        while True:
            left = self.leftovers(cids)
            if not left or time.time() > deadline:
                break
            time.sleep(0.05)
        assert not left, "left behind: " + "; ".join(left)


def make_bundle(tmp, name, rootfs_src, args, mutate=None, copy=True):
    """A bundle directory with a copy of rootfs_src and `capsa-runc spec`'s
    config, terminal off, running args; mutate(config) may change it."""
    b = os.path.join(tmp, name)
    os.makedirs(b)
    if copy:
        subprocess.run(["cp", "-a", rootfs_src, os.path.join(b, "rootfs")], check=True)
    subprocess.run([runc_bin(), "spec", "--bundle", b], check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    cfg["root"]["readonly"] = False
    if mutate:
        mutate(cfg)
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b
