"""Hostile bytes from the network stop at the parser: only WireError / TsigError, never anything else.

The answers a DNS server (or anyone on the path) sends are the entry point of
rfc2136; these properties feed them arbitrary and mutated messages.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeddns.providers import dnsmsg, tsig

KEY = tsig.Key("ddns-key", "hmac-sha256", bytes(range(32)))


def _signed_answer() -> tuple:
    """A real-looking signed answer to a real request, built with edgeddns's own signer rules."""
    request, req_mac = tsig.sign(KEY, dnsmsg.build_query(0x1234, "home.example.com", dnsmsg.TYPE_A), 1_700_000_000)
    body = (dnsmsg.header(0x1234, 0x8400, 1, 1, 0, 0) + dnsmsg.encode_name("home.example.com")
            + struct.pack("!HH", 1, 1) + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([8, 8, 8, 8]))
    digest = tsig.mac(KEY, struct.pack("!H", len(req_mac)) + req_mac + body + tsig.variables(KEY, 1_700_000_000, 300))
    rdata = (dnsmsg.encode_name(KEY.wire_algorithm) + (1_700_000_000).to_bytes(6, "big")
             + struct.pack("!HH", 300, len(digest)) + digest + struct.pack("!HHH", 0x1234, 0, 0))
    record = dnsmsg.encode_name(KEY.name) + struct.pack("!HHIH", 250, 255, 0, len(rdata)) + rdata
    return body[:10] + struct.pack("!H", 1) + body[12:] + record, req_mac


ANSWER, REQ_MAC = _signed_answer()


def test_the_untouched_answer_verifies():
    v = tsig.verify(KEY, dnsmsg.parse(ANSWER), REQ_MAC, 1_700_000_000)
    assert v.signed and v.error == 0
    assert dnsmsg.parse(ANSWER).answer[0].address() == "8.8.8.8"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_wire_error(data):
    try:
        msg = dnsmsg.parse(data)
    except dnsmsg.WireError:
        return
    try:
        tsig.verify(KEY, msg, REQ_MAC, 1_700_000_000)
    except tsig.TsigError:
        pass


def test_every_changed_byte_or_cut_is_refused():
    """Exhaustive (deterministic): each byte flipped in 3 ways, and every truncation."""
    cases = [(pos, xor, 0) for pos in range(len(ANSWER)) for xor in (0x01, 0x80, 0xFF)]
    cases += [(0, 0, cut) for cut in range(1, len(ANSWER))]
    for pos, xor, cut in cases:
        data = bytearray(ANSWER)
        data[pos] ^= xor
        data = bytes(data[: len(data) - cut])
        if data == ANSWER:
            continue
        try:
            msg = dnsmsg.parse(data)
            v = tsig.verify(KEY, msg, REQ_MAC, 1_700_000_000)
        except (dnsmsg.WireError, tsig.TsigError):
            continue
        # The header's ID is the only part outside the MAC (RFC 8945 signs the "original ID" kept in the
        # TSIG record, so forwarders may renumber); rfc2136 checks the ID against its request separately.
        assert pos in (0, 1) and cut == 0 and msg.id != 0x1234, f"a changed answer verified: {pos} ^ {xor}: {v}"
