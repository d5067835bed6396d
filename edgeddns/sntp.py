"""A small SNTP client (RFC 4330 / RFC 5905 arithmetic). It never sets the clock.

Each sample is anchored to an elapsed-time clock (boot time by default, which
counts suspend): the result is "true time at instant M of that clock", so a
step of the wall clock by another daemon during or after the exchange cannot
poison it. The transmit field of the request holds
64 random bits instead of our (possibly wrong) wall time; the reply must echo
them as its origin timestamp, which stops stale duplicates and off-path spoofing.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from edgeddns.clock import boottime
from edgeddns.lazylog import LazyLogger

NTP_PORT = 123
PACKET = struct.Struct("!BBbbIII8s8sQQ")  # 48 bytes
ERA = 1 << 32
#: seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch)
NTP_UNIX_DELTA = 2208988800
#: a reply whose root distance exceeds this cannot pin the time (chrony's maxdistance default)
MAX_DISTANCE = 3.0
#: samples whose anchors are this close agree (we sign to the second, providers allow minutes)
AGREE = 1.0
#: tolerated negative delay (server and client clock granularity)
NEGATIVE_DELAY_SLACK = 0.001


class NtpError(Exception):
    """One server gave no usable answer; the message says why, for ``edgeddns clock``."""

    def __init__(self, message: str, kind: str = "bad"):
        super().__init__(message)
        self.kind = kind  # "origin", "kod", or "bad"
        self.kod = ""


@dataclass
class Sample:
    """One good answer: ``true_at`` is the true time when the monotonic clock read ``mono``."""

    server: str
    true_at: float
    mono: float
    delay: float
    stratum: int
    leap: int
    root_delay: float
    root_dispersion: float

    @property
    def base(self) -> float:
        """True time minus monotonic time: comparable across samples taken at different instants."""
        return self.true_at - self.mono

    @property
    def distance(self) -> float:
        return self.root_delay / 2 + self.root_dispersion + self.delay / 2


@dataclass
class Outcome:
    """The answer (or the reason for its absence) of one server, for display."""

    server: str
    sample: Optional[Sample] = None
    error: Optional[str] = None


@dataclass
class Measurement:
    outcomes: List[Outcome] = field(default_factory=list)
    chosen: Optional[Sample] = None
    error: Optional[str] = None  # why nothing was chosen


def ntp_to_unix(value: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds, with the RFC 4330 section 3 era pivot.

    Seconds with the top bit clear are taken to be in era 1 (2036-02-07 onwards),
    which keeps the conversion continuous across the 2036 wrap until 2104.
    """
    secs, frac = value >> 32, value & 0xFFFFFFFF
    if not secs & 0x80000000:
        secs += ERA
    return secs - NTP_UNIX_DELTA + frac / ERA


