"""A fake Alibaba Cloud DNS (Alidns 2015-01-09) endpoint.

It verifies the RPC signature, and the V3 (ACS3-HMAC-SHA256) signature, with
its own implementation of the documented algorithms (not the agent's), rejects timestamps more than 15 minutes from its
own clock and reused nonces with the service's real error bodies, and keeps
records in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import threading
import time
import uuid
from calendar import timegm
from typing import Callable, Dict, List, Optional, Union
from urllib.parse import parse_qsl

from tests.fakes.server import Reply, Request

WINDOW = 15 * 60


def _enc(s: str) -> str:
    # Written from the documented rule, independently of edgeddns.providers.alidns.
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_.~"):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


ACS3_AUTH = re.compile(r"^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([a-z0-9;-]+),Signature=([0-9a-f]{64})$")


def acs3_expected(secret: str, method: str, path: str, raw_query: str, headers: Dict[str, str], signed: str,
                  body: bytes) -> str:
    """ACS3-HMAC-SHA256 from Alibaba's V3 document, independently of edgeddns.providers.alidns."""
    pairs = sorted((_enc(k), _enc(v)) for k, v in parse_qsl(raw_query, keep_blank_values=True))
    creq = "\n".join([method, path or "/", "&".join(k + "=" + v for k, v in pairs),
                      "".join(n + ":" + headers.get(n, "").strip() + "\n" for n in signed.split(";")),
                      signed, hashlib.sha256(body).hexdigest()])
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(creq.encode()).hexdigest()
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def expected_signature(method: str, params: Dict[str, str], secret: str) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(_enc(k) + "=" + _enc(v) for k, v in pairs)
    sts = method + "&" + _enc("/") + "&" + _enc(canonical)
    return base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()


