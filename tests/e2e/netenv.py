"""A fake internet for the network tests and benchmarks: two network
namespaces and real servers, so that no test ever sends a packet to this
machine's own network (docs/network.md, "Testing without the real network").

  host      where capsa runs: lo, and eth0 (one end of a veth pair) with
            192.0.2.2/24 and 2001:db8:2::2/64, default routes via the
            upstream end; net.ipv4.ip_forward=1; /etc/netns/<host>/resolv.conf
            names the fake DNS server and /etc/netns/<host>/hosts holds only
            localhost (netns_exec.sh binds both over /etc)
  upstream  the router and every server: down0 (the other end) with
            192.0.2.1/24 and 2001:db8:2::1/64, the servers' addresses on lo,
            and NO route anywhere else: a packet for an address outside the
            fake internet is counted (packets_to_real_network) and answered
            with ICMP unreachable

Servers (tests/e2e/netenv_servers.py, one process; dnsmasq for DNS):
  198.51.100.10   www.example.test (and 2001:db8:100::10): HTTP on 80, a
                  package-index-like tree (BLOB is 1 MiB, BLOB_SHA256);
                  TCP and UDP echo on 7, accept-and-close on 9
                  (connection rate)
  198.51.100.11   other.example.test, HTTP
  198.51.100.12   every name under wild.test, HTTP
  203.0.113.10    denied.example.test and evil-allowed.example.test, HTTP
  169.254.169.254 a cloud metadata service, HTTP
  10.77.0.10      a host of the machine's LAN, HTTP
  198.51.100.53   DNS (dnsmasq): the names above; other names under .test
                  are NXDOMAIN; nothing is forwarded anywhere

Every HTTP request, TCP connection and UDP datagram is in the access log,
with the client address the server saw (access_log); every DNS question is
in the DNS log (dns_queries).  Both are written before the answer.

Use it as a context manager or as the module-scoped fixture fake_internet
(`from netenv import fake_internet` in a test file); .capsa(root, run_root)
gives a conftest.Capsa whose commands run in the host namespace.  Teardown
removes what capsa left running there, stops the servers, deletes both
namespaces and /etc/netns/<host>; leftovers() says what survived anyway
(the fixture asserts it is nothing).  Every wait has a deadline.
"""
import ctypes
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Capsa, capsa_bin

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS_EXEC = os.path.join(HERE, "netns_exec.sh")
SERVERS = os.path.join(HERE, "netenv_servers.py")

# the link between the namespaces (the host side mirrors a machine whose
# uplink is eth0 with a default route to its router)
HOST_DEV = "eth0"
UP_DEV = "down0"
HOST_ADDR = "192.0.2.2"
ROUTER = "192.0.2.1"
HOST_ADDR6 = "2001:db8:2::2"
ROUTER6 = "2001:db8:2::1"

WWW = "198.51.100.10"
WWW6 = "2001:db8:100::10"
OTHER = "198.51.100.11"
WILD = "198.51.100.12"
DENIED = "203.0.113.10"
DNS = "198.51.100.53"
METADATA = "169.254.169.254"
LAN = "10.77.0.10"
LAN_NET = "10.77.0.0/24"

WWW_NAME = "www.example.test"
OTHER_NAME = "other.example.test"
DENIED_NAME = "denied.example.test"
EVIL_NAME = "evil-allowed.example.test"  # a name an allow rule may name: resolves to DENIED
WILD_DOMAIN = "wild.test"                # anything.wild.test -> WILD
NAMES = {WWW_NAME: WWW, OTHER_NAME: OTHER, DENIED_NAME: DENIED, EVIL_NAME: DENIED}

ECHO_PORT = 7      # TCP and UDP echo on WWW
ACCEPT_PORT = 9    # accepts and closes at once, on WWW

BLOB = "/files/blob-1m.bin"
BLOB_SHA256 = "113ccf9a9a8fbae183c7f23f9b5687c634a613915a9142d08c1e6e6d2664f4ec"

