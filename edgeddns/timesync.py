"""Is the system clock right, and if not, what time is it?

``SyncProbe`` looks for positive evidence that something keeps the system clock
synchronised. ``CorrectedClock`` is the clock of ``[clock] mode = "auto"`` and
``"ntp"``: it trusts the system clock only on such evidence (auto), and
otherwise measures the offset (SNTP, then the provider's HTTP ``Date``). The
result is anchored to the monotonic clock (true time at a monotonic instant,
plus elapsed monotonic time), so it stays right when another daemon steps the
system clock. Nothing here ever changes the system clock.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from edgeddns.clock import Clock, ClockInfo, release_floor
from edgeddns.errors import ClockUnsyncedError
from edgeddns.sntp import Measurement, SntpClient
from edgeddns.timestore import FLOOR_STEP, ClockStore

if TYPE_CHECKING:
    import argparse

    from edgeddns.config import ClockConfig

TIMESYNCD_FLAG = "/run/systemd/timesync/synchronized"
#: written by openwrt/files/etc/hotplug.d/ntp/25-edgeddns into the state directory
HOTPLUG_MARKER = "ntpd.sync"
DNSMASQ_MARKER = "/var/state/dnsmasqsec"  # OpenWrt's dnsmasq hook: "ntpd says time is valid"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
IGNORE_ENV = "EDGEDDNS_IGNORE_SYNC_EVIDENCE"
#: a daemon that disciplines the kernel clock keeps maxerror well below the kernel's 16 s ceiling
MAXERROR_LIMIT_US = 5_000_000
#: a provider Date further than this from our time wins (its clock decides what it accepts)
DATE_TOLERANCE = 60.0
#: after NTP failed, do not ask again for this long unless a provider refuses our timestamp
NTP_RETRY = 300.0


# ---------------------------------------------------------------- sync evidence

STA_UNSYNC = 0x0040


def read_adjtimex() -> Optional[Tuple[int, int, int]]:
    """(state, status, maxerror in µs) from a read-only ``adjtimex(2)``, or None where unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    # Imported here: ctypes costs the no-change path a few ms it never needs.
    import ctypes

    class _Timex(ctypes.Structure):
        # Only the leading fields are named: their offsets are the same on every
        # Linux ABI (32/64-bit, glibc/musl). The tail (which grows with a 64-bit
        # time_t on 32-bit systems) is covered by generous padding.
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("_rest", ctypes.c_char * 512)]

    try:
        # CDLL(None) is the process's own symbol table, libc included; find_library
        # would spawn ldconfig or a compiler to find the same thing.
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        tx.modes = 0  # read only: no privilege needed, nothing changes
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state, tx.status, tx.maxerror


@dataclass
class Evidence:
    synced: bool
    lines: List[str] = field(default_factory=list)  # every signal looked at, for `edgeddns clock`


