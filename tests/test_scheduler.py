"""The scheduler alone, on an injected clock: plans, timers, limits (no threads, no sleeping)."""

from __future__ import annotations

import random

import pytest

from edgeddns.config import load
from edgeddns.events import Event
from edgeddns.plan import BREAKER_MAX, MAX_IDS, RETRY_FIRST, RETRY_MAX
from edgeddns.result import Result
from edgeddns.scheduler import Scheduler
from tests.conftest import write_config

CFG = """
[agent]
node_id = "n"
state_dir = "{d}/state"
{agent}
[ip]
ipv4 = ["{ip}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
{provider}
[providers.other]
type = "hosts"
path = "{d}/hosts2"
[[records]]
name = "a.lan"
provider = "lan"
allow_private = true
[[records]]
name = "b.lan"
provider = "lan"
allow_private = true
[[records]]
name = "c.lan"
provider = "other"
allow_private = true
"""


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(tmp_path, agent="", ip="static:10.0.0.1", provider="", settle=0.005, published=None):
    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path, agent=agent, ip=ip, provider=provider)))
    clock = Clock()
    s = Scheduler(cfg, monotonic=clock, rng=random.Random(7), settle=settle,
                  last_published=published or (lambda k: None), wall=lambda: 50_000.0)
    return s, clock, cfg


def res(name, status="updated", code=None, ip="10.0.0.1"):
    provider = "other" if name == "c.lan" else "lan"
    return Result(name, "A", provider, ip, None, status, error={"code": code, "message": "x"} if code else None)


def run(s, clock, outcome=None):
    """Take what is due now and complete it with ``outcome`` (name -> status/code)."""
    jobs = s.take(clock.t)
    if not jobs:
        return []
    outcome = outcome or {}
    results = []
    for j in jobs:
        o = outcome.get(j.name, "updated")
        results.append(res(j.name, "failed", o) if o not in ("updated", "unchanged", "skipped") else res(j.name, o))
    s.complete(jobs, results)
    return jobs


def test_poll_re_arms_itself(tmp_path):
    s, clock, _ = make(tmp_path, agent="poll_interval = 1\nverify_interval = 0")
    fired = 0
    for _ in range(10):
        clock.t = s.next_deadline(clock.t)
        jobs = run(s, clock)
        fired += bool(jobs)
        assert {j.trigger for j in jobs} == {"poll"}
    assert fired == 10


def test_unwatched_sources_poll_every_5_minutes_by_default(tmp_path):
    s, clock, _ = make(tmp_path, agent="verify_interval = 0", ip="cmd:cat /dev/null")
    assert s.plan("a.lan/A/lan").intervals.poll == 300.0
    assert s.next_deadline(clock.t) == clock.t + 300.0
    s2, _, _ = make(tmp_path, agent="verify_interval = 0", ip="static:10.0.0.1")
    assert s2.next_deadline(clock.t) is None  # static: nothing to poll, no wake-ups


def test_retry_per_record_doubles_with_jitter_and_survives_others_success(tmp_path):
    s, clock, _ = make(tmp_path, agent="verify_interval = 0")
    s.submit(Event("startup", settle=False))
    run(s, clock, {"a.lan": "network"})
    delays = []
    for _ in range(8):
        p = s.plan("a.lan/A/lan")
        delays.append(p.retry_at - clock.t)
        # c succeeds meanwhile: a's retry stays
        s.submit(Event("mqtt", records=["c.lan"], settle=False))
        assert [j.name for j in run(s, clock)] == ["c.lan"]
        assert s.plan("a.lan/A/lan").retry_at == p.retry_at
        br = s.breakers["lan"]  # and a's provider may be resting a little longer
        clock.t = max(p.retry_at, br.open_until or 0)
        jobs = run(s, clock, {"a.lan": "network"})
        assert [j.trigger for j in jobs] == ["retry"]
    for n, d in enumerate(delays):
        base = min(RETRY_MAX, RETRY_FIRST * 2 ** n)
        assert 0.8 * base <= d <= 1.2 * base, (n, d)
    clock.t = s.plan("a.lan/A/lan").retry_at
    run(s, clock, {"a.lan": "updated"})
    assert s.plan("a.lan/A/lan").retry_at is None and s.plan("a.lan/A/lan").failures == 0


def test_config_errors_are_not_retried_auth_slowly(tmp_path):
    s, clock, _ = make(tmp_path, agent="verify_interval = 0")
    s.submit(Event("startup", settle=False))
    run(s, clock, {"a.lan": "config", "b.lan": "auth"})
    assert s.plan("a.lan/A/lan").retry_at is None
    assert s.plan("b.lan/A/lan").retry_at - clock.t >= 0.8 * RETRY_MAX


