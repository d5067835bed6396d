"""A fake deSEC IP update API (update.dedyn.io), from deSEC's "IP Update API" documentation.

Any path; HTTP Basic with the domain name as user name and a token as the
password; ``hostname``; addresses in ``myipv4``/``myip`` and ``myipv6``, each
may be ``preserve`` (leave that family alone). A family that is not given is
set from the connection's address, which is why clients must say
``preserve``. Success is ``good``; a bad token is HTTP 401 ``badauth``;
throttling is 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
from typing import Dict, List, Optional, Tuple

from tests.fakes.server import Reply, Request


class FakeDesec:
    def __init__(self, tokens: List[str], names: List[str], *, connection_v6: str = "2001:db8:c0::1"):
        self.tokens = set(tokens)
        self.names = {n.lower() for n in names}
        self.connection = {"A": "127.0.0.1", "AAAA": connection_v6}  # what "not given" would set
        self.records: Dict[Tuple[str, str], str] = {}
        self.calls: List[Dict[str, str]] = []
        self.writes = 0
        self.throttle = 0
        self.readable = False  # the service always answers "good"
        self.lock = threading.Lock()

    def values(self, name: str, rtype: str) -> List[str]:
        v = self.records.get((name, rtype))
        return [v] if v else []

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.records[(name, rtype)] = value

    def _token(self, req: Request) -> Optional[str]:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                return base64.b64decode(auth[6:]).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return None
        if auth.startswith("Token "):
            return auth[6:]
        return req.query.get("password")

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            q = req.query
            self.calls.append(dict(q))
            if self._token(req) not in self.tokens:
                return Reply.text(401, "badauth")
            if self.throttle:
                self.throttle -= 1
                return Reply(429, b'{"detail":"Request was throttled. Expected available in 1 second."}',
                             {"Content-Type": "application/json", "Retry-After": "1"})
            host = q.get("hostname", "").lower()
            if host not in self.names:
                return Reply.text(404, "nohost")
            wanted = {"A": q.get("myipv4", q.get("myip")), "AAAA": q.get("myipv6")}
            for rtype, v in wanted.items():
                if v == "preserve":
                    continue
                v = v or self.connection[rtype]
                try:
                    ok = ipaddress.ip_address(v).version == (4 if rtype == "A" else 6)
                except ValueError:
                    ok = False
                if not ok:
                    return Reply(400, b'{"detail":"invalid IP address"}', {"Content-Type": "application/json"})
                if self.records.get((host, rtype)) != v:
                    self.writes += 1
                self.records[(host, rtype)] = v
            return Reply.text(200, "good")
