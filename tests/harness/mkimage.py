#!/usr/bin/env python3
"""Build an OCI image layout from a JSON spec, without root.

    mkimage.py SPEC.json OUTDIR [--tag TAG] [--expect FILE]

The layers are written with Python's tarfile, so a test can craft any layer
(owners, setuid bits, device nodes, whiteouts, xattrs) as an ordinary user.
Output is deterministic: the same spec gives the same bytes and digests.

Spec (an image):
  {"architecture": "amd64", "os": "linux", "variant": null,
   "config": {"Env": [...], "Cmd": [...], "Entrypoint": [...], "WorkingDir": "/",
              "User": "0:0", "Labels": {...}},
   "layers": [{"compression": "gzip" | "zstd" | "none", "entries": [ENTRY...]}]}
or an index of images: {"platforms": [IMAGE, ...]} (written as an OCI image index).

ENTRY: {"path": "usr/bin/x", "type": T, "mode": "0755", "uid": 0, "gid": 0,
        "uname": "", "gname": "", "mtime": 0, "xattrs": {"user.k": "v"}, ...}
  T = "file" (default; content from "content" (text), "content_b64",
      "source" (a host file) or "generate": {"size": N, "seed": "s"}),
      "dir", "symlink" ("target"), "hardlink" ("target": a path in this or an
      earlier layer), "char" / "block" ("major", "minor"), "fifo",
      "whiteout" (writes DIR/.wh.NAME for "path": "DIR/NAME"),
      "opaque" (writes DIR/.wh..wh..opq for "path": "DIR").

--expect FILE writes the tree that flattening the layers must give, one line
per path, sorted, tab-separated:
  path type mode uid gid target sha256
(mode in octal with the setuid/setgid/sticky bits; target = symlink target,
"MAJOR,MINOR" for devices, for a hard link the first path of its group;
"-" where nothing applies).  FILE.json gets the same data plus xattrs.
"""
import base64
import copy
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
FIXED_MTIME = 1700000000  # one fixed instant, so every build is byte-identical


def die(msg):
    sys.stderr.write("mkimage: %s\n" % msg)
    sys.exit(1)


def mode_of(entry, default):
    m = entry.get("mode", default)
    return int(m, 8) if isinstance(m, str) else int(m)


def clean_path(p):
    """Layer paths are relative and normalised; reject anything escaping."""
    p = p.strip("/")
    parts = [x for x in p.split("/") if x not in ("", ".")]
    if not parts or ".." in parts:
        die("bad path %r" % p)
    return "/".join(parts)


