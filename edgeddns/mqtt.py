"""The MQTT side of the agent: commands in, answers, results and state out.

Threads: paho's network loop runs in one thread owned by this module (not
``loop_start``), so that reconnecting is ours: a jittered, growing back-off
(paho's own has no jitter, and a fleet would reconnect in lock-step after a
broker restart), the MQTT 5 to 3.1.1 fallback, and the detection of a second
agent using the same client id. Callbacks only parse, validate and hand work
to the agent (``Agent.submit``) or to a short-lived helper thread; they never
block and never raise (an exception would silently kill paho's thread while
``is_connected()`` stays true). Results are published from the agent's worker
thread; while the broker is away they wait in a bounded queue.

paho is imported in :meth:`MqttBridge.start`, so a config without ``[mqtt]``
never loads it.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import secrets as _secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Tuple

from edgeddns.commands import AnswerCache, Command, Rejection, parse
from edgeddns.result import iso

if TYPE_CHECKING:
    from edgeddns.agent import Agent
    from edgeddns.config import Config
    from edgeddns.result import Result

log = logging.getLogger("edgeddns.mqtt")

BACKOFF_MIN, BACKOFF_MAX = 1.0, 120.0  # seconds, before jitter
STABLE = 30.0  # a connection that lasted this long resets the back-off
KNOCKOFF_COUNT = 3  # short-lived connections in a row that mean "someone else uses our client id"
# A broker that restarts again and again looks the same from here as a client-id fight, so
# short-lived connections slow reconnects down only this far (about 8 to 16 s).
SHORT_FAILURES_MAX = 4
PROBE_TIMEOUT = 5.0  # seconds for our own probe command to come back
SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason
PROTOCOL_REFUSED = (1, 132)  # 3.1.1 "unacceptable protocol version", MQTT 5 "unsupported protocol version"
NOT_AUTHORIZED = 135
_ACTION_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def guarded(fn: Callable) -> Callable:
    """Wrap a paho callback so that no exception can reach paho's network thread."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("MQTT callback %s failed (the connection stays up)", fn.__name__)

    return wrapper


@dataclass
class _Attempt:
    """What happened to one connection attempt, filled in by the callbacks."""

    connack: Optional[int] = None  # reason code value, None = no CONNACK seen
    connected_at: Optional[float] = None
    disconnect: Optional[int] = None


