"""Validation of commands that arrive over MQTT.

Anyone who can publish to a command topic can send anything, so this module
turns raw bytes into either a :class:`Command` or a :class:`Rejection` with a
stable error code, and never raises. It has no MQTT dependency, so it can be
tested (and fuzzed) on its own.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

if TYPE_CHECKING:
    from edgeddns.config import Config

ACTIONS = ("update", "status", "sync_time", "reload")
MAX_ID = 128
MAX_RECORDS = 64
_IFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")

#: stable codes of a ``rejected`` answer (documented in docs/mqtt.md)
REJECT_CODES = {
    "retained": "commands must not be retained (a retained command would run again on every reconnect)",
    "bad_response_topic": "the MQTT 5 response topic is a command topic or another topic answers must not go to",
    "too_large": "the payload is larger than [mqtt] max_payload",
    "bad_encoding": "the payload is not UTF-8",
    "bad_json": "the payload is not JSON",
    "bad_schema": "a field has the wrong type or value",
    "unknown_action": "the topic names no known action",
    "unknown_record": "a record named in 'records' is not configured here",
    "bad_address": "an address is not an IP address of the right family",
    "not_public": "an address is not public (private, CGNAT, loopback, ...)",
    "busy": "the same kind of command is still running",
    "config": "reload: the new configuration is invalid; the old one keeps running",
    "expired": "the command's 'expires' time has passed (a stale fleet command is not run)",
    "internal": "a bug in edgeddns: please report it",
}


@dataclass
class Command:
    action: str
    id: Optional[str] = None
    records: Optional[List[str]] = None
    force: bool = False
    addresses: Dict[int, str] = field(default_factory=dict)  # vetted, only with accept_ip
    iface: Optional[str] = None
    ignored: List[str] = field(default_factory=list)  # fields present but not honoured
    spread: Optional[float] = None  # seconds: start within a random 0..spread (fleet-wide work)
    expires: Optional[float] = None  # epoch seconds after which the command is refused, not run
    broadcast: bool = False  # sent to the whole fleet (``<prefix>/all/cmd/...``), set by the transport


@dataclass
class Rejection:
    action: str
    code: str
    message: str
    id: Optional[str] = None

    def answer(self) -> Dict[str, Any]:
        return {"id": self.id, "action": self.action, "status": "rejected",
                "error": {"code": self.code, "message": self.message}}


def parse(action: str, payload: bytes, config: "Config", *, retained: bool = False,
          max_payload: int = 4096, accept_ip: bool = False) -> Union[Command, Rejection]:
    """Validate one command; never raises."""
    try:
        return _parse(action, payload, config, retained, max_payload, accept_ip)
    except Exception as e:  # a bug here must cost one answer, not the agent
        return Rejection(action, "internal", f"{e.__class__.__name__} while reading the command")


def _parse(action: str, payload: bytes, config: "Config", retained: bool, max_payload: int,
           accept_ip: bool) -> Union[Command, Rejection]:
    if len(payload) > max_payload:
        return Rejection(action, "too_large", f"payload of {len(payload)} bytes exceeds {max_payload}")
    if retained:  # refused before anything else, but with its id, so the sender can tell which one
        return Rejection(action, "retained", REJECT_CODES["retained"], _peek_id(payload))
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(action, "bad_encoding", REJECT_CODES["bad_encoding"])
    text = text.strip()
    if text in ("", "PRESS"):  # an empty payload or a Home Assistant button press
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            return Rejection(action, "bad_json", f"not JSON: {str(e)[:80]}")
    if not isinstance(data, dict):
        return Rejection(action, "bad_schema", "the payload must be a JSON object")
    cid = data.get("id")
    if cid is not None and (not isinstance(cid, str) or not 0 < len(cid) <= MAX_ID):
        return Rejection(action, "bad_schema", f"'id' must be a string of 1 to {MAX_ID} characters")
    if action not in ACTIONS:
        shown = action if len(action) <= 40 else action[:40] + "..."
        return Rejection(action, "unknown_action", f"unknown action {shown!r} (known: {', '.join(ACTIONS)})",
                         cid)
    cmd = Command(action, cid)
    problem = _timing(cmd, data)
    if problem is not None:
        return Rejection(action, "bad_schema", problem, cid)
    if action != "update":
        return cmd
    records = data.get("records")
    if records is not None:
        if isinstance(records, str):
            records = [records]
        if (not isinstance(records, list) or not 0 < len(records) <= MAX_RECORDS
                or not all(isinstance(r, str) and 0 < len(r) <= 253 for r in records)):
            return Rejection(action, "bad_schema", "'records' must be a list of record names", cid)
        names = []
        for r in records:
            found = config.record(r)
            if not found:
                shown = r if len(r) <= 64 else r[:64] + "..."
                return Rejection(action, "unknown_record", f"no record {shown!r} is configured here", cid)
            names.append(found[0].name)
        cmd.records = sorted(set(names))
    force = data.get("force", False)
    if not isinstance(force, bool):
        return Rejection(action, "bad_schema", "'force' must be true or false", cid)
    cmd.force = force
    iface = data.get("iface")
    if iface is not None:
        # It reaches the log: interface-name characters only, so it cannot forge a line.
        if not isinstance(iface, str) or not _IFACE.fullmatch(iface):
            return Rejection(action, "bad_schema", "'iface' must be an interface name (letters, digits, "
                             "'_', '-', '.', ':', '@'; at most 64)", cid)
        cmd.iface = iface
    for key, family in (("ipv4", 4), ("ipv6", 6)):
        if key not in data or data[key] is None:
            continue
        problem, address = _address(data[key], family, accept_ip)
        if problem is not None:
            return Rejection(action, problem[0], f"{key}: {problem[1]}", cid)
        if accept_ip:
            cmd.addresses[family] = address
        else:
            cmd.ignored.append(key)
    return cmd


def _peek_id(payload: bytes) -> Optional[str]:
    """The command's id if the payload is a JSON object with a valid one, else None."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    cid = data.get("id") if isinstance(data, dict) else None
    return cid if isinstance(cid, str) and 0 < len(cid) <= MAX_ID else None


