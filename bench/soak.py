"""Soak: simulated days of a router's life through the real scheduler and agent, on an injected clock.

    python3 bench/soak.py [--hours 720] [--seed 1] [--records 30] [--json]

No threads, no sockets, no sleeping: a discrete-event loop drives the real
:class:`edgeddns.agent.Agent` (scheduler, plans, grouping, result bookkeeping,
publishers) with ``Agent.run_due`` and a simulated monotonic clock. The
engine is a stand-in that keeps what each provider holds and counts every
call it would make; its rules are the engine's (a check where nothing changed
makes no call; a failure is remembered and retried; verify reads the live
record and repairs it; keep-alive re-sends).

The world, with a fixed seed:
- the WAN address changes at random (mean every 90 min); interface records
  hear it as a netlink event at once, ``url:`` records (a NAS behind the ISP's
  NAT) hear nothing and rely on the default 5-minute source poll;
- each of three providers has outages (mean every 8 h, 1 to 45 min) during
  which every call fails as ``network`` after its 10 s timeout;
- command floods (mean every 6 h): 2,000 MQTT ``update`` commands spread
  over one second, with ids, one in ten forced, for random records (what
  the MQTT side admits of such a burst is its own business: issue 11);
- hand edits at a provider (mean every 12 h) that only verification sees.

Reported: address changes, how many reached every record before the next one
(and how many a later change superseded during an outage), the delay from
change to the last record published, whether the last address won everywhere
at the end, provider calls per change (writes, reads, failed attempts),
commands and the largest id list a result carried, and the process's peak
memory (tracemalloc peak and max RSS, with ``python -c pass`` of the same
interpreter as the ratio's base). Broker restarts are not simulated here (no
broker in the loop; tests/test_mqtt*.py cover outages with a real Mosquitto).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if "edgeddns" not in sys.modules and os.environ.get("SOAK_FROM_CHECKOUT"):
    sys.path.insert(0, ROOT)

PROVIDERS = ("cf", "ali", "noip")
WRITE_ONLY = {"noip"}  # dyndns2: cannot be read, so verify does nothing there (keep-alive re-sends)
CALL, TIMEOUT = 0.15, 10.0  # simulated seconds per provider call, and per failing one


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class World:
    """The truth: the WAN address, provider outages, what each provider holds."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.addr = self.fresh()
        self.down: Dict[str, float] = {p: -1.0 for p in PROVIDERS}  # outage ends at
        self.held: Dict[str, str] = {}  # record key -> value at the provider
        self.writes = self.reads = self.failed = 0
        self.changes: List[Tuple[float, str]] = [(0.0, self.addr)]

    def fresh(self) -> str:
        return f"{self.rng.randint(11, 99)}.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}." \
               f"{self.rng.randint(1, 254)}"


class SimEngine:
    """The engine's rules against the simulated world; one instance per config generation."""

    def __init__(self, config: Any, clock: Any, world: World, sim: Clock):
        self.config, self.world, self.sim = config, world, sim
        self.state: Dict[str, Dict[str, Any]] = {}

    def run(self, req: Any) -> List[Any]:
        from edgeddns.result import Result

        out = []
        keys = set(req.records) if req.records is not None else None
        for rec in self.config.records:
            if keys is not None and rec.key not in keys:
                continue
            addr = req.addresses.get(rec.family) or self.world.addr
            prev = self.state.get(rec.key, {})
            res = Result(rec.name, rec.type, rec.provider, addr, prev.get("ip"), "unchanged", trigger=req.trigger,
                         ts=self.sim.t)
            need = req.force or req.keepalive or not prev.get("ok") or prev.get("ip") != addr
            if req.verify and not need and rec.provider not in WRITE_ONLY:
                if self._call(rec.provider):
                    self.world.reads += 1
                    need = self.world.held.get(rec.key) != addr
                    res.extra["verified"] = True
                else:
                    res.status, res.error = "failed", {"code": "network", "message": "timed out"}
            if need and res.status != "failed":
                if self._call(rec.provider):
                    self.world.writes += 1
                    self.world.held[rec.key] = addr
                    self.state[rec.key] = {"ip": addr, "ok": True, "ts": self.sim.t}
                    res.status = "updated"
                else:
                    res.status, res.error = "failed", {"code": "network", "message": "timed out"}
            if res.status == "failed":
                self.state[rec.key] = {**prev, "ok": False}
            out.append(res)
        return out

    def _call(self, provider: str) -> bool:
        if self.sim.t < self.world.down[provider]:
            self.world.failed += 1
            self.sim.t += TIMEOUT
            return False
        self.sim.t += CALL
        return True

    def close(self) -> None:
        pass


