"""Linux rtnetlink, read-only: interface addresses and route changes, typed.

Used by the ``interface:`` address source (one dump request) and by the
kernel address and route event source. No ``ip`` binary is needed, which
matters on OpenWrt images where only busybox is present. The wire format
(framing, attributes, the dump itself) is :mod:`edgeddns.nlwire`'s.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Iterator, List, Optional

from edgeddns import nlwire
from edgeddns.nlwire import (  # noqa: F401  (part of this module's interface)
    INFINITY_LIFE,
    NLMSG_ERROR,
    RTM_DELADDR,
    RTM_NEWADDR,
    default_route_interface,
)

RTM_NEWROUTE = 24
RTM_DELROUTE = 25
IFA_F_TEMPORARY = 0x01  # for IPv4 the same bit means "secondary", which is fine to publish
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
RTA_OIF = 4
RTA_TABLE = 15
RT_TABLE_MAIN = 254
RTN_UNICAST = 1

_RTMSG = struct.Struct("=BBBBBBBBI")


@dataclass(frozen=True)
class IfAddr:
    event: int  # RTM_NEWADDR or RTM_DELADDR
    ifindex: int
    ifname: str
    family: int  # 4 or 6
    address: str
    prefixlen: int
    flags: int
    scope: int
    preferred: int = INFINITY_LIFE  # seconds left, or INFINITY_LIFE
    valid: int = INFINITY_LIFE
    created: int = 0  # the kernel's creation stamp (IFA_CACHEINFO cstamp, 1/100 s since boot)

    @property
    def usable(self) -> bool:
        """Worth publishing: not a privacy, deprecated, tentative or failed address."""
        if self.family == 6 and self.flags & IFA_F_TEMPORARY:
            return False
        if self.flags & (IFA_F_DEPRECATED | IFA_F_TENTATIVE | IFA_F_DADFAILED):
            return False
        return not (self.family == 6 and self.preferred == 0)


def parse(data: bytes) -> Iterator[IfAddr]:
    """Parse a buffer of netlink messages into address records."""
    for mtype, body, end in nlwire.messages(data):
        if mtype == NLMSG_ERROR:
            nlwire.check_error(data, body)
        elif mtype in (RTM_NEWADDR, RTM_DELADDR):
            fam, plen, flags, scope, index, raw, preferred, valid, created = nlwire.address_fields(data, body, end)
            if raw is not None and fam in (socket.AF_INET, socket.AF_INET6):
                yield IfAddr(mtype, index, nlwire.ifname(index), 4 if fam == socket.AF_INET else 6,
                             str(ipaddress.ip_address(raw)), plen, flags, scope, preferred, valid, created)


def dump_addresses(family: Optional[int] = None) -> List[IfAddr]:
    """Every address on every interface, as the kernel holds them now."""
    return list(parse(nlwire.dump_addresses(family)))


@dataclass(frozen=True)
class RouteChange:
    event: int  # RTM_NEWROUTE or RTM_DELROUTE
    family: int  # 4 or 6
    ifname: str  # the output device ("" when the route names none)
    table: int
    dst_len: int  # 0 for a default route
    rtype: int  # RTN_UNICAST for an ordinary route

    @property
    def default(self) -> bool:
        """A unicast default route of the main table: what /proc/net/route shows and traffic leaves by."""
        return self.dst_len == 0 and self.table == RT_TABLE_MAIN and self.rtype == RTN_UNICAST


def parse_routes(data: bytes) -> Iterator[RouteChange]:
    """Route messages in a buffer of netlink messages (anything else is skipped)."""
    for mtype, body, end in nlwire.messages(data):
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE) and end - body >= _RTMSG.size:
            fam, dst_len, _src_len, _tos, table, _proto, _scope, rtype, _flags2 = _RTMSG.unpack_from(data, body)
            attrs = nlwire.attributes(data, body + _RTMSG.size, end)
            oif = struct.unpack("=I", attrs[RTA_OIF][:4])[0] if len(attrs.get(RTA_OIF, b"")) >= 4 else 0
            if len(attrs.get(RTA_TABLE, b"")) >= 4:
                (table,) = struct.unpack("=I", attrs[RTA_TABLE][:4])
            if fam in (socket.AF_INET, socket.AF_INET6):
                yield RouteChange(mtype, 4 if fam == socket.AF_INET else 6, nlwire.ifname(oif) if oif else "",
                                  table, dst_len, rtype)
