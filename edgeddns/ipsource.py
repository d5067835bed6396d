"""Address sources: where the WAN address comes from, and whether it is public.

Sources are strings from the config, tried in order: ``interface:NAME``
(``interface:default`` follows the default route), ``url:URL``,
``cmd:COMMAND`` (run without a shell), ``static:ADDRESS`` and ``ubus:IFACE``
(netifd's view on OpenWrt). A source's addresses are ranked by the record's
``select`` policy and ``match`` (:mod:`edgeddns.ipselect`), never by the order
they were listed in; for an ``ipv6_suffix`` record each one only gives the
prefix (:mod:`edgeddns.ipsuffix`). The first public result of the record's
family wins; a non-public one is remembered so the record can be skipped with
a reason the user can act on (CGNAT above all).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from edgeddns.errors import AddressError, InterfaceDownError
from edgeddns.ipselect import DEFAULT_POLICY, Candidate, explain, parse_match, rank
from edgeddns.ipsuffix import DEFAULT_PREFIX_LEN, combine, parse_suffix, prefix_text
from edgeddns.lazylog import LazyLogger

if TYPE_CHECKING:
    from edgeddns.clock import Clock
    from edgeddns.config import Config, RecordConfig
    from edgeddns.netlink import IfAddr

log = LazyLogger("edgeddns")  # logging is imported only when a line is due

CGNAT = ipaddress.ip_network("100.64.0.0/10")
_V4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_V6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+(?![0-9A-Fa-f:])")


def why_not_public(address: str) -> Optional[str]:
    """None for a public unicast address, else why it cannot be a WAN address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    if ip.version == 6 and ip.ipv4_mapped:
        return f"{ip} is an IPv4-mapped address"
    if ip.version == 4 and ip in CGNAT:
        return (f"{ip} is a carrier-grade NAT (CGNAT, 100.64.0.0/10) address: your ISP shares one public "
                f"address among customers, so this host cannot be reached from outside at it; ask the ISP "
                f"for a public IPv4 address or use IPv6")
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a unicast address"
    if ip.version == 6 and ip in ipaddress.ip_network("fc00::/7"):
        return f"{ip} is a unique local (ULA) address"
    for net, what in NAMED_RANGES:  # before is_global: older Pythons do not know 3fff::/20
        if ip.version == net.version and ip in net:
            return f"{ip} is in {net} ({what})"
    if ip.is_private or not ip.is_global:
        return f"{ip} is not a public address"
    return None


# Non-public ranges a user meets, by name: "private" is wrong for a documentation example.
NAMED_RANGES = [(ipaddress.ip_network(n), what) for n, what in (
    ("10.0.0.0/8", "a private network, RFC 1918"),
    ("172.16.0.0/12", "a private network, RFC 1918"),
    ("192.168.0.0/16", "a private network, RFC 1918"),
    ("192.0.2.0/24", "TEST-NET-1, reserved for documentation, RFC 5737"),
    ("198.51.100.0/24", "TEST-NET-2, reserved for documentation, RFC 5737"),
    ("203.0.113.0/24", "TEST-NET-3, reserved for documentation, RFC 5737"),
    ("2001:db8::/32", "reserved for documentation, RFC 3849"),
    ("3fff::/20", "reserved for documentation, RFC 9637"),
    ("198.18.0.0/15", "reserved for benchmarking, RFC 2544"),
)]


def family_of(address: str) -> Optional[int]:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def normalize(address: str) -> str:
    return str(ipaddress.ip_address(address.strip()))


def scan(text: str, family: int) -> List[str]:
    """Every address of ``family`` found in free text, in order."""
    out = []
    for m in (_V4 if family == 4 else _V6).finditer(text):
        try:
            ip = ipaddress.ip_address(m.group(0))
        except ValueError:
            continue
        if ip.version == family:
            out.append(str(ip))
    return out


@dataclass
class Detection:
    """The address a record's sources gave (or why none), with what was refused."""

    family: int
    address: Optional[str] = None
    source: Optional[str] = None
    refused: List[Tuple[str, str]] = field(default_factory=list)  # (address, reason)
    errors: List[str] = field(default_factory=list)
    selection: Optional[Dict[str, Any]] = None  # why this address won (the result's "selection")
    down: List[str] = field(default_factory=list)  # interfaces netifd reports down

    def down_reason(self) -> str:
        names = ", ".join(self.down)
        return (f"interface {names} is down (netifd); the record is updated when it comes back up"
                if len(self.down) == 1 else
                f"interfaces {names} are down (netifd); the record is updated when one comes back up")

    def reason(self) -> str:
        if self.refused:
            return self.refused[0][1]
        if self.errors:
            return "; ".join(self.errors)
        return f"no IPv{self.family} address found"


