"""A fake DigitalOcean API v2 (domains and domain records), from DigitalOcean's API reference.

Bearer tokens; errors ``{"id": "unauthorized", "message": "Unable to
authenticate you"}`` (401), ``not_found`` (404), ``too_many_requests`` (429
with ``ratelimit-limit``/``-remaining``/``-reset`` headers),
``unprocessable_entity`` (422). Record names are relative ("@" is the apex);
``GET .../records?name=`` takes the full name, as documented.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import threading
import time
from typing import Dict, List, Optional

from tests.fakes.server import Reply, Request

PREFIX = "/v2"


class FakeDigitalocean:
    def __init__(self, tokens: List[str], domains: List[str]):
        self.tokens = set(tokens)
        self.domains = [d.lower() for d in domains]
        self.records: Dict[int, Dict] = {}
        self.ids = itertools.count(28448429)
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()

    @staticmethod
    def error(status: int, ident: str, message: str, headers: Optional[Dict[str, str]] = None) -> Reply:
        return Reply.json(status, {"id": ident, "message": message}, headers)

    def _fqdn(self, r: Dict) -> str:
        return r["domain"] if r["name"] == "@" else f"{r['name']}.{r['domain']}"

    def add(self, fqdn: str, rtype: str, data: str, ttl: int = 1800) -> int:
        domain = max((d for d in self.domains if fqdn == d or fqdn.endswith("." + d)), key=len)
        rid = next(self.ids)
        name = "@" if fqdn == domain else fqdn[: -len(domain) - 1]
        self.records[rid] = {"id": rid, "type": rtype, "name": name, "data": data, "priority": None, "port": None,
                             "ttl": ttl, "weight": None, "flags": None, "tag": None, "domain": domain}
        return rid

    def values(self, name: str, rtype: str) -> List[str]:
        return [r["data"] for r in self.records.values() if self._fqdn(r) == name and r["type"] == rtype]

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.add(name, rtype, value)

    @staticmethod
    def public(r: Dict) -> Dict:
        return {k: v for k, v in r.items() if k != "domain"}

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if not req.path.startswith(PREFIX + "/"):
            return self.error(404, "not_found", "The resource you requested could not be found.")
        path = req.path[len(PREFIX):]
        self.calls.append(f"{req.method} {path}")
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self.error(401, "unauthorized", "Unable to authenticate you")
        if self.throttle:
            self.throttle -= 1
            return self.error(429, "too_many_requests", "API Rate limit exceeded.",
                              {"ratelimit-limit": "5000", "ratelimit-remaining": "0",
                               "ratelimit-reset": str(int(time.time()) + 1)})
        if path == "/domains" and req.method == "GET":
            doms = [{"name": d, "ttl": 1800, "zone_file": ""} for d in self.domains]
            return Reply.json(200, {"domains": doms, "links": {}, "meta": {"total": len(doms)}})
        m = re.fullmatch(r"/domains/([^/]+)/records(?:/(\d+))?", path)
        if not m or m.group(1).lower() not in self.domains:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        domain, rid = m.group(1).lower(), m.group(2)
        if rid is None and req.method == "GET":
            q = req.query
            recs = [self.public(r) for r in self.records.values() if r["domain"] == domain
                    and ("type" not in q or r["type"] == q["type"]) and ("name" not in q or self._fqdn(r) == q["name"])]
            return Reply.json(200, {"domain_records": recs, "links": {}, "meta": {"total": len(recs)}})
        body = req.json() if req.body else {}
        if rid is None and req.method == "POST":
            bad = self._invalid(body.get("type"), body.get("data"))
            if bad:
                return bad
            fqdn = domain if body.get("name") in ("@", "", None) else f"{body['name']}.{domain}"
            self.writes += 1
            new = self.add(fqdn, body["type"], body["data"], int(body.get("ttl") or 1800))
            return Reply.json(201, {"domain_record": self.public(self.records[new])})
        rec = self.records.get(int(rid)) if rid else None
        if rec is None or rec["domain"] != domain:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        if req.method in ("PATCH", "PUT"):
            bad = self._invalid(body.get("type", rec["type"]), body.get("data", rec["data"]))
            if bad:
                return bad
            self.writes += 1
            for k in ("data", "ttl", "name"):
                if k in body:
                    rec[k] = body[k]
            return Reply.json(200, {"domain_record": self.public(rec)})
        return self.error(405, "method_not_allowed", "Method Not Allowed")

    def _invalid(self, rtype, data) -> Optional[Reply]:
        try:
            ok = ipaddress.ip_address(str(data)).version == (4 if rtype == "A" else 6)
        except ValueError:
            ok = False
        if not ok:
            return self.error(422, "unprocessable_entity", "Data needs to end with a dot (.)"
                              if rtype not in ("A", "AAAA") else "IP address did not match IPv4/IPv6 format")
        return None
