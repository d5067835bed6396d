"""Issue 10, the scheduling half: each defect as a test that failed on the old agent.

In-process tests drive a real :class:`Agent` with the real engine and the
hosts provider (or an engine stand-in that records requests); process tests
run a real ``edgeddns run``.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from edgeddns.agent import Agent
from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.events import Event
from edgeddns.result import Result
from tests.agentproc import AgentProc, read, wait_for
from tests.conftest import run_cli, write_config

CFG = """
[agent]
node_id = "n"
state_dir = "{d}/state"
{agent_extra}
[ip]
ipv4 = ["{ip}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "a.lan"
provider = "lan"
allow_private = true
[[records]]
name = "b.lan"
provider = "lan"
allow_private = true
"""


def _cfg(tmp_path, ip="static:10.0.0.1", agent_extra=""):
    return write_config(tmp_path, CFG.format(d=tmp_path, ip=ip, agent_extra=agent_extra))


class Recorder:
    """An engine stand-in: records every request; ``fail`` names records that fail."""

    def __init__(self, config, clock, fail=()):
        self.config, self.clock, self.fail = config, clock, set(fail)
        self.requests = []
        self.lock = threading.Lock()

    def run(self, req):
        with self.lock:
            self.requests.append(req)
        names = [k.split("/")[0] for k in req.records] if req.records else [r.name for r in self.config.records]
        out = []
        for n in names:
            bad = n in self.fail
            out.append(Result(n, "A", "lan", None if bad else "10.0.0.1", None, "failed" if bad else "updated",
                              error={"code": "network", "message": "down"} if bad else None,
                              trigger=req.trigger, id=req.id, ts=time.time()))
        return out

    def close(self):
        pass


def _agent(tmp_path, *, settle=0.0, fail=(), ip="static:10.0.0.1", agent_extra="", real=False):
    cfg = load(_cfg(tmp_path, ip=ip, agent_extra=agent_extra))
    engines = []
    if real:
        agent = Agent(cfg, clock=SystemClock(), settle=settle)
    else:
        def factory(c, clock):
            engines.append(Recorder(c, clock, fail))
            return engines[-1]
        agent = Agent(cfg, clock=SystemClock(), engine_factory=factory, settle=settle)
    return agent, engines


class Collect:
    def __init__(self):
        self.results = []

    def publish_result(self, r):
        self.results.append(r)

    def publish_state(self, s):
        pass


# ---- shims: the same question asked of the old agent and of the scheduler ------------------------

def _retry_pending(agent, key):
    sched = getattr(agent, "scheduler", None)
    if sched is None:
        return "retry" in agent._timers  # the old agent: one shared timer
    return sched.plan(key).retry_at is not None


def _poll_armed(agent, key):
    sched = getattr(agent, "scheduler", None)
    if sched is None:
        return "poll" in agent._timers
    return sched.plan(key).poll_at is not None


# ---- the tests -------------------------------------------------------------------------------------

def test_poll_fires_again_and_again(tmp_path):
    """Old: the poll timer was popped when it fired and never re-armed: one [poll] in 16 s."""
    a = AgentProc(_cfg(tmp_path, agent_extra="poll_interval = 0.01"))
    try:
        assert a.wait_log(lambda t: t.count("[poll]") >= 6, timeout=20), a.log
    finally:
        assert a.stop() == 0


def test_one_records_success_keeps_another_records_retry(tmp_path):
    """Old: record a failed, an update of b succeeded, and the one shared retry timer was dropped."""
    agent, engines = _agent(tmp_path, fail={"a.lan"})
    agent.start()
    try:
        assert agent.wait_idle()
        assert _retry_pending(agent, "a.lan/A/lan")
        agent.submit(Event("mqtt", records=["b.lan"], settle=False))
        assert agent.wait_idle()
        assert engines[0].requests[-1].records == ["b.lan/A/lan"]
        assert _retry_pending(agent, "a.lan/A/lan"), "b's success cancelled a's retry"
        assert not _retry_pending(agent, "b.lan/A/lan")
    finally:
        agent.stop()


def test_a_commands_address_never_reaches_another_record(tmp_path):
    """Old: {records:[a], ipv4:9.9.9.9} merged with a hotplug event published b as 9.9.9.9."""
    agent, _ = _agent(tmp_path, real=True, ip="static:1.1.1.1")
    # Queued before the worker starts, so they are certainly one batch.
    agent.submit(Event("mqtt", records=["a.lan"], addresses={4: "9.9.9.9"}, id="c1"))
    agent.submit(Event("hotplug", iface="wan"))
    out = Collect()
    agent.add_publisher(out)
    agent.start()
    try:
        assert agent.wait_idle()
        seen = [(r.record, r.ip) for r in out.results]
        assert ("a.lan", "9.9.9.9") in seen and ("b.lan", "1.1.1.1") in seen, seen
        assert ("b.lan", "9.9.9.9") not in seen, seen
        assert "1.1.1.1 b.lan" in read(tmp_path / "hosts")
    finally:
        agent.stop()


def test_settle_window_is_not_extended_by_later_events(tmp_path):
    """Old: each event cut the settle wait short (or restarted it): five quick events, several runs."""
    agent, engines = _agent(tmp_path, settle=3.0)
    agent.start()
    try:
        assert agent.wait_idle(20)
        n = len(engines[0].requests)
        for _ in range(5):
            agent.submit(Event("netlink", iface="wan"))
            time.sleep(0.01)
        assert agent.wait_idle(20)
        assert len(engines[0].requests) == n + 1, [r.trigger for r in engines[0].requests]
    finally:
        agent.stop()


def test_a_flood_of_commands_stays_bounded(tmp_path):
    """Old: 5000 queued commands were 5000 list entries, and one result carried all 5000 ids."""
    agent, _ = _agent(tmp_path)
    out = Collect()
    agent.add_publisher(out)
    for i in range(5000):
        agent.submit(Event("mqtt", records=["a.lan"], id=f"id-{i}"))
    sched = getattr(agent, "scheduler", None)
    queued = len(agent._pending) if sched is None else sched.queued()
    assert queued <= 2, queued  # one plan per record, not one entry per event
    agent.start()
    try:
        assert agent.wait_idle()
        r = next(r for r in out.results if r.record == "a.lan")
        assert len(r.extra.get("ids", [])) <= 32
        assert r.extra.get("ids_count") == 5000 and r.extra.get("coalesced") == 5000
        assert r.id == "id-4999"  # the latest command speaks for the run
    finally:
        agent.stop()


def test_forced_updates_are_limited_per_record(tmp_path):
    """Old: every {"force": true} became a forced provider call (200/s -> 20 calls/s)."""
    agent, engines = _agent(tmp_path)
    agent.start()
    try:
        assert agent.wait_idle()
        for _ in range(10):
            agent.submit(Event("mqtt", records=["a.lan"], force=True, settle=False))
            assert agent.wait_idle()
        forced = [r for r in engines[0].requests if r.force]
        assert len(forced) == 1, len(forced)
    finally:
        agent.stop()


def test_worker_survives_a_bug_in_taking_work(tmp_path):
    """Old: an exception in _take/_swap killed the worker thread silently; nothing ran again."""
    agent, engines = _agent(tmp_path)
    out = Collect()
    agent.add_publisher(out)
    sched = getattr(agent, "scheduler", None)
    target = agent if sched is None else sched
    name = "_take" if sched is None else "take"
    real = getattr(target, name)
    boom = {"n": 0}

    def take(*a, **kw):
        if boom["n"] == 0:
            boom["n"] += 1
            raise OverflowError("timeout value is too large")
        return real(*a, **kw)

    setattr(target, name, take)
    agent.start()
    try:
        assert wait_for(lambda: any((r.error or {}).get("code") == "internal" for r in out.results), 10), \
            "no internal result was published"
        agent.submit(Event("mqtt", records=["b.lan"], settle=False))
        assert wait_for(lambda: any(r.record == "b.lan" and r.status == "updated" for r in out.results), 10)
    finally:
        agent.stop(5)


def test_absurd_intervals_are_config_errors(tmp_path):
    """Old: poll_interval = inf passed validation and killed the worker with OverflowError."""
    for value in ("inf", "nan", "1e300"):
        cfg = _cfg(tmp_path, agent_extra=f"poll_interval = {value}")
        r = run_cli("check-config", "-c", cfg)
        assert r.returncode == 2, (value, r.stdout, r.stderr)
        assert "agent.poll_interval" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_records_with_url_or_cmd_sources_are_polled_by_default(tmp_path):
    """Old: with poll_interval = 0 nothing ever read a cmd:/url: source again after start."""
    (tmp_path / "ip").write_text("10.0.0.1\n")
    agent, _ = _agent(tmp_path, ip=f"cmd:cat {tmp_path}/ip")
    agent.start()
    try:
        assert agent.wait_idle()
        assert _poll_armed(agent, "a.lan/A/lan")
    finally:
        agent.stop()


def test_children_get_a_clean_signal_mask(tmp_path):
    """Old: cmd: children inherited the agent's blocked SIGHUP/SIGINT/SIGTERM (SigBlk 0x4003)."""
    (tmp_path / "ip").write_text("10.0.0.1\n")
    # The child is Python itself (no shell, which resets the mask for its own children).
    code = (f"import re; s = open('/proc/self/status').read(); "
            f"open('{tmp_path}/mask', 'w').write(''.join(re.findall('Sig(?:Blk|Ign):.*\\\\n', s))); "
            f"print(open('{tmp_path}/ip').read())")
    src = f'cmd:{sys.executable} -c \\"{code}\\"'
    a = AgentProc(_cfg(tmp_path, ip=src))
    try:
        assert wait_for(lambda: "SigBlk" in read(tmp_path / "mask")), a.log
    finally:
        assert a.stop() == 0
    mask = dict(line.split(":") for line in read(tmp_path / "mask").splitlines())
    assert int(mask["SigBlk"].strip(), 16) == 0, mask


def test_reload_rebuilds_the_log_level(tmp_path):
    """Old: reload swapped only the engine; the log level (and sources, clock, scrub list) stayed."""
    cfg = _cfg(tmp_path, agent_extra='log_level = "error"')
    a = AgentProc(cfg)
    try:
        assert wait_for(lambda: "10.0.0.1 a.lan" in read(tmp_path / "hosts")), a.log
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace('log_level = "error"', 'log_level = "info"').replace("10.0.0.1", "10.0.0.2"))
        a.proc.send_signal(1)
        assert a.wait_log(lambda t: "updated" in t and "10.0.0.2" in t), a.log
    finally:
        assert a.stop() == 0


