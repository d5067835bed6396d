"""Known answers for TSIG: BIND's and Knot's own tools sign, the test checks by RFC 8945's definition.

``dig`` and ``nsupdate`` (bind9-dnsutils), ``kdig`` and ``knsupdate`` (knot-dnsutils) send a signed query / UPDATE to a
UDP socket of the test. The test recomputes each MAC from the RFC's text with
its own code below (not edgeddns's), checks that edgeddns's signer produces the
very same bytes for the same message and time, answers with a response signed
by the same independent code, and checks that both the BIND tool and
edgeddns's verifier accept that answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import socket
import struct
import subprocess
import time

import pytest

from edgeddns.providers import dnsmsg, tsig

SECRETS = {
    "hmac-sha256": base64.b64encode(bytes(range(32))).decode(),
    "hmac-sha512": base64.b64encode(bytes(range(64, 128))).decode(),
    "hmac-md5": base64.b64encode(bytes(range(100, 116))).decode(),
}
WIRE_ALG = {"hmac-sha256": "hmac-sha256", "hmac-sha512": "hmac-sha512", "hmac-md5": "hmac-md5.sig-alg.reg.int"}
HASH = {"hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512, "hmac-md5": hashlib.md5}


def wire_name(name: str) -> bytes:
    """RFC 1035 §3.1, lower case (RFC 8945 §4.3.3: "in canonical wire format")."""
    return b"".join(bytes([len(x)]) + x.encode() for x in name.lower().strip(".").split(".")) + b"\0"


def rfc_variables(key: str, alg: str, time_signed: int, fudge: int, error: int, other: bytes) -> bytes:
    # RFC 8945 §4.3.3: NAME, CLASS (ANY), TTL (0), Algorithm Name, Time Signed, Fudge, Error, Other Len, Other Data
    return (wire_name(key) + struct.pack("!HI", 255, 0) + wire_name(WIRE_ALG[alg]) + time_signed.to_bytes(6, "big")
            + struct.pack("!HHH", fudge, error, len(other)) + other)


def split_tsig(datagram: bytes):
    """(message as it was before signing, tsig fields) by walking the wire by hand."""
    msg = dnsmsg.parse(datagram)
    t = msg.additional[-1]
    assert t.rtype == 250
    rd = t.rdata
    n = 0
    while rd[n]:
        n += rd[n] + 1
    n += 1
    time_signed = int.from_bytes(rd[n:n + 6], "big")
    fudge, size = struct.unpack_from("!HH", rd, n + 6)
    mac = rd[n + 10:n + 10 + size]
    orig_id, error, olen = struct.unpack_from("!HHH", rd, n + 10 + size)
    arcount = struct.unpack_from("!H", datagram, 10)[0]
    before = struct.pack("!H", orig_id) + datagram[2:10] + struct.pack("!H", arcount - 1) + datagram[12:t.start]
    return before, dict(key=t.name, time=time_signed, fudge=fudge, mac=mac, error=error)


def signed_answer(request: bytes, key: str, alg: str, req_mac: bytes) -> bytes:
    """A NOERROR answer echoing the question/zone section, signed per RFC 8945 §4.3 (response rules)."""
    msg = dnsmsg.parse(request)
    qname, qtype, qclass = msg.question[0]
    flags = 0x8000 | (msg.flags & 0x7800) | 0x0400
    body = struct.pack("!HHHHHH", msg.id, flags, 1, 0, 0, 0) + wire_name(qname) + struct.pack("!HH", qtype, qclass)
    now, fudge = int(time.time()), 300
    digest = hmac.new(base64.b64decode(SECRETS[alg]), struct.pack("!H", len(req_mac)) + req_mac + body
                      + rfc_variables(key, alg, now, fudge, 0, b""), HASH[alg]).digest()
    rdata = (wire_name(WIRE_ALG[alg]) + now.to_bytes(6, "big") + struct.pack("!HH", fudge, len(digest)) + digest
             + struct.pack("!HHH", msg.id, 0, 0))
    tsig_rr = wire_name(key) + struct.pack("!HHIH", 250, 255, 0, len(rdata)) + rdata
    return body[:10] + struct.pack("!H", 1) + body[12:] + tsig_rr


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (bind9-dnsutils; scripts/test installs it)")
    return exe


def capture_and_answer(args, stdin: str = ""):
    """Run a BIND tool against our socket; return (its first datagram, its exit code, its output)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    args = [a.replace("PORT", str(port)) for a in args]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        proc.stdin.write(stdin.replace("PORT", str(port)))
        proc.stdin.close()
        datagram, addr = sock.recvfrom(65535)
        return datagram, addr, sock, proc
    except BaseException:
        proc.kill()
        sock.close()
        raise


