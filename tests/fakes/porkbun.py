"""A fake Porkbun API v3 (``/api/json/v3``), from Porkbun's API documentation.

Every call is a POST with ``apikey``/``secretapikey`` in the JSON body; answers
are ``{"status": "SUCCESS", ...}`` or HTTP 400 ``{"status": "ERROR",
"message": ...}`` with the service's texts ("Invalid API key. (002)", "Domain
is not opted in to API access.", "Invalid domain."). Numbers in records are
strings, as Porkbun sends them; the minimum TTL is 600.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import threading
from typing import Dict, List, Optional, Set

from tests.fakes.server import Reply, Request

PREFIX = "/api/json/v3"


class FakePorkbun:
    def __init__(self, keys: Dict[str, str], domains: List[str], *, opted_out: Optional[Set[str]] = None):
        self.keys = dict(keys)  # apikey -> secretapikey
        self.domains = [d.lower() for d in domains]
        self.opted_out = set(opted_out or ())
        self.records: Dict[str, Dict] = {}
        self.ids = itertools.count(106926652)
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.bodies: List[Dict] = []
        self.lock = threading.Lock()

    @staticmethod
    def ok(**kw) -> Reply:
        return Reply.json(200, dict(status="SUCCESS", **kw))

    @staticmethod
    def error(message: str, status: int = 400) -> Reply:
        return Reply.json(status, {"status": "ERROR", "message": message})

    def add(self, fqdn: str, rtype: str, content: str, ttl: int = 600) -> str:
        rid = str(next(self.ids))
        self.records[rid] = {"id": rid, "name": fqdn, "type": rtype, "content": content, "ttl": str(ttl),
                             "prio": "0", "notes": ""}
        return rid

    def values(self, name: str, rtype: str) -> List[str]:
        return [r["content"] for r in self.records.values() if r["name"] == name and r["type"] == rtype]

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.add(name, rtype, value)

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if req.method != "POST" or not req.path.startswith(PREFIX + "/"):
            return Reply.text(404, "Not Found")
        path = req.path[len(PREFIX):]
        self.calls.append(path)
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.error("Invalid JSON.")
        self.bodies.append(body)
        if self.keys.get(body.get("apikey")) != body.get("secretapikey") or not body.get("secretapikey"):
            return self.error("Invalid API key. (002)")
        if self.throttle:
            self.throttle -= 1
            return self.error("Too many requests. Please try again later.", 429)
        if path == "/domain/listAll":
            start = int(body.get("start") or 0)
            return self.ok(domains=[{"domain": d, "status": "ACTIVE", "tld": d.rsplit(".", 1)[-1],
                                     "createDate": "2024-01-01 00:00:00", "expireDate": "2027-01-01 00:00:00",
                                     "securityLock": "1", "whoisPrivacy": "1", "autoRenew": 0, "notLocal": 0}
                                    for d in self.domains[start:start + 1000]])
        m = re.fullmatch(r"/dns/(retrieveByNameType|editByNameType|create)/([^/]+)(?:/([^/]+)(?:/([^/]+))?)?", path)
        if not m:
            return self.error("Invalid endpoint.")
        action, domain, rtype, sub = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
        if domain not in self.domains:
            return self.error("Invalid domain.")
        if domain in self.opted_out:
            return self.error("Domain is not opted in to API access.")
        if action == "create":
            sub, rtype = str(body.get("name") or ""), str(body.get("type") or "")
        fqdn = f"{sub}.{domain}" if sub else domain
        if action == "retrieveByNameType":
            return self.ok(records=[r for r in self.records.values() if r["name"] == fqdn and r["type"] == rtype])
        content = str(body.get("content") or "")
        try:
            ip = ipaddress.ip_address(content)
        except ValueError:
            return self.error("Invalid record content.")
        if (rtype == "A") != (ip.version == 4) or rtype not in ("A", "AAAA"):
            return self.error("Invalid record content.")
        ttl = max(int(body.get("ttl") or 600), 600)
        if action == "create":
            self.writes += 1
            return self.ok(id=int(self.add(fqdn, rtype, content, ttl)))
        hits = [r for r in self.records.values() if r["name"] == fqdn and r["type"] == rtype]
        if not hits:
            return self.error("Edit error: We were unable to edit the DNS record.")
        self.writes += 1
        for r in hits:
            r.update(content=content, ttl=str(ttl))
        return self.ok()
