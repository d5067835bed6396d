"""`edgeddns update` as a child process whose wall clock is wrong (libfaketime), against
the fake Alidns server whose clock is right, with a real chronyd on the loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.clockfix import chronyd, dated_context, fake_ntp, faketime, faketime_tools, free_udp_port  # noqa: F401
from tests.conftest import ALI_ID, ALI_SECRET, ROOT, alidns_config, run_cli
from tests.fakes.alidns import FakeAlidns
from tests.fakes.server import FakeServer

SKEWS = ["-3h", "+2y", "-10y", "+10y"]


@pytest.fixture
def ali(ca):
    """The fake Alidns with a certificate valid from yesterday to +90 days, in real time."""
    started = []

    def make(*names: str, days_before: float = 1, days_after: float = 90, other_ca=None) -> FakeAlidns:
        fake = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com"])
        srv = FakeServer(fake, ssl_context=dated_context(other_ca or ca, *names, days_before=days_before,
                                                         days_after=days_after)).start()
        fake.server, fake.url = srv, srv.url
        started.append(srv)
        return fake

    yield make
    for srv in started:
        srv.stop()


def clock_cfg(mode: str, servers) -> str:
    return f'\n[clock]\nmode = "{mode}"\nntp_servers = {json.dumps(list(servers))}\ntimeout = 0.5\n'


def dead_ntp() -> str:
    return f"127.0.0.1:{free_udp_port()}"  # nothing listens: refused at once


def update(tmp_path, name, fake, ca_file, ft, skew, clock, ip="static:8.8.8.8"):
    d = tmp_path / name
    d.mkdir()
    cfg = alidns_config(d, fake, ca_file, ip=ip, extra=clock)
    env = ft.env(skew)
    env["EDGEDDNS_IGNORE_SYNC_EVIDENCE"] = "1"  # this host may really be synced; the child is not
    p = run_cli("update", "-c", cfg, "--json", env=env)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr, p.stderr
    return lines[0]


def child_skew(ft, skew) -> float:
    """The child's wall clock minus the real one, as libfaketime applies it."""
    env = dict(os.environ, **ft.env(skew))
    before = time.time()
    out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env, capture_output=True,
                         text=True, timeout=30).stdout
    return float(out) - (before + time.time()) / 2


def test_three_hours_behind_system_ntp_date_and_nothing(tmp_path, ali, ca_file, faketime, chronyd):  # noqa: F811
    fake = ali()
    # mode = "system": the provider refuses the timestamp, nothing is written.
    r = update(tmp_path, "system", fake, ca_file, faketime, "-3h", clock_cfg("system", [chronyd]))
    assert r["status"] == "failed" and r["error"]["code"] == "clock_skew", r
    assert fake.writes == 0 and r["clock"] == {"offset": 0.0, "source": "system"}

    # auto: NTP gives the offset; the result says so.
    r = update(tmp_path, "ntp", fake, ca_file, faketime, "-3h", clock_cfg("auto", [chronyd]))
    assert r["status"] == "updated", r
    assert r["clock"]["source"] == f"ntp:{chronyd}" and abs(r["clock"]["offset"] - 3 * 3600) < 1.0
    assert [x["Value"] for x in fake.find("home.example.com", "A")] == ["8.8.8.8"]

    # NTP unreachable: the provider's Date header, over verified TLS, gives the time.
    r = update(tmp_path, "date", fake, ca_file, faketime, "-3h", clock_cfg("auto", [dead_ntp()]), ip="static:1.1.1.1")
    assert r["status"] == "updated", r
    assert r["clock"]["source"] == "http-date:127.0.0.1" and abs(r["clock"]["offset"] - 3 * 3600) < 2.0
    assert [x["Value"] for x in fake.find("home.example.com", "A")] == ["1.1.1.1"]

    # Neither: a clear clock_unsynced error, and no signed request is even sent.
    fake.server.send_date = False
    writes, calls = fake.writes, list(fake.calls)
    r = update(tmp_path, "none", fake, ca_file, faketime, "-3h", clock_cfg("auto", [dead_ntp()]), ip="static:9.9.9.9")
    assert r["status"] == "failed" and r["error"]["code"] == "clock_unsynced", r
    assert fake.writes == writes and fake.calls == calls
    assert [x["Value"] for x in fake.find("home.example.com", "A")] == ["1.1.1.1"]


@pytest.mark.parametrize("skew", SKEWS)
def test_any_skew_updates_with_tls_verified(tmp_path, ali, ca_file, faketime, chronyd, skew):  # noqa: F811
    fake = ali()
    expected = -child_skew(faketime, skew)
    r = update(tmp_path, "ntp", fake, ca_file, faketime, skew, clock_cfg("auto", [chronyd]))
    assert r["status"] == "updated", r
    assert r["clock"]["source"] == f"ntp:{chronyd}" and abs(r["clock"]["offset"] - expected) < 1.0
    r = update(tmp_path, "date", fake, ca_file, faketime, skew, clock_cfg("auto", [dead_ntp()]), ip="static:1.1.1.1")
    assert r["status"] == "updated", r
    assert r["clock"]["source"] == "http-date:127.0.0.1" and abs(r["clock"]["offset"] - expected) < 2.0
    assert fake.writes == 2


