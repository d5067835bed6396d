"""Linux rtnetlink, read-only: interface addresses, from the standard library.

Used by the ``interface:`` address source (one dump request) and by the
kernel address event source. No ``ip`` binary is needed, which matters on
OpenWrt images where only busybox is present.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator, List, Optional

RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_CACHEINFO = 6
IFA_FLAGS = 8
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
INFINITY_LIFE = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
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


def _ifname(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"if{index}"


def parse(data: bytes) -> Iterator[IfAddr]:
    """Parse a buffer of netlink messages into address records."""
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            return
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + _NLMSGHDR.size)
            if err:
                raise OSError(-err, os.strerror(-err))
        elif mtype in (RTM_NEWADDR, RTM_DELADDR):
            body = off + _NLMSGHDR.size
            fam, plen, flags, scope, index = _IFADDRMSG.unpack_from(data, body)
            attrs = {}
            a = body + _IFADDRMSG.size
            end = off + length
            while a + _RTATTR.size <= end:
                alen, atype = _RTATTR.unpack_from(data, a)
                if alen < _RTATTR.size:
                    break
                attrs[atype] = data[a + _RTATTR.size:a + alen]
                a += (alen + 3) & ~3
            if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
                (flags,) = struct.unpack("=I", attrs[IFA_FLAGS][:4])
            preferred = valid = INFINITY_LIFE
            created = 0
            if IFA_CACHEINFO in attrs and len(attrs[IFA_CACHEINFO]) >= 8:
                preferred, valid = struct.unpack("=II", attrs[IFA_CACHEINFO][:8])
                if len(attrs[IFA_CACHEINFO]) >= 12:
                    (created,) = struct.unpack("=I", attrs[IFA_CACHEINFO][8:12])
            # IFA_LOCAL is our own end on point-to-point links (PPPoE WAN);
            # IFA_ADDRESS is then the peer. IPv6 only sends IFA_ADDRESS.
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is not None and fam in (socket.AF_INET, socket.AF_INET6):
                addr = str(ipaddress.ip_address(raw))
                # The device name, not IFA_LABEL: "eth0:1" aliases belong to eth0.
                yield IfAddr(mtype, index, _ifname(index), 4 if fam == socket.AF_INET else 6, addr, plen,
                             flags, scope, preferred, valid, created)
        elif mtype == NLMSG_DONE:
            return
        off += (length + 3) & ~3


def dump_addresses(family: Optional[int] = None) -> List[IfAddr]:
    """Every address on every interface, as the kernel holds them now."""
    af = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family or 0, socket.AF_UNSPEC)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.bind((0, 0))
        req = _NLMSGHDR.pack(_NLMSGHDR.size + _IFADDRMSG.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        s.send(req + _IFADDRMSG.pack(af, 0, 0, 0, 0))
        out: List[IfAddr] = []
        while True:
            data = s.recv(65536)
            done = False
            off = 0
            # Look for NLMSG_DONE ourselves: parse() stops at it.
            while off + _NLMSGHDR.size <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if mtype == NLMSG_DONE:
                    done = True
                if length < _NLMSGHDR.size:
                    break
                off += (length + 3) & ~3
            out.extend(parse(data))
            if done or not data:
                return out


def default_route_interface(family: int, proc: str = "/proc/net") -> Optional[str]:
    """The interface of the default route, from /proc (no binary needed)."""
    try:
        if family == 4:
            with open(os.path.join(proc, "route")) as f:
                next(f, None)
                best = None
                for line in f:
                    p = line.split()
                    if len(p) >= 8 and p[1] == "00000000" and p[7] == "00000000" and int(p[3], 16) & 1:
                        metric = int(p[6])
                        if best is None or metric < best[0]:
                            best = (metric, p[0])
                return best[1] if best else None
        with open(os.path.join(proc, "ipv6_route")) as f:
            best = None
            for line in f:
                p = line.split()
                if len(p) >= 10 and p[0] == "0" * 32 and p[1] == "00" and p[9] != "lo":
                    metric = int(p[5], 16)
                    if best is None or metric < best[0]:
                        best = (metric, p[9])
            return best[1] if best else None
    except (OSError, ValueError):
        return None


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
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            return
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE) and length >= _NLMSGHDR.size + _RTMSG.size:
            body = off + _NLMSGHDR.size
            fam, dst_len, _src_len, _tos, table, _proto, _scope, rtype, _flags2 = _RTMSG.unpack_from(data, body)
            oif = 0
            a = body + _RTMSG.size
            end = off + length
            while a + _RTATTR.size <= end:
                alen, atype = _RTATTR.unpack_from(data, a)
                if alen < _RTATTR.size:
                    break
                if atype == RTA_OIF and alen >= _RTATTR.size + 4:
                    (oif,) = struct.unpack_from("=I", data, a + _RTATTR.size)
                elif atype == RTA_TABLE and alen >= _RTATTR.size + 4:
                    (table,) = struct.unpack_from("=I", data, a + _RTATTR.size)
                a += (alen + 3) & ~3
            if fam in (socket.AF_INET, socket.AF_INET6):
                yield RouteChange(mtype, 4 if fam == socket.AF_INET else 6, _ifname(oif) if oif else "", table,
                                  dst_len, rtype)
        elif mtype == NLMSG_DONE:
            return
        off += (length + 3) & ~3
