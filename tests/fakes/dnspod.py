"""A fake Tencent Cloud DNSPod API 3.0 endpoint (version 2021-03-23).

It verifies TC3-HMAC-SHA256 with its own implementation of Tencent's "Signature
v3" description (not the agent's), rejects an ``X-TC-Timestamp`` more than 5
minutes from its own clock with the service's current SignatureExpire text
(which carries the server's unix time), answers every error with HTTP 200 and
``Response.Error`` as the service does, and keeps records in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Dict, List, Optional

from tests.fakes.server import Reply, Request

WINDOW = 5 * 60
VERSION = "2021-03-23"
AUTH_RE = re.compile(r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def _h(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_expected(secret: str, service: str, ts: int, method: str, path: str, query: str,
                 headers: Dict[str, str], signed: str, payload: bytes) -> str:
    """Written from Tencent's description, independently of edgeddns.providers.dnspod."""
    day = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")
    lines = [method, path, query]
    lines += [name + ":" + headers.get(name, "").strip().lower() if name == "x-tc-action"
              else name + ":" + headers.get(name, "").strip() for name in signed.split(";")]
    lines += ["", signed, hashlib.sha256(payload).hexdigest()]
    creq = "\n".join(lines)
    sts = "\n".join(["TC3-HMAC-SHA256", str(ts), f"{day}/{service}/tc3_request",
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = _h(_h(_h(("TC3" + secret).encode(), day), service), "tc3_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()


class FakeDnspod:
    def __init__(self, keys: Dict[str, str], domains: List[str]):
        self.keys = dict(keys)
        self.domains = [d.lower() for d in domains]
        self.records: Dict[int, Dict] = {}
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()
        self._ids = itertools.count(1600000001)
        self.server = None

    # -- helpers the tests use ---------------------------------------------------

    def _split(self, fqdn: str):
        for d in sorted(self.domains, key=len, reverse=True):
            if fqdn == d:
                return "@", d
            if fqdn.endswith("." + d):
                return fqdn[: -len(d) - 1], d
        raise KeyError(fqdn)

    def add(self, fqdn: str, rtype: str, value: str, ttl: int = 600) -> int:
        sub, dom = self._split(fqdn)
        return self._add(dom, sub, rtype, value, ttl)

    seed = add  # the name the shared tests use

    def _add(self, dom: str, sub: str, rtype: str, value: str, ttl: int) -> int:
        rid = next(self._ids)
        self.records[rid] = {"RecordId": rid, "Domain": dom, "Name": sub, "Type": rtype, "Value": value,
                             "Line": "默认", "LineId": "0", "TTL": ttl, "Status": "ENABLE", "Weight": None,
                             "MonitorStatus": "", "Remark": "", "MX": 0, "DefaultNS": False,
                             "UpdatedOn": "2024-01-01 00:00:00"}
        return rid

    def values(self, fqdn: str, rtype: str) -> List[str]:
        sub, dom = self._split(fqdn)
        return [r["Value"] for r in self.records.values()
                if r["Domain"] == dom and r["Name"] == sub and r["Type"] == rtype]

    # -- protocol ------------------------------------------------------------------

    def ok(self, body: Dict) -> Reply:
        body = dict(body, RequestId=str(uuid.uuid4()))
        return Reply.json(200, {"Response": body})

    def error(self, code: str, message: str) -> Reply:
        # Errors are HTTP 200 too; only Response.Error tells them apart.
        return Reply.json(200, {"Response": {"Error": {"Code": code, "Message": message},
                                             "RequestId": str(uuid.uuid4())}})

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        h = req.headers
        if req.method != "POST" or req.path != "/":
            return self.error("InvalidParameter", "Only POST / is served here.")
        m = AUTH_RE.match(h.get("authorization", ""))
        if not m:
            return self.error("AuthFailure.InvalidAuthorization", "Authorization header is not valid.")
        secret_id, day, service, signed, signature = m.groups()
        try:
            ts = int(h.get("x-tc-timestamp", ""))
        except ValueError:
            return self.error("InvalidParameter", "X-TC-Timestamp is not an integer.")
        now = int(req.received)
        if abs(ts - now) > WINDOW:
            return self.error("AuthFailure.SignatureExpire",
                              "Signature expired. Please use local time and enable NTP service for time "
                              "synchronization to avoid a deviation between `Timestamp` and the server "
                              f"time {now}.")
        secret = self.keys.get(secret_id)
        if secret is None:
            return self.error("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that "
                              "your SecretId is correct.")
        names = signed.split(";")
        if "host" not in names or "content-type" not in names or names != sorted(names):
            return self.error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                              "Please check your signature is correct.")
        utc_day = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")
        expected = tc3_expected(secret, service, ts, "POST", "/", req.query_string, h, signed, req.body)
        if service != "dnspod" or day != utc_day or not hmac.compare_digest(expected, signature):
            return self.error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                              "Please check your signature is correct.")
        if h.get("x-tc-version") != VERSION:
            return self.error("InvalidParameter", "The API version is not valid.")
        action = h.get("x-tc-action", "")
        try:
            params = json.loads(req.body or b"{}")
        except ValueError:
            return self.error("InvalidParameter", "The request body is not valid JSON.")
        self.calls.append(action)
        if self.throttle:
            self.throttle -= 1
            # [unverified] message text; the code is from the documented common error list.
            return self.error("RequestLimitExceeded", "Your current request times exceeds the frequency limit. "
                              "Please reduce the frequency of calls.")
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            return self.error("InvalidAction", f"The action `{action}` is not existed.")
        return handler(params)

    def _domain(self, p: Dict) -> Optional[str]:
        dom = str(p.get("Domain", "")).lower()
        return dom if dom in self.domains else None

    def do_DescribeDomainList(self, p: Dict) -> Reply:
        offset, limit = int(p.get("Offset", 0)), int(p.get("Limit", 3000))
        page = self.domains[offset:offset + limit]
        if not self.domains:
            return self.error("ResourceNotFound.NoDataOfDomain", "The domain list is empty.")
        return self.ok({"DomainCountInfo": {"AllTotal": len(self.domains), "DomainTotal": len(self.domains)},
                        "DomainList": [{"DomainId": 1000 + i, "Name": d, "Status": "ENABLE", "TTL": 600}
                                       for i, d in enumerate(page, start=offset)]})

    def do_DescribeRecordList(self, p: Dict) -> Reply:
        dom = self._domain(p)
        if dom is None:
            return self.error("ResourceNotFound.NoDataOfDomain", "The domain does not exist.")
        recs = [r for r in self.records.values() if r["Domain"] == dom
                and (not p.get("Subdomain") or r["Name"] == p["Subdomain"])
                and (not p.get("RecordType") or r["Type"] == p["RecordType"])]
        if not recs:
            # The documented behaviour: no records is an error, not an empty list.
            return self.error("ResourceNotFound.NoDataOfRecord", "记录列表为空。")
        out = [{k: v for k, v in r.items() if k != "Domain"} for r in recs]
        return self.ok({"RecordCountInfo": {"SubdomainCount": len(out), "ListCount": len(out),
                                            "TotalCount": len(out)}, "RecordList": out})

    def _check_write(self, p: Dict) -> Optional[Reply]:
        for k in ("Domain", "RecordType", "RecordLine", "Value"):
            if not p.get(k):
                return self.error("MissingParameter", f"The request is missing a required parameter `{k}`.")
        if self._domain(p) is None:
            return self.error("ResourceNotFound.NoDataOfDomain", "The domain does not exist.")
        if p["RecordLine"] != "默认":
            return self.error("InvalidParameter.RecordLineInvalid", "The record line is invalid.")
        return None

    def do_CreateRecord(self, p: Dict) -> Reply:
        bad = self._check_write(p)
        if bad:
            return bad
        sub = p.get("SubDomain") or "@"
        dom = self._domain(p)
        if any(r["Domain"] == dom and r["Name"] == sub and r["Type"] == p["RecordType"] and r["Value"] == p["Value"]
               for r in self.records.values()):
            return self.error("InvalidParameter.DomainRecordExist", "The record already exists.")
        self.writes += 1
        rid = self._add(dom, sub, p["RecordType"], p["Value"], int(p.get("TTL", 600)))
        return self.ok({"RecordId": rid})

    def do_ModifyRecord(self, p: Dict) -> Reply:
        bad = self._check_write(p)
        if bad:
            return bad
        rec = self.records.get(p.get("RecordId"))  # an integer in this API
        if rec is None or rec["Domain"] != self._domain(p):
            return self.error("InvalidParameter.RecordIdInvalid", "The record ID is invalid.")
        self.writes += 1
        rec.update({"Name": p.get("SubDomain") or "@", "Type": p["RecordType"], "Value": p["Value"],
                    "TTL": int(p.get("TTL", rec["TTL"]))})
        return self.ok({"RecordId": rec["RecordId"]})
