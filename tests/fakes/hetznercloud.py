"""A fake Hetzner Cloud DNS API (``/v1/zones``, RRsets and their actions), from the Cloud API reference.

``Authorization: Bearer``; errors ``{"error": {"code", "message", "details"}}``
(401 ``unauthorized``, 403 ``token_readonly`` for a read-only token, 404
``not_found``, 422 ``invalid_input`` / ``incorrect_zone_mode``, 429
``rate_limit_exceeded`` with ``RateLimit-*`` headers). Zones are addressed by
id or name; RRset names are relative ("@" is the apex); changes answer 201
with an ``action`` object.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import threading
from typing import Dict, List, Set, Tuple

from tests.fakes.server import Reply, Request

PREFIX = "/v1"


class FakeHetznerCloud:
    def __init__(self, tokens: Dict[str, bool], zones: List[str]):
        self.tokens = dict(tokens)  # token -> may write
        self.zones: Dict[int, str] = {100 + i: z.lower() for i, z in enumerate(zones)}
        self.rrsets: Dict[Tuple[int, str, str], Dict] = {}
        self.actions = itertools.count(1)
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.secondary: Set[int] = set()
        self.lock = threading.Lock()

    @staticmethod
    def error(status: int, code: str, message: str, headers=None) -> Reply:
        return Reply.json(status, {"error": {"code": code, "message": message, "details": {}}}, headers)

    def action(self, command: str, zid: int) -> Dict:
        return {"id": next(self.actions), "command": command, "status": "running", "progress": 0,
                "started": "2026-01-01T00:00:00+00:00", "finished": None,
                "resources": [{"id": zid, "type": "zone"}], "error": None}

    def _split(self, fqdn: str) -> Tuple[int, str]:
        zid = max((i for i, z in self.zones.items() if fqdn == z or fqdn.endswith("." + z)),
                  key=lambda i: len(self.zones[i]))
        z = self.zones[zid]
        return zid, "@" if fqdn == z else fqdn[: -len(z) - 1]

    def values(self, name: str, rtype: str) -> List[str]:
        rs = self.rrsets.get((*self._split(name), rtype))
        return [r["value"] for r in rs["records"]] if rs else []

    def seed(self, name: str, rtype: str, value: str, ttl: int = 3600) -> None:
        zid, n = self._split(name)
        self.rrsets[(zid, n, rtype)] = {"id": f"{n}/{rtype}", "name": n, "type": rtype, "ttl": ttl, "labels": {},
                                        "protection": {"change": False}, "zone": zid,
                                        "records": [{"value": value, "comment": ""}]}

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _zone(self, id_or_name: str):
        for i, z in self.zones.items():
            if id_or_name in (str(i), z):
                return i
        return None

    def _handle(self, req: Request) -> Reply:
        if not req.path.startswith(PREFIX + "/"):
            return self.error(404, "not_found", "not found")
        path = req.path[len(PREFIX):]
        self.calls.append(f"{req.method} {path}")
        auth = req.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token not in self.tokens:
            return self.error(401, "unauthorized", "unable to authenticate")
        if self.throttle:
            self.throttle -= 1
            return self.error(429, "rate_limit_exceeded", "limit of 3600 requests per hour reached",
                              {"RateLimit-Limit": "3600", "RateLimit-Remaining": "0", "RateLimit-Reset": "1",
                               "Retry-After": "1"})
        if path == "/zones" and req.method == "GET":
            zs = [{"id": i, "name": z, "mode": "secondary" if i in self.secondary else "primary", "ttl": 3600,
                   "labels": {}, "status": "ok"} for i, z in self.zones.items()]
            return Reply.json(200, {"zones": zs, "meta": {"pagination": {
                "page": 1, "per_page": 50, "previous_page": None, "next_page": None, "last_page": 1,
                "total_entries": len(zs)}}})
        m = re.fullmatch(r"/zones/([^/]+)/rrsets(?:/([^/]+)/([A-Z]+)(?:/actions/([a-z_]+))?)?", path)
        zid = self._zone(m.group(1)) if m else None
        if zid is None:
            return self.error(404, "not_found", "zone not found")
        name, rtype, action = m.group(2), m.group(3), m.group(4)
        if req.method == "GET" and name:
            rs = self.rrsets.get((zid, name, rtype))
            if rs is None:
                return self.error(404, "not_found", "rrset not found")
            return Reply.json(200, {"rrset": rs})
        if req.method != "POST":
            return self.error(405, "method_not_allowed", "method not allowed")
        if not self.tokens[token]:
            return self.error(403, "token_readonly", "The token you are using is only authorized to read")
        if zid in self.secondary:
            return self.error(422, "incorrect_zone_mode", "This operation is not supported for this Zone's mode.")
        body = req.json() if req.body else {}
        if name is None:  # create
            name, rtype = str(body.get("name", "")), str(body.get("type", ""))
            if (zid, name, rtype) in self.rrsets:
                return self.error(409, "uniqueness_error", "rrset already exists")
        elif (zid, name, rtype) not in self.rrsets:
            return self.error(404, "not_found", "rrset not found")
        if action in (None, "set_records"):
            recs = body.get("records")
            try:
                ok = bool(recs) and all(ipaddress.ip_address(r["value"]).version == (4 if rtype == "A" else 6)
                                        for r in recs)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                return self.error(422, "invalid_input", "invalid input in field 'records'")
        self.writes += 1
        fqdn = self.zones[zid] if name == "@" else f"{name}.{self.zones[zid]}"
        if action is None:
            self.seed(fqdn, rtype, body["records"][0]["value"], int(body.get("ttl") or 3600))
            self.rrsets[(zid, name, rtype)]["records"] = [{"value": r["value"], "comment": ""} for r in body["records"]]
            return Reply.json(201, {"rrset": self.rrsets[(zid, name, rtype)], "action": self.action("create_rrset",
                                                                                                    zid)})
        rs = self.rrsets[(zid, name, rtype)]
        if action == "set_records":
            rs["records"] = [{"value": r["value"], "comment": ""} for r in body["records"]]
        elif action == "change_ttl":
            rs["ttl"] = int(body.get("ttl") or 3600)
        else:
            return self.error(404, "not_found", "action not found")
        return Reply.json(201, {"action": self.action(f"{action}_rrset", zid)})
