"""Sandbox networking (docs/network.md), on the fake internet of netenv.py:
the default bridge network with NAT and DNS, the default policy and egress
rules (CIDRs, names, wildcards, deny over allow, updates of a running
sandbox), named networks (peers by name, isolation between networks),
anti-spoofing, the other modes, bad input, and nothing left on the host
after sandboxes end however they end."""
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from netenv import fake_internet  # noqa: F401 (one fake internet for the module)


def uniq(prefix="n"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def net(fake_internet, store):
    """The shared store's capsa, run in the fake internet's host namespace."""
    c = fake_internet.capsa(store.root, store.run_root)
    yield c
    c.assert_clean()
    assert host_state(fake_internet) == EMPTY, host_state(fake_internet)


def http(target, path="/whoami", port=80, wait=3):
    """A shell line that prints the HTTP response of target (busybox nc)."""
    return (f"printf 'GET {path} HTTP/1.0\\r\\nHost: {target}\\r\\n\\r\\n' | nc -w {wait} {target} {port} "
            f"| tail -n 1; echo rc=$?")


def fetch(c, target, *run_args, path="/whoami"):
    """The body a fresh sandbox gets from target (empty when it cannot)."""
    p = c.run("run", "--rm", *run_args, "busybox", "sh", "-c", http(target, path), timeout=60)
    assert p.returncode == 0, p.err
    return p.out.rsplit("rc=", 1)[0].strip()


def in_sandbox(c, name, line, timeout=60):
    return c.ok("exec", name, "sh", "-c", line, timeout=timeout)


EMPTY = {"veths": [], "pol4": [], "bind4": [], "ports": [], "chains": [], "leases": [], "resolvers": []}


def host_state(fi):
    """What sandboxes hold in the host namespace: veths, nft elements and
    chains, leases, their own resolvers."""
    links = json.loads(fi.host_run(["ip", "-j", "link"], check=True).out)
    out = {"veths": sorted(l["ifname"] for l in links if l["ifname"].startswith("cv"))}
    rules = fi.host_run(["nft", "-j", "list", "ruleset"]).out
    items = json.loads(rules)["nftables"] if rules.strip() else []
    out["chains"] = sorted(i["chain"]["name"] for i in items if "chain" in i and i["chain"]["name"].startswith("sb"))
    for key, fam in (("pol4", "inet"), ("bind4", "bridge"), ("ports", "bridge")):
        out[key] = []
        for i in items:
            for kind in ("set", "map"):
                o = i.get(kind)
                if o and o["name"] == key and o["family"] == fam:
                    out[key] = o.get("elem", [])
    ino = os.stat(f"/run/netns/{fi.host_ns}").st_ino
    leases = []
    base = f"/run/capsa-net/{ino}"
    if os.path.isdir(base):
        for br in os.listdir(base):
            d = os.path.join(base, br, "leases")
            if os.path.isdir(d):
                leases += os.listdir(d)
    out["leases"] = sorted(leases)
    out["resolvers"] = []
    for pid, where in fi.processes_inside():
        try:
            cmd = open(f"/proc/{pid}/cmdline").read()
        except OSError:
            continue
        # a sandbox's own resolver: configured from its runtime directory
        if where == fi.host_ns and cmd.startswith("dnsmasq") and "/run/capsa-net/" not in cmd:
            out["resolvers"].append(pid)
    return out


# ---- the default network --------------------------------------------------------

def test_default_network_reaches_the_internet_by_name_through_nat(fake_internet, net):
    fi = fake_internet
    mark = fi.log_mark()
    assert fetch(net, fi.WWW_NAME) == fi.HOST_ADDR  # /whoami: the server saw the host: NAT
    assert ("A", fi.WWW_NAME, fi.HOST_ADDR) in fi.dns_queries(since=mark)  # asked by capsa's resolver
    name = uniq()
    net.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    try:
        info = net.json("inspect", name)["network"]
        assert info["mode"] == "bridge" and info["network"] == "bridge"
        assert info["ip"].startswith("10.88.") and info["gateway"] == "10.88.0.1"
        assert info["allowOut"] == [] and info["denyOut"] == []
        conf = in_sandbox(net, name, "cat /etc/resolv.conf; ip -4 -o addr show eth0; ip route")
        assert "nameserver 10.88.0.1" in conf and info["ip"] in conf and "default via 10.88.0.1" in conf
        assert f"{info['ip']}\t" in in_sandbox(net, name, "cat /etc/hosts")
        assert net.fail("run", "--rm", "--network", "bridge", "--allow-out", "nope..x", "busybox", "true",
                        match="egress rule")
    finally:
        net.ok("rm", "-f", name)


def test_default_policy_keeps_host_lan_metadata_and_private_out(fake_internet, net):
    fi = fake_internet
    mark = fi.log_mark()
    for target in (fi.METADATA, fi.LAN, fi.ROUTER, fi.HOST_ADDR, "10.88.0.1"):
        assert fetch(net, target) == "", target
    assert fi.access_log(since=mark) == []
    # the public side stays open, documentation ranges included
    assert fetch(net, fi.DENIED) == fi.HOST_ADDR
    # and each is opened by a rule
    assert fetch(net, fi.METADATA, "--allow-out", "169.254.169.254") == fi.HOST_ADDR
    assert fetch(net, fi.LAN, "--allow-out", "10.77.0.0/24") == fi.HOST_ADDR


def test_deny_cidr_wins_and_allow_by_name_only(fake_internet, net):
    fi = fake_internet
    mark = fi.log_mark()
    assert fetch(net, fi.DENIED, "--deny-out", "203.0.113.0/24") == ""
    assert fetch(net, fi.WWW, "--deny-out", "203.0.113.0/24") == fi.HOST_ADDR
    allow = ("--allow-out", fi.WWW_NAME)
    assert fetch(net, fi.WWW_NAME, *allow) == fi.HOST_ADDR
    assert fetch(net, fi.OTHER_NAME, *allow) == ""   # does not even resolve
    assert fetch(net, fi.OTHER, *allow) == ""        # nor is reached by address
    # an allowed name that resolves into a denied range stays denied
    assert fetch(net, fi.EVIL_NAME, "--allow-out", fi.EVIL_NAME, "--deny-out", "203.0.113.0/24") == ""
    # a wildcard: names below the domain, not the domain itself
    assert fetch(net, f"a.{fi.WILD_DOMAIN}", "--allow-out", f"*.{fi.WILD_DOMAIN}") == fi.HOST_ADDR
    assert fetch(net, fi.WILD_DOMAIN, "--allow-out", f"*.{fi.WILD_DOMAIN}") == ""
    # rules that nest or overlap are one range
    assert fetch(net, fi.DENIED, "--deny-out", "203.0.0.0/8", "--deny-out", "203.0.113.0/24,203.0.113.10") == ""
    assert fetch(net, fi.WWW, "--allow-out", "198.51.100.0/24,198.51.100.10", "--allow-out", "198.0.0.0/8") == \
        fi.HOST_ADDR
    # a denied name never resolves, whatever else is allowed
    assert fetch(net, fi.OTHER_NAME, "--deny-out", fi.OTHER_NAME) == ""
    assert fetch(net, fi.WWW_NAME, "--deny-out", fi.OTHER_NAME) == fi.HOST_ADDR
    # what was refused never arrived
    assert not [h for h in fi.access_log(since=mark) if h["server"] in ("other", "denied")]


def test_names_resolve_only_through_capsa_when_rules_name_hosts(fake_internet, net):
    fi = fake_internet
    # with a name rule, another DNS server is out of reach (no way around
    # the resolver that decides which names resolve)
    p = net.run("run", "--rm", "--allow-out", fi.WWW_NAME, "--allow-out", fi.DNS, "busybox", "sh", "-c",
                f"nslookup {fi.OTHER_NAME} {fi.DNS} >/dev/null 2>&1; echo rc=$?", timeout=60)
    assert "rc=0" not in p.out, p.out


def test_update_changes_a_running_sandboxs_rules(fake_internet, net):
    fi = fake_internet
    name = uniq()
    net.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    try:
        line = http(fi.DENIED)
        assert fi.HOST_ADDR in in_sandbox(net, name, line)
        net.ok("update", "--deny-out", "203.0.113.0/24", name)
        assert fi.HOST_ADDR not in in_sandbox(net, name, line)
        assert net.json("inspect", name)["network"]["denyOut"] == ["203.0.113.0/24"]
        net.ok("update", "--allow-out", fi.WWW_NAME, name)
        assert fi.HOST_ADDR in in_sandbox(net, name, http(fi.WWW_NAME))
        assert fi.HOST_ADDR not in in_sandbox(net, name, http(fi.OTHER))
        net.ok("update", "--egress-reset", name)
        assert fi.HOST_ADDR in in_sandbox(net, name, line)
        assert net.json("inspect", name)["network"]["allowOut"] == []
        net.fail("update", "--allow-out", "*.com", name, match="wildcard")
    finally:
        net.ok("rm", "-f", name)


# ---- named networks ------------------------------------------------------------

def test_named_networks_peers_by_name_and_isolation(fake_internet, net):
    a_net, b_net = uniq("na"), uniq("nb")
    net.ok("network", "create", a_net)
    net.ok("network", "create", "--subnet", "10.89.200.0/24", b_net)
    names = [uniq("a1"), uniq("a2"), uniq("b1")]
    try:
        net.ok("run", "-d", "--network", a_net, "--name", names[0], "busybox", "sh", "-c",
               "httpd -f -p 8080 -h /etc")
        net.ok("run", "-d", "--network", a_net, "--name", names[1], "busybox", "sleep", "1000")
        net.ok("run", "-d", "--network", b_net, "--name", names[2], "busybox", "sleep", "1000")
        ip_a1 = net.json("inspect", names[0])["network"]["ip"]
        assert net.json("inspect", names[2])["network"]["ip"].startswith("10.89.200.")
        # a peer by name, on its own listening port
        assert ip_a1 in in_sandbox(net, names[1], f"nslookup {names[0]}")
        got = in_sandbox(net, names[1], f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {names[0]} 8080")
        assert "200 OK" in got
        # nothing of another network, by address or by name
        got = in_sandbox(net, names[2], f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip_a1} 8080; "
                                        f"nslookup {names[0]} >/dev/null 2>&1 && echo resolved; true")
        assert "200 OK" not in got and "resolved" not in got
        # in use: not removable; listed with its sandboxes
        net.fail("network", "rm", a_net, match="in use by 2 running sandboxes")
        ls = {n["name"]: n for n in json.loads(net.ok("network", "ls", "--json"))}
        assert ls[a_net]["running"] == 2 and ls["bridge"]["builtin"]
        ins = json.loads(net.ok("network", "inspect", a_net))
        assert {s["name"] for s in ins["sandboxes"]} == {names[0], names[1]}
    finally:
        for n in names:
            net.run("rm", "-f", n)
        rm = net.run("network", "rm", a_net, b_net)
    assert rm.returncode == 0, rm.err
    assert a_net not in net.ok("network", "ls", "-q")
    links = fake_internet.host_run(["ip", "-o", "link"]).out
    assert "cn" not in "".join(l.split(":")[1] for l in links.splitlines())


def test_network_create_refuses_bad_input_and_leaves_nothing(fake_internet, net):
    fi = fake_internet
    name = uniq("bad")
    net.fail("network", "create", "--subnet", "10.88.5.0/24", name, match="overlaps")   # the default one's
    net.fail("network", "create", "--subnet", "192.0.2.0/24", name, match="overlaps")   # the host's route
    net.fail("network", "create", "--subnet", "10.89.7.1/24", name, match="not a network address")
    net.fail("network", "create", "--subnet", "10.89.7.0/30", name, match="/16 to /29")
    net.fail("network", "create", "--subnet", "nonsense", name, match="nonsense")
    net.fail("network", "create", "bridge", match="reserved")
    net.fail("network", "create", "bad/name", match="invalid network name")
    net.fail("network", "rm", "bridge", match="host's default network")
    net.fail("network", "rm", uniq("nosuch"), match="no such network")
    net.fail("run", "--rm", "--network", uniq("nosuch"), "busybox", "true", match="no such network")
    net.ok("network", "create", name)
    net.fail("network", "create", name, match="exists already")
    net.fail("network", "connect", name, "x", match="not available yet")
    net.ok("network", "rm", name)
    assert name not in net.ok("network", "ls", "-q")
    assert "cn" not in fi.host_run(["ip", "-o", "link"]).out.replace("capsa0", "")


def test_a_full_subnet_refuses_the_next_sandbox_cleanly(fake_internet, net):
    n = uniq("tiny")
    net.ok("network", "create", "--subnet", "10.89.201.0/29", n)   # .2 to .6 for sandboxes
    names = []
    try:
        for _ in range(5):
            names.append(uniq("t"))
            net.ok("run", "-d", "--network", n, "--name", names[-1], "busybox", "sleep", "1000")
        err = net.fail("run", "-d", "--network", n, "busybox", "true", match="every address of 10.89.201.0/29")
        assert "leased" in err
        # the refused one left nothing: five veths, five leases
        st = host_state(fake_internet)
        assert len(st["veths"]) == 5 and len(st["leases"]) == 5, st
    finally:
        for x in names:
            net.run("rm", "-f", x)
    net.ok("network", "rm", n)


# ---- anti-spoofing ----------------------------------------------------------------

def test_a_sandbox_cannot_send_as_another(fake_internet, net):
    """Even with CAP_NET_ADMIN over its namespace (host ids, --cap-add), a
    sandbox cannot send from an address or MAC that is not its own."""
    fi = fake_internet
    mark = fi.log_mark()
    out = net.ok("run", "--rm", "--userns", "host", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c",
                 "ip addr add 10.88.250.250/16 dev eth0; "
                 f"printf 'GET /whoami HTTP/1.0\\r\\n\\r\\n' | nc -w 3 -s 10.88.250.250 {fi.WWW} 80; "
                 "echo spoofed-ip-done; "
                 "ip link set eth0 address 02:ca:de:ad:be:ef; "
                 f"printf 'GET /whoami HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {fi.WWW} 80; "
                 "echo spoofed-mac-done; "
                 "arping -c 2 -U -s 10.88.250.251 -I eth0 10.88.0.1 >/dev/null 2>&1; echo arp-done",
                 timeout=90)
    assert "spoofed-ip-done" in out and "arp-done" in out, out
    assert fi.access_log(since=mark) == [], fi.access_log(since=mark)
    neigh = fi.host_run(["ip", "neigh", "show", "dev", "capsa0"]).out
    assert "10.88.250.25" not in neigh, neigh


def test_sandbox_root_cannot_open_raw_or_packet_sockets_in_its_namespace(net):
    out = net.ok("run", "--rm", "busybox", "sh", "-c", "arping -c 1 -I eth0 10.88.0.1 2>&1; echo done")
    assert "Operation not permitted" in out, out


# ---- the other modes --------------------------------------------------------------

def test_modes_none_host_and_container(fake_internet, net):
    fi = fake_internet
    assert fetch(net, fi.WWW, "--network", "none") == ""
    assert net.ok("run", "--rm", "--network", "none", "busybox", "cat", "/etc/resolv.conf") == ""
    out = net.ok("run", "--rm", "--network", "host", "busybox", "ip", "-4", "-o", "addr")
    assert fi.HOST_ADDR in out
    owner = uniq("owner")
    net.ok("run", "-d", "--name", owner, "busybox", "sleep", "1000")
    try:
        ip = net.json("inspect", owner)["network"]["ip"]
        out = net.ok("run", "--rm", "--network", f"container:{owner}", "busybox", "sh", "-c",
                     f"ip -4 -o addr show eth0; {http(fi.WWW_NAME)}")
        assert ip in out and fi.HOST_ADDR in out
        assert net.json("inspect", owner)["network"]["ip"] == ip
    finally:
        net.ok("rm", "-f", owner)
    net.fail("run", "--rm", "--network", f"container:{owner}", "busybox", "true", match="no such sandbox")
    stopped = uniq("stopped")
    net.ok("run", "--name", stopped, "busybox", "true")
    try:
        net.fail("run", "--rm", "--network", f"container:{stopped}", "busybox", "true", match="not running")
    finally:
        net.ok("rm", stopped)
    net.fail("run", "--rm", "--network", "host", "--deny-out", "1.2.3.4", "busybox", "true",
             match="need a network of capsa's")
    net.fail("run", "--rm", "--network", "container:", "busybox", "true", match="no sandbox named")


def test_a_sandbox_that_cannot_start_leaves_no_network(fake_internet, net):
    # the main process cannot be found: the sandbox ends before it runs,
    # after its network was made (the fixture checks the host is empty)
    net.fail("run", "--rm", "busybox", "/no/such/program", rc=127)
    net.fail("run", "--rm", "--allow-out", fake_internet.WWW_NAME, "busybox", "/no/such/program", rc=127)


def test_dns_add_host_and_hostname_as_in_docker(fake_internet, net):
    fi = fake_internet
    out = net.ok("run", "--rm", "--dns", fi.DNS, "--add-host", "db.local:10.88.77.7", "--hostname", "web-1",
                 "busybox", "sh", "-c", "cat /etc/resolv.conf /etc/hosts; hostname")
    assert f"nameserver {fi.DNS}" in out and "10.88.77.7\tdb.local" in out and "\tweb-1" in out, out
    assert out.strip().endswith("web-1")
    # the sandbox asks that server itself, through the policy (public)
    assert fetch(net, fi.WWW_NAME, "--dns", fi.DNS) == fi.HOST_ADDR
    out = net.ok("run", "--rm", "--network", "none", "--add-host", "x.test:192.0.2.9", "busybox", "cat", "/etc/hosts")
    assert "192.0.2.9\tx.test" in out and "localhost" in out
    net.fail("run", "--rm", "--dns", "not-an-address", "busybox", "true", match="invalid --dns")
    net.fail("run", "--rm", "--add-host", "nocolon", "busybox", "true", match="NAME:ADDRESS")
    net.fail("run", "--rm", "--add-host", "bad_name:1.2.3.4", "busybox", "true", match="--add-host name")
    net.fail("run", "--rm", "--network", "none", "--dns", "1.2.3.4", "busybox", "true", match="needs a network")
    net.fail("run", "--rm", "--dns", fi.DNS, "--allow-out", fi.WWW_NAME, "busybox", "true",
             match="capsa's resolver")


def test_published_ports_work_on_the_bridge(fake_internet, net):
    name = uniq("pub")
    net.ok("run", "-d", "--name", name, "-p", "0:8080", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")
    try:
        # "8080/tcp -> 127.0.0.1:NNNNN"
        port = net.ok("port", name, "8080").strip().rsplit(":", 1)[1]
        got = fake_internet.host_run(["sh", "-c", f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | "
                                                  f"busybox nc -w 3 127.0.0.1 {port}"]).out
        assert "200 OK" in got, got
    finally:
        net.ok("rm", "-f", name)


# ---- nothing left, however sandboxes end -------------------------------------------------

def supervisors_in(fi):
    out = []
    for pid, _ in fi.processes_inside():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith("capsa-supervis"):
                    out.append(pid)
        except OSError:
            pass  # ended meanwhile
    return out


@pytest.mark.slow
def test_kill_9_rounds_leave_no_links_rules_leases_or_resolvers(fake_internet, net):
    fi = fake_internet
    rounds = int(os.environ.get("CAPSA_NET_SOAK_ROUNDS", "300"))
    for i in range(rounds):
        args = ["run", "-d", "busybox", "sleep", "1000"]
        if i % 3 == 1:
            args[2:2] = ["--allow-out", fi.WWW_NAME]   # a resolver of its own
        elif i % 3 == 2:
            args[2:2] = ["--deny-out", "203.0.113.0/24"]
        p = subprocess.Popen(net.argv(*args), env=net.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep((i % 8) * 0.01)
        if i % 2 == 0:
            p.kill()
        else:
            sups = supervisors_in(fi)
            if sups:
                os.kill(max(sups), signal.SIGKILL)
        p.wait(timeout=60)
        if i % 5 == 4:
            ids = net.ok("ps", "-aq").split()
            if ids:
                net.run("rm", "-f", *ids, timeout=120)
    ids = net.ok("ps", "-aq").split()
    if ids:
        net.run("rm", "-f", *ids, timeout=120)
    time.sleep(2.1)
    net.ok("ps", "-a")   # the reconciliation that finishes what crashes left
    assert host_state(fi) == EMPTY, host_state(fi)