@dataclass
class SyncProbe:
    """Positive evidence of synchronisation. Absence of evidence only means "measure"."""

    state_dir: Optional[str] = None
    timesyncd_flag: str = TIMESYNCD_FLAG
    dnsmasq_marker: str = DNSMASQ_MARKER
    boot_id_file: str = BOOT_ID
    adjtimex: Callable[[], Optional[Tuple[int, int, int]]] = read_adjtimex
    #: set by the environment variable below: a simulated wrong clock (libfaketime in the
    #: tests) runs on a host whose real sync evidence would otherwise be believed
    ignore: bool = field(default_factory=lambda: bool(os.environ.get(IGNORE_ENV)))

    def check(self) -> Evidence:
        if self.ignore:
            return Evidence(False, [f"sync evidence ignored ({IGNORE_ENV} is set)"])
        ev = Evidence(False)
        if os.path.exists(self.timesyncd_flag):
            ev.synced = True
            ev.lines.append(f"systemd-timesyncd: {self.timesyncd_flag} exists (synchronised)")
        else:
            ev.lines.append(f"systemd-timesyncd: {self.timesyncd_flag} absent")
        if self.state_dir:
            ok, line = self._hotplug(os.path.join(self.state_dir, HOTPLUG_MARKER))
            ev.synced |= ok
            ev.lines.append(line)
        if os.path.exists(self.dnsmasq_marker):
            ev.synced = True
            ev.lines.append(f"OpenWrt dnsmasq: {self.dnsmasq_marker} exists (ntpd reported sync this boot)")
        tx = self.adjtimex()
        if tx is None:
            ev.lines.append("kernel: adjtimex unavailable")
        else:
            _state, status, maxerror = tx
            unsync = "; STA_UNSYNC set (not proof either way)" if status & STA_UNSYNC else ""
            if 0 <= maxerror < MAXERROR_LIMIT_US:
                ev.synced = True
                ev.lines.append(f"kernel: maxerror {maxerror / 1e6:.3f} s: a daemon disciplines the clock{unsync}")
            else:
                ev.lines.append(f"kernel: maxerror {maxerror / 1e6:.3f} s: no daemon disciplines the clock{unsync}")
        return ev

    def _hotplug(self, path: str) -> Tuple[bool, str]:
        try:
            with open(path, encoding="utf-8") as f:
                fields = dict(line.strip().split("=", 1) for line in f if "=" in line)
        except OSError:
            return False, f"busybox ntpd hotplug: {path} absent"
        boot = _read(self.boot_id_file)
        if boot and fields.get("boot_id") and fields["boot_id"] != boot:
            return False, f"busybox ntpd hotplug: {path} is from an earlier boot (ignored)"
        try:
            stratum = int(fields.get("stratum", "16"))
        except ValueError:
            stratum = 16
        if fields.get("sync") == "1" and 0 < stratum < 16:
            return True, f"busybox ntpd hotplug: synchronised, stratum {stratum} ({fields.get('action', '?')})"
        return False, f"busybox ntpd hotplug: not synchronised ({fields.get('action', '?')})"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- the clock

@dataclass
class Anchor:
    base: float  # true time minus monotonic time
    source: str  # "ntp:HOST" or "http-date:HOST"
    set_at: float  # monotonic time it was learnt


@dataclass
class Observation:
    host: str
    server_time: float
    mono: float
    rtt: float

    @property
    def base(self) -> float:
        # Date is truncated to the second: the middle of that second is the best guess.
        return self.server_time + 0.5 - self.mono


