"""The command line as a new user and a script meet it (issue 12): option
names, env files, hostnames, terminals on a pipe, and the messages of
pause and unpause.  Each bad input is refused with exit 125 and a message
that names it."""
import os
import subprocess
import uuid

import pytest

from conftest import capsa_bin


def uniq(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- option names -------------------------------------------------------------------

# A prefix of a real long option of each command, which libc's getopt_long
# took for that option (--pid for --pids-limit), and options no command has.
@pytest.mark.parametrize("args,flag", [
    (["run", "--pid", "host", "busybox", "true"], "--pid"),
    (["run", "--hostnam", "x", "busybox", "true"], "--hostnam"),
    (["run", "--rm", "--interact", "busybox", "true"], "--interact"),
    (["exec", "--workd", "/", "nosuch", "true"], "--workd"),
    (["exec", "--nosuch", "x", "true"], "--nosuch"),
    (["attach", "--no-std", "x"], "--no-std"),
    (["ps", "--al"], "--al"),
    (["rm", "--forc", "x"], "--forc"),
    (["stop", "--tim", "1", "x"], "--tim"),
    (["kill", "--sig", "TERM", "x"], "--sig"),
    (["logs", "--follo", "x"], "--follo"),
    (["stats", "--no-str"], "--no-str"),
    (["events", "--sinc", "1m"], "--sinc"),
    (["update", "--memor", "64m", "x"], "--memor"),
    (["port", "--pub", "80", "x"], "--pub"),
    (["proc", "ls", "--js", "x"], "--js"),
    (["proc", "kill", "--gr", "x", "1"], "--gr"),
    (["image", "ls", "--qui"], "--qui"),
    (["image", "rm", "--forc", "x"], "--forc"),
    (["image", "import", "--nam", "x", "/nonexistent"], "--nam"),
    (["template", "ls", "--qui"], "--qui"),
    (["cp", "--hel"], "--hel"),
    (["files", "ls", "--dep", "1", "x", "/"], "--dep"),
    (["pull", "--qui", "x"], "--qui"),
    (["serve", "--lis", "x"], "--lis"),
    # commands that have no option but --help
    (["inspect", "--x", "y"], "--x"),
    (["wait", "--x", "y"], "--x"),
    (["pause", "--x", "y"], "--x"),
    (["unpause", "--x", "y"], "--x"),
    (["touch", "--x", "y"], "--x"),
    (["image", "inspect", "--x", "y"], "--x"),
    (["image", "tag", "--x", "y", "z"], "--x"),
    (["template", "rm", "--x", "y"], "--x"),
    (["logout", "--x", "y"], "--x"),
    (["version", "--x"], "--x"),
    # the global options
    (["--ro", "/tmp/x", "ps"], "--ro"),
    (["--run", "/tmp/x", "ps"], "--run"),
])
def test_unknown_option_is_named(store, args, flag):
    err = store.fail(*args, rc=125, match=f"unknown option '{flag}'")
    assert err.count("\n") <= 2, err


def test_option_values_checked(store):
    store.fail("run", "--rm", "--read-only=yes", "busybox", "true", match="option '--read-only' takes no value")
    store.fail("run", "--name", match="option '--name' needs a value")
    store.fail("run", "--rm", "--sig-proxy=maybe", "busybox", "true", match="invalid --sig-proxy 'maybe'")
    # the whole names, -- and operands that look like options still work
    assert store.ok("run", "--rm", "--hostname", "web-1", "--read-only", "--pids-limit", "64", "busybox",
                    "--", "hostname") == "web-1\n"
    assert store.ok("run", "--rm", "busybox", "echo", "--pid", "-x") == "--pid -x\n"
    assert store.ok("version", "--help").startswith("Usage: capsa version")


def test_oci_runtime_options_are_whole_names(tmp_path):
    runc = os.path.join(os.path.dirname(capsa_bin()), "capsa-runc")
    root = str(tmp_path / "oci")
    p = subprocess.run([runc, "--roo", root, "list"], capture_output=True, text=True)
    assert p.returncode == 1 and "unknown option '--roo'" in p.stderr, p.stderr
    p = subprocess.run([runc, "-root", root, "list", "-format", "json"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr


# --- env files ----------------------------------------------------------------------

@pytest.mark.parametrize("content,line,needle", [
    (b"A=1\nBAD LINE\nC=3\n", 2, "'BAD LINE' contains white space"),
    (b"A=1\nexport C=3\n", 2, "'export C' contains white space"),
    (b"A=1\nB=2\0C=3\nD=4\n", 2, "NUL byte"),
    (b"=1\n", 1, "no variable name"),
    (b"A=\xff\n", 1, "not valid UTF-8"),
])
@pytest.mark.parametrize("cmd", ["run", "exec"])
def test_env_file_bad_lines_are_refused(store, tmp_path, content, line, needle, cmd):
    f = tmp_path / "env"
    f.write_bytes(content)
    args = ["run", "--rm", "--env-file", f, "busybox", "env"] if cmd == "run" else \
        ["exec", "--env-file", f, "nosuch", "env"]
    err = store.fail(*args, rc=125, match=f"env file {f} line {line}: ")
    assert needle in err, err
    store.assert_clean()


def test_env_file_docker_rules(store, tmp_path):
    f = tmp_path / "env"
    f.write_bytes(b"# a comment\n\n  A=1\r\nB= two  words \nFROM_HOST\nNOT_ON_HOST\nC=x=y\n#D=4\n")
    out = store.ok("run", "--rm", "--env-file", f, "busybox", "env", env={"FROM_HOST": "host value"})
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["A"] == "1" and env["B"] == " two  words " and env["FROM_HOST"] == "host value"
    assert env["C"] == "x=y" and "NOT_ON_HOST" not in env and "D" not in env and "#D" not in env


# --- hostnames ----------------------------------------------------------------------

@pytest.mark.parametrize("name,needle", [
    ("a\nb", "byte 0x0a"),
    ("a_b", "'_'"),
    ("-web", "starts or ends with '-'"),
    ("web.", "empty label"),
    ("a..b", "empty label"),
    ("", "empty"),
    ("x" * 64, "a label of 64 characters"),
    ("a." * 32 + "b", "at most 64"),
])
def test_hostname_is_rfc1123(store, name, needle):
    err = store.fail("run", "--rm", "--hostname", name, "busybox", "hostname", rc=125, match="invalid hostname")
    assert needle in err, err
    assert err.count("\n") <= 1, err  # the name's own newline is not printed
    store.assert_clean()


def test_hostname_accepted(store):
    name = "a" * 62 + ".b"
    assert store.ok("run", "--rm", "--hostname", name, "busybox", "hostname") == name + "\n"
    assert store.ok("run", "--rm", "--hostname", "Web-1.example", "busybox", "hostname") == "Web-1.example\n"


# --- a terminal on a pipe -----------------------------------------------------------

def test_tty_with_input_needs_a_terminal(store):
    """`echo cmd | capsa exec -it SB sh` hung; `run -it </dev/null` wrote the
    shell's cursor query: -it without a terminal is refused, as in docker."""
    name = uniq()
    # -d does not attach: it needs no terminal
    store.ok("run", "-dit", "--name", name, "busybox", "sh", input=b"")
    try:
        for args in (["run", "--rm", "-it", "busybox", "sh"], ["exec", "-it", name, "sh"],
                     ["exec", "-i", "-t", name, "sh"], ["attach", name]):
            p = store.run(*args, input=b"echo hi\n", timeout=60)
            assert p.returncode == 125, (args, p.returncode, p.err)
            assert "the input device is not a TTY" in p.err, p.err
            assert p.stdout == b"", p.stdout
        # -t alone (no input) and -d stay allowed
        assert store.ok("exec", "-t", name, "echo", "tty") == "tty\r\n"
        tag = uniq("tag")
        store.ok("exec", "-dit", "--tag", tag, name, "sh", input=b"")
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()


# --- pause and unpause --------------------------------------------------------------

def test_pause_twice_and_unpause_running_say_so(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "100000")
    try:
        store.fail("unpause", name, match=f"sandbox {name} is not paused")
        store.ok("pause", name)
        err = store.fail("pause", name, match=f"sandbox {name} is already paused")
        assert "not running" not in err, err
        assert err.count(f"sandbox {name}") == 1, err  # said once, not wrapped again
        store.ok("unpause", name)
        store.fail("unpause", name, match=f"sandbox {name} is not paused")
    finally:
        store.ok("rm", "-f", name)
    store.assert_clean()
