"""capsa serve's networking (docs/api.md), on the fake internet of netenv.py
with the server in its host namespace: the native API's network options at
create, PUT of a sandbox's egress rules, networks, bad input, the host's
network refused; E2B's allowInternetAccess and network rules by hand (a
server whose sandboxes have no network) and through the unmodified SDK."""
import uuid

import pytest

from netenv import fake_internet  # noqa: F401 (one fake internet for the module)
from serve_env import Serve
from test_e2b_sdk import e2b_sdk, run_node  # noqa: F401 (the fixture)
from test_network import EMPTY, host_state, http


def uniq(prefix="sn"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def net(fake_internet, store):
    """The shared store's capsa, run in the fake internet's host namespace;
    nothing of a sandbox's network may stay behind."""
    c = fake_internet.capsa(store.root, store.run_root)
    yield c
    c.assert_clean()
    assert host_state(fake_internet) == EMPTY, host_state(fake_internet)


@pytest.fixture
def srv(net):
    s = Serve(net)
    yield s
    s.stop()


def debian_or_skip(net):
    if "debian" not in net.ok("image", "ls"):
        pytest.skip("the Debian test image (tests/images/build.sh) is needed for the E2B templates")


def fetch(net, sandbox, target):
    """The body sandbox (busybox) gets from target's /whoami ('' when it
    cannot reach it)."""
    return net.ok("exec", sandbox, "sh", "-c", http(target), timeout=60).rsplit("rc=", 1)[0].strip()


def fetch_bash(net, sandbox, target):
    """The same from a Debian sandbox (E2B's templates), through bash."""
    line = (f"timeout 5 bash -c \"exec 3<>/dev/tcp/{target}/80 && printf 'GET /whoami HTTP/1.0\\r\\n\\r\\n' >&3"
            f" && cat <&3\" 2>/dev/null | tail -n 1; true")
    return net.ok("exec", sandbox, "bash", "-c", line, timeout=60).strip()


def create(srv, status=201, **kw):
    body = {"image": "busybox"}
    body.update(kw)
    return srv.ok("POST", "/v1/sandboxes", body, status=status)


# --- the native API ----------------------------------------------------------------

def test_create_with_rules_then_replace_them(fake_internet, net, srv):
    fi = fake_internet
    name = uniq()
    s = create(srv, name=name, network={"mode": "bridge", "allowOut": [fi.WWW_NAME]})
    try:
        assert s["network"]["mode"] == "bridge" and s["network"]["network"] == "bridge"
        assert s["network"]["allowOut"] == [fi.WWW_NAME] and s["network"]["denyOut"] == []
        assert fetch(net, name, fi.WWW_NAME) == fi.HOST_ADDR
        assert fetch(net, name, fi.OTHER) == ""

        # PUT replaces the rules; an omitted list is emptied
        got = srv.ok("PUT", f"/v1/sandboxes/{name}/network", {"denyOut": [fi.WWW]})
        assert got["network"]["allowOut"] == [] and got["network"]["denyOut"] == [fi.WWW]
        assert fetch(net, name, fi.OTHER) == fi.HOST_ADDR
        assert fetch(net, name, fi.WWW) == ""
        assert srv.ok("GET", f"/v1/sandboxes/{s['id']}")["network"]["denyOut"] == [fi.WWW]
        got = srv.ok("PUT", f"/v1/sandboxes/{name}/network", {})
        assert got["network"]["allowOut"] == [] and got["network"]["denyOut"] == []
        assert fetch(net, name, fi.WWW) == fi.HOST_ADDR

        # bad input: the library's messages, naming the field or the rule
        srv.error("PUT", f"/v1/sandboxes/{name}/network", {"allowOut": ["nope..x"]}, match="egress rule")
        srv.error("PUT", f"/v1/sandboxes/{name}/network", {"denyOut": ["host"]}, match="only --allow-out")
        srv.error("PUT", f"/v1/sandboxes/{name}/network", {"allowOut": "1.2.3.4"},
                  match="field 'allowOut': expected an array of strings")
        srv.error("PUT", f"/v1/sandboxes/{name}/network", {"allow": []}, match="unknown field 'allow'")
        srv.error("PUT", "/v1/sandboxes/nosuch-sandbox/network", {}, status=404)
        # the rules that were there stay after a refused change
        assert srv.ok("GET", f"/v1/sandboxes/{name}")["network"]["denyOut"] == []
    finally:
        srv.ok("DELETE", f"/v1/sandboxes/{name}?force=true", status=204)
    srv.assert_clean()


def test_modes_and_bad_network_options(fake_internet, net, srv):
    fi = fake_internet
    # the host's network only when the operator says so
    j = srv.error("POST", "/v1/sandboxes", {"image": "busybox", "network": {"mode": "host"}}, status=403,
                  word="permission_denied")
    assert "--allow-host-network" in j["message"]
    for network, status, match in [
        ({"mode": "none", "allowOut": [fi.WWW]}, 400, "need a network of capsa's"),
        ({"mode": "nosuch-" + uuid.uuid4().hex[:6]}, 404, "no such network"),
        ({"mode": "bridge", "denyOut": ["::/0"]}, 400, "IPv6"),
        ({"mode": "bridge", "allowOut": [fi.WWW, 7]}, 400, "field 'network.allowOut': expected an array of strings"),
        ({"mode": "bridge", "allow": []}, 400, "unknown field 'network.allow'"),
        ({"mode": 1}, 400, "field 'network.mode': expected a string"),
        ("bridge", 400, "field 'network': expected an object"),
        ({"denyOut": ["x"] * 1025}, 400, "network.denyOut': more than 1024 entries"),
    ]:
        srv.error("POST", "/v1/sandboxes", {"image": "busybox", "network": network}, status=status, match=match)
    # none: loopback only
    name = uniq()
    s = create(srv, name=name, network={"mode": "none"})
    try:
        assert s["network"]["mode"] == "none" and "ip" not in s["network"]
        assert fetch(net, name, fi.WWW) == ""
        srv.error("PUT", f"/v1/sandboxes/{name}/network", {"denyOut": [fi.WWW]}, match="egress rules need one")
    finally:
        srv.ok("DELETE", f"/v1/sandboxes/{name}?force=true", status=204)
    srv.assert_clean()


def test_host_network_with_the_servers_consent(fake_internet, net):
    fi = fake_internet
    s = Serve(net, "--allow-host-network")
    try:
        name = uniq()
        got = create(s, name=name, network={"mode": "host"})
        try:
            assert got["network"]["mode"] == "host"
            # the host namespace's own interface, not a veth of capsa's
            assert fi.HOST_ADDR in net.ok("exec", name, "ip", "-4", "-o", "addr", "show", "eth0")
        finally:
            s.ok("DELETE", f"/v1/sandboxes/{name}?force=true", status=204)
        s.assert_clean()
    finally:
        s.stop()


def test_networks_crud(fake_internet, net, srv):
    name = uniq("api")
    subnet = f"10.89.{100 + uuid.uuid4().int % 100}.0/24"
    gateway = subnet.replace(".0/24", ".1")
    nets = srv.ok("GET", "/v1/networks")
    assert nets[0]["name"] == "bridge" and nets[0]["builtin"] is True
    assert name not in [n["name"] for n in nets]
    got = srv.ok("POST", "/v1/networks", {"name": name, "subnet": subnet, "labels": {"team": "a"}}, status=201)
    try:
        assert got["name"] == name and got["subnet"] == subnet and got["labels"] == {"team": "a"}
        assert got["gateway"] == gateway and got["sandboxes"] == []
        srv.error("POST", "/v1/networks", {"name": name}, status=409, match="exists already")
        srv.error("POST", "/v1/networks", {"name": uniq("api"), "subnet": subnet}, status=409, match="overlaps")
        assert name in [n["name"] for n in srv.ok("GET", "/v1/networks")]
        assert srv.ok("GET", f"/v1/networks/{name}")["subnet"] == subnet

        # a sandbox on it holds it
        sb = uniq()
        s = create(srv, name=sb, network={"mode": name})
        try:
            assert s["network"]["network"] == name and s["network"]["ip"].startswith(subnet[:-4])
            users = srv.ok("GET", f"/v1/networks/{name}")["sandboxes"]
            assert [u["name"] for u in users] == [sb]
            srv.error("DELETE", f"/v1/networks/{name}", status=409, match="in use")
        finally:
            srv.ok("DELETE", f"/v1/sandboxes/{sb}?force=true", status=204)
        srv.ok("DELETE", f"/v1/networks/{name}", status=204)
    finally:
        srv.request("DELETE", f"/v1/networks/{name}")
    srv.error("GET", f"/v1/networks/{name}", status=404, match="no such network")
    srv.error("DELETE", f"/v1/networks/{name}", status=404)
    srv.error("DELETE", "/v1/networks/bridge", status=403, match="stays")
    for body, status, match in [
        ({}, 400, "field 'name' is required"),
        ({"name": "bad name"}, 400, "invalid network name"),
        ({"name": "none"}, 400, "reserved"),
        ({"name": uniq("api"), "subnet": "10.89.0.0/8"}, 400, "/16 to /29"),
        ({"name": uniq("api"), "subnet": "nope"}, 400, "subnet"),
        ({"name": uniq("api"), "labels": ["a=b"]}, 400, "field 'labels'"),
        ({"name": uniq("api"), "driver": "x"}, 400, "unknown field 'driver'"),
    ]:
        srv.error("POST", "/v1/networks", body, status=status, match=match)
    assert [n["name"] for n in srv.ok("GET", "/v1/networks")] == [n["name"] for n in nets]
    srv.assert_clean()


# --- E2B by hand: a server whose sandboxes have no network -------------------------

def test_e2b_on_a_server_without_networks(fake_internet, net):
    debian_or_skip(net)
    fi = fake_internet
    s = Serve(net, env={"CAPSA_DEFAULT_NETWORK": "none"})
    made = []
    try:
        # allow_internet_access true (e2b 2.50 sends it unasked) is taken, and
        # the sandbox gets what the server gives: loopback only, said so
        for body in ({"allow_internet_access": True}, {"allow_internet_access": False},
                     {"network": {"denyOut": [fi.WWW]}}):
            got = s.ok("POST", "/v2/sandboxes", dict(templateID="base", **body), status=201)
            made.append(got["sandboxID"])
            info = s.ok("GET", f"/sandboxes/{got['sandboxID']}")
            assert info["allowInternetAccess"] is False, body
            assert info["network"] == {"allowOut": [], "denyOut": ["0.0.0.0/0"]}, body
        assert fetch_bash(net, made[0], fi.WWW) == ""
        # what would be allowed cannot be
        s.error("POST", "/v2/sandboxes", {"templateID": "base", "network": {"allowOut": [fi.WWW_NAME],
                "denyOut": ["0.0.0.0/0"]}}, match="no network (loopback only)")
        s.error("PUT", f"/sandboxes/{made[0]}/network", {"allowOut": [fi.WWW]}, match="no network")
        assert s.request("PUT", f"/sandboxes/{made[0]}/network", {"denyOut": [fi.WWW]}).status == 204
        # bad input is refused before anything is looked at
        s.error("PUT", f"/sandboxes/{made[0]}/network", {"denyOut": [fi.WWW_NAME]}, match="not domain names")
        s.error("PUT", "/sandboxes/nosuch/network", {}, status=404)
    finally:
        for sid in made:
            s.request("DELETE", f"/sandboxes/{sid}")
        s.stop()


def test_e2b_rules_by_hand(fake_internet, net, srv):
    debian_or_skip(net)
    fi = fake_internet
    # E2B's allowOut over denyOut: an allowed address inside a denied range
    got = srv.ok("POST", "/v2/sandboxes", {"templateID": "base", "network": {
        "allowOut": [fi.DENIED], "denyOut": ["203.0.113.0/24", fi.OTHER]}}, status=201)
    sid = got["sandboxID"]
    try:
        assert fetch_bash(net, sid, fi.DENIED) == fi.HOST_ADDR
        assert fetch_bash(net, sid, fi.OTHER) == ""
        assert fetch_bash(net, sid, fi.WWW) == fi.HOST_ADDR
        info = srv.ok("GET", f"/sandboxes/{sid}")
        # read back as capsa holds it: the denied range with the hole cut out
        deny = info["network"]["denyOut"]
        assert info["allowInternetAccess"] is True and info["network"]["allowOut"] == []
        assert fi.OTHER in deny and "203.0.113.11" in deny and "203.0.113.0/24" not in deny
        assert len(deny) == 9
        native = srv.ok("GET", f"/v1/sandboxes/{sid}")["network"]
        assert native["allowOut"] == [] and native["denyOut"] == deny
        for net_body, match in [
            ({"maskRequestHost": "x.test"}, "maskRequestHost"),
            ({"httpsPorts": [8443]}, "plain HTTP only"),
            ({"allowOut": ["host"], "denyOut": ["0.0.0.0/0"]}, "host's own addresses"),
            ({"allowOut": ["1.2.3.4,5.6.7.8"]}, "one address"),
            ({"denyOut": "0.0.0.0/0"}, "field 'network.denyOut': expected an array of strings"),
        ]:
            srv.error("POST", "/v2/sandboxes", {"templateID": "base", "network": net_body}, match=match)
        # nested prefixes are dropped (nftables refuses overlapping ones)
        nested = srv.ok("POST", "/v2/sandboxes", {"templateID": "base", "network": {
            "denyOut": ["10.0.0.0/8", "10.1.0.0/16", fi.OTHER, fi.OTHER]}}, status=201)
        info = srv.ok("GET", f"/sandboxes/{nested['sandboxID']}")
        srv.request("DELETE", f"/sandboxes/{nested['sandboxID']}")
        assert info["network"]["denyOut"] == ["10.0.0.0/8", fi.OTHER]
        # E2B's default (URLs that need the token) is capsa's only way
        quiet = srv.ok("POST", "/v2/sandboxes", {"templateID": "base", "network": {"allowPublicTraffic": False}},
                       status=201)
        srv.request("DELETE", f"/sandboxes/{quiet['sandboxID']}")
    finally:
        srv.request("DELETE", f"/sandboxes/{sid}")
    srv.assert_clean()


# --- the E2B SDK -------------------------------------------------------------------

def test_e2b_sdk_network(fake_internet, net, srv, e2b_sdk):
    debian_or_skip(net)
    fi = fake_internet
    mark = fi.log_mark()
    got = run_node(e2b_sdk, srv, "network.mjs", fi.WWW, fi.WWW_NAME, fi.OTHER, fi.OTHER_NAME, fi.HOST_ADDR)
    assert got["ok"] and len(got["sandboxes"]) == 3
    # the script saw answers through NAT only; the servers saw the same
    hits = fi.access_log(since=mark)
    assert hits and all(h["client"] == fi.HOST_ADDR for h in hits)
    srv.assert_clean()