def test_address_stays_with_its_record_and_family(tmp_path):
    s, clock, _ = make(tmp_path)
    s.submit(Event("mqtt", records=["a.lan"], addresses={4: "9.9.9.9", 6: "2001:db8::1"}, id="x"))
    s.submit(Event("hotplug", iface="wan"))
    clock.t += 1
    jobs = {j.name: j for j in s.take(clock.t)}
    assert jobs["a.lan"].address == "9.9.9.9" and jobs["b.lan"].address is None
    assert jobs["a.lan"].ids == ["x"] and jobs["b.lan"].ids == []
    s.complete(list(jobs.values()), [res(n) for n in jobs])
    # An event for all records with an IPv6 address gives A records nothing.
    s.submit(Event("mqtt", addresses={6: "2001:db8::2"}, settle=False))
    assert all(j.address is None for j in s.take(clock.t))


def test_settle_window_opens_once_and_is_not_extended(tmp_path):
    s, clock, _ = make(tmp_path, settle=0.005)
    t0 = clock.t
    for i in range(5):
        clock.t = t0 + i * 0.001
        s.submit(Event("netlink"))
        assert s.take(clock.t) is None
    # The worker sleeps until the window ends: not "now" (that would spin through the window).
    assert s.next_deadline(clock.t) == pytest.approx(t0 + 0.005, abs=1e-9)
    clock.t = t0 + 0.005
    jobs = s.take(clock.t)
    assert len(jobs) == 3
    s.complete(jobs, [res(j.name) for j in jobs])
    # an explicit "update now" does not wait at all
    s.submit(Event("mqtt", records=["a.lan"], settle=False))
    assert [j.name for j in s.take(clock.t)] == ["a.lan"]


def test_a_flood_is_bounded(tmp_path):
    s, clock, _ = make(tmp_path)
    for i in range(20000):
        s.submit(Event("mqtt", records=["a.lan"], id=f"i{i}"))
    assert s.queued() == 1 and s.coalesced == 19999
    clock.t += 1
    (job,) = s.take(clock.t)
    r = res("a.lan")
    s.complete([job], [r])
    assert len(r.extra["ids"]) == MAX_IDS and r.extra["ids_count"] == 20000 and r.id == "i19999"
    assert r.extra["ids"][-1] == "i19999"


def test_forced_updates_limited_per_record_and_configurable(tmp_path):
    s, clock, _ = make(tmp_path)
    forced = 0
    for _ in range(200):
        clock.t += 0.005  # 200 per second
        s.submit(Event("mqtt", records=["a.lan"], force=True, settle=False))
        for j in s.take(clock.t) or []:
            forced += j.force
            s.complete([j], [res(j.name)])
    assert forced == 1
    clock.t += 60
    s.submit(Event("mqtt", records=["a.lan"], force=True, settle=False))
    (j,) = s.take(clock.t)
    assert j.force
    s2, clock2, _ = make(tmp_path, agent="force_interval = 0")
    n = 0
    for _ in range(5):
        s2.submit(Event("mqtt", records=["a.lan"], force=True, settle=False))
        (j,) = s2.take(clock2.t)
        n += j.force
        s2.complete([j], [res(j.name)])
    assert n == 5


def test_breaker_holds_a_failing_providers_other_records(tmp_path):
    s, clock, _ = make(tmp_path, agent="verify_interval = 0")
    s.submit(Event("startup", settle=False))
    run(s, clock, {"a.lan": "network"})  # b succeeded in the same run; c is another provider
    assert s.breakers["lan"].open_until is None  # one bad run is not "keeps failing"
    s.submit(Event("mqtt", records=["b.lan"], settle=False))
    run(s, clock, {"b.lan": "rate_limited"})
    # New events for lan's records wait; the other provider's do not.
    s.submit(Event("hotplug", settle=False))
    jobs = s.take(clock.t)
    assert [j.name for j in jobs] == ["c.lan"]
    s.complete(jobs, [res("c.lan")])
    br = s.breakers["lan"]
    assert br.open_until is not None and br.open_until > clock.t
    # When it half-opens, one record probes; the other waits for its answer.
    clock.t = max(br.open_until, s.plan("a.lan/A/lan").retry_at)
    jobs = s.take(clock.t)
    assert len(jobs) == 1
    probe = jobs[0]
    assert s.take(clock.t) is None
    s.complete(jobs, [res(probe.name, "failed", "network")])
    assert br.open_until > clock.t  # reopened, longer
    assert br.open_until - clock.t <= 1.2 * BREAKER_MAX
    clock.t = br.open_until
    jobs = s.take(clock.t)
    assert len(jobs) == 1  # again one probe
    s.complete(jobs, [res(jobs[0].name)])
    assert br.open_until is None and br.trips == 0  # closed
    held = [p for p in s.plans.values() if p.due]
    assert [j.name for j in s.take(clock.t) or []] == [p.name for p in held]


