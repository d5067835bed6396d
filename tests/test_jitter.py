"""The agent's default jitter: uniform numbers from the kernel's random bytes, in range, never the end."""

from __future__ import annotations

import os

import pytest

from edgeddns.jitter import Jitter


@pytest.mark.parametrize("raw, expected", [(b"\x00" * 7, 0.0), (b"\xff" * 7, 1.0 - 2.0 ** -53),
                                           (b"\x80" + b"\x00" * 6, 0.5)])
def test_random_maps_53_bits_onto_0_to_1(monkeypatch, raw, expected):
    monkeypatch.setattr(os, "getrandom", lambda n, flags: raw[:n], raising=False)
    assert Jitter().random() == expected


def test_it_never_waits_for_the_kernel_pool(monkeypatch):
    """At early boot (old kernels) getrandom would block: a router's agent must not wait for entropy."""
    asked = []

    def not_ready(n, flags):
        asked.append(flags)
        raise BlockingIOError(11, "Resource temporarily unavailable")

    def blocking(n):
        raise AssertionError("os.urandom would wait for the pool")

    monkeypatch.setattr(os, "getrandom", not_ready, raising=False)
    monkeypatch.setattr(os, "urandom", blocking)
    j = Jitter()
    draws = [j.uniform(0.9, 1.1) for _ in range(2000)]
    assert asked and all(f & os.GRND_NONBLOCK for f in asked)
    assert all(0.9 <= d < 1.1 for d in draws) and len(set(draws)) == len(draws)
    assert {int((d - 0.9) / 0.02) for d in draws} == set(range(10))


def test_uniform_stays_in_its_range_and_spreads_over_it():
    j = Jitter()
    draws = [j.uniform(0.9, 1.1) for _ in range(2000)]
    assert all(0.9 <= d < 1.1 for d in draws)
    # Each tenth of the range gets some draws (2000 draws: a tenth missing has odds of 1e-91).
    assert {int((d - 0.9) / 0.02) for d in draws} == set(range(10))
    assert Jitter().uniform(5.0, 5.0) == 5.0


def test_the_scheduler_draws_from_it_by_default(tmp_path):
    from edgeddns.config import load
    from edgeddns.scheduler import Scheduler
    from tests.conftest import hosts_config

    cfg = load(hosts_config(tmp_path))
    assert isinstance(Scheduler(cfg).rng, Jitter)
