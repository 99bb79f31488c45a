"""User namespaces (--userns auto, the default): root inside is a block of
65536 unprivileged host ids taken from the capsa user's subordinate ranges,
image layers are seen through idmapped mounts, and nothing a sandbox does
lands on the host as root."""
import os
import stat
import subprocess
import uuid

import pytest

from conftest import IMAGES, capsa_bin

BLOCK = 65536


def uniq(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def idmap(c, name, which="uid_map"):
    """(inside, outside, count) of a running sandbox's map, read inside it."""
    out = c.ok("exec", name, "cat", f"/proc/self/{which}").split()
    return tuple(int(x) for x in out)


@pytest.fixture
def box(store):
    name = uniq()
    store.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    yield name
    store.run("rm", "-f", name)


def upper_dir(c, name):
    sid = c.json("inspect", name)["id"]
    return os.path.join(c.root, "sandboxes", sid, "upper")


def subid_files(tmp_path, uid_lines, gid_lines=None):
    u, g = tmp_path / "subuid", tmp_path / "subgid"
    u.write_text("".join(l + "\n" for l in uid_lines))
    g.write_text("".join(l + "\n" for l in (gid_lines if gid_lines is not None else uid_lines)))
    return {"CAPSA_SUBUID_FILE": str(u), "CAPSA_SUBGID_FILE": str(g)}


def test_map_inside_is_a_block_of_unprivileged_ids(store, box):
    inside, outside, count = idmap(store, box)
    assert (inside, count) == (0, BLOCK)
    assert outside >= BLOCK and outside % BLOCK == 0
    g = idmap(store, box, "gid_map")
    assert (g[0], g[2]) == (0, BLOCK) and g[1] >= BLOCK
    assert store.ok("exec", box, "id", "-u") == "0\n"
    # the agent too is root inside, an unprivileged id on the host
    sup = store.json("inspect", box)["supervisorPid"]
    with open(f"/proc/{sup}/task/{sup}/children") as f:
        agent = int(f.read().split()[0])
    with open(f"/proc/{agent}/status") as f:
        uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    assert {int(u) for u in uids} == {outside}


def test_image_files_owned_by_root_inside_and_layers_untouched(store):
    if not os.path.exists(os.path.join(IMAGES, "debian-oci.tar")):
        pytest.skip("debian test image not built")
    out = store.ok("run", "--rm", "debian:test", "ls", "-ln", "/etc/shadow", "/usr/bin/passwd")
    for line in out.splitlines():
        f = line.split()
        assert (f[2], f[3]) in (("0", "42"), ("0", "0")), line  # shadow is root:shadow(42) on debian
    assert "-rw-r-----" in out and " 0 " in out
    # on disk the shared layers keep their own ids (no chown per sandbox)
    layers = os.path.join(store.root, "layers")
    owners = set()
    for d in os.listdir(layers):
        p = os.path.join(layers, d, "etc", "shadow")
        if os.path.exists(p):
            owners.add(os.stat(p).st_uid)
    assert owners == {0}


def test_shadow_reads_0_0_inside(store):
    # (busybox has no /etc/shadow: its image files are all root's)
    out = store.ok("run", "--rm", "busybox", "ls", "-ln", "/etc/passwd", "/bin/busybox")
    for line in out.splitlines():
        f = line.split()
        assert (f[2], f[3]) == ("0", "0"), line


def test_files_created_inside_belong_to_the_range_on_the_host(store, box):
    _, base, _ = idmap(store, box)
    store.ok("exec", box, "sh", "-c", "echo x > /made && mkdir /dir && chown 1000:1000 /dir && "
             "cp /bin/busybox /suid && chmod 4755 /suid")
    up = upper_dir(store, box)
    st = os.stat(os.path.join(up, "made"))
    assert (st.st_uid, st.st_gid) == (base, base)
    st = os.stat(os.path.join(up, "dir"))
    assert (st.st_uid, st.st_gid) == (base + 1000, base + 1000)
    # a setuid-root binary made inside is setuid to an unprivileged id
    st = os.stat(os.path.join(up, "suid"))
    assert st.st_mode & stat.S_ISUID and st.st_uid == base
    assert store.ok("exec", box, "stat", "-c", "%u %g", "/made") == "0 0\n"


def test_two_sandboxes_get_disjoint_ranges(store, box):
    other = uniq()
    store.ok("run", "-d", "--name", other, "busybox", "sleep", "1000")
    try:
        a = idmap(store, box)[1]
        b = idmap(store, other)[1]
        assert abs(a - b) >= BLOCK
        # inspect names the block
        ins = store.json("inspect", other)["userns"]
        assert ins["uid"] == b and ins["size"] == BLOCK and ins["gid"] == idmap(store, other, "gid_map")[1]
    finally:
        store.ok("rm", "-f", other)


def test_exhausted_range_errors_and_rm_releases(store, tmp_path):
    env = subid_files(tmp_path, ["capsa:3000000000:65536"])
    a, b = uniq(), uniq()
    store.ok("run", "-d", "--name", a, "busybox", "sleep", "1000", env=env)
    try:
        assert idmap(store, a)[1] == 3000000000
        err = store.fail("run", "-d", "--name", b, "busybox", "true", env=env,
                         match=str(tmp_path / "subuid"))
        assert "capsa:3000000000:65536" in err and "no free block" in err
        # nothing half-created: no row, no dirs
        assert b not in store.ok("ps", "-a")
    finally:
        store.ok("rm", "-f", a)
    # the block came back with the sandbox
    store.ok("run", "-d", "--name", b, "busybox", "sleep", "1000", env=env)
    try:
        assert idmap(store, b)[1] == 3000000000
    finally:
        store.ok("rm", "-f", b)


def test_range_smaller_than_a_block_errors(store, tmp_path):
    env = subid_files(tmp_path, ["capsa:3000000000:1000"])
    store.fail("run", "--rm", "busybox", "true", env=env, match="no free block of 65536 ids")


def test_overlapping_range_errors(store, tmp_path):
    env = subid_files(tmp_path, ["bob:3000000000:65536", "capsa:3000001000:65536"])
    err = store.fail("run", "--rm", "busybox", "true", env=env, match=str(tmp_path / "subuid"))
    assert "overlaps bob:3000000000:65536" in err


def test_range_mapping_host_root_errors(store, tmp_path):
    env = subid_files(tmp_path, ["capsa:0:65536"])
    store.fail("run", "--rm", "busybox", "true", env=env, match="maps host root")


def test_missing_capsa_range_is_added(store, tmp_path):
    env = subid_files(tmp_path, ["bob:100000:65536"])
    out = store.ok("run", "--rm", "busybox", "cat", "/proc/self/uid_map", env=env).split()
    added = (tmp_path / "subuid").read_text().splitlines()
    assert added[0] == "bob:100000:65536"
    name, start, count = added[1].split(":")
    assert name == "capsa" and int(start) >= 165536 and int(count) >= BLOCK
    assert int(out[1]) == int(start)
    assert (tmp_path / "subgid").read_text().splitlines()[1] == added[1]


def test_userns_host_behaves_as_before(store):
    out = store.ok("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map").split()
    assert out == ["0", "0", "4294967295"]
    name = uniq()
    store.ok("run", "-d", "--userns", "host", "--name", name, "busybox", "sleep", "1000")
    try:
        store.ok("exec", name, "touch", "/hostmode")
        assert os.stat(os.path.join(upper_dir(store, name), "hostmode")).st_uid == 0
        info = store.json("inspect", name)
        assert info["config"]["userns"] == "host" and "userns" not in info
    finally:
        store.ok("rm", "-f", name)


def test_bad_userns_value(store):
    store.fail("run", "--rm", "--userns", "private", "busybox", "true", match="'private'")


def test_without_idmapped_mounts_layers_are_shifted_copies(capsa, tmp_path):
    """The fallback (forced with CAPSA_TEST_NO_IDMAP): copies of the layers
    owned by the block, cached per block; the shared layers untouched."""
    capsa.ok("image", "import", os.path.join(IMAGES, "busybox-oci.tar"), "--name", "busybox:latest", timeout=300)
    env = {"CAPSA_TEST_NO_IDMAP": "1"}
    out = capsa.ok("run", "--rm", "busybox", "sh", "-c",
                   "cat /proc/self/uid_map; ls -ln /etc/passwd; echo x > /etc/new && echo wrote", env=env)
    lines = out.splitlines()
    base = int(lines[0].split()[1])
    assert lines[1].split()[2:4] == ["0", "0"] and lines[2] == "wrote"
    shifted = os.path.join(capsa.root, "layers-shifted", f"{base}-{base}")
    copies = os.listdir(shifted)
    assert copies and not [c for c in copies if c.startswith(".")]
    for c in copies:
        st = os.lstat(os.path.join(shifted, c, "bin", "busybox"))
        assert (st.st_uid, st.st_gid) == (base, base)
        assert os.lstat(os.path.join(capsa.root, "layers", c, "bin", "busybox")).st_uid == 0
    made = os.stat(os.path.join(shifted, copies[0]))
    # the next sandbox with the block uses the cache as it is
    capsa.ok("run", "--rm", "busybox", "true", env=env)
    assert os.stat(os.path.join(shifted, copies[0])).st_ino == made.st_ino
    # an explicitly idmapped volume cannot be had there: a clear error, nothing left
    vol = tmp_path / "v"
    vol.mkdir()
    err = capsa.fail("run", "--rm", "-v", f"{vol}:/v:idmap", "busybox", "true", env=env, match=str(vol))
    assert "idmap" in err
    assert capsa.ok("ps", "-a", "-q") == ""
    capsa.assert_clean()


def test_root_inside_cannot_write_host_owned_files_through_a_volume(store, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    os.chmod(vol, 0o755)
    secret = vol / "owned-by-host-root"
    secret.write_text("host\n")
    os.chmod(secret, 0o644)
    p = store.run("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                  "ls -ln /data; echo pwned > /data/owned-by-host-root; touch /data/new; "
                  "chmod 666 /data/owned-by-host-root; chown 0 /data/owned-by-host-root; echo done")
    assert "done" in p.out
    # host root's files show as the overflow id and stay host root's
    assert " 65534 " in p.out
    assert secret.read_text() == "host\n"
    st = os.stat(secret)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    assert not (vol / "new").exists()
    assert p.err.count("Permission denied") + p.err.count("Operation not permitted") >= 3


def test_pty_exec_user_and_low_port(store, box):
    assert store.ok("exec", "-t", box, "tty").strip().startswith("/dev/pts/")
    assert store.ok("exec", "-u", "nobody", box, "id", "-u") == "65534\n"
    # root inside binds a low port though the network namespace is the host's user namespace's
    # (httpd binds, then goes to the background with its stdio on /dev/null)
    store.ok("exec", box, "sh", "-c", "httpd -p 80 -h / && netstat -ltn | grep -q ':80 '")


def test_idmapped_volumes(store, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "f").write_text("host\n")
    os.chmod(tmp_path, 0o700)
    # read-only: host root's files read as root's, even below a 0700 directory
    out = store.ok("run", "--rm", "-v", f"{tmp_path}:/t:ro", "busybox", "sh", "-c",
                   "ls -ln /t/vol/f; cat /t/vol/f; touch /t/vol/g 2>/dev/null || echo ro")
    assert out.splitlines()[0].split()[2:4] == ["0", "0"] and "host" in out and "ro" in out
    # :idmap asks for writes as the host's owners
    out = store.ok("run", "--rm", "-v", f"{vol}:/v:rw,idmap", "busybox", "sh", "-c",
                   "echo more >> /v/f && touch /v/new && ls -ln /v/new")
    assert out.split()[2:4] == ["0", "0"]
    assert os.stat(vol / "new").st_uid == 0 and (vol / "f").read_text() == "host\nmore\n"
    store.fail("run", "--rm", "--userns", "host", "-v", f"{vol}:/v:idmap", "busybox", "true", match="idmap")
    store.fail("run", "--rm", "-v", f"{vol}:/v:bogus", "busybox", "true", match="bogus")


def test_native_api_userns_field(store):
    from serve_env import Serve
    srv = Serve(store)
    try:
        ids = []
        for mode, want in (("host", "0"), ("auto", None), (None, None)):
            body = {"image": "busybox", "name": uniq("api")}
            if mode:
                body["userns"] = mode
            sid = srv.ok("POST", "/v1/sandboxes", body, status=201)["id"]
            ids.append(sid)
            outside = idmap(store, sid)[1]
            assert outside == 0 if want == "0" else outside >= BLOCK
        r = srv.request("POST", "/v1/sandboxes", {"image": "busybox", "userns": "private"})
        assert r.status == 400 and b"userns" in r.body
    finally:
        for sid in ids:
            srv.request("DELETE", f"/v1/sandboxes/{sid}?force=true")
        srv.stop()


def test_disk_image_root_belongs_to_root_inside(store):
    """With --disk the upper dir is made in the ext4 image once the
    supervisor has mounted it; it is the sandbox's /, so root inside owns
    it and can write there (and --userns host keeps host root)."""
    out = store.ok("run", "--rm", "--disk", "32m", "busybox", "sh", "-c",
                   "stat -c '%u %g' / && touch /x && mkdir /d && echo wrote && awk '{print $2}' /proc/self/uid_map")
    owner, wrote, base = out.split("\n")[:3]
    assert owner == "0 0" and wrote == "wrote" and int(base) > 0, out
    out = store.ok("run", "--rm", "--userns", "host", "--disk", "32m", "busybox", "sh", "-c",
                   "stat -c '%u %g' / && touch /x && awk '{print $2}' /proc/self/uid_map")
    assert out.split("\n")[:2] == ["0 0", "0"], out
