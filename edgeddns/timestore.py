"""What the clock keeps in the state directory (``clock.json``).

- ``verified``: the latest time this device verified (sync evidence, or NTP
  servers that agree). No later answer may put the clock before it, and no
  certificate that expired before it is accepted. It is rewritten only when it
  has advanced by ``FLOOR_STEP``: a router's flash is written rarely.
- ``offset``: the offset measured in this boot, anchored to boot time and the
  boot id, so that a one-shot ``edgeddns update`` reuses it until ``max_age``
  instead of asking NTP every time.
- ``ntp_failed``: when NTP last gave nothing in this boot, so that the next
  one-shot does not wait for it again before ``NTP_RETRY`` has passed.

A missing, unreadable or malformed file is the same as an empty one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Optional

from edgeddns.fileio import write_atomic

CLOCK_FILE = "clock.json"
#: the saved floor moves only in steps this large (one write a day at most)
FLOOR_STEP = 86400.0
#: the floor is the verified time less this: a source that was a little ahead locks nothing out
FLOOR_SLACK = 3600.0
MAX_SIZE = 4096


@dataclass
class BootAnchor:
    """True time minus boot time, learnt at boot time ``set_at`` during boot ``boot_id``."""

    boot_id: str
    base: float
    set_at: float
    source: str


@dataclass
class Saved:
    """What clock.json holds between processes."""

    verified: float = 0.0
    offset: Optional[BootAnchor] = None
    ntp_failed: Optional[BootAnchor] = None  # base unused: when NTP failed, in which boot


def _num(v: Any) -> Optional[float]:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _anchor(v: Any) -> Optional[BootAnchor]:
    if not isinstance(v, dict):
        return None
    boot, base, set_at, source = v.get("boot_id"), _num(v.get("base")), _num(v.get("set_at")), v.get("source")
    if not (isinstance(boot, str) and boot and base is not None and set_at is not None and isinstance(source, str)):
        return None
    return BootAnchor(boot, base, set_at, source[:200])


@dataclass
class ClockStore:
    """``clock.json`` in the state directory; without one, nothing is kept."""

    state_dir: Optional[str]
    error: Optional[str] = None  # why the last write failed, if it did

    @property
    def path(self) -> Optional[str]:
        return os.path.join(self.state_dir, CLOCK_FILE) if self.state_dir else None

    def load(self) -> Saved:
        path = self.path
        if path is None:
            return Saved()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                raw = f.read(MAX_SIZE + 1)
            data = json.loads(raw) if 0 < len(raw) <= MAX_SIZE else None
        except (OSError, ValueError):
            return Saved()
        if not isinstance(data, dict):
            return Saved()
        verified = _num(data.get("verified"))
        return Saved(verified if verified is not None and verified > 0 else 0.0,
                     _anchor(data.get("offset")), _anchor(data.get("ntp_failed")))

    def save(self, saved: Saved) -> None:
        path = self.path
        if path is None:
            return
        out: dict = {"version": 1, "verified": round(saved.verified, 3)}
        for key in ("offset", "ntp_failed"):
            a = getattr(saved, key)
            if a is not None:
                out[key] = {"boot_id": a.boot_id, "base": a.base, "set_at": a.set_at, "source": a.source}
        try:
            # A one-shot's clock may learn the time before the state store first writes.
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            write_atomic(path, json.dumps(out) + "\n", 0o600)
            self.error = None
        except OSError as e:
            # The clock works without it: the next one-shot measures again.
            self.error = f"{path}: {e.strerror or e}"
