"""Fetch a plain-text "what is my IP" page over a chosen address family.

Speaks a minimal HTTP/1.0 over a plain socket rather than using requests or
even http.client: a URL source runs on every check, and on the path where
nothing changed those imports (requests, or http.client with the email
package and, for http:// URLs, ssl) were the largest avoidable start-up cost.
For the same reason it uses ``_socket`` (``socket.py`` adds ``enum`` and
``selectors``) and bounds the whole fetch without a timer thread
(:class:`edgeddns.budget.Budget`).
"""

import _socket

from edgeddns.budget import Budget

TYPE_CHECKING = False  # typing's own flag imports typing: this runs on every no-change check
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

    from edgeddns.clock import Clock

    # (tls, host, port, request path with query, Host header): a URL as the fetch needs it
    Target = Tuple[bool, str, int, str, str]

MAX_ANSWER = 65536
MAX_HEAD = 16384


def _connect(host: str, port: int, family: int, budget: "Budget") -> "_socket.socket":
    af = _socket.AF_INET if family == 4 else _socket.AF_INET6
    err: Optional[OSError] = None
    try:
        # An ASCII name goes as bytes: a str is run through the IDNA codec, whose import (stringprep,
        # unicodedata) costs the one-shot more than the lookup. Other names still get IDNA.
        name = host.encode("ascii") if host.isascii() else host
        infos = _socket.getaddrinfo(name, port, af, _socket.SOCK_STREAM)
    except _socket.gaierror as e:
        raise OSError(f"cannot resolve {host} over IPv{family}: {e.strerror}") from None
    for fam, stype, proto, _, addr in infos:
        s = _socket.socket(fam, stype, proto)
        try:
            budget.arm(s)  # every address together shares the one budget
            s.connect(addr)
            return s
        except _socket.timeout:
            s.close()
            raise
        except OSError as e:
            err = e
            s.close()
    raise OSError(f"cannot connect to {host}: {getattr(err, 'strerror', None) or err}")


def target(url: str) -> "Target":
    """What a fetch of ``url`` needs, split once (``urllib.parse`` costs a cheap path more than the fetch)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    tls = parts.scheme == "https"
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return tls, parts.hostname or "", parts.port or (443 if tls else 80), path, parts.netloc


def fetch(url: str, family: int, *, timeout: float = 5.0, clock: "Optional[Clock]" = None) -> str:
    """The answer's text; ``timeout`` bounds the whole fetch, connect to last byte."""
    return get(target(url), family, timeout=timeout, clock=clock)


def get(to: "Target", family: int, *, timeout: float = 5.0, clock: "Optional[Clock]" = None) -> str:
    """:func:`fetch` for a URL already split by :func:`target`."""
    try:
        return _fetch(to, family, clock, Budget(timeout))
    except _socket.timeout:  # TimeoutError from 3.10; its own OSError subclass before
        raise OSError(f"timed out after {timeout:g} s") from None


def _fetch(to: "Target", family: int, clock: "Optional[Clock]", budget: "Budget") -> str:
    tls, host, port, path, netloc = to
    sock = _connect(host, port, family, budget)
    try:
        if tls:
            import socket

            from edgeddns.tls import make_context

            # ssl wraps socket.socket objects; the handshake takes the budget left after the connect.
            sock = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
            budget.arm(sock)
            sock = make_context(None, clock).wrap_socket(sock, server_hostname=host)
        request = (f"GET {path} HTTP/1.0\r\nHost: {netloc}\r\nUser-Agent: edgeddns\r\n"
                   "Accept: text/plain\r\nConnection: close\r\n\r\n")
        try:
            data = request.encode("ascii")
        except UnicodeEncodeError:
            raise OSError("the URL must be ASCII (percent-encode it)") from None
        budget.arm(sock)
        sock.sendall(data)
        status, headers, body = _read_response(sock, budget)
        if status != 200:
            raise OSError(f"HTTP {status}")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(body)
        return body[:MAX_ANSWER].decode("utf-8", errors="replace")
    finally:
        sock.close()


def _read_response(sock: "_socket.socket", budget: "Budget") -> "Tuple[int, Dict[str, str], bytes]":
    """Status, lower-cased headers and body, bounded in size.

    Reads to Content-Length when given, else to EOF; a TLS peer that closes
    without close_notify after a complete answer is not an error.
    """
    buf = bytearray()
    limit = MAX_HEAD + MAX_ANSWER + 1024
    want: Optional[int] = None
    while len(buf) < limit and (want is None or len(buf) < want):
        budget.arm(sock)
        try:
            chunk = sock.recv(min(65536, limit - len(buf)))
        except _socket.timeout:
            raise
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
