"""Clock trust boundaries, attacked end to end: a lying NTP server, a wrong system clock,
an HTTPS server whose Date is wrong. Each runs `edgeddns update` as a child process
against the fake Alidns (its signature checks use its own clock)."""

from __future__ import annotations

import datetime
import json
import ssl
import time

import pytest

from tests.clockfix import fake_ntp, faketime, faketime_tools  # noqa: F401
from tests.conftest import ALI_ID, ALI_SECRET, alidns_config, run_cli
from tests.fakes.alidns import FakeAlidns
from tests.fakes.server import FakeServer

UTC = datetime.timezone.utc
#: the attacker's world: an old certificate whose key leaked, and a clock that says it is still valid
LIE = datetime.datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
EXPIRED_ON = datetime.datetime(2025, 6, 1, 0, 0, 0, tzinfo=UTC)


def cert_context(ca, not_before: datetime.datetime, not_after: datetime.datetime) -> ssl.SSLContext:
    cert = ca.issue_cert("127.0.0.1", "localhost", not_before=not_before.replace(tzinfo=None),
                         not_after=not_after.replace(tzinfo=None))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def attacker(ca):
    """A fake Alidns holding a certificate that expired 2025-06-01, whose own clock (signature
    window and Date header) says 2024-06-01: it accepts our signature if we believe the lie."""
    skew = LIE.timestamp() - time.time()
    fake = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com"], clock=lambda: time.time() + skew)
    srv = FakeServer(fake, ssl_context=cert_context(ca, datetime.datetime(2024, 1, 1, tzinfo=UTC), EXPIRED_ON),
                     clock=lambda: time.time() + skew).start()
    fake.server, fake.url = srv, srv.url
    yield fake
    srv.stop()


def update(tmp_path, fake, ca_file, clock: str, env=None, name="run"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    cfg = alidns_config(d, fake, ca_file, extra=clock)
    e = {"EDGEDDNS_IGNORE_SYNC_EVIDENCE": "1"}  # this host may be synced; the child must not believe it
    e.update(env or {})
    p = run_cli("update", "-c", cfg, "--json", env=e)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return lines[0]


def clock_toml(mode: str, servers) -> str:
    return f'\n[clock]\nmode = "{mode}"\nntp_servers = {json.dumps(list(servers))}\ntimeout = 0.5\n'


# ---------------------------------------------------------------- the floor

def test_lying_ntp_cannot_make_tls_accept_an_expired_certificate(tmp_path, attacker, ca_file, fake_ntp):  # noqa: F811
    """Issue 11: SNTP says 2024-06-01, the certificate expired 2025-06-01; the update went through."""
    liar = fake_ntp(LIE.timestamp() - time.time())
    r = update(tmp_path, attacker, ca_file, clock_toml("auto", [liar.server]))
    assert r["status"] == "failed" and r["error"]["code"] == "tls", r
    assert "expired" in r["error"]["message"], r
    assert attacker.writes == 0 and attacker.calls == []


def test_wrong_system_clock_cannot_make_tls_accept_an_expired_certificate(tmp_path, attacker, ca_file,
                                                                          faketime):  # noqa: F811
    """mode = "system" trusts the system clock, but never below the floor: OpenSSL alone accepted it."""
    env = faketime.env("@" + LIE.strftime("%Y-%m-%d %H:%M:%S"))
    r = update(tmp_path, attacker, ca_file, clock_toml("system", ["127.0.0.1:9"]), env=env)
    assert r["status"] == "failed" and r["error"]["code"] == "tls", r
    assert attacker.writes == 0 and attacker.calls == []


# ---------------------------------------------------------------- a wrong Date

@pytest.fixture
def ali_ok(ca):
    from tests.clockfix import dated_context

    fake = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com"])
    srv = FakeServer(fake, ssl_context=dated_context(ca)).start()
    fake.server, fake.url = srv, srv.url
    yield fake
    srv.stop()


def sync_marker(state_dir) -> None:
    """The OpenWrt ntp hook's marker: busybox ntpd reported stratum 2 in this boot (sync evidence)."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "ntpd.sync").write_text(f"sync=1\naction=stratum\nstratum=2\nboot_id={boot}\n")


@pytest.mark.parametrize("years", [+10, -2])
def test_a_webhook_hosts_wrong_date_moves_nobody_elses_clock(tmp_path, ali_ok, ca, ca_file, years):
    """Issue 11: a webhook host whose clock was 10 years off moved the offset for every provider;
    the next provider then failed ("certificate is not yet valid / has expired at the corrected time")."""
    from tests.clockfix import dated_context
    from tests.conftest import write_config
    from tests.fakes.webhook import FakeWebhook

    hook = FakeWebhook()
    skew = years * 365 * 86400.0
    srv = FakeServer(hook, ssl_context=dated_context(ca), clock=lambda: time.time() + skew).start()
    srv2 = FakeServer(FakeWebhook(), ssl_context=dated_context(ca, "localhost")).start()  # an honest host
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "test"
            state_dir = "{tmp_path}/state"

            [ip]
            ipv4 = ["static:8.8.8.8"]

            [clock]
            mode = "auto"
            ntp_servers = ["127.0.0.1:9"]
            timeout = 0.3

            [providers.hook]
            type = "webhook"
            ca_file = "{ca_file}"
            url = "{srv.url}update?ip={{ip}}"

            [providers.hook2]
            type = "webhook"
            ca_file = "{ca_file}"
            url = "https://localhost:{srv2.port}/update?ip={{ip}}"

            [providers.ali]
            type = "alidns"
            access_key_id = "{ALI_ID}"
            access_key_secret = "{ALI_SECRET}"
            endpoint = "{ali_ok.url}"
            ca_file = "{ca_file}"
            timeout = 3

            [[records]]
            name = "hook.example.com"
            provider = "hook"

            [[records]]
            name = "hook2.example.com"
            provider = "hook2"

            [[records]]
            name = "home.example.com"
            provider = "ali"
        """)
        sync_marker(tmp_path / "state")  # the system clock is proven synchronised
        p = run_cli("update", "-c", cfg, "--json")
        assert "Traceback" not in p.stderr, p.stderr
        res = {r["record"]: r for r in (json.loads(x) for x in p.stdout.splitlines() if x.startswith("{"))}
        # an unsigned provider's TLS check and a signed provider's timestamp both use the system clock
        assert res["hook.example.com"]["status"] == "updated", res
        assert res["hook2.example.com"]["status"] == "updated", res
        assert res["home.example.com"]["status"] == "updated", res
        assert res["home.example.com"]["clock"] == {"offset": 0.0, "source": "system"}, res
        assert ali_ok.writes == 1
    finally:
        srv.stop()
        srv2.stop()


