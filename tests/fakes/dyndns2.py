"""Fake dyndns2 (``/nic/update``) and DuckDNS update services.

The dyndns2 fake checks Basic auth and the User-Agent and answers with the
protocol's plain-text codes: ``good IP``, ``nochg IP``, ``badauth`` (HTTP 401),
``notfqdn``, ``nohost``, ``numhost``, ``badagent``; ``answers`` queues forced
answers (``911``, ``dnserr``, ``abuse``, ``!donator``...) for the next requests.
It keeps one address per host and family in memory.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
from typing import Dict, List, Optional, Tuple

from tests.fakes.server import Reply, Request

# Library defaults that services such as No-IP refuse as "badagent".
GENERIC_AGENTS = ("python-requests", "curl/", "wget/", "go-http-client", "python-urllib")


def _family(value: str) -> Optional[int]:
    try:
        return ipaddress.ip_address(value).version
    except ValueError:
        return None


class FakeDyndns2:
    def __init__(self, users: Dict[str, str], hosts: List[str], *, v6_param: str = "myip"):
        self.users = dict(users)
        self.hosts = {h.lower() for h in hosts}
        self.v6_param = v6_param
        self.records: Dict[Tuple[str, str], str] = {}  # (host, "A"/"AAAA") -> address
        self.calls: List[Dict[str, str]] = []  # query of each update request
        self.writes = 0
        self.answers: List[str] = []  # forced answers, served first
        self.requests: List[Request] = []
        self.lock = threading.Lock()
        self.readable = False  # the protocol cannot read records back

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            self.requests.append(req)
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if req.path != "/nic/update" or req.method not in ("GET", "POST"):
            return Reply.text(404, "Not Found")
        self.calls.append(dict(req.query))
        ua = req.headers.get("user-agent", "")
        if not ua.strip() or ua.lower().startswith(GENERIC_AGENTS):
            return Reply.text(200, "badagent")
        auth = req.headers.get("authorization", "")
        user = None
        if auth.startswith("Basic "):
            try:
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                u, p = "", ""
            if self.users.get(u) == p:
                user = u
        if user is None:
            return Reply(401, b"badauth", {"Content-Type": "text/plain",
                                            "WWW-Authenticate": 'Basic realm="DynDNS API Access"'})
        if self.answers:
            return Reply.text(200, self.answers.pop(0))
        names = [h for h in req.query.get("hostname", "").lower().split(",") if h]
        if not names:
            return Reply.text(200, "notfqdn")
        if len(names) > 20:
            return Reply.text(200, "numhost")
        updates: List[Tuple[str, str]] = []
        for param in {"myip", self.v6_param}:
            v = req.query.get(param)
            if v is None or v == "no":
                continue
            fam = _family(v)
            if fam is None:
                return Reply.text(200, "dnserr")
            updates.append(("A" if fam == 4 else "AAAA", v))
        if not updates:
            # The protocol would take the connection's address; a test never wants that.
            return Reply.text(200, "dnserr")
        lines = []
        for name in names:
            if "." not in name:
                lines.append("notfqdn")
                continue
            if name not in self.hosts:
                lines.append("nohost")
                continue
            changed = False
            for rtype, v in updates:
                if self.records.get((name, rtype)) != v:
                    self.records[(name, rtype)] = v
                    changed = True
            self.writes += changed
            lines.append(("good " if changed else "nochg ") + ",".join(v for _, v in updates))
        return Reply.text(200, "\n".join(lines))

    # -- matrix contract ---------------------------------------------------------
    def values(self, name: str, rtype: str) -> List[str]:
        v = self.records.get((name, rtype))
        return [v] if v else []

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.records[(name, rtype)] = value


class FakeDuckDNS:
    """``/update?domains=&token=&ip=|ipv6=&verbose=`` answering ``OK`` / ``KO``."""

    def __init__(self, token: str, domains: List[str]):
        self.token = token
        self.domains = set(domains)
        self.records: Dict[Tuple[str, str], str] = {}
        self.calls: List[Dict[str, str]] = []
        self.writes = 0
        self.lock = threading.Lock()
        self.readable = False

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            if req.path != "/update":
                return Reply.text(404, "Not Found")
            q = req.query
            self.calls.append(dict(q))
            subs = [d for d in q.get("domains", "").split(",") if d]
            if q.get("token") != self.token or not subs or any(d not in self.domains for d in subs):
                return Reply.text(200, "KO")
            changes = []
            for key, rtype in (("ip", None), ("ipv6", "AAAA")):
                v = q.get(key)
                if v:
                    fam = _family(v)
                    if fam is None:
                        return Reply.text(200, "KO")
                    changes.append((rtype or ("A" if fam == 4 else "AAAA"), v))
            changed = False
            for d in subs:
                for rtype, v in changes:
                    if self.records.get((d, rtype)) != v:
                        self.records[(d, rtype)] = v
                        changed = True
            self.writes += changed
            if q.get("verbose") == "true":
                v4 = next((v for t, v in changes if t == "A"), "")
                v6 = next((v for t, v in changes if t == "AAAA"), "")
                return Reply.text(200, f"OK\n{v4}\n{v6}\n{'UPDATED' if changed else 'NOCHANGE'}")
            return Reply.text(200, "OK")