def test_verify_and_keepalive_timers(tmp_path):
    # a published 24 days ago: its 25-day keepalive is due in about a day
    ts = {"a.lan/A/lan": 50_000.0 - 24 * 86400}
    s, clock, _ = make(tmp_path, agent="verify_interval = 60", provider="keepalive_interval = 25",
                       published=ts.get)
    a, b = s.plan("a.lan/A/lan"), s.plan("b.lan/A/lan")
    assert a.keepalive_at == pytest.approx(clock.t + 86400)
    assert b.keepalive_at == pytest.approx(clock.t + 25 * 86400)
    assert s.plan("c.lan/A/other").keepalive_at is None
    assert 0.9 * 3600 <= a.verify_at - clock.t <= 1.1 * 3600
    clock.t = a.verify_at
    jobs = s.take(clock.t)
    assert all(j.verify and j.trigger == "verify" for j in jobs)
    s.complete(jobs, [res(j.name, "unchanged") for j in jobs])
    assert s.plan("a.lan/A/lan").verify_at > clock.t
    clock.t = a.keepalive_at
    jobs = [j for j in s.take(clock.t) if j.name == "a.lan"]
    assert jobs and jobs[0].keepalive and not jobs[0].force_limited


def test_noip_preset_keeps_alive_every_25_days(tmp_path):
    cfg = load(write_config(tmp_path, f"""
        [agent]
        state_dir = "{tmp_path}/s"
        [ip]
        ipv4 = ["static:8.8.8.8"]
        [providers.n]
        type = "dyndns2"
        preset = "noip"
        username = "u"
        password = "secret-pw"
        [providers.d]
        type = "dyndns2"
        endpoint = "https://example.net/nic/update"
        username = "u"
        password = "secret-pw"
        [[records]]
        name = "a.example.com"
        provider = "n"
        [[records]]
        name = "b.example.com"
        provider = "d"
        [[records]]
        name = "c.example.com"
        provider = "d"
        keepalive_interval = 7
    """))
    s = Scheduler(cfg, monotonic=lambda: 0.0)
    assert s.plan("a.example.com/A/n").intervals.keepalive == 25 * 86400
    assert s.plan("b.example.com/A/d").intervals.keepalive is None
    assert s.plan("c.example.com/A/d").intervals.keepalive == 7 * 86400


def test_reconfigure_keeps_memory_and_drops_removed_records(tmp_path):
    s, clock, cfg = make(tmp_path, agent="verify_interval = 0")
    s.submit(Event("startup", settle=False))
    run(s, clock, {"a.lan": "network"})
    retry = s.plan("a.lan/A/lan").retry_at
    got = []
    s.submit(Event("cli", records=["c.lan"], done=got.append, settle=False))
    cfg.records = [r for r in cfg.records if r.name != "c.lan"]
    s.configure(cfg)
    assert s.plan("a.lan/A/lan").retry_at == retry
    assert "c.lan/A/other" not in s.plans and got == [[]]  # the waiter is answered, not left hanging


def test_a_suspend_fires_what_fell_due_once(tmp_path):
    """The clock counts suspend (CLOCK_BOOTTIME): after a long sleep, due timers fire, once each."""
    s, clock, _ = make(tmp_path, agent="poll_interval = 5\nverify_interval = 60")
    s.submit(Event("startup", settle=False))
    run(s, clock, {"a.lan": "network"})
    clock.t += 8 * 3600  # slept through a retry, 96 polls and 8 verifications
    jobs = s.take(clock.t)
    assert sorted(j.name for j in jobs) == ["a.lan", "b.lan", "c.lan"]
    assert all(j.verify for j in jobs)
    s.complete(jobs, [res(j.name) for j in jobs])
    assert s.take(clock.t) is None and s.next_deadline(clock.t) == pytest.approx(clock.t + 300)


def test_a_probe_that_gives_no_result_does_not_wedge_its_provider(tmp_path):
    s, clock, cfg = make(tmp_path, agent="verify_interval = 0")
    s.submit(Event("startup", settle=False))
    run(s, clock, {"a.lan": "network"})
    s.submit(Event("mqtt", records=["a.lan"], settle=False))
    run(s, clock, {"a.lan": "network"})  # two bad runs in a row: the breaker opens
    br = s.breakers["lan"]
    clock.t = br.open_until
    s.submit(Event("hotplug", settle=False))
    jobs = [j for j in s.take(clock.t) if j.provider == "lan"]
    assert len(jobs) == 1 and br.probing == jobs[0].key
    s.complete(jobs, [])  # the probe's record vanished (a reload) or the engine returned nothing for it
    assert br.probing is None
    assert [j.provider for j in s.take(clock.t)] == ["lan"]  # the next one may probe