def _missing(name: str) -> str:
    """": no such interface here (...)" when ``name`` is not a device of this machine, else ""."""
    import socket

    try:
        names = [n for _, n in socket.if_nameindex()]
    except OSError:
        return ""
    if name in names:
        return ""
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    # OpenWrt's "wan" is netifd's logical name, not a device: the likeliest mistake there.
    return f": no such interface here ({shown}; for an OpenWrt logical interface use ubus:{name})"


def detect_record(detector: "Detector", config: "Config", rec: "RecordConfig", given: Optional[str],
                  trigger: str, memo: Dict[Any, Any]) -> Detection:
    """One record's address: from the event that carries one, else from its sources.

    ``memo`` is one run's cache: records with the same sources and rules share a
    detection, and every suffix record shares the source's answer, so a prefix
    change moves all of them in the same run.
    """
    select, match = config.selection_for(rec)
    suffix, plen = rec.ipv6_suffix, rec.prefix_len
    if given is not None:
        det = Detection(rec.family)
        addr = given
        if suffix:
            addr = combine(given, parse_suffix(suffix, plen), plen)
            det.selection = {"policy": "event", "reason": f"prefix from the {trigger} event's {given}",
                             "prefix": prefix_text(given, plen), "suffix": suffix}
        problem = why_not_public(addr)
        if problem and not rec.allow_private:
            det.refused.append((addr, problem))
        else:
            det.address, det.source = addr, f"event:{trigger}"
        return det
    sources = config.sources_for(rec)
    key = ("detect", tuple(sources), rec.family, rec.allow_private, select, match, suffix, plen)
    if key not in memo:
        memo[key] = detector.detect(sources, rec.family, rec.allow_private, select=select, match=match,
                                    suffix=suffix, prefix_len=plen, memo=memo)
    return memo[key]


