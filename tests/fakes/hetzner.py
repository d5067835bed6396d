"""A fake Hetzner DNS API (``/api/v1``: zones and records), from Hetzner's DNS API documentation.

Auth is the ``Auth-API-Token`` header; a bad token gets 401
``{"message": "Invalid authentication credentials"}``; a missing record or
zone 404 ``{"error": {"message": "record not found", "code": 404}}``; a
throttled call 429 with ``Ratelimit-*`` headers. Record ids and zone ids are
opaque strings; names are relative ("@" is the apex); ``ttl`` is optional
(the zone's default applies when absent).
"""

from __future__ import annotations

import ipaddress
import re
import threading
import uuid
from typing import Dict, List, Optional

from tests.fakes.server import Reply, Request

PREFIX = "/api/v1"


def _id() -> str:
    return uuid.uuid4().hex[:22]


class FakeHetzner:
    def __init__(self, tokens: List[str], zones: List[str]):
        self.tokens = set(tokens)
        self.zones: Dict[str, str] = {_id(): z.lower() for z in zones}  # id -> name
        self.records: Dict[str, Dict] = {}
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()

    @staticmethod
    def error(status: int, message: str) -> Reply:
        return Reply.json(status, {"error": {"message": message, "code": status}})

    def _zone_of(self, fqdn: str) -> str:
        return max((i for i, z in self.zones.items() if fqdn == z or fqdn.endswith("." + z)),
                   key=lambda i: len(self.zones[i]))

    def add(self, fqdn: str, rtype: str, value: str, ttl: Optional[int] = None) -> str:
        zid = self._zone_of(fqdn)
        zone = self.zones[zid]
        rid = _id()
        rec = {"id": rid, "type": rtype, "name": "@" if fqdn == zone else fqdn[: -len(zone) - 1], "value": value,
               "zone_id": zid, "created": "2026-01-01 00:00:00.000 +0000 UTC",
               "modified": "2026-01-01 00:00:00.000 +0000 UTC"}
        if ttl is not None:
            rec["ttl"] = ttl
        self.records[rid] = rec
        return rid

    def _fqdn(self, r: Dict) -> str:
        zone = self.zones[r["zone_id"]]
        return zone if r["name"] == "@" else f"{r['name']}.{zone}"

    def values(self, name: str, rtype: str) -> List[str]:
        return [r["value"] for r in self.records.values() if self._fqdn(r) == name and r["type"] == rtype]

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.add(name, rtype, value)

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if not req.path.startswith(PREFIX + "/"):
            return Reply.text(404, "404 page not found")
        path = req.path[len(PREFIX):]
        self.calls.append(f"{req.method} {path}")
        if req.headers.get("auth-api-token") not in self.tokens:
            return Reply.json(401, {"message": "Invalid authentication credentials"})
        if self.throttle:
            self.throttle -= 1
            return Reply.json(429, {"message": "API rate limit exceeded"},
                              {"Ratelimit-Limit": "3600", "Ratelimit-Remaining": "0", "Ratelimit-Reset": "1",
                               "Retry-After": "1"})
        if path == "/zones" and req.method == "GET":
            zs = [{"id": i, "name": z, "ttl": 86400, "status": "verified", "records_count": 0}
                  for i, z in self.zones.items() if req.query.get("name", z) == z]
            if not zs:
                return self.error(404, "zone not found")
            return Reply.json(200, {"zones": zs, "meta": {"pagination": {"page": 1, "per_page": 100, "last_page": 1,
                                                                         "total_entries": len(zs)}}})
        if path == "/records" and req.method == "GET":
            zid = req.query.get("zone_id")
            if zid not in self.zones:
                return self.error(404, "zone not found")
            return Reply.json(200, {"records": [r for r in self.records.values() if r["zone_id"] == zid]})
        m = re.fullmatch(r"/records(?:/([^/]+))?", path)
        if not m:
            return self.error(404, "not found")
        body = req.json() if req.body else {}
        if not isinstance(body, dict) or body.get("zone_id") not in self.zones:
            return self.error(422, "invalid zone_id")
        try:
            ok = ipaddress.ip_address(str(body.get("value"))).version == (4 if body.get("type") == "A" else 6)
        except ValueError:
            ok = False
        if not ok or body.get("type") not in ("A", "AAAA") or not body.get("name"):
            return self.error(422, "invalid value")
        zone = self.zones[body["zone_id"]]
        fqdn = zone if body["name"] == "@" else f"{body['name']}.{zone}"
        if m.group(1) is None and req.method == "POST":
            self.writes += 1
            return Reply.json(200, {"record": self.records[self.add(fqdn, body["type"], body["value"],
                                                                    body.get("ttl"))]})
        rec = self.records.get(m.group(1) or "")
        if rec is None or req.method != "PUT":
            return self.error(404, "record not found")
        self.writes += 1
        rec.update(value=body["value"], type=body["type"], name=body["name"], zone_id=body["zone_id"])
        if "ttl" in body:
            rec["ttl"] = body["ttl"]
        return Reply.json(200, {"record": rec})
