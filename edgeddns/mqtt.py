"""The MQTT side of the agent: commands in, answers, results and state out.

Three parts, one idea each: :mod:`edgeddns.mqtt_link` owns the connection (one
network thread, our own jittered reconnects), :mod:`edgeddns.mqtt_inbound`
turns a message on a command topic into an answer and work for the agent, and
:mod:`edgeddns.mqtt_outbound` publishes (results, answers, state, discovery)
through a bounded queue. Callbacks only parse, validate and hand work on; they
never block and never raise (an exception would silently kill paho's thread
while ``is_connected()`` stays true).

paho is imported in :meth:`MqttBridge.start`, so a config without ``[mqtt]``
never loads it.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from edgeddns.mqtt_inbound import Inbox
from edgeddns.mqtt_link import Link
from edgeddns.mqtt_outbound import Outbox

if TYPE_CHECKING:
    from edgeddns.config import Config
    from edgeddns.events import AgentPort
    from edgeddns.result import Result


def topics_for(prefix: str, node: str, discovery_prefix: str) -> Dict[str, str]:
    base = f"{prefix}/{node}"
    return {
        "base": base, "cmd": f"{base}/cmd", "all": f"{prefix}/all/cmd",
        "response": f"{base}/response", "result": f"{base}/result", "state": f"{base}/state",
        "availability": f"{base}/availability", "probe": f"{base}/cmd/probe",
        "ha_status": f"{discovery_prefix}/status",
    }


class MqttBridge:
    """Event source (commands) and publisher (results, state) for one broker."""

    def __init__(self, config: "Config", *, rng: Optional[random.Random] = None,
                 monotonic: Callable[[], float] = time.monotonic):
        assert config.mqtt is not None
        self.config = config
        self.m = config.mqtt
        self.node = config.agent.node_id
        self.topics = topics_for(self.m.topic_prefix, self.node, self.m.discovery_prefix)
        self.client_id = self.m.client_id or f"edgeddns-{self.node}"
        self.agent: Optional["AgentPort"] = None
        rng = rng or random.Random()
        self.outbox = Outbox(config, self.topics, self.node, self._agent_config, rng)
        self.inbox = Inbox(self.outbox, self.topics, self.node, monotonic)
        self.link = Link(self.m, self.client_id, self.topics, self.outbox, self.inbox,
                         rng=rng, monotonic=monotonic)

    def _agent_config(self) -> Optional["Config"]:
        return None if self.agent is None else self.agent.config

    def _state(self) -> Dict[str, Any]:
        assert self.agent is not None
        return self.agent.state()

    # ---- Source --------------------------------------------------------------------
    def start(self, agent: "AgentPort") -> None:
        self.agent = agent
        self.inbox.agent = agent
        self.link.state = self._state
        self.link.clock = agent.clock
        self.link.start()

    def status_info(self) -> Dict[str, Any]:
        """The connection, as ``edgeddns status`` shows it."""
        return {"mqtt": {"connected": self.outbox.connected, "broker": f"{self.m.host}:{self.m.port}",
                         **self.inbox.stats()}}

    def stop(self) -> None:
        """Publish ``offline`` (the will is only sent on an unclean loss) and disconnect."""
        self.link.stop()

    # ---- Publisher -----------------------------------------------------------------
    def publish_result(self, result: "Result") -> None:
        self.outbox.publish_result(result)

    def publish_state(self, state: Dict[str, Any]) -> None:
        self.outbox.publish_state(state)