@dataclass
class Detector:
    """Runs sources; network, subprocess and clock are injectable for tests."""

    clock: Optional[Clock] = None
    url_timeout: float = 5.0
    cmd_timeout: float = 10.0
    run: Optional[Callable[..., Any]] = None  # subprocess.run, imported when a cmd:/ubus: source runs
    interface_addresses: Optional[Callable[[int], list]] = None
    # For the one-shot's memo (edgeddns.quickcheck): every source asked, in order, as
    # (kind, arg, family, the text a url: source answered, else None); None records nothing.
    asked: Optional[List[Tuple[str, str, int, Optional[str]]]] = None
    # Answers already fetched for url: sources, by (arg, family): taken instead of fetching again.
    fetched: Optional[Dict[Tuple[str, int], str]] = None

    def detect(self, sources: List[str], family: int, allow_private: bool = False, *,
               select: str = DEFAULT_POLICY, match: Optional[str] = None, suffix: Optional[str] = None,
               prefix_len: int = DEFAULT_PREFIX_LEN, memo: Optional[Dict[Tuple[str, int, bool], Any]] = None
               ) -> Detection:
        """The first public address the sources yield, ranked by ``select``.

        With ``suffix`` each source address only gives the prefix: the address
        checked and published is that prefix plus the suffix. ``memo`` lets
        records of one run share a source's answer (one dump, one ubus call).
        """
        det = Detection(family)
        m = parse_match(match) if match else None
        sfx = parse_suffix(suffix, prefix_len) if suffix else None
        for src in sources:
            try:
                cands = self._cached(src, family, sfx is not None, memo)
            except InterfaceDownError as e:
                det.down.extend(e.interfaces)
                det.errors.append(f"{src}: {e.message}")
                continue
            except AddressError as e:
                det.errors.append(f"{src}: {e.message}")
                continue
            ranked, left_out = rank(cands, family, select, m)
            if not ranked:
                det.errors.append(f"{src}: no usable IPv{family} address ("
                                  + ", ".join(f"{a} {w}" for a, w in left_out[:4]) + ")")
                continue
            for c in ranked:
                addr = combine(c.address, sfx, prefix_len) if sfx is not None else c.address
                problem = why_not_public(addr)
                if problem is None or (allow_private and family_of(addr) == family
                                       and not problem.endswith("is not an IP address")):
                    det.address, det.source = addr, src
                    policy = select if family == 6 else "order"
                    det.selection = {"policy": policy, "reason": explain(c, policy, ranked, left_out, m)}
                    if sfx is not None:
                        det.selection.update(prefix=prefix_text(c.address, prefix_len), suffix=suffix)
                    log.debug("%s: %s", src, det.selection["reason"]
                              + (f" -> {addr} ({suffix} on {det.selection['prefix']})" if sfx is not None else ""))
                    return det
                if sfx is not None:
                    problem = f"{problem} (prefix from {c.address})"
                det.refused.append((addr, problem))
        return det

    def _cached(self, src: str, family: int, prefixes: bool,
                memo: Optional[Dict[Tuple[str, int, bool], Any]]) -> List[Candidate]:
        key = (src, family, prefixes)
        if memo is not None and key in memo:
            got = memo[key]
        else:
            kind, _, arg = src.partition(":")
            status = memo.get(("netifd", arg)) if memo is not None and kind == "ubus" else None
            try:
                # A ubus notification's status stands in for ``ubus call`` (netifd already said it).
                got = (netifd_candidates(status, arg, family, prefixes) if status is not None
                       else self.candidates(src, family, prefixes=prefixes))
            except AddressError as e:
                got = e
            if memo is not None:
                memo[key] = got
        if isinstance(got, AddressError):
            raise got
        return got

    def candidates(self, src: str, family: int, prefixes: bool = False) -> List[Candidate]:
        """Every address ``src`` offers (``prefixes``: the ones that carry a prefix for a suffix)."""
        kind, _, arg = src.partition(":")
        fn = getattr(self, f"_src_{kind}", None)
        if fn is None:
            raise AddressError(f"unknown source kind {kind!r}")
        asked = len(self.asked) if self.asked is not None else 0
        try:
            if kind == "ubus":
                return self._src_ubus(arg, family, prefixes)
            return [c if isinstance(c, Candidate) else Candidate(c) for c in fn(arg, family)]
        finally:
            # url: and interface: record the answer they read; any other source, or one that failed
            # before it read anything, is recorded as asked without an answer the memo could compare.
            if self.asked is not None and len(self.asked) == asked:
                self.asked.append((kind, arg, family, None))

    def _src_static(self, arg: str, family: int) -> List[str]:
        found = [a for a in scan(arg, family) if normalize(a) == normalize(arg)] if family_of(arg) else []
        return found

    def _src_interface(self, arg: str, family: int) -> List[str]:
        from edgeddns import netlink, nlwire

        name = arg
        if arg == "default":
            name = netlink.default_route_interface(family)
            if not name:
                raise AddressError(f"no default IPv{family} route")
        try:
            if self.interface_addresses is not None:
                addrs = self.interface_addresses(family)
            else:
                raw = nlwire.dump_addresses(family)
                addrs = list(netlink.parse(raw))
                if self.asked is not None:  # the memo compares the table this very answer came from
                    self.asked.append(("interface", arg, family, (name, nlwire.address_table(raw))))
        except OSError as e:
            raise AddressError(f"cannot read addresses: {e.strerror}") from None
        mine = [a for a in addrs if a.ifname == name and a.family == family]
        if not mine:
            raise AddressError(f"no IPv{family} address on {name}{_missing(name)}")
        # Global scope only; other scopes are offered only so the refusal can say "link-local".
        glob = [a for a in mine if a.scope == 0]
        return [_from_kernel(a) for a in (glob or mine)]

    def _src_url(self, arg: str, family: int) -> List[str]:
        from edgeddns.echo import fetch

        text = self.fetched.pop((arg, family), None) if self.fetched else None
        if text is None:
            try:
                text = fetch(arg, family, timeout=self.url_timeout, clock=self.clock)
            except OSError as e:
                raise AddressError(str(e) or e.__class__.__name__) from None
        if self.asked is not None:
            self.asked.append(("url", arg, family, text))
        found = scan(text, family)
        if not found:
            raise AddressError(f"no IPv{family} address in the answer")
        return found[:1]

    def _run(self, argv: List[str]) -> Any:
        # edgeddns.spawn, not subprocess: a clean signal mask (not the agent's blocked one) and a session
        # of its own (a Ctrl-C on the agent's terminal must not kill a source mid-answer).
        from edgeddns.spawn import run

        return (self.run or run)(argv, capture_output=True, text=True, timeout=self.cmd_timeout, check=False)

    def _src_cmd(self, arg: str, family: int) -> List[str]:
        import shlex
        import subprocess

        try:
            argv = shlex.split(arg)
        except ValueError as e:
            raise AddressError(f"bad command line: {e}") from None
        try:
            proc = self._run(argv)
        except FileNotFoundError:
            raise AddressError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise AddressError(f"command timed out after {self.cmd_timeout:g} s") from None
        except OSError as e:
            raise AddressError(f"cannot run: {e.strerror}") from None
        if proc.returncode != 0:
            raise AddressError(f"exited with status {proc.returncode}")
        found = scan(proc.stdout, family)
        if not found:
            raise AddressError(f"printed no IPv{family} address")
        return found

    def _src_ubus(self, arg: str, family: int, prefixes: bool = False) -> List[Candidate]:
        import subprocess

        try:
            proc = self._run(["ubus", "call", f"network.interface.{arg}", "status"])
        except FileNotFoundError:
            raise AddressError("ubus not found (not OpenWrt?)") from None
        except (subprocess.TimeoutExpired, OSError):
            raise AddressError("ubus did not answer") from None
        if proc.returncode != 0:
            raise AddressError(f"no such interface {arg!r} in netifd")
        try:
            status: Dict = json.loads(proc.stdout)
        except (ValueError, RecursionError):
            raise AddressError("ubus printed malformed JSON") from None
        if not isinstance(status, dict):
            raise AddressError("ubus printed no interface status")
        return netifd_candidates(status, arg, family, prefixes)


