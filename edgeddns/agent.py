"""The long-running agent: events in, one worker, results out to publishers.

Event sources (MQTT commands, the local trigger socket, kernel address events,
the safety-net poll) call :meth:`Agent.submit` from any thread; it never
blocks. One worker thread applies updates in order, so two updates of one
record never overlap, and events that arrive while it is busy, or within a
short settle time, are merged into one run: ten WAN flaps in a second cost one
update per record. Publishers (the log, MQTT) receive every result.

The main thread only waits for signals (``sigwait``), so an idle agent makes
no wake-ups at all.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from edgeddns import __version__
from edgeddns.events import Event, Publisher, Source
from edgeddns.result import FAILED, Result, format_line, iso

if TYPE_CHECKING:
    from edgeddns.clock import Clock
    from edgeddns.config import Config
    from edgeddns.engine import Engine

log = logging.getLogger("edgeddns")

SETTLE = 0.005  # seconds to wait for the rest of one burst (netlink sends a change as several messages)
RETRY_FIRST, RETRY_MAX = 30.0, 1800.0  # back-off for records that failed


class LogPublisher:
    """Every result as one log line: what a user without MQTT watches."""

    def publish_result(self, result: Result) -> None:
        level = logging.WARNING if result.status == FAILED else logging.INFO
        log.log(level, "%s [%s]", format_line(result.as_dict()), result.trigger)

    def publish_state(self, state: Dict[str, Any]) -> None:
        pass


class Agent:
    def __init__(self, config: "Config", *, clock: Optional["Clock"] = None,
                 engine_factory: Optional[Callable[["Config", "Clock"], "Engine"]] = None,
                 loader: Optional[Callable[[str], "Config"]] = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None, settle: float = SETTLE):
        from edgeddns.clock import build_clock

        self.config = config
        self.clock = clock or build_clock(config.clock, config.agent.state_dir)
        self._engine_factory = engine_factory or _default_engine
        self._loader = loader
        self.engine = self._engine_factory(config, self.clock)
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.settle = settle
        self.started = self.clock.now()
        self.publishers: List[Publisher] = [LogPublisher()]
        self.sources: List[Source] = []
        self.records: Dict[str, Dict[str, Any]] = {}  # last result per record, for state and status
        self.updates = 0  # runs completed, for status and benchmarks
        self._cond = threading.Condition()
        self._pending: List[Event] = []
        self._stop = False
        self._busy = False
        self._timers: Dict[str, float] = {}  # name -> monotonic deadline
        self._retry_delay = RETRY_FIRST
        self._worker: Optional[threading.Thread] = None
        self._next_config: Optional["Config"] = None
        self._schedule_poll()

    # ---- event side -------------------------------------------------------
    def submit(self, event: Event) -> None:
        """Queue an event; returns at once, from any thread."""
        with self._cond:
            if self._stop:
                return
            self._pending.append(event)
            self._cond.notify()

    def add_publisher(self, p: Publisher) -> None:
        self.publishers.append(p)

    def add_source(self, s: Source) -> None:
        self.sources.append(s)

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        for s in self.sources:
            s.start(self)
        self._worker = threading.Thread(target=self._work, name="edgeddns-worker", daemon=True)
        self._worker.start()
        self.submit(Event("startup"))

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the update in flight, then stop sources and publishers."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._worker is not None:
            self._worker.join(timeout)
        for s in reversed(self.sources):
            try:
                s.stop()
            except Exception:
                log.exception("stopping %s failed", type(s).__name__)
        self.engine.close()

    def reload(self) -> Optional[str]:
        """Re-read the config file; on any error keep the old one and say why."""
        from edgeddns.errors import ConfigError

        if self._loader is None:
            return "reload is not available"
        try:
            new = self._loader(self.config.path)
        except ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e.message)
            return e.message
        with self._cond:
            # Swapped under the lock; the worker picks it up before its next run.
            self._next_config = new
        log.info("config reloaded from %s", new.path)
        self.submit(Event("reload"))
        return None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is pending or running (for tests and benchmarks)."""
        end = self.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = end - self.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ---- worker ---------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(batch)
            except Exception:  # the worker must outlive any bug in one run
                log.exception("update run failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _take(self) -> Optional[List[Event]]:
        with self._cond:
            while True:
                if self._stop:
                    return None
                now = self.monotonic()
                due = [n for n, t in self._timers.items() if t <= now]
                for n in due:
                    del self._timers[n]
                    self._pending.append(Event(n))
                if self._pending:
                    break
                deadline = min(self._timers.values(), default=None)
                self._cond.wait(None if deadline is None else max(0.0, deadline - now))
            # Let the rest of a burst arrive, then take all of it.
            if self.settle > 0 and any(e.settle for e in self._pending):
                self._cond.wait(self.settle)
            batch, self._pending = self._pending, []
            self._busy = True
            new = self._next_config
            if new is not None:
                self._next_config = None
                self._swap(new)
            return batch

    def _swap(self, new: "Config") -> None:
        self.engine.close()
        self.config = new
        self.engine = self._engine_factory(new, self.clock)
        known = {r.key for r in new.records}
        self.records = {k: v for k, v in self.records.items() if k in known}
        self._schedule_poll()

    def _run(self, batch: List[Event]) -> None:
        from edgeddns.engine import UpdateRequest

        names: Optional[set] = set()
        for e in batch:
            if e.records is None:
                names = None
                break
            names.update(e.records)
        # The last event that names itself or carries addresses speaks for the batch.
        lead = next((e for e in reversed(batch) if e.id is not None), batch[-1])
        addresses: Dict[int, str] = {}
        interfaces: Dict[str, Dict[str, Any]] = {}
        for e in batch:
            addresses.update(e.addresses)
            interfaces.update(e.interfaces)  # later notifications win
        req = UpdateRequest(records=None if names is None else sorted(names), force=any(e.force for e in batch),
                            trigger=lead.trigger, id=lead.id, addresses=addresses, interfaces=interfaces)
        results = self.engine.run(req)
        ids = [e.id for e in batch if e.id is not None]
        if len(batch) > 1:
            for r in results:
                r.extra["coalesced"] = len(batch)
                if len(ids) > 1:  # every merged command can find its result
                    r.extra["ids"] = ids
        for r in results:
            key = f"{r.record}/{r.type}/{r.provider}"  # RecordConfig.key: one entry per name, type and provider
            self.records[key] = {
                "record": r.record, "type": r.type, "provider": r.provider, "ip": r.ip, "status": r.status,
                "error": r.error, "ts": iso(r.ts),
                **({"published_ip": self.records.get(key, {}).get("published_ip")}
                   if r.status in ("failed", "skipped") else {"published_ip": r.ip}),
            }
        self.updates += 1
        self._schedule_retry(results)
        for p in self.publishers:
            for r in results:
                self._safe(p.publish_result, r)
            self._safe(p.publish_state, self.state())
        for e in batch:
            if e.done is not None:
                mine = results if e.records is None else [r for r in results if r.record in e.records]
                self._safe(e.done, mine)

    @staticmethod
    def _safe(fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("publishing failed")

    def _schedule_retry(self, results: List[Result]) -> None:
        """Failed records are tried again later, with growing, jittered delays."""
        retry = any(r.status == FAILED and (r.error or {}).get("code") not in ("config", "auth") for r in results)
        with self._cond:
            if retry:
                delay = self._retry_delay * self.rng.uniform(0.8, 1.2)
                self._timers["retry"] = self.monotonic() + delay
                self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
                log.info("some records failed; retrying in %.0f s", delay)
            elif not any(r.status == FAILED for r in results):
                self._timers.pop("retry", None)
                self._retry_delay = RETRY_FIRST

    def _schedule_poll(self) -> None:
        minutes = self.config.agent.poll_interval
        if minutes > 0:
            self._timers["poll"] = self.monotonic() + minutes * 60.0
        else:
            self._timers.pop("poll", None)

    def state(self) -> Dict[str, Any]:
        """The summary published as retained state and answered to ``status``."""
        info = self.clock.info()
        return {
            "node_id": self.config.agent.node_id,
            "version": __version__,
            "started": iso(self.started),
            "records": list(self.records.values()),
            "clock": {**info.as_dict(), "trusted": self.clock.trusted},
            "updates": self.updates,
        }


def _default_engine(config: "Config", clock: "Clock") -> "Engine":
    from edgeddns.engine import Engine
    from edgeddns.state import StateStore

    state = StateStore.open(config.agent.state_dir)
    if state.error:
        log.warning(state.error)
    return Engine(config, clock, state)


def attach_sources(agent: Agent, config: "Config") -> None:
    """Plug in every optional event source and publisher the config asks for."""
    if config.mqtt is not None:
        from edgeddns.mqtt import MqttBridge

        bridge = MqttBridge(config)
        agent.add_source(bridge)
        agent.add_publisher(bridge)
    try:
        from edgeddns.control import ControlServer
    except ImportError:
        pass
    else:
        agent.add_source(ControlServer(config))
    from edgeddns.ubus import UbusSource

    if UbusSource.wanted(config):
        agent.add_source(UbusSource(config))
    try:
        from edgeddns.netevents import NetlinkSource
    except ImportError:
        pass
    else:
        if NetlinkSource.wanted(config):
            agent.add_source(NetlinkSource(config))


def cmd_run(args) -> int:
    from edgeddns.bootstrap import load_config, private_state_dir, setup_logging
    from edgeddns.config import load

    # A reload (SIGHUP) that comes while the config loads must not end the
    # process (its default action): held, and read as a reload once running.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    cfg = load_config(args)
    private_state_dir(cfg.agent.state_dir)
    setup_logging(args, cfg)
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    # Block the signals before any thread starts, so every thread inherits the
    # mask and only sigwait() below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    agent = Agent(cfg, loader=load)
    attach_sources(agent, cfg)
    agent.start()
    log.info("edgeddns %s running as %s (pid %d), %d records", __version__, cfg.agent.node_id, os.getpid(),
             len(cfg.records))
    try:
        while True:
            sig = signal.sigwait(sigs)
            if sig == signal.SIGHUP:
                agent.reload()
                continue
            log.info("stopping on %s", signal.Signals(sig).name)
            break
    finally:
        agent.stop()
    return 0
