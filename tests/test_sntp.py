"""SNTP arithmetic on hand-built packets, the sanity checks, and the choice among servers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeddns.sntp import (
    NTP_UNIX_DELTA,
    NtpError,
    Sample,
    SntpClient,
    choose,
    ntp_to_unix,
    parse_reply,
    request_packet,
    split_server,
    unix_to_ntp,
)
from tests.clockfix import chronyd, fake_ntp  # noqa: F401

NONCE = bytes.fromhex("0123456789abcdef")
WRAP_2036 = 2085978496  # 2036-02-07T06:28:16Z: NTP seconds wrap to 0


def reply(t2: int, t3: int, *, origin: bytes = NONCE, li: int = 0, mode: int = 4, stratum: int = 2,
          ref: bytes = b"GPS\0", root_delay: int = 0, root_disp: int = 0) -> bytes:
    return struct.pack("!BBbbII4s8s8sQQ", (li << 6) | (4 << 3) | mode, stratum, 6, -20, root_delay, root_disp,
                       ref, bytes(8), origin, t2, t3)


def test_request_is_v4_client_with_nonce_as_transmit():
    p = request_packet(NONCE)
    assert len(p) == 48 and p[0] == 0x23 and p[40:] == NONCE and p[1:40] == bytes(39)


def test_era_pivot_is_continuous_across_2036():
    assert ntp_to_unix(0xFFFFFFFF << 32) == WRAP_2036 - 1
    assert ntp_to_unix(0) == WRAP_2036
    assert ntp_to_unix(1 << 32) == WRAP_2036 + 1
    # Era 0: 1968..2036
    assert ntp_to_unix(0x80000000 << 32) == 0x80000000 - NTP_UNIX_DELTA
    assert ntp_to_unix((NTP_UNIX_DELTA + 1795932000) << 32) == 1795932000


def test_fraction_edges():
    assert ntp_to_unix(((NTP_UNIX_DELTA + 100) << 32) | 0x80000000) == 100.5
    top = ntp_to_unix(((NTP_UNIX_DELTA + 100) << 32) | 0xFFFFFFFF)
    assert 100.9999999 < top < 101
    # Rounding a fraction up to a whole second carries into the seconds field.
    assert unix_to_ntp(100.99999999999) == (NTP_UNIX_DELTA + 101) << 32
    assert unix_to_ntp(WRAP_2036 + 0.25) == 0x40000000  # era 1, second 0


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_roundtrip_within_a_nanosecond(t):
    assert abs(ntp_to_unix(unix_to_ntp(t)) - t) < 1e-6


def test_offset_and_delay_from_four_timestamps():
    # Server 3 h ahead; 40 ms round trip on the monotonic clock, 10 ms held by the server.
    t2 = 1795932000.0
    s = parse_reply(reply(unix_to_ntp(t2), unix_to_ntp(t2 + 0.010)), NONCE, sent_mono=500.0, recv_mono=500.040)
    assert s.delay == pytest.approx(0.030, abs=1e-6)
    assert s.true_at == pytest.approx(t2 + 0.010 + 0.015, abs=1e-6)  # T3 + delay/2
    assert s.base == pytest.approx(s.true_at - 500.040)
    assert s.stratum == 2 and s.leap == 0


def test_sample_across_the_era_wrap():
    # The server's clock reads just past 2036-02-07 (era 1), ours does not matter at all.
    s = parse_reply(reply(unix_to_ntp(WRAP_2036 - 0.001), unix_to_ntp(WRAP_2036 + 0.001)), NONCE, 10.0, 10.004)
    assert s.true_at == pytest.approx(WRAP_2036 + 0.001 + 0.001, abs=1e-6)


@pytest.mark.parametrize("packet, why", [
    (reply(1 << 62, 1 << 62, origin=bytes(8)), "origin"),
    (reply(1 << 62, 1 << 62, stratum=0, ref=b"RATE"), "kiss-o'-death RATE"),
    (reply(1 << 62, 1 << 62, stratum=0, ref=b"DENY"), "kiss-o'-death DENY"),
    (reply(1 << 62, 1 << 62, li=3), "unsynchronised"),
    (reply(1 << 62, 1 << 62, stratum=16), "unsynchronised"),
    (reply(1 << 62, 0), "zero server timestamp"),
    (reply(0, 1 << 62), "zero server timestamp"),
    (reply(1 << 62, 1 << 62, mode=3), "mode 3"),
    (reply(1 << 62, (1 << 62) + (5 << 32)), "impossible"),  # held 5 s within a 0.1 s round trip
    (reply(1 << 62, 1 << 62, root_disp=4 << 16), "root distance"),
    (reply(1 << 62, 1 << 62)[:47], "short"),
])
def test_bad_replies_are_rejected(packet, why):
    with pytest.raises(NtpError, match=why):
        parse_reply(packet, NONCE, 1.0, 1.1)


def test_split_server():
    assert split_server("ntp.aliyun.com") == ("ntp.aliyun.com", 123)
    assert split_server("127.0.0.1:11123") == ("127.0.0.1", 11123)
    assert split_server("[::1]:1234") == ("::1", 1234)
    assert split_server("[2001:db8::1]") == ("2001:db8::1", 123)


def s(base: float, delay: float = 0.01, name: str = "x") -> Sample:
    return Sample(name, true_at=base + 100.0, mono=100.0, delay=delay, stratum=2, leap=0, root_delay=0,
                  root_dispersion=0)


def test_choose_ignores_one_liar_and_prefers_low_delay():
    chosen, err = choose([s(0.2, 0.05, "a"), s(0.1, 0.01, "b"), s(10800, 0.001, "liar")])
    assert err is None and chosen.server == "b"


def test_choose_two_disagreeing_servers_gives_nothing():
    chosen, err = choose([s(0.0, name="a"), s(3600.0, name="b")])
    assert chosen is None and "disagree" in err


def test_choose_single_server_is_accepted():
    assert choose([s(5.0, name="only")])[0].server == "only"
    assert choose([]) == (None, None)


# ---------------------------------------------------------------- real servers on the loopback

def test_real_chronyd_agrees_with_our_clock(chronyd):  # noqa: F811
    import time

    sample = SntpClient(timeout=1).query(chronyd)
    assert sample.stratum == 8
    assert abs(sample.base + time.monotonic() - time.time()) < 0.5


def test_lying_and_broken_servers_are_outvoted(chronyd, fake_ntp):  # noqa: F811
    honest = fake_ntp(0.0)
    liar = fake_ntp(3 * 3600.0)
    m = SntpClient(timeout=0.5).measure([chronyd, honest.server, liar.server])
    assert m.chosen is not None and m.chosen.server in (chronyd, honest.server)
    assert all(o.sample is not None for o in m.outcomes)


@pytest.mark.parametrize("behaviour, error", [
    ("spoof", "wrong origin"),
    ("kod", "kiss-o'-death RATE"),
    ("li3", "unsynchronised"),
    ("zero", "zero server timestamp"),
    ("silent", "no answer within"),
])
def test_misbehaving_server_is_discarded(chronyd, fake_ntp, behaviour, error):  # noqa: F811
    bad = fake_ntp(7200.0, behaviour)
    m = SntpClient(timeout=0.4).measure([chronyd, bad.server])
    by_name = {o.server: o for o in m.outcomes}
    assert error in by_name[bad.server].error
    assert m.chosen is not None and m.chosen.server == chronyd


def test_unreachable_and_unresolvable_servers_report_why():
    import socket

    def resolve(host, port, *a):
        if host == "unresolvable.test":  # resolution is injected: no query leaves the machine
            raise socket.gaierror(-2, "Name or service not known")
        return socket.getaddrinfo(host, port, *a)

    m = SntpClient(timeout=0.3, resolve=resolve).measure(["127.0.0.1:9", "unresolvable.test"])
    assert m.chosen is None and m.error == "no server answered"
    errors = {o.server: o.error for o in m.outcomes}
    assert "refused" in errors["127.0.0.1:9"] or "no answer" in errors["127.0.0.1:9"]
    assert "cannot resolve" in errors["unresolvable.test"]
