"""The corrected clock of ``[clock] mode = "auto"`` and ``"ntp"``.

It trusts the system clock only on positive evidence of sync (auto, see
:mod:`edgeddns.syncprobe`) and otherwise measures the offset with SNTP. The
result is anchored to boot time (true time at a boot-time instant, plus elapsed
``CLOCK_BOOTTIME``), so it stays right when another daemon steps the system
clock and when a NAS sleeps. Nothing here ever changes the system clock.

Who may move which time (each rule is a trust boundary, see docs/clock.md):

- Nothing earlier than the floor (this release's date, or the latest time this
  device verified) is ever believed, from any source.
- A provider's HTTP ``Date`` sets the general time only when no better source
  exists (no sync evidence, NTP gave nothing). It never overrides sync
  evidence or NTP. After that host refused our timestamp, its ``Date`` sets the
  signing time *for that host only*. Every ``Date``-based time expires after
  ``max_age``.
- The offset measured in this boot is saved (with the boot id) and reused by
  the next process until ``max_age``; so is an NTP failure, for ``NTP_RETRY``.
"""

from __future__ import annotations

import _thread  # threading.RLock is this one; threading itself is not needed on a one-shot
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from edgeddns.clock import Clock, ClockInfo, boottime, release_floor
from edgeddns.errors import ClockUnsyncedError
from edgeddns.syncprobe import Evidence, SyncProbe, read_boot_id
from edgeddns.timestore import FLOOR_SLACK, FLOOR_STEP, BootAnchor, ClockStore

if TYPE_CHECKING:
    from edgeddns.config import ClockConfig
    from edgeddns.sntp import Measurement, SntpClient

#: a Date further than this from our time is worth a note (providers allow minutes)
DATE_TOLERANCE = 60.0
#: after NTP failed, do not ask again for this long unless a provider refuses our timestamp
NTP_RETRY = 300.0
#: hosts whose Date is remembered (each configured provider is one)
MAX_HOSTS = 64


@dataclass
class Anchor:
    """True time anchored to boot time, and where it came from."""

    base: float  # true time minus boot time
    source: str  # "ntp:HOST" or "http-date:HOST"
    set_at: float  # boot time it was learnt

    @property
    def from_date(self) -> bool:
        return self.source.startswith("http-date:")