# what the fake internet holds; a packet for anything else reaching the
# upstream router would, on a real machine, have left it
FAKE4 = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "169.254.0.0/16", LAN_NET,
         "224.0.0.0/4", "255.255.255.255"]
FAKE6 = ["2001:db8::/32", "fe80::/10", "ff00::/8"]

HTTP_SERVERS = [("www", WWW), ("www6", WWW6), ("other", OTHER), ("wild", WILD), ("denied", DENIED),
                ("metadata", METADATA), ("lan", LAN)]

PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

WAIT = 10.0  # seconds: the bound on every wait of the setup


def blob_bytes():
    """BLOB's content: 1 MiB that no pattern repeats in."""
    return b"".join(hashlib.sha256(b"netenv blob %d" % i).digest() for i in range(32768))


def capsa_network_resolver(pid):
    """Whether pid is the dnsmasq of one of capsa's networks (its
    configuration under /run/capsa-net/, not a sandbox's run directory)."""
    c = cmdline(pid)
    return c.startswith("dnsmasq ") and "--conf-file=/run/capsa-net/" in c


def clean_env(env=None):
    """env (default ours) without proxy variables: nothing may try a proxy."""
    e = dict(os.environ if env is None else env)
    for k in list(e):
        if k.lower() in PROXY_VARS:
            del e[k]
    return e


