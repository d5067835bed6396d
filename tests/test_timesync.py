"""Sync evidence, the corrected clock's decisions, the OpenWrt ntp hook, and the clock-aware TLS check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from edgeddns.clock import SystemClock, build_clock
from edgeddns.config import ClockConfig
from edgeddns.errors import ClockUnsyncedError
from edgeddns.sntp import Measurement, Sample
from edgeddns.syncprobe import SyncProbe, read_adjtimex
from edgeddns.timestore import FLOOR_SLACK
from edgeddns.timesync import NTP_RETRY, CorrectedClock
from tests.clockfix import chronyd, dated_context  # noqa: F401
from tests.conftest import ROOT

HOOK = os.path.join(ROOT, "openwrt", "files", "etc", "hotplug.d", "ntp", "25-edgeddns")


class Ticker:
    """Injectable wall and monotonic clocks; ``step`` moves only the wall clock."""

    def __init__(self, wall: float = 1_800_000_000.0, mono: float = 1000.0):
        self.w, self.m = wall, mono

    def wall(self) -> float:
        return self.w

    def mono(self) -> float:
        return self.m

    def advance(self, dt: float) -> None:
        self.w += dt
        self.m += dt


class FakeSntp:
    def __init__(self, t: Ticker, offset=None, error="no server answered"):
        self.t, self.offset, self.error, self.calls = t, offset, error, 0

    def measure(self, servers):
        self.calls += 1
        if self.offset is None:
            return Measurement(error=self.error)
        s = Sample("ntp.test", true_at=self.t.w + self.offset, mono=self.t.m, delay=0.01, stratum=2, leap=0,
                   root_delay=0, root_dispersion=0)
        return Measurement(chosen=s)


def unsynced(tmp_path) -> SyncProbe:
    return SyncProbe(str(tmp_path), timesyncd_flag=str(tmp_path / "none"), dnsmasq_marker=str(tmp_path / "none"),
                     adjtimex=lambda: (5, 0x40, 16_000_000))


def make(tmp_path, t: Ticker, *, mode="auto", ntp_offset=None, probe=None, max_age=3600.0):
    sntp = FakeSntp(t, ntp_offset)
    c = CorrectedClock(ClockConfig(mode=mode, max_age=max_age), str(tmp_path), sntp=sntp,
                       probe=probe or unsynced(tmp_path), wall=t.wall, boottime=t.mono)
    return c, sntp


def test_build_clock_by_mode(tmp_path):
    assert isinstance(build_clock(ClockConfig(mode="system")), SystemClock)
    assert isinstance(build_clock(ClockConfig(mode="auto"), str(tmp_path)), CorrectedClock)
    assert "edgeddns.timesync" in sys.modules  # imported lazily, only for auto/ntp


def test_system_mode_does_not_import_ntp_code():
    code = ("import sys; from edgeddns.clock import build_clock; from edgeddns.config import ClockConfig; "
            "build_clock(ClockConfig(mode='system')); print('edgeddns.timesync' in sys.modules, "
            "'edgeddns.sntp' in sys.modules)")
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout
    assert out.strip() == "False False"


def test_evidence_sources(tmp_path):
    flag = tmp_path / "synchronized"
    p = SyncProbe(str(tmp_path), timesyncd_flag=str(flag), dnsmasq_marker=str(tmp_path / "none"),
                  adjtimex=lambda: (5, 0x40, 16_000_000))
    ev = p.check()
    assert not ev.synced and any("16.000 s" in line for line in ev.lines)
    flag.write_text("")
    assert p.check().synced
    flag.unlink()
    # chrony/timesyncd keep maxerror small even with STA_UNSYNC set: that is proof.
    p.adjtimex = lambda: (5, 0x40, 120_000)
    ev = p.check()
    assert ev.synced and any("STA_UNSYNC set (not proof" in line for line in ev.lines)


def test_real_adjtimex_is_readable():
    tx = read_adjtimex()
    if sys.platform.startswith("linux"):
        assert tx is not None  # Linux always has adjtimex(2): None would silently hide chrony's proof
    assert tx is None or (len(tx) == 3 and tx[2] >= 0)


def test_adjtimex_agrees_with_busybox():
    """Our ctypes reading of the kernel's NTP state against busybox's own adjtimex applet (read-only)."""
    import re

    if not sys.platform.startswith("linux") or shutil.which("busybox") is None:
        pytest.skip("needs Linux and busybox")
    for _ in range(5):
        # A time daemon may rewrite the state between two reads: compare within a quiet window,
        # i.e. when our readings before and after busybox's agree with each other.
        before = read_adjtimex()
        out = subprocess.run(["busybox", "adjtimex"], capture_output=True, text=True, timeout=10).stdout
        after = read_adjtimex()
        if before[:2] == after[:2] and abs(before[2] - after[2]) <= 100_000:
            break
    theirs = {k: int(v) for k, v in re.findall(r"(maxerror|status|return value):\s+(-?\d+)", out)}
    state, status, maxerror = before
    assert state == theirs["return value"] and status == theirs["status"]
    # maxerror grows by 500 us per second between the reads unless a daemon resets it
    assert abs(maxerror - theirs["maxerror"]) <= 100_000


def test_auto_trusts_proven_system_clock_without_measuring(tmp_path):
    t = Ticker()
    flag = tmp_path / "synced"
    flag.write_text("")
    probe = unsynced(tmp_path)
    probe.timesyncd_flag = str(flag)
    c, sntp = make(tmp_path, t, probe=probe, ntp_offset=50.0)
    c.ensure()
    assert sntp.calls == 0 and c.info().source == "system" and c.now() == t.w


def test_ntp_mode_measures_even_when_synced(tmp_path):
    t = Ticker()
    flag = tmp_path / "synced"
    flag.write_text("")
    probe = unsynced(tmp_path)
    probe.timesyncd_flag = str(flag)
    c, sntp = make(tmp_path, t, mode="ntp", probe=probe, ntp_offset=2.0)
    c.ensure()
    assert sntp.calls == 1 and c.info().source == "ntp:ntp.test" and c.now() == pytest.approx(t.w + 2.0, abs=1e-6)


def test_corrected_time_survives_a_wall_clock_step(tmp_path):
    t = Ticker()
    c, _ = make(tmp_path, t, ntp_offset=-3 * 3600.0)
    c.ensure()
    true = t.w - 3 * 3600.0
    t.w += 5 * 3600.0  # another daemon steps the system clock; monotonic time does not move
    assert c.now() == pytest.approx(true, abs=1e-6)
    t.advance(10.0)
    assert c.now() == pytest.approx(true + 10.0, abs=1e-6)
    assert c.info().offset == pytest.approx(-8 * 3600.0, abs=1e-6)


def test_remeasured_after_max_age_and_ntp_retry_is_bounded(tmp_path):
    t = Ticker()
    c, sntp = make(tmp_path, t, ntp_offset=1.0, max_age=100.0)
    c.ensure()
    c.ensure()
    assert sntp.calls == 1
    t.advance(101.0)
    c.ensure()
    assert sntp.calls == 2


def test_date_fallback_through_probe_and_unsynced_without(tmp_path):
    t = Ticker()
    c, _ = make(tmp_path, t)
    with pytest.raises(ClockUnsyncedError, match="NTP gave no time") as e:
        c.ensure()
    assert e.value.code == "clock_unsynced"
    # The probe's response carries a Date 3 hours ahead.
    c.ensure(probe=lambda: c.observe_server_time("api.test", t.w + 3 * 3600.0, rtt=0.05))
    assert c.info().source == "http-date:api.test"
    assert c.now() == pytest.approx(t.w + 3 * 3600.0 + 0.5, abs=1e-6)  # Date truncates: the middle of its second
    with pytest.raises(ClockUnsyncedError, match="no Date header"):
        make(tmp_path, t)[0].ensure(probe=lambda: None)


def test_on_skew_takes_that_responses_date_for_that_host_only(tmp_path):
    t = Ticker()
    c, _ = make(tmp_path, t, ntp_offset=0.0)
    c.ensure()
    assert c.info().source == "ntp:ntp.test"
    server = t.w + 1800.0
    c.observe_server_time("api.test", server, rtt=0.01)  # beyond the tolerance, but NTP outranks a Date
    assert c.info().source == "ntp:ntp.test" and c.now_for("api.test") == c.now()
    t.advance(2.0)
    assert c.on_skew("api.test", server) is True  # that host refused our timestamp: sign for it with its clock
    assert c.now_for("api.test") == pytest.approx(server + 0.5 + 2.0, abs=1e-6)  # anchored at its arrival
    assert c.info_for("api.test").source == "http-date:api.test"
    assert c.now() == pytest.approx(t.w, abs=1e-6) and c.info().source == "ntp:ntp.test"
    assert c.now_for("other.test") == c.now()
    view = c.for_host("api.test")  # what the engine hands that host's provider
    assert view.now() == c.now_for("api.test") and view.floor() == c.floor() and view.trusted


def test_a_wrong_date_never_overrides_sync_evidence_and_expires(tmp_path):
    """Issue 11: a webhook host whose clock said 2016 moved the offset by -10 years for everyone."""
    t = Ticker()
    flag = tmp_path / "synced"
    flag.write_text("")
    probe = unsynced(tmp_path)
    probe.timesyncd_flag = str(flag)
    c, sntp = make(tmp_path, t, probe=probe, max_age=100.0)
    c.release = t.w - 20 * 365 * 86400.0  # so that only the trust rule, not the floor, is tested here
    c.verified = 0.0
    c.ensure()
    c.verified = 0.0
    for offset in (-7200.0, +7200.0):
        c.observe_server_time("hook.test", t.w + offset)
        assert c.trusted and c.info().source == "system" and c.now() == t.w and c.now_for("api.test") == t.w
        c.ensure()
        c.verified = 0.0
        assert c.info().source == "system" and c.now() == t.w
    assert sntp.calls == 0
    assert c.on_skew("hook.test", t.w + 7200.0) is True  # it refused a timestamp: for it alone
    assert c.now_for("hook.test") == pytest.approx(t.w + 7200.5, abs=1e-6)
    assert c.now() == t.w and c.info().source == "system"
    t.advance(101.0)  # a Date expires with max_age
    assert c.now_for("hook.test") == t.w and c.info_for("hook.test").source == "system"


def test_a_date_is_the_time_only_when_nothing_better_exists_and_expires(tmp_path):
    t = Ticker()
    c, sntp = make(tmp_path, t, max_age=100.0)
    with pytest.raises(ClockUnsyncedError):
        c.ensure()
    c.observe_server_time("hook.test", t.w - 3600.0)  # NTP gave nothing: the first Date serves
    assert c.info().source == "http-date:hook.test" and c.now() == pytest.approx(t.w - 3599.5, abs=1e-6)
    c.observe_server_time("api.test", t.w + 3600.0)  # another host's Date does not move it
    assert c.info().source == "http-date:hook.test"
    sntp.offset = 5.0
    t.advance(NTP_RETRY + 1)
    c.ensure()  # NTP answers again: it replaces the Date
    assert c.info().source == "ntp:ntp.test" and c.now() == pytest.approx(t.w + 5.0, abs=1e-6)
    c.observe_server_time("hook.test", t.w - 3600.0)
    assert c.info().source == "ntp:ntp.test"

    t2 = Ticker()
    c2, _ = make(tmp_path / "x", t2, max_age=100.0)
    c2.observe_server_time("hook.test", t2.w + 60.0)
    assert c2.trusted and c2.info().source == "http-date:hook.test"
    t2.advance(101.0)  # expired: not trusted any more, the next signed request measures again
    assert not c2.trusted and c2.info().source == "system"


def test_on_skew_without_date_remeasures_ntp(tmp_path):
    t = Ticker()
    c, sntp = make(tmp_path, t, ntp_offset=0.0)
    c.ensure()
    sntp.offset = 900.0
    assert c.on_skew("api.test", None) is True and sntp.calls == 2
    assert c.now() == pytest.approx(t.w + 900.0, abs=1e-6)
    assert c.on_skew("api.test", None) is False  # nothing new learnt: do not retry


def test_against_real_chronyd(tmp_path, chronyd):  # noqa: F811
    c = CorrectedClock(ClockConfig(mode="ntp", ntp_servers=[chronyd]), str(tmp_path))
    c.ensure()
    assert c.info().source == f"ntp:{chronyd}" and abs(c.info().offset) < 0.5


# ---------------------------------------------------------------- the OpenWrt hook, run by busybox ash

def run_hook(tmp_path, env):
    ash = shutil.which("busybox")
    if ash is None:
        pytest.skip("busybox is not installed")
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "trigger.log"
    fake = bindir / "edgeddns"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 3\n')  # the agent may be absent: failure is fine
    fake.chmod(0o755)
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    e = {"PATH": f"{bindir}:/usr/bin:/bin", "EDGEDDNS_STATE_DIR": str(tmp_path / "state"),
         "EDGEDDNS_HOTPLUG_CONF": "/nonexistent",
         "EDGEDDNS_BOOT_ID_FILE": str(boot), **env}
    p = subprocess.run([ash, "ash", HOOK], env=e, capture_output=True, text=True, timeout=10)
    return p, log


def marker_probe(tmp_path, boot="boot-1"):
    (tmp_path / "boot_id_now").write_text(boot + "\n")
    return SyncProbe(str(tmp_path / "state"), timesyncd_flag=str(tmp_path / "none"),
                     dnsmasq_marker=str(tmp_path / "none"), boot_id_file=str(tmp_path / "boot_id_now"),
                     adjtimex=lambda: None)


def test_hook_is_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    p = subprocess.run(["shellcheck", "-s", "sh", HOOK], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_hook_marks_sync_unsync_and_ignores_old_boots(tmp_path):
    p, _ = run_hook(tmp_path, {"ACTION": "stratum", "stratum": "3", "offset": "0.002", "poll_interval": "64"})
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "state" / "ntpd.sync").read_text()
    assert "sync=1" in text and "stratum=3" in text and "boot_id=boot-1" in text
    ev = marker_probe(tmp_path).check()
    assert ev.synced and any("stratum 3" in line for line in ev.lines)
    assert not marker_probe(tmp_path, boot="boot-2").check().synced  # a marker from before a reboot

    run_hook(tmp_path, {"ACTION": "unsync"})
    assert not marker_probe(tmp_path).check().synced
    run_hook(tmp_path, {"ACTION": "stratum", "stratum": "16"})
    assert not marker_probe(tmp_path).check().synced


def test_hook_tells_the_agent_on_step_and_survives_its_absence(tmp_path):
    p, log = run_hook(tmp_path, {"ACTION": "step", "stratum": "2", "offset": "-10800.1"})
    assert p.returncode == 0
    deadline = time.monotonic() + 5
    # The hook runs the trigger in the background: wait for its whole line, not just the file.
    while not (log.exists() and log.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().strip() == "trigger --action ntp-step"
    assert marker_probe(tmp_path).check().synced
    # No edgeddns binary at all: the hook still succeeds.
    os.unlink(tmp_path / "bin" / "edgeddns")
    p, _ = run_hook(tmp_path, {"ACTION": "step", "stratum": "2"})
    assert p.returncode == 0


# ---------------------------------------------------------------- TLS judged by the corrected clock

def test_connection_accepted_before_the_time_was_known_is_checked_again(tmp_path, ca, ca_file):
    """The first request (clock unknown) passes the release-date floor; once its Date sets the
    clock, the kept-alive connection is judged at the corrected time before it is used again."""
    from edgeddns.errors import TlsError
    from edgeddns.http import HttpClient
    from tests.fakes.server import FakeServer, Reply

    srv = FakeServer(lambda req: Reply.text(200, "ok"),
                     ssl_context=dated_context(ca, days_before=100, days_after=-10)).start()
    try:
        # pretend this release is older than the expiry
        clock = CorrectedClock(ClockConfig(mode="auto", ntp_servers=["127.0.0.1:9"], timeout=0.3), str(tmp_path),
                               probe=unsynced(tmp_path), release=time.time() - 30 * 86400)
        http = HttpClient(clock=clock, ca_file=ca_file, timeout=3)
        assert http.request("GET", srv.url).status == 200  # judged by the floor only
        assert clock.info().source == "http-date:127.0.0.1"
        with pytest.raises(TlsError, match="expired at the corrected time"):
            http.request("GET", srv.url)
        assert len(srv.requests) == 1
        http.close()
    finally:
        srv.stop()


def test_validity_problem_rules():
    from edgeddns.tls import validity_problem

    def info(nb, na):
        fmt = "%b %d %H:%M:%S %Y GMT"
        return {"notBefore": time.strftime(fmt, time.gmtime(nb)), "notAfter": time.strftime(fmt, time.gmtime(na)),
                "subject": ((("commonName", "x"),),)}

    now = 1_800_000_000
    leaf = info(now - 86400, now + 86400)
    assert validity_problem([leaf], now, floor=0) is None
    assert "not yet valid" in validity_problem([leaf], now - 2 * 86400, floor=0)[1]
    assert "has expired" in validity_problem([leaf], now + 2 * 86400, floor=0)[1]
    assert "chain certificate 1" in validity_problem([leaf, info(now - 10, now - 5000)], now, floor=0)[1]
    # No time known: only the release floor applies, in both directions of skew.
    assert validity_problem([leaf], None, floor=now) is None
    assert "a time known to have passed" in validity_problem([leaf], None, floor=now + 2 * 86400)[1]
    assert validity_problem([], now, floor=0)
    # A known time never lifts the floor: expired before it is expired, whatever ``now`` says.
    assert "a time known to have passed" in validity_problem([leaf], now, floor=now + 2 * 86400)[1]
    old_leaf = info(now - 2e6, now + 86400)
    assert validity_problem([old_leaf, info(now - 9e5, now - 8e5)], now - 8.5e5, floor=0) is None
    assert "chain certificate 1" in validity_problem([old_leaf, info(now - 9e5, now - 8e5)], now - 8.5e5,
                                                     floor=now)[1]


def test_resync_measures_now_whatever_max_age_and_pacing_say(tmp_path):
    """MQTT sync_time and the OpenWrt ntp-step trigger call resync(): it must really measure."""
    t = Ticker()
    c, sntp = make(tmp_path, t, ntp_offset=30.0)
    c.ensure()
    assert sntp.calls == 1 and c.info().source == "ntp:ntp.test"
    sntp.offset = -7.0  # the device clock was stepped, or the first answer was poor
    c.ensure()
    assert sntp.calls == 1  # within max_age: no new measurement
    c.resync()
    assert sntp.calls == 2 and abs(c.info().offset - (-7.0)) < 1e-6
    sntp.offset = None  # NTP now silent: an error, and the last good anchor is kept
    with pytest.raises(ClockUnsyncedError):
        c.resync()
    assert sntp.calls == 3 and abs(c.info().offset - (-7.0)) < 1e-6
    with pytest.raises(ClockUnsyncedError):
        c.resync()  # no pacing for an explicit request
    assert sntp.calls == 4


def test_resync_trusts_fresh_proof_of_sync(tmp_path):
    t = Ticker()
    flag = tmp_path / "synced"
    probe = unsynced(tmp_path)
    probe.timesyncd_flag = str(flag)
    c, sntp = make(tmp_path, t, probe=probe, ntp_offset=30.0)
    c.ensure()
    assert c.info().source == "ntp:ntp.test"
    flag.write_text("")  # ntpd has since stepped and synchronised the system clock
    c.resync()
    assert c.info().source == "system" and c.trusted and sntp.calls == 1


def test_ntp_hook_and_openwrt_config_agree_on_the_state_dir(tmp_path):
    """The hook's marker must land where the shipped OpenWrt config's agent looks for it."""
    from edgeddns.config import load

    ash = shutil.which("busybox")
    if ash is None:
        pytest.skip("busybox is not installed (scripts/test installs it)")
    conf = os.path.join(ROOT, "openwrt", "files", "etc", "edgeddns", "hotplug.conf")
    out = subprocess.run([ash, "ash", "-c", f'. "{conf}"; echo "$EDGEDDNS_STATE_DIR"'], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}).stdout.strip()
    cfg = load(os.path.join(ROOT, "openwrt", "files", "etc", "edgeddns", "config.toml"))
    assert out == cfg.agent.state_dir == "/var/run/edgeddns"


# ---------------------------------------------------------------- the floor

def test_release_floor_is_the_release_date_at_utc_midnight():
    import calendar

    from edgeddns import RELEASE_DATE
    from edgeddns.clock import epoch_of_date, release_floor

    assert release_floor() == calendar.timegm(time.strptime(RELEASE_DATE, "%Y-%m-%d"))
    for text in ("1970-01-01", "2000-02-29", "2024-03-01", "2038-01-19", "2100-12-31"):
        assert epoch_of_date(text) == calendar.timegm(time.strptime(text, "%Y-%m-%d")), text


def test_ntp_and_date_before_the_floor_are_refused(tmp_path):
    t = Ticker()
    c, sntp = make(tmp_path, t, ntp_offset=-400 * 86400.0)  # NTP says 400 days ago: before the release
    c.release = t.w - 30 * 86400
    with pytest.raises(ClockUnsyncedError, match="before the floor"):
        c.ensure()
    assert not c.trusted and c.anchor is None
    c.observe_server_time("api.test", t.w - 300 * 86400)  # a Date from the past is no better
    assert not c.trusted
    assert c.on_skew("api.test", t.w - 300 * 86400) is False
    assert any("before" in n and "ignored" in n for n in c.notes)


def test_synchronised_system_clock_before_the_floor_is_not_trusted(tmp_path):
    t = Ticker()
    flag = tmp_path / "synced"
    flag.write_text("")
    probe = unsynced(tmp_path)
    probe.timesyncd_flag = str(flag)
    c, sntp = make(tmp_path, t, probe=probe, ntp_offset=400 * 86400.0)
    c.release = t.w + 365 * 86400  # the "synchronised" system clock reads a year before the release
    c.ensure()
    assert c.info().source == "ntp:ntp.test" and sntp.calls == 1


def test_verified_time_is_saved_rarely_and_becomes_the_floor(tmp_path):
    """NTP confirmed by a provider's authenticated Date verifies the time; the next process refuses
    anything well before it. NTP alone (even several servers: one on-path attacker can answer for
    all of them) never raises the saved floor, which would lock the true time out."""
    import json

    t = Ticker()
    c, _ = make(tmp_path, t, ntp_offset=0.0, probe=boot_probe(tmp_path, "boot-a"))
    c.ensure()
    assert json.loads((tmp_path / "clock.json").read_text())["verified"] == 0
    c.observe_server_time("api.test", t.w - 0.5)  # an HTTPS Date agreeing with NTP
    saved = json.loads((tmp_path / "clock.json").read_text())
    assert saved["verified"] == pytest.approx(t.w, abs=0.01)
    assert os.stat(tmp_path / "clock.json").st_mode & 0o777 == 0o600
    mtime = os.stat(tmp_path / "clock.json").st_mtime_ns
    t.advance(600.0)
    c.resync()
    c.observe_server_time("api.test", t.w - 0.5)  # verified again: the floor moves in memory, nothing is written
    assert c.floor() == pytest.approx(t.w - FLOOR_SLACK, abs=0.01)
    assert os.stat(tmp_path / "clock.json").st_mtime_ns == mtime
    t.advance(7200.0)
    c.resync()  # the offset is saved again (max_age passed), the floor in the file stays (moved < a day)
    c.observe_server_time("api.test", t.w - 0.5)
    assert json.loads((tmp_path / "clock.json").read_text())["verified"] == saved["verified"]
    assert c.floor() == pytest.approx(t.w - FLOOR_SLACK, abs=0.01)

    # A later process, told by one NTP server that it is two hours before the saved time: refused.
    t2 = Ticker(wall=t.w, mono=5.0)
    c2, _ = make(tmp_path, t2, ntp_offset=-7800.0 - 7200.0, probe=boot_probe(tmp_path, "boot-b"))
    with pytest.raises(ClockUnsyncedError, match="before the floor"):
        c2.ensure()
    assert c2.floor() == pytest.approx(saved["verified"] - FLOOR_SLACK, abs=0.01)
    c3, _ = make(tmp_path, t2, ntp_offset=-7800.0 - 60.0, probe=boot_probe(tmp_path, "boot-b"))  # within the slack
    c3.resync()  # (ensure would wait: c2's NTP failure, saved for this boot, pauses NTP for a while)
    assert c3.info().source == "ntp:ntp.test"


# ---------------------------------------------------------------- the offset saved per boot (issue 12)

def boot_probe(tmp_path, boot: str) -> SyncProbe:
    p = unsynced(tmp_path)
    p.boot_id_file = str(tmp_path / f"boot_id.{boot}")
    (tmp_path / f"boot_id.{boot}").write_text(boot + "\n")
    return p


def test_saved_offset_is_reused_in_the_same_boot_until_max_age(tmp_path):
    t = Ticker()
    c1, s1 = make(tmp_path, t, ntp_offset=-3600.0, probe=boot_probe(tmp_path, "boot-a"), max_age=600.0)
    c1.ensure()
    assert s1.calls == 1
    t.advance(300.0)
    c2, s2 = make(tmp_path, t, ntp_offset=0.0, probe=boot_probe(tmp_path, "boot-a"), max_age=600.0)
    c2.ensure()  # the next one-shot: no measurement, the saved anchor
    assert s2.calls == 0 and c2.info().source == "ntp:ntp.test"
    assert c2.now() == pytest.approx(t.w - 3600.0, abs=1e-6)
    c3, s3 = make(tmp_path, t, ntp_offset=0.0, probe=boot_probe(tmp_path, "boot-b"), max_age=600.0)
    c3.ensure()  # another boot: boot time restarted, the saved anchor means nothing
    assert s3.calls == 1 and c3.now() == pytest.approx(t.w, abs=1e-6)
    t.advance(601.0)
    c4, s4 = make(tmp_path, t, ntp_offset=0.0, probe=boot_probe(tmp_path, "boot-b"), max_age=600.0)
    c4.ensure()  # older than max_age: measured again
    assert s4.calls == 1


def test_saved_ntp_failure_lets_the_date_serve_at_once(tmp_path):
    t = Ticker()
    c1, s1 = make(tmp_path, t, probe=boot_probe(tmp_path, "boot-a"))
    with pytest.raises(ClockUnsyncedError):
        c1.ensure()
    assert s1.calls == 1
    t.advance(10.0)
    c2, s2 = make(tmp_path, t, probe=boot_probe(tmp_path, "boot-a"))
    c2.ensure(probe=lambda: c2.observe_server_time("api.test", t.w + 7200.0))
    assert s2.calls == 0 and c2.info().source == "http-date:api.test"
    t.advance(NTP_RETRY)
    c3, s3 = make(tmp_path, t, probe=boot_probe(tmp_path, "boot-a"))
    with pytest.raises(ClockUnsyncedError):
        c3.ensure()  # the pause is over: NTP is asked again
    assert s3.calls == 1


@pytest.mark.parametrize("text", ['{"offset": {"boot_id": "boot-a", "base": "x"}}', "[1]", "{", "",
                                  '{"verified": 1e400, "offset": null}', '{"verified": true}'])
def test_a_damaged_clock_file_is_ignored(tmp_path, text):
    (tmp_path / "clock.json").write_text(text)
    t = Ticker()
    c, s = make(tmp_path, t, ntp_offset=1.0, probe=boot_probe(tmp_path, "boot-a"))
    c.ensure()
    assert s.calls == 1 and c.floor() == c.release


def test_saved_offset_before_the_floor_is_not_reused(tmp_path):
    t = Ticker()
    c1, _ = make(tmp_path, t, ntp_offset=-3 * 3600.0, probe=boot_probe(tmp_path, "boot-a"))
    c1.ensure()
    c2, s2 = make(tmp_path, t, ntp_offset=0.0, probe=boot_probe(tmp_path, "boot-a"))
    c2.verified = t.w - 60.0  # verified since: the saved anchor would put us three hours before it
    c2.ensure()
    assert s2.calls == 1 and c2.now() == pytest.approx(t.w, abs=1e-6)


# ---------------------------------------------------------------- CLOCK_BOOTTIME (issue 10)

def test_anchored_time_follows_a_suspend(tmp_path):
    """CLOCK_MONOTONIC stops while a NAS sleeps; the anchor must follow boot time, which does not."""
    t = Ticker()  # t.m is boot time here
    c, sntp = make(tmp_path, t, ntp_offset=-3 * 3600.0, max_age=7200.0)
    c.ensure()
    assert c.boottime == t.mono  # the injected boot-time clock, not monotonic
    true = t.w - 3 * 3600.0
    t.w += 3600.0  # asleep for an hour: wall and boot time move on, monotonic does not
    t.m += 3600.0
    assert c.now() == pytest.approx(true + 3600.0, abs=1e-6)
    assert sntp.calls == 1


def test_default_clocks_count_suspend(tmp_path):
    from edgeddns.clock import boottime
    from edgeddns.sntp import SntpClient

    c = CorrectedClock(ClockConfig(mode="ntp"), str(tmp_path))
    assert c.boottime is boottime and c.sntp.monotonic is boottime
    assert SntpClient().monotonic is boottime


def test_boottime_is_clock_boottime_in_a_time_namespace(tmp_path, chronyd):  # noqa: F811
    """A time namespace whose boot time is a day ahead of its monotonic clock, as after a day asleep.
    boottime() must read CLOCK_BOOTTIME, and NTP samples and the anchor must use the same clock."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    code = ("import time, sys; from edgeddns.clock import boottime; from edgeddns.config import ClockConfig; "
            "from edgeddns.timesync import CorrectedClock; "
            "c = CorrectedClock(ClockConfig(mode='ntp', ntp_servers=[sys.argv[1]], timeout=0.5), None); c.ensure(); "
            "print(boottime() - time.monotonic(), c.now() - time.time())")
    p = subprocess.run(["unshare", "--time", "--boottime", "86400", os.sys.executable, "-c", code, chronyd],
                       capture_output=True, text=True, cwd=ROOT, timeout=30)
    if p.returncode != 0 and "unshare" in p.stderr:
        pytest.skip(f"no time namespaces here: {p.stderr.strip()[:200]}")
    assert p.returncode == 0, p.stderr
    gap, err = (float(x) for x in p.stdout.split())
    assert abs(gap - 86400) < 5 and abs(err) < 0.5


