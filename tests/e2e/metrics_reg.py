"""A reader of the metrics registry (<run-root>/metrics, docs/metrics.md),
independent of the C one, for the tests: the layout and the liveness rule
(a slot is live while its OWN lock byte is held) are checked from outside.
"""
import fcntl
import os
import struct

HEADER_WORDS = ["magic", "version", "header_size", "slot_size", "slot_count", "hwm", "created_ms"]
VALUES = ["supervisor_pid", "started_ms", "sample_mono_ns", "sample_ms", "samples", "cpu_usage_ns", "cpu_rate",
          "mem_usage", "mem_cache", "mem_limit", "mem_peak", "pids", "pids_limit", "io_read", "io_write",
          "net_rx", "net_tx", "disk_used", "disk_limit", "inodes_used", "inodes_limit", "oom_kills"]
MS_VALUES = 14
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)


def _held(fd, off):
    fl = struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, off, 1, 0)
    res = fcntl.fcntl(fd, F_OFD_GETLK, fl)
    return struct.unpack("hhqqi4x", res)[0] != fcntl.F_UNLCK


def read(run_root):
    """{'header': {...}, 'slots': [{'slot', 'seq', 'generation', 'state', 'id', 'locked', values...}]}
    or None when there is no registry."""
    path = os.path.join(run_root, "metrics")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        h = dict(zip(HEADER_WORDS, struct.unpack_from("=8s6Q", data, 0)))
        assert h["magic"] == b"CAPSAMET", h
        slots = []
        for i in range(min(h["hwm"], h["slot_count"])):
            off = h["header_size"] + i * h["slot_size"]
            w = struct.unpack_from(f"={h['slot_size'] // 8}Q", data, off)
            s = {"slot": i, "seq": w[0], "generation": w[1], "state": w[2], "flags": w[3],
                 "id": data[off + 40:off + 40 + 72].split(b"\0")[0].decode(), "locked": _held(fd, off)}
            s.update(zip(VALUES, w[MS_VALUES:MS_VALUES + len(VALUES)]))
            slots.append(s)
        return {"header": h, "slots": slots}
    finally:
        os.close(fd)


def live_slots(run_root):
    """Slots that say live and whose owner still holds the lock."""
    r = read(run_root)
    return [s for s in (r["slots"] if r else []) if s["state"] == 1 and s["locked"]]


def slot_of(run_root, sandbox_id):
    r = read(run_root)
    for s in (r["slots"] if r else []):
        if s["id"] == sandbox_id and s["state"] == 1:
            return s
    return None
