"""Real HTTP servers on 127.0.0.1 for the download tests (no mocks): ``Server`` answers per path
as configured (failures, Retry-After, dropped connections, ranges); ``Loopback`` serves archives
and a Zenodo-style records API, optionally behind a token and a gate."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
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
