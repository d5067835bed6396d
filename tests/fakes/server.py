"""A small threaded HTTP(S) server for the fake providers.

Each fake is an ``app(request) -> Reply`` callable; this module owns sockets,
TLS and threads. Faults for the hardening tests (hang, close, raw bytes) are
replies too, so every fake supports them without code of its own.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, str]
    query_string: str
    headers: Dict[str, str]  # lower-cased names
    body: bytes
    received: float  # time.time() on the server

    @property
    def form(self) -> Dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to sleep before answering
    close: bool = False  # drop the connection without an answer

    @classmethod
    def json(cls, status: int, obj, headers: Optional[Dict[str, str]] = None) -> Reply:
        h = {"Content-Type": "application/json;charset=utf-8"}
        h.update(headers or {})
        return cls(status, json.dumps(obj).encode(), h)

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        return cls(status, text.encode(), {"Content-Type": "text/plain"})


class FakeServer:
    def __init__(self, app: Callable[[Request], Reply], *, ssl_context: Optional[ssl.SSLContext] = None,
                 host: str = "127.0.0.1", clock: Callable[[], float] = time.time):
        self.app = app
        self.clock = clock
        self.requests: List[Request] = []
        self.faults: List[Reply] = []  # served first, one per request
        self.send_date = True  # False: answer without a Date header
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output clean
                pass

            def send_response(self, code, message=None):
                # One Date header, from the fake's own clock (the base class adds the host's).
                self.log_request(code)
                self.send_response_only(code, message)
                self.send_header("Server", self.version_string())
                if outer.send_date:
                    self.send_header("Date", formatdate(outer.clock(), usegmt=True))

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                              parts.query, {k.lower(): v for k, v in self.headers.items()}, body,
                              outer.clock())
                outer.requests.append(req)
                reply = outer.faults.pop(0) if outer.faults else outer.app(req)
                if reply.hang:
                    time.sleep(reply.hang)
                if reply.close:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if ssl_context else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
