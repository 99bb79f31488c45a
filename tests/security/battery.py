"""Helpers of the escape battery: the end-to-end harness (loaded from
tests/e2e/conftest.py, not copied), the probe, and a snapshot of the host
state every attempt must leave unchanged."""
import hashlib
import importlib.util
import os
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
# the e2e conftest imports its sibling modules (metrics_reg, ...)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
_spec = importlib.util.spec_from_file_location("capsa_e2e_conftest",
                                               os.path.join(HERE, "..", "e2e", "conftest.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

BUILD = e2e.BUILD
PROBE_DIR = os.path.join(BUILD, "tests")
capsa_bin = e2e.capsa_bin
# CAPSA_BATTERY_OPTS: extra `capsa run` options for the attacker sandboxes,
# to run the whole battery under another configuration (e.g. "--userns
# auto" or "--userns host"); the assertions hold in every one.
EXTRA = os.environ.get("CAPSA_BATTERY_OPTS", "").split()
# CAPSA_BATTERY_ROOTLESS=1: the attacker sandboxes are a non-root user's
# (rootless.py); where an outcome legitimately differs, the test says so
ROOTLESS = os.environ.get("CAPSA_BATTERY_ROOTLESS") == "1"


def capsa_argv(c, *args):
    """The command line that runs capsa with args against c's store, for
    tests that start capsa themselves (Popen, a terminal)."""
    if hasattr(c, "argv"):
        return c.argv(*args)
    return [capsa_bin(), *map(str, args)]


def uniq(prefix="sec"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def probe_args(*args):
    return ["/probe/capsa-probe", *map(str, args)]


def verdict(out):
    """The last line of a probe's output: "ok" or "denied <ERRNO>"."""
    lines = out.strip().splitlines()
    assert lines, "the probe printed nothing"
    return lines[-1]


def assert_denied(out, what=""):
    v = verdict(out)
    assert v.startswith("denied"), f"{what}: the attempt worked: {out!r}"
    return v


# --- the host's state ------------------------------------------------------------

SYSCTLS = [
    "kernel/core_pattern", "kernel/core_uses_pid", "kernel/hostname", "kernel/domainname", "kernel/modprobe",
    "kernel/panic", "kernel/panic_on_oops", "kernel/sysrq", "kernel/pid_max", "kernel/kexec_load_disabled",
    "kernel/modules_disabled", "kernel/randomize_va_space", "kernel/dmesg_restrict", "kernel/kptr_restrict",
    "kernel/perf_event_paranoid", "kernel/unprivileged_bpf_disabled", "kernel/pty/max", "kernel/keys/maxkeys",
    "vm/overcommit_memory", "vm/panic_on_oom", "fs/file-max", "fs/suid_dumpable", "fs/protected_symlinks",
    "net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/core/bpf_jit_enable", "dev/tty/legacy_tiocsti",
]

HOST_FILES = ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]

# mounts below these belong to tests and helpers running beside us; an
# attack from a sandbox would show up elsewhere (or as a new mount type)
_SCRATCH = ("/tmp/", "/work/", "/run/", "/var/lib/", "/var/tmp/", "/home/", "/root/", "/proc/sys/fs/binfmt_misc")


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return f"<{e.strerror}>".encode()


def _host_mounts():
    out = set()
    with open("/proc/1/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4]
            fstype = fields[fields.index("-") + 1]
            if not mp.startswith(_SCRATCH):
                out.add((mp, fstype, fields[5].split(",")[0]))
    return out


def _cgroup_release_agents():
    out = {}
    base = "/sys/fs/cgroup"
    for d in [base] + [os.path.join(base, x) for x in os.listdir(base)]:
        for f in ("release_agent", "notify_on_release"):
            p = os.path.join(d, f)
            if os.path.exists(p):
                out[p] = _read(p)
    return out


def host_state():
    """What a successful escape would change: kernel settings, modules,
    the mount table of the host's mount namespace, the host's identity
    files, cgroup release agents, kexec state, the host's hostname."""
    return {
        "sysctl": {s: _read("/proc/sys/" + s) for s in SYSCTLS},
        "modules": sorted(line.split()[0] for line in _read("/proc/modules").decode().splitlines()),
        "mounts": _host_mounts(),
        "files": {p: hashlib.sha256(_read(p)).hexdigest() for p in HOST_FILES},
        "release_agent": _cgroup_release_agents(),
        "kexec": _read("/sys/kernel/kexec_loaded"),
        "uname": os.uname().nodename,
        "root_entries": sorted(os.listdir("/")),
    }


def assert_same_host(before, after):
    for k in before:
        if k == "mounts":
            # only new mounts count: helpers beside us may unmount theirs
            new = after[k] - before[k]
            assert not new, f"new host mounts: {sorted(new)}"
        else:
            assert before[k] == after[k], f"host {k} changed: {before[k]!r} -> {after[k]!r}"


def sh(c, sandbox, script, timeout=120):
    """Runs a shell script in a sandbox as root; returns its output."""
    return c.run("exec", sandbox, "sh", "-c", script, timeout=timeout).out


def host_can_fork():
    return subprocess.run(["true"], timeout=30).returncode == 0
