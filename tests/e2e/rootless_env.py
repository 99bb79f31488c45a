"""A real non-root user for rootless-mode tests (docs/rootless.md), shared
by tests/e2e/test_rootless.py, the escape battery's rootless run
(tests/security/rootless.py) and bench/lifecycle.

make_user() makes a system user with a subordinate range of its own in
/etc/subuid and /etc/subgid, above every range there (remove_user() takes
both away); RootlessCapsa drives the real capsa as that user through
setpriv, with its own HOME and XDG_RUNTIME_DIR and no CAPSA_* variable, so
that the defaults are what runs.  The caller stays host root."""
import os
import pwd
import shutil
import subprocess
import time

from cli_runner import CliRunner

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


def make_user(name):
    """(uid, gid, subordinate start, created) of system user name, with a
    range of COUNT ids of its own in /etc/subuid and /etc/subgid."""
    created = False
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        pw = pwd.getpwnam(name)
        created = True
    for p in SUBID_FILES:
        if not os.path.exists(p):
            open(p, "a").close()
        _remove_lines(p, name)
    # above every range either file holds, so that it overlaps none
    end = max([100000] + [s + c for p in SUBID_FILES for (_, s, c) in _ranges(p)])
    start = (end + COUNT - 1) // COUNT * COUNT
    for p in SUBID_FILES:
        with open(p, "a") as f:
            f.write(f"{name}:{start}:{COUNT}\n")
    return pw.pw_uid, pw.pw_gid, start, created


def remove_user(name, uid, created):
    subprocess.run(["pkill", "-KILL", "-u", str(uid)], capture_output=True)
    for p in SUBID_FILES:
        _remove_lines(p, name)
    if created:
        subprocess.run(["userdel", name], capture_output=True)


class RootlessCapsa(CliRunner):
    """The e2e harness's Capsa (run, ok, fail, env, assert_clean), for
    capsa run by a non-root user from a copy of the binaries, with its own
    HOME and XDG_RUNTIME_DIR under base.  own_bin: the copy is the user's
    (as in ~/.local/bin), else root's."""

    def __init__(self, build, uid, gid, start, base, own_bin=False):
        self.uid, self.gid, self.start = uid, gid, start
        self.base = base
        self.home = os.path.join(base, "home")
        self.xdg_run = os.path.join(base, "xdg-run")
        self.bin = os.path.join(base, "bin")
        for d in (self.home, self.xdg_run):
            os.mkdir(d, 0o700)
            os.chown(d, uid, gid)
        os.mkdir(self.bin, 0o755)
        for b in BINARIES:
            shutil.copy2(os.path.join(build, b), self.bin)
            if own_bin:
                os.chown(os.path.join(self.bin, b), uid, gid)
        if own_bin:
            os.chown(self.bin, uid, gid)
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
