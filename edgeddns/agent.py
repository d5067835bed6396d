"""The long-running agent: wires sources, the scheduler, the engine and publishers.

Event sources (MQTT commands, the local trigger socket, kernel address events)
call :meth:`Agent.submit` from any thread; the :class:`~edgeddns.scheduler.Scheduler`
folds each event into a plan per record and owns every timer (retries, polls,
verification, keepalive). One worker thread asks it for due work, runs the
engine, and hands results to the publishers (the log, MQTT). Commands from any
transport go through one :class:`~edgeddns.handler.CommandHandler`.

``edgeddns run`` (:mod:`edgeddns.daemon`) starts it; the sources a config
asks for come from :mod:`edgeddns.sources`. A reload builds everything the
config feeds (clock, engine, sources, logging) before taking any of it, so a
config is taken or refused as a whole.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from edgeddns import __version__
from edgeddns.clock import boottime
from edgeddns.events import Event, Publisher, Source
from edgeddns.jitter import Jitter
from edgeddns.result import FAILED, Result, format_line, iso
from edgeddns.scheduler import SETTLE, Scheduler

if TYPE_CHECKING:
    import random

    from edgeddns.clock import Clock
    from edgeddns.config import Config
    from edgeddns.engine import Engine
    from edgeddns.plan import Job

log = logging.getLogger("edgeddns")

MAX_STREAK = 10  # internal errors in a row, with no good run between, before the worker gives up


class LogPublisher:
    """Every result as one log line: what a user without MQTT watches."""

    def publish_result(self, result: Result) -> None:
        level = logging.WARNING if result.status == FAILED else logging.INFO
        log.log(level, "%s [%s]", format_line(result.as_dict()), result.trigger)

    def publish_state(self, state: Dict[str, Any]) -> None:
        pass


@dataclass
class _Generation:
    """Everything one config feeds, built before any of it is taken."""

    config: "Config"
    clock: "Clock"
    engine: "Engine"
    sources: List[Tuple[Any, Source]] = field(default_factory=list)  # (identity, source)


class Agent:
    def __init__(self, config: "Config", *, clock: Optional["Clock"] = None,
                 engine_factory: Optional[Callable[["Config", "Clock"], "Engine"]] = None,
                 loader: Optional[Callable[[str], "Config"]] = None,
                 monotonic: Callable[[], float] = boottime,
                 rng: Optional[random.Random] = None, settle: float = SETTLE,
                 on_config: Optional[Callable[["Config"], None]] = None,
                 on_fatal: Optional[Callable[[], None]] = None):
        from edgeddns.clock import build_clock
        from edgeddns.handler import CommandHandler

        self.config = config
        self.clock = clock or build_clock(config.clock, config.agent.state_dir)
        self._engine_factory = engine_factory or _default_engine
        self._loader = loader
        self._on_config = on_config
        self._on_fatal = on_fatal
        self.engine = self._engine_factory(config, self.clock)
        self.monotonic = monotonic
        self.rng = rng or Jitter()  # uniform() is all the agent draws: no random module in the daemon
        self.scheduler = Scheduler(config, monotonic=monotonic, rng=self.rng, settle=settle,
                                   last_published=self._last_published, wall=time.time)
        self.commands = CommandHandler(self, self.rng)
        self.started = self.clock.now()
        self.publishers: List[Publisher] = [LogPublisher()]
        self.sources: List[Tuple[Any, Source]] = []
        self.records: Dict[str, Dict[str, Any]] = {}  # last result per record, for state and status
        self.updates = 0  # runs completed, for status and benchmarks
        self.internal_errors = 0
        self.fatal: Optional[str] = None
        self._lock = threading.Lock()  # the next generation, handed from reload() to the worker
        self._next: Optional[_Generation] = None
        self._worker: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._started = False

    # ---- event side -------------------------------------------------------
    def submit(self, event: Event) -> bool:
        """Fold an event into the plans; returns at once, from any thread."""
        return self.scheduler.submit(event)

    def add_publisher(self, p: Publisher) -> None:
        self.publishers.append(p)

    def all_publishers(self) -> List[Publisher]:
        """The agent's own publishers, then every source that publishes too (the MQTT bridge)."""
        return self.publishers + [s for _, s in self.sources if hasattr(s, "publish_result")]  # type: ignore[misc]

    def add_source(self, s: Source, identity: Any = None) -> None:
        self.sources.append((identity if identity is not None else id(s), s))
        if self._started:
            s.start(self)

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self._started = True
        self._announce_polls(self.config)
        for _, s in self.sources:
            s.start(self)
        self._worker = threading.Thread(target=self._work, name="edgeddns-worker", daemon=True)
        self._worker.start()
        self.submit(Event("startup", settle=False))

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the update in flight, then stop sources and publishers."""
        self._stopping.set()
        self.scheduler.stop()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)
        for _, s in reversed(self.sources):
            try:
                s.stop()
            except Exception:
                log.exception("stopping %s failed", type(s).__name__)
        self.engine.close()

    def reload(self) -> Optional[str]:
        """Re-read the config file and rebuild what it feeds; on any error keep everything and say why."""
        from edgeddns.errors import ConfigError

        if self._loader is None:
            return "reload is not available"
        try:
            new = self._loader(self.config.path)
        except ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e.message)
            return e.message
        if new.agent.state_dir != self.config.agent.state_dir:
            msg = (f"{new.path}: agent.state_dir: cannot change while the agent runs "
                   f"(it holds the lock and the socket there); restart the agent")
            log.error("reload refused, keeping the running config: %s", msg)
            return msg
        try:
            gen = self._build(new)
        except Exception as e:
            log.debug("building the new config failed", exc_info=True)
            msg = f"{new.path}: cannot apply: {e.__class__.__name__}: {e}"
            log.error("reload refused, keeping the running config: %s", msg)
            return msg
        with self._lock:
            old = self._next
            self._next = gen  # the worker takes it between runs
        if old is not None:
            old.engine.close()
        if self._on_config is not None:
            self._on_config(new)  # log level and the secrets to scrub, at once
        self._swap_sources(gen)
        log.info("config reloaded from %s", new.path)
        self._announce_polls(new)
        self.submit(Event("reload", settle=False))
        return None

    def _build(self, new: "Config") -> _Generation:
        from edgeddns.clock import build_clock

        clock = self.clock
        if new.clock != self.config.clock:
            clock = build_clock(new.clock, new.agent.state_dir)
        engine = self._engine_factory(new, clock)
        try:
            kept = dict(self.sources)
            sources: List[Tuple[Any, Source]] = []
            from edgeddns.sources import source_specs

            for identity, make in source_specs(new):
                sources.append((identity, kept[identity] if identity in kept else make()))
        except Exception:
            engine.close()
            raise
        return _Generation(new, clock, engine, sources)

    def _swap_sources(self, gen: _Generation) -> None:
        keep = {id(s) for _, s in gen.sources}
        for _, s in self.sources:
            if id(s) not in keep:
                try:
                    s.stop()
                except Exception:
                    log.exception("stopping %s failed", type(s).__name__)
        before = {id(s) for _, s in self.sources}
        self.sources = list(gen.sources)
        for _, s in self.sources:
            if id(s) not in before:
                s.start(self)

    def _take_generation(self) -> None:
        """Between runs: the worker swaps in what reload() built."""
        with self._lock:
            gen, self._next = self._next, None
        if gen is None:
            return
        self.engine.close()
        self.config, self.clock, self.engine = gen.config, gen.clock, gen.engine
        self.scheduler.configure(gen.config)
        known = {r.key for r in gen.config.records}
        self.records = {k: v for k, v in self.records.items() if k in known}

    def _announce_polls(self, config: "Config") -> None:
        from edgeddns.plan import Intervals

        if config.agent.poll_interval:
            return
        blind = [r for r in config.records if Intervals.of(config, r).poll]
        if blind:
            log.info("%d of %d records read url:/cmd: sources that no event announces; checking them every %g min "
                     "([agent] source_poll_interval)", len(blind), len(config.records),
                     config.agent.source_poll_interval)
            log.debug("polled: %s", ", ".join(sorted(r.key for r in blind)))

    def run_due(self) -> bool:
        """Run what is due now on the calling thread, without the worker (simulations: bench/soak.py)."""
        jobs = self.scheduler.take(self.monotonic())
        if not jobs:
            return False
        self._take_generation()
        self._run(jobs)
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is pending or running (for tests and benchmarks)."""
        return self.scheduler.wait_idle(timeout)

    # ---- worker ---------------------------------------------------------------
    def _work(self) -> None:
        streak = 0
        while True:
            jobs: Optional[List["Job"]] = None
            try:
                jobs = self.scheduler.next_batch()
                if jobs is None:
                    return
                self._take_generation()
                self._run(jobs)
                streak = 0
            except Exception as e:  # the worker outlives any bug in one run
                streak += 1
                self._internal(jobs, e)
                if streak >= MAX_STREAK:
                    self._die(f"{streak} internal errors in a row, the last {e.__class__.__name__}: {e}")
                    return
                if jobs is None:  # the scheduler itself failed: do not spin
                    self._stopping.wait(min(0.05 * streak, 1.0))
            except BaseException as e:
                self._die(f"{e.__class__.__name__}")
                raise

    def _run(self, jobs: List["Job"]) -> None:
        from edgeddns.engine import UpdateRequest

        # Records that want the same thing share one engine run (selected by key: name/type/provider);
        # an address goes only to the record its event named.
        groups: Dict[Tuple[Any, ...], List["Job"]] = {}
        interfaces: Dict[str, Dict[str, Any]] = {}
        for j in jobs:
            interfaces.update(j.interfaces)  # netifd's status as notified: true for every record
            addresses = ((j.family, j.address),) if j.address is not None else ()
            groups.setdefault((j.force, j.verify, j.keepalive, addresses), []).append(j)
        results: List[Result] = []
        for (force, verify, keepalive, addresses), js in groups.items():
            req = UpdateRequest(records=sorted(j.key for j in js), force=force, trigger=js[0].trigger,
                                addresses=dict(addresses), interfaces=interfaces, verify=verify, keepalive=keepalive)
            results.extend(self.engine.run(req))
        self._finish(jobs, results)

    def _finish(self, jobs: List["Job"], results: List[Result]) -> None:
        ready = self.scheduler.complete(jobs, results)
        for r in results:
            key = f"{r.record}/{r.type}/{r.provider}"  # RecordConfig.key: one entry per name, type and provider
            published = r.ip if r.status not in (FAILED, "skipped") else self.records.get(key, {}).get("published_ip")
            # The last error stays after a later success, so status can say what went wrong and when.
            last_error = ({**r.error, "ts": iso(r.ts)} if r.error
                          else self.records.get(key, {}).get("last_error"))
            self.records[key] = {
                "record": r.record, "type": r.type, "provider": r.provider, "ip": r.ip, "status": r.status,
                "error": r.error, "ts": iso(r.ts), "published_ip": published, "last_error": last_error,
            }
        self.updates += 1
        for p in self.all_publishers():
            for r in results:
                self._safe(p.publish_result, r)
            self._safe(p.publish_state, self.state())
        for waiter, mine in ready:
            self._safe(waiter.done, mine)
        for j in jobs:  # after the results, so the log reads in order
            p = self.scheduler.plans.get(j.key)
            if p is not None and p.retry_at is not None and p.failures and not p.running:
                log.info("%s %s failed; retrying in %.0f s", j.name, j.key.split("/")[1],
                         max(0.0, p.retry_at - self.monotonic()))

    def _internal(self, jobs: Optional[List["Job"]], e: BaseException) -> None:
        """A bug: a traceback at debug level, an ``internal`` result for what it hit, and on."""
        self.internal_errors += 1
        log.error("internal error in the worker: %s: %s (a bug; please report it; -v shows the traceback)",
                  e.__class__.__name__, e)
        log.debug("the traceback", exc_info=e)
        err = {"code": "internal", "message": f"{e.__class__.__name__} in the agent (a bug; please report)"}
        try:
            keys = [(j.name, j.key.split("/")[1], j.provider, j.trigger) for j in jobs] if jobs else \
                [(r.name, r.type, r.provider, "internal") for r in self.config.records]
            results = [Result(record=n, type=t, provider=p, ip=None, previous_ip=None, status=FAILED, error=dict(err),
                              trigger=trig, ts=time.time()) for n, t, p, trig in keys]
            if jobs:
                self._finish(jobs, results)  # plans learn the failure: retry with back-off, waiters answered
            else:
                for pub in self.all_publishers():
                    for r in results:
                        self._safe(pub.publish_result, r)
        except Exception:
            log.debug("reporting the internal error failed too", exc_info=True)

    def _die(self, why: str) -> None:
        self.fatal = why
        log.error("the update worker cannot go on (%s); stopping so the service manager restarts edgeddns", why)
        if self._on_fatal is not None:
            self._on_fatal()

    @staticmethod
    def _safe(fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("publishing failed")

    def _last_published(self, key: str) -> Optional[float]:
        state = getattr(self.engine, "state", None)
        try:
            ts = state.get(key).get("ts") if state is not None else None
        except Exception:
            return None
        return float(ts) if isinstance(ts, (int, float)) else None

    def state(self) -> Dict[str, Any]:
        """The summary published as retained state and answered to ``status``."""
        info = self.clock.info()
        out = {
            "node_id": self.config.agent.node_id,
            "version": __version__,
            "started": iso(self.started),
            "records": self._record_states(),
            "clock": {**info.as_dict(), "trusted": self.clock.trusted},
            "updates": self.updates,
            "events": self.scheduler.summary(),
        }
        for _, s in self.sources:  # e.g. the MQTT connection
            status_info = getattr(s, "status_info", None)
            if callable(status_info):
                try:
                    out.update(status_info())
                except Exception:
                    log.exception("status of %s failed", type(s).__name__)
        return out

    def _record_states(self) -> List[Dict[str, Any]]:
        """Each record's last result and next timers; before its first check, what the state dir knows.

        Right after a start the first retained MQTT state would otherwise be ``"records": []`` and
        Home Assistant's sensors would go empty until the first run: a record published before is
        shown with its saved address and ``status: "saved"``.
        """
        timers = self.scheduler.timers()
        now = self.clock.now()
        state = getattr(self.engine, "state", None)
        out = []
        for rec in self.config.records:
            entry = self.records.get(rec.key)
            if entry is None:
                try:
                    saved = state.get(rec.key) if state is not None else {}
                except Exception:
                    saved = {}
                if not saved.get("ip"):
                    continue
                ts = saved.get("ts")
                entry = {"record": rec.name, "type": rec.type, "provider": rec.provider, "ip": saved["ip"],
                         "status": "saved", "error": None, "published_ip": saved["ip"],
                         "ts": iso(ts) if isinstance(ts, (int, float)) else None}
            nxt = timers.get(rec.key)
            out.append({**entry, "next": {k: iso(now + left) for k, left in nxt.items()}} if nxt else entry)
        return out


def _default_engine(config: "Config", clock: "Clock") -> "Engine":
    from edgeddns.engine import Engine
    from edgeddns.state import StateStore

    state = StateStore.open(config.agent.state_dir)
    if state.error:
        log.warning(state.error)
    return Engine(config, clock, state)
