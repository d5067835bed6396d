"""RFC 2136 dynamic updates, signed with TSIG (RFC 8945), to your own DNS server.

Read before write: one signed query for the RRset; nothing more when it
already holds exactly the address (and the TTL, when the record sets one);
otherwise one signed UPDATE that deletes the RRset and adds the address, which
the server applies atomically. Every answer must carry a valid TSIG from our
key, or it is not believed. UDP first, TCP when the answer is truncated.

The zone is the provider's or record's ``zone``, else the owner of the SOA
record the server gives for the name (in the answer at the apex, in the
authority section below it).
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from edgeddns.budget import Budget
from edgeddns.errors import (
    AuthError,
    ClockSkewError,
    NetworkError,
    NotFoundError,
    ProviderError,
)
from edgeddns.options import Opt, Secret
from edgeddns.providers import dnsmsg, tsig
from edgeddns.providers.base import Provider, zone_holds

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig

DEFAULT_PORT = 53


def split_server(value: str) -> Tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 literal -> (host, port)."""
    v = value.strip()
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("expected [address]:port")
    elif v.count(":") == 1:
        host, port = v.split(":")
    else:
        host, port = v, ""
    if not host:
        raise ValueError("no host")
    p = int(port) if port else DEFAULT_PORT
    if not 0 < p < 65536:
        raise ValueError("port out of range")
    return host, p


def _server_ok(v: str) -> Optional[str]:
    try:
        split_server(v)
    except ValueError:
        return "must be host, host:port or [IPv6]:port"
    return None


def _name_ok(v: str) -> Optional[str]:
    try:
        dnsmsg.encode_name(v)
    except (dnsmsg.WireError, UnicodeError):
        return "must be a DNS name (ASCII labels of 1 to 63 characters)"
    return None


def decode_secret(text: str) -> bytes:
    return base64.b64decode(text.strip(), validate=True)