class FakeAlidns:
    def __init__(self, keys: Dict[str, str], domains: List[str], clock: Callable[[], float] = time.time):
        self.keys = dict(keys)
        self.domains = [d.lower() for d in domains]
        self.clock = clock
        self.records: Dict[str, Dict[str, str]] = {}  # RecordId -> record
        self.nonces: Dict[str, float] = {}
        self.calls: List[str] = []  # actions, in order
        self.writes = 0
        self.lock = threading.Lock()
        self._ids = itertools.count(100001)
        self.throttle = 0  # answer this many next calls with Throttling.User

    def error(self, status: int, code: str, message: str) -> Reply:
        rid = str(uuid.uuid4()).upper()
        return Reply.json(status, {
            "RequestId": rid, "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Alidns&requestId={rid}",
            "HostId": "alidns.aliyuncs.com", "Code": code,
        }, {"X-Acs-Request-Id": rid})

    def add(self, rr: str, domain: str, rtype: str, value: str, ttl: int = 600) -> str:
        rid = str(next(self._ids))
        self.records[rid] = {"RecordId": rid, "RR": rr, "DomainName": domain, "Type": rtype, "Value": value,
                             "TTL": ttl, "Line": "default", "Status": "ENABLE", "Locked": False, "Weight": 1}
        return rid

    def seed(self, fqdn: str, rtype: str, value: str, ttl: int = 600) -> str:
        dom = self._domain_of(fqdn)
        return self.add("@" if fqdn == dom else fqdn[: -len(dom) - 1], dom, rtype, value, ttl)

    def values(self, fqdn: str, rtype: str) -> List[str]:
        return [r["Value"] for r in self.find(fqdn, rtype)]

    def find(self, fqdn: str, rtype: Optional[str] = None) -> List[Dict[str, str]]:
        out = []
        for r in self.records.values():
            name = r["DomainName"] if r["RR"] == "@" else f"{r['RR']}.{r['DomainName']}"
            if name == fqdn and (rtype is None or r["Type"] == rtype):
                out.append(r)
        return out

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if req.headers.get("authorization", "").startswith("ACS3-HMAC-SHA256"):
            checked = self._auth_v3(req)
        else:
            checked = self._auth_v1(req)
        if isinstance(checked, Reply):
            return checked
        params = checked
        if params.get("Version") != "2015-01-09":
            return self.error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        action = params["Action"]
        self.calls.append(action)
        if self.throttle:
            self.throttle -= 1
            return self.error(400, "Throttling.User", "Request was denied due to user flow control.")
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            return self.error(400, "InvalidAction.NotFound", "Specified api is not found, please check "
                              "your url and method.")
        return handler(params)

    def _auth_v1(self, req: Request) -> Union[Reply, Dict[str, str]]:
        params = dict(req.query)
        if req.method == "POST":
            params.update(req.form)
        for p in ("AccessKeyId", "Signature", "SignatureNonce", "Timestamp", "SignatureMethod", "Action"):
            if p not in params:
                return self.error(400, "MissingParameter", f"The input parameter \"{p}\" that is mandatory "
                                  "for processing this request is not supplied.")
        secret = self.keys.get(params["AccessKeyId"])
        if secret is None:
            return self.error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            ts = timegm(time.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return self.error(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not "
                              "well formatted.")
        if abs(ts - req.received) > WINDOW:
            return self.error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if params["Signature"] != expected_signature(req.method, params, secret):
            pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
            sts = req.method + "&%2F&" + _enc("&".join(_enc(k) + "=" + _enc(v) for k, v in pairs))
            return self.error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our "
                              f"calculation. server string to sign is:{sts}")
        now = req.received
        self.nonces = {n: t for n, t in self.nonces.items() if now - t < WINDOW}
        if params["SignatureNonce"] in self.nonces:
            return self.error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces[params["SignatureNonce"]] = now
        return params

    def _auth_v3(self, req: Request) -> Union[Reply, Dict[str, str]]:
        """The V3 checks, in the same order as V1: headers, key, time, body hash, signature, nonce."""
        h = req.headers
        m = ACS3_AUTH.match(h.get("authorization", ""))
        if not m:
            return self.error(400, "IncompleteSignature", "The request signature does not conform to Aliyun "
                              "standards.")
        for name in ("x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
                     "x-acs-content-sha256"):
            if not h.get(name):
                return self.error(400, "MissingParameter", f"The input parameter \"{name}\" that is mandatory "
                                  "for processing this request is not supplied.")
        key_id, signed, signature = m.groups()
        secret = self.keys.get(key_id)
        if secret is None:
            return self.error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            ts = timegm(time.strptime(h["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return self.error(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not "
                              "well formatted.")
        if abs(ts - req.received) > WINDOW:
            return self.error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if h["x-acs-content-sha256"] != hashlib.sha256(req.body).hexdigest():
            return self.error(400, "ContentSHA256NotMatched", "The content SHA256 of the request does not match.")
        names = signed.split(";")
        required = {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
                    "x-acs-content-sha256"}
        expected = acs3_expected(secret, req.method, req.path, req.query_string, h, signed, req.body)
        if not required <= set(names) or not hmac.compare_digest(expected, signature):
            return self.error(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
        now = req.received
        self.nonces = {n: t for n, t in self.nonces.items() if now - t < WINDOW}
        if h["x-acs-signature-nonce"] in self.nonces:
            return self.error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces[h["x-acs-signature-nonce"]] = now
        params = dict(req.query)
        if req.method == "POST" and req.body:
            params.update(req.form)
        params["Action"] = h["x-acs-action"]
        params["Version"] = h["x-acs-version"]
        return params

    def _domain_of(self, name: str) -> Optional[str]:
        best = None
        for d in self.domains:
            if (name == d or name.endswith("." + d)) and (best is None or len(d) > len(best)):
                best = d
        return best

    def do_DescribeSubDomainRecords(self, p: Dict[str, str]) -> Reply:
        sub = p["SubDomain"].lower()
        dom = p.get("DomainName") or self._domain_of(sub)
        if dom is None or dom not in self.domains:
            return self.error(400, "IncorrectDomainUser", "The domain name does not belong to this user.")
        recs = [r for r in self.find(sub) if not p.get("Type") or r["Type"] == p["Type"].upper()]
        return Reply.json(200, {"RequestId": str(uuid.uuid4()).upper(), "TotalCount": len(recs), "PageNumber": 1,
                                "PageSize": int(p.get("PageSize", 20)), "DomainRecords": {"Record": recs}})

    def do_DescribeDomains(self, p: Dict[str, str]) -> Reply:
        doms = [{"DomainName": d, "DomainId": str(i)} for i, d in enumerate(self.domains)]
        return Reply.json(200, {"RequestId": str(uuid.uuid4()).upper(), "TotalCount": len(doms), "PageNumber": 1,
                                "PageSize": 100, "Domains": {"Domain": doms}})

    def do_AddDomainRecord(self, p: Dict[str, str]) -> Reply:
        dom = p.get("DomainName", "").lower()
        if dom not in self.domains:
            return self.error(400, "IncorrectDomainUser", "The domain name does not belong to this user.")
        rr = p["RR"]
        fqdn = dom if rr == "@" else f"{rr}.{dom}"
        if any(r["Value"] == p["Value"] for r in self.find(fqdn, p["Type"])):
            return self.error(400, "DomainRecordDuplicate", "The DNS record already exists.")
        self.writes += 1
        rid = self.add(rr, dom, p["Type"], p["Value"], int(p.get("TTL", 600)))
        return Reply.json(200, {"RequestId": str(uuid.uuid4()).upper(), "RecordId": rid})

    def do_UpdateDomainRecord(self, p: Dict[str, str]) -> Reply:
        rec = self.records.get(p.get("RecordId", ""))
        if rec is None:
            return self.error(400, "DomainRecordNotBelongToUser", "The DNS record does not belong to the user.")
        new = {"RR": p["RR"], "Type": p["Type"], "Value": p["Value"], "TTL": int(p.get("TTL", rec["TTL"]))}
        if all(rec[k] == v for k, v in new.items()):
            return self.error(400, "DomainRecordDuplicate", "The DNS record already exists.")
        self.writes += 1
        rec.update(new)
        return Reply.json(200, {"RequestId": str(uuid.uuid4()).upper(), "RecordId": rec["RecordId"]})