def test_certificate_looks_expired_to_the_skewed_system_clock(tmp_path, ali, ca_file, faketime, chronyd):  # noqa: F811
    fake = ali()
    r = update(tmp_path, "system", fake, ca_file, faketime, "+2y", clock_cfg("system", [chronyd]))
    assert r["error"]["code"] == "tls" and "expired" in r["error"]["message"], r
    r = update(tmp_path, "system-past", fake, ca_file, faketime, "-10y", clock_cfg("system", [chronyd]))
    assert r["error"]["code"] == "tls" and "not yet valid" in r["error"]["message"], r
    assert fake.writes == 0 and fake.calls == []


@pytest.mark.parametrize("case", ["wrong-ca", "wrong-host", "really-expired"])
@pytest.mark.parametrize("ntp", ["chrony", "none"])
def test_tls_still_fails_under_skew(tmp_path, ali, ca_file, faketime, chronyd, case, ntp):  # noqa: F811
    import trustme

    if case == "wrong-ca":
        fake = ali(other_ca=trustme.CA())
    elif case == "wrong-host":
        fake = ali("example.org")
    else:
        fake = ali(days_before=100, days_after=-10)
    servers = [chronyd] if ntp == "chrony" else [dead_ntp()]
    r = update(tmp_path, "x", fake, ca_file, faketime, "+2y", clock_cfg("auto", servers))
    assert r["status"] == "failed" and r["error"]["code"] == "tls", r
    assert fake.writes == 0 and fake.calls == []


STEP_CHILD = r"""
import sys, time
from edgeddns.config import ClockConfig
from edgeddns.timesync import CorrectedClock
c = CorrectedClock(ClockConfig(mode="auto", ntp_servers=[sys.argv[1]], timeout=0.5), None)
c.ensure()
print("A", c.now(), time.time(), c.info().source, flush=True)
sys.stdin.readline()  # the parent steps our wall clock meanwhile
time.sleep(0.05)
print("B", c.now(), time.time(), c.info().source, flush=True)
"""


def test_clock_stepped_under_a_running_process(faketime, chronyd):  # noqa: F811
    env = dict(os.environ, PYTHONPATH=ROOT, EDGEDDNS_IGNORE_SYNC_EVIDENCE="1", **faketime.env("+5h"))
    p = subprocess.Popen([sys.executable, "-c", STEP_CHILD, chronyd], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _, now_a, wall_a, source = p.stdout.readline().split()
        real_a = time.time()
        assert source == f"ntp:{chronyd}"
        assert abs(float(now_a) - real_a) < 1.0 and float(wall_a) - real_a > 4 * 3600
        faketime.set("-7d")  # another daemon steps the system clock, far the other way
        p.stdin.write("go\n")
        p.stdin.flush()
        _, now_b, wall_b, _ = p.stdout.readline().split()
        real_b = time.time()
        assert real_b - float(wall_b) > 6 * 86400  # the step happened
        assert abs(float(now_b) - real_b) < 1.0  # the corrected time did not move with it
    finally:
        p.stdin.close()
        p.wait(10)
        err = p.stderr.read()
        p.stderr.close()
        p.stdout.close()
    assert p.returncode == 0, err


def test_clock_command_shows_evidence_servers_and_choice(tmp_path, faketime, chronyd, fake_ntp):  # noqa: F811
    liar = fake_ntp(3600.0, "spoof")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{tmp_path}/state"\n[clock]\nmode = "auto"\ntimeout = 0.5\n'
                   f'ntp_servers = ["{chronyd}", "{liar.server}"]\n')
    env = dict(faketime.env("-3h"), EDGEDDNS_IGNORE_SYNC_EVIDENCE="1")
    p = run_cli("clock", "-c", str(cfg), "--json", env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["synchronized"] is False and out["evidence"]
    by = {s["server"]: s for s in out["servers"]}
    assert by[chronyd]["stratum"] == 8 and abs(by[chronyd]["offset"] - 10800) < 1
    assert "wrong origin" in by[liar.server]["error"]
    assert out["chosen"]["source"] == f"ntp:{chronyd}" and abs(out["chosen"]["offset"] - 10800) < 1
    assert out["floor"] >= "2026-11-29T00:00:00Z"  # the release date at least (ISO strings sort by time)
    assert out["saved"] is None  # `edgeddns clock` measures but saves nothing
    p = run_cli("clock", "-c", str(cfg), env=env)
    assert p.returncode == 0 and "not proven synchronised" in p.stdout and f"source ntp:{chronyd}" in p.stdout