def test_second_agent_on_one_state_dir_exits_at_once(tmp_path):
    """Old: the second agent only logged that it had no control socket, then updated too."""
    cfg = _cfg(tmp_path)
    first = AgentProc(cfg)
    try:
        assert wait_for(lambda: "10.0.0.1 a.lan" in read(tmp_path / "hosts")), first.log
        second = AgentProc(cfg)
        try:
            assert wait_for(lambda: second.proc.poll() is not None, 15), second.log
            assert second.proc.returncode == 1
            lines = [ln for ln in second.log.splitlines() if ln.strip()]
            assert len(lines) == 1 and f"pid {first.proc.pid}" in lines[0], second.log
        finally:
            second.stop()
    finally:
        assert first.stop() == 0


def test_one_shot_update_hands_over_to_the_running_agent(tmp_path):
    """Old: `edgeddns update` wrote the state file itself, behind the agent's back."""
    cfg = _cfg(tmp_path)
    a = AgentProc(cfg)
    try:
        assert wait_for(lambda: "10.0.0.1 a.lan" in read(tmp_path / "hosts")), a.log
        r = run_cli("update", "-c", cfg, "--record", "a.lan", "--force")
        assert r.returncode == 0, r.stderr
        assert "a.lan" in r.stdout and "b.lan" not in r.stdout
        assert a.wait_log(lambda t: "a.lan" in t and "[cli]" in t), a.log
        assert f"agent pid {a.proc.pid}" in r.stderr
        # --standalone still runs here, as asked.
        r = run_cli("update", "-c", cfg, "--standalone")
        assert r.returncode == 0 and "agent pid" not in r.stderr, r.stderr
    finally:
        assert a.stop() == 0
    assert os.path.exists(tmp_path / "state" / "state.json")