MAX_SPREAD = 3600.0


def _timing(cmd: Command, data: Dict[str, Any]) -> Optional[str]:
    """``spread`` (seconds) and ``expires`` (RFC 3339 UTC time or epoch seconds), any action."""
    spread = data.get("spread")
    if spread is not None:
        if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not 0 <= spread <= MAX_SPREAD:
            return f"'spread' must be a number of seconds from 0 to {MAX_SPREAD:g}"
        cmd.spread = float(spread)
    expires = data.get("expires")
    if expires is not None:
        when = utc_seconds(expires)
        if when is None:
            return "'expires' must be a UTC time like \"2026-12-02T05:00:00Z\" or epoch seconds"
        cmd.expires = when
    return None


def utc_seconds(value: Any) -> Optional[float]:
    """Epoch seconds from an RFC 3339 UTC time ("...Z", as answers carry) or a number; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if 0 < value < 1e11 else None
    if not isinstance(value, str) or not 0 < len(value) <= 40:
        return None
    import calendar

    text = value.strip().upper()
    if not text.endswith("Z"):
        return None
    head, _, frac = text[:-1].partition(".")
    try:
        tm = time.strptime(head, "%Y-%m-%dT%H:%M:%S")
        extra = float("0." + frac) if frac else 0.0
    except ValueError:
        return None
    return calendar.timegm(tm) + extra


def _address(value: Any, family: int, accept_ip: bool) -> Tuple[Optional[Tuple[str, str]], str]:
    """(problem, canonical address): only the canonical form ever travels on."""
    from edgeddns.address import canonical
    from edgeddns.ipsource import why_not_public

    if not isinstance(value, str) or len(value) > 64:
        return ("bad_schema", "must be a string"), ""
    try:
        address = canonical(value, family)
    except ValueError as e:
        return ("bad_address", f"not a plain IPv{family} address: it {e}"), ""
    if accept_ip:
        problem = why_not_public(address)
        if problem:
            return ("not_public", problem), ""
    return None, address


class AnswerCache:
    """The answers to the last command ids, so a repeated id gets the same answer.

    Bounded in size and age: QoS 1 redelivery happens within seconds or after a
    reconnect, not days later.
    """

    def __init__(self, size: int = 256, max_age: float = 900.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self.size = size
        self.max_age = max_age
        self.monotonic = monotonic
        self._items: "OrderedDict[str, Tuple[float, Dict[str, Any]]]" = OrderedDict()

    def get(self, cid: str) -> Optional[Dict[str, Any]]:
        item = self._items.get(cid)
        if item is None:
            return None
        if self.monotonic() - item[0] > self.max_age:
            del self._items[cid]
            return None
        return item[1]

    def put(self, cid: str, answer: Dict[str, Any]) -> None:
        self._items[cid] = (self.monotonic(), answer)
        self._items.move_to_end(cid)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
