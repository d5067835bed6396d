"""A fake Huawei Cloud DNS endpoint (public zones, v2 API) behind an APIG-style gateway.

The gateway part verifies SDK-HMAC-SHA256 with its own implementation of the
published algorithm (not the agent's), rejects an ``X-Sdk-Date`` more than 15
minutes from its own clock with the observed ``APIGW.0301`` body that carries
``server time:...``, and answers other gateway failures with the observed
``error_code``/``error_msg`` bodies. The DNS part keeps zones and record sets in
memory; the ``name`` filters match by substring, as the real ones are fuzzy.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import threading
import time
import uuid
from typing import Dict, List, Optional
from urllib.parse import parse_qsl

from tests.fakes.server import Reply, Request

WINDOW = 15 * 60
FMT = "%Y%m%dT%H%M%SZ"
AUTH_RE = re.compile(r"^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([a-z0-9;_-]+),\s*"
                     r"Signature=([0-9a-f]{64})$")
UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _pct(s: str) -> str:
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in s.encode())


def sdk_expected(sk: str, method: str, path: str, raw_query: str, headers: Dict[str, str], signed: str,
                 body: bytes, sdk_date: str) -> str:
    """Written from Huawei's APIG signing description, independently of edgeddns.providers.huaweicloud."""
    uri = path if path.endswith("/") else path + "/"
    # The SDKs sort the raw keys, then encode (not the encoded keys).
    pairs = [(_pct(k), _pct(v)) for k, v in sorted(parse_qsl(raw_query, keep_blank_values=True))]
    query = "&".join(k + "=" + v for k, v in pairs)
    hdrs = "".join(n + ":" + headers.get(n, "").strip() + "\n" for n in signed.split(";"))
    creq = "\n".join([method, uri, query, hdrs, signed, hashlib.sha256(body).hexdigest()])
    sts = "SDK-HMAC-SHA256\n" + sdk_date + "\n" + hashlib.sha256(creq.encode()).hexdigest()
    return hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()


def _hex_id() -> str:
    return uuid.uuid4().hex