def test_a_worker_that_cannot_go_on_says_so_and_asks_to_stop(tmp_path):
    """Every take fails: internal results, then the fatal hook (cmd_run: offline, exit 1), not a silent thread."""
    agent, _ = _agent(tmp_path)
    out = Collect()
    agent.add_publisher(out)
    fatal = threading.Event()
    agent._on_fatal = fatal.set

    def broken(now):
        raise RuntimeError("scheduler bug")

    agent.scheduler.take = broken
    agent.start()
    try:
        assert fatal.wait(30) and agent.fatal and "RuntimeError" in agent.fatal
        internal = [r for r in out.results if (r.error or {}).get("code") == "internal"]
        assert {r.record for r in internal} == {"a.lan", "b.lan"}
    finally:
        agent.stop(5)


def test_reload_is_taken_or_refused_as_a_whole(tmp_path):
    path = _cfg(tmp_path)
    cfg = load(path)
    built = []

    def factory(c, clock):
        if len(built) == 1:
            raise OSError("cannot build")  # the second config's engine cannot be made
        built.append(Recorder(c, clock))
        return built[-1]

    agent = Agent(cfg, clock=SystemClock(), engine_factory=factory, loader=load, settle=0.0)
    agent.start()
    try:
        assert agent.wait_idle()
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace('name = "b.lan"', 'name = "c.lan"'))
        assert "cannot apply" in agent.reload()
        assert agent.config is cfg and [r.name for r in agent.config.records] == ["a.lan", "b.lan"]
        with open(path, "w") as f:
            f.write(text.replace(f'state_dir = "{tmp_path}/state"', f'state_dir = "{tmp_path}/other"'))
        assert "restart" in agent.reload()
        assert agent.config is cfg
    finally:
        agent.stop()