class CorrectedClock(Clock):
    """System time when sync is proven (auto), else measured time anchored to the monotonic clock."""

    def __init__(self, config: ClockConfig, state_dir: Optional[str] = None, *,
                 sntp: Optional[SntpClient] = None, probe: Optional[SyncProbe] = None,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 release: Optional[float] = None, store: Optional[ClockStore] = None):
        self.config = config
        self.release = release_floor() if release is None else release
        self.store = store or ClockStore(state_dir)
        self.saved = self.store.load()
        #: the latest time verified (saved, or learnt since): the floor below which nothing is believed
        self.verified = self.saved.verified
        self.mode = config.mode
        self.sntp = sntp or SntpClient(timeout=config.timeout, monotonic=monotonic)
        self.sync_probe = probe or SyncProbe(state_dir)
        self.wall = wall
        self.monotonic = monotonic
        self.anchor: Optional[Anchor] = None
        self.system_proven = False
        self.evidence: Optional[Evidence] = None
        self.measurement: Optional[Measurement] = None  # the last NTP attempt
        self.observations: Dict[str, Observation] = {}
        self.notes: List[str] = []  # why the source changed, newest last (bounded)
        self._ntp_tried_at: Optional[float] = None
        self._ntp_failed_at: Optional[float] = None
        self._contradicted_at: Optional[float] = None  # a provider's Date disproved the system clock
        self._lock = threading.RLock()

    # -- reading the time

    def now(self) -> float:
        a = self.anchor
        return self.monotonic() + a.base if a is not None else self.wall()

    def info(self) -> ClockInfo:
        a = self.anchor
        if a is None:
            return ClockInfo(0.0, "system")
        m, w = self.monotonic(), self.wall()
        return ClockInfo(m + a.base - w, a.source)

    @property
    def trusted(self) -> bool:
        return self.anchor is not None or self.system_proven

    def floor(self) -> float:
        return max(self.release, self.verified)

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
            raise ClockUnsyncedError(
                f"the system clock is not known to be synchronised, NTP gave no time ({why}), and "
                + ("the provider's answer carried no Date header" if probe else "no provider Date header was seen")
                + ": refusing to sign with an unverified clock")

    def resync(self) -> None:
        """Measure again now: MQTT ``sync_time``, or an NTP step reported by OpenWrt's hook.

        Sync evidence is read afresh; without proof, NTP is asked at once, whatever
        ``max_age`` and the retry pacing say. Raises ``ClockUnsyncedError`` when NTP
        gives nothing (the clock keeps what it knew, e.g. a provider's Date).
        """
        with self._lock:
            if self._evidence(self.monotonic()):
                self._note("resync: system clock proven synchronised: using it")
                self.system_proven, self.anchor = True, None
                return
            self._refresh(force=True)
            meas = self.measurement
            if meas is None or meas.chosen is None:
                raise ClockUnsyncedError(f"NTP gave no time ({meas.error if meas else 'not measured'}); "
                                         f"keeping {self.info().source}")

    def _evidence(self, m: float) -> bool:
        if self.mode != "auto":
            return False
        if self._contradicted_at is not None and m - self._contradicted_at < self.config.max_age:
            return False
        self.evidence = self.sync_probe.check()
        if self.evidence.synced and self._below_floor(self.wall(), "the synchronised system clock"):
            self.evidence.synced = False
            self.evidence.lines.append("system clock reads before the floor: not trusted")
        return self.evidence.synced

    def _refresh(self, force: bool = False) -> None:
        m = self.monotonic()
        if not force and self._evidence(m):
            if not self.system_proven or self.anchor is not None:
                self._note("system clock proven synchronised: using it")
            self.system_proven, self.anchor = True, None
            self._verify(self.wall())
            return
        self.system_proven = False
        a = self.anchor
        due = (a is None or m - a.set_at > self.config.max_age
               or (a.source.startswith("http-date:") and self._ntp_tried_at is None))
        if not (due or force):
            return
        if not force and self._ntp_failed_at is not None and m - self._ntp_failed_at < NTP_RETRY:
            return
        self._ntp_tried_at = m
        meas = self.sntp.measure(self.config.ntp_servers)
        self.measurement = meas
        s = meas.chosen
        if s is not None and self._below_floor(s.base + self.monotonic(), f"NTP ({s.server})"):
            meas.error = f"{s.server} answered a time before the floor"
            meas.chosen = s = None
        if s is None:
            self._ntp_failed_at = m
            self._note(f"NTP failed: {meas.error}")
            return
        self._ntp_failed_at = None
        obs = self._latest_observation()
        if obs is not None and self.monotonic() - obs.mono <= self.config.max_age \
                and abs(obs.base - s.base) > DATE_TOLERANCE + obs.rtt:
            # The provider's clock decides whether it accepts a signature.
            self.anchor = Anchor(obs.base, f"http-date:{obs.host}", obs.mono)
            self._note(f"NTP ({s.server}) disagrees with {obs.host}'s Date by {s.base - obs.base:+.1f} s: "
                       "using the Date")
            return
        self.anchor = Anchor(s.base, f"ntp:{s.server}", s.mono)
        if meas.agreeing >= 2:
            self._verify(s.base + self.monotonic())

    def _latest_observation(self) -> Optional[Observation]:
        return max(self.observations.values(), key=lambda o: o.mono, default=None)

    def observe_server_time(self, host: str, server_time: float, *, rtt: float = 0.0) -> None:
        with self._lock:
            if self._below_floor(server_time, f"{host}'s Date"):
                return
            obs = Observation(host, server_time, self.monotonic(), max(rtt, 0.0))
            self.observations[host] = obs
            tol = DATE_TOLERANCE + obs.rtt
            a = self.anchor
            if self.system_proven:
                if abs(obs.base - (self.wall() - obs.mono)) > tol:
                    self._contradicted_at = obs.mono
                    self.system_proven = False
                    self._adopt(obs, "contradicts the system clock")
            elif a is None:
                self._adopt(obs, "no other time source")
            elif abs(obs.base - a.base) > tol:
                self._adopt(obs, f"differs from {a.source} by {obs.base - a.base:+.1f} s")
            elif a.source.startswith("http-date:") and obs.mono - a.set_at > self.config.max_age:
                self.anchor = Anchor(obs.base, f"http-date:{host}", obs.mono)

    def _adopt(self, obs: Observation, why: str) -> None:
        self.anchor = Anchor(obs.base, f"http-date:{obs.host}", obs.mono)
        self._note(f"using {obs.host}'s Date header ({why})")

    def on_skew(self, host: str, server_time: Optional[float]) -> bool:
        """The provider refused our timestamp: believe its clock, from that very response."""
        with self._lock:
            if self.system_proven:
                self._contradicted_at = self.monotonic()
                self.system_proven = False
            if server_time is not None and self._below_floor(server_time, f"{host}'s Date"):
                return False
            if server_time is not None:
                obs = self.observations.get(host)
                if obs is None or obs.server_time != server_time:
                    obs = Observation(host, server_time, self.monotonic(), 0.0)
                    self.observations[host] = obs
                self.anchor = Anchor(obs.base, f"http-date:{host}", obs.mono)
                self._note(f"{host} refused our timestamp: using its Date header")
                return True
            before = self.now()
            self._refresh(force=True)
            return self.anchor is not None and abs(self.now() - before) > 1.0

    def _note(self, text: str) -> None:
        self.notes.append(text)
        del self.notes[:-20]