def netifd_candidates(status: Dict[str, Any], arg: str, family: int, prefixes: bool = False) -> List[Candidate]:
    """The addresses in netifd's status of one interface (``ubus call`` or a notification)."""
    if status.get("up") is False:
        raise InterfaceDownError(f"interface {arg!r} is down", (arg,))
    out: List[Candidate] = []
    if prefixes:
        # A suffix record wants the delegated prefix (``ipv6-prefix``, on the WAN side), or
        # the part of it assigned to this interface (``ipv6-prefix-assignment``, on a LAN).
        out.extend(_from_netifd(e) for e in _entries(status, "ipv6-prefix"))
        if not out:
            out.extend(_from_netifd(e) for e in _entries(status, "ipv6-prefix-assignment"))
        what = "delegated IPv6 prefix"
    else:
        key = "ipv4-address" if family == 4 else "ipv6-address"
        out.extend(_from_netifd(e) for e in _entries(status, key))
        if family == 6:
            # Delegated prefixes carry the router's own address on LAN-side assignments.
            for entry in _entries(status, "ipv6-prefix-assignment"):
                la = entry.get("local-address")
                for local in _entries({"la": [la]}, "la"):
                    out.append(_from_netifd({**entry, **local}))
        what = f"IPv{family} address"
    out = [c for c in out if family_of(c.address) == family]
    if not out:
        raise AddressError(f"interface {arg!r} has no {what}")
    return out


def _entries(status: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    """Entries whose address is a plain IP address, in canonical form: netifd's status (``ubus call``
    or a notification) enters here, and ``ipaddress`` alone would let a scope id carrying a line break
    ("2606:4700::1%x\n6.6.6.6 bank.example.com") through to results, state and logs."""
    from edgeddns.address import canonical

    out = []
    for e in status.get(key) or []:
        if isinstance(e, dict):
            try:
                out.append({**e, "address": canonical(e.get("address"))})
            except ValueError:
                log.debug("netifd: ignored an %s entry that is not a plain address", key)
    return out


def _lifetime(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _from_netifd(entry: Dict[str, Any]) -> Candidate:
    """netifd's ``{"address", "mask", "preferred", "valid"}``; it leaves lifetimes out when infinite."""
    mask = entry.get("mask")
    return Candidate(entry["address"], prefixlen=mask if isinstance(mask, int) else None,
                     preferred=_lifetime(entry.get("preferred")), valid=_lifetime(entry.get("valid")), known=True)


def _from_kernel(a: IfAddr) -> Candidate:
    from edgeddns import netlink

    v6 = a.family == 6
    return Candidate(
        a.address, prefixlen=a.prefixlen,
        temporary=v6 and bool(a.flags & netlink.IFA_F_TEMPORARY),  # on IPv4 the bit means "secondary"
        deprecated=bool(a.flags & netlink.IFA_F_DEPRECATED) or (v6 and a.preferred == 0),
        tentative=bool(a.flags & (netlink.IFA_F_TENTATIVE | netlink.IFA_F_DADFAILED)),
        preferred=None if a.preferred == netlink.INFINITY_LIFE else a.preferred,
        valid=None if a.valid == netlink.INFINITY_LIFE else a.valid,
        created=a.created or None, known=True)
