"""What flows from event sources to the agent: :class:`Event`, and the small
protocols sources and publishers implement.

A leaf module: sources (MQTT, the control socket, netlink, ubus) import this,
never the agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol

if TYPE_CHECKING:
    from edgeddns.clock import Clock
    from edgeddns.config import Config
    from edgeddns.handler import CommandHandler
    from edgeddns.result import Result


@dataclass
class Event:
    """A reason to check records: who asked, which records, what they know."""

    trigger: str  # mqtt, hotplug, netlink, ubus, startup, reload, cli, ntp; timers: retry, poll, verify, keepalive
    records: Optional[List[str]] = None  # None = all
    force: bool = False
    id: Optional[str] = None
    addresses: Dict[int, str] = field(default_factory=dict)  # family -> address (already vetted)
    iface: Optional[str] = None
    # netifd's status per interface, as its ubus notification carried it: the
    # ``ubus:NAME`` sources read it instead of asking ubus again.
    interfaces: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    done: Optional[Callable[[List[Result]], None]] = None  # called on the worker thread
    settle: bool = True  # False for an explicit "update now": no burst to wait for
    delay: float = 0.0  # seconds before it counts: fleet-wide work spread over a window
    expires: Optional[float] = None  # epoch seconds: a delayed event due after this is dropped, not run


class Publisher(Protocol):
    def publish_result(self, result: Result) -> None: ...

    def publish_state(self, state: Dict[str, Any]) -> None: ...


class AgentPort(Protocol):
    """What sources and publishers may use of the agent (so they never import it)."""

    config: "Config"
    clock: "Clock"
    commands: "CommandHandler"

    def submit(self, event: Event) -> bool: ...

    def state(self) -> Dict[str, Any]: ...

    def reload(self) -> Optional[str]: ...


class Source(Protocol):
    """Something that produces events or publishes; started and stopped with the agent."""

    def start(self, agent: AgentPort) -> None: ...

    def stop(self) -> None: ...
