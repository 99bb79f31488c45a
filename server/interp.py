# capsa's code interpreter: the program capsa serve runs inside a sandbox
# (python3 -u -c <this>) to serve E2B's code-interpreter API (runCode,
# contexts).  It keeps one namespace per context and evaluates cells the way
# a notebook does: the value of the last expression is the cell's result.
#
# Protocol, one JSON object per line: requests on the original stdin,
# replies on the original stdout, every reply carrying the "id" of its
# request.  User code gets /dev/null as stdin, and its stdout and stderr
# (file descriptors 1 and 2, so subprocesses are captured too) are pipes
# read by two threads that forward what arrives as "stdout"/"stderr" messages
# of the request being executed.  Requests are served one at a time.
#
#   {"id", "op": "execute", "code", "context"?, "env"?}
#       -> "started", "stdout"/"stderr"..., "result"?, "error"?,
#          "number_of_executions", "end_of_execution"
#   {"id", "op": "create", "language"?, "cwd"?}  -> "context"
#   {"id", "op": "list"}                          -> "contexts"
#   {"id", "op": "delete"|"restart", "context"}   -> "ok"
#   failures of any request                       -> "failure" {code, message}
#
# SIGINT interrupts the cell being executed (KeyboardInterrupt).
import ast
import base64
import json
import linecache
import os
import sys
import threading
import time
import traceback
import uuid

proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
out_lock = threading.Lock()

devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
os.close(devnull)


def send(obj):
    data = (json.dumps(obj, ensure_ascii=False, default=str) + "\n").encode("utf-8", "replace")
    with out_lock:
        proto_out.write(data)


class Capture:
    """One of fd 1 / fd 2: a pipe whose bytes become messages."""

    def __init__(self, fd, name):
        self.name = name
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        self.r = r
        self.request = None
        self.marker = None
        self.seen = threading.Event()
        self.decoder = None
        t = threading.Thread(target=self.run, daemon=True)
        t.start()

    def emit(self, text):
        if text and self.request is not None:
            send({"id": self.request, "type": self.name, "text": text, "timestamp": time.time_ns() // 1000})

    def run(self):
        import codecs
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = b""
        while True:
            chunk = os.read(self.r, 65536)
            if not chunk:
                return
            pending += chunk
            marker = self.marker
            if marker and marker in pending:
                before, _, after = pending.partition(marker)
                self.emit(self.decoder.decode(before, final=True))
                pending = after
                self.seen.set()
                continue
            # keep a tail that could be the start of a marker
            keep = 0
            if marker:
                for k in range(min(len(marker) - 1, len(pending)), 0, -1):
                    if marker.startswith(pending[-k:]):
                        keep = k
                        break
            head, pending = (pending[:-keep], pending[-keep:]) if keep else (pending, b"")
            self.emit(self.decoder.decode(head))

    def sync(self, fd, request_id):
        """Everything written before this call has been forwarded."""
        self.marker = b"\x00capsa-sync-" + str(request_id).encode() + b"\x00"
        self.seen.clear()
        os.write(fd, self.marker)
        self.seen.wait(5)
        self.marker = None


stdout_cap = Capture(1, "stdout")
stderr_cap = Capture(2, "stderr")
sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)

DEFAULT_CWD = "/home/user" if os.path.isdir("/home/user") else os.getcwd()


class Context:
    def __init__(self, cid, language="python", cwd=None):
        self.id = cid
        self.language = language
        self.cwd = cwd or DEFAULT_CWD
        self.reset()

    def reset(self):
        self.ns = {"__name__": "__main__", "__builtins__": __builtins__}
        self.count = 0

    def info(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}


contexts = {"default": Context("default")}


class Failure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def find(cid):
    ctx = contexts.get(cid or "default")
    if ctx is None:
        raise Failure(404, "context %s not found" % cid)
    return ctx


def representations(value):
    data = {"text": repr(value)}
    for method, key in (("_repr_html_", "html"), ("_repr_markdown_", "markdown"), ("_repr_svg_", "svg"),
                        ("_repr_latex_", "latex"), ("_repr_json_", "json"), ("_repr_javascript_", "javascript"),
                        ("_repr_png_", "png"), ("_repr_jpeg_", "jpeg")):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                got = fn()
            except Exception:
                continue
            if got is None:
                continue
            if isinstance(got, bytes):
                got = base64.b64encode(got).decode()
            data[key] = got
    return data


def user_traceback(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<cell>"]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def execute(rid, req):
    ctx = find(req.get("context"))
    send({"id": rid, "type": "started"})
    code = req.get("code") or ""
    env = req.get("env") or {}
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update({str(k): str(v) for k, v in env.items()})
    stdout_cap.request = stderr_cap.request = rid
    ctx.count += 1
    try:
        os.chdir(ctx.cwd)
    except OSError:
        pass
    try:
        try:
            # tracebacks show the cell's lines
            linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
            tree = ast.parse(code, "<cell>", "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, "<cell>", "exec"), ctx.ns)
            value = eval(compile(last, "<cell>", "eval"), ctx.ns) if last is not None else None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            stdout_cap.sync(1, rid)
            stderr_cap.sync(2, rid)
        if value is not None:
            ctx.ns["_"] = value
            res = representations(value)
            res.update({"id": rid, "type": "result", "is_main_result": True})
            send(res)
    except BaseException as e:  # noqa: B902 - a cell may raise anything, SystemExit too
        send({"id": rid, "type": "error", "name": type(e).__name__, "value": str(e),
              "traceback": user_traceback(e)})
    finally:
        stdout_cap.request = stderr_cap.request = None
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            ctx.cwd = os.getcwd()
        except OSError:
            pass
    send({"id": rid, "type": "number_of_executions", "execution_count": ctx.count})
    send({"id": rid, "type": "end_of_execution"})


def serve(req):
    rid = req.get("id")
    op = req.get("op")
    try:
        if op == "execute":
            execute(rid, req)
        elif op == "create":
            lang = req.get("language") or "python"
            cwd = req.get("cwd") or DEFAULT_CWD
            if not os.path.isdir(cwd):
                raise Failure(400, "cwd %s is not a directory" % cwd)
            ctx = Context(str(uuid.uuid4()), lang, cwd)
            contexts[ctx.id] = ctx
            send({"id": rid, "type": "context", "context": ctx.info()})
        elif op == "list":
            send({"id": rid, "type": "contexts", "contexts": [c.info() for c in contexts.values()]})
        elif op == "delete":
            find(req.get("context"))
            if req.get("context") == "default":
                raise Failure(400, "the default context cannot be removed")
            del contexts[req.get("context")]
            send({"id": rid, "type": "ok"})
        elif op == "restart":
            find(req.get("context")).reset()
            send({"id": rid, "type": "ok"})
        else:
            raise Failure(400, "unknown op %r" % op)
    except Failure as f:
        send({"id": rid, "type": "failure", "code": f.code, "message": f.message})


def main():
    buf = b""
    while True:
        try:
            chunk = proto_in.read(65536)
        except KeyboardInterrupt:
            continue  # an interrupt that came between cells
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                send({"id": None, "type": "failure", "code": 400, "message": "malformed request: %s" % e})
                continue
            try:
                serve(req)
            except KeyboardInterrupt:
                pass


main()
