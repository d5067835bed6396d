"""The agent's notion of "now".

Every signer and every certificate check asks one clock object for the time;
nothing else in the package calls ``time.time()`` for those purposes. The
system clock is the simplest implementation; ``edgeddns.timesync`` adds the
NTP-corrected one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from edgeddns.config import ClockConfig


@dataclass
class ClockInfo:
    """What a result reports about the clock it was signed with."""

    offset: float  # seconds to add to the system clock
    source: str  # "system", "ntp:HOST", "http-date:HOST"

    def as_dict(self) -> dict:
        return {"offset": round(self.offset, 3), "source": self.source}


class Clock:
    """Interface: the time to sign with, and hooks that let it learn."""

    def now(self) -> float:
        """Epoch seconds believed to be true."""
        raise NotImplementedError

    def info(self) -> ClockInfo:
        raise NotImplementedError

    @property
    def trusted(self) -> bool:
        """True when ``now()`` can be used to judge certificate validity as is."""
        return True

    def ensure(self, probe: Optional[Callable[[], None]] = None) -> None:
        """Make ``now()`` usable for signing, measuring if needed.

        ``probe`` is a cheap unsigned request to the provider, made only when no
        other source could give the time: its response's ``Date`` header can.
        Raises :class:`edgeddns.errors.ClockUnsyncedError` when nothing can.
        """

    def settle(self) -> None:
        """Best effort, never raises: learn the time (NTP) if nothing is known yet.

        TLS calls this before judging a certificate's validity period.
        """

    def observe_server_time(self, host: str, server_time: float, *, rtt: float = 0.0) -> None:
        """A provider's response carried its clock (HTTP ``Date``)."""

    def on_skew(self, host: str, server_time: Optional[float]) -> bool:
        """A provider refused our timestamp; return True if a retry may now succeed."""
        return False


@dataclass
class SystemClock(Clock):
    """Trusts the system clock; ``wall`` is injectable for tests."""

    wall: Callable[[], float] = field(default=time.time)

    def now(self) -> float:
        return self.wall()

    def info(self) -> ClockInfo:
        return ClockInfo(0.0, "system")


def build_clock(config: ClockConfig, state_dir: Optional[str] = None) -> Clock:
    """The clock the config asks for. ``mode = "system"`` never measures (nor imports the NTP code)."""
    if config.mode == "system":
        return SystemClock()
    from edgeddns.timesync import CorrectedClock

    return CorrectedClock(config, state_dir)