class MqttBridge:
    """Event source (commands) and publisher (results, state) for one broker."""

    def __init__(self, config: "Config", *, rng: Optional[random.Random] = None,
                 monotonic: Callable[[], float] = time.monotonic):
        assert config.mqtt is not None
        self.config = config
        self.m = config.mqtt
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        node = config.agent.node_id
        self.node = node
        base = f"{self.m.topic_prefix}/{node}"
        self.topics = {
            "base": base, "cmd": f"{base}/cmd", "all": f"{self.m.topic_prefix}/all/cmd",
            "response": f"{base}/response", "result": f"{base}/result", "state": f"{base}/state",
            "availability": f"{base}/availability", "probe": f"{base}/cmd/probe",
            "ha_status": f"{self.m.discovery_prefix}/status",
        }
        self.client_id = self.m.client_id or f"edgeddns-{node}"
        self.agent: Optional["Agent"] = None
        self._secrets = [s.reveal() for s in config.secrets if len(s.reveal()) >= 4]
        self._lock = threading.RLock()  # connected flag, backlog and the order of publishes
        self._client: Any = None
        self._protocol = 4 if self.m.protocol == "3.1.1" else 5
        self._protocol_fixed = self.m.protocol != "auto"
        self._connected = False
        self._backlog: Deque[Tuple[str, bytes, int, bool, Any]] = deque()
        self._dropped = 0
        self._last_state: Optional[Dict[str, Any]] = None
        self._discovered: Dict[str, str] = {}  # discovery topic -> payload last published
        self._answers = AnswerCache()
        self._jobs: Dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._attempt = _Attempt()
        self._short = 0  # short-lived connections in a row
        self._failures = 0
        self._last_error: Optional[str] = None
        self._probe: Optional[str] = None
        self._probe_ok = threading.Event()
        self._probe_timer: Optional[threading.Timer] = None
        self._sub_mids: Dict[int, List[str]] = {}
        self._inflight: Dict[int, str] = {}  # mid -> topic, to name a refused publish
        self._refused_topics: set = set()
        self._paho: Any = None

    # ---- lifecycle ------------------------------------------------------------
    def start(self, agent: "Agent") -> None:
        import paho.mqtt.client as paho

        self._paho = paho
        self.agent = agent
        self._thread = threading.Thread(target=self._net, name="edgeddns-mqtt", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Publish ``offline`` (the will is only sent on an unclean loss) and disconnect."""
        self._stop.set()
        if self._probe_timer is not None:
            self._probe_timer.cancel()
        with self._lock:
            client, connected = self._client, self._connected
            if connected:
                info = client.publish(self.topics["availability"], b"offline", qos=1, retain=True)
        if connected:
            try:
                info.wait_for_publish(3.0)
            except (RuntimeError, ValueError):
                pass
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                log.debug("MQTT disconnect failed", exc_info=True)
        if self._thread is not None:
            self._thread.join(5.0)

    # ---- the network thread -----------------------------------------------------
    def _make_client(self) -> Any:
        paho = self._paho
        from paho.mqtt.enums import CallbackAPIVersion

        proto = paho.MQTTv5 if self._protocol == 5 else paho.MQTTv311
        kw: Dict[str, Any] = {"client_id": self.client_id, "protocol": proto, "reconnect_on_failure": False}
        if proto == paho.MQTTv311:
            kw["clean_session"] = True
        c = paho.Client(CallbackAPIVersion.VERSION2, **kw)
        c.suppress_exceptions = True
        c.enable_logger(logging.getLogger("edgeddns.paho"))
        # A no-op write hook keeps publish() from writing to the socket on the
        # calling thread: only the network thread touches the socket (and TLS).
        c.on_socket_register_write = _noop_socket
        c.on_connect = guarded(self._on_connect)
        c.on_disconnect = guarded(self._on_disconnect)
        c.on_message = guarded(self._on_message)
        c.on_subscribe = guarded(self._on_subscribe)
        c.on_publish = guarded(self._on_publish)
        c.will_set(self.topics["availability"], b"offline", qos=1, retain=True)
        if self.m.username:
            c.username_pw_set(self.m.username, self.m.password.reveal() if self.m.password else None)
        if self.m.tls:
            from edgeddns.tls import make_context

            c.tls_set_context(make_context(self.m.ca_file))
        props = None
        if proto == paho.MQTTv5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            # Commands sent during a short outage wait at the broker; older ones expire.
            props.SessionExpiryInterval = 600
        c.connect_async(self.m.host, self.m.port, self.m.keepalive, properties=props)
        return c

    def _net(self) -> None:
        while not self._stop.is_set():
            try:
                self._one_connection()
            except Exception:  # the watchdog: whatever broke, back off and start over
                log.exception("MQTT connection handling failed; starting over")
                with self._lock:
                    self._connected, self._client = False, None
            if self._stop.is_set():
                return
            delay = self._backoff()
            log.debug("MQTT: next connection attempt in %.1f s", delay)
            self._stop.wait(delay)

    def _one_connection(self) -> None:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
        self._attempt = attempt = _Attempt()
        try:
            client.reconnect()
        except OSError as e:
            self._failures += 1
            self._error(f"cannot connect to the MQTT broker {self.m.host}:{self.m.port}: {_describe(e)}")
            return
        _no_delay(client.socket())
        # loop() rather than loop_forever(): only loop() sets up the socket pair that lets a
        # publish from another thread wake the select() at once (loop_forever leaves it to loop_start).
        wake = min(10.0, self.m.keepalive / 2)
        while client.socket() is not None and client.loop(wake) == 0:  # ends on a loss, or stop()'s disconnect()
            pass
        with self._lock:
            self._connected = False
        if self._stop.is_set():
            return
        lasted = None if attempt.connected_at is None else self.monotonic() - attempt.connected_at
        if attempt.connack is None or attempt.connack != 0:
            self._failures += 1
            if not self._protocol_fixed and (attempt.connack is None or attempt.connack in PROTOCOL_REFUSED):
                self._switch_protocol(attempt.connack)
            return
        if attempt.disconnect == SESSION_TAKEN_OVER:
            self._short = max(self._short, KNOCKOFF_COUNT - 1)
        if lasted is not None and lasted < STABLE:
            self._short += 1
            self._failures = min(self._failures + 1, SHORT_FAILURES_MAX)
            if self._short == KNOCKOFF_COUNT:
                log.error("the broker keeps dropping this agent's connection right after it connects: another "
                          "client is probably using the same client id %r (two agents with the same [agent] "
                          "node_id or [mqtt] client_id, e.g. a cloned image; give each agent its own), unless "
                          "the broker itself keeps restarting", self.client_id)
        else:
            self._short = 0
            self._failures = 0
        log.warning("MQTT connection lost (%s); results are kept until it is back",
                    _rc_text(attempt.disconnect))

    def _switch_protocol(self, connack: Optional[int]) -> None:
        if self.m.protocol != "auto":
            return
        if self._protocol == 5 and (connack in PROTOCOL_REFUSED or connack is None):
            log.warning("the broker refused MQTT 5; trying MQTT 3.1.1")
            self._protocol = 4
        elif self._protocol == 4 and connack is None:
            self._protocol = 5  # no answer at all: not a version problem after all, go back to 5
        else:
            return
        with self._lock:
            self._client = None
        self._failures = 0

    def _backoff(self) -> float:
        """Jittered exponential back-off: never a busy loop, never a fleet in lock-step."""
        cap = min(BACKOFF_MAX, BACKOFF_MIN * (2 ** min(self._failures, 10)))
        return self.rng.uniform(0.5, 1.0) * cap

    def _error(self, text: str) -> None:
        # The same failure every few minutes for hours is one line, not hundreds.
        if text != self._last_error:
            log.error(text)
            self._last_error = text
        else:
            log.debug(text)

    # ---- callbacks (paho's thread) ----------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._attempt.connack = rc.value
        if rc.is_failure:
            hint = {NOT_AUTHORIZED: " (check [mqtt] username and password)",
                    134: " (check [mqtt] username and password)",
                    133: " (the client id is not allowed)"}.get(rc.value, "")
            self._error(f"the MQTT broker refused the connection: {rc}{hint}")
            return
        self._attempt.connected_at = self.monotonic()
        self._protocol_fixed = True
        self._last_error = None
        log.info("connected to MQTT broker %s:%d as %s (MQTT %s)", self.m.host, self.m.port, self.client_id,
                 "5" if self._protocol == 5 else "3.1.1")
        subs = [self.topics["cmd"] + "/#", self.topics["all"] + "/#"]
        if self.m.discovery:
            subs.append(self.topics["ha_status"])
        result, mid = client.subscribe([(t, 1) for t in subs])
        if mid is not None:
            self._sub_mids[mid] = subs
        with self._lock:
            self._connected = True
            self._send(self.topics["availability"], b"online", 1, True)
            self._publish_discovery(force=True)
            if self._last_state is None and self.agent is not None:
                self._last_state = self.agent.state()
            if self._last_state is not None:
                self._send(self.topics["state"], self._encode(self._last_state), self.m.qos, True)
            n = len(self._backlog)
            while self._backlog:
                self._send(*self._backlog.popleft())
            if n:
                log.info("published %d queued messages%s", n,
                         f" ({self._dropped} older ones were dropped: queue_size)" if self._dropped else "")
            self._dropped = 0

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        # paho may call this twice for one loss: it only records.
        with self._lock:
            self._connected = False
        if self._attempt.disconnect is None:
            self._attempt.disconnect = rc.value
        if rc.value == SESSION_TAKEN_OVER:
            log.error("the broker dropped this agent because another client connected with the same client id "
                      "%r; give every agent its own [agent] node_id or [mqtt] client_id", self.client_id)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: List[Any], props: Any) -> None:
        topics = self._sub_mids.pop(mid, [])
        ok = True
        for topic, rc in zip(topics, codes):
            if rc.is_failure:
                ok = False if topic.startswith(self.topics["cmd"]) else ok
                log.error("the MQTT broker refused the subscription to %s (%s): commands sent there will not "
                          "arrive; check the broker's ACL", topic, rc)
        if ok and topics:
            self._start_probe(client)

    def _start_probe(self, client: Any) -> None:
        """Mosquitto grants a subscription its ACL forbids, then delivers nothing: check delivery."""
        self._probe = _secrets.token_hex(8)
        self._probe_ok.clear()
        with self._lock:
            self._send(self.topics["probe"], self._probe_payload(), 1, False)
        if self._probe_timer is not None:
            self._probe_timer.cancel()
        t = threading.Timer(PROBE_TIMEOUT, self._check_probe, args=(self._probe,))
        t.daemon = True
        self._probe_timer = t
        t.start()

    @guarded
    def _check_probe(self, nonce: str) -> None:
        if self._probe_ok.is_set() or self._probe != nonce or not self._connected or self._stop.is_set():
            return
        log.warning("a probe published to %s did not come back within %.0f s: the broker accepted the "
                    "subscription but does not deliver its messages (an ACL that forbids reading the command "
                    "topics?); commands will not reach this agent", self.topics["probe"], PROBE_TIMEOUT)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        topic = self._inflight.pop(mid, None)
        if rc.value == NOT_AUTHORIZED and topic is not None and topic not in self._refused_topics:
            self._refused_topics.add(topic)
            log.error("the MQTT broker refused a publish to %s (not authorized): check the broker's ACL", topic)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        topic = msg.topic
        if topic == self.topics["ha_status"]:
            if msg.payload.strip() == b"online":  # Home Assistant restarted: it forgot us unless retained
                with self._lock:
                    self._publish_discovery(force=True)
                    if self._last_state is not None:
                        self._send(self.topics["state"], self._encode(self._last_state), self.m.qos, True)
            return
        for base in (self.topics["cmd"], self.topics["all"]):
            if topic.startswith(base + "/"):
                action = topic[len(base) + 1:]
                break
        else:
            return
        if action == "probe" and self._probe is not None and self._is_probe(msg.payload):
            self._probe_ok.set()
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
        if isinstance(cmd, Rejection):
            log.info("rejected MQTT command on %s: [%s] %s", topic[:120], cmd.code, cmd.message)
            self._answer(cmd.action, cmd.id, cmd.answer(), reply_to, corr)
            return
        if cmd.id is not None:
            earlier = self._answers.get(cmd.id)
            if earlier is not None:
                log.info("MQTT command id %r seen before: answering as before, not running it again", cmd.id)
                self._answer(cmd.action, None, {**earlier, "duplicate": True}, reply_to, corr)
                return
        self._dispatch(cmd, reply_to, corr)

    def _is_probe(self, payload: bytes) -> bool:
        return bytes(payload) == self._probe_payload()

    def _probe_payload(self) -> bytes:
        return json.dumps({"probe": self._probe}).encode()

    def _dispatch(self, cmd: Command, reply_to: Optional[str], corr: Optional[bytes]) -> None:
        from edgeddns.events import Event

        agent = self.agent
        assert agent is not None
        base: Dict[str, Any] = {"id": cmd.id, "action": cmd.action}
        if cmd.action == "update":
            # A WAN event forwarded over MQTT may be one of a burst of flaps; "update now" is not.
            agent.submit(Event("mqtt", records=cmd.records, force=cmd.force, id=cmd.id,
                               addresses=dict(cmd.addresses), iface=cmd.iface,
                               settle=bool(cmd.addresses or cmd.iface)))
            answer = {**base, "status": "accepted", "records": cmd.records}
            if cmd.ignored:
                answer["ignored"] = cmd.ignored
                answer["note"] = "addresses in commands are ignored unless [mqtt] accept_ip = true"
            self._answer(cmd.action, cmd.id, answer, reply_to, corr)
        elif cmd.action == "status":
            self._answer(cmd.action, cmd.id, {**base, "status": "ok", "state": agent.state()}, reply_to, corr)
        else:  # sync_time and reload may block (NTP, files): not on paho's thread
            job = self._jobs.get(cmd.action)
            if job is not None and job.is_alive():
                self._answer(cmd.action, None, Rejection(cmd.action, "busy", f"a {cmd.action} is still running",
                                                         cmd.id).answer(), reply_to, corr)
                return
            fn = self._reload if cmd.action == "reload" else self._sync_time
            t = threading.Thread(target=guarded(fn), args=(cmd, base, reply_to, corr), daemon=True,
                                 name=f"edgeddns-{cmd.action}")
            self._jobs[cmd.action] = t
            t.start()

    def _reload(self, cmd: Command, base: Dict[str, Any], reply_to: Optional[str], corr: Optional[bytes]) -> None:
        assert self.agent is not None
        error = self.agent.reload()
        if error is None:
            answer = {**base, "status": "ok"}
        else:
            answer = Rejection(cmd.action, "config", error, cmd.id).answer()
        self._answer(cmd.action, cmd.id, answer, reply_to, corr)

    def _sync_time(self, cmd: Command, base: Dict[str, Any], reply_to: Optional[str],
                   corr: Optional[bytes]) -> None:
        from edgeddns.errors import EdgeError

        assert self.agent is not None
        clock = self.agent.clock
        resync = getattr(clock, "resync", None)
        answer: Dict[str, Any] = {**base, "status": "ok"}
        if resync is None:
            answer["note"] = "this clock does not measure an offset ([clock] mode = \"system\")"
        else:
            try:
                resync()
            except EdgeError as e:
                answer = {**base, "status": "failed", "error": e.as_dict()}
        answer["clock"] = {**clock.info().as_dict(), "trusted": clock.trusted}
        self._answer(cmd.action, cmd.id, answer, reply_to, corr)

    # ---- publishing -------------------------------------------------------------
    def _answer(self, action: str, cid: Optional[str], answer: Dict[str, Any], reply_to: Optional[str],
                corr: Optional[bytes]) -> None:
        """One answer per command: to the MQTT 5 response topic if given, else ``response/<action>``."""
        answer = {"node": self.node, "ts": iso(time.time()), **answer}  # a repeated answer keeps its time
        if cid is not None:
            self._answers.put(cid, answer)
        props = None
        if corr is not None and self._protocol == 5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = corr
        topic = reply_to or f"{self.topics['response']}/{action if _ACTION_TOPIC.match(action) else 'invalid'}"
        self._publish(topic, self._encode(answer), self.m.qos, False, props)

    def publish_result(self, result: "Result") -> None:
        d = result.as_dict()
        d["node"] = self.node
        self._publish(self.topics["result"], self._encode(d), self.m.qos, False)

    def publish_state(self, state: Dict[str, Any]) -> None:
        with self._lock:
            self._last_state = state
            if self._connected:
                self._publish_discovery()
                self._send(self.topics["state"], self._encode(state), self.m.qos, True)

    def _publish_discovery(self, force: bool = False) -> None:
        """Retained discovery configs; after a reload, new records appear and removed ones are cleared."""
        if not self.m.discovery or self.agent is None:
            return
        from edgeddns.discovery import messages

        cfg = self.agent.config
        current = {t: json.dumps(p, separators=(",", ":")) for t, p in messages(cfg, self.topics)}
        for topic in set(self._discovered) - set(current):
            self._send(topic, b"", 1, True)  # an empty retained config removes the entity
        for topic, payload in current.items():
            if force or self._discovered.get(topic) != payload:
                self._send(topic, payload.encode(), 1, True)
        self._discovered = current

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool, props: Any = None) -> None:
        with self._lock:
            if self._connected and not self._backlog:
                self._send(topic, payload, qos, retain, props)
                return
            if len(self._backlog) >= self.m.queue_size:
                self._backlog.popleft()
                if not self._dropped:
                    log.warning("MQTT queue full (%d): dropping the oldest queued messages", self.m.queue_size)
                self._dropped += 1
            self._backlog.append((topic, payload, qos, retain, props))

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool, props: Any = None) -> None:
        """Hand one message to paho; the caller holds ``_lock``."""
        client = self._client
        if client is None:
            self._backlog.append((topic, payload, qos, retain, props))
            return
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc == 0 and qos > 0:
            if len(self._inflight) > 10000:
                self._inflight.clear()
            self._inflight[info.mid] = topic
        elif info.rc not in (0, 4):  # 4 = not connected: paho keeps QoS>0 messages and resends them
            log.warning("MQTT publish to %s failed: %s", topic, self._paho.error_string(info.rc))

    def _encode(self, obj: Dict[str, Any]) -> bytes:
        text = json.dumps(obj, separators=(",", ":"), default=str)
        for s in self._secrets:  # payloads never hold secrets; this makes sure of it
            text = text.replace(s, "***")
        return text.encode("utf-8")


def _no_delay(sock: Any) -> None:
    """Answers and results are small writes: without this, Nagle's algorithm meeting the
    peer's delayed ACK holds some of them back for tens of milliseconds."""
    import socket

    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def _noop_socket(client: Any, userdata: Any, sock: Any) -> None:
    pass


def _describe(e: BaseException) -> str:
    import ssl

    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate could not be verified ({e.verify_message}); check [mqtt] ca_file"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "timed out"
    return e.strerror or str(e) or e.__class__.__name__


def _rc_text(code: Optional[int]) -> str:
    return {None: "closed", 0: "closed by the broker", 7: "connection lost", SESSION_TAKEN_OVER:
            "session taken over", 141: "keep-alive timeout", 139: "server shutting down"}.get(code, f"code {code}")