# ---------------------------------------------------------------- `edgeddns clock`

def cmd_clock(args: argparse.Namespace) -> int:
    """Show the evidence of sync, every server's answer, and the time the agent would use."""
    from edgeddns.bootstrap import load_config

    cfg = load_config(args)
    cc = cfg.clock
    ev = SyncProbe(cfg.agent.state_dir).check()
    sntp = SntpClient(timeout=cc.timeout)
    meas = sntp.measure(cc.ntp_servers)
    mono, wall = time.monotonic(), time.time()
    servers = []
    for o in meas.outcomes:
        if o.sample is not None:
            s = o.sample
            servers.append({"server": o.server, "offset": round(s.base + mono - wall, 6), "delay": round(s.delay, 6),
                            "stratum": s.stratum, "error": None})
        else:
            servers.append({"server": o.server, "offset": None, "delay": None, "stratum": None, "error": o.error})
    if cc.mode == "system":
        chosen = {"offset": 0.0, "source": "system"}
    elif cc.mode == "auto" and ev.synced:
        chosen = {"offset": 0.0, "source": "system"}
    elif meas.chosen is not None:
        chosen = {"offset": round(meas.chosen.base + mono - wall, 6), "source": f"ntp:{meas.chosen.server}"}
    else:
        chosen = {"offset": None, "source": None}
    out = {"mode": cc.mode, "synchronized": ev.synced, "evidence": ev.lines, "servers": servers,
           "ntp_error": meas.error, "chosen": chosen}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"mode: {cc.mode}")
        print("system clock: " + ("synchronised" if ev.synced else "not proven synchronised"))
        for line in ev.lines:
            print(f"  {line}")
        print("NTP servers:")
        width = max((len(s["server"]) for s in servers), default=0)
        for s in servers:
            if s["error"]:
                print(f"  {s['server']:<{width}}  error: {s['error']}")
            else:
                print(f"  {s['server']:<{width}}  offset {s['offset']:+.6f} s  delay {s['delay']:.6f} s  "
                      f"stratum {s['stratum']}")
        if meas.error:
            print(f"  no NTP result: {meas.error}")
        if chosen["source"]:
            print(f"chosen: offset {chosen['offset']:+.3f} s, source {chosen['source']}")
        else:
            print("chosen: none: signed requests will take the time from the provider's Date header, "
                  "or fail with clock_unsynced")
    return 0 if chosen["source"] else 1
