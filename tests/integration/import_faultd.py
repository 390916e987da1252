#!/usr/bin/env python3
"""A misbehaving registry for berth's import tests (loopback only, bounded).

    import_faultd.py LAYOUT PORTFILE LOG [--lifetime SECONDS] [--user U --password P]

Serves the OCI image layout LAYOUT (its first index.json entry for every
tag) under /v2/<repo>/..., on 127.0.0.1 and 127.0.0.2 (same port, written
to PORTFILE).  The first component of <repo> picks a behaviour:

  ok/        a correct registry (anonymous)
  truncate/  the first GET of each blob sends half the body then closes;
             Range requests get 206 (so a client must resume)
  wrong/     blobs served with one byte changed (same length)
  ratelimit/ every manifest GET: 429 with Retry-After: 1
  flaky/     the first two GETs of each blob: 500, 503
  missing/   manifests: 404 MANIFEST_UNKNOWN
  token/     Bearer tokens from /token (Basic U:P required when --user is
             given); a token is good for 2 requests, then 401 (expiry)
  redirect/  like token/, and blob GETs redirect (307) to 127.0.0.2, where
             the request is logged with whether it carried Authorization
  foreign/   manifests list a foreign (non-distributable) layer
  huge/      blobs longer than their descriptor says
  slow/      every blob GET waits 2 s before answering

Every request is appended to LOG as one line:
  METHOD HOST PATH STATUS range=R auth=yes|no
The server exits after --lifetime seconds (default 600) whatever happens.
"""
import base64
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAYOUT = PORTFILE = LOGFILE = None
USER = PASSWORD = None
STATE = {"blob_gets": {}, "tokens": {}, "next_token": 0}
LOCK = threading.Lock()
PORT = 0


def blob_path(digest):
    if not digest.startswith("sha256:") or len(digest) != 71:
        return None
    hexpart = digest[7:]
    if any(c not in "0123456789abcdef" for c in hexpart):
        return None
    p = os.path.join(LAYOUT, "blobs", "sha256", hexpart)
    return p if os.path.isfile(p) else None


def read_blob(digest):
    with open(blob_path(digest), "rb") as f:
        return f.read()


def default_manifest_digest():
    with open(os.path.join(LAYOUT, "index.json")) as f:
        return json.load(f)["manifests"][0]["digest"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet on stderr
        pass

    def log_line(self, status):
        with LOCK, open(LOGFILE, "a") as f:
            f.write("%s %s %s %d range=%s auth=%s\n" % (
                self.command, self.headers.get("Host", "-"), self.path, status,
                self.headers.get("Range", "-"),
                "yes" if self.headers.get("Authorization") else "no"))

    def send(self, status, body=b"", ctype="application/json", extra=None, length=None):
        self.log_line(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, extra=None):
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self.send(status, body, extra=extra)

    # -- auth ----------------------------------------------------------------
    def token_endpoint(self):
        if USER is not None:
            want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.error(401, "UNAUTHORIZED")
        with LOCK:
            STATE["next_token"] += 1
            tok = "tok-%d-%s" % (STATE["next_token"], os.urandom(4).hex())
            STATE["tokens"][tok] = 2
        self.send(200, json.dumps({"token": tok, "expires_in": 60}).encode())

    def authorized(self, repo):
        h = self.headers.get("Authorization", "")
        with LOCK:
            left = STATE["tokens"].get(h[7:], 0) if h.startswith("Bearer ") else 0
            if left > 0:
                STATE["tokens"][h[7:]] = left - 1
                return True
        realm = "http://127.0.0.1:%d/token" % PORT
        self.error(401, "UNAUTHORIZED", {
            "WWW-Authenticate": 'Bearer realm="%s",service="faultd",scope="repository:%s:pull"'
                                % (realm, repo)})
        return False

    # -- content -------------------------------------------------------------
    def manifest(self, mode, ref):
        if mode == "ratelimit":
            return self.error(429, "TOOMANYREQUESTS", {"Retry-After": "1"})
        if mode == "missing":
            return self.error(404, "MANIFEST_UNKNOWN")
        digest = ref if ref.startswith("sha256:") else default_manifest_digest()
        if not blob_path(digest):
            return self.error(404, "MANIFEST_UNKNOWN")
        body = read_blob(digest)
        doc = json.loads(body)
        if mode == "foreign" and "layers" in doc:
            for layer in doc["layers"]:
                layer["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            body = json.dumps(doc).encode()
        ctype = doc.get("mediaType", "application/vnd.oci.image.manifest.v1+json")
        self.send(200, body, ctype, {"Docker-Content-Digest": "sha256:" +
                                     hashlib.sha256(body).hexdigest()})

    def blob(self, mode, digest):
        if not blob_path(digest):
            return self.error(404, "BLOB_UNKNOWN")
        data = read_blob(digest)
        with LOCK:
            n = STATE["blob_gets"].get((mode, digest), 0) + 1
            STATE["blob_gets"][(mode, digest)] = n
        if mode == "slow":
            time.sleep(2)
        if mode == "flaky" and n <= 2:
            return self.error(500 if n == 1 else 503, "UNAVAILABLE")
        if mode == "wrong":
            data = bytes([data[0] ^ 0xff]) + data[1:]
        if mode == "huge":
            data = data + b"\0" * 4096
        if mode == "redirect" and self.headers.get("Host", "").startswith("127.0.0.1"):
            loc = "http://127.0.0.2:%d/direct/%s" % (PORT, digest)
            return self.send(307, b"", extra={"Location": loc})
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            part = data[start:]
            return self.send(206, part, "application/octet-stream", {
                "Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
        if mode == "truncate" and n == 1 and len(data) > 1:
            self.send(200, data[: len(data) // 2], "application/octet-stream",
                      length=len(data))
            self.close_connection = True
            return None
        self.send(200, data, "application/octet-stream")
        return None

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/token":
            return self.token_endpoint()
        if path.startswith("/direct/"):
            return self.blob("redirect", path[len("/direct/"):])
        if path in ("/v2/", "/v2"):
            return self.send(200, b"{}")
        parts = path.split("/")
        # /v2/<repo...>/manifests/<ref> or /v2/<repo...>/blobs/<digest>
        if len(parts) < 5 or parts[1] != "v2" or parts[-2] not in ("manifests", "blobs"):
            return self.error(404, "NAME_UNKNOWN")
        repo = "/".join(parts[2:-2])
        mode = parts[2]
        if mode in ("token", "redirect") and not self.authorized(repo):
            return None
        if parts[-2] == "manifests":
            return self.manifest(mode, parts[-1])
        return self.blob(mode, parts[-1])

    do_HEAD = do_GET


def main(argv):
    global LAYOUT, PORTFILE, LOGFILE, USER, PASSWORD, PORT
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("layout")
    ap.add_argument("portfile")
    ap.add_argument("log")
    ap.add_argument("--lifetime", type=int, default=600)
    ap.add_argument("--user")
    ap.add_argument("--password")
    a = ap.parse_args(argv)
    LAYOUT, PORTFILE, LOGFILE, USER, PASSWORD = a.layout, a.portfile, a.log, a.user, a.password
    first = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    PORT = first.server_address[1]
    servers = [first, ThreadingHTTPServer(("127.0.0.2", PORT), Handler)]
    for s in servers:
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
    with open(PORTFILE + ".tmp", "w") as f:
        f.write("%d\n" % PORT)
    os.rename(PORTFILE + ".tmp", PORTFILE)
    time.sleep(a.lifetime)


if __name__ == "__main__":
    main(sys.argv[1:])
