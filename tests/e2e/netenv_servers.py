#!/usr/bin/python3
"""The fake internet's servers (tests/e2e/netenv.py): one process, run in
the "upstream" network namespace, that serves every address of the fake
internet from a JSON configuration:

  http    HTTP/1.0 from a directory tree, plus /whoami (the client's address
          as the server saw it) and /bytes/N (N zero bytes)
  echo    TCP echo and UDP echo
  accept  TCP: accepts and closes at once (connection rate)

Every HTTP request, TCP connection and UDP datagram is written to the access
log (JSON lines, flushed) BEFORE it is answered, so that a client that got
its answer finds its line there, and a request that never arrived has none.
Prints "ready" once every socket listens.  Binds only the addresses it is
given: it never opens a socket anywhere else.

  netenv_servers.py CONFIG.json
"""
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time

BYTES_MAX = 1 << 34  # /bytes/N: at most 16 GiB
CHUNK = b"\0" * (1 << 20)


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **rec):
        rec["t"] = time.time()
        line = json.dumps(rec, sort_keys=True) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def server_class(base, addr):
    class S(base):
        address_family = family(addr)
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024
    return S


def http_server(log, spec):
    root = spec["root"]
    name = spec["name"]

    class H(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "netenv"
        sys_version = ""

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

        def log_message(self, *a):
            pass

        def record(self, method):
            log.write(server=name, proto="http", addr=spec["addr"], port=spec["port"],
                      client=self.client_address[0], method=method, path=self.path,
                      host=self.headers.get("Host"))

        def reply(self, body, ctype="text/plain"):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return body

        def special(self):
            """The body of /whoami, or True when /bytes/N was sent, or None."""
            if self.path == "/whoami":
                return self.reply((self.client_address[0] + "\n").encode())
            if self.path.startswith("/bytes/") and self.path[7:].isdigit():
                n = min(int(self.path[7:]), BYTES_MAX)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(n))
                self.end_headers()
                if self.command == "GET":
                    view = memoryview(CHUNK)
                    while n > 0:
                        k = min(n, len(CHUNK))
                        self.wfile.write(view[:k])
                        n -= k
                return True
            return None

        def do_GET(self):
            self.record("GET")
            body = self.special()
            if isinstance(body, bytes):
                self.wfile.write(body)
            elif body is None:
                super().do_GET()

        def do_HEAD(self):
            self.record("HEAD")
            if self.special() is None:
                super().do_HEAD()

        def do_POST(self):
            self.record("POST")
            n = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            data = self.rfile.read(n)
            self.wfile.write(self.reply(data, "application/octet-stream"))

    return server_class(http.server.ThreadingHTTPServer, spec["addr"])((spec["addr"], spec["port"]), H)


def tcp_server(log, spec, kind):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            log.write(server=kind, proto="tcp", addr=spec["addr"], port=spec["port"],
                      client=self.client_address[0])
            s = self.request
            try:
                while True:
                    data = s.recv(65536)
                    if not data:
                        return
                    s.sendall(data)
            except OSError:
                pass

    return server_class(socketserver.ThreadingTCPServer, spec["addr"])((spec["addr"], spec["port"]), H)


class AcceptServer:
    """accept() and close(), one thread, and no log line: a connection-rate
    benchmark would be measuring the log."""

    def __init__(self, log, spec):
        self.log = log
        self.spec = spec
        self.sock = socket.socket(family(spec["addr"]), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((spec["addr"], spec["port"]))
        self.sock.listen(4096)

    def serve_forever(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except (ConnectionAbortedError, InterruptedError):
                continue  # a client gone before its turn
            except OSError:
                return
            c.close()


class UDPEcho:
    def __init__(self, log, spec):
        self.log = log
        self.spec = spec
        self.sock = socket.socket(family(spec["addr"]), socket.SOCK_DGRAM)
        self.sock.bind((spec["addr"], spec["port"]))

    def serve_forever(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                return
            self.log.write(server="echo", proto="udp", addr=self.spec["addr"], port=self.spec["port"],
                           client=peer[0])
            try:
                self.sock.sendto(data, peer)
            except OSError:
                pass


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    log = Log(cfg["log"])
    servers = [http_server(log, s) for s in cfg["http"]]
    servers += [tcp_server(log, s, "echo") for s in cfg["echo"]]
    servers += [AcceptServer(log, s) for s in cfg["accept"]]
    servers += [UDPEcho(log, s) for s in cfg["echo"]]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    # until the harness closes our stdin (or dies): then exit at once
    while os.read(0, 4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
