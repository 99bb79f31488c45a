"""Building OCI layouts, oci-archives, docker-archives and (hostile) layer
tars for the image tests.  Stdlib only, plus the zstd command for zstd."""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

EPOCH = 1700000000


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def compress(raw, how):
    if how is None:
        return raw
    if how == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
            g.write(raw)
        return buf.getvalue()
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
    raise ValueError(how)


MEDIA = {None: "application/vnd.oci.image.layer.v1.tar",
         "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def layer(*entries):
    """entries: ("f", name, data[, mode]) ("d", name[, mode]) ("l", name, target)
    ("h", name, target) ("c", name, major, minor) ("p", name) -> tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            kind, name = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = EPOCH
            data = None
            if kind == "f":
                data = e[2] if isinstance(e[2], bytes) else e[2].encode()
                ti.size = len(data)
                ti.mode = e[3] if len(e) > 3 else 0o644
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
                ti.mode = e[2] if len(e) > 2 else 0o755
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e[2]
            elif kind == "h":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e[2]
            elif kind == "c":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = e[2], e[3]
            elif kind == "p":
                ti.type = tarfile.FIFOTYPE
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def raw_header(name, size_field, typeflag=b"0"):
    """A ustar header with a verbatim 12-byte size field (for lying sizes)."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field
    h[136:148] = b"%011o\0" % EPOCH
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:155] = b"%06o\0" % sum(h)
    return bytes(h)


def config_for(layers_raw, cmd=("sh",), arch="amd64", os_="linux", extra=None):
    c = {"architecture": arch, "os": os_,
         "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/bin:/bin"]},
         "rootfs": {"type": "layers", "diff_ids": [sha256(r) for r in layers_raw]}}
    if extra:
        c.update(extra)
    return canonical(c)


class Layout:
    """An OCI image layout being built in memory."""

    def __init__(self):
        self.blobs = {}
        self.index = []

    def blob(self, b):
        d = sha256(b)
        self.blobs[d] = b
        return d

    def image(self, layers_raw, comp="gzip", config=None, arch="amd64", ref=None, platform=False,
              manifest_override=None, layer_blobs=None):
        """Adds an image; returns (manifest descriptor, config digest)."""
        cfg = config if config is not None else config_for(layers_raw, arch=arch)
        descs = []
        for i, raw in enumerate(layers_raw):
            c = comp[i] if isinstance(comp, (list, tuple)) else comp
            blob = layer_blobs[i] if layer_blobs else compress(raw, c)
            descs.append({"mediaType": MEDIA[c], "digest": self.blob(blob), "size": len(blob)})
        m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": self.blob(cfg), "size": len(cfg)},
             "layers": descs}
        r = manifest_override(m) if manifest_override else None
        mb = r if isinstance(r, bytes) else canonical(m)
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": self.blob(mb),
                "size": len(mb)}
        if platform:
            desc["platform"] = {"os": "linux", "architecture": arch}
        if ref:
            desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
        return desc, sha256(cfg)

    def raw_manifest(self, mb, ref=None):
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": self.blob(mb),
                "size": len(mb)}
        self.index.append(desc)
        return desc

    def nested_index(self, descs, ref=None):
        idx = canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": descs})
        desc = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": self.blob(idx),
                "size": len(idx)}
        if ref:
            desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
        return desc

    def files(self):
        out = {"oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
               "index.json": canonical({"schemaVersion": 2, "manifests": self.index})}
        for d, b in self.blobs.items():
            out["blobs/sha256/" + d[7:]] = b
        return out

    def write_dir(self, path):
        for name, b in self.files().items():
            p = os.path.join(path, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(b)
        return path

    def write_archive(self, path):
        write_tar(path, self.files())
        return path


def write_tar(path, files, links=None):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(files):
            ti = tarfile.TarInfo(name)
            ti.size = len(files[name])
            ti.mtime = EPOCH
            t.addfile(ti, io.BytesIO(files[name]))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            t.addfile(ti)


def docker_archive(path, images):
    """images: list of (layers_raw, repo_tags).  Legacy layout: <id>/layer.tar,
    <config hex>.json, manifest.json; a layer shared by two images is stored
    once and linked by a symlink, as docker save does."""
    files, links, manifest, seen = {}, {}, [], {}
    for layers_raw, tags in images:
        cfg = config_for(layers_raw)
        cname = sha256(cfg)[7:] + ".json"
        files[cname] = cfg
        lnames = []
        for raw in layers_raw:
            lid = hashlib.sha256(raw + b"id").hexdigest()
            name = lid + "/layer.tar"
            d = sha256(raw)
            if d in seen and seen[d] != name:
                links[name] = "../" + seen[d]
            elif d not in seen:
                files[name] = raw
                seen[d] = name
            lnames.append(name)
        manifest.append({"Config": cname, "RepoTags": tags, "Layers": lnames})
    files["manifest.json"] = json.dumps(manifest).encode()
    write_tar(path, files, links)
    return path
