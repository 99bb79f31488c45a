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
import pwd
import shutil
import subprocess
import tempfile
import time

USER = "capsa-rl-battery"
COUNT = 65536
BINARIES = ("capsa", "capsa-core", "capsa-full", "capsa-supervisor", "capsa-agent")
SUBID_FILES = ("/etc/subuid", "/etc/subgid")


def _ranges(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def _remove_lines(path, owner):
    with open(path) as f:
        keep = [line for line in f if not line.startswith(owner + ":")]
    with open(path, "w") as f:
        f.writelines(keep)


def make_user():
    """(uid, gid, subordinate start, created) of the battery's user."""
    created = False
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
        created = True
    for p in SUBID_FILES:
        if not os.path.exists(p):
            open(p, "a").close()
        _remove_lines(p, USER)
    # above every range either file holds, so that it overlaps none
    end = max([100000] + [s + c for p in SUBID_FILES for (_, s, c) in _ranges(p)])
    start = (end + COUNT - 1) // COUNT * COUNT
    for p in SUBID_FILES:
        with open(p, "a") as f:
            f.write(f"{USER}:{start}:{COUNT}\n")
    return pw.pw_uid, pw.pw_gid, start, created


def remove_user(uid, created):
    subprocess.run(["pkill", "-KILL", "-u", str(uid)], capture_output=True)
    for p in SUBID_FILES:
        _remove_lines(p, USER)
    if created:
        subprocess.run(["userdel", USER], capture_output=True)


class RootlessCapsa:
    """The e2e harness's Capsa (run, ok, fail, json, env, assert_clean),
    for capsa run by the battery's non-root user."""

    def __init__(self, build, uid, gid, start, base):
        self.uid, self.gid, self.start = uid, gid, start
        self.base = base
        self.home = os.path.join(base, "home")
        self.xdg_run = os.path.join(base, "xdg-run")
        self.bin = os.path.join(base, "bin")
        for d in (self.home, self.xdg_run):
            os.mkdir(d, 0o700)
            os.chown(d, uid, gid)
        # the user's own install (as in ~/.local/bin): writable by the
        # user, so that only the runtime stops a sandbox overwriting it
        os.mkdir(self.bin, 0o755)
        os.chown(self.bin, uid, gid)
        for b in BINARIES:
            shutil.copy2(os.path.join(build, b), self.bin)
            os.chown(os.path.join(self.bin, b), uid, gid)
        self.root = os.path.join(self.home, ".local", "share", "capsa")
        self.run_root = os.path.join(self.xdg_run, "capsa")
        self.env = {"HOME": self.home, "XDG_RUNTIME_DIR": self.xdg_run, "PATH": "/usr/bin:/bin",
                    "LANG": "C.UTF-8"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]

    def argv(self, *args):
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                os.path.join(self.bin, "capsa"), *map(str, args)]

    def file(self, src):
        """A copy of src the user can read."""
        dst = os.path.join(self.home, os.path.basename(src))
        shutil.copy(src, dst)
        os.chown(dst, self.uid, self.gid)
        return dst

    def run(self, *args, input=None, timeout=120, env=None, check=None):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(self.argv(*args), input=input, capture_output=True, timeout=timeout, env=e, cwd="/")
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check is not None:
            assert p.returncode == check, (
                f"rootless capsa {' '.join(map(str, args))}: exit {p.returncode}, expected {check}\n"
                f"stdout: {p.out}\nstderr: {p.err}")
        return p

    def ok(self, *args, **kw):
        return self.run(*args, check=0, **kw).out

    def fail(self, *args, rc=125, match=None, **kw):
        p = self.run(*args, check=rc, **kw)
        if match is not None:
            assert match in p.err, f"stderr {p.err!r} does not mention {match!r}"
        return p.err

    def owned(self, uid):
        """Is a host uid the user's own or one of its subordinate ids?"""
        return uid == self.uid or self.start <= uid < self.start + COUNT

    def processes(self):
        """Host pids of the user's processes and of its subordinate ids'."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                st = os.stat(f"/proc/{pid}")
            except OSError:
                continue
            if self.owned(st.st_uid):
                out.append(int(pid))
        return out

    def tasks(self):
        """How many tasks (threads included, as RLIMIT_NPROC counts them)
        run as the user itself."""
        n = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat(f"/proc/{pid}").st_uid == self.uid:
                    n += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                continue
        return n

    def leftovers(self):
        found = [f"process {p}" for p in self.processes()]
        sb = os.path.join(self.root, "sandboxes")
        if os.path.isdir(sb):
            found += ["sandbox dir " + d for d in os.listdir(sb)]
        if os.path.isdir(self.run_root):
            for d in os.listdir(self.run_root):
                if d == "names":
                    found += ["runtime name " + n for n in os.listdir(os.path.join(self.run_root, d))]
                elif d not in ("metrics", "capsa.sock", "capsa.token"):
                    found.append("runtime dir " + d)
        with open("/proc/self/mountinfo") as f:
            found += ["host mount " + line.split()[4] for line in f if self.base in line.split()[4]]
        return found

    def assert_clean(self, timeout=5.0, **_):
        deadline = time.time() + timeout
        left = self.leftovers()
        while left and time.time() < deadline:
            time.sleep(0.05)
            left = self.leftovers()
        assert not left, "left behind: " + "; ".join(left)


def session_store(build, image_path, images_dir):
    """A generator for the session fixture: the rootless user's store with
    the battery's images imported."""
    uid, gid, start, created = make_user()
    base = tempfile.mkdtemp(prefix="capsa-rl-battery-")
    os.chmod(base, 0o755)
    try:
        c = RootlessCapsa(build, uid, gid, start, base)
        c.ok("image", "import", c.file(image_path("busybox-oci.tar")), "--name", "busybox:latest", timeout=300)
        deb = os.path.join(images_dir, "debian-oci.tar")
        if os.path.exists(deb):
            c.ok("image", "import", c.file(deb), "--name", "debian:test", timeout=600)
        yield c
        c.run("rm", "-f", "--all")
    finally:
        remove_user(uid, created)
        # the store's files belong to the user's subordinate ids: host root removes them
        shutil.rmtree(base, ignore_errors=True)



def user_dir(c):
    """A generator for a fixture: a scratch directory of the user's."""
    d = tempfile.mkdtemp(prefix="cp-", dir=c.home)
    os.chown(d, c.uid, c.gid)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)