def unix_to_ntp(t: float) -> int:
    """Unix seconds as a 64-bit NTP timestamp (modulo the era)."""
    secs = int(t // 1)
    frac = int(round((t - secs) * ERA))
    if frac >= ERA:  # rounding carried into the next second
        secs, frac = secs + 1, frac - ERA
    return (((secs + NTP_UNIX_DELTA) % ERA) << 32) | frac


def short_to_seconds(value: int) -> float:
    """NTP short format (16.16 fixed point), used for root delay and dispersion."""
    return value / 65536.0


def request_packet(nonce: bytes) -> bytes:
    """A client (mode 3), version 4 request whose transmit field is ``nonce``."""
    if len(nonce) != 8:
        raise ValueError("nonce must be 8 bytes")
    return bytes([0x23]) + bytes(39) + nonce


def parse_reply(data: bytes, nonce: bytes, sent_mono: float, recv_mono: float, server: str = "") -> Sample:
    """Check one reply against our request and compute the sample; raise NtpError if unusable.

    With T2/T3 the server's receive/transmit times, the round trip measured on
    the monotonic clock minus the server's hold time is the delay, and the true
    time at reception is T3 + delay/2 (the usual offset formula rearranged, so
    our wall clock never enters the result).
    """
    if len(data) < PACKET.size:
        raise NtpError(f"short reply ({len(data)} bytes)")
    (flags, stratum, _poll, _prec, root_delay, root_disp, ref_id, _ref, origin, t2_raw,
     t3_raw) = PACKET.unpack_from(data)
    leap, mode = flags >> 6, flags & 7
    if origin != nonce:
        raise NtpError("origin timestamp does not echo our request (stale or spoofed)", "origin")
    if mode != 4:
        raise NtpError(f"not a server reply (mode {mode})")
    if stratum == 0:
        code = ref_id.to_bytes(4, "big").decode("ascii", "replace").strip("\0 ")
        err = NtpError(f"kiss-o'-death {code or '?'}", "kod")
        err.kod = code
        raise err
    if leap == 3 or stratum >= 16:
        raise NtpError(f"server unsynchronised (leap={leap}, stratum={stratum})")
    if t2_raw == 0 or t3_raw == 0:
        raise NtpError("zero server timestamp")
    t2, t3 = ntp_to_unix(t2_raw), ntp_to_unix(t3_raw)
    hold = t3 - t2
    delay = (recv_mono - sent_mono) - hold
    if hold < 0 or delay < -NEGATIVE_DELAY_SLACK:
        raise NtpError(f"impossible timestamps (delay {delay:.6f} s, hold {hold:.6f} s)")
    delay = max(delay, 0.0)
    sample = Sample(server=server, true_at=t3 + delay / 2, mono=recv_mono, delay=delay, stratum=stratum,
                    leap=leap, root_delay=short_to_seconds(root_delay),
                    root_dispersion=short_to_seconds(root_disp))
    if sample.distance > MAX_DISTANCE:
        raise NtpError(f"root distance {sample.distance:.3f} s exceeds {MAX_DISTANCE:g} s")
    return sample


def split_server(spec: str) -> Tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else NTP_PORT
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, NTP_PORT


@dataclass
class SntpClient:
    """Asks servers in parallel; every side effect is injectable for tests."""

    timeout: float = 1.0
    #: the clock samples are anchored to: boot time, which keeps counting while the machine sleeps
    monotonic: Callable[[], float] = boottime
    random_bytes: Callable[[int], bytes] = os.urandom
    socket_factory: Callable[..., socket.socket] = socket.socket
    resolve: Callable[..., list] = socket.getaddrinfo
    #: servers that answered DENY/RSTR: RFC 5905 says never ask them again
    denied: Dict[str, str] = field(default_factory=dict)

    def query(self, spec: str) -> Sample:
        if spec in self.denied:
            raise NtpError(f"refused earlier (kiss-o'-death {self.denied[spec]})")
        host, port = split_server(spec)
        try:
            infos = self.resolve(host, port, 0, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as e:
            raise NtpError(f"cannot resolve: {getattr(e, 'strerror', None) or e}") from None
        if not infos:
            raise NtpError("cannot resolve: no address")
        family, _, _, _, addr = infos[0]
        nonce = self.random_bytes(8)
        wrong = 0
        with self.socket_factory(family, socket.SOCK_DGRAM) as sock:
            try:
                # connect() makes the kernel drop datagrams from any other address or port.
                sock.connect(addr)
                sent = self.monotonic()
                sock.send(request_packet(nonce))
                deadline = sent + self.timeout
                while True:
                    left = deadline - self.monotonic()
                    if left <= 0:
                        raise socket.timeout()
                    sock.settimeout(left)
                    data = sock.recv(512)
                    recv = self.monotonic()
                    try:
                        return parse_reply(data, nonce, sent, recv, spec)
                    except NtpError as e:
                        if e.kind == "origin":
                            wrong += 1  # keep listening: the genuine answer may still come
                            continue
                        if e.kod in ("DENY", "RSTR"):
                            self.denied[spec] = e.kod
                        raise
            except socket.timeout:
                extra = f" ({wrong} replies with a wrong origin ignored)" if wrong else ""
                raise NtpError(f"no answer within {self.timeout:g} s{extra}") from None
            except OSError as e:
                raise NtpError(e.strerror or str(e)) from None

    def measure(self, servers: Sequence[str]) -> Measurement:
        """Ask every server at once and pick a robust sample."""
        outcomes = [Outcome(s) for s in servers]

        def ask(o: Outcome) -> None:
            start = self.monotonic()
            try:
                o.sample = self.query(o.server)
            except NtpError as e:
                o.error = str(e)
            except Exception as e:  # never let one server's surprise kill the measurement
                o.error = f"{e.__class__.__name__}: {e}"
            now = self.monotonic()
            _trace(o, now - start, now)

        threads = [threading.Thread(target=ask, args=(o,), daemon=True) for o in outcomes]
        for t in threads:
            t.start()
        # Name resolution has no timeout of its own: stop waiting after a bound and
        # report the stragglers rather than hang an update behind a dead resolver.
        deadline = self.monotonic() + self.timeout + 4.0
        for t in threads:
            t.join(max(0.0, deadline - self.monotonic()))
        for o, t in zip(outcomes, threads):
            if t.is_alive() and o.sample is None and o.error is None:
                o.error = "no answer (name resolution too slow)"
        m = Measurement(outcomes)
        m.chosen, m.error = choose([o.sample for o in outcomes if o.sample is not None])
        if m.chosen is None and m.error is None:
            m.error = "no server answered"
        return m


def _trace(o: Outcome, elapsed: float, now_mono: float) -> None:
    """One debug line per NTP query."""
    log = LazyLogger("edgeddns")  # a one-shot sets logging up only when a line is due
    if not log.isEnabledFor(10):  # DEBUG
        return
    if o.sample is not None:
        import time

        # The offset from this host's wall clock, as of the answer (for the reader, not for use).
        offset = o.sample.base - (time.time() - now_mono)
        log.debug("ntp %s -> stratum %d, offset %+.3f s, delay %.1f ms (%.0f ms)", o.server, o.sample.stratum,
                  offset, o.sample.delay * 1000, elapsed * 1000)
    else:
        log.debug("ntp %s -> %s (%.0f ms)", o.server, o.error, elapsed * 1000)


def choose(samples: Sequence[Optional[Sample]]) -> Tuple[Optional[Sample], Optional[str]]:
    """The lowest-delay sample among those agreeing with the median, if they are a majority.

    One lying or broken server among three cannot move the result; two servers
    that disagree give no result at all (another source must decide).
    """
    good = [s for s in samples if s is not None]
    if not good:
        return None, None
    med = _median([s.base for s in good])
    agree = [s for s in good if abs(s.base - med) <= AGREE + s.delay / 2]
    if len(good) >= 2 and 2 * len(agree) <= len(good):
        return None, f"servers disagree ({len(agree)} of {len(good)} agree with the median)"
    return min(agree, key=lambda s: (s.delay, s.stratum)), None


def _median(values: List[float]) -> float:
    # statistics.median would import decimal and fractions for one line of arithmetic.
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
