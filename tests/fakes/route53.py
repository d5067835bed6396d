"""A fake AWS Route 53 endpoint (API version 2013-04-01).

It verifies Signature Version 4 with its own implementation of AWS's published
algorithm (not the agent's), requires the us-east-1/route53 scope, rejects an
``X-Amz-Date`` more than 5 minutes from its own clock with the observed
"Signature expired: ... (NOW - 5 min.)" text, answers errors with the XML
``ErrorResponse`` envelope, and keeps hosted zones and record sets in memory,
listing them in Route 53's order (names compared label by label from the right).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import itertools
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from tests.fakes.server import Reply, Request

WINDOW = 5 * 60
FMT = "%Y%m%dT%H%M%SZ"
NS = "https://route53.amazonaws.com/doc/2013-04-01/"
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9]+)/aws4_request,\s*"
                     r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")
SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _uri_encode(s: str) -> str:
    return "".join(c if c in SAFE else "".join("%%%02X" % b for b in c.encode()) for c in s)


def _hm(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_expected(secret: str, method: str, raw_path: str, raw_query: str, headers: Dict[str, str], signed: str,
                   payload: bytes, amz_date: str, region: str, service: str) -> str:
    """Written from AWS's SigV4 description, independently of edgeddns.providers.route53."""
    path = "/".join(_uri_encode(seg) for seg in raw_path.split("/")) or "/"
    params = sorted((_uri_encode(k), _uri_encode(v)) for k, v in parse_qsl(raw_query, keep_blank_values=True))
    query = "&".join(f"{k}={v}" for k, v in params)
    hdrs = "".join(f"{n}:{re.sub(r' +', ' ', headers.get(n, '').strip())}\n" for n in signed.split(";"))
    creq = f"{method}\n{path}\n{query}\n{hdrs}\n{signed}\n{hashlib.sha256(payload).hexdigest()}"
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    key = _hm(_hm(_hm(_hm(("AWS4" + secret).encode(), amz_date[:8]), region), service), "aws4_request")
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def _order(name: str) -> Tuple[str, ...]:
    return tuple(reversed(name.rstrip(".").split(".")))


def _sub(el: ET.Element, name: str) -> Optional[ET.Element]:
    return el.find(f"{{{NS}}}{name}")


