"""capsa serve: connections before they show the token (the header deadline,
the caps on unauthenticated connections per peer and overall), keep-alive
after a good and a bad token, and what the server leaves on disk and prints
(its unix socket, the token file's path, --help).

Slow clients here are raw sockets from loopback addresses (127.0.0.1,
127.0.0.2, ...); every loop is bounded in count and in time."""
import os
import re
import signal
import socket
import threading
import time

import pytest

from serve_env import Serve


def slow_conn(port, src="127.0.0.1"):
    """A connection that sent a request line and no more: unauthenticated."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /v1/version HTTP/1.1\r\n")
    return s


def closed_by_server(s, timeout):
    """True once the server closed s (EOF or reset), False if it is still
    open after timeout seconds.  Any bytes the server sends first are read
    and dropped."""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                if not s.recv(4096):
                    return True
            except socket.timeout:
                return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def read_response(s):
    """One HTTP response from a raw socket: (status, body), or (None, b"")
    when the server closed the connection first."""
    s.settimeout(30)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None, b""
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            break
        body += d
    return status, body


def finish(s, token, close=True):
    """Completes the request that slow_conn began, with the token."""
    s.sendall(b"Host: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n" +
              (b"Connection: close\r\n" if close else b"") + b"\r\n")
    return read_response(s)


def metric(srv, name):
    text = srv.get("/metrics", timeout=30).body.decode()
    m = re.search(r"(?m)^" + re.escape(name) + r" (\S+)$", text)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


class Dribbler:
    """Sends one header byte to every socket each second (the slowloris of
    issue 12), at most max_rounds times, until stopped."""

    def __init__(self, socks, max_rounds=90):
        self.socks = socks
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, args=(max_rounds,), daemon=True)
        self.t.start()

    def _run(self, max_rounds):
        for _ in range(max_rounds):
            if self.stop_ev.wait(1.0):
                return
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    def stop(self):
        self.stop_ev.set()
        self.t.join(10)


def test_slow_headers_do_not_lock_out_the_token_holder(capsa):
    # The outside test's attack, scaled down: more dribbling connections than
    # --max-connections, from six peers, each byte restarting the idle
    # timer.  Only flags that predate the guard: the defaults must protect.
    s = Serve(capsa, "--max-connections", "40", "--conn-timeout", "20s")
    slow = []
    drip = None
    try:
        slow = [slow_conn(s.port, f"127.0.0.{2 + i % 6}") for i in range(60)]
        drip = Dribbler(slow)
        # the token holder and the unix socket are served while they dribble
        r = s.get("/v1/version", timeout=30)
        assert r.status == 200, r
        assert s.get("/v1/version", unix=True, timeout=30).status == 200
        # every slow connection is closed: the oldest to make room, the
        # rest at the header deadline (10 s) however they dribble
        end = time.monotonic() + 60
        still_open = [c for c in slow if not closed_by_server(c, max(0.1, end - time.monotonic()))]
        assert not still_open, f"{len(still_open)} slow connections still open"
        assert metric(s, 'capsa_http_unauthenticated_closed_total{reason="limit"}') >= 1
        assert metric(s, 'capsa_http_unauthenticated_closed_total{reason="header_timeout"}') >= 1
        assert metric(s, "capsa_http_unauthenticated_connections") == 0
    finally:
        if drip:
            drip.stop()
        for c in slow:
            c.close()
        s.stop()


def test_unauthenticated_caps_close_the_oldest(capsa):
    s = Serve(capsa, "--max-unauth", "8", "--max-unauth-per-peer", "3", "--header-timeout", "5m")
    conns = []
    try:
        # one peer over its cap of 3: its two oldest are closed
        a = [slow_conn(s.port, "127.0.0.1") for _ in range(5)]
        conns += a
        assert closed_by_server(a[0], 30) and closed_by_server(a[1], 30)
        # other peers are not limited by that one; over the overall cap of 8,
        # the oldest unauthenticated connection of any peer is closed (a[2])
        b = [slow_conn(s.port, "127.0.0.2") for _ in range(3)]
        c = [slow_conn(s.port, "127.0.0.3") for _ in range(3)]
        conns += b + c
        assert closed_by_server(a[2], 30)
        # the others were kept: their requests complete
        for k in a[3:] + b + c:
            assert finish(k, s.token)[0] == 200
        assert metric(s, 'capsa_http_unauthenticated_closed_total{reason="peer_limit"}') == 2
        assert metric(s, 'capsa_http_unauthenticated_closed_total{reason="limit"}') == 1
        assert metric(s, 'capsa_http_unauthenticated_closed_total{reason="header_timeout"}') == 0
    finally:
        for k in conns:
            k.close()
        s.stop()


def test_keep_alive_after_a_good_token_and_close_after_a_bad_one(capsa):
    s = Serve(capsa, "--header-timeout", "2s", "--conn-timeout", "60s")
    socks = []
    try:
        good = slow_conn(s.port)
        socks.append(good)
        assert finish(good, s.token, close=False)[0] == 200
        late = slow_conn(s.port)
        socks.append(late)
        # late, accepted after good, passes its header deadline ...
        assert closed_by_server(late, 30)
        # ... and good, authenticated, keeps its connection past that deadline
        good.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + s.token.encode() +
                     b"\r\n\r\n")
        assert read_response(good)[0] == 200
        # a bad token is answered 401 and the connection closed, even on a
        # connection that showed the right token before
        for k in (good, socket.create_connection(("127.0.0.1", s.port), timeout=30)):
            socks.append(k)
            k.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n")
            status, body = read_response(k)
            assert status == 401, body
            assert closed_by_server(k, 30)
    finally:
        for k in socks:
            k.close()
        s.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_socket_removed_on_exit_and_token_path_printed(capsa, sig):
    s = Serve(capsa)
    assert os.path.exists(s.sock)
    s.proc.send_signal(sig)
    s.proc.wait(timeout=60)
    err = s.stop()
    assert not os.path.exists(s.sock), "capsa serve left its socket behind"
    assert f"capsa serve: API token in {os.path.join(capsa.root, 'api-token')}" in err, err


def test_socket_of_another_server_is_left_alone(capsa):
    s = Serve(capsa, tcp=False)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # someone replaced the path while the server ran: not ours to remove
        os.unlink(s.sock)
        other.bind(s.sock)
        ino = os.stat(s.sock).st_ino
        err = s.stop()
        assert os.path.exists(s.sock) and os.stat(s.sock).st_ino == ino
        assert "API token in" not in err  # no TCP: no token in use
    finally:
        other.close()
        if os.path.exists(s.sock):
            os.unlink(s.sock)


def test_help_names_the_store_root_rather_than_a_fixed_path(capsa):
    out = capsa.ok("serve", "--help")
    assert "cat /var/lib/capsa/api-token" not in out
    assert "CAPSA_ROOT" in out and "~/.local/share/capsa" in out
    for flag in ("--header-timeout", "--max-unauth", "--max-unauth-per-peer"):
        assert flag in out