# ---------------------------------------------------------------- one-shots in one boot (issue 12)

def run_twice(tmp_path, fake, ca_file, ntp, env):
    """Two one-shots in one state dir, each with a new address (so each signs a request)."""
    out = []
    for ip in ("8.8.8.8", "1.1.1.1"):
        cfg = alidns_config(tmp_path, fake, ca_file, ip=f"static:{ip}", extra=clock_toml("auto", [ntp.server]))
        p = run_cli("update", "-c", cfg, "--json", env=dict(env, EDGEDDNS_IGNORE_SYNC_EVIDENCE="1"))
        assert "Traceback" not in p.stderr, p.stderr
        r = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        assert len(r) == 1 and r[0]["status"] == "updated", p.stdout + p.stderr
        out.append((r[0], ntp.queries))
    return out


def test_one_shot_reuses_the_offset_measured_in_this_boot(tmp_path, ali_ok, ca_file, fake_ntp, faketime):  # noqa: F811
    ntp = fake_ntp(0.0)  # the true time; the child's wall clock is 3 hours behind
    (first, q1), (second, q2) = run_twice(tmp_path, ali_ok, ca_file, ntp, faketime.env("-3h"))
    assert q1 == 1 and q2 == 1  # the second one-shot sent no NTP query
    for r in (first, second):
        assert r["clock"]["source"] == f"ntp:{ntp.server}" and abs(r["clock"]["offset"] - 3 * 3600) < 1.0, r
    saved = json.loads((tmp_path / "state" / "clock.json").read_text())
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert saved["offset"]["boot_id"] == f.read().strip()
    # `edgeddns clock` shows what the next one-shot would reuse
    env = dict(faketime.env("-3h"), EDGEDDNS_IGNORE_SYNC_EVIDENCE="1")
    p = run_cli("clock", "-c", str(tmp_path / "config.toml"), "--json", env=env)
    kept = json.loads(p.stdout)["saved"]
    assert kept["reusable"] and kept["source"] == f"ntp:{ntp.server}" and abs(kept["offset"] - 3 * 3600) < 1, kept