def test_a_symlinked_clock_file_is_not_followed(tmp_path):
    """A planted link must not feed the floor (a far-future 'verified' would lock the true time out)."""
    target = tmp_path / "elsewhere.json"
    target.write_text('{"verified": 4000000000}')
    (tmp_path / "clock.json").symlink_to(target)
    t = Ticker()
    c, s = make(tmp_path, t, ntp_offset=1.0, probe=boot_probe(tmp_path, "boot-a"))
    assert c.floor() == c.release
    c.ensure()
    assert c.info().source == "ntp:ntp.test"
    assert not (tmp_path / "clock.json").is_symlink() and target.read_text() == '{"verified": 4000000000}'


def test_every_test_named_in_the_clock_boundaries_table_exists():
    """docs/clock.md lists the test holding each boundary: a renamed or deleted test must not leave it lying."""
    import re

    with open(os.path.join(ROOT, "docs", "clock.md"), encoding="utf-8") as f:
        doc = f.read()
    table = doc[doc.index("## Boundaries, attacks"):doc.index("## `edgeddns clock`")]
    named = []
    for row in table.splitlines():
        current = None
        for m in re.finditer(r"`(?:tests/)?(test_\w+\.py)?(?:::(test_\w+))?`", row):
            current = m.group(1) or current
            if m.group(2):
                named.append((current, m.group(2)))
    assert len(named) >= 15
    for file, name in named:
        with open(os.path.join(ROOT, "tests", file), encoding="utf-8") as f:
            assert f"def {name}(" in f.read(), f"docs/clock.md names {file}::{name}, which does not exist"


def test_adjtimex_without_ctypes_is_no_evidence_not_a_crash(monkeypatch, tmp_path):
    """OpenWrt ships ctypes as an add-on (python3-ctypes) the package does not pull in: without it the
    kernel's sync state is simply not read; the other signals (the ntp hook's marker, chrony) still are."""
    monkeypatch.setitem(sys.modules, "ctypes", None)  # what a missing module looks like to import
    assert read_adjtimex() is None
    ev = SyncProbe(state_dir=str(tmp_path)).check()  # the kernel's word is left out, nothing else
    assert isinstance(ev.synced, bool)