def generated_bytes(size, seed):
    """Deterministic incompressible-looking content of any size."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(("%s:%d" % (seed, counter)).encode()).digest()
        counter += 1
    return bytes(out[:size])


def file_content(entry, specdir):
    if "content" in entry:
        return entry["content"].encode()
    if "content_b64" in entry:
        return base64.b64decode(entry["content_b64"])
    if "source" in entry:
        src = entry["source"]
        if not os.path.isabs(src):
            src = os.path.join(specdir, src)
        with open(src, "rb") as f:
            return f.read()
    if "generate" in entry:
        g = entry["generate"]
        return generated_bytes(int(g["size"]), str(g.get("seed", "")))
    return b""


def tarinfo(entry, name, ttype, mode):
    ti = tarfile.TarInfo(name)
    ti.type = ttype
    ti.mode = mode
    ti.uid = int(entry.get("uid", 0))
    ti.gid = int(entry.get("gid", 0))
    ti.uname = entry.get("uname", "")
    ti.gname = entry.get("gname", "")
    ti.mtime = int(entry.get("mtime", FIXED_MTIME))
    xattrs = entry.get("xattrs")
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in sorted(xattrs.items())}
    return ti


def write_entry(tar, entry, specdir):
    """Add one spec entry to the tar; return (path, kind, content) for flattening."""
    t = entry.get("type", "file")
    path = clean_path(entry["path"])
    if t == "whiteout":
        d, _, base = path.rpartition("/")
        name = (d + "/" if d else "") + ".wh." + base
        tar.addfile(tarinfo(entry, name, tarfile.REGTYPE, 0o644), io.BytesIO(b""))
        return path, t, None
    if t == "opaque":
        name = path + "/.wh..wh..opq"
        tar.addfile(tarinfo(entry, name, tarfile.REGTYPE, 0o644), io.BytesIO(b""))
        return path, t, None
    if t == "file":
        data = file_content(entry, specdir)
        ti = tarinfo(entry, path, tarfile.REGTYPE, mode_of(entry, 0o644))
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
        return path, t, data
    if t == "dir":
        tar.addfile(tarinfo(entry, path, tarfile.DIRTYPE, mode_of(entry, 0o755)))
        return path, t, None
    if t == "symlink":
        ti = tarinfo(entry, path, tarfile.SYMTYPE, mode_of(entry, 0o777))
        ti.linkname = entry["target"]
        tar.addfile(ti)
        return path, t, None
    if t == "hardlink":
        ti = tarinfo(entry, path, tarfile.LNKTYPE, mode_of(entry, 0o644))
        ti.linkname = clean_path(entry["target"])
        tar.addfile(ti)
        return path, t, None
    if t in ("char", "block"):
        ti = tarinfo(entry, path, tarfile.CHRTYPE if t == "char" else tarfile.BLKTYPE,
                     mode_of(entry, 0o666))
        ti.devmajor = int(entry.get("major", 0))
        ti.devminor = int(entry.get("minor", 0))
        tar.addfile(ti)
        return path, t, None
    if t == "fifo":
        tar.addfile(tarinfo(entry, path, tarfile.FIFOTYPE, mode_of(entry, 0o644)))
        return path, t, None
    die("%s: unknown type %r" % (path, t))
    return None


def compress(raw, how):
    if how == "none":
        return raw
    if how == "gzip":
        buf = io.BytesIO()
        # mtime=0 and no file name in the header: identical bytes every run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as g:
            g.write(raw)
        return buf.getvalue()
    if how == "zstd":
        try:
            return subprocess.run(["zstd", "-q", "-T1", "-3", "-c"], input=raw,
                                  stdout=subprocess.PIPE, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            die("zstd layer: %s (install the Debian package zstd)" % e)
    die("unknown compression %r" % how)
    return None


class Layout:
    def __init__(self, outdir):
        self.outdir = outdir
        self.blobdir = os.path.join(outdir, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)

    def blob(self, data, media_type, extra=None):
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.blobdir, digest)
        if not os.path.exists(path):
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        desc = {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}
        if extra:
            desc.update(extra)
        return desc


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Flattener:
    """Applies layers the way an OCI runtime must, to predict the final tree."""

    def __init__(self):
        self.nodes = {}  # path -> dict(type, mode, uid, gid, target, data, xattrs, inode)
        self.next_inode = 1

    def _remove_tree(self, path):
        for p in [p for p in self.nodes if p == path or p.startswith(path + "/")]:
            del self.nodes[p]

    def _ensure_parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            n = self.nodes.get(d)
            if n is None or n["type"] != "dir":
                if n is not None:
                    self._remove_tree(d)
                self.nodes[d] = {"type": "dir", "mode": 0o755, "uid": 0, "gid": 0,
                                 "target": None, "data": None, "xattrs": {}, "inode": self._inode()}

    def _inode(self):
        self.next_inode += 1
        return self.next_inode

    def apply_layer(self, items):
        # Whiteouts and opaque markers apply to what lower layers left, so they are
        # handled before the entries of the same layer (as runtimes do).
        layer_paths = set(p for p, t, _, _ in items if t not in ("whiteout", "opaque"))
        for path, t, _, _ in items:
            if t == "whiteout":
                self._remove_tree(path)
            elif t == "opaque":
                for p in [p for p in self.nodes
                          if p.startswith(path + "/") and p not in layer_paths]:
                    del self.nodes[p]
        for path, t, entry, data in items:
            if t in ("whiteout", "opaque"):
                continue
            self._ensure_parents(path)
            old = self.nodes.get(path)
            if t == "hardlink":
                src = self.nodes.get(clean_path(entry["target"]))
                if src is None or src["type"] == "dir":
                    die("%s: hard link target %s missing" % (path, entry["target"]))
                if old is not None:
                    self._remove_tree(path)
                self.nodes[path] = src  # same object: same inode
                continue
            node = {"type": t, "uid": int(entry.get("uid", 0)), "gid": int(entry.get("gid", 0)),
                    "xattrs": dict(entry.get("xattrs", {})), "target": None, "data": data}
            node["mode"] = mode_of(entry, {"dir": 0o755, "symlink": 0o777, "char": 0o666,
                                           "block": 0o666}.get(t, 0o644))
            if t == "symlink":
                node["target"] = entry["target"]
            elif t in ("char", "block"):
                node["target"] = "%d,%d" % (int(entry.get("major", 0)), int(entry.get("minor", 0)))
            if old is not None and not (old["type"] == "dir" and t == "dir"):
                self._remove_tree(path)  # a type change or a replaced file
            node["inode"] = self._inode()
            self.nodes[path] = node

    def listing(self):
        first = {}
        for p in sorted(self.nodes):
            first.setdefault(self.nodes[p]["inode"], p)
        rows = []
        for p in sorted(self.nodes):
            n = self.nodes[p]
            target = n["target"]
            if n["type"] == "file" and first[n["inode"]] != p:
                target = first[n["inode"]]
            digest = hashlib.sha256(n["data"]).hexdigest() if n["type"] == "file" else None
            rows.append({"path": "/" + p, "type": n["type"], "mode": "%04o" % n["mode"],
                         "uid": n["uid"], "gid": n["gid"], "target": target,
                         "sha256": digest, "xattrs": n["xattrs"]})
        return rows


def build_layer(layer, specdir):
    raw = io.BytesIO()
    items = []
    # PAX carries xattrs, long names and large ids without GNU extensions.
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in layer.get("entries", []):
            path, t, data = write_entry(tar, entry, specdir)
            items.append((path, t, entry, data))
    raw = raw.getvalue()
    how = layer.get("compression", "gzip")
    return raw, compress(raw, how), MT_LAYER.get(how), items


def build_image(layout, spec, specdir, flat):
    layers, diff_ids = [], []
    for layer in spec.get("layers", []):
        raw, blob, mt, items = build_layer(layer, specdir)
        if mt is None:
            die("unknown compression %r" % layer.get("compression"))
        layers.append(layout.blob(blob, mt))
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if flat is not None:
            flat.apply_layer(items)
    config = {
        "architecture": spec.get("architecture", "amd64"),
        "os": spec.get("os", "linux"),
        "config": spec.get("config", {}),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "created": "2023-11-14T22:13:20Z",
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "mkimage.py"}
                    for _ in layers],
    }
    if spec.get("variant"):
        config["variant"] = spec["variant"]
    cdesc = layout.blob(canonical_json(config), MT_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc, "layers": layers}
    platform = {"architecture": config["architecture"], "os": config["os"]}
    if spec.get("variant"):
        platform["variant"] = spec["variant"]
    return layout.blob(canonical_json(manifest), MT_MANIFEST), platform


def write_expect(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join([r["path"], r["type"], r["mode"], str(r["uid"]), str(r["gid"]),
                               r["target"] if r["target"] is not None else "-",
                               r["sha256"] or "-"]) + "\n")
    with open(path + ".json", "w") as f:
        json.dump(rows, f, indent=1, sort_keys=True)
        f.write("\n")


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Build an OCI image layout from a JSON spec.")
    ap.add_argument("spec", help="JSON spec file ('-' for stdin)")
    ap.add_argument("outdir", help="OCI layout directory to create")
    ap.add_argument("--tag", default="latest", help="ref name in index.json (default latest)")
    ap.add_argument("--expect", help="write the expected flattened tree here (first image only)")
    args = ap.parse_args(argv)
    if args.spec == "-":
        spec, specdir = json.load(sys.stdin), os.getcwd()
    else:
        with open(args.spec) as f:
            spec = json.load(f)
        specdir = os.path.dirname(os.path.abspath(args.spec))
    layout = Layout(args.outdir)
    flat = Flattener() if args.expect else None
    if "platforms" in spec:
        manifests = []
        for i, img in enumerate(spec["platforms"]):
            desc, platform = build_image(layout, img, specdir, flat if i == 0 else None)
            desc["platform"] = platform
            manifests.append(desc)
        top = layout.blob(canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX,
                                          "manifests": manifests}), MT_INDEX)
    else:
        top, _ = build_image(layout, spec, specdir, flat)
    top = copy.deepcopy(top)
    top["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]}
    with open(os.path.join(args.outdir, "index.json"), "wb") as f:
        f.write(canonical_json(index) + b"\n")
    with open(os.path.join(args.outdir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}) + b"\n")
    if flat is not None:
        write_expect(args.expect, flat.listing())
    print(top["digest"])


if __name__ == "__main__":
    main(sys.argv[1:])
