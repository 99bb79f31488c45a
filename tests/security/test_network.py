"""Escape battery, part 4: the network.  A sandbox has its own network
namespace with loopback only: raw sockets and packet capture see nothing of
the host, and host services on 127.0.0.1 are out of reach."""
import socket
import threading

import pytest

from battery import assert_denied, verdict


@pytest.fixture
def host_listener():
    """A TCP listener on the host's 127.0.0.1 that counts connections."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                c, _ = s.accept()
                accepted.append(c)
            except OSError:
                pass
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield s.getsockname()[1], accepted
    stop.set()
    t.join()
    s.close()
    for c in accepted:
        c.close()


def host_addresses():
    """The host's non-loopback IPv4 addresses."""
    out = []
    with open("/proc/net/fib_trie") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if "/32 host LOCAL" in line and i > 0:
            a = lines[i - 1].split()[-1]
            if not a.startswith("127.") and a not in out:
                out.append(a)
    return out


def test_host_loopback_service_unreachable(attempt, host_listener):
    port, accepted = host_listener
    v = assert_denied(attempt("connect", port))
    assert v in ("denied ECONNREFUSED", "denied ENETUNREACH", "denied EPERM"), v
    assert accepted == []


def test_host_addresses_unreachable(attempt, host_listener):
    port, accepted = host_listener
    for a in host_addresses() or ["10.0.2.15"]:
        assert_denied(attempt("connect", port, a), a)
    assert accepted == []


def test_packet_capture_sees_only_loopback(attempt):
    """CAP_NET_RAW is in the default set: a capture socket may open, but in
    the sandbox's own network namespace, whose only interface is lo."""
    out = attempt("packet_ifaces")
    ifaces = [line.split()[1] for line in out.splitlines() if line.startswith("iface ")]
    assert ifaces == ["lo"], out
    assert verdict(out) in ("ok", "denied EPERM", "denied EACCES")


def test_raw_inet_socket_confined(attempt, store, box):
    out = attempt("raw_inet")
    assert verdict(out) in ("ok", "denied EPERM", "denied EACCES")
    routes = store.ok("exec", box, "cat", "/proc/net/route").splitlines()
    assert len(routes) <= 1, routes  # header only: nowhere to send to