@dataclass
class Observation:
    """A provider's ``Date`` header as received."""

    host: str
    server_time: float
    at: float  # boot time the response arrived
    rtt: float

    @property
    def base(self) -> float:
        # Date is truncated to the second: the middle of that second is the best guess.
        return self.server_time + 0.5 - self.at


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class CorrectedClock(Clock):
    """System time when sync is proven (auto), else measured time anchored to boot time."""

    def __init__(self, config: ClockConfig, state_dir: Optional[str] = None, *,
                 sntp: Optional[SntpClient] = None, probe: Optional[SyncProbe] = None,
                 wall: Callable[[], float] = time.time, boottime: Callable[[], float] = boottime,
                 release: Optional[float] = None, store: Optional[ClockStore] = None):
        self.config = config
        self.mode = config.mode
        self._sntp = sntp  # made when first needed: a run with sync evidence never imports the NTP code
        self.sync_probe = probe or SyncProbe(state_dir)
        self.wall = wall
        self.boottime = boottime
        self.release = release_floor() if release is None else release
        self.store = store or ClockStore(state_dir)
        self.saved = self.store.load()
        #: the latest time verified (saved, or learnt since): nothing much earlier is believed
        self.verified = self.saved.verified
        self.anchor: Optional[Anchor] = None
        self.host_anchors: Dict[str, Anchor] = {}  # a refusing host's own Date: its signing time only
        self.system_proven = False
        self.evidence: Optional[Evidence] = None
        self.measurement: Optional[Measurement] = None  # the last NTP attempt
        self.observations: Dict[str, Observation] = {}
        self.notes: List[str] = []  # why the source changed, newest last (bounded)
        self._ntp_failed_at: Optional[float] = None
        self._boot_id: Optional[str] = None
        self._lock = _thread.RLock()

    @property
    def sntp(self) -> SntpClient:
        if self._sntp is None:
            from edgeddns.sntp import SntpClient

            self._sntp = SntpClient(timeout=self.config.timeout, monotonic=self.boottime)
        return self._sntp

    @sntp.setter
    def sntp(self, client: SntpClient) -> None:
        self._sntp = client

    # -- reading the time

    def _fresh(self, a: Optional[Anchor], at: float) -> Optional[Anchor]:
        """``a`` unless it is a Date older than ``max_age`` (an NTP anchor stays until replaced)."""
        if a is not None and a.from_date and at - a.set_at > self.config.max_age:
            return None
        return a

    def now(self) -> float:
        b = self.boottime()
        a = self._fresh(self.anchor, b)
        return b + a.base if a is not None else self.wall()

    def now_for(self, host: str) -> float:
        b = self.boottime()
        a = self._fresh(self.host_anchors.get(host), b)
        return b + a.base if a is not None else self.now()

    def info(self) -> ClockInfo:
        b = self.boottime()
        a = self._fresh(self.anchor, b)
        if a is None:
            return ClockInfo(0.0, "system")
        return ClockInfo(b + a.base - self.wall(), a.source)

    def info_for(self, host: str) -> ClockInfo:
        b = self.boottime()
        a = self._fresh(self.host_anchors.get(host), b)
        return ClockInfo(b + a.base - self.wall(), a.source) if a is not None else self.info()

    @property
    def trusted(self) -> bool:
        return self.system_proven or self._fresh(self.anchor, self.boottime()) is not None

    def floor(self) -> float:
        # The slack forgives a verified source that was a little ahead (seconds, in practice);
        # an attacker's old time is months or years back.
        return max(self.release, self.verified - FLOOR_SLACK)

    # -- learning the time

    def settle(self) -> None:
        with self._lock:
            if not self.trusted:
                try:
                    self._refresh()
                except Exception as e:  # best effort by contract
                    self._note(f"clock measurement failed: {e.__class__.__name__}")

    def ensure(self, probe: Optional[Callable[[], None]] = None) -> None:
        with self._lock:
            self._refresh()
            if self.trusted:
                return
            if probe is not None:
                # NTP gave nothing: one unsigned request to the provider, over a
                # verified TLS connection, lets its Date header set the clock.
                probe()
                if self.trusted:
                    return
            why = self.measurement.error if self.measurement else "not measured"
            if self.measurement is None and self._ntp_failed_at is not None:
                why = f"it gave nothing less than {NTP_RETRY:g} s ago"
            raise ClockUnsyncedError(
                f"the system clock is not known to be synchronised, NTP gave no time ({why}), and "
                + ("the provider's answer carried no Date header" if probe
                   else "no provider Date header was seen")
                + ": refusing to sign with an unverified clock")

    def resync(self) -> None:
        """Measure again now: MQTT ``sync_time``, or an NTP step reported by OpenWrt's hook.

        Sync evidence is read afresh; without proof, NTP is asked at once, whatever
        ``max_age`` and the retry pacing say. Raises ``ClockUnsyncedError`` when NTP
        gives nothing (the clock keeps what it knew).
        """
        with self._lock:
            if self._evidence():
                self._note("resync: system clock proven synchronised: using it")
                self.system_proven, self.anchor = True, None
                self._verify(self.wall())
                return
            self._refresh(force=True)
            meas = self.measurement
            if meas is None or meas.chosen is None:
                raise ClockUnsyncedError(f"NTP gave no time ({meas.error if meas else 'not measured'}); "
                                         f"keeping {self.info().source}")

    def _evidence(self) -> bool:
        if self.mode != "auto":
            return False
        self.evidence = self.sync_probe.check()
        if self.evidence.synced and self._below_floor(self.wall(), "the synchronised system clock"):
            self.evidence.synced = False
            self.evidence.lines.append("system clock reads before the floor: not trusted")
        return self.evidence.synced

    def _refresh(self, force: bool = False) -> None:
        if not force and self._evidence():
            if not self.system_proven or self.anchor is not None:
                self._note("system clock proven synchronised: using it")
            self.system_proven, self.anchor = True, None
            self._verify(self.wall())
            return
        self.system_proven = False
        b = self.boottime()
        a = self.anchor = self._fresh(self.anchor, b)
        if a is None and not force and self._reuse_saved(b):
            return
        a = self.anchor
        due = a is None or a.from_date or b - a.set_at > self.config.max_age
        if not (due or force):
            return
        if not force and self._ntp_failed_at is not None and b - self._ntp_failed_at < NTP_RETRY:
            return
        meas = self.sntp.measure(self.config.ntp_servers)
        self.measurement = meas
        s = meas.chosen
        if s is not None and self._below_floor(s.base + self.boottime(), f"NTP ({s.server})"):
            meas.error = f"{s.server} answered a time before the floor"
            meas.chosen = s = None
        if s is None:
            self._ntp_failed_at = b
            self._note(f"NTP failed: {meas.error}")
            self._save_boot(ntp_failed=BootAnchor(self._boot(), 0.0, b, "ntp"))
            return
        self._ntp_failed_at = None
        # NTP outranks any Date: a Date sets the general time only when nothing better exists.
        self.anchor = Anchor(s.base, f"ntp:{s.server}", s.mono)
        # Not verified by itself: one on-path attacker can answer for every NTP server, and a
        # future time saved as the floor would lock the true time out. An authenticated Date can.
        self._save_boot(offset=BootAnchor(self._boot(), s.base, s.mono, self.anchor.source))

    def _reuse_saved(self, b: float) -> bool:
        """A one-shot after another in the same boot: its offset (or its NTP failure) still holds."""
        boot = self._boot()
        if not boot:
            return False
        saved = self.saved
        failed = saved.ntp_failed
        if (failed is not None and failed.boot_id == boot and 0 <= b - failed.set_at < NTP_RETRY
                and self._ntp_failed_at is None):
            self._ntp_failed_at = failed.set_at  # the Date of the provider's answer serves at once
        o = saved.offset
        if o is None or o.boot_id != boot or not 0 <= b - o.set_at <= self.config.max_age:
            return False
        if self._below_floor(o.base + b, f"the offset saved in {self.store.path}"):
            return False
        self.anchor = Anchor(o.base, o.source, o.set_at)
        self._note(f"reusing the offset measured {b - o.set_at:.0f} s ago in this boot ({o.source})")
        return True

    def _boot(self) -> str:
        if self._boot_id is None:
            self._boot_id = read_boot_id(self.sync_probe.boot_id_file)
        return self._boot_id

    def _save_boot(self, *, offset: Optional[BootAnchor] = None, ntp_failed: Optional[BootAnchor] = None) -> None:
        if not self._boot():
            return
        if offset is not None:
            old = self.saved.offset
            if (old is not None and old.boot_id == offset.boot_id and abs(old.base - offset.base) < 0.5
                    and 0 <= offset.set_at - old.set_at < self.config.max_age / 2 and self.saved.ntp_failed is None):
                return  # the saved offset still serves: spare the flash a write
            self.saved.offset, self.saved.ntp_failed = offset, None
        if ntp_failed is not None:
            self.saved.ntp_failed = ntp_failed
        self.store.save(self.saved)

    def _below_floor(self, t: float, what: str) -> bool:
        f = self.floor()
        if t >= f:
            return False
        self._note(f"{what} says {_iso(t)}, before {_iso(f)} (this release's date or the latest verified "
                   "time): ignored")
        return True

    def _verify(self, t: float) -> None:
        """``t`` is verified true time now: raise the floor (saved only once it moved a day)."""
        if t <= self.verified:
            return
        self.verified = t
        if t - self.saved.verified >= FLOOR_STEP:
            self.saved.verified = t
            self.store.save(self.saved)

    # -- what providers tell us

    def observe_server_time(self, host: str, server_time: float, *, rtt: float = 0.0) -> None:
        """An HTTPS response's ``Date``: the general time only when nothing better is known."""
        with self._lock:
            if self._below_floor(server_time, f"{host}'s Date"):
                return
            obs = Observation(host, server_time, self.boottime(), max(rtt, 0.0))
            if host not in self.observations and len(self.observations) >= MAX_HOSTS:
                self.observations.pop(next(iter(self.observations)))
            self.observations[host] = obs
            tol = DATE_TOLERANCE + obs.rtt
            if self.system_proven:
                diff = obs.base - (self.wall() - obs.at)
                if abs(diff) > tol:
                    self._note(f"{host}'s Date differs from the synchronised system clock by {diff:+.0f} s: "
                               "not used (it sets the time for that host only if it refuses a timestamp)")
                return
            a = self._fresh(self.anchor, obs.at)
            if a is not None and not a.from_date:
                diff = obs.base - a.base
                if abs(diff) > tol:
                    self._note(f"{host}'s Date differs from {a.source} by {diff:+.0f} s: not used")
                else:
                    self._verify(self.now())  # NTP and an authenticated Date agree
                return
            if a is None:
                self.anchor = Anchor(obs.base, f"http-date:{host}", obs.at)
                self._note(f"using {host}'s Date header (no other time source)")
            elif a.source == f"http-date:{host}":
                self.anchor = Anchor(obs.base, a.source, obs.at)  # the same host, newer: keep it fresh

    def on_skew(self, host: str, server_time: Optional[float]) -> bool:
        """``host`` refused our timestamp: sign for it with its own clock, from that very response."""
        with self._lock:
            if server_time is not None:
                if self._below_floor(server_time, f"{host}'s Date"):
                    return False
                obs = self.observations.get(host)
                if obs is None or obs.server_time != server_time:
                    obs = Observation(host, server_time, self.boottime(), 0.0)
                if host not in self.host_anchors and len(self.host_anchors) >= MAX_HOSTS:
                    self.host_anchors.pop(next(iter(self.host_anchors)))
                self.host_anchors[host] = Anchor(obs.base, f"http-date:{host}", obs.at)
                self._note(f"{host} refused our timestamp: signing for {host} with its Date header")
                return True
            before = self.now_for(host)
            self._refresh(force=True)
            return self.anchor is not None and abs(self.now_for(host) - before) > 1.0

    def _note(self, text: str) -> None:
        self.notes.append(text)
        del self.notes[:-20]