class Recorder:
    """A publisher: every result, as MQTT would get it."""

    def __init__(self) -> None:
        self.results = 0
        self.updated = 0
        self.max_ids = 0
        self.statuses: Counter = Counter()

    def publish_result(self, r: Any) -> None:
        self.results += 1
        self.statuses[r.status] += 1
        self.updated += r.status == "updated"
        self.max_ids = max(self.max_ids, len(r.extra.get("ids", [])))

    def publish_state(self, state: Dict[str, Any]) -> None:
        pass


def config_text(d: str, records: int) -> str:
    parts = [f'[agent]\nnode_id = "soak"\nstate_dir = "{d}/state"\n[clock]\nmode = "system"\n'
             '[ip]\nipv4 = ["interface:wan"]\n']
    for p in PROVIDERS:
        if p == "noip":
            parts.append(f'[providers.{p}]\ntype = "dyndns2"\npreset = "noip"\nusername = "u"\n'
                         'password = "soak-secret"\nuser_agent = "edgeddns-soak me@example.com"\n')
        else:
            parts.append(f'[providers.{p}]\ntype = "hosts"\npath = "{d}/{p}.hosts"\n')
    for i in range(records):
        p = PROVIDERS[i % len(PROVIDERS)]
        nas = i % 5 == 4  # one in five reads url: (behind NAT: no event ever comes)
        name = f"r{i}.ddns.net" if p == "noip" else f"r{i}.example.com"
        parts.append(f'[[records]]\nname = "{name}"\nprovider = "{p}"\n'
                     + ('ip = ["url:https://ip.example.net/"]\n' if nas else ""))
    return "\n".join(parts)