def test_unreachable_ntp_costs_one_query_and_the_date_serves(tmp_path, ali_ok, ca_file, fake_ntp, faketime):  # noqa: F811
    ntp = fake_ntp(0.0, "silent")  # UDP 123 swallowed: every query waits for its whole timeout
    (first, q1), (second, q2) = run_twice(tmp_path, ali_ok, ca_file, ntp, faketime.env("-3h"))
    assert q1 == 1  # one short timeout in the first one-shot, not one per attempt
    assert q2 == 1  # and none in the next: the provider's Date serves at once
    for r in (first, second):
        assert r["clock"]["source"] == "http-date:127.0.0.1" and abs(r["clock"]["offset"] - 3 * 3600) < 2.0, r


# ---------------------------------------------------------------- a non-blocking handshake (as paho makes it)

def test_non_blocking_handshake_applies_the_floor(tmp_path, attacker, ca_file):
    """The MQTT client wraps a non-blocking socket and drives the handshake itself; the clock-aware
    check must still run when it completes (make_context(ca_file, clock=...) is what the broker link uses)."""
    import select
    import socket

    from edgeddns.clock import SystemClock
    from edgeddns.tls import make_context

    skew = LIE.timestamp() - time.time()
    clock = SystemClock(wall=lambda: time.time() + skew)  # a system clock that believes the lie
    ctx = make_context(ca_file, clock=clock)
    raw = socket.create_connection(("127.0.0.1", attacker.server.port), timeout=5)
    raw.setblocking(False)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="known to have passed"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    s.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    select.select([s], [], [], 1)
                except ssl.SSLWantWriteError:
                    select.select([], [s], [], 1)
    finally:
        s.close()


def test_a_provider_on_another_clock_is_signed_for_with_its_own_clock_only(tmp_path, ali_ok, ca, ca_file):
    """A service whose clock is an hour ahead refuses our timestamp: we sign for it with its Date,
    and for it alone; the next provider (on time) is signed with the synchronised system clock."""
    from tests.clockfix import dated_context
    from tests.conftest import write_config

    ahead = 3600.0
    odd = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com"], clock=lambda: time.time() + ahead)
    srv = FakeServer(odd, ssl_context=dated_context(ca, "localhost"), clock=lambda: time.time() + ahead).start()
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "test"
            state_dir = "{tmp_path}/state"

            [ip]
            ipv4 = ["static:8.8.8.8"]

            [clock]
            mode = "auto"
            ntp_servers = ["127.0.0.1:9"]
            timeout = 0.3

            [providers.odd]
            type = "alidns"
            access_key_id = "{ALI_ID}"
            access_key_secret = "{ALI_SECRET}"
            endpoint = "https://localhost:{srv.port}/"
            ca_file = "{ca_file}"
            timeout = 3

            [providers.ali]
            type = "alidns"
            access_key_id = "{ALI_ID}"
            access_key_secret = "{ALI_SECRET}"
            endpoint = "{ali_ok.url}"
            ca_file = "{ca_file}"
            timeout = 3

            [[records]]
            name = "a.example.com"
            provider = "odd"

            [[records]]
            name = "b.example.com"
            provider = "ali"
        """)
        sync_marker(tmp_path / "state")
        p = run_cli("update", "-c", cfg, "--json")
        assert "Traceback" not in p.stderr, p.stderr
        res = {r["record"]: r for r in (json.loads(x) for x in p.stdout.splitlines() if x.startswith("{"))}
        a, b = res["a.example.com"], res["b.example.com"]
        assert a["status"] == "updated" and a["clock_retry"]["clock"]["source"] == "http-date:localhost", a
        assert a["clock"]["source"] == "http-date:localhost", a  # the result says which clock signed it
        assert abs(a["clock_retry"]["clock"]["offset"] - ahead) < 2.0, a
        assert b["status"] == "updated" and "clock_retry" not in b, b  # no refused first attempt
        assert b["clock"] == {"offset": 0.0, "source": "system"}, b
    finally:
        srv.stop()
