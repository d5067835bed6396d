"""rtnetlink on the wire, and the default route from /proc: ``_socket`` and ``struct`` only.

:mod:`edgeddns.netlink` gives the typed view (addresses, route changes) of
what this reads. The no-change check (:mod:`edgeddns.quickcheck`) compares
the kernel's address table through :func:`address_table` without that view
(its ``ipaddress`` and ``dataclasses`` cost more than the check itself).
"""

import _socket
import os
import struct

TYPE_CHECKING = False  # typing's own flag imports typing: the no-change check reads this module
if TYPE_CHECKING:
    from typing import Dict, Iterator, Optional, Tuple

RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_CACHEINFO = 6
IFA_FLAGS = 8
INFINITY_LIFE = 0xFFFFFFFF

NLMSGHDR = struct.Struct("=IHHII")
IFADDRMSG = struct.Struct("=BBBBI")
RTATTR = struct.Struct("=HH")


def messages(data: bytes) -> "Iterator[Tuple[int, int, int]]":
    """(type, body offset, end offset) of each message in a buffer, up to NLMSG_DONE or a truncated one."""
    off = 0
    while off + NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = NLMSGHDR.unpack_from(data, off)
        if length < NLMSGHDR.size or off + length > len(data) or mtype == NLMSG_DONE:
            return
        yield mtype, off + NLMSGHDR.size, off + length
        off += (length + 3) & ~3


def attributes(data: bytes, start: int, end: int) -> "Dict[int, bytes]":
    """A message's attributes (rtattr) by type, from ``start`` to ``end``."""
    attrs = {}
    a = start
    while a + RTATTR.size <= end:
        alen, atype = RTATTR.unpack_from(data, a)
        if alen < RTATTR.size:
            break
        attrs[atype] = data[a + RTATTR.size:a + alen]
        a += (alen + 3) & ~3
    return attrs


def check_error(data: bytes, body: int) -> None:
    """Raise the error an NLMSG_ERROR message carries (nothing for an acknowledgement)."""
    (err,) = struct.unpack_from("=i", data, body)
    if err:
        raise OSError(-err, os.strerror(-err))


def dump_addresses(family: "Optional[int]" = None) -> bytes:
    """The kernel's answer to an address dump: every message, as received."""
    af = {4: _socket.AF_INET, 6: _socket.AF_INET6}.get(family or 0, _socket.AF_UNSPEC)
    s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _socket.NETLINK_ROUTE)
    try:
        s.bind((0, 0))
        req = NLMSGHDR.pack(NLMSGHDR.size + IFADDRMSG.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        s.send(req + IFADDRMSG.pack(af, 0, 0, 0, 0))
        chunks = []
        while True:
            data = s.recv(65536)
            chunks.append(data)
            if not data or _ends(data):
                return b"".join(chunks)
    finally:
        s.close()


def _ends(data: bytes) -> bool:
    """Does this datagram hold the dump's NLMSG_DONE (or an error, which also ends it)?"""
    off = 0
    while off + NLMSGHDR.size <= len(data):
        length, mtype = struct.unpack_from("=IH", data, off)
        if mtype in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if length < NLMSGHDR.size:
            return False
        off += (length + 3) & ~3
    return False


def address_fields(data: bytes, body: int, end: int) -> tuple:
    """One address message's fields: (family, prefix length, flags, scope, ifindex, address bytes or None,
    preferred and valid lifetime in seconds or INFINITY_LIFE, creation stamp in 1/100 s since boot)."""
    fam, plen, flags, scope, index = IFADDRMSG.unpack_from(data, body)
    attrs = attributes(data, body + IFADDRMSG.size, end)
    if len(attrs.get(IFA_FLAGS, b"")) >= 4:
        (flags,) = struct.unpack("=I", attrs[IFA_FLAGS][:4])
    cache = attrs.get(IFA_CACHEINFO, b"")
    preferred, valid = struct.unpack("=II", cache[:8]) if len(cache) >= 8 else (INFINITY_LIFE, INFINITY_LIFE)
    created = struct.unpack("=I", cache[8:12])[0] if len(cache) >= 12 else 0
    # IFA_LOCAL is our own end on point-to-point links (PPPoE WAN); IFA_ADDRESS is then the peer.
    # IPv6 only sends IFA_ADDRESS.
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    return fam, plen, flags, scope, index, raw, preferred, valid, created


def ifname(index: int) -> str:
    """The device's name (not IFA_LABEL: an "eth0:1" alias belongs to eth0)."""
    try:
        return _socket.if_indextoname(index)
    except OSError:
        return f"if{index}"


def _life(seconds: int) -> int:
    """A lifetime as address choice reads it: 0 (gone), -1 (forever) or 1 (counting down)."""
    return 0 if seconds == 0 else -1 if seconds == INFINITY_LIFE else 1


def address_table(data: bytes) -> tuple:
    """What an address dump says that address choice depends on, in the kernel's order.

    Per address: its fields, with each lifetime only as gone / forever /
    counting down. Remaining seconds tick on their own, and only the
    ``longest_lifetime`` choice compares them (the memo never stands in for
    that one).
    """
    out = []
    for mtype, body, end in messages(data):
        if mtype == NLMSG_ERROR:
            check_error(data, body)
        elif mtype in (RTM_NEWADDR, RTM_DELADDR):
            fam, plen, flags, scope, index, raw, preferred, valid, created = address_fields(data, body, end)
            out.append((mtype, ifname(index), fam, raw, plen, flags, scope, created, _life(preferred), _life(valid)))
    return tuple(out)


def default_route_interface(family: int, proc: str = "/proc/net") -> "Optional[str]":
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
