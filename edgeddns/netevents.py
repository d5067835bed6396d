"""Kernel address events: the WAN trigger for every Linux without hotplug.

A thread blocks on an rtnetlink socket subscribed to IPv4 and IPv6 address
changes (no polling: an idle agent makes no wake-ups). An address added to or
removed from one of the interfaces the config reads (``interface:NAME``, or
the default-route interface for ``interface:default``) queues a ``netlink``
event; the agent coalesces bursts and re-detects from the configured sources.
Addresses that would never be published are ignored: IPv6 privacy
(temporary), tentative addresses, addresses added already deprecated, and
anything not of global scope. A usable address that becomes deprecated does
count (renumbering deprecates the old prefix, which may be the published one),
so the source remembers which addresses are usable, from a dump at start. A
receive-buffer overrun (ENOBUFS) means events were lost, so it queues a full
check instead and dumps again.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Set, Tuple

from edgeddns import netlink
from edgeddns.watch import SocketWatcher

if TYPE_CHECKING:
    from edgeddns.config import Config
    from edgeddns.events import AgentPort

log = logging.getLogger("edgeddns")

RT_SCOPE_UNIVERSE = 0
RCVBUF = 256 * 1024  # room for a burst of address messages (a new IPv6 prefix on many interfaces)


def interface_names(config: "Config") -> Set[str]:
    """Every NAME of ``interface:NAME`` in the config, globally or per record."""
    sources = list(config.ip.ipv4) + list(config.ip.ipv6)
    for r in config.records:
        sources.extend(r.ip or [])
    return {s.partition(":")[2] for s in sources if s.startswith("interface:")}


class NetlinkSource:
    """Turns kernel address changes on the configured interfaces into agent events."""

    def __init__(self, config: "Config", *,
                 default_route: Callable[[int], Optional[str]] = netlink.default_route_interface):
        self.config = config
        self.default_route = default_route
        self.events = 0  # events submitted, for tests and benchmarks
        self._agent: Optional["AgentPort"] = None
        self._sock: Optional[socket.socket] = None
        self._watcher: Optional[SocketWatcher] = None
        self._usable: Set[Tuple[str, str]] = set()  # (device, address) that could be published

    @staticmethod
    def wanted(config: "Config") -> bool:
        return bool(interface_names(config))

    def start(self, agent: "AgentPort") -> None:
        self._agent = agent
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        except OSError as e:
            log.error("netlink: cannot open a route socket (%s); address events are off", e.strerror)
            return
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            groups = netlink.RTMGRP_IPV4_IFADDR | netlink.RTMGRP_IPV6_IFADDR
            if self.routes_wanted():
                # interface:default: the address and its route arrive separately, in either order.
                groups |= netlink.RTMGRP_IPV4_ROUTE | netlink.RTMGRP_IPV6_ROUTE
            s.bind((0, groups))
        except OSError as e:
            s.close()
            log.error("netlink: cannot subscribe to address events (%s); address events are off", e.strerror)
            return
        self._sock = s
        self.seed()  # after subscribing: nothing falls between the dump and the first event
        self._watcher = SocketWatcher(s, self._on_ready, "edgeddns-netlink")
        log.debug("netlink: watching %s", ", ".join(sorted(self._names())))

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _names(self) -> Set[str]:
        # The agent's config, not ours: a SIGHUP reload may have changed the sources.
        cfg = self._agent.config if self._agent is not None else self.config
        return interface_names(cfg)

    def watched(self) -> Set[str]:
        """Device names to watch right now (``default`` resolved through /proc)."""
        out = set()
        for name in self._names():
            if name == "default":
                for fam in (4, 6):
                    dev = self.default_route(fam)
                    if dev:
                        out.add(dev)
            else:
                out.add(name)
        return out

    def routes_wanted(self) -> bool:
        """Route changes matter only to ``interface:default``."""
        return "default" in self._names()

    def route_relevant(self, routes: Iterable[netlink.RouteChange]) -> Optional[netlink.RouteChange]:
        """A default route added or removed, or None.

        The new session's address arrives before its route (it was not the
        default interface then), and the old session's route is gone by the time
        its address deletion is seen: the route change is the event that counts.
        """
        for r in routes:
            if r.default and self.routes_wanted():
                return r
        return None

    def seed(self) -> None:
        """Remember which addresses are usable now, so a later deprecation of one is noticed."""
        try:
            addrs = netlink.dump_addresses()
        except OSError as e:
            log.debug("netlink: cannot list addresses (%s)", e.strerror)
            return
        self._usable = {(a.ifname, a.address) for a in addrs if a.scope == RT_SCOPE_UNIVERSE and a.usable}

    def relevant(self, addrs: Iterable[netlink.IfAddr]) -> Optional[netlink.IfAddr]:
        """The first change worth a check, or None.

        Worth it: a usable address added (or its lifetimes renewed) or removed, and
        a usable address that became deprecated (renumbering: the old prefix is
        deprecated after the new one arrived, and may be the one published).
        Never: privacy, tentative and non-global addresses, or an address added
        already deprecated.
        """
        found = None
        watched = None
        for a in addrs:
            if a.scope != RT_SCOPE_UNIVERSE:
                continue
            key = (a.ifname, a.address)
            was = key in self._usable
            now = a.usable and a.event == netlink.RTM_NEWADDR
            if now:
                self._usable.add(key)
            else:
                self._usable.discard(key)
            if found is not None or not (now or was or (a.usable and a.event == netlink.RTM_DELADDR)):
                continue
            if watched is None:
                watched = self.watched()
            if a.ifname in watched:
                found = a  # keep going: the rest of the batch still updates what is usable
        return found

    def _on_ready(self) -> bool:
        """One datagram from the kernel; False stops listening."""
        from edgeddns.events import Event

        assert self._sock is not None and self._agent is not None
        try:
            data = self._sock.recv(65536)
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                # The kernel dropped messages: we cannot know what changed.
                log.warning("netlink: receive buffer overrun; checking every record")
                self.seed()
                self._submit(Event("netlink"))
                return True
            if e.errno in (errno.EINTR, errno.EAGAIN):
                return True
            log.error("netlink: receive failed (%s); address events are off", e.strerror)
            return False
        try:
            change = self.relevant(netlink.parse(data))
            route = self.route_relevant(netlink.parse_routes(data)) if change is None else None
        except (OSError, ValueError, IndexError, struct.error) as e:
            log.debug("netlink: unparsable message (%s)", e)
            return True
        if route is not None:
            log.debug("netlink: IPv%d default route %s %s", route.family,
                      "via" if route.event == netlink.RTM_NEWROUTE else "removed from", route.ifname or "?")
            self._submit(Event("netlink", iface=route.ifname or None))
        if change is not None:
            kind = "deleted" if change.event == netlink.RTM_DELADDR else "new" if change.usable else "deprecated"
            log.debug("netlink: %s %s on %s", kind, change.address, change.ifname)
            self._submit(Event("netlink", iface=change.ifname))
        return True

    def _submit(self, event) -> None:
        self.events += 1
        assert self._agent is not None
        self._agent.submit(event)