class FakeHuaweiDns:
    def __init__(self, keys: Dict[str, str], zones: List[str]):
        self.keys = dict(keys)
        self.zones: Dict[str, str] = {_hex_id(): z.lower() for z in zones}  # id -> name (no dot)
        self.recordsets: Dict[str, Dict] = {}
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()
        self.server = None

    # -- helpers the tests use -----------------------------------------------------

    def zone_of(self, fqdn: str) -> Optional[str]:
        best = None
        for zid, z in self.zones.items():
            if (fqdn == z or fqdn.endswith("." + z)) and (best is None or len(z) > len(self.zones[best])):
                best = zid
        return best

    def add(self, fqdn: str, rtype: str, value: str, ttl: int = 300) -> str:
        zid = self.zone_of(fqdn)
        return self._add(zid, fqdn + ".", rtype, [value], ttl)

    seed = add  # the name the shared tests use

    def _add(self, zid: str, name: str, rtype: str, records: List[str], ttl: int) -> str:
        rid = _hex_id()
        self.recordsets[rid] = {"id": rid, "name": name, "type": rtype, "ttl": ttl, "records": list(records),
                                "status": "ACTIVE", "zone_id": zid, "zone_name": self.zones[zid] + ".",
                                "default": False, "description": None,
                                "create_at": "2024-01-01T00:00:00.000", "update_at": None, "links": {}}
        return rid

    def values(self, fqdn: str, rtype: str) -> List[str]:
        out: List[str] = []
        for rs in self.recordsets.values():
            if rs["name"] == fqdn + "." and rs["type"] == rtype:
                out.extend(rs["records"])
        return out

    # -- gateway -------------------------------------------------------------------

    def gw_error(self, status: int, code: str, msg: str) -> Reply:
        return Reply.json(status, {"error_msg": msg, "error_code": code, "request_id": uuid.uuid4().hex})

    def dns_error(self, status: int, code: str, msg: str) -> Reply:
        # [unverified] the DNS service's own codes; the {"code","message"} shape is documented.
        return Reply.json(status, {"code": code, "message": msg})

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        h = req.headers
        m = AUTH_RE.match(h.get("authorization", ""))
        if not m:
            return self.gw_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                 "Authorization header is missing or malformed")
        ak, signed, signature = m.groups()
        sk = self.keys.get(ak)
        if sk is None:
            return self.gw_error(401, "APIGW.0301", f"Incorrect IAM authentication information: ak {ak} not exist")
        date = h.get("x-sdk-date", "")
        try:
            ts = calendar.timegm(time.strptime(date, FMT))
        except ValueError:
            return self.gw_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                 "x-sdk-date is invalid")
        now = req.received
        if abs(ts - now) > WINDOW:
            return self.gw_error(401, "APIGW.0301", "Incorrect IAM authentication information: calc aksk "
                                 f"signature fail:signature expired, signature time:{date},server time:"
                                 f"{time.strftime(FMT, time.gmtime(now))}")
        names = signed.split(";")
        if "host" not in names or "x-sdk-date" not in names:
            return self.gw_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                 "verify aksk signature fail")
        expected = sdk_expected(sk, req.method, req.path, req.query_string, h, signed, req.body, date)
        if not hmac.compare_digest(expected, signature):
            return self.gw_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                 "verify aksk signature fail")
        self.calls.append(f"{req.method} {req.path}")
        if self.throttle:
            self.throttle -= 1
            # [unverified] APIG flow-control code and text.
            return self.gw_error(429, "APIGW.0308", "The throttling threshold has been reached: "
                                 "policy user over ratelimit,limit:100,time:1 minute")
        return self._route(req)

    # -- DNS API -------------------------------------------------------------------

    def _route(self, req: Request) -> Reply:
        parts = req.path.rstrip("/").split("/")
        if req.method == "GET" and parts == ["", "v2", "zones"]:
            return self.list_zones(req.query)
        if len(parts) >= 5 and parts[:3] == ["", "v2", "zones"] and parts[4] == "recordsets":
            zid = parts[3]
            if zid not in self.zones:
                return self.dns_error(404, "DNS.0101", "The zone does not exist.")
            if req.method == "GET" and len(parts) == 5:
                return self.list_recordsets(zid, req.query)
            if req.method == "POST" and len(parts) == 5:
                return self.create(zid, req.json())
            if req.method == "PUT" and len(parts) == 6:
                return self.update(zid, parts[5], req.json())
        return self.gw_error(404, "APIGW.0101", "The API does not exist or has not been published in the "
                             "environment")

    def list_zones(self, q: Dict[str, str]) -> Reply:
        if q.get("type", "public") != "public":
            return Reply.json(200, {"links": {}, "zones": [], "metadata": {"total_count": 0}})
        want = q.get("name", "").rstrip(".").lower()
        zs = [{"id": zid, "name": z + ".", "zone_type": "public", "status": "ACTIVE", "ttl": 300,
               "record_num": 2, "pool_id": _hex_id()}
              for zid, z in sorted(self.zones.items(), key=lambda kv: kv[1]) if want in z]
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 500))
        return Reply.json(200, {"links": {}, "zones": zs[offset:offset + limit],
                                "metadata": {"total_count": len(zs)}})

    def list_recordsets(self, zid: str, q: Dict[str, str]) -> Reply:
        want = q.get("name", "").lower()
        rs = [r for r in self.recordsets.values() if r["zone_id"] == zid and want.rstrip(".") in r["name"]
              and (not q.get("type") or r["type"] == q["type"])]
        return Reply.json(200, {"links": {}, "recordsets": rs, "metadata": {"total_count": len(rs)}})

    def _valid(self, zid: str, body) -> Optional[Reply]:
        if not isinstance(body, dict):
            return self.dns_error(400, "DNS.0303", "The request body is invalid.")
        name = str(body.get("name", ""))
        zone = self.zones[zid]
        if not name.endswith(".") or not (name[:-1] == zone or name[:-1].endswith("." + zone)):
            return self.dns_error(400, "DNS.0305", "The record set name is invalid.")
        recs = body.get("records")
        if body.get("type") not in ("A", "AAAA") or not isinstance(recs, list) or not recs:
            return self.dns_error(400, "DNS.0306", "The record set type or records are invalid.")
        return None

    def create(self, zid: str, body) -> Reply:
        bad = self._valid(zid, body)
        if bad:
            return bad
        if any(r["zone_id"] == zid and r["name"] == body["name"] and r["type"] == body["type"]
               for r in self.recordsets.values()):
            return self.dns_error(400, "DNS.0312", "A record set with the same name and type already exists.")
        self.writes += 1
        rid = self._add(zid, body["name"], body["type"], body["records"], int(body.get("ttl") or 300))
        return Reply.json(202, dict(self.recordsets[rid], status="PENDING_CREATE"))

    def update(self, zid: str, rid: str, body) -> Reply:
        rs = self.recordsets.get(rid)
        if rs is None or rs["zone_id"] != zid:
            return self.dns_error(404, "DNS.0004", "The record set does not exist.")
        bad = self._valid(zid, body)
        if bad:
            return bad
        self.writes += 1
        rs.update(records=list(body["records"]), ttl=int(body.get("ttl") or rs["ttl"]))
        return Reply.json(202, dict(rs, status="PENDING_UPDATE"))
