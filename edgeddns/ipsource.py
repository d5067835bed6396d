"""Address sources: where the WAN address comes from, and whether it is public.

Sources are strings from the config, tried in order: ``interface:NAME``
(``interface:default`` follows the default route), ``url:URL``,
``cmd:COMMAND`` (run without a shell), ``static:ADDRESS`` and ``ubus:IFACE``
(netifd's view on OpenWrt). The first source that yields a public address of
the record's family wins; a non-public one is remembered so the record can be
skipped with a reason the user can act on (CGNAT above all).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from edgeddns.errors import AddressError

if TYPE_CHECKING:
    from edgeddns.clock import Clock

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
    if ip.is_private or not ip.is_global:
        return f"{ip} is a private address"
    return None


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
    family: int
    address: Optional[str] = None
    source: Optional[str] = None
    refused: List[Tuple[str, str]] = field(default_factory=list)  # (address, reason)
    errors: List[str] = field(default_factory=list)

    def reason(self) -> str:
        if self.refused:
            return self.refused[0][1]
        if self.errors:
            return "; ".join(self.errors)
        return f"no IPv{self.family} address found"


@dataclass
class Detector:
    """Runs sources; network, subprocess and clock are injectable for tests."""

    clock: Optional[Clock] = None
    url_timeout: float = 5.0
    cmd_timeout: float = 10.0
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    interface_addresses: Optional[Callable[[int], list]] = None

    def detect(self, sources: List[str], family: int, allow_private: bool = False) -> Detection:
        det = Detection(family)
        for src in sources:
            try:
                candidates = self.candidates(src, family)
            except AddressError as e:
                det.errors.append(f"{src}: {e.message}")
                continue
            for addr in candidates:
                problem = why_not_public(addr)
                if problem is None or (allow_private and family_of(addr) == family
                                       and not problem.endswith("is not an IP address")):
                    det.address, det.source = addr, src
                    return det
                det.refused.append((addr, problem))
        return det

    def candidates(self, src: str, family: int) -> List[str]:
        kind, _, arg = src.partition(":")
        fn = getattr(self, f"_src_{kind}", None)
        if fn is None:
            raise AddressError(f"unknown source kind {kind!r}")
        return fn(arg, family)

    def _src_static(self, arg: str, family: int) -> List[str]:
        found = [a for a in scan(arg, family) if normalize(a) == normalize(arg)] if family_of(arg) else []
        return found

    def _src_interface(self, arg: str, family: int) -> List[str]:
        from edgeddns import netlink

        name = arg
        if arg == "default":
            name = netlink.default_route_interface(family)
            if not name:
                raise AddressError(f"no default IPv{family} route")
        try:
            addrs = (self.interface_addresses or netlink.dump_addresses)(family)
        except OSError as e:
            raise AddressError(f"cannot read addresses: {e.strerror}") from None
        mine = [a for a in addrs if a.ifname == name and a.family == family]
        if not mine:
            raise AddressError(f"no IPv{family} address on {name}")
        # Global scope first, then stable before temporary/deprecated ones.
        usable = [a.address for a in mine if a.usable and a.scope == 0]
        return usable or [a.address for a in mine if a.usable]

    def _src_url(self, arg: str, family: int) -> List[str]:
        from edgeddns.echo import fetch

        try:
            text = fetch(arg, family, timeout=self.url_timeout, clock=self.clock)
        except OSError as e:
            raise AddressError(str(e) or e.__class__.__name__) from None
        found = scan(text, family)
        if not found:
            raise AddressError(f"no IPv{family} address in the answer")
        return found[:1]

    def _src_cmd(self, arg: str, family: int) -> List[str]:
        try:
            argv = shlex.split(arg)
        except ValueError as e:
            raise AddressError(f"bad command line: {e}") from None
        try:
            proc = self.run(argv, capture_output=True, text=True, timeout=self.cmd_timeout, check=False)
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

    def _src_ubus(self, arg: str, family: int) -> List[str]:
        try:
            proc = self.run(["ubus", "call", f"network.interface.{arg}", "status"], capture_output=True,
                            text=True, timeout=self.cmd_timeout, check=False)
        except FileNotFoundError:
            raise AddressError("ubus not found (not OpenWrt?)") from None
        except (subprocess.TimeoutExpired, OSError):
            raise AddressError("ubus did not answer") from None
        if proc.returncode != 0:
            raise AddressError(f"no such interface {arg!r} in netifd")
        try:
            status: Dict = json.loads(proc.stdout)
        except ValueError:
            raise AddressError("ubus printed malformed JSON") from None
        key = "ipv4-address" if family == 4 else "ipv6-address"
        out = []
        for entry in status.get(key) or []:
            if isinstance(entry, dict) and isinstance(entry.get("address"), str):
                out.append(entry["address"])
        if family == 6:
            # Delegated prefixes carry the router's own address on LAN-side assignments.
            for entry in status.get("ipv6-prefix-assignment") or []:
                la = entry.get("local-address") if isinstance(entry, dict) else None
                if isinstance(la, dict) and isinstance(la.get("address"), str):
                    out.append(la["address"])
        out = [a for a in out if family_of(a) == family]
        if not out:
            raise AddressError(f"interface {arg!r} has no IPv{family} address"
                               + ("" if status.get("up", True) else " (it is down)"))
        return out
