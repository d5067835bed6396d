"""``edgeddns fleet``: a controller's view of every agent on one broker.

``fleet status`` reads the retained ``state`` and ``availability`` each agent
keeps on the broker and prints one line per node. ``fleet update`` broadcasts
an ``update`` on ``<prefix>/all/cmd/update`` with an MQTT 5 response topic of
its own and a correlation id, then collects each node's answer and results
until every node known to be online has answered, or the timeout passes, and
names the nodes that did not.

Answers come back on the controller's response topic (MQTT 5 agents, or a
bridge that carries response topics); an agent that only speaks MQTT 3.1.1, or
sits behind a bridge that drops properties, answers on its own
``<prefix>/<node>/response/update`` topic instead, so both are collected and
matched by the command id. With ``--group`` the per-node results are read
through an MQTT 5 shared subscription, so several controllers can split the
work of watching a large fleet.

Uses the ``[mqtt]`` table of the config: the broker, TLS and the controller's
own credentials (an account the broker ACL lets write ``<prefix>/all/cmd/#``
and read ``<prefix>/+/state``, ``availability``, ``result`` and ``response``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set

if TYPE_CHECKING:
    import argparse

    from edgeddns.config import MqttConfig

QUIET = 0.5  # seconds without a new retained message: the broker has sent what it keeps
# The largest message the controller takes (MQTT 5 Maximum Packet Size: the broker drops bigger ones
# before they cost us memory). Any node may publish its own retained state, so one node must not be able
# to make every `fleet status` read hundreds of MB; a state of 1000 records is well under 1 MiB.
MAX_PACKET = 4 << 20
MAX_RESULTS = 4096  # per node and run: a node flooding its own result topic costs a bounded list


@dataclass
class Node:
    name: str
    online: Optional[bool] = None
    state: Optional[Dict[str, Any]] = None
    answer: Optional[Dict[str, Any]] = None
    via: Optional[str] = None  # "response-topic" (MQTT 5, correlation data matched) or "node-topic"
    starts_in: float = 0.0  # seconds from the answer to the work the agent scheduled ("at", a spread)
    answered_at: Optional[float] = None  # our monotonic time of the answer
    results: List[Dict[str, Any]] = field(default_factory=list)

    def done(self) -> bool:
        """Answered, and for an accepted update, every record's result is in."""
        if self.answer is None:
            return False
        if self.answer.get("status") != "accepted":
            return True
        if "at" in self.answer and not self.results:
            return False
        wanted = self.answer.get("records")
        if wanted:
            return {r.get("record") for r in self.results} >= set(wanted)
        return bool(self.results)