def in_netns(ns, fn, *args):
    """fn(*args) in a thread of ours that joined network namespace ns: what
    it opens (sockets, /proc/sys/net files) belongs to ns, and stays there."""
    out = {}

    def run():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns {ns}: {os.strerror(e)}")
            finally:
                os.close(fd)
            out["v"] = fn(*args)
        except BaseException as e:  # handed to the caller's thread
            out["e"] = e

    t = threading.Thread(target=run, name=f"netns-{ns}")
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def ns_inode(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


# --- DNS on the wire (for probes and tests: no resolver library involved) ---

QTYPES = {"A": 1, "AAAA": 28}


def dns_packet(name, qtype, qid):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", QTYPES[qtype], 1)


def _skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def dns_parse(msg, qid, qtype):
    """(rcode, [addresses]) of a reply to query qid."""
    rid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    if rid != qid or not flags & 0x8000:
        raise ValueError("not the reply to our query")
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    addrs = []
    for _ in range(an):
        i = _skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype == QTYPES[qtype]:
            fam = socket.AF_INET if rtype == 1 else socket.AF_INET6
            addrs.append(socket.inet_ntop(fam, msg[i:i + rdlen]))
        i += rdlen
    return flags & 0xF, addrs


RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


class FakeInternet:
    """The two namespaces and their servers; see the module's docstring."""

    HOST_ADDR, ROUTER, HOST_ADDR6, ROUTER6 = HOST_ADDR, ROUTER, HOST_ADDR6, ROUTER6
    WWW, WWW6, OTHER, WILD, DENIED, DNS, METADATA, LAN = WWW, WWW6, OTHER, WILD, DENIED, DNS, METADATA, LAN
    WWW_NAME, OTHER_NAME, DENIED_NAME, EVIL_NAME, WILD_DOMAIN = (WWW_NAME, OTHER_NAME, DENIED_NAME, EVIL_NAME,
                                                                 WILD_DOMAIN)
    NAMES = NAMES
    ECHO_PORT, ACCEPT_PORT = ECHO_PORT, ACCEPT_PORT
    BLOB, BLOB_SHA256 = BLOB, BLOB_SHA256

    def __init__(self):
        tag = secrets.token_hex(4)
        self.host_ns = f"capsa-h-{tag}"
        self.upstream_ns = f"capsa-u-{tag}"
        self.etc = f"/etc/netns/{self.host_ns}"
        self.work = None
        self.procs = {}
        self.inodes = {}
        self.runners = []
        self.forced = []      # what teardown had to remove: it is a leftover too
        self.setup_seconds = None
        self.closed = False

    # --- lifecycle ------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        t0 = time.monotonic()
        self.work = tempfile.mkdtemp(prefix="capsa-net-")
        os.chmod(self.work, 0o755)
        self._make_trees()
        self._make_namespaces()
        self._write_etc()
        self._start_dns()
        self._start_servers()
        self._wait_ready()
        self.setup_seconds = time.monotonic() - t0

    def _ip(self, ns, lines):
        argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
        p = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=WAIT)
        if p.returncode != 0:
            raise RuntimeError(f"ip {ns or ''} -batch: {p.stderr.strip()}")

    def _make_namespaces(self):
        h, u = self.host_ns, self.upstream_ns
        # the veth is made with its ends in the two namespaces: it never
        # exists in the machine's own
        self._ip(None, [f"netns add {h}", f"netns add {u}",
                        f"link add {HOST_DEV} netns {h} type veth peer name {UP_DEV} netns {u}"])
        self.inodes = {h: ns_inode(f"/run/netns/{h}"), u: ns_inode(f"/run/netns/{u}")}
        self.set_sysctl(h, {"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/accept_dad": "0",
                            f"net/ipv6/conf/{HOST_DEV}/accept_dad": "0"})
        # the router forwards, so that a packet it has no route for gets an
        # ICMP unreachable at once rather than silence
        self.set_sysctl(u, {"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1",
                            "net/ipv6/conf/all/accept_dad": "0", f"net/ipv6/conf/{UP_DEV}/accept_dad": "0"})
        self._ip(h, ["link set lo up", f"link set {HOST_DEV} up",
                     f"addr add {HOST_ADDR}/24 dev {HOST_DEV}", f"addr add {HOST_ADDR6}/64 dev {HOST_DEV} nodad",
                     f"route add default via {ROUTER}", f"route add default via {ROUTER6}"])
        local = [a for _, a in HTTP_SERVERS] + [DNS]
        self._ip(u, ["link set lo up", f"link set {UP_DEV} up",
                     f"addr add {ROUTER}/24 dev {UP_DEV}", f"addr add {ROUTER6}/64 dev {UP_DEV} nodad"] +
                 [f"addr add {a}/{128 if ':' in a else 32} dev lo" for a in local])
        rules = os.path.join(self.work, "upstream.nft")
        _write(rules, "\n".join([
            "table inet netenv {",
            "  counter stray4 { }",
            "  counter stray6 { }",
            f"  set fake4 {{ type ipv4_addr; flags interval; elements = {{ {', '.join(FAKE4)} }} }}",
            f"  set fake6 {{ type ipv6_addr; flags interval; elements = {{ {', '.join(FAKE6)} }} }}",
            "  chain pre {",
            "    type filter hook prerouting priority -300; policy accept;",
            '    ip daddr != @fake4 counter name "stray4"',
            '    ip6 daddr != @fake6 counter name "stray6"',
            "  }",
            "}", ""]))
        self.upstream_run(["nft", "-f", rules], check=True)

    def set_sysctl(self, ns, values):
        def put():
            for k, v in values.items():
                _write(f"/proc/sys/{k}", v)
        in_netns(ns, put)

    def _write_etc(self):
        for attempt in range(3):  # another harness may remove an empty /etc/netns meanwhile
            try:
                os.makedirs(self.etc, exist_ok=True)
                _write(os.path.join(self.etc, "resolv.conf"), f"nameserver {DNS}\n")
                _write(os.path.join(self.etc, "hosts"), "127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def _make_trees(self):
        def tree(name, files):
            root = os.path.join(self.work, "www", name)
            for path, data in files.items():
                p = os.path.join(root, path.lstrip("/"))
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data if isinstance(data, bytes) else data.encode())
            return root

        pkgs = ["alpha", "beta"]
        www = {"/index.html": f"{WWW_NAME}\n",
               "/simple/index.html": "".join(f'<a href="{p}/">{p}</a>\n' for p in pkgs),
               "/files/small.txt": "hello from the fake internet\n",
               BLOB: blob_bytes()}
        for p in pkgs:
            www[f"/simple/{p}/index.html"] = f'<a href="../../files/{p}-1.0.tar.gz">{p}-1.0.tar.gz</a>\n'
            www[f"/files/{p}-1.0.tar.gz"] = hashlib.sha256(p.encode()).digest() * 64
        www[BLOB + ".sha256"] = BLOB_SHA256 + "\n"
        self.roots = {"www": tree("www", www)}
        self.roots["www6"] = self.roots["www"]
        self.roots["other"] = tree("other", {"/index.html": f"{OTHER_NAME}\n"})
        self.roots["wild"] = tree("wild", {"/index.html": f"anything.{WILD_DOMAIN}\n"})
        self.roots["denied"] = tree("denied", {"/index.html": f"{DENIED_NAME}\n"})
        self.roots["metadata"] = tree("metadata", {"/index.html": "metadata\n",
                                                   "/latest/meta-data/instance-id": "i-netenv\n",
                                                   "/latest/meta-data/iam/security-credentials/role":
                                                   '{"SecretAccessKey": "not-a-secret"}\n'})
        self.roots["lan"] = tree("lan", {"/index.html": "lan host\n"})

    def _popen(self, key, ns, argv, **kw):
        """argv in namespace ns, stderr to <work>/<key>.err; a parent-death
        signal makes it die with the harness, even if teardown never runs."""
        err = open(os.path.join(self.work, f"{key}.err"), "wb")
        try:
            self.procs[key] = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "nsenter", f"--net=/run/netns/{ns}",
                                                "--", *argv], env=clean_env(), stderr=err, **kw)
        finally:
            err.close()

    def _start_dns(self):
        self.dns_log_path = os.path.join(self.work, "dns.log")
        conf = os.path.join(self.work, "dnsmasq.conf")
        lines = ["no-resolv", "no-hosts", "no-poll", "bind-interfaces", f"listen-address={DNS}",
                 # root, so that no change of ids clears the parent-death signal
                 "user=root", "group=root", "pid-file=", "log-queries", f"log-facility={self.dns_log_path}",
                 "local=/test/", f"address=/{WILD_DOMAIN}/{WILD}",
                 f"host-record={WWW_NAME},{WWW},{WWW6}"]
        lines += [f"host-record={n},{a}" for n, a in NAMES.items() if n != WWW_NAME]
        _write(conf, "\n".join(lines) + "\n")
        self._popen("dnsmasq", self.upstream_ns, ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def _start_servers(self):
        self.access_log_path = os.path.join(self.work, "access.log")
        open(self.access_log_path, "w").close()
        cfg = {"log": self.access_log_path,
               "http": [{"name": n, "addr": a, "port": 80, "root": self.roots[n]} for n, a in HTTP_SERVERS],
               "echo": [{"addr": WWW, "port": ECHO_PORT}],
               "accept": [{"addr": WWW, "port": ACCEPT_PORT}]}
        path = os.path.join(self.work, "servers.json")
        _write(path, json.dumps(cfg))
        self._popen("servers", self.upstream_ns, ["/usr/bin/python3", SERVERS, path],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _wait_ready(self):
        """The servers said ready, DNS answers, and every HTTP server
        accepts a connection from the host namespace (through the router)."""
        p = self.procs["servers"]
        deadline = time.monotonic() + WAIT
        buf = b""
        while b"ready\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or p.poll() is not None:
                raise RuntimeError("netenv servers did not start: " + self._err("servers"))
            r, _, _ = select.select([p.stdout], [], [], min(left, 0.2))
            if r:
                chunk = os.read(p.stdout.fileno(), 64)
                if not chunk:
                    raise RuntimeError("netenv servers exited: " + self._err("servers"))
                buf += chunk
        while True:
            if self.procs["dnsmasq"].poll() is not None:
                raise RuntimeError("dnsmasq exited: " + self._err("dnsmasq"))
            try:
                if self.dns_query(WWW_NAME, timeout=0.2) == ("NOERROR", [WWW]):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the fake DNS server does not answer: " + self._err("dnsmasq"))
            time.sleep(0.02)
        for _, addr in HTTP_SERVERS:
            s = self.host_socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
            s.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                s.connect((addr, 80))
            finally:
                s.close()

    def _err(self, key):
        try:
            with open(os.path.join(self.work, f"{key}.err"), "rb") as f:
                return f.read().decode(errors="replace")[-2000:]
        except OSError:
            return "(no stderr)"

    def close(self):
        """Removes everything, whatever state start() reached; idempotent."""
        if self.closed:
            return
        self.closed = True
        for r in self.runners:
            try:
                self._remove_sandboxes(r)
            except Exception as e:  # the rest of the teardown runs anyway
                self.forced.append(f"removing the sandboxes of {r.root}: {e!r}")
        for key, p in self.procs.items():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
            for f in (p.stdin, p.stdout):
                if f:
                    f.close()
        for pid, where in self.processes_inside():
            # the resolvers of capsa's networks live as long as the
            # namespace they serve: its end is theirs, no leftover of a test
            if not capsa_network_resolver(pid):
                self.forced.append(f"process {pid} ({cmdline(pid)}) still in {where}: killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.host_ns in self.inodes:
            shutil.rmtree(f"/run/capsa-net/{self.inodes[self.host_ns]}", ignore_errors=True)
        for ns in (self.host_ns, self.upstream_ns):
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=WAIT)
        # /etc/netns itself stays: iproute2's directory, which another
        # harness may be filling at this very moment
        shutil.rmtree(self.etc, ignore_errors=True)
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)

    def _remove_sandboxes(self, runner):
        """capsa rm -f the runner's sandboxes whose supervisor runs in the
        host namespace; each one is reported as a leftover."""
        p = runner.run("ps", "--json", timeout=60)
        if p.returncode != 0:
            return
        for s in json.loads(p.out or "[]"):
            i = runner.run("inspect", s["id"], timeout=60)
            if i.returncode != 0:
                continue
            pid = json.loads(i.out).get("supervisorPid")
            if pid and self.namespace_of(pid):
                runner.run("rm", "-f", s["id"], timeout=60)
                self.forced.append(f"sandbox {s['name']} still running in {self.host_ns}: removed")

    # --- leftovers --------------------------------------------------------------
    def namespace_of(self, pid):
        """The name of our namespace that process pid is in, or None."""
        try:
            ino = ns_inode(f"/proc/{pid}/ns/net")
        except OSError:
            return None
        for ns, i in self.inodes.items():
            if i == ino:
                return ns
        return None

    def processes_inside(self):
        """[(pid, namespace name)] of every process in either namespace."""
        if not self.inodes:
            return []
        return [(pid, w) for pid in _pids() if (w := self.namespace_of(pid))]

    def leftovers(self):
        """What this fake internet still holds on the machine: nothing once
        close() has run (and what close() had to force, it reports)."""
        found = list(self.forced)
        for ns in (self.host_ns, self.upstream_ns):
            if os.path.exists(f"/run/netns/{ns}"):
                found.append(f"namespace {ns}")
        for pid, where in self.processes_inside():
            found.append(f"process {pid} ({cmdline(pid)}) in {where}")
        for key, p in self.procs.items():
            if p.poll() is None:
                found.append(f"server {key} (pid {p.pid}) running")
        if os.path.exists(self.etc):
            found.append(self.etc)
        if self.work and os.path.exists(self.work):
            found.append(self.work)
        return found

    def assert_clean(self):
        left = self.leftovers()
        assert not left, "fake internet left behind: " + "; ".join(left)

    # --- running things in the namespaces -------------------------------------
    def ns_argv(self, ns, argv):
        return ["/bin/sh", NETNS_EXEC, ns, *map(str, argv)]

    def host_argv(self, argv):
        """argv run in the host namespace, as `ip netns exec` would (with
        /etc/resolv.conf naming the fake DNS) but with the machine's cgroups."""
        return self.ns_argv(self.host_ns, argv)

    def ns_exec(self, ns, argv, timeout=30, check=False, input=None, env=None):
        p = subprocess.run(self.ns_argv(ns, argv), capture_output=True, timeout=timeout, input=input,
                           env=clean_env(env))
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} in {ns}: exit {p.returncode}: {p.err}")
        return p

    def host_run(self, argv, **kw):
        return self.ns_exec(self.host_ns, argv, **kw)

    def upstream_run(self, argv, **kw):
        return self.ns_exec(self.upstream_ns, argv, **kw)

    def in_host(self, fn, *args):
        """fn(*args) in a thread of ours in the host namespace (in_netns)."""
        return in_netns(self.host_ns, fn, *args)

    def in_upstream(self, fn, *args):
        return in_netns(self.upstream_ns, fn, *args)

    def host_socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket of the host namespace (made by a thread that joined it)."""
        return in_netns(self.host_ns, socket.socket, family, type)

    def capsa(self, root, run_root):
        """A conftest.Capsa for this store whose commands run in the host
        namespace; teardown removes the sandboxes it left running there."""
        r = NetCapsa(self, root, run_root)
        self.runners.append(r)
        return r

    # --- probes from the host namespace ------------------------------------------
    def dns_query(self, name, qtype="A", server=DNS, port=53, timeout=2.0):
        """(rcode name, [addresses]) for one question to server, asked from
        the host namespace."""
        s = self.host_socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(timeout)
            qid = secrets.randbelow(65536)
            s.sendto(dns_packet(name, qtype, qid), (server, port))
            deadline = time.monotonic() + timeout
            while True:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                msg, _ = s.recvfrom(4096)
                try:
                    rcode, addrs = dns_parse(msg, qid, qtype)
                except (ValueError, struct.error, IndexError):
                    continue
                return RCODES.get(rcode, str(rcode)), addrs
        finally:
            s.close()

    def http_get(self, addr, path="/", host=None, port=80, timeout=10.0):
        """(status, body) of GET path from addr, from the host namespace."""
        s = self.host_socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        try:
            s.settimeout(timeout)
            s.connect((addr, port))
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host or addr}\r\n\r\n".encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split()[1:2]
        if not status or not status[0].isdigit():
            raise OSError(f"no HTTP answer from {addr}:{port}: {data[:100]!r}")
        return int(status[0]), body

    # --- what the servers saw --------------------------------------------------------
    def log_mark(self):
        """A position in the logs: access_log(since=) and dns_queries(since=)
        then return only what came after it."""
        return (os.path.getsize(self.access_log_path), os.path.getsize(self.dns_log_path))

    def access_log(self, since=None, **match):
        """The access log's entries (dicts: server, proto, addr, port,
        client, and for HTTP method, path, host), those equal to match only."""
        with open(self.access_log_path, "rb") as f:
            f.seek(since[0] if since else 0)
            data = f.read()
        data = data[:data.rfind(b"\n") + 1]  # whole lines: a server may be writing one
        recs = [json.loads(line) for line in data.splitlines() if line.strip()]
        return [r for r in recs if all(r.get(k) == v for k, v in match.items())]

    def dns_queries(self, since=None):
        """[(type, name, client)] of every DNS question dnsmasq logged."""
        with open(self.dns_log_path, "rb") as f:
            f.seek(since[1] if since else 0)
            text = f.read().decode(errors="replace")
        return re.findall(r"query\[(\w+)\] (\S+) from (\S+)", text)

    def wait_for(self, probe, timeout=5.0):
        """probe()'s first true value, polled until timeout (then its last)."""
        deadline = time.monotonic() + timeout
        while True:
            v = probe()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(0.02)

    # --- isolation ---------------------------------------------------------------------
    def _ipj(self, ns, *args):
        p = subprocess.run(["ip", "-j", "-d", "-n", ns, *args], capture_output=True, text=True, timeout=WAIT)
        if p.returncode != 0:
            raise RuntimeError(f"ip -n {ns} {' '.join(args)}: {p.stderr.strip()}")
        return json.loads(p.stdout or "[]")

    def isolation_problems(self):
        """Why a packet could leave the two namespaces: [] when each holds
        only lo and its end of the veth whose other end is in the other one,
        and the upstream namespace has no default route (so no interface of
        the machine and no route to one is reachable)."""
        bad = []
        pair = {self.host_ns: (HOST_DEV, self.upstream_ns), self.upstream_ns: (UP_DEV, self.host_ns)}
        for ns, (dev, peer) in pair.items():
            ids = {e["nsid"]: e.get("name") for e in self._ipj(ns, "netns", "list-id")}
            for link in self._ipj(ns, "link", "show"):
                name = link["ifname"]
                if name == "lo":
                    continue
                kind = link.get("linkinfo", {}).get("info_kind")
                where = ids.get(link.get("link_netnsid"))
                if name != dev or kind != "veth" or where != peer:
                    bad.append(f"{ns}: interface {name} ({kind}, peer in {where})")
        for fam in ("-4", "-6"):
            for r in self._ipj(self.upstream_ns, fam, "route", "show", "default"):
                bad.append(f"{self.upstream_ns}: default route {r}")
        return bad

    def assert_isolated(self):
        bad = self.isolation_problems()
        assert not bad, "the fake internet could reach the machine's network: " + "; ".join(bad)

    def packets_to_real_network(self):
        """Packets that reached the upstream router for an address outside
        the fake internet: on a real machine they would have left it.  Here
        they go nowhere (the router has no route out) and are counted."""
        p = self.upstream_run(["nft", "-j", "list", "counters", "table", "inet", "netenv"], check=True)
        n = 0
        for item in json.loads(p.out)["nftables"]:
            if "counter" in item:
                n += item["counter"]["packets"]
        return n


