"""Fetch a plain-text "what is my IP" page over a chosen address family.

Speaks a minimal HTTP/1.0 over a plain socket rather than using requests or
even http.client: a URL source runs on every check, and on the path where
nothing changed those imports (requests, or http.client with the email
package and, for http:// URLs, ssl) were the largest avoidable start-up cost.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Dict, Optional, Tuple
from urllib.parse import urlsplit

from edgeddns.deadline import Deadline

if TYPE_CHECKING:
    from edgeddns.clock import Clock

MAX_ANSWER = 65536
MAX_HEAD = 16384


def _connect(host: str, port: int, family: int, deadline: Deadline) -> socket.socket:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    err: Optional[OSError] = None
    try:
        # An ASCII name goes as bytes: a str is run through the IDNA codec, whose import (stringprep,
        # unicodedata) costs the one-shot more than the lookup. Other names still get IDNA.
        name = host.encode("ascii") if host.isascii() else host
        infos = socket.getaddrinfo(name, port, af, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host} over IPv{family}: {e.strerror}") from None
    for fam, stype, proto, _, addr in infos:
        left = deadline.remaining()
        if left <= 0:
            raise OSError("timed out")  # every address together shares the one budget
        s = socket.socket(fam, stype, proto)
        s.settimeout(left)
        try:
            s.connect(addr)
            return s
        except OSError as e:
            err = e
            s.close()
    raise OSError(f"cannot connect to {host}: {getattr(err, 'strerror', None) or err}")


def fetch(url: str, family: int, *, timeout: float = 5.0, clock: Optional[Clock] = None) -> str:
    """The answer's text; ``timeout`` bounds the whole fetch, connect to last byte."""
    with Deadline(timeout) as deadline:
        try:
            return _fetch(url, family, clock, deadline)
        except OSError:
            if deadline.expired:
                raise OSError(f"timed out after {timeout:g} s") from None
            raise


def _fetch(url: str, family: int, clock: Optional[Clock], deadline: Deadline) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    sock = _connect(host, port, family, deadline)
    try:
        deadline.attach(sock)
        if tls:
            from edgeddns.tls import make_context

            sock = make_context(None, clock).wrap_socket(sock, server_hostname=host)
            deadline.attach(sock)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        request = (f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\nUser-Agent: edgeddns\r\n"
                   "Accept: text/plain\r\nConnection: close\r\n\r\n")
        try:
            data = request.encode("ascii")
        except UnicodeEncodeError:
            raise OSError("the URL must be ASCII (percent-encode it)") from None
        sock.sendall(data)
        status, headers, body = _read_response(sock)
        if deadline.expired:  # a shut-down socket reads as an early end, not an error
            raise OSError("timed out")
        if status != 200:
            raise OSError(f"HTTP {status}")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(body)
        return body[:MAX_ANSWER].decode("utf-8", errors="replace")
    finally:
        sock.close()


def _read_response(sock: socket.socket) -> Tuple[int, Dict[str, str], bytes]:
    """Status, lower-cased headers and body, bounded in size.

    Reads to Content-Length when given, else to EOF; a TLS peer that closes
    without close_notify after a complete answer is not an error.
    """
    buf = bytearray()
    limit = MAX_HEAD + MAX_ANSWER + 1024
    want: Optional[int] = None
    while len(buf) < limit and (want is None or len(buf) < want):
        try:
            chunk = sock.recv(min(65536, limit - len(buf)))
        except OSError:
            tls = hasattr(sock, "version")  # ssl.SSLSocket, without importing ssl for plain http
            if not tls or b"\r\n\r\n" not in buf:
                raise
            break
        if not chunk:
            break
        buf += chunk
        if want is None and b"\r\n\r\n" in buf:
            end = buf.index(b"\r\n\r\n") + 4
            for line in bytes(buf[:end]).split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    want = end + int(value.strip())
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    if not sep or len(head) > MAX_HEAD:
        raise OSError("malformed HTTP answer")
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(None, 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise OSError("malformed HTTP answer")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line[1]), headers, body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise OSError("malformed chunked answer") from None
        if not sep or size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)