@dataclass
class Fleet:
    """What the broker told us, keyed by node id; fed from paho's thread, read from ours."""

    prefix: str
    nodes: Dict[str, Node] = field(default_factory=dict)
    cid: Optional[str] = None
    response: Optional[str] = None  # our response topic
    lock: threading.Condition = field(default_factory=threading.Condition)
    last_message: float = 0.0

    def node(self, name: str) -> Node:
        n = self.nodes.get(name)
        if n is None:
            n = self.nodes[name] = Node(name)
        return n

    def feed(self, topic: str, payload: bytes, monotonic: Callable[[], float],
             corr: Optional[bytes] = None) -> None:
        """One message from the broker. Everything in it is a node's word, checked here, where it enters:
        a node speaks only for itself (its name comes from the ACL-confined topic, never from the body),
        and no control character reaches the controller's terminal."""
        parts = topic.split("/")
        rest = topic[len(self.prefix) + 1:].split("/") if topic.startswith(self.prefix + "/") else parts
        with self.lock:
            self.last_message = monotonic()
            if len(rest) == 2 and rest[0] not in ("all", "ctl") and rest[1] == "availability":
                self.node(rest[0]).online = payload.strip() == b"online"
            elif len(rest) == 2 and rest[1] == "state":
                obj = _json(payload)
                if obj is not None:
                    self.node(rest[0]).state = _state_shape(obj)
            elif len(rest) == 2 and rest[1] == "result":
                obj = _json(payload)
                n = self.node(rest[0])
                if (obj is not None and self.cid is not None and self._ours(obj)
                        and len(n.results) < MAX_RESULTS):
                    n.results.append({**obj, "record": _text(obj.get("record")), "status": _text(obj.get("status"))})
            else:  # an answer: on our response topic, or a node's own response/update topic
                obj = _json(payload)
                mine = topic == self.response and corr is not None and corr == (self.cid or "").encode()
                own = len(rest) == 3 and rest[1:] == ["response", "update"]
                # On a node's own topic the ACL says who spoke, whatever the body claims. Every agent
                # may write our response topic, so an answer there is believed only for a node we know
                # of, and it is never the evidence that a node did its work (its own result topic is).
                name = rest[0] if own else obj.get("node") if mine and obj is not None else None
                # Only an answer to an update: a user allowed only cmd/status can make an agent answer a
                # status on our response topic, with our id and correlation data (both visible in the broadcast).
                if (obj is not None and obj.get("id") == self.cid and obj.get("action", "update") == "update"
                        and isinstance(name, str) and (own or name in self.nodes)):
                    obj = _answer_shape(obj)
                    n = self.node(name)
                    if n.answer is None or (own and n.via != "node-topic"):
                        n.answer, n.via = obj, "node-topic" if own else "response-topic"
                        n.answered_at = self.last_message
                        n.starts_in = _seconds_between(obj.get("ts"), obj.get("at"))
            self.lock.notify_all()

    def _ours(self, result: Dict[str, Any]) -> bool:
        ids = result.get("ids") or []
        return result.get("id") == self.cid or (isinstance(ids, list) and self.cid in ids)


def _seconds_between(ts: Any, at: Any) -> float:
    """How long after answering the agent starts (both times are the agent's own clock)."""
    from edgeddns.commands import utc_seconds

    a, b = utc_seconds(ts), utc_seconds(at)
    return max(0.0, min(b - a, 3600.0)) if a is not None and b is not None else 0.0


def _json(payload: bytes) -> Optional[Dict[str, Any]]:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return _printable(obj) if isinstance(obj, dict) else None


def _text(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _state_shape(obj: Dict[str, Any]) -> Dict[str, Any]:
    """A node's state as the controller reads it: the fields it shows, each a string or None, so one
    node's odd JSON (an error that is a string, a clock that is a list) cannot end the whole view."""
    records = []
    for r in obj.get("records") if isinstance(obj.get("records"), list) else []:
        if isinstance(r, dict):
            err = r.get("error")
            code = err.get("code") if isinstance(err, dict) else err
            records.append({**{k: _text(r.get(k)) for k in ("record", "type", "provider", "ip", "status")},
                            "error": {"code": str(code)[:80]} if err else None})
    clock = obj.get("clock") if isinstance(obj.get("clock"), dict) else {}
    return {**obj, "records": records, "clock": {**clock, "source": _text(clock.get("source"))}}


def _answer_shape(obj: Dict[str, Any]) -> Dict[str, Any]:
    """An answer's fields the controller acts on, in the types it expects (else treated as absent)."""
    recs = obj.get("records")
    status = obj.get("status")
    return {**obj, "status": status if isinstance(status, str) else "invalid",
            "records": recs if isinstance(recs, list) and all(isinstance(r, str) for r in recs) else None}


# C0, C1, line/paragraph separators, and the invisible format characters that reorder or hide text
# (bidi overrides and isolates, zero-width ones): a row must read as what it holds.
_CONTROL = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x200B, 0x2010),
                          *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF], "?")


def _printable(obj: Any) -> Any:
    """A node's JSON without control characters: a newline or an escape sequence in a record name
    would forge a row of another node in the table, or drive the operator's terminal."""
    if isinstance(obj, str):
        return obj.translate(_CONTROL)
    if isinstance(obj, dict):
        return {_printable(k): _printable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_printable(v) for v in obj]
    return obj


