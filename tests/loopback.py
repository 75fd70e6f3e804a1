"""Real HTTP servers on 127.0.0.1 for the download tests (no mocks): ``Server`` answers per path
as configured (failures, Retry-After, dropped connections, ranges); ``Loopback`` serves archives
and a Zenodo-style records API, optionally behind a token and a gate."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = b"PK\x03\x04" + random.Random(0).randbytes(300_000)
MD5 = hashlib.md5(DATA).hexdigest()
SHA256 = hashlib.sha256(DATA).hexdigest()
HTML = b"\xef\xbb\xbf\n  <!DOCTYPE html><html><body>Please log in</body></html>"



class Server:
    """Loopback server; ``routes[path]`` configures what each path does.

    Route keys: data (bytes), status (always answer it), fail (statuses for the first requests),
    retry_after, drop_after (first request: send only so many body bytes, then close the socket),
    ignore_range, content_type, json (answer this object).
    Hostile ones: drop_every (every request: so many body bytes, then close), no_length (no
    Content-Length: the body ends when the connection closes), etag / last_modified (sent, and
    If-Range honoured: a stale one gets the whole file with 200), ignore_if_range, content_encoding
    (header only: the data is sent as given), content_range (always 206 with this Content-Range),
    trickle (seconds between single body bytes), redirect (302 to this path, e.g. itself), then
    (route updates applied once the first request is answered: the file changes on the server).
    """

    def __init__(self):
        self.routes: dict[str, dict] = {}
        self.requests: list[tuple[str, dict]] = []
        self.sent = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers)))
                    route = outer.routes.get(self.path)
                    if route is not None:
                        route["hits"] = n = route.get("hits", 0) + 1
                        route = dict(route)  # this request's view; 'then' changes the next ones
                        if n == 1 and "then" in route:
                            outer.routes[self.path].update(route["then"])
                if route is None:
                    return self.reply(404, b"not found")
                fail = route.get("fail", [])
                ra = [("Retry-After", route["retry_after"])] if "retry_after" in route else []
                if n <= len(fail):
                    return self.reply(fail[n - 1], b"busy", ra)
                data = route.get("data", DATA)
                if route.get("status") == 416:
                    return self.reply(416, b"", [("Content-Range", f"bytes */{len(data)}")])
                if "status" in route:
                    return self.reply(route["status"], b"error page", ra)
                if "json" in route:
                    return self.reply(200, json.dumps(route["json"]).encode(), [("Content-Type", "application/json")])
                if "redirect" in route:
                    return self.reply(302, b"", [("Location", outer.url(route["redirect"]))])
                status, start, headers = 200, 0, [("Content-Type", route.get("content_type", "application/zip"))]
                for key, name in (("etag", "ETag"), ("last_modified", "Last-Modified"),
                                  ("content_encoding", "Content-Encoding")):
                    if key in route:
                        headers.append((name, route[key]))
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if rng and if_range and not route.get("ignore_if_range") and \
                        if_range not in (route.get("etag"), route.get("last_modified")):
                    rng = None  # the representation changed: RFC 9110 says send it whole
                if "content_range" in route:
                    status = 206
                    headers.append(("Content-Range", route["content_range"]))
                elif rng and not route.get("ignore_range"):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        return self.reply(416, b"", [("Content-Range", f"bytes */{len(data)}")])
                    status = 206
                    headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
                body = data[start:]
                cut = route.get("drop_every", route.get("drop_after") if n == 1 else None)
                if cut is not None or route.get("no_length") or "trickle" in route:
                    return self.send_raw(status, headers, body, len(body), cut, route)
                self.reply(status, body, headers)
                with outer.lock:
                    outer.sent += len(body)

            def send_raw(self, status, headers, body, length, cut, route):
                """Send the head, then the body cut short, close-delimited or trickled; then close."""
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if route.get("no_length"):
                    self.send_header("Connection", "close")
                else:
                    self.send_header("Content-Length", str(length))  # promise it all
                self.end_headers()
                if cut is not None:
                    body = body[:cut]
                try:
                    if "trickle" in route:
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            with outer.lock:
                                outer.sent += 1
                            time.sleep(route["trickle"])
                    else:
                        self.wfile.write(body)
                        with outer.lock:
                            outer.sent += len(body)
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the client gave up first
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


class Loopback(ThreadingHTTPServer):
    """Archives under /files/ and a Zenodo-style records API, on 127.0.0.1. ``gate``: the first file
    download waits until it is set; ``token``: every request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, files: dict[str, bytes], record: int, token: str | None = None):
        self.files, self.record, self.token = files, record, token
        self.gate, self.requests = threading.Event(), []
        self.gate.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(h):
                outer.requests.append((h.path, h.headers.get("Authorization")))
                if outer.token and h.headers.get("Authorization") != f"Bearer {outer.token}":
                    return h.send_error(401)
                if h.path == f"/api/records/{record}":
                    body = json.dumps({"files": [{"key": k, "size": len(v), "checksum": "md5:" + hashlib.md5(v).hexdigest()}
                                                 for k, v in files.items()]}).encode()
                elif h.path.startswith("/files/") and h.path[7:] in files:
                    if sum(p.startswith("/files/") for p, _ in outer.requests) == 1:
                        outer.gate.wait(120)
                    body = files[h.path[7:]]
                else:
                    return h.send_error(404)
                h.send_response(200)
                h.send_header("Content-Type", "application/octet-stream")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            def log_message(h, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


# -- publisher services on 127.0.0.1, built from the sample mirror (docs/access.md) ---------------
class Services(ThreadingHTTPServer):
    """Fake publisher services answering as the real ones do (medcurate/fetch/{tcia,kits19,
    kaggle,physionet}.py name their sources), one server, by path prefix:

    - ``/nbia/v4/getSeries?Collection=C``: JSON list of series objects (an empty body when none);
      ``/nbia/v4/getImageWithMD5Hash?SeriesInstanceUID=U``: the series' zip (flat file names plus
      md5hashes.csv), streamed chunked without a Content-Length as NBIA's servlet does; 404 for
      an unknown UID. ``tcia_token``: a Bearer token is required (401 otherwise).
    - ``/github/repos/<repo>/git/trees/<commit>?recursive=1``: a git tree listing (path, type, sha
      = git blob id, size); ``/raw/<repo>/<commit>/<path>``: raw files; ``/hf/images/<case>.nii.gz``
      and ``/hf-api/images`` (Hugging Face's file listing, two entries a page, Link: rel="next").
    - ``/kaggle/api/v1/competitions/data/download-all/<c>``: HTTP Basic required (401), 403 with
      Kaggle's JSON message until ``rules_accepted``, then a 302 to ``/storage/<c>.zip``.
    - ``/physionet/files/<project>/<version>/<path>``: HTTP Basic required (401 with
      WWW-Authenticate), SHA256SUMS.txt and the files.

    ``corrupt``: paths whose body is altered once (the first request); ``fail``: path -> statuses
    answered to its first requests. ``requests`` logs (path, headers) of every request.
    """

    def __init__(self):
        self.series: dict[str, dict] = {}  # uid -> {"row": {...}, "files": {name: bytes}}
        self.collection = ""
        self.tcia_token: str | None = None
        self.tree: dict[str, bytes] = {}  # kits19 repository files at the commit (path -> bytes)
        self.repo, self.commit = "", ""
        self.hf: dict[str, bytes] = {}  # case -> imaging bytes
        self.hf_lfs = True  # the listing gives lfs {oid: sha256, size} (False: Xet-like, no sha256)
        self.kaggle: dict[str, bytes] = {}  # competition -> download-all zip
        self.kaggle_user: tuple[str, str] = ("", "")
        self.rules_accepted = True
        self.physionet: dict[str, bytes] = {}  # "<project>/<version>/<path>" -> bytes (SHA256SUMS.txt added)
        self.physionet_user: tuple[str, str] = ("", "")
        self.corrupt: set[str] = set()
        self.fail: dict[str, list[int]] = {}
        self.delay, self.active, self.max_active = 0.0, 0, 0  # series downloads in flight (the cap)
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(h, *args):
                pass

            def reply(h, status, body=b"", ctype="application/octet-stream", headers=()):
                h.send_response(status)
                h.send_header("Content-Type", ctype)
                for k, v in headers:
                    h.send_header(k, v)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            def chunked(h, body, ctype):
                h.send_response(200)
                h.send_header("Content-Type", ctype)
                h.send_header("Transfer-Encoding", "chunked")
                h.end_headers()
                for i in range(0, len(body), 65536):
                    piece = body[i:i + 65536]
                    h.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                h.wfile.write(b"0\r\n\r\n")

            def basic_ok(h, user):
                import base64
                want = "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
                return h.headers.get("Authorization") == want

            def do_GET(h):
                import urllib.parse
                parts = urllib.parse.urlsplit(h.path)
                path, query = parts.path, dict(urllib.parse.parse_qsl(parts.query))
                with outer.lock:
                    outer.requests.append((h.path, dict(h.headers)))
                    n = sum(1 for p, _ in outer.requests if p == h.path)
                    fail = outer.fail.get(h.path, [])
                    corrupt = h.path in outer.corrupt and n == 1
                if n <= len(fail):
                    return h.reply(fail[n - 1], b"busy", "text/plain")
                if path.startswith("/nbia/v4/"):
                    return h.nbia(path.removeprefix("/nbia/v4/"), query, corrupt)
                if path.startswith("/github/repos/"):
                    want = f"/github/repos/{outer.repo}/git/trees/{outer.commit}"
                    if path != want or query.get("recursive") != "1":
                        return h.reply(404, b'{"message": "Not Found"}', "application/json")
                    tree = [{"path": p, "mode": "100644", "type": "blob", "sha": git_blob(b), "size": len(b)}
                            for p, b in sorted(outer.tree.items())]
                    dirs = sorted({p.rsplit("/", 1)[0] for p in outer.tree if "/" in p})
                    tree += [{"path": d, "mode": "040000", "type": "tree", "sha": "0" * 40} for d in dirs]
                    return h.reply(200, json.dumps({"sha": outer.commit, "tree": tree, "truncated": False}).encode(),
                                   "application/json; charset=utf-8")
                if path.startswith("/raw/"):
                    prefix = f"/raw/{outer.repo}/{outer.commit}/"
                    body = outer.tree.get(path.removeprefix(prefix)) if path.startswith(prefix) else None
                    if body is None:
                        return h.reply(404, b"404: Not Found", "text/plain")
                    return h.reply(200, body[:-1] + bytes([body[-1] ^ 1]) if corrupt else body)
                if path == "/hf-api/images":  # Hugging Face's file listing, paged by a Link header
                    cases = sorted(outer.hf)
                    start = int(query.get("cursor", 0))
                    page = [{"type": "file", "path": f"images/{c}.nii.gz", "size": len(outer.hf[c]),
                             "oid": git_blob(outer.hf[c]),
                             **({"lfs": {"oid": hashlib.sha256(outer.hf[c]).hexdigest(), "size": len(outer.hf[c]),
                                         "pointerSize": 134}} if outer.hf_lfs else {})}
                            for c in cases[start:start + 2]]
                    more = [("Link", f'<{outer.url(f"/hf-api/images?cursor={start + 2}")}>; rel="next"')] \
                        if start + 2 < len(cases) else []
                    return h.reply(200, json.dumps(page).encode(), "application/json", more)
                if path.startswith("/hf/images/"):
                    body = outer.hf.get(path.removeprefix("/hf/images/").removesuffix(".nii.gz"))
                    if body is None:
                        return h.reply(404, b"Entry not found", "text/plain")
                    return h.reply(200, body, headers=[("ETag", f'"{hashlib.sha256(body).hexdigest()}"')])
                if path.startswith("/kaggle/api/v1/competitions/data/download-all/"):
                    comp = path.rsplit("/", 1)[1]
                    if not h.basic_ok(outer.kaggle_user):
                        return h.reply(401, json.dumps({"code": 401, "message": "Unauthenticated"}).encode(),
                                       "application/json")
                    if comp not in outer.kaggle:
                        return h.reply(404, json.dumps({"code": 404, "message": "Not found"}).encode(),
                                       "application/json")
                    if not outer.rules_accepted:
                        msg = "You must accept this competition's rules before you'll be able to download files."
                        return h.reply(403, json.dumps({"code": 403, "message": msg}).encode(), "application/json")
                    # storage on another host name (as a signed cloud-storage URL would be): the
                    # client must not carry the Kaggle credentials there
                    port = outer.server_address[1]
                    return h.reply(302, b"", "text/plain", [("Location", f"http://localhost:{port}/storage/{comp}.zip?sig=abc")])
                if path.startswith("/storage/"):
                    if "Authorization" in h.headers:  # a signed URL on another host never sees the token
                        return h.reply(400, b"unexpected Authorization", "text/plain")
                    comp = path.removeprefix("/storage/").removesuffix(".zip")
                    return h.reply(200, outer.kaggle[comp], "application/zip")
                if path.startswith("/physionet/files/"):
                    if not h.basic_ok(outer.physionet_user):
                        return h.reply(401, b"<html><body>Unauthorized</body></html>", "text/html",
                                       [("WWW-Authenticate", 'Basic realm="PhysioNet"')])
                    body = outer.physionet.get(path.removeprefix("/physionet/files/"))
                    if body is None:
                        return h.reply(404, b"<html>Not found</html>", "text/html")
                    return h.reply(200, body[:-1] + bytes([body[-1] ^ 1]) if corrupt else body)
                return h.reply(404, b"not found", "text/plain")

            def nbia(h, endpoint, query, corrupt):
                if outer.tcia_token and h.headers.get("Authorization") != f"Bearer {outer.tcia_token}":
                    return h.reply(401, b"Unauthorized", "text/plain")
                if endpoint == "getSeries":
                    rows = [s["row"] for s in outer.series.values() if query.get("Collection") == outer.collection]
                    return h.reply(200, json.dumps(rows).encode() if rows else b"", "application/json")
                if endpoint == "getImageWithMD5Hash":
                    with outer.lock:
                        outer.active += 1
                        outer.max_active = max(outer.max_active, outer.active)
                    try:
                        time.sleep(outer.delay)
                        return h.series_zip(query, corrupt)
                    finally:
                        with outer.lock:
                            outer.active -= 1
                return h.reply(404, b"not found", "text/plain")

            def series_zip(h, query, corrupt):
                s = outer.series.get(query.get("SeriesInstanceUID", ""))
                if s is None:
                    return h.reply(404, b"Series not found", "text/plain")
                files = dict(s["files"])
                hashes = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
                if corrupt:  # the listed md5 of one file disagrees with its bytes
                    first = sorted(files)[0]
                    files[first] = files[first] + b"\0"
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                    for name, data in sorted(files.items()):
                        zf.writestr(name, data)
                    zf.writestr("md5hashes.csv", "Filename,MD5Hash\n" + "".join(
                        f"{k},{v}\n" for k, v in sorted(hashes.items())))
                return h.chunked(buf.getvalue(), "application/x-zip-compressed")

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def paths(self, prefix: str) -> list[str]:
        return [p for p, _ in self.requests if p.startswith(prefix)]

    # -- content from the sample mirror ----------------------------------------------------------
    def load_tcia(self, archive, collection: str) -> None:
        """Series of a placed NBIA folder (a zip of it, as the sample mirror holds): grouped by the
        SeriesInstanceUID in each DICOM's header, rows from the headers."""
        import pydicom

        self.collection = collection
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.endswith(".dcm"):
                    continue
                data = zf.read(info)
                ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
                uid = str(ds.SeriesInstanceUID)
                entry = self.series.setdefault(uid, {"row": {
                    "SeriesInstanceUID": uid, "StudyInstanceUID": str(ds.StudyInstanceUID),
                    "PatientID": str(ds.PatientID), "Collection": collection, "Modality": str(ds.get("Modality", "")),
                    "SeriesDescription": str(ds.get("SeriesDescription", "")), "ImageCount": 0}, "files": {}})
                entry["files"][info.filename.rsplit("/", 1)[1]] = data
                entry["row"]["ImageCount"] = len(entry["files"])

    def load_kits(self, archive, repo: str, commit: str) -> None:
        """A kits19 checkout (the sample mirror's kits19.zip): labels and kits.json in the
        repository's tree, imaging on the Hugging Face path."""
        self.repo, self.commit = repo, commit
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                rel = info.filename.split("/", 1)[1]  # below kits19/
                if rel.endswith("imaging.nii.gz"):
                    self.hf[rel.split("/")[1]] = zf.read(info)
                else:
                    self.tree[rel] = zf.read(info)
        self.tree["README.md"] = b"# kits19\n"

    def add_physionet(self, project: str, version: str, files: dict[str, bytes]) -> None:
        sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {p}\n" for p, b in sorted(files.items()))
        for p, b in {**files, "SHA256SUMS.txt": sums.encode()}.items():
            self.physionet[f"{project}/{version}/{p}"] = b


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
