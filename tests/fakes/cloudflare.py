"""A fake Cloudflare API v4 (zones and DNS records).

Checks the Bearer token (and which zones it may see), keeps records in
memory, and answers with the v4 envelope and the service's error codes:
9109 for an unknown token, 10000 for a zone the token may not touch, 7003 for
an unroutable id, 81058 for an identical record, 429 with ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import uuid
from typing import Dict, List, Optional, Set

from tests.fakes.server import Reply, Request

PREFIX = "/client/v4"


def _hexid() -> str:
    return uuid.uuid4().hex


class FakeCloudflare:
    def __init__(self, tokens: Dict[str, Optional[Set[str]]], zones: List[str]):
        #: token -> zone names it may see (None: all)
        self.tokens = dict(tokens)
        self.zones: Dict[str, str] = {_hexid(): z.lower() for z in zones}  # id -> name
        self.records: Dict[str, Dict] = {}  # record id -> record
        self.calls: List[str] = []  # "METHOD /path", in order
        self.writes = 0
        self.throttle = 0  # answer this many next calls with 429
        self.dup_code = 81058
        self.stale_reads = 0  # the next N record lists miss every record (another writer raced us)
        self.lock = threading.Lock()
        self.requests: List[Request] = []

    # -- helpers for tests ----------------------------------------------------
    def zone_id(self, name: str) -> str:
        return next(i for i, z in self.zones.items() if z == name)

    def add(self, name: str, rtype: str, content: str, *, proxied: bool = False, ttl: int = 1) -> str:
        zname = self._zone_of(name)
        assert zname, name
        zid = self.zone_id(zname)
        rid = _hexid()
        self.records[rid] = {
            "id": rid, "zone_id": zid, "zone_name": zname, "name": name, "type": rtype, "content": content,
            "proxiable": True, "proxied": proxied, "ttl": 1 if proxied else ttl, "locked": False,
            "meta": {"auto_added": False, "managed_by_apps": False, "managed_by_argo_tunnel": False},
            "comment": None, "tags": [], "created_on": "2026-01-01T00:00:00.000000Z",
            "modified_on": "2026-01-01T00:00:00.000000Z",
        }
        return rid

    def find(self, name: str, rtype: Optional[str] = None) -> List[Dict]:
        return [r for r in self.records.values() if r["name"] == name and (rtype is None or r["type"] == rtype)]

    def _zone_of(self, name: str) -> Optional[str]:
        best = None
        for z in self.zones.values():
            if (name == z or name.endswith("." + z)) and (best is None or len(z) > len(best)):
                best = z
        return best

    # -- envelope --------------------------------------------------------------
    @staticmethod
    def ok(result, info: Optional[Dict] = None) -> Reply:
        body = {"success": True, "errors": [], "messages": [], "result": result}
        if info is not None:
            body["result_info"] = info
        return Reply.json(200, body, {"CF-RAY": "8f0c0ffee0000000-FRA"})

    @staticmethod
    def error(status: int, code: int, message: str, headers: Optional[Dict[str, str]] = None) -> Reply:
        return Reply.json(status, {"success": False, "errors": [{"code": code, "message": message}],
                                   "messages": [], "result": None}, headers)

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            self.requests.append(req)
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if not req.path.startswith(PREFIX + "/"):
            return self.error(400, 7000, "No route for that URI")
        path = req.path[len(PREFIX):]
        self.calls.append(f"{req.method} {path}")
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return Reply.json(400, {"success": False, "errors": [{"code": 6003, "message": "Invalid request "
                              "headers", "error_chain": [{"code": 6111, "message": "Invalid format for "
                                                          "Authorization header"}]}],
                                    "messages": [], "result": None})
        token = auth[len("Bearer "):]
        if token not in self.tokens:
            return self.error(403, 9109, "Invalid access token")
        if self.throttle:
            self.throttle -= 1
            return self.error(429, 971, "Please wait and consider throttling your request speed",
                              {"Retry-After": "1"})
        visible = self.tokens[token]
        if path == "/zones" and req.method == "GET":
            name = req.query.get("name")
            zs = [{"id": i, "name": z, "status": "active", "paused": False, "type": "full"}
                  for i, z in self.zones.items()
                  if (visible is None or z in visible) and (name is None or z == name.lower())]
            return self.ok(zs, {"page": 1, "per_page": int(req.query.get("per_page", 20)), "count": len(zs),
                                "total_count": len(zs), "total_pages": 1})
        m = re.fullmatch(r"/zones/([^/]+)/dns_records(?:/([^/]+))?", path)
        if not m:
            return self.error(400, 7000, "No route for that URI")
        zid, rid = m.group(1), m.group(2)
        if zid not in self.zones:
            return self.error(400, 7003, f"Could not route to /zones/{zid}/dns_records, perhaps your object "
                              "identifier is invalid?")
        if visible is not None and self.zones[zid] not in visible:
            return self.error(403, 10000, "Authentication error")
        if rid is None and req.method == "GET":
            recs = [r for r in self.records.values() if r["zone_id"] == zid
                    and ("type" not in req.query or r["type"] == req.query["type"])
                    and ("name" not in req.query or r["name"] == req.query["name"].lower())]
            if self.stale_reads:
                self.stale_reads -= 1
                recs = []
            return self.ok(recs, {"page": 1, "per_page": int(req.query.get("per_page", 100)), "count": len(recs),
                                  "total_count": len(recs), "total_pages": 1})
        if rid is None and req.method == "POST":
            return self._create(zid, req.json())
        if rid is not None and req.method == "PATCH":
            rec = self.records.get(rid)
            if rec is None or rec["zone_id"] != zid:
                return self.error(404, 81044, "Record does not exist.")
            return self._patch(rec, req.json())
        return self.error(405, 10405, "Method not allowed for this API call")

    def _invalid(self, rtype: str, content: str) -> Optional[Reply]:
        try:
            ip = ipaddress.ip_address(content)
        except ValueError:
            ip = None
        if rtype == "A" and (ip is None or ip.version != 4):
            return self.error(400, 9005, "Content for A record must be a valid IPv4 address.")
        if rtype == "AAAA" and (ip is None or ip.version != 6):
            return self.error(400, 9006, "Content for AAAA record must be a valid IPv6 address.")
        return None

    def _create(self, zid: str, body) -> Reply:
        if not isinstance(body, dict) or not {"type", "name", "content"} <= set(body):
            return self.error(400, 9207, "Request body is invalid.")
        name, rtype, content = str(body["name"]).lower(), body["type"], body["content"]
        zname = self.zones[zid]
        if not (name == zname or name.endswith("." + zname)):
            return self.error(400, 9007, "Record name is not part of the zone.")
        bad = self._invalid(rtype, content)
        if bad:
            return bad
        if any(r["content"] == content for r in self.find(name, rtype)):
            msg = "An identical record already exists." if self.dup_code == 81058 else "Record already exists."
            return self.error(400, self.dup_code, msg)
        proxied = body.get("proxied", False)
        if not isinstance(proxied, bool) or not isinstance(body.get("ttl", 1), int):
            return self.error(400, 9207, "Request body is invalid.")
        self.writes += 1
        rid = self.add(name, rtype, content, proxied=proxied, ttl=body.get("ttl", 1))
        return self.ok(self.records[rid])

    def _patch(self, rec: Dict, body) -> Reply:
        if not isinstance(body, dict):
            return self.error(400, 9207, "Request body is invalid.")
        new = dict(rec)
        for k in ("content", "ttl", "proxied", "comment"):
            if k in body:
                new[k] = body[k]
        bad = self._invalid(new["type"], new["content"])
        if bad:
            return bad
        if new["proxied"]:
            new["ttl"] = 1
        self.writes += 1
        rec.update(new)
        return self.ok(rec)
