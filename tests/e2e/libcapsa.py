"""ctypes bindings for the parts of libcapsa the end-to-end tests drive
directly: the asynchronous process sessions (capsa/session.h) and tunnels
(capsa/tunnel.h), as capsa serve uses them."""
import ctypes
import json
import os
import select
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_bool, c_char, c_char_p, c_int, c_int64, c_size_t,
                    c_ssize_t, c_uint16, c_uint64, c_void_p)

from conftest import BUILD


class Error(Structure):
    _fields_ = [("code", c_int), ("msg", c_char_p)]


class CtxOpts(Structure):
    _fields_ = [("root", c_char_p), ("run_root", c_char_p)]


class ProcOpts(Structure):
    _fields_ = [("argv", POINTER(c_char_p)), ("env", POINTER(c_char_p)), ("workdir", c_char_p), ("user", c_char_p),
                ("tty", c_bool), ("rows", c_uint16), ("cols", c_uint16), ("stdin_open", c_bool),
                ("timeout_ms", c_int64), ("kill_grace_ms", c_int64), ("tag", c_char_p), ("keep", c_bool),
                ("manual_credit", c_bool)]


class Exit(Structure):
    _fields_ = [("exit_code", c_int), ("signal", c_int), ("reason", c_char * 32), ("message", c_char * 512)]


class ProcRef(Structure):
    _fields_ = [("pid", c_int), ("tag", c_char_p), ("main", c_bool)]


class AttachOpts(Structure):
    _fields_ = [("input", c_bool), ("output", c_bool), ("replay", c_bool), ("manual_credit", c_bool)]


OUTPUT = CFUNCTYPE(None, c_void_p, c_void_p, c_int, c_void_p, c_size_t)
EXIT = CFUNCTYPE(None, c_void_p, c_void_p, POINTER(Exit))
DROPPED = CFUNCTYPE(None, c_void_p, c_void_p, c_uint64)


class Callbacks(Structure):
    _fields_ = [("output", OUTPUT), ("exit", EXIT), ("dropped", DROPPED)]


class CapsaError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def sanitized_build():
    """A libcapsa built with ASan cannot be loaded into a python that was
    not started with the ASan runtime."""
    try:
        with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
            opts = json.load(f)
    except OSError:
        return False
    san = [o["value"] for o in opts if o["name"] == "b_sanitize"]
    return bool(san) and san[0] != "none" and "libasan" not in os.environ.get("LD_PRELOAD", "")


class Lib:
    def __init__(self, capsa):
        if sanitized_build():
            import pytest
            pytest.skip("libcapsa is built with sanitizers; run with LD_PRELOAD=$(gcc -print-file-name=libasan.so)")
        self.l = ctypes.CDLL(os.path.join(BUILD, "libcapsa.so"))
        self.l.capsa_tunnel_open.restype = c_int
        self.l.capsa_proc_write.restype = c_ssize_t
        self.l.capsa_proc_pid.restype = c_int
        self.l.capsa_proc_want_write.restype = c_bool
        self.ctx = c_void_p()
        opts = CtxOpts(capsa.root.encode(), capsa.run_root.encode())
        self.check(self.l.capsa_ctx_open(byref(opts), byref(self.ctx), byref(self.err())))

    def err(self):
        self._err = POINTER(Error)()
        return self._err

    def check(self, rc):
        if rc < 0:
            e = self._err.contents
            code, msg = e.code, e.msg.decode()
            self.l.capsa_error_free(self._err)
            raise CapsaError(code, msg)
        return rc

    def tunnel(self, sandbox, port):
        return self.check(self.l.capsa_tunnel_open(self.ctx, sandbox.encode(), c_uint16(port), byref(self.err())))

    def close(self):
        self.l.capsa_ctx_free(self.ctx)


class Session:
    """One asynchronous process session, driven by a poll loop here."""

    def __init__(self, lib):
        self.lib = lib
        self.out = {1: b"", 2: b""}
        self.eof = set()
        self.exit = None
        self.dropped = 0
        self.p = c_void_p()
        self.cb = Callbacks(OUTPUT(self._output), EXIT(self._exit), DROPPED(self._dropped))

    def _output(self, ud, p, ch, data, n):
        if n == 0:
            self.eof.add(ch)
        else:
            self.out[ch] += ctypes.string_at(data, n)

    def _exit(self, ud, p, e):
        x = e.contents
        self.exit = (x.exit_code, x.reason.decode(), x.message.decode())

    def _dropped(self, ud, p, n):
        self.dropped += n

    def start(self, sandbox, argv, stdin=False, tag=None, keep=False, tty=False, timeout_ms=0):
        arr = (c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
        self._argv = arr
        o = ProcOpts(argv=arr, tty=tty, stdin_open=stdin, tag=tag.encode() if tag else None, keep=keep,
                     timeout_ms=timeout_ms)
        self.lib.check(self.lib.l.capsa_proc_start(self.lib.ctx, sandbox.encode(), byref(o), byref(self.cb), None,
                                                   byref(self.p), byref(self.lib.err())))
        return self

    def attach(self, sandbox, pid=0, tag=None, main=False, input=True, output=True, replay=True):
        ref = ProcRef(pid, tag.encode() if tag else None, main)
        o = AttachOpts(input, output, replay, False)
        self.lib.check(self.lib.l.capsa_proc_attach(self.lib.ctx, sandbox.encode(), byref(ref), byref(o),
                                                    byref(self.cb), None, byref(self.p), byref(self.lib.err())))
        return self

    @property
    def pid(self):
        return self.lib.l.capsa_proc_pid(self.p)

    def write(self, data):
        done = 0
        while done < len(data):
            chunk = data[done:]
            n = self.lib.check(self.lib.l.capsa_proc_write(self.p, chunk, c_size_t(len(chunk)),
                                                           byref(self.lib.err())))
            done += n
            if n == 0:
                self.step(1.0)

    def close_stdin(self):
        self.lib.check(self.lib.l.capsa_proc_close_stdin(self.p, byref(self.lib.err())))

    def signal(self, sig):
        self.lib.check(self.lib.l.capsa_proc_signal(self.p, sig, byref(self.lib.err())))

    def keep(self):
        self.lib.check(self.lib.l.capsa_proc_keep(self.p, byref(self.lib.err())))

    def step(self, timeout):
        fd = self.lib.l.capsa_proc_fd(self.p)
        want_w = self.lib.l.capsa_proc_want_write(self.p)
        select.select([fd], [fd] if want_w else [], [], timeout)
        return self.lib.check(self.lib.l.capsa_proc_process(self.p, byref(self.lib.err())))

    def run(self, timeout=30):
        import time
        deadline = time.time() + timeout
        while self.exit is None and time.time() < deadline:
            self.step(0.5)
        assert self.exit is not None, f"no exit; output so far {self.out}"
        return self.exit

    def free(self):
        if self.p:
            self.lib.l.capsa_proc_free(self.p)
            self.p = c_void_p()
