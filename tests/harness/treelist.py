#!/usr/bin/env python3
"""List a file tree in the format of mkimage.py --expect, to compare with it.

    treelist.py [--exclude /PREFIX]... [--xattrs] SOURCE

SOURCE is a squashfs file (read with sqfs2tar from squashfs-tools-ng), a tar
file, or a directory (e.g. a mounted container root).  One line per path,
sorted, tab-separated:  path type mode uid gid target sha256
A hard link's target is the first path (sorted) of its group; devices show
"MAJOR,MINOR".  With --xattrs: "path<TAB>name=value,..." instead (as
mkimage.py --expect writes to FILE.xattrs).
"""
import argparse
import hashlib
import os
import stat
import subprocess
import sys
import tarfile

TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
         tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
         tarfile.FIFOTYPE: "fifo"}


def from_tar(fileobj):
    rows, links = {}, []
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for ti in tar:
            path = "/" + ti.name.strip("/").removeprefix("./").strip("/")
            if path in ("/", "/."):
                continue
            xattrs = {k[13:]: v for k, v in ti.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            if ti.type == tarfile.LNKTYPE:
                links.append((path, "/" + ti.linkname.strip("/").removeprefix("./")))
                continue
            t = TYPES.get(ti.type, "unknown")
            target = None
            digest = None
            if t == "symlink":
                target = ti.linkname
            elif t in ("char", "block"):
                target = "%d,%d" % (ti.devmajor, ti.devminor)
            elif t == "file":
                digest = hashlib.sha256(tar.extractfile(ti).read()).hexdigest()
            rows[path] = {"type": t, "mode": ti.mode & 0o7777, "uid": ti.uid, "gid": ti.gid,
                          "target": target, "sha256": digest, "xattrs": xattrs, "group": path}
    for path, src in links:
        row = dict(rows[src])
        rows[path] = row
    # The hard link group's name is its first path, as mkimage.py --expect has it.
    groups = {}
    for path in sorted(rows):
        groups.setdefault(rows[path]["group"], path)
    for path in sorted(rows):
        r = rows[path]
        first = groups[r["group"]]
        if r["type"] == "file" and first != path:
            r = dict(r, target=first)
        rows[path] = r
    return rows


def from_dir(root):
    rows, first = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            path = "/" + os.path.relpath(full, root)
            st = os.lstat(full)
            m = st.st_mode
            t = ("dir" if stat.S_ISDIR(m) else "symlink" if stat.S_ISLNK(m) else
                 "file" if stat.S_ISREG(m) else "char" if stat.S_ISCHR(m) else
                 "block" if stat.S_ISBLK(m) else "fifo" if stat.S_ISFIFO(m) else "unknown")
            target = digest = None
            if t == "symlink":
                target = os.readlink(full)
            elif t in ("char", "block"):
                target = "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
            elif t == "file":
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    first.setdefault(key, []).append(path)
            xattrs = {}
            try:
                for k in os.listxattr(full, follow_symlinks=False):
                    xattrs[k] = os.getxattr(full, k, follow_symlinks=False).decode(errors="replace")
            except OSError:
                pass
            rows[path] = {"type": t, "mode": stat.S_IMODE(m), "uid": st.st_uid, "gid": st.st_gid,
                          "target": target, "sha256": digest, "xattrs": xattrs}
    for paths in first.values():
        paths.sort()
        for p in paths[1:]:
            rows[p]["target"] = paths[0]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--exclude", action="append", default=[], help="leave out PREFIX and below")
    ap.add_argument("--xattrs", action="store_true", help="list xattrs instead")
    args = ap.parse_args()
    if os.path.isdir(args.source):
        rows = from_dir(args.source)
    elif tarfile.is_tarfile(args.source):
        with open(args.source, "rb") as f:
            rows = from_tar(f)
    else:
        p = subprocess.Popen(["sqfs2tar", args.source], stdout=subprocess.PIPE)
        rows = from_tar(p.stdout)
        if p.wait() != 0:
            sys.exit("treelist: sqfs2tar %s failed" % args.source)
    out = sys.stdout
    for path in sorted(rows):
        if any(path == e.rstrip("/") or path.startswith(e.rstrip("/") + "/") for e in args.exclude):
            continue
        r = rows[path]
        cols = [path, r["type"], "%04o" % r["mode"], str(r["uid"]), str(r["gid"]),
                r["target"] if r["target"] is not None else "-", r["sha256"] or "-"]
        if args.xattrs:
            # Same format as mkimage.py --expect's FILE.xattrs.
            cols = [path, ",".join("%s=%s" % kv for kv in sorted(r["xattrs"].items())) or "-"]
        out.write("\t".join(cols) + "\n")


if __name__ == "__main__":
    main()