class NetCapsa(Capsa):
    """conftest.Capsa with its commands run in the fake internet's host
    namespace.  Its leftover checks also look at the mount namespaces of
    processes in that namespace (each command gets one of its own)."""

    def __init__(self, net, root, run_root):
        super().__init__(root, run_root)
        self.net = net
        self.env = clean_env(self.env)
        # in the fake internet capsa's own default applies (bridge): the
        # rest of the suite asks for loopback only (conftest)
        self.env.pop("CAPSA_DEFAULT_NETWORK", None)
        self.label = f"capsa (in {net.host_ns})"

    def argv(self, *args):
        return self.net.host_argv([capsa_bin(), *map(str, args)])

    def leftovers(self):
        found = super().leftovers()
        own = os.stat("/proc/self/ns/mnt").st_ino
        seen = {own}
        for pid, _ in self.net.processes_inside():
            try:
                mnt = os.stat(f"/proc/{pid}/ns/mnt").st_ino
                if mnt in seen:
                    continue
                seen.add(mnt)
                with open(f"/proc/{pid}/mountinfo") as f:
                    for line in f:
                        point = line.split()[4]
                        if self.root in point or self.run_root in point:
                            found.append(f"mount {point} (mount namespace of pid {pid})")
            except OSError:
                continue
        return found


@pytest.fixture(scope="module")
def fake_internet():
    """One fake internet for the tests of a module; it must leave nothing."""
    with FakeInternet() as fi:
        yield fi
    fi.assert_clean()
