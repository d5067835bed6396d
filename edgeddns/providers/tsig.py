"""TSIG (RFC 8945): sign a DNS request and verify the answer, with a shared secret.

The MAC of a request covers the message as sent (without the TSIG record) and
the "TSIG variables": key name, class ANY, TTL 0, algorithm name (both names
in canonical wire form), time signed (48 bits), fudge, error, other data. The
MAC of an answer also covers the request's MAC first (its length, then the
bytes), and the answer with the TSIG record removed, ARCOUNT lowered by one
and the original ID put back. ``hmac`` and ``hashlib`` are imported only when
a MAC is computed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional, Tuple

from edgeddns.providers.dnsmsg import CLASS_ANY, TYPE_TSIG, Message, WireError, encode_name, read_name

#: user-facing name -> (algorithm name on the wire, hashlib name)
ALGORITHMS = {
    "hmac-sha256": ("hmac-sha256", "sha256"),
    "hmac-sha512": ("hmac-sha512", "sha512"),
    "hmac-md5": ("hmac-md5.sig-alg.reg.int", "md5"),  # only when the user names it
}
BADSIG, BADKEY, BADTIME, BADTRUNC = 16, 17, 18, 22
TSIG_ERRORS = {BADSIG: "BADSIG", BADKEY: "BADKEY", BADTIME: "BADTIME", BADTRUNC: "BADTRUNC"}
FUDGE = 300


class TsigError(Exception):
    """The answer's signature is missing, wrong, or from another key: the answer is not believed."""


@dataclass(frozen=True)
class Key:
    name: str
    algorithm: str  # a key of ALGORITHMS
    secret: bytes

    @property
    def wire_algorithm(self) -> str:
        return ALGORITHMS[self.algorithm][0]


@dataclass
class Verified:
    """What a checked TSIG record says."""

    error: int
    time_signed: int
    fudge: int
    other: bytes
    signed: bool  # False only for BADSIG/BADKEY answers, which carry no MAC by design

    def server_time(self) -> Optional[int]:
        """BADTIME answers carry the server's clock in other data (48 bits)."""
        if self.error == BADTIME and len(self.other) == 6:
            return int.from_bytes(self.other, "big")
        return None


def variables(key: Key, time_signed: int, fudge: int, error: int = 0, other: bytes = b"") -> bytes:
    return (encode_name(key.name) + struct.pack("!HI", CLASS_ANY, 0) + encode_name(key.wire_algorithm)
            + time_signed.to_bytes(6, "big") + struct.pack("!HHH", fudge, error, len(other)) + other)


def mac(key: Key, data: bytes) -> bytes:
    import hashlib
    import hmac

    return hmac.new(key.secret, data, getattr(hashlib, ALGORITHMS[key.algorithm][1])).digest()


def request_mac(key: Key, message: bytes, time_signed: int, fudge: int = FUDGE) -> bytes:
    """The MAC of a request (RFC 8945 §4.3.3): the message as sent, then the variables."""
    return mac(key, message + variables(key, time_signed, fudge))


def sign(key: Key, message: bytes, time_signed: int, fudge: int = FUDGE) -> Tuple[bytes, bytes]:
    """(the message with its TSIG record appended, the MAC): the MAC is needed to check the answer."""
    digest = request_mac(key, message, time_signed, fudge)
    msg_id = struct.unpack_from("!H", message)[0]
    rdata = (encode_name(key.wire_algorithm) + time_signed.to_bytes(6, "big")
             + struct.pack("!HH", fudge, len(digest)) + digest + struct.pack("!HHH", msg_id, 0, 0))
    record = encode_name(key.name) + struct.pack("!HHIH", TYPE_TSIG, CLASS_ANY, 0, len(rdata)) + rdata
    arcount = struct.unpack_from("!H", message, 10)[0]
    signed = message[:10] + struct.pack("!H", arcount + 1) + message[12:] + record
    return signed, digest


def verify(key: Key, msg: Message, req_mac: bytes, now: float) -> Verified:
    """Check the answer's TSIG; raise :class:`TsigError` unless it is signed by ``key``.

    An answer saying BADSIG or BADKEY has no MAC (the server could not use our
    key), so it is returned unsigned: it can only ever make the update fail.
    """
    if not msg.additional or msg.additional[-1].rtype != TYPE_TSIG:
        raise TsigError("the answer is not signed")
    t = msg.additional[-1]
    # Class ANY and TTL 0 are fixed by RFC 8945 and not covered by the MAC: anything else is refused.
    if t.rclass != CLASS_ANY or t.ttl != 0 or any(r.rtype == TYPE_TSIG for r in msg.additional[:-1]):
        raise TsigError("malformed TSIG record")
    try:
        alg, off = read_name(msg.raw, t.rdata_offset)
        end = t.rdata_offset + len(t.rdata)
        if off + 10 > end:
            raise WireError("short TSIG")
        time_signed = int.from_bytes(msg.raw[off:off + 6], "big")
        fudge, size = struct.unpack_from("!HH", msg.raw, off + 6)
        off += 10
        digest = msg.raw[off:off + size]
        off += size
        if off + 6 > end:
            raise WireError("short TSIG")
        orig_id, error, olen = struct.unpack_from("!HHH", msg.raw, off)
        other = msg.raw[off + 6:off + 6 + olen]
        if off + 6 + olen != end:
            raise WireError("TSIG length mismatch")
    except (WireError, struct.error) as e:
        raise TsigError(f"malformed TSIG record ({e})") from None
    if t.name != key.name.rstrip(".").lower() or alg != key.wire_algorithm:
        raise TsigError(f"the answer is signed with another key ({t.name}, {alg})")
    if size == 0 and error in (BADSIG, BADKEY):
        return Verified(error, time_signed, fudge, other, signed=False)
    # The answer as it was before signing: TSIG removed, ARCOUNT - 1, original ID.
    raw = msg.raw
    arcount = struct.unpack_from("!H", raw, 10)[0]
    unsigned = struct.pack("!H", orig_id) + raw[2:10] + struct.pack("!H", arcount - 1) + raw[12:t.start]
    want = mac(key, struct.pack("!H", len(req_mac)) + req_mac + unsigned
               + variables(key, time_signed, fudge, error, other))
    import hmac

    if len(digest) != len(want) or not hmac.compare_digest(digest, want):
        raise TsigError("the answer's TSIG MAC is wrong")
    if error == 0 and abs(now - time_signed) > fudge:
        raise TsigError(f"the answer was signed at {time_signed}, {now - time_signed:+.0f} s from our clock")
    return Verified(error, time_signed, fudge, other, signed=True)
