"""Real HTTP servers on 127.0.0.1 for the download tests (no mocks): ``Server`` answers per path
as configured (failures, Retry-After, dropped connections, ranges); ``Loopback`` serves archives
and a Zenodo-style records API, optionally behind a token and a gate."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
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
                if route is None:
                    return self.reply(404, b"not found")
                fail = route.get("fail", [])
                if n <= len(fail):
                    ra = [("Retry-After", route["retry_after"])] if "retry_after" in route else []
                    return self.reply(fail[n - 1], b"busy", ra)
                data = route.get("data", DATA)
                if route.get("status") == 416:
                    return self.reply(416, b"", [("Content-Range", f"bytes */{len(data)}")])
                if "status" in route:
                    return self.reply(route["status"], b"error page")
                if "json" in route:
                    return self.reply(200, json.dumps(route["json"]).encode(), [("Content-Type", "application/json")])
                status, start, headers = 200, 0, [("Content-Type", route.get("content_type", "application/zip"))]
                rng = self.headers.get("Range")
                if rng and not route.get("ignore_range"):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        return self.reply(416, b"", [("Content-Range", f"bytes */{len(data)}")])
                    status = 206
                    headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
                body = data[start:]
                if route.get("drop_after") is not None and n == 1:
                    body = body[: route["drop_after"]]
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data) - start))  # promise it all
                    self.end_headers()
                    self.wfile.write(body)
                    with outer.lock:
                        outer.sent += len(body)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.reply(status, body, headers)
                with outer.lock:
                    outer.sent += len(body)

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
