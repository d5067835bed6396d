"""MQTT, the connection: one network thread, our own reconnects, what went wrong in words.

paho's network loop runs in a thread owned by this module (not ``loop_start``),
so that reconnecting is ours: a jittered, growing back-off (paho's own has no
jitter, and a fleet would reconnect in lock-step after a broker restart), the
MQTT 5 to 3.1.1 fallback, and the detection of a second agent using the same
client id.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from edgeddns.mqtt_inbound import Inbox, guarded
from edgeddns.mqtt_outbound import NOT_AUTHORIZED, Outbox, paho_queue_limit

if TYPE_CHECKING:
    from edgeddns.clock import Clock
    from edgeddns.config import MqttConfig

log = logging.getLogger("edgeddns.mqtt")

BACKOFF_MIN, BACKOFF_MAX = 1.0, 120.0  # seconds, before jitter
STABLE = 30.0  # a connection that lasted this long resets the back-off
KNOCKOFF_COUNT = 3  # short-lived connections in a row that mean "someone else uses our client id"
# A broker that restarts again and again looks the same from here as a client-id fight, so
# short-lived connections slow reconnects down only this far (about 8 to 16 s).
SHORT_FAILURES_MAX = 4
SESSION_EXPIRY = 120  # seconds the broker keeps this agent's session (its queued commands)
SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason
PROTOCOL_REFUSED = (1, 132)  # 3.1.1 "unacceptable protocol version", MQTT 5 "unsupported protocol version"
KEEPALIVE_TIMEOUT = 141
# Room for the fixed and variable headers, the topic and MQTT 5 properties (response topic, correlation
# data) around the largest payload we accept: a command bigger than this is never read at all.
PACKET_OVERHEAD = 4096


def max_packet(m: "MqttConfig") -> int:
    return m.max_payload + PACKET_OVERHEAD


@dataclass
class _Attempt:
    """What happened to one connection attempt, filled in by the callbacks."""

    connack: Optional[int] = None  # reason code value, None = no CONNACK seen
    connected_at: Optional[float] = None
    disconnect: Optional[int] = None
    disconnect_name: str = ""  # the reason code's name, e.g. "Administrative action"
    from_broker: bool = False  # the broker sent DISCONNECT (else the connection just ended)
    oversized: Optional[int] = None  # the length of a packet refused unread


class Link:
    def __init__(self, m: "MqttConfig", client_id: str, topics: Dict[str, str], outbox: Outbox, inbox: Inbox,
                 *, rng: random.Random, monotonic: Callable[[], float]):
        self.m = m
        self.client_id = client_id
        self.topics = topics
        self.out = outbox
        self.inbox = inbox
        self.rng = rng
        self.monotonic = monotonic
        self.state: Callable[[], Dict[str, Any]] = dict  # the agent's state, for the first publish
        self.clock: Optional["Clock"] = None  # the corrected clock: TLS validity is judged by it
        self._paho: Any = None
        self._protocol = 4 if m.protocol == "3.1.1" else 5
        self._protocol_fixed = m.protocol != "auto"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._attempt = _Attempt()
        self._short = 0  # short-lived connections in a row
        self._failures = 0
        self._last_error: Optional[str] = None
        self._sub_mids: Dict[int, List[str]] = {}
        inbox.stopping = self._stop.is_set

    # ---- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        import paho.mqtt.client as paho

        self._paho = paho
        self.out.error_string = paho.error_string
        self._thread = threading.Thread(target=self._net, name="edgeddns-mqtt", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.inbox.cancel_probe()
        self.out.cancel()
        self.out.offline(3.0)
        client = self.out.client
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                log.debug("MQTT disconnect failed", exc_info=True)
        if self._thread is not None:
            self._thread.join(5.0)

    # ---- the network thread -------------------------------------------------------------
    def _make_client(self) -> Any:
        paho = self._paho
        from paho.mqtt.enums import CallbackAPIVersion

        proto = paho.MQTTv5 if self._protocol == 5 else paho.MQTTv311
        kw: Dict[str, Any] = {"client_id": self.client_id, "protocol": proto, "reconnect_on_failure": False}
        if proto == paho.MQTTv311:
            kw["clean_session"] = True
        c = paho.Client(CallbackAPIVersion.VERSION2, **kw)
        c.suppress_exceptions = True
        c.max_queued_messages_set(paho_queue_limit(self.m.queue_size))
        c.enable_logger(logging.getLogger("edgeddns.paho"))
        # A no-op write hook keeps publish() from writing to the socket on the
        # calling thread: only the network thread touches the socket (and TLS).
        c.on_socket_register_write = _noop_socket
        c.on_connect = guarded(self._on_connect)
        c.on_disconnect = guarded(self._on_disconnect)
        c.on_message = guarded(self.inbox.on_message)
        c.on_subscribe = guarded(self._on_subscribe)
        c.on_publish = guarded(self.out.on_publish)
        c.will_set(self.topics["availability"], b"offline", qos=1, retain=True)
        if self.m.username:
            c.username_pw_set(self.m.username, self.m.password.reveal() if self.m.password else None)
        if self.m.tls:
            from edgeddns.tls import make_context

            # Like the providers' TLS: the certificate's validity period is checked against the
            # corrected time, so a router whose clock is wrong still verifies its broker.
            c.tls_set_context(make_context(self.m.ca_file, self.clock))
        props = None
        if proto == paho.MQTTv5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            # Commands sent during a short outage (a broker restart, a WAN blip) wait at the broker.
            # Not longer: a fleet command queued for an agent that was away for minutes is stale (the
            # agent's own events and polls never depend on the broker). docs/mqtt.md, "Sessions".
            props.SessionExpiryInterval = SESSION_EXPIRY
            # The broker drops what is larger instead of sending it: a 200 MB "command" costs nothing here.
            props.MaximumPacketSize = max_packet(self.m)
        _refuse_oversized(c, max_packet(self.m), self._oversized)
        c.connect_async(self.m.host, self.m.port, self.m.keepalive, properties=props)
        return c

    def _net(self) -> None:
        while not self._stop.is_set():
            try:
                self._one_connection()
            except Exception:  # the watchdog: whatever broke, back off and start over
                log.exception("MQTT connection handling failed; starting over")
                with self.out.lock:
                    self.out.connected, self.out.client = False, None
            if self._stop.is_set():
                return
            delay = self._backoff()
            log.debug("MQTT: next connection attempt in %.1f s", delay)
            self._stop.wait(delay)

    def _one_connection(self) -> None:
        with self.out.lock:
            if self.out.client is None:
                self.out.client = self._make_client()
                self.out.protocol = self._protocol
            client = self.out.client
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
        with self.out.lock:
            self.out.connected = False
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
        log.warning("MQTT connection lost (%s); results are kept until it is back", _loss_text(attempt))

    def _oversized(self, length: int) -> None:
        """Called on the network thread when a packet's length says it is too big, before reading it."""
        self._attempt.oversized = length
        log.error("the broker sent a message of %d bytes, larger than this agent accepts (%d bytes: [mqtt] "
                  "max_payload plus headers); dropping the connection without reading it. With MQTT 3.1.1 "
                  "the broker cannot know the limit: set Mosquitto's message_size_limit (see docs/mqtt.md)",
                  length, max_packet(self.m))

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
        with self.out.lock:
            self.out.client = None
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

    # ---- callbacks (paho's thread) ----------------------------------------------------
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
        if self.m.discovery != "off":
            subs.append(self.topics["ha_status"])
        result, mid = client.subscribe([(t, self._sub_options()) for t in subs])
        if mid is not None:
            self._sub_mids[mid] = subs
        self.out.connected_now(self.state, bool(getattr(flags, "session_present", False)))

    def _sub_options(self) -> Any:
        if self._protocol != 5:
            return 1
        from paho.mqtt.subscribeoptions import SubscribeOptions

        # Retain-As-Published: a command retained while we are connected still arrives flagged
        # as retained (otherwise live delivery clears the flag), so it can be refused.
        return SubscribeOptions(qos=1, retainAsPublished=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        # paho may call this twice for one loss: it only records.
        with self.out.lock:
            self.out.connected = False
        if self._attempt.disconnect is None:
            self._attempt.disconnect = rc.value
            self._attempt.disconnect_name = str(rc)
            self._attempt.from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
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
            self.inbox.start_probe()


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


def _refuse_oversized(client: Any, limit: int, report: Callable[[int], None]) -> None:
    """Drop the connection when a packet's announced length exceeds ``limit``, before its body is read.

    paho reads a whole packet into memory before any callback sees it (and asks recv() for all of
    it at once); its reads go through ``_sock_recv``, and ``_in_packet`` holds the length already
    decoded. Both are paho internals (2.x): without them this guard is simply absent.
    """
    recv = getattr(client, "_sock_recv", None)
    if recv is None or not isinstance(getattr(client, "_in_packet", None), dict):
        return

    def bounded_recv(bufsize: int) -> bytes:
        p = client._in_packet
        if p.get("have_remaining") and p.get("remaining_length", 0) > limit:
            length = p["remaining_length"]
            p["remaining_length"] = 0  # report once
            report(length)
            raise OSError(errno.EMSGSIZE, "packet too large")
        return recv(bufsize)

    client._sock_recv = bounded_recv


def _loss_text(a: _Attempt) -> str:
    """Why a connection ended, in words: paho 2 reports a plain loss as 128 "Unspecified error"."""
    if a.oversized is not None:
        return f"this agent dropped it: a message of {a.oversized} bytes was too large"
    if a.from_broker:
        return f"the broker disconnected this agent: {a.disconnect_name}"
    text: Dict[Optional[int], str] = {
        None: "the connection closed", 0: "the connection closed",
        KEEPALIVE_TIMEOUT: "the broker stopped answering keep-alive pings",
        SESSION_TAKEN_OVER: "another client took over this session",
    }
    return text.get(a.disconnect, "the connection closed: the broker went away, or the network dropped or "
                                  "reset it")


