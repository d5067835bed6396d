"""The result of one attempt to bring one record up to date."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

UPDATED = "updated"
UNCHANGED = "unchanged"
SKIPPED = "skipped"
FAILED = "failed"


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds."""
    t = time.gmtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(ts * 1000) % 1000:03d}Z"


@dataclass
class Result:
    """The outcome of one record's check or update, as printed, logged and published."""

    record: str
    type: str
    provider: str
    ip: Optional[str]
    previous_ip: Optional[str]
    status: str
    error: Optional[Dict[str, str]] = None
    duration_ms: float = 0.0
    ts: float = 0.0
    clock: Optional[Dict[str, Any]] = None
    trigger: str = "cli"
    id: Optional[str] = None
    source: Optional[str] = None  # the address source that gave ``ip``
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def as_dict(self) -> Dict[str, Any]:
        d = {
            "record": self.record,
            "type": self.type,
            "provider": self.provider,
            "ip": self.ip,
            "previous_ip": self.previous_ip,
            "status": self.status,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 1),
            "ts": iso(self.ts),
            "clock": self.clock,
            "trigger": self.trigger,
            "id": self.id,
            "source": self.source,
        }
        d.update(self.extra)
        return d


def format_line(d: dict) -> str:
    line = f"{d['status']:<12} {d['record']} {d['type']}"
    if d.get("ip"):
        line += f" {d['ip']}"
    if d.get("previous_ip") and d["previous_ip"] != d.get("ip"):
        line += f" (was {d['previous_ip']})"
    line += f" via {d['provider']}"
    if d.get("error"):
        line += f": [{d['error']['code']}] {d['error']['message']}"
    clock = d.get("clock") or {}
    if clock.get("source", "system") != "system":
        line += f" [clock {clock['source']} {clock['offset']:+.3f}s]"
    return line
