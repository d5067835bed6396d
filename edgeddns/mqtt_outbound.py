"""MQTT, outbound: results, answers, state and discovery, and the queue they wait in.

Only this module hands messages to paho. While the broker is away messages
wait in a bounded queue (``queue_size``, oldest dropped first) and are sent
after the reconnect, followed by the state. paho's own queue is bounded too
(``max_queued_messages_set``), so a broker that stops acknowledging cannot make
QoS 1 messages pile up in memory.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Tuple

from edgeddns.result import iso

if TYPE_CHECKING:
    from edgeddns.config import Config
    from edgeddns.result import Result

log = logging.getLogger("edgeddns.mqtt")

NOT_AUTHORIZED = 135
_ACTION_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
INFLIGHT_MAX = 10000  # mids remembered to name a refused publish
QUEUE_FULL = 15  # paho's MQTT_ERR_QUEUE_SIZE
REFUSED_TOPICS_MAX = 16


def paho_queue_limit(queue_size: int) -> int:
    """paho's own outgoing queue (unbounded by default): our backlog plus the few messages of a connect."""
    return queue_size + 64

Message = Tuple[str, bytes, int, bool, Any]


class Outbox:
    """Everything the agent publishes; thread-safe (worker, paho's thread, helpers)."""

    def __init__(self, config: "Config", topics: Dict[str, str], node: str,
                 config_now: Callable[[], Optional["Config"]], rng: Optional[random.Random] = None):
        assert config.mqtt is not None
        self.m = config.mqtt
        self.topics = topics
        self.node = node
        self._config_now = config_now  # the agent's current config (discovery follows reloads)
        self._config = config
        self.lock = threading.RLock()  # connected flag, backlog and the order of publishes
        self.client: Any = None
        self.connected = False
        self.protocol = 5
        self.error_string: Callable[[int], str] = str
        self.backlog: Deque[Message] = deque()
        self.dropped = 0  # dropped from the backlog since the last connection
        self.dropped_total = 0  # dropped from the backlog or refused by paho's full queue, ever
        self._paho_full = False
        self.last_state: Optional[Dict[str, Any]] = None
        self._discovered: Dict[str, str] = {}  # discovery topic -> payload last published
        self._inflight: Dict[int, str] = {}  # mid -> topic, to name a refused publish
        self._refused_topics: set = set()  # logged once each, at most REFUSED_TOPICS_MAX
        self._refused_more = False
        self._rng = rng or random.Random()
        self._republish_timer: Optional[threading.Timer] = None
        self._cleaned = False  # entities of a larger discovery mode removed once per start

    # ---- the connection's side --------------------------------------------------
    def connected_now(self, state: Callable[[], Dict[str, Any]], session_present: bool = False) -> None:
        """On CONNACK: availability, discovery, the state, then what waited (in that order).

        A broker that still had our session kept what was retained too: the discovery configs
        are not sent again (after a broker restart a whole fleet would otherwise resend them).
        """
        with self.lock:
            self.connected = True
            self.send(self.topics["availability"], b"online", 1, True)
            self.publish_discovery(force=not session_present)
            if self.last_state is None:
                self.last_state = state()
            if self.last_state is not None:
                self.send(self.topics["state"], self.encode(self.last_state), self.m.qos, True)
            n = len(self.backlog)
            while self.backlog:
                self.send(*self.backlog.popleft())
            if n:
                log.info("published %d queued messages%s", n,
                         f" ({self.dropped} older ones were dropped: queue_size)" if self.dropped else "")
            self.dropped = 0

    def republish_later(self) -> None:
        """Home Assistant announced itself: republish within ``discovery_spread`` seconds.

        Every agent of a fleet hears the same birth message; a random delay
        spreads their republishing instead of sending it all in one burst.
        """
        with self.lock:
            if self._republish_timer is not None:
                self._republish_timer.cancel()
            t = threading.Timer(self._rng.uniform(0.0, self.m.discovery_spread), self.republish)
            t.daemon = True
            self._republish_timer = t
        t.start()

    def cancel(self) -> None:
        with self.lock:
            if self._republish_timer is not None:
                self._republish_timer.cancel()

    def republish(self) -> None:
        """Home Assistant restarted: it forgot us unless retained."""
        with self.lock:
            if not self.connected:
                return
            self.publish_discovery(force=True)
            if self.last_state is not None:
                self.send(self.topics["state"], self.encode(self.last_state), self.m.qos, True)

    def on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        topic = self._inflight.pop(mid, None)
        if rc.value != NOT_AUTHORIZED or topic is None or topic in self._refused_topics:
            return
        if len(self._refused_topics) >= REFUSED_TOPICS_MAX:
            # A sender may name a new response topic the broker refuses us with every command.
            if not self._refused_more:
                self._refused_more = True
                log.error("more publishes refused by the broker's ACL (not logged one by one after %d topics)",
                          REFUSED_TOPICS_MAX)
            return
        self._refused_topics.add(topic)
        log.error("the MQTT broker refused a publish to %s (not authorized): check the broker's ACL", topic)

    def offline(self, timeout: float) -> None:
        """A clean stop: ``offline`` (the will is only sent on an unclean loss), waited for."""
        with self.lock:
            client, connected = self.client, self.connected
            if connected:
                info = client.publish(self.topics["availability"], b"offline", qos=1, retain=True)
        if connected:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass

    # ---- what the agent publishes -------------------------------------------------
    def answer(self, action: str, answer: Dict[str, Any], reply_to: Optional[str], corr: Optional[bytes]) -> None:
        """To the MQTT 5 response topic if given (already vetted), else ``response/<action>``."""
        props = None
        if corr is not None and self.protocol == 5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = corr
        topic = reply_to or f"{self.topics['response']}/{action if _ACTION_TOPIC.match(action) else 'invalid'}"
        self.publish(topic, self.encode(answer), self.m.qos, False, props)

    def publish_result(self, result: "Result") -> None:
        d = result.as_dict()
        d["node"] = self.node
        self.publish(self.topics["result"], self.encode(d), self.m.qos, False)

    def publish_state(self, state: Dict[str, Any]) -> None:
        with self.lock:
            self.last_state = state
            if self.connected:
                self.publish_discovery()
                self.send(self.topics["state"], self.encode(state), self.m.qos, True)

    def publish_discovery(self, force: bool = False) -> None:
        """Retained discovery configs; after a reload, new records appear and removed ones are cleared."""
        cfg = self._config_now()
        if cfg is None:
            return
        from edgeddns.discovery import messages

        mode = self.m.discovery
        current = {} if mode == "off" else {t: json.dumps(p, separators=(",", ":"))
                                            for t, p in messages(cfg, self.topics, mode)}
        stale = set(self._discovered) - set(current)
        if not self._cleaned and mode != "full":
            # Entities a larger mode published before (a config changed from "full") stay retained
            # at the broker until cleared: once per start, not on every reconnect.
            stale |= {t for t, _ in messages(cfg, self.topics, "full")} - set(current)
            self._cleaned = True
        for topic in stale:
            self.send(topic, b"", 1, True)  # an empty retained config removes the entity
        for topic, payload in current.items():
            if force or self._discovered.get(topic) != payload:
                self.send(topic, payload.encode(), 1, True)
        self._discovered = current

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, props: Any = None) -> None:
        with self.lock:
            if self.connected and not self.backlog:
                self.send(topic, payload, qos, retain, props)
                return
            self._queue((topic, payload, qos, retain, props))

    def _queue(self, msg: Message) -> None:
        if len(self.backlog) >= self.m.queue_size:
            self.backlog.popleft()
            if not self.dropped:
                log.warning("MQTT queue full (%d): dropping the oldest queued messages", self.m.queue_size)
            self.dropped += 1
            self.dropped_total += 1
        self.backlog.append(msg)

    def send(self, topic: str, payload: bytes, qos: int, retain: bool, props: Any = None) -> None:
        """Hand one message to paho; the caller holds ``lock``."""
        client = self.client
        if client is None:
            self._queue((topic, payload, qos, retain, props))
            return
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc == 0 and qos > 0:
            if len(self._inflight) > INFLIGHT_MAX:
                self._inflight.clear()
            self._inflight[info.mid] = topic
            self._paho_full = False
        elif info.rc == QUEUE_FULL:  # the broker is not taking them: shed instead of growing without end
            self.dropped_total += 1
            if not self._paho_full:
                self._paho_full = True
                log.warning("MQTT: %d messages are waiting for the broker's acknowledgement; dropping new ones "
                            "until it catches up", paho_queue_limit(self.m.queue_size))
        elif info.rc not in (0, 4):  # 4 = not connected: paho keeps QoS>0 messages and resends them
            log.warning("MQTT publish to %s failed: %s", topic, self.error_string(info.rc))

    def encode(self, obj: Dict[str, Any]) -> bytes:
        # The live config's redaction step (a reload's new secrets too), before serialising.
        obj = (self._config_now() or self._config).redactor.data(obj)
        return json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")


def stamp(node: str, answer: Dict[str, Any]) -> Dict[str, Any]:
    """An answer as published: who answered and when (a repeated answer keeps its time)."""
    return {"node": node, "ts": iso(time.time()), **answer}


__all__: List[str] = ["Outbox", "stamp"]
