"""Which event sources and publishers a config asks for, and how a reload tells them apart.

Each source comes with an identity (the settings it was built from): a reload
keeps a running source whose identity is unchanged and replaces the others.
Sources are imported only when a config needs them (paho only with ``[mqtt]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Tuple

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
    from edgeddns.ubus import UbusSource

    if UbusSource.wanted(config):
        specs.append((("ubus",), lambda: UbusSource(config)))
    from edgeddns.netevents import NetlinkSource

    if NetlinkSource.wanted(config):
        specs.append((("netlink",), lambda: NetlinkSource(config)))
    return specs


def attach_sources(agent: "Agent", config: "Config") -> None:
    """Plug in every optional event source and publisher the config asks for."""
    for identity, make in source_specs(config):
        agent.add_source(make(), identity)
