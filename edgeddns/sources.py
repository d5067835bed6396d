"""Which event sources and publishers a config asks for, and how a reload tells them apart.

Each source comes with an identity (the settings it was built from): a reload
keeps a running source whose identity is unchanged and replaces the others.
Sources are imported only when a config needs them (paho only with ``[mqtt]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Set, Tuple

if TYPE_CHECKING:
    from edgeddns.agent import Agent
    from edgeddns.config import Config
    from edgeddns.events import Source


def source_specs(config: "Config") -> List[Tuple[Any, Callable[[], Source]]]:
    """Every optional source and publisher the config asks for: (identity, factory).

    A reload keeps a running source whose identity is unchanged and replaces the others.
    """
    specs: List[Tuple[Any, Callable[[], Source]]] = []
    if config.mqtt is not None:
        # Output is redacted with the live config's secrets, so only the connection's own settings count.
        pw = config.mqtt.password.reveal() if config.mqtt.password is not None else None
        ident = ("mqtt", repr(config.mqtt), config.agent.node_id, pw)

        def mqtt() -> Source:
            from edgeddns.mqtt import MqttBridge

            return MqttBridge(config)

        specs.append((ident, mqtt))

    def control() -> Source:
        from edgeddns.control_server import ControlServer

        return ControlServer(config)

    specs.append((("control", config.agent.state_dir), control))
    kinds = _source_kinds(config)
    if "ubus" in kinds:  # the modules only for a config that names such sources (resident in the daemon)
        from edgeddns.ubus import UbusSource

        if UbusSource.wanted(config):
            specs.append((("ubus",), lambda: UbusSource(config)))
    if "interface" in kinds:
        from edgeddns.netevents import NetlinkSource

        if NetlinkSource.wanted(config):
            specs.append((("netlink",), lambda: NetlinkSource(config)))
    return specs


def _source_kinds(config: "Config") -> Set[str]:
    """The kinds (``ubus``, ``interface``, ``url``...) of every address source the config names."""
    sources = list(config.ip.ipv4) + list(config.ip.ipv6)
    for r in config.records:
        sources.extend(r.ip or [])
    return {s.partition(":")[0] for s in sources}


def attach_sources(agent: "Agent", config: "Config") -> None:
    """Plug in every optional event source and publisher the config asks for."""
    for identity, make in source_specs(config):
        agent.add_source(make(), identity)
