"""What the scheduler knows about one record, and the policies it applies.

A :class:`RecordPlan` holds everything pending for one record (a check, a
forced write, an address an event gave for this record only, the command ids
waiting for its result) and its own timers (retry, poll, verification,
keepalive). Nothing here touches threads, clocks or the network: the
scheduler passes ``now`` in, so the policies are plain functions of it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional

if TYPE_CHECKING:
    import random

    from edgeddns.config import Config, RecordConfig
    from edgeddns.result import Result

RETRY_FIRST, RETRY_MAX = 30.0, 1800.0  # seconds: a failed record's back-off, doubling
MAX_IDS = 32  # command ids a result carries; the rest are only counted
BREAKER_FIRST, BREAKER_MAX = 30.0, 300.0  # seconds a failing provider is left alone
BREAKER_AFTER = 2  # runs in a row with provider trouble before its other records are held
#: codes that say the provider (or the way to it) is unwell, not this record
PROVIDER_TROUBLE = frozenset({"network", "rate_limited", "provider", "tls"})
NO_RETRY = frozenset({"config"})  # only a new config can fix these
SLOW_RETRY = frozenset({"auth"})  # a fixed key or permission is picked up, without hammering
#: sources whose changes no event announces (interface: has netlink, ubus: has hotplug)
UNWATCHED = ("url:", "cmd:")


@dataclass
class Backoff:
    """Jittered doubling delays, ``first`` up to ``cap`` seconds."""

    first: float = RETRY_FIRST
    cap: float = RETRY_MAX
    jitter: float = 0.2

    def delay(self, failures: int, rng: "random.Random") -> float:
        base = min(self.cap, self.first * (2 ** min(max(failures, 1) - 1, 30)))
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass
class Intervals:
    """The per-record timer periods a config asks for, in seconds (None = off)."""

    poll: Optional[float]
    verify: Optional[float]
    keepalive: Optional[float]
    force: float

    @classmethod
    def of(cls, config: "Config", rec: "RecordConfig") -> "Intervals":
        a = config.agent
        poll = _minutes(a.poll_interval)
        if poll is None and any(s.startswith(UNWATCHED) for s in config.sources_for(rec)):
            poll = _minutes(a.source_poll_interval)
        ka = rec.keepalive_interval
        if ka is None:
            pc = config.providers.get(rec.provider)
            ka = pc.keepalive_interval if pc is not None else None
        return cls(poll=poll, verify=_minutes(a.verify_interval), keepalive=ka * 86400.0 if ka else None,
                   force=float(a.force_interval))


def _minutes(v: Optional[float]) -> Optional[float]:
    return v * 60.0 if v and math.isfinite(v) and v > 0 else None


@dataclass
class Waiter:
    """An event that wants the results of its records (the control socket's ``update``)."""

    done: Callable[[List["Result"]], None]
    left: int
    results: List["Result"] = field(default_factory=list)


@dataclass
class RecordPlan:
    key: str  # name/type
    name: str
    family: int
    provider: str
    intervals: Intervals
    # -- what is pending
    due: bool = False
    trigger: Optional[str] = None  # the latest reason
    force: bool = False
    verify: bool = False
    keepalive: bool = False
    address: Optional[str] = None  # from an event that named this record (or all), this family only
    interfaces: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # netifd status from notifications
    ids: Deque[str] = field(default_factory=lambda: deque(maxlen=MAX_IDS))
    id_count: int = 0
    events: int = 0
    waiters: List[Waiter] = field(default_factory=list)
    # -- timers and memory (monotonic seconds)
    failures: int = 0
    retry_at: Optional[float] = None
    poll_at: Optional[float] = None
    verify_at: Optional[float] = None
    keepalive_at: Optional[float] = None
    last_forced: Optional[float] = None
    running: bool = False

    def timers(self) -> List[float]:
        return [t for t in (self.retry_at, self.poll_at, self.verify_at, self.keepalive_at) if t is not None]

    def clear_pending(self) -> None:
        self.due = self.force = self.verify = self.keepalive = False
        self.trigger = self.address = None
        self.interfaces = {}
        self.ids = deque(maxlen=MAX_IDS)
        self.id_count = self.events = 0
        self.waiters = []


@dataclass
class Job:
    """One record's share of a run: taken from its plan, handed to the engine."""

    key: str
    name: str
    provider: str
    trigger: str
    force: bool
    verify: bool
    keepalive: bool
    address: Optional[str]
    family: int
    ids: List[str]
    id_count: int
    events: int
    waiters: List[Waiter]
    interfaces: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    force_limited: bool = False

    def annotate(self, result: "Result") -> None:
        """The record's own trigger and ids, whatever else shared its engine run."""
        result.trigger = self.trigger
        if self.ids:
            result.id = self.ids[-1]
        if self.events > 1:
            result.extra["coalesced"] = self.events
        if self.id_count > 1:
            result.extra["ids"] = list(self.ids)
            result.extra["ids_count"] = self.id_count
        if self.force_limited:
            result.extra["force_limited"] = True


@dataclass
class Breaker:
    """A provider that keeps failing is left alone, then probed with one record."""

    trips: int = 0
    open_until: Optional[float] = None
    probing: Optional[str] = None  # the key of the record sent to find out

    def allows(self, key: str, now: float) -> bool:
        if self.open_until is None:
            return True
        if now < self.open_until:
            return False
        return self.probing is None or self.probing == key

    def record(self, ok: bool, trouble: bool, now: float, rng: "random.Random") -> None:
        if ok:
            self.trips, self.open_until, self.probing = 0, None, None
        elif trouble:
            self.trips += 1
            if self.trips >= BREAKER_AFTER:
                delay = min(BREAKER_MAX, BREAKER_FIRST * 2 ** min(self.trips - BREAKER_AFTER, 10))
                self.open_until = now + delay * rng.uniform(0.8, 1.2)
            self.probing = None