def test_reload_keeps_unchanged_sources_and_replaces_changed_ones(tmp_path):
    from edgeddns.sources import source_specs

    base = _cfg(tmp_path, agent_extra="")
    one = load(base)
    with open(base, "a") as f:
        f.write('\n[mqtt]\nhost = "127.0.0.1"\n')
    two = load(base)
    ids1 = [i for i, _ in source_specs(one)]
    ids2 = [i for i, _ in source_specs(two)]
    assert ids1 == [i for i, _ in source_specs(load(_cfg(tmp_path)))]  # same config, same sources
    assert [i for i in ids2 if i[0] == "mqtt"] and not [i for i in ids1 if i[0] == "mqtt"]
    assert set(ids1) <= set(ids2)  # the control socket is kept


def test_handed_over_update_keeps_the_exit_codes(tmp_path):
    """A failing record exits 1 through the agent as it would in-process; an unknown record is still 2."""
    cfg = write_config(tmp_path, CFG.format(d=tmp_path, ip="static:10.0.0.1", agent_extra="")
                       + '[[records]]\nname = "bad.lan"\nprovider = "lan"\nip = ["cmd:false"]\n')
    a = AgentProc(cfg)
    try:
        assert wait_for(lambda: "10.0.0.1 a.lan" in read(tmp_path / "hosts")), a.log
        r = run_cli("update", "-c", cfg, "--record", "bad.lan")
        assert r.returncode == 1 and "agent pid" in r.stderr and "failed" in r.stdout, (r.stdout, r.stderr)
        r = run_cli("update", "-c", cfg, "--record", "a.lan", "--json")
        assert r.returncode == 0 and '"record": "a.lan"' in r.stdout, (r.stdout, r.stderr)
        r = run_cli("update", "-c", cfg, "--record", "nope.lan")
        assert r.returncode == 2
    finally:
        assert a.stop() == 0


def test_reload_rebuilds_the_clock_from_the_new_settings(tmp_path):
    """Old: the clock kept the startup [clock] settings through any reload."""
    path = _cfg(tmp_path)
    with open(path) as f:
        text = f.read()
    agent = Agent(load(path), loader=load, settle=0.0)  # [clock] mode = "system" (tests' default)
    agent.start()
    try:
        assert agent.wait_idle()
        assert agent.clock.info().source == "system"
        with open(path, "w") as f:
            f.write(text.replace('mode = "system"', 'mode = "ntp"\nntp_servers = ["127.0.0.1:9"]\ntimeout = 0.2'))
        assert agent.reload() is None
        assert agent.wait_idle(30)
        assert type(agent.clock).__name__ != "SystemClock", agent.clock
        assert agent.config.clock.mode == "ntp"
    finally:
        agent.stop()


def test_an_update_waiting_for_its_results_is_told_when_the_agent_stops_first(tmp_path):
    """A hand-over must never look like a run with nothing to report (exit 0, no lines)."""
    from edgeddns.commands import Command

    agent, _ = _agent(tmp_path)  # never started: nothing runs
    answers = []
    agent.commands.handle(Command("update", records=["a.lan"]), answers.append, trigger="cli", wait=True)
    assert answers == []
    agent.stop(1)
    assert answers and answers[0]["status"] == "rejected" and answers[0]["error"]["code"] == "busy", answers
