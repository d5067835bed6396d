"""MQTT, inbound: from a message on a command topic to an answer and work for the agent.

Runs on paho's network thread, so it only parses, validates and hands work on:
updates to the agent's queue, ``status`` answered at once, ``reload`` and
``sync_time`` (which may block on files or NTP) to a short-lived helper thread.
It also recognises the probe the connection sends itself to check that the
broker delivers commands.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets as _secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from edgeddns.commands import ACTIONS, REJECT_CODES, AnswerCache, Command, Rejection, parse
from edgeddns.mqtt_outbound import Outbox, stamp

if TYPE_CHECKING:
    from edgeddns.events import AgentPort

log = logging.getLogger("edgeddns.mqtt")

PROBE_TIMEOUT = 5.0  # seconds for our own probe command to come back
# Per action (and one more for everything refused): a burst of this many, then this many per second.
# Beyond it a command is dropped unanswered and counted: answering a flood would queue an answer per
# message ahead of everyone else's, and a status would wait behind thousands of them.
BURST, RATE = 32, 8.0


class Allowance:
    """A token bucket per kind of command; the sum of what it refused is published in ``state``."""

    def __init__(self, monotonic: Callable[[], float], burst: int = BURST, rate: float = RATE):
        self.monotonic = monotonic
        self.burst, self.rate = burst, rate
        self._buckets: Dict[str, Tuple[float, float]] = {}  # kind -> (tokens, at)
        self.dropped = 0
        self._shedding: Dict[str, bool] = {}

    def _tokens(self, kind: str, now: float) -> float:
        tokens, at = self._buckets.get(kind, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def hopeless(self, kinds: Tuple[str, ...]) -> bool:
        """True (and counted) when every kind this message could turn out to be is used up: in a
        flood, most messages are then dropped without even being parsed."""
        now = self.monotonic()
        if any(self._tokens(k, now) >= 1.0 for k in kinds):
            return False
        self.dropped += 1
        return True

    def take(self, kind: str) -> bool:
        now = self.monotonic()
        tokens = self._tokens(kind, now)
        if tokens < 1.0:
            self._buckets[kind] = (tokens, now)
            self.dropped += 1
            if not self._shedding.get(kind):
                self._shedding[kind] = True
                log.warning("more than %d MQTT %s commands in a burst (%.0f/s after it): dropping the rest "
                            "unanswered (counted in state: mqtt.dropped_commands)", self.burst, kind, self.rate)
            return False
        self._buckets[kind] = (tokens - 1.0, now)
        self._shedding[kind] = False
        return True


def guarded(fn: Callable) -> Callable:
    """Wrap a paho callback so that no exception can reach paho's network thread."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("MQTT callback %s failed (the connection stays up)", fn.__name__)

    return wrapper