class Rfc2136Provider(Provider):
    OPTIONS = {
        "server": Opt(str, required=True, check=_server_ok, doc="the primary server, host[:port] (port 53)"),
        "zone": Opt(str, check=_name_ok, doc="the zone; found with an SOA query when not set"),
        "key_name": Opt(str, required=True, check=_name_ok, doc="the TSIG key's name, as the server knows it"),
        "key_algorithm": Opt(str, default="hmac-sha256", choices=tuple(tsig.ALGORITHMS),
                             doc="hmac-sha256 (default), hmac-sha512, or hmac-md5 for old servers"),
        "key_secret": Opt(Secret, required=True, header=False, doc="the TSIG secret, base64"),
        "ttl": Opt(int, default=300, check=lambda v: None if 0 < v <= 604800 else "must be 1..604800",
                   doc="TTL of records whose ttl is not set"),
    }
    SIGNED = True  # TSIG carries the time; BADTIME outside the server's fudge (300 s)

    def __init__(self, ctx, ids: Optional[Callable[[], int]] = None):
        super().__init__(ctx)
        self.server_host, self.port = split_server(self.options["server"])
        self.key = tsig.Key(self.options["key_name"].rstrip(".").lower(),
                            self.options.get("key_algorithm") or "hmac-sha256",
                            decode_secret(self.options["key_secret"].reveal()))
        self._ids = ids or (lambda: int.from_bytes(os.urandom(2), "big"))
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, search=self._soa_zone)
        #: how many exchanges went over each transport (tests look at it)
        self.transport: Dict[str, int] = {"udp": 0, "tcp": 0}
        self._key_worked = False  # a signed answer without TSIG error came back for this key

    @classmethod
    def check_config(cls, cfg: ProviderConfig, resolve_path) -> Optional[Tuple[str, str]]:
        try:
            raw = decode_secret(cfg.options["key_secret"].reveal())
        except (binascii.Error, ValueError):
            return "key_secret", "must be the key's secret in base64 (as in the server's key file)"
        if len(raw) < 16:
            return "key_secret", "is shorter than 16 bytes: use a key made by tsig-keygen or keymgr"
        if cfg.endpoint:
            return "endpoint", "is not used by rfc2136: give server = \"host[:port]\""
        return None

    @classmethod
    def config_warnings(cls, cfg: ProviderConfig) -> List[Tuple[str, str]]:
        if cfg.options.get("key_algorithm") == "hmac-md5":
            return [("key_algorithm", "hmac-md5 is kept for old servers only: use hmac-sha256 if the server has it")]
        return []

    @classmethod
    def check_record(cls, cfg: ProviderConfig, record: RecordConfig) -> Optional[Tuple[str, str]]:
        return zone_holds(cfg, record)

    @property
    def host(self) -> str:
        return self.server_host

    # -- transport ----------------------------------------------------------

    def _address(self, kind: int):
        import socket

        try:
            info = socket.getaddrinfo(self.server_host, self.port, type=kind)
        except socket.gaierror as e:
            raise NetworkError(f"{self.server_host}: {e.strerror}") from None
        return info[0]

    def _udp(self, wire: bytes, msg_id: int) -> bytes:
        import socket

        family, kind, proto, _, addr = self._address(socket.SOCK_DGRAM)
        self.transport["udp"] += 1
        # timeout is the exchange's whole budget, not each read's: noise with other IDs (DNS travels in
        # clear) must not keep the one worker listening for ever.
        budget = Budget(self.config.timeout)
        with socket.socket(family, kind, proto) as s:
            try:
                s.connect(addr)  # a connected socket only hears the server's address
                s.send(wire)
                while True:
                    budget.arm(s)
                    data = s.recv(65535)
                    # Another ID is a late answer to an earlier try, or noise: keep listening.
                    if len(data) >= 2 and struct.unpack_from("!H", data)[0] == msg_id:
                        return data
            except socket.timeout:
                raise NetworkError(f"{self.server_host}:{self.port}: no answer over UDP in "
                                   f"{self.config.timeout:g} s") from None
            except OSError as e:
                raise NetworkError(f"{self.server_host}:{self.port}: {e.strerror or e}") from None

    def _tcp(self, wire: bytes) -> bytes:
        import socket

        family, kind, proto, _, addr = self._address(socket.SOCK_STREAM)
        self.transport["tcp"] += 1
        budget = Budget(self.config.timeout)  # the whole exchange: a trickle cannot stretch it
        try:
            with socket.socket(family, kind, proto) as s:
                budget.arm(s)
                s.connect(addr)
                budget.arm(s)
                s.sendall(struct.pack("!H", len(wire)) + wire)
                size = struct.unpack("!H", self._read(s, 2, budget))[0]
                return self._read(s, size, budget)
        except socket.timeout:
            raise NetworkError(f"{self.server_host}:{self.port}: TCP timed out after "
                               f"{self.config.timeout:g} s") from None
        except OSError as e:
            raise NetworkError(f"{self.server_host}:{self.port}: {e.strerror or e}") from None

    @staticmethod
    def _read(s, n: int, budget: Budget) -> bytes:
        buf = b""
        while len(buf) < n:
            budget.arm(s)
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise OSError("the server closed the TCP connection early")
            buf += chunk
        return buf

    def exchange(self, build: Callable[[int], bytes], *, check_time: bool = True
                 ) -> Tuple[dnsmsg.Message, tsig.Verified]:
        """Sign, send, and return the verified answer.

        UDP first; TCP when the answer is truncated, or when UDP gets no answer at all
        (a firewall that passes only TCP/53). Repeating an UPDATE is harmless: it
        replaces the RRset with the same address.
        """
        for transport in ("udp", "tcp"):
            msg_id = self._ids() & 0xFFFF
            wire = build(msg_id)
            signed, req_mac = tsig.sign(self.key, wire, int(self.ctx.clock.now()))
            if transport == "udp":
                try:
                    raw = self._udp(signed, msg_id)
                except NetworkError:
                    continue
            else:
                raw = self._tcp(signed)
            try:
                msg = dnsmsg.parse(raw)
            except dnsmsg.WireError as e:
                raise ProviderError(f"{self.server_host}: malformed answer ({e})") from None
            if msg.id != msg_id or not msg.flags & dnsmsg.FLAG_QR:
                raise ProviderError(f"{self.server_host}: the answer does not match the question")
            if transport == "udp" and msg.truncated:
                continue  # nothing in a truncated answer is used, not even its rcode
            break
        signed_answer = bool(msg.additional) and msg.additional[-1].rtype == dnsmsg.TYPE_TSIG
        if not signed_answer and msg.rcode in (5, 9):
            # An unsigned refusal carries nothing to believe, only the failure. PowerDNS answers this
            # way (NOTAUTH to a query, REFUSED to an update, no TSIG) to a wrong key and to a wrong time.
            raise AuthError(f"{self.server_host}: {dnsmsg.RCODES[msg.rcode]} without a signature: the server "
                            f"refused TSIG key {self.key.name} ({self.key.algorithm}): wrong name, algorithm or "
                            "secret, a key not allowed for this zone, or a clock more than 5 minutes off (this "
                            "server does not say which)")
        try:
            if check_time:
                verified = tsig.verify(self.key, msg, req_mac, self.ctx.clock.now())
            else:  # the time probe: the MAC is checked, the time is what we want to learn
                verified = tsig.verify(self.key, msg, req_mac, float(_time_signed_of(msg)))
        except tsig.TsigError as e:
            raise ProviderError(f"{self.server_host}: answer not believed: {e}") from None
        if verified.signed and not verified.error:
            self._key_worked = True
        return msg, verified

    # -- errors ---------------------------------------------------------------

    def _fail(self, what: str, msg: dnsmsg.Message, v: tsig.Verified, *, update: bool) -> ProviderError:
        rcode = dnsmsg.RCODES.get(msg.rcode, str(msg.rcode))
        where = f"{self.server_host} ({what})"
        if v.error:
            name = tsig.TSIG_ERRORS.get(v.error, str(v.error))
            if v.error == tsig.BADTIME:
                return ClockSkewError(f"{where}: {rcode}/BADTIME: our time is outside the server's "
                                      f"{v.fudge} s window", server_time=v.server_time())
            if update and v.error == tsig.BADKEY and self._key_worked:
                # The same key just signed a read the server accepted: this is a policy refusal
                # (Knot answers BADKEY when its ACL denies the update).
                return AuthError(f"{where}: {rcode}/{name}: the server refused this change for TSIG key "
                                 f"{self.key.name}: its policy does not let the key change this name or type")
            return AuthError(f"{where}: {rcode}/{name}: the server refused TSIG key {self.key.name} "
                             f"({self.key.algorithm}): wrong name, algorithm or secret")
        if rcode == "NOTAUTH":
            return AuthError(f"{where}: NOTAUTH: the server is not authoritative for this zone or does "
                             f"not accept key {self.key.name} for it")
        if rcode == "REFUSED":
            if update:
                return AuthError(f"{where}: REFUSED: the server's policy does not let key "
                                 f"{self.key.name} change this name")
            return NotFoundError(f"{where}: REFUSED: the server does not serve this zone")
        if rcode in ("NOTZONE", "NXDOMAIN"):
            return NotFoundError(f"{where}: {rcode}: the name is not in the zone")
        return ProviderError(f"{where}: {rcode}", retryable=rcode == "SERVFAIL")

    # -- zone, read, write ------------------------------------------------------

    def zone_for(self, record: RecordConfig) -> str:
        zone = record.zone or (self.options.get("zone") or "").rstrip(".").lower()
        if zone:
            return zone
        assert self.zones is not None
        found = self.zones.find(record.name)
        if found is None:
            raise NotFoundError(f"{self.server_host}: no SOA for {record.name}: the server does not "
                                "serve its zone (set zone)")
        return found[0]

    def _soa_zone(self, name: str) -> Optional[Tuple[str, str]]:
        """The zone the server's SOA answer names for ``name``, or None."""
        msg, v = self.exchange(lambda i: dnsmsg.build_query(i, name, dnsmsg.TYPE_SOA))
        if msg.rcode not in (0, 3) or v.error:
            raise self._fail("SOA query", msg, v, update=False)
        owners = [r.name for r in msg.answer + msg.authority if r.rtype == dnsmsg.TYPE_SOA]
        found = next((o for o in owners if name == o or name.endswith("." + o)), None)
        return None if found is None else (found, "")

    def read(self, record: RecordConfig) -> Tuple[List[str], Optional[int]]:
        """The RRset's addresses and TTL, as the authoritative server holds them."""
        rtype = dnsmsg.TYPES[record.type]
        msg, v = self.exchange(lambda i: dnsmsg.build_query(i, record.name, rtype))
        if msg.rcode not in (0, 3) or v.error:
            raise self._fail("query", msg, v, update=False)
        if not msg.flags & dnsmsg.FLAG_AA:
            raise NotFoundError(f"{self.server_host}: not authoritative for {record.name}")
        if any(r.name == record.name and r.rtype == dnsmsg.TYPE_CNAME for r in msg.answer):
            # RFC 2136 §3.4.2.2: an address added next to a CNAME is silently ignored, so an
            # UPDATE would "succeed" and change nothing.
            raise ProviderError(f"{self.server_host}: {record.name} is a CNAME: an {record.type} record "
                                "cannot be added next to it (update the name it points to)")
        rrs = [r for r in msg.answer if r.name == record.name and r.rtype == rtype]
        values = [a for a in (r.address() for r in rrs) if a is not None]
        return values, (rrs[0].ttl if rrs else None)

    def ensure(self, record: RecordConfig, value: str) -> str:
        zone = self.zone_for(record)
        values, ttl = self.read(record)
        if values == [value] and (record.ttl is None or ttl == record.ttl):
            return "unchanged"
        want_ttl = record.ttl or self.options.get("ttl") or 300
        msg, v = self.exchange(lambda i: dnsmsg.build_replace(i, zone, record.name, record.type, value, want_ttl))
        if msg.rcode != 0 or v.error:
            raise self._fail("update", msg, v, update=True)
        return "updated"

    def probe_for(self, record: RecordConfig) -> Callable[[], None]:
        return lambda: self.probe_time(record.name)

    def probe_time(self, name: Optional[str] = None) -> None:
        """One signed SOA query when no NTP answered: a verified answer carries the server's time.

        It asks about the record's name (or the zone): servers sign answers only for zones
        they serve (Knot answers REFUSED, unsigned, for others). A BADTIME answer carries
        the server's clock in its other data; any other signed answer in its time signed.
        """

        zone = name or (self.options.get("zone") or ".").rstrip(".") or "."
        start = time.monotonic()
        msg, v = self.exchange(lambda i: dnsmsg.build_query(i, zone, dnsmsg.TYPE_SOA), check_time=False)
        if v.signed:
            t = v.server_time() if v.error == tsig.BADTIME else v.time_signed
            if t:
                self.ctx.clock.observe_server_time(self.host, float(t), rtt=time.monotonic() - start)


def _time_signed_of(msg: dnsmsg.Message) -> int:
    """The time a TSIG record claims, read before verifying (verify checks the MAC over it)."""
    if not msg.additional or msg.additional[-1].rtype != dnsmsg.TYPE_TSIG:
        return 0
    t = msg.additional[-1]
    try:
        _, off = dnsmsg.read_name(msg.raw, t.rdata_offset)
    except dnsmsg.WireError:
        return 0
    return int.from_bytes(msg.raw[off:off + 6], "big")
