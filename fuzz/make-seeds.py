#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/ (small, deterministic).  Run
again after changing it; the files are checked in."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from ocitools import compress, config_for, layer, raw_header, canonical  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


basic = layer(("d", "bin"), ("f", "bin/sh", "#!", 0o4755), ("l", "bin/ls", "/bin/sh"), ("h", "bin/ln", "bin/sh"),
              ("p", "run/fifo"), ("f", "etc/.wh.motd", ""), ("d", "var"), ("f", "var/.wh..wh..opq", ""),
              ("f", "a/b/c/deep", "x"))
put("tar", "basic.tar", basic)
put("tar", "basic.tar.gz", compress(basic, "gzip"))
put("tar", "basic.tar.zst", compress(basic, "zstd"))
put("tar", "hostile-dotdot.tar", layer(("f", "../x", "x")))
put("tar", "hostile-symlink.tar", layer(("l", "a", "/etc"), ("f", "a/passwd", "x")))
put("tar", "neg-size.tar", raw_header("neg", bytes([0xff] * 12)) + bytes(1024))
put("tar", "empty.tar", bytes(1024))

diff = [config_for([basic])]
put("oci-json", "config.json", diff[0])
put("oci-json", "manifest.json", canonical({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "1" * 64, "size": 9},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "2" * 64,
                "size": 10}]}))
put("oci-json", "index.json", canonical({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "3" * 64,
                   "size": 5, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                   "annotations": {"org.opencontainers.image.ref.name": "x:1"}}]}))
put("oci-json", "full-config.json", json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Entrypoint": ["/init"], "Cmd": ["sh"], "Env": ["A=1"], "WorkingDir": "/", "User": "1:1",
               "StopSignal": "SIGTERM", "ExposedPorts": {"80/tcp": {}}, "Labels": {"k": "v"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "4" * 64]}}))
for i, r in enumerate(["busybox", "localhost:5000/a/b:c", "quay.io/x/y@sha256:" + "5" * 64, "[::1]:80/z",
                       "a__b/c.d-e:TAG_1"]):
    put("ref", f"ref{i}", r)
# oci-config: runtime-spec config.json (spec.json is `capsa-runc spec` output)
put("oci-config", "full.json", json.dumps({
    "ociVersion": "1.1.0", "root": {"path": "rootfs", "readonly": True}, "hostname": "h",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/data", "type": "bind", "source": "vol", "options": ["rbind", "ro", "rslave"]},
               {"destination": "/tmp", "type": "tmpfs", "options": ["nosuid", "mode=1777", "tmpcopyup"]}],
    "process": {"terminal": True, "consoleSize": {"height": 30, "width": 100},
                "user": {"uid": 1000, "gid": 100, "umask": 18, "additionalGids": [5]},
                "args": ["sh", "-c", "x"], "env": ["PATH=/bin"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
                "noNewPrivileges": True, "oomScoreAdj": 10},
    "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}]},
    "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "user"},
                             {"type": "network", "path": "/proc/1/ns/net"}],
              "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
              "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
              "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
              "resources": {"devices": [{"allow": False, "access": "rwm"}],
                            "memory": {"limit": 1048576}, "cpu": {"quota": 5000, "period": 100000},
                            "pids": {"limit": 5}},
              "cgroupsPath": "/a/b", "sysctl": {"kernel.shmmax": "100"},
              "seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]},
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "rootfsPropagation": "rslave"},
    "annotations": {"k": "v"}}))
put("oci-config", "process.json", json.dumps({"args": ["ls"], "cwd": "/", "terminal": True, "env": ["A=1"]}))
put("oci-config", "resources.json", json.dumps({"memory": {"limit": 100000}, "pids": {"limit": 3},
                                                 "cpu": {"cpus": "0"}}))

# the tar extractor of capsa cp (lib/util/untar.c)
put("untar", "basic.tar", basic)
put("untar", "hostile-dotdot.tar", layer(("f", "../x", "x")))
put("untar", "hostile-symlink.tar", layer(("l", "a", "/etc"), ("f", "a/passwd", "x")))
put("untar", "empty.tar", bytes(1024))

# the protocol's payload decoders (first byte: which one)
def tlv(tag, val):
    return tag.to_bytes(2, "big") + len(val).to_bytes(4, "big") + val


def u64(v):
    return v.to_bytes(8, "big")


T_ARG, T_TAG, T_KEEP, T_OP, T_PATH, T_PATH2, T_FLAGS, T_PORT, T_HOST_IP, T_HOST_PORT = 20, 150, 151, 158, 159, 160, 162, 176, 177, 178
put("proto-msg", "proc", bytes([0]) + tlv(T_ARG, b"sh") + tlv(T_ARG, b"-c") + tlv(T_TAG, b"job") + tlv(T_KEEP, b""))
put("proto-msg", "fileop", bytes([3]) + tlv(T_OP, u64(7)) + tlv(T_PATH, b"/a") + tlv(T_PATH2, b"/b") +
    tlv(T_FLAGS, u64(4)))
put("proto-msg", "port", bytes([6]) + tlv(T_HOST_IP, b"127.0.0.1") + tlv(T_HOST_PORT, u64(8080)) + tlv(T_PORT, u64(80)))
