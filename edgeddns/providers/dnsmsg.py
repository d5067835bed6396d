"""DNS messages on the wire (RFC 1035, RFC 2136 UPDATE): just what ``rfc2136`` needs.

A builder for queries and for an UPDATE that replaces one RRset, and a parser
that keeps every record's position in the raw bytes, because a TSIG MAC is
computed over the message exactly as it travelled (RFC 8945 §4.3).
Standard library only; no name compression is ever written.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

CLASS_IN, CLASS_NONE, CLASS_ANY = 1, 254, 255
TYPE_A, TYPE_CNAME, TYPE_SOA, TYPE_AAAA, TYPE_TSIG = 1, 5, 6, 28, 250
TYPES = {"A": TYPE_A, "AAAA": TYPE_AAAA, "SOA": TYPE_SOA}
OPCODE_QUERY, OPCODE_UPDATE = 0, 5
FLAG_QR, FLAG_AA, FLAG_TC = 0x8000, 0x0400, 0x0200

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}


class WireError(ValueError):
    """A malformed message: never believed, reported as a provider error."""


def encode_name(name: str) -> bytes:
    """Uncompressed wire form; lower-cased, which is also the canonical form TSIG needs."""
    out = bytearray()
    for label in name.rstrip(".").lower().split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise WireError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > 255:
        raise WireError(f"name too long: {name!r}")
    return bytes(out)


def rdata_for(rtype: str, value: str) -> bytes:
    ip = ipaddress.ip_address(value)
    if (rtype == "A") != (ip.version == 4):
        raise WireError(f"{value} is not an {rtype} address")
    return ip.packed


def rr(name: str, rtype: int, rclass: int, ttl: int, rdata: bytes = b"") -> bytes:
    return encode_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def header(msg_id: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return struct.pack("!HHHHHH", msg_id, flags, qd, an, ns, ar)


def build_query(msg_id: int, name: str, rtype: int) -> bytes:
    # No EDNS: a large answer sets TC and the client repeats the question over TCP.
    return header(msg_id, OPCODE_QUERY << 11, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", rtype, CLASS_IN)


def build_replace(msg_id: int, zone: str, name: str, rtype: str, value: str, ttl: int) -> bytes:
    """One UPDATE (RFC 2136 §2.5): delete the RRset, then add the one record, atomically."""
    t = TYPES[rtype]
    updates = rr(name, t, CLASS_ANY, 0) + rr(name, t, CLASS_IN, ttl, rdata_for(rtype, value))
    return (header(msg_id, OPCODE_UPDATE << 11, 1, 0, 2, 0) + encode_name(zone)
            + struct.pack("!HH", TYPE_SOA, CLASS_IN) + updates)


@dataclass
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes
    rdata_offset: int  # where rdata starts in the message (names inside may point back)
    start: int  # where this record starts in the message

    def address(self) -> Optional[str]:
        if self.rtype in (TYPE_A, TYPE_AAAA) and len(self.rdata) in (4, 16):
            return str(ipaddress.ip_address(self.rdata))
        return None


@dataclass
class Message:
    raw: bytes
    id: int
    flags: int
    question: List[Tuple[str, int, int]] = field(default_factory=list)
    answer: List[Record] = field(default_factory=list)
    authority: List[Record] = field(default_factory=list)
    additional: List[Record] = field(default_factory=list)

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)


def read_name(buf: bytes, off: int) -> Tuple[str, int]:
    """(name, offset after it), following compression pointers backwards only."""
    labels: List[str] = []
    end: Optional[int] = None
    hops = 0
    while True:
        if off >= len(buf):
            raise WireError("name runs past the message")
        n = buf[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(buf):
                raise WireError("truncated pointer")
            target = ((n & 0x3F) << 8) | buf[off + 1]
            if end is None:
                end = off + 2
            hops += 1
            if target >= off or hops > 64:
                raise WireError("bad compression pointer")
            off = target
            continue
        if n & 0xC0:
            raise WireError("unknown label type")
        off += 1
        if n == 0:
            break
        if off + n > len(buf):
            raise WireError("label runs past the message")
        labels.append(buf[off:off + n].decode("ascii", errors="replace").lower())
        off += n
    return ".".join(labels), (end if end is not None else off)


def parse(buf: bytes) -> Message:
    if len(buf) < 12:
        raise WireError("shorter than a DNS header")
    msg_id, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", buf)
    msg = Message(buf, msg_id, flags)
    off = 12
    for _ in range(qd):
        name, off = read_name(buf, off)
        if off + 4 > len(buf):
            raise WireError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", buf, off)
        off += 4
        msg.question.append((name, qtype, qclass))
    for section, count in ((msg.answer, an), (msg.authority, ns), (msg.additional, ar)):
        for _ in range(count):
            start = off
            name, off = read_name(buf, off)
            if off + 10 > len(buf):
                raise WireError("truncated record")
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", buf, off)
            off += 10
            if off + rdlen > len(buf):
                raise WireError("record data runs past the message")
            section.append(Record(name, rtype, rclass, ttl, buf[off:off + rdlen], off, start))
            off += rdlen
    if off != len(buf):
        raise WireError("trailing bytes after the last record")
    return msg
