"""The tests' fake Alidns, taught the V3 request signature (ACS3-HMAC-SHA256).

edgeddns signs Alidns calls with the RPC signature (``Signature`` among the
parameters), which ``tests/fakes/alidns.py`` verifies. NewFuture/DDNS 4.x
signs the same API with Alibaba Cloud's V3 scheme instead: an
``Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..``
header over a canonical request, with the time in ``x-acs-date``. This
subclass verifies that scheme, written from Alibaba Cloud's V3 signature
documentation (not from either client), applies the same 15-minute window and
nonce rules, and then hands the call to the tests' fake, so both clients
change the same in-memory records. It also answers ``GetMainDomainName``,
which DDNS calls first. Bench-only: the test suite does not use it.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import sys
import time
from typing import Dict
from urllib.parse import parse_qsl, quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fakes.alidns import WINDOW, FakeAlidns  # noqa: E402
from tests.fakes.server import Reply, Request  # noqa: E402


def _pct(s: str) -> str:
    # RFC 3986 unreserved characters stay, everything else is %XX (upper case).
    return quote(s, safe="-_.~")


def canonical_query(qs: str) -> str:
    pairs = sorted((_pct(k), _pct(v)) for k, v in parse_qsl(qs, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


class FakeAlidnsV3(FakeAlidns):
    """Accepts RPC-signed (edgeddns) and V3-signed (DDNS 4.x) calls."""

    def _handle(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("ACS3-HMAC-SHA256 "):
            return super()._handle(req)
        return self._handle_v3(req, auth)

    def _handle_v3(self, req: Request, auth: str) -> Reply:
        fields: Dict[str, str] = {}
        for part in auth[len("ACS3-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        key_id, signed, signature = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
        if not key_id or not signed or not signature:
            return self.error(400, "IncompleteSignature", "The request signature does not conform to standards.")
        secret = self.keys.get(key_id)
        if secret is None:
            return self.error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        names = signed.split(";")
        h = req.headers
        for need in ("host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if need not in names or need not in h:
                return self.error(400, "MissingParameter", f"The header {need} is required and must be signed.")
        body_hash = hashlib.sha256(req.body).hexdigest()
        if h["x-acs-content-sha256"] != body_hash:
            return self.error(400, "ContentSHA256NotMatched", "The x-acs-content-sha256 does not match the body.")
        canonical_headers = "".join(f"{n}:{h.get(n, '').strip()}\n" for n in sorted(names))
        creq = "\n".join([req.method, req.path or "/", canonical_query(req.query_string), canonical_headers,
                          ";".join(sorted(names)), body_hash])
        sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(creq.encode()).hexdigest()
        want = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
        try:
            ts = calendar.timegm(time.strptime(h["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return self.error(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not "
                              "well formatted.")
        if abs(ts - req.received) > WINDOW:
            return self.error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if not hmac.compare_digest(want, signature):
            return self.error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our "
                              "calculation.")
        nonce = h["x-acs-signature-nonce"]
        self.nonces = {n: t for n, t in self.nonces.items() if req.received - t < WINDOW}
        if nonce in self.nonces:
            return self.error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces[nonce] = req.received
        if h.get("x-acs-version") != "2015-01-09":
            return self.error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        params = dict(req.query)
        if req.body:
            params.update(req.form)
        action = h["x-acs-action"]
        self.calls.append(action)
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            return self.error(400, "InvalidAction.NotFound", "Specified api is not found, please check "
                              "your url and method.")
        return handler(params)

    def do_GetMainDomainName(self, p: Dict[str, str]) -> Reply:
        name = p.get("InputString", "").lower().rstrip(".")
        dom = self._domain_of(name)
        if dom is None:
            return self.error(400, "InvalidDomainName.NoExist", "The specified domain name does not exist.")
        rr = "@" if name == dom else name[: -len(dom) - 1]
        return Reply.json(200, {"RequestId": "B0A1", "DomainName": dom, "RR": rr, "DomainLevel": 2})