class FakeRoute53:
    def __init__(self, keys: Dict[str, str], zones: List[str]):
        self.keys = dict(keys)
        ids = itertools.count(1)
        self.zones: Dict[str, str] = {f"Z{next(ids):04d}EXAMPLE{uuid.uuid4().hex[:6].upper()}": z.lower()
                                      for z in zones}  # id -> name without dot
        self.rrsets: Dict[str, Dict[Tuple[str, str], Dict]] = {zid: {} for zid in self.zones}
        for zid, z in self.zones.items():
            self.rrsets[zid][(z, "NS")] = {"ttl": 172800, "values": ["ns-1.awsdns-00.com."]}
            self.rrsets[zid][(z, "SOA")] = {"ttl": 900, "values": ["ns-1.awsdns-00.com. hostmaster. 1 7200 900 "
                                                                     "1209600 86400"]}
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()
        self.server = None

    # -- helpers the tests use ---------------------------------------------------------

    def zone_of(self, fqdn: str) -> Optional[str]:
        best = None
        for zid, z in self.zones.items():
            if (fqdn == z or fqdn.endswith("." + z)) and (best is None or len(z) > len(self.zones[best])):
                best = zid
        return best

    def add(self, fqdn: str, rtype: str, value: str, ttl: int = 300) -> None:
        self.rrsets[self.zone_of(fqdn)][(fqdn, rtype)] = {"ttl": ttl, "values": [value]}

    seed = add  # the name the shared tests use

    def values(self, fqdn: str, rtype: str) -> List[str]:
        zid = self.zone_of(fqdn)
        rs = self.rrsets[zid].get((fqdn, rtype)) if zid else None
        return list(rs["values"]) if rs else []

    # -- protocol ----------------------------------------------------------------------

    def error(self, status: int, code: str, message: str, kind: str = "Sender") -> Reply:
        body = (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
        return Reply(status, body.encode(), {"Content-Type": "text/xml", "x-amzn-RequestId": str(uuid.uuid4())})

    def xml(self, body: str) -> Reply:
        return Reply(200, ('<?xml version="1.0"?>\n' + body).encode(), {"Content-Type": "text/xml"})

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        h = req.headers
        m = AUTH_RE.match(h.get("authorization", ""))
        if not m:
            return self.error(403, "MissingAuthenticationToken", "Missing Authentication Token")
        akid, day, region, service, signed, signature = m.groups()
        secret = self.keys.get(akid)
        if secret is None:
            return self.error(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        amz_date = h.get("x-amz-date", "")
        try:
            ts = calendar.timegm(time.strptime(amz_date, FMT))
        except ValueError:
            return self.error(403, "IncompleteSignature", "Date must be in ISO-8601 'basic format'.")
        now = req.received
        stamp = time.strftime(FMT, time.gmtime(now))
        if ts < now - WINDOW:
            return self.error(403, "SignatureDoesNotMatch", f"Signature expired: {amz_date} is now earlier than "
                              f"{time.strftime(FMT, time.gmtime(now - WINDOW))} ({stamp} - 5 min.)")
        if ts > now + WINDOW:
            return self.error(403, "SignatureDoesNotMatch", f"Signature not yet current: {amz_date} is still later "
                              f"than {time.strftime(FMT, time.gmtime(now + WINDOW))} ({stamp} + 5 min.)")
        if region != "us-east-1" or service != "route53" or day != amz_date[:8]:
            return self.error(403, "SignatureDoesNotMatch", "Credential should be scoped to a valid region and "
                              "service.")
        names = signed.split(";")
        expected = sigv4_expected(secret, req.method, req.path, req.query_string, h, signed, req.body, amz_date,
                                  region, service)
        if "host" not in names or not hmac.compare_digest(expected, signature):
            return self.error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                              "the signature you provided. Check your AWS Secret Access Key and signing method. "
                              "Consult the service documentation for details.")
        self.calls.append(f"{req.method} {req.path}")
        if self.throttle:
            self.throttle -= 1
            return self.error(400, "Throttling", "Rate exceeded")
        return self._route(req)

    def _route(self, req: Request) -> Reply:
        p = req.path
        if req.method == "GET" and p == "/2013-04-01/hostedzonesbyname":
            return self.list_zones(req.query)
        m = re.fullmatch(r"/2013-04-01/hostedzone/([A-Z0-9]+)/rrset/?", p)
        if m:
            zid = m.group(1)
            if zid not in self.zones:
                return self.error(404, "NoSuchHostedZone", f"No hosted zone found with ID: {zid}")
            if req.method == "GET":
                return self.list_rrsets(zid, req.query)
            if req.method == "POST":
                return self.change(zid, req.body)
        return self.error(404, "UnknownOperationException", "The operation is not known here.")

    def list_zones(self, q: Dict[str, str]) -> Reply:
        limit = int(q.get("maxitems", 100))
        items = sorted(self.zones.items(), key=lambda kv: _order(kv[1]))
        start = q.get("dnsname", "").rstrip(".").lower()
        if start:
            items = [kv for kv in items if _order(kv[1]) >= _order(start)]
        page, rest = items[:limit], items[limit:]
        zs = "".join(f"<HostedZone><Id>/hostedzone/{zid}</Id><Name>{z}.</Name><CallerReference>ref-{zid}"
                     "</CallerReference><Config><PrivateZone>false</PrivateZone></Config>"
                     f"<ResourceRecordSetCount>{len(self.rrsets[zid])}</ResourceRecordSetCount></HostedZone>"
                     for zid, z in page)
        more = (f"<IsTruncated>true</IsTruncated><NextDNSName>{rest[0][1]}.</NextDNSName>"
                f"<NextHostedZoneId>{rest[0][0]}</NextHostedZoneId>" if rest else "<IsTruncated>false</IsTruncated>")
        dn = f"<DNSName>{start}.</DNSName>" if start else ""
        return self.xml(f'<ListHostedZonesByNameResponse xmlns="{NS}"><HostedZones>{zs}</HostedZones>{dn}'
                        f"{more}<MaxItems>{limit}</MaxItems></ListHostedZonesByNameResponse>")

    def list_rrsets(self, zid: str, q: Dict[str, str]) -> Reply:
        limit = int(q.get("maxitems", 300))
        items = sorted(self.rrsets[zid].items(), key=lambda kv: (_order(kv[0][0]), kv[0][1]))
        if q.get("name"):
            start = (_order(q["name"].lower()), q.get("type", ""))
            items = [kv for kv in items if (_order(kv[0][0]), kv[0][1]) >= start]
        page, rest = items[:limit], items[limit:]
        sets = "".join(f"<ResourceRecordSet><Name>{n}.</Name><Type>{t}</Type><TTL>{rs['ttl']}</TTL>"
                       "<ResourceRecords>" + "".join(f"<ResourceRecord><Value>{escape(v)}</Value></ResourceRecord>"
                                                     for v in rs["values"]) +
                       "</ResourceRecords></ResourceRecordSet>" for (n, t), rs in page)
        more = (f"<IsTruncated>true</IsTruncated><NextRecordName>{rest[0][0][0]}.</NextRecordName>"
                f"<NextRecordType>{rest[0][0][1]}</NextRecordType>" if rest else "<IsTruncated>false</IsTruncated>")
        return self.xml(f'<ListResourceRecordSetsResponse xmlns="{NS}"><ResourceRecordSets>{sets}'
                        f"</ResourceRecordSets>{more}<MaxItems>{limit}</MaxItems></ListResourceRecordSetsResponse>")

    def change(self, zid: str, body: bytes) -> Reply:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return self.error(400, "InvalidInput", "Could not parse the request body as XML.")
        if root.tag != f"{{{NS}}}ChangeResourceRecordSetsRequest":
            return self.error(400, "InvalidInput", "Unexpected root element.")
        batch = _sub(root, "ChangeBatch")
        changes = _sub(batch, "Changes") if batch is not None else None
        if changes is None or not list(changes):
            return self.error(400, "InvalidInput", "ChangeBatch must have at least one change.")
        zone = self.zones[zid]
        staged = dict(self.rrsets[zid])  # the batch applies all or nothing
        for ch in changes:
            action = (_sub(ch, "Action").text or "") if _sub(ch, "Action") is not None else ""
            rrs = _sub(ch, "ResourceRecordSet")
            if rrs is None:
                return self.error(400, "InvalidInput", "A change has no ResourceRecordSet.")
            name = ((_sub(rrs, "Name").text or "") if _sub(rrs, "Name") is not None else "").rstrip(".").lower()
            rtype = _sub(rrs, "Type").text if _sub(rrs, "Type") is not None else ""
            if not (name == zone or name.endswith("." + zone)):
                return self.error(400, "InvalidChangeBatch", f"[RRSet with DNS name {name}. is not permitted in "
                                  f"zone {zone}.]")
            ttl_el = _sub(rrs, "TTL")
            vals = [v.text or "" for v in rrs.iter(f"{{{NS}}}Value")]
            key = (name, rtype)
            if action == "CREATE" and key in staged:
                return self.error(400, "InvalidChangeBatch", f"[Tried to create resource record set [name='{name}.', "
                                  f"type='{rtype}'] but it already exists]")
            if action in ("CREATE", "UPSERT"):
                if ttl_el is None or not vals:
                    return self.error(400, "InvalidInput", "TTL and ResourceRecords are required.")
                staged[key] = {"ttl": int(ttl_el.text or 0), "values": vals}
            elif action == "DELETE":
                if key not in staged:
                    return self.error(400, "InvalidChangeBatch", f"[Tried to delete resource record set "
                                      f"[name='{name}.', type='{rtype}'] but it was not found]")
                del staged[key]
            else:
                return self.error(400, "InvalidInput", f"Invalid action {action}.")
        self.rrsets[zid] = staged
        self.writes += 1
        cid = "C" + uuid.uuid4().hex[:12].upper()
        return self.xml(f'<ChangeResourceRecordSetsResponse xmlns="{NS}"><ChangeInfo><Id>/change/{cid}</Id>'
                        "<Status>PENDING</Status><SubmittedAt>2017-03-27T17:48:16.751Z</SubmittedAt>"
                        "</ChangeInfo></ChangeResourceRecordSetsResponse>")