class Controller:
    """One short MQTT 5 session (paho's own loop thread: a CLI, not the agent)."""

    def __init__(self, m: "MqttConfig", *, client_id: Optional[str] = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.m = m
        self.monotonic = monotonic
        self.fleet = Fleet(m.topic_prefix)
        self.client_id = client_id or f"edgeddns-fleet-{os.urandom(4).hex()}"
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._error: Optional[str] = None
        self.client: Any = None

    def connect(self, timeout: float) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        if self.m.username:
            c.username_pw_set(self.m.username, self.m.password.reveal() if self.m.password else None)
        if self.m.tls:
            from edgeddns.tls import make_context

            c.tls_set_context(make_context(self.m.ca_file))
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = lambda client, userdata, msg: self.fleet.feed(
            msg.topic, bytes(msg.payload), self.monotonic,
            getattr(getattr(msg, "properties", None), "CorrelationData", None))
        self.client = c
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.MaximumPacketSize = MAX_PACKET
        try:
            c.connect(self.m.host, self.m.port, self.m.keepalive, properties=props)
        except OSError as e:
            raise FleetError(f"cannot reach the broker {self.m.host}:{self.m.port}: {e.strerror or e}") from None
        c.loop_start()
        if not self._connected.wait(timeout) or self._error:
            raise FleetError(self._error or f"no answer from the broker {self.m.host}:{self.m.port}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self._error = f"the broker refused the connection: {rc}"
        self._connected.set()

    def subscribe(self, topics: List[str], timeout: float) -> None:
        self._subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        if not self._subscribed.wait(timeout):
            raise FleetError("the broker did not acknowledge the subscription")

    def wait_quiet(self, limit: float) -> None:
        """Until no retained message came for QUIET seconds (or ``limit`` passed)."""
        end = self.monotonic() + limit
        with self.fleet.lock:
            self.fleet.last_message = self.monotonic()
            while True:
                now = self.monotonic()
                quiet_at = self.fleet.last_message + QUIET
                if now >= quiet_at or now >= end:
                    return
                self.fleet.lock.wait(min(quiet_at, end) - now)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


class FleetError(Exception):
    code = "fleet"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _view(fleet: Fleet) -> List[Dict[str, Any]]:
    rows = []
    for name in sorted(fleet.nodes):
        n = fleet.nodes[name]
        st = n.state or {}
        records = st.get("records") if isinstance(st.get("records"), list) else []
        errors = [f"{r.get('record')}: {(r.get('error') or {}).get('code')}" for r in records
                  if isinstance(r, dict) and r.get("error")]
        rows.append({"node": name, "online": n.online,
                     "records": [{k: r.get(k) for k in ("record", "type", "provider", "ip", "status")}
                                 for r in records if isinstance(r, dict)],
                     "clock": (st.get("clock") or {}).get("source"), "errors": errors})
    return rows


def _print_table(rows: List[Dict[str, Any]]) -> None:
    if not rows:
        print("no agents found on this broker")
        return
    for row in rows:
        online = {True: "online", False: "offline", None: "?"}[row["online"]]
        recs = ", ".join(f"{r['record']} {r['type']} {r['ip'] or '-'} {r['status']}" for r in row["records"]) or "-"
        err = f"  errors: {'; '.join(row['errors'])}" if row["errors"] else ""
        print(f"{row['node']:<20} {online:<8} clock {row['clock'] or '?':<20} {recs}{err}")


def _controller(args: "argparse.Namespace") -> "Controller":
    from edgeddns.bootstrap import load_config

    cfg = load_config(args)
    if cfg.mqtt is None:
        raise FleetError(f"{cfg.path}: mqtt: the fleet commands need an [mqtt] table")
    ctl = Controller(cfg.mqtt)
    ctl.connect(args.timeout)
    return ctl


def _status(ctl: Controller, wait: float) -> List[Dict[str, Any]]:
    p = ctl.m.topic_prefix
    ctl.subscribe([f"{p}/+/state", f"{p}/+/availability"], wait)
    ctl.wait_quiet(wait)
    with ctl.fleet.lock:
        return _view(ctl.fleet)


def cmd_fleet(args: "argparse.Namespace") -> int:
    from edgeddns.bootstrap import EXIT_FAILED, EXIT_USAGE

    if args.fleet_command is None:
        print("edgeddns: fleet: say 'status' or 'update'", file=sys.stderr)
        return EXIT_USAGE
    def fail(e: FleetError) -> int:
        if args.json:  # the shape of status --json: a script always gets one JSON object
            print(json.dumps({"ok": False, "error": {"code": e.code, "message": e.message}}))
        print(f"edgeddns: fleet: {e.message}", file=sys.stderr)
        return EXIT_FAILED

    try:
        ctl = _controller(args)
    except FleetError as e:
        return fail(e)
    try:
        if args.fleet_command == "status":
            rows = _status(ctl, args.timeout)
            if args.json:
                print(json.dumps({"nodes": rows}))
            else:
                _print_table(rows)
            return 0
        return _update(ctl, args)
    except FleetError as e:
        return fail(e)
    finally:
        ctl.close()


def _update(ctl: Controller, args: "argparse.Namespace") -> int:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    p = ctl.m.topic_prefix
    _status(ctl, min(args.timeout, 5.0))
    with ctl.fleet.lock:
        expected: Set[str] = {n.name for n in ctl.fleet.nodes.values() if n.online}
    cid = f"fleet-{os.urandom(6).hex()}"
    response = f"{p}/ctl/{ctl.client_id}/response"
    with ctl.fleet.lock:
        ctl.fleet.cid, ctl.fleet.response = cid, response
    subs = [response, f"{p}/+/response/update"]
    subs.append(f"$share/{args.group}/{p}/+/result" if args.group else f"{p}/+/result")
    ctl.subscribe(subs, args.timeout)
    body: Dict[str, Any] = {"id": cid}
    if args.records:
        body["records"] = args.records
    if args.force:
        body["force"] = True
    if args.spread is not None:
        body["spread"] = args.spread
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response
    props.CorrelationData = cid.encode()
    # Stale broadcasts are refused by the agents: one the broker held past our wait is no use.
    props.MessageExpiryInterval = max(1, int(args.timeout + (args.spread or 0)))
    ctl.client.publish(f"{p}/all/cmd/update", json.dumps(body).encode(), qos=1, properties=props)
    base_end = ctl.monotonic() + args.timeout + (args.spread or 0)
    with ctl.fleet.lock:
        while True:
            waiting = sorted(n for n in expected if not ctl.fleet.node(n).done())
            # A node that scheduled its work for later (its "at") gets the timeout from then on.
            end = max([base_end] + [n.answered_at + n.starts_in + args.timeout for n in ctl.fleet.nodes.values()
                                    if n.answered_at is not None and n.name in waiting])
            left = end - ctl.monotonic()
            if not waiting or left <= 0:
                break
            ctl.fleet.lock.wait(left)
        nodes = {k: v for k, v in ctl.fleet.nodes.items() if v.answer is not None or k in expected}
        # Only a node's own result topic (which the ACL confines to it) proves it did the work: an
        # answer without results (a refusal, or a claim on the shared response topic) is no success.
        unconfirmed = sorted(n for n in expected if n not in waiting and not ctl.fleet.node(n).results)
        report = {"id": cid, "expected": sorted(expected), "silent": waiting, "unconfirmed": unconfirmed,
                  "nodes": {k: {"answer": v.answer, "via": v.via, "results": v.results}
                            for k, v in sorted(nodes.items())}}
    if args.json:
        print(json.dumps(report))
    else:
        if not report["nodes"]:
            print("no agents online on this broker")
        for name, v in report["nodes"].items():
            ans = v["answer"] or {}
            res = ", ".join(f"{r.get('record')} {r.get('status')}" for r in v["results"]) or "-"
            print(f"{name:<20} {ans.get('status', 'no answer'):<10} {res}")
        if waiting:
            print(f"no answer from {len(waiting)} of {len(expected)} online nodes: {', '.join(waiting)}")
        if unconfirmed:
            print(f"no results from {len(unconfirmed)} of {len(expected)} online nodes: {', '.join(unconfirmed)}")
    failed = any(r.get("status") == "failed" for v in report["nodes"].values() for r in v["results"])
    return 1 if waiting or failed or unconfirmed else 0