def simulate(hours: float, seed: int, records: int, ablate: str = "") -> Dict[str, Any]:
    """``ablate``: "breaker" or "force_limit" turns that protection off, to measure what it saves."""
    from edgeddns import plan
    from edgeddns.agent import Agent
    from edgeddns.clock import SystemClock
    from edgeddns.config import load
    from edgeddns.events import Event

    if ablate == "breaker":
        plan.BREAKER_AFTER = 10 ** 9
    rng = random.Random(seed)
    sim = Clock()
    world = World(rng)
    tmp = tempfile.mkdtemp(prefix="soak-")
    path = os.path.join(tmp, "config.toml")
    with open(path, "w") as f:
        f.write(config_text(tmp, records))
    os.chmod(path, 0o600)
    cfg = load(path)
    if ablate == "force_limit":
        cfg.agent.force_interval = 0.0
    agent = Agent(cfg, clock=SystemClock(wall=lambda: 1.7e9 + sim.t),
                  engine_factory=lambda c, k: SimEngine(c, k, world, sim), monotonic=sim, rng=random.Random(seed + 1))
    agent.publishers = []  # no log lines: the recorder counts
    rec = Recorder()
    agent.add_publisher(rec)
    keys = [r.key for r in cfg.records]
    end = hours * 3600.0
    queue: List[Tuple[float, int, str]] = []
    n = 0

    def at(t: float, what: str) -> None:
        nonlocal n
        n += 1
        heapq.heappush(queue, (t, n, what))

    at(rng.expovariate(1 / 5400), "change")
    for p in PROVIDERS:
        at(rng.expovariate(1 / 28800), f"outage:{p}")
    at(rng.expovariate(1 / 21600), "flood")
    at(rng.expovariate(1 / 43200), "edit")
    agent.submit(Event("startup", settle=False))
    commands = floods = edits = 0
    published_at: Dict[int, float] = {}  # change index -> when the last record got it
    superseded = 0
    tracemalloc.start()
    wall0 = time.perf_counter()
    while True:
        # Who holds the newest address now? (checked after every step: cheap at this size)
        ci = len(world.changes) - 1
        if ci not in published_at and all(world.held.get(k) == world.addr for k in keys):
            published_at[ci] = sim.t
        nxt = queue[0][0] if queue else None
        due = agent.scheduler.next_deadline(sim.t)
        t = min(x for x in (nxt, due, end) if x is not None)
        if t >= end and (nxt is None or nxt >= end):
            break
        sim.t = max(sim.t, t)
        while queue and queue[0][0] <= sim.t:
            _, _, what = heapq.heappop(queue)
            if what == "change":
                if len(world.changes) - 1 not in published_at:
                    superseded += 1
                world.addr = world.fresh()
                world.changes.append((sim.t, world.addr))
                agent.submit(Event("netlink", iface="wan"))  # url: records read it too, if asked
                at(sim.t + rng.expovariate(1 / 5400), "change")
            elif what.startswith("outage:"):
                p = what.split(":", 1)[1]
                world.down[p] = sim.t + rng.uniform(60, 2700)
                at(world.down[p] + rng.expovariate(1 / 28800), what)
            elif what == "flood":  # 2,000 commands spread over one second
                floods += 1
                for i in range(2000):
                    at(sim.t + i / 2000, f"cmd:{floods}-{i}")
                at(sim.t + rng.expovariate(1 / 21600), "flood")
            elif what.startswith("cmd:"):
                r = rng.choice(cfg.records)
                agent.submit(Event("mqtt", records=[r.name], force=rng.random() < 0.1, id=what[4:]))
                commands += 1
            elif what == "edit":
                edits += 1
                world.held[rng.choice(keys)] = "192.0.2.66"  # someone "fixed" it by hand
                at(sim.t + rng.expovariate(1 / 43200), "edit")
        while agent.run_due():
            pass
    # Drain: outages end, nothing new happens; retries, polls and verification (for hand edits) run
    # until every record holds the last address, for at most two simulated days.
    for p in PROVIDERS:
        world.down[p] = -1.0
    agent.submit(Event("netlink", iface="wan"))
    drain_end = sim.t + 2 * 86400
    while sim.t < drain_end:
        if all(world.held.get(k) == world.addr for k in keys) and agent.scheduler.queued() == 0:
            break
        dl = agent.scheduler.next_deadline(sim.t)
        if dl is None:
            break
        sim.t = max(sim.t, dl)
        agent.run_due()
    drained_s = max(0.0, sim.t - end)
    wall = time.perf_counter() - wall0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ci = len(world.changes) - 1
    if ci not in published_at and all(world.held.get(k) == world.addr for k in keys):
        published_at[ci] = sim.t
    delays = sorted(published_at[i] - world.changes[i][0] for i in published_at if i > 0)
    changes = len(world.changes) - 1
    calls = world.writes + world.reads + world.failed

    def pct(q: float) -> Optional[float]:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else None

    return {
        "hours": hours, "seed": seed, "records": records, "ablated": ablate or None, "wall_s": round(wall, 2),
        "changes": changes, "published_everywhere": len([i for i in published_at if i > 0]),
        "superseded_unpublished": superseded,
        "last_address_wins": all(world.held.get(k) == world.addr for k in keys),
        "drain_s": round(drained_s, 1),
        "delay_s": {"median": pct(0.5), "p99": pct(0.99), "max": round(delays[-1], 1) if delays else None},
        "provider_calls": {"writes": world.writes, "reads": world.reads, "failed": world.failed,
                           "per_change": round(calls / max(changes, 1), 2),
                           "writes_per_change_per_record": round(world.writes / max(changes, 1) / records, 2)},
        "commands": commands, "floods": floods, "hand_edits": edits,
        "results": rec.results, "statuses": dict(rec.statuses), "max_ids_in_a_result": rec.max_ids,
        "events": agent.scheduler.summary(), "runs": agent.updates,
        "tracemalloc_peak_kib": round(peak / 1024),
    }


def peak_rss(argv: List[str]) -> Tuple[int, str]:
    """(max RSS in KiB from GNU time, stdout) of a fresh process: not inflated by a big parent."""
    with tempfile.NamedTemporaryFile("r") as f:
        out = subprocess.run(["/usr/bin/time", "-o", f.name, "-f", "%M", *argv], capture_output=True, text=True,
                             check=True).stdout
        return int(f.read().split()[-1]), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=720.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--records", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ablate", choices=("breaker", "force_limit"), default="",
                    help="turn one protection off to see what it saves")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(simulate(args.hours, args.seed, args.records, args.ablate)))
        return 0
    rss, out = peak_rss([sys.executable, os.path.abspath(__file__), "--child", "--hours", str(args.hours),
                         "--seed", str(args.seed), "--records", str(args.records)]
                        + (["--ablate", args.ablate] if args.ablate else []))
    rep = json.loads(out)
    floor, _ = peak_rss([sys.executable, "-c", "pass"])
    rep.update(maxrss_kib=rss, python_pass_maxrss_kib=floor, maxrss_ratio=round(rss / floor, 2),
               python=sys.version.split()[0])
    import edgeddns

    rep["edgeddns_from"] = os.path.dirname(edgeddns.__file__)
    print(json.dumps(rep, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in rep.items()))
    return 0 if rep["last_address_wins"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