# What each tool says when an answer's TSIG does not verify (dig and kdig still exit 0).
VERIFY_FAILED = ("tsig verify failure", "failed to verify tsig", "couldn't verify")


@pytest.mark.parametrize("corrupt", [False, True], ids=["answer-ok", "answer-corrupted"])
@pytest.mark.parametrize("alg", sorted(SECRETS))
@pytest.mark.parametrize("which", ["dig", "nsupdate", "kdig", "knsupdate"])
def test_bind_tools_and_edgeddns_sign_identically(alg, which, corrupt):
    key = f"kat-{alg}"
    update = ("server 127.0.0.1 PORT\nzone example.com\nupdate delete home.example.com A\n"
              "update add home.example.com 300 A 8.8.8.8\nsend\n")
    if which == "dig":
        args = [tool("dig"), "@127.0.0.1", "-p", "PORT", "-y", f"{alg}:{key}:{SECRETS[alg]}", "+tries=1",
                "+time=5", "+noedns", "+norecurse", "home.example.com", "A"]
        stdin = ""
    elif which == "kdig":  # Knot's tools (knot-dnsutils): a second, independent TSIG implementation
        args = [tool("kdig"), "@127.0.0.1", "-p", "PORT", "-y", f"{alg}:{key}:{SECRETS[alg]}", "+notcp",
                "+retry=0", "+timeout=5", "+noedns", "+norecurse", "home.example.com", "A"]
        stdin = ""
    else:
        args = [tool(which), "-y", f"{alg}:{key}:{SECRETS[alg]}"]
        stdin = update
    datagram, addr, sock, proc = capture_and_answer(args, stdin)
    try:
        before, f = split_tsig(datagram)
        assert f["key"] == key and f["fudge"] == 300 and f["error"] == 0
        secret = base64.b64decode(SECRETS[alg])
        # 1. the MAC from RFC 8945's definition (request: the message, then the variables)
        rfc_mac = hmac.new(secret, before + rfc_variables(key, alg, f["time"], 300, 0, b""), HASH[alg]).digest()
        assert rfc_mac == f["mac"]
        # 2. edgeddns signs the same message at the same time into the very same bytes
        k = tsig.Key(key, alg, secret)
        signed, our_mac = tsig.sign(k, before, f["time"])
        assert signed == datagram and our_mac == f["mac"]
        if which in ("nsupdate", "knsupdate"):
            # ...and builds the same UPDATE: delete the RRset, add the address, nothing else
            msg_id = struct.unpack_from("!H", before)[0]
            ours = dnsmsg.parse(dnsmsg.build_replace(msg_id, "example.com", "home.example.com", "A", "8.8.8.8", 300))
            theirs = dnsmsg.parse(before)  # nsupdate compresses names; compare what they say

            def say(m):
                return (m.flags, m.question, [(r.name, r.rtype, r.rclass, r.ttl, r.rdata)
                                              for r in m.answer + m.authority + m.additional])
            assert say(ours) == say(theirs)
        # 3. an answer signed by the RFC's response rule: the BIND tool accepts it, so does edgeddns
        answer = signed_answer(before, key, alg, f["mac"])
        assert tsig.verify(k, dnsmsg.parse(answer), f["mac"], time.time()).signed
        if corrupt:  # the negative control: the tool does notice a wrong MAC, so its silence above means something
            i = len(answer) - 20  # inside the MAC
            answer = answer[:i] + bytes([answer[i] ^ 1]) + answer[i + 1:]
        sock.sendto(answer, addr)
        out = proc.stdout.read()
        rc = proc.wait(15)
        failed = any(m in out.lower() for m in VERIFY_FAILED)
        if corrupt:
            assert failed, out
        else:
            assert rc == 0 and not failed, out
        # a one-bit change in the answer is refused by edgeddns
        bad = answer[:13] + bytes([answer[13] ^ 1]) + answer[14:]
        with pytest.raises(tsig.TsigError):
            tsig.verify(k, dnsmsg.parse(bad), f["mac"], time.time())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        sock.close()
