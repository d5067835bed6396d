"""A NAS that sleeps: the agent's timers count the time suspended (CLOCK_BOOTTIME)."""

from __future__ import annotations

from edgeddns.clock import boottime
from tests.conftest import write_config


def polled_config(tmp_path):
    """One hosts record polled every 5 minutes."""
    from edgeddns.config import load

    return load(write_config(tmp_path, f"""
        [agent]
        node_id = "t"
        state_dir = "{tmp_path}/state"
        poll_interval = 5
        [ip]
        ipv4 = ["static:8.8.8.8"]
        [providers.lan]
        type = "hosts"
        path = "{tmp_path}/hosts"
        [[records]]
        name = "home.example.com"
        provider = "lan"
    """))


def test_agent_timers_run_on_boot_time_by_default(tmp_path):
    """CLOCK_MONOTONIC stops during suspend: a poll due "in 5 minutes" would come 5 awake minutes later."""
    from edgeddns.agent import Agent

    cfg = polled_config(tmp_path)
    agent = Agent(cfg)
    try:
        assert agent.monotonic is boottime and agent.scheduler.monotonic is boottime
    finally:
        agent.engine.close()


def test_a_suspend_makes_due_timers_fire_on_wake(tmp_path):
    """With boot time injected, the hour a box slept counts toward its poll."""
    from edgeddns.scheduler import Scheduler

    cfg = polled_config(tmp_path)
    boot = [100.0]
    s = Scheduler(cfg, monotonic=lambda: boot[0], settle=0.0)
    assert s.take(boot[0]) is None
    boot[0] += 3600.0  # asleep for an hour: boot time moved, monotonic would not have
    jobs = s.take(boot[0])
    assert jobs and jobs[0].trigger == "poll"