class Inbox:
    def __init__(self, outbox: Outbox, topics: Dict[str, str], node: str,
                 monotonic: Callable[[], float] = time.monotonic):
        self.out = outbox
        self.m = outbox.m
        self.topics = topics
        self.node = node
        self.agent: Optional["AgentPort"] = None
        self._answers = AnswerCache()
        self.allowance = Allowance(monotonic)
        self._probe: Optional[str] = None
        self._probe_ok = threading.Event()
        self._probe_timer: Optional[threading.Timer] = None
        self.is_connected: Callable[[], bool] = lambda: self.out.connected
        self.stopping: Callable[[], bool] = lambda: False

    # ---- the probe: does the broker deliver what it let us subscribe to? ----------------
    def start_probe(self) -> None:
        """Mosquitto grants a subscription its ACL forbids, then delivers nothing: check delivery."""
        self._probe = _secrets.token_hex(8)
        self._probe_ok.clear()
        with self.out.lock:
            self.out.send(self.topics["probe"], self._probe_payload(), 1, False)
        self.cancel_probe()
        t = threading.Timer(PROBE_TIMEOUT, self._check_probe, args=(self._probe,))
        t.daemon = True
        self._probe_timer = t
        t.start()

    def cancel_probe(self) -> None:
        if self._probe_timer is not None:
            self._probe_timer.cancel()

    @guarded
    def _check_probe(self, nonce: str) -> None:
        if self._probe_ok.is_set() or self._probe != nonce or not self.is_connected() or self.stopping():
            return
        log.warning("a probe published to %s did not come back within %.0f s: the broker accepted the "
                    "subscription but does not deliver its messages (an ACL that forbids reading the command "
                    "topics?); commands will not reach this agent", self.topics["probe"], PROBE_TIMEOUT)

    def _is_probe(self, payload: bytes) -> bool:
        return bytes(payload) == self._probe_payload()

    def _probe_payload(self) -> bytes:
        return json.dumps({"probe": self._probe}).encode()

    # ---- messages -------------------------------------------------------------------
    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        topic = msg.topic
        if topic == self.topics["ha_status"]:
            if msg.payload.strip() == b"online":
                self.out.republish_later()
            return
        for base in (self.topics["cmd"], self.topics["all"]):
            if topic.startswith(base + "/"):
                action = topic[len(base) + 1:]
                break
        else:
            return
        broadcast = base == self.topics["all"]
        if action == "probe" and self._probe is not None and self._is_probe(msg.payload):
            self._probe_ok.set()
            return
        if self.allowance.hopeless((action, "refused") if action in ACTIONS else ("refused",)):
            return
        if msg.retain and not msg.payload:
            # Clearing a retained command (mosquitto_pub -r -n) is not a command: nothing to run or answer.
            log.debug("ignored the clearing of a retained message on %s", topic[:120])
            return
        props = getattr(msg, "properties", None)
        reply_to = getattr(props, "ResponseTopic", None) if props is not None else None
        if reply_to is not None and (not isinstance(reply_to, str) or not 0 < len(reply_to) <= 256
                                     or any(ch in reply_to for ch in "+#\0")):
            reply_to = None
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        agent = self.agent
        assert agent is not None
        cmd = parse(action, bytes(msg.payload), agent.config, retained=bool(msg.retain),
                    max_payload=self.m.max_payload, accept_ip=self.m.accept_ip)
        bad_reply = reply_to is not None and self._forbidden_reply(reply_to)
        if not self.allowance.take("refused" if bad_reply or isinstance(cmd, Rejection) else cmd.action):
            return
        if bad_reply:
            assert reply_to is not None
            # The agent may write its whole subtree, a sender perhaps only cmd/status: an answer
            # published on a command topic would be a command the broker's ACL never allowed.
            log.warning("refused an MQTT command on %s: its response topic %r is a command topic", topic[:120],
                        reply_to[:120])
            why = f"{REJECT_CODES['bad_response_topic']}: {reply_to[:120]!r}"
            self.answer(cmd.action, None, Rejection(cmd.action, "bad_response_topic", why, cmd.id).answer(),
                        None, corr)
            return
        if not isinstance(cmd, Rejection):
            cmd.broadcast = broadcast
        if isinstance(cmd, Rejection):
            log.info("rejected MQTT command on %s: [%s] %s", topic[:120], cmd.code, cmd.message)
            self.answer(cmd.action, cmd.id, cmd.answer(), reply_to, corr)
            return
        if cmd.id is not None:
            earlier = self._answers.get(cmd.id)
            if earlier is not None:
                log.info("MQTT command id %r seen before: answering as before, not running it again", cmd.id)
                self.out.answer(cmd.action, {**earlier, "duplicate": True}, reply_to, corr)
                return
        self._dispatch(cmd, reply_to, corr)

    def stats(self) -> Dict[str, Any]:
        return {"dropped_commands": self.allowance.dropped, "dropped_messages": self.out.dropped_total}

    def _forbidden_reply(self, topic: str) -> bool:
        """``<prefix>/+/cmd/#``, ``$...`` topics, discovery configs, and this agent's retained topics."""
        levels = topic.split("/")
        prefix = self.m.topic_prefix.split("/")
        n = len(prefix)
        if levels[:n] == prefix and len(levels) > n + 1 and levels[n + 1] == "cmd":
            return True
        if topic.startswith("$") or topic == self.m.discovery_prefix or topic.startswith(self.m.discovery_prefix + "/"):
            return True
        return topic in (self.topics["state"], self.topics["availability"], self.topics["result"])

    def answer(self, action: str, cid: Optional[str], answer: Dict[str, Any], reply_to: Optional[str],
               corr: Optional[bytes]) -> None:
        """One answer per command; remembered by id, so a repeated id gets the same one."""
        answer = stamp(self.node, answer)
        if cid is not None:
            self._answers.put(cid, answer)
        self.out.answer(action, answer, reply_to, corr)

    def _dispatch(self, cmd: Command, reply_to: Optional[str], corr: Optional[bytes]) -> None:
        """The transport-neutral handler decides; this only carries its answer back."""
        assert self.agent is not None

        def reply(answer: Dict[str, Any]) -> None:
            busy = (answer.get("error") or {}).get("code") == "busy"  # not the answer to remember for this id
            self.answer(cmd.action, None if busy else cmd.id, answer, reply_to, corr)

        self.agent.commands.handle(cmd, reply)
