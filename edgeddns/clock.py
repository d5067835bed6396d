"""The agent's notion of "now".

Every signer and every certificate check asks one clock object for the time;
nothing else in the package calls ``time.time()`` for those purposes. The
system clock is the simplest implementation; ``edgeddns.timesync`` adds the
NTP-corrected one. ``boottime()`` is the elapsed-time clock the corrected clock
and the scheduler share (it keeps counting while the machine sleeps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from edgeddns import RELEASE_DATE

if TYPE_CHECKING:
    from edgeddns.config import ClockConfig

#: CLOCK_BOOTTIME counts the time a suspended NAS slept; CLOCK_MONOTONIC does not
_BOOTTIME_ID: Optional[int] = getattr(time, "CLOCK_BOOTTIME", None)


def boottime() -> float:
    """Seconds since boot, suspend included, where the OS has CLOCK_BOOTTIME (else monotonic).

    The one elapsed-time clock the corrected clock and the scheduler share: an
    interval measured with it stays right across a suspend and a wall-clock step.
    """
    if _BOOTTIME_ID is not None:
        return time.clock_gettime(_BOOTTIME_ID)
    return time.monotonic()


def release_floor() -> float:
    """This release's date as epoch seconds: no true time can be earlier."""
    return epoch_of_date(RELEASE_DATE)


def epoch_of_date(text: str) -> float:
    """``YYYY-MM-DD`` (UTC midnight) as epoch seconds; calendar.timegm without its import."""
    y, m, d = (int(x) for x in text.split("-"))
    # Days from the civil date (Howard Hinnant's days_from_civil).
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return float((era * 146097 + doe - 719468) * 86400)


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

    def floor(self) -> float:
        """A time known to have passed: no certificate that expired before it is ever valid."""
        return release_floor()

    def now_for(self, host: str) -> float:
        """The time to sign requests to ``host`` with (its own clock, once it refused ours)."""
        return self.now()

    def info_for(self, host: str) -> ClockInfo:
        return self.info()

    def for_host(self, host: str) -> Clock:
        """This clock as the signer of requests to ``host`` sees it."""
        return HostClock(self, host)

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
    release: float = field(default_factory=release_floor)

    def now(self) -> float:
        return self.wall()

    def floor(self) -> float:
        return self.release

    def info(self) -> ClockInfo:
        return ClockInfo(0.0, "system")


class HostClock(Clock):
    """A view of ``clock`` whose ``now()`` is the signing time for one host; all else is shared."""

    def __init__(self, clock: Clock, host: str):
        self.clock, self.host = clock, host

    def now(self) -> float:
        return self.clock.now_for(self.host)

    def info(self) -> ClockInfo:
        return self.clock.info_for(self.host)

    @property
    def trusted(self) -> bool:
        return self.clock.trusted

    def floor(self) -> float:
        return self.clock.floor()

    def now_for(self, host: str) -> float:
        return self.clock.now_for(host)

    def info_for(self, host: str) -> ClockInfo:
        return self.clock.info_for(host)

    def for_host(self, host: str) -> Clock:
        return self.clock.for_host(host)

    def ensure(self, probe: Optional[Callable[[], None]] = None) -> None:
        self.clock.ensure(probe)

    def settle(self) -> None:
        self.clock.settle()

    def observe_server_time(self, host: str, server_time: float, *, rtt: float = 0.0) -> None:
        self.clock.observe_server_time(host, server_time, rtt=rtt)

    def on_skew(self, host: str, server_time: Optional[float]) -> bool:
        return self.clock.on_skew(host, server_time)


def build_clock(config: ClockConfig, state_dir: Optional[str] = None) -> Clock:
    """The clock the config asks for. ``mode = "system"`` never measures (nor imports the NTP code)."""
    if config.mode == "system":
        return SystemClock()
    from edgeddns.timesync import CorrectedClock

    return CorrectedClock(config, state_dir)
