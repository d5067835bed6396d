"""Fetch a plain-text "what is my IP" page over a chosen address family.

Uses http.client rather than requests: a URL source runs on every check, and
importing requests would cost a router a quarter of a second each time.
"""

from __future__ import annotations

import http.client
import socket
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from edgeddns.clock import Clock

MAX_ANSWER = 65536


def _connect(host: str, port: int, family: int, timeout: float) -> socket.socket:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    err: Optional[OSError] = None
    try:
        infos = socket.getaddrinfo(host, port, af, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host} over IPv{family}: {e.strerror}") from None
    for fam, stype, proto, _, addr in infos:
        s = socket.socket(fam, stype, proto)
        s.settimeout(timeout)
        try:
            s.connect(addr)
            return s
        except OSError as e:
            err = e
            s.close()
    raise OSError(f"cannot connect to {host}: {getattr(err, 'strerror', None) or err}")


def fetch(url: str, family: int, *, timeout: float = 5.0, clock: Optional[Clock] = None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    sock = _connect(host, port, family, timeout)
    try:
        if tls:
            from edgeddns.tls import make_context

            sock = make_context(None, clock).wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("GET", path, headers={"Host": parts.netloc, "User-Agent": "edgeddns",
                                           "Accept": "text/plain", "Connection": "close"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        return resp.read(MAX_ANSWER).decode("utf-8", errors="replace")
    finally:
        sock.close()
