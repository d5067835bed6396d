"""One scheduler for every timer: a plan per record, events folded in as they come.

Sources call :meth:`Scheduler.submit` from any thread. An event never queues
as such: it is folded into the plans of the records it names (a check, a
forced write, an address for that record's family, its command id), so a
flood of events costs memory per record, not per event. The worker asks
:meth:`next_batch` for work and reports back with :meth:`complete`; the plan
then re-arms its own timers (retry, poll, verification, keepalive).

Time is an injected monotonic callable (``edgeddns.clock`` offers one that
counts suspend); randomness is injected too (``uniform()`` of a seeded
``random.Random`` in tests, of :class:`~edgeddns.jitter.Jitter` by default). Blocking waits
are capped, so a clock that jumps forward (resume from suspend) is noticed
within ``MAX_WAIT`` even though ``threading`` waits on CLOCK_MONOTONIC.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from edgeddns.jitter import Jitter
from edgeddns.plan import (
    NO_RETRY,
    PROVIDER_TROUBLE,
    SLOW_RETRY,
    Backoff,
    Breaker,
    Intervals,
    Job,
    RecordPlan,
    Waiter,
)

if TYPE_CHECKING:
    import random

    from edgeddns.config import Config
    from edgeddns.events import Event
    from edgeddns.result import Result

log = logging.getLogger("edgeddns")

SETTLE = 0.005  # seconds: the rest of one burst (netlink sends a change as several messages)
MAX_DEFERRED = 64  # delayed events waiting at once (a flood of spread commands is refused beyond)
MAX_WAIT = 300.0  # seconds: the longest the worker sleeps without looking at the clock again
READY = Tuple[Waiter, List["Result"]]


class Scheduler:
    def __init__(self, config: "Config", *, monotonic: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None, settle: float = SETTLE, backoff: Optional[Backoff] = None,
                 last_published: Optional[Callable[[str], Optional[float]]] = None,
                 wall: Callable[[], float] = time.time):
        self.monotonic = monotonic
        self.rng = rng or Jitter()
        self.settle = settle
        self.backoff = backoff or Backoff()
        self.last_published = last_published or (lambda key: None)
        self.wall = wall
        self.plans: Dict[str, RecordPlan] = {}
        self.breakers: Dict[str, Breaker] = {}
        self.events = 0  # events submitted
        self.coalesced = 0  # events folded into a record that already had something pending
        self._cond = threading.Condition(threading.RLock())
        self._window: Optional[float] = None  # end of the settle window, once the first event opened it
        self._running = False
        self._stopped = False
        self._deferred: List[Tuple[float, "Event"]] = []  # (monotonic due time, event) for delayed events
        self.configure(config)

    # ---- configuration ----------------------------------------------------------------------
    def configure(self, config: "Config") -> None:
        """Plans for the config's records; kept plans keep their memory, changed periods re-arm."""
        late: List[READY] = []
        with self._cond:
            now = self.monotonic()
            plans: Dict[str, RecordPlan] = {}
            for rec in config.records:
                iv = Intervals.of(config, rec)
                old = self.plans.get(rec.key)
                if old is not None and old.provider == rec.provider:
                    p, before = old, old.intervals
                    p.intervals = iv
                else:
                    p, before = RecordPlan(rec.key, rec.name, rec.family, rec.provider, iv), None
                    if self.plans:  # new or moved to another provider by a reload: publish it now
                        p.due, p.trigger = True, "reload"
                        self._window = now
                self._arm(p, before, now)
                plans[rec.key] = p
            for key, p in self.plans.items():
                if key not in plans:  # removed: whoever waits for it gets nothing more
                    late.extend(self._release(p.waiters, None))
            self.plans = plans
            self.breakers = {name: self.breakers.get(name, Breaker()) for name in config.providers}
            self._cond.notify_all()
        _call(late)

    def _arm(self, p: RecordPlan, before: Optional[Intervals], now: float) -> None:
        iv = p.intervals
        if before is None or before.poll != iv.poll:
            p.poll_at = now + iv.poll if iv.poll else None
        if before is None or before.verify != iv.verify:
            p.verify_at = now + iv.verify * self.rng.uniform(0.9, 1.1) if iv.verify else None
        if before is None or before.keepalive != iv.keepalive:
            p.keepalive_at = None
            if iv.keepalive:
                ts = self.last_published(p.key)
                age = max(0.0, self.wall() - ts) if ts is not None else 0.0
                p.keepalive_at = now + max(0.0, iv.keepalive - age)

    # ---- event side -------------------------------------------------------------------------
    def submit(self, event: "Event") -> bool:
        """Fold an event into the plans it names; never blocks for long, never grows per event.

        An event with a ``delay`` waits (bounded: MAX_DEFERRED) and is folded in when it is due.
        """
        with self._cond:
            if self._stopped:
                return False
            now = self.monotonic()
            if event.delay > 0:
                if len(self._deferred) >= MAX_DEFERRED:
                    return False
                self._deferred.append((now + event.delay, replace(event, delay=0.0)))
                self._cond.notify_all()
                return True
            late = self._fold(event, now)
        _call(late)
        return True

    def _fold(self, event: "Event", now: float) -> List[READY]:
        late: List[READY] = []
        with self._cond:
            if event.records is None:
                plans = list(self.plans.values())
            else:
                names = {n.rstrip(".").lower() for n in event.records}
                plans = [p for p in self.plans.values() if p.name in names]
            self.events += 1
            if any(p.due for p in plans):
                self.coalesced += 1
            waiter = Waiter(event.done, len(plans)) if event.done is not None else None
            for p in plans:
                p.due = True
                p.trigger = event.trigger
                p.force |= event.force
                addr = event.addresses.get(p.family)
                if addr is not None:
                    p.address = addr
                p.interfaces.update(event.interfaces)  # later notifications win
                if event.id is not None:
                    p.ids.append(event.id)
                    p.id_count += 1
                p.events += 1
                if waiter is not None:
                    p.waiters.append(waiter)
            if waiter is not None and not plans:
                late.append((waiter, []))
            if plans:
                end = now + self.settle if event.settle else now
                self._window = end if self._window is None else min(self._window, end)
                self._cond.notify_all()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("event %s%s: %s due%s", event.trigger, f" {event.iface}" if event.iface else "",
                          ", ".join(p.key for p in plans) or "no record",
                          f", settling {self.settle * 1000:.0f} ms" if plans and event.settle else "")
        return late

    def _release_deferred(self, now: float) -> None:
        """Fold in the delayed events that are due (on the worker thread)."""
        due = [e for t, e in self._deferred if t <= now]
        if not due:
            return
        self._deferred = [(t, e) for t, e in self._deferred if t > now]
        wall = self.wall()
        for e in due:
            if e.expires is not None and wall > e.expires:
                # Its "expires" passed while it waited for its turn in the spread: stale, not run.
                log.info("a delayed %s event expired before its turn; dropped", e.trigger)
                _call([(Waiter(e.done, 0), [])] if e.done is not None else [])
                continue
            _call(self._fold(e, now))

    def stop(self) -> None:
        late: List[READY] = []
        with self._cond:
            self._stopped = True
            for p in self.plans.values():
                late.extend(self._release(p.waiters, None))
                p.waiters = []
            # Delayed events never run now; whoever waits for one gets no results.
            late.extend((Waiter(e.done, 0), []) for _, e in self._deferred if e.done is not None)
            self._deferred = []
            self._cond.notify_all()
        _call(late)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ---- worker side ------------------------------------------------------------------------
    def next_batch(self) -> Optional[List[Job]]:
        """Block until something is due; None once stopped."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                now = self.monotonic()
                jobs = self.take(now)
                if jobs:
                    return jobs
                deadline = self.next_deadline(now)
                wait = MAX_WAIT if deadline is None else min(MAX_WAIT, max(0.0, deadline - now))
                self._cond.wait(wait)

    def take(self, now: float) -> Optional[List[Job]]:
        """The jobs due at ``now`` (timers fire here), or None."""
        with self._cond:
            self._release_deferred(now)
            for p in self.plans.values():
                self._fire(p, now)
            if self._window is not None and now < self._window:
                return None
            jobs: List[Job] = []
            held = False
            for p in self.plans.values():
                if not p.due or p.running:
                    continue
                br = self.breakers.setdefault(p.provider, Breaker())
                if not br.allows(p.key, now):
                    held = True
                    continue
                if br.open_until is not None:
                    br.probing = p.key  # half open: this record finds out for the others
                jobs.append(self._job(p, now))
            self._window = None
            if not jobs:
                return None
            self._running = True
            if held:
                log.debug("holding records of a failing provider until its breaker closes")
            if log.isEnabledFor(logging.DEBUG):
                log.debug("run: %s", "; ".join(
                    f"{j.key} ({j.trigger}{', forced' if j.force else ''}"
                    f"{', force limited' if j.force_limited else ''}{', verify' if j.verify else ''}"
                    f"{f', {j.events} events merged' if j.events > 1 else ''})" for j in jobs))
            return jobs

    def _fire(self, p: RecordPlan, now: float) -> None:
        fired = False
        if p.retry_at is not None and p.retry_at <= now:
            p.retry_at, p.trigger, fired = None, "retry", True
        if p.poll_at is not None and p.poll_at <= now:
            p.poll_at, p.trigger, fired = None, "poll", True
        if p.verify_at is not None and p.verify_at <= now:
            p.verify_at, p.verify, p.trigger, fired = None, True, "verify", True
        if p.keepalive_at is not None and p.keepalive_at <= now:
            p.keepalive_at, p.keepalive, p.trigger, fired = None, True, "keepalive", True
        if fired:
            p.due = True
            self._window = now if self._window is None else min(self._window, now)
            log.debug("timer: %s check for %s", p.trigger, p.key)

    def _job(self, p: RecordPlan, now: float) -> Job:
        job = Job(key=p.key, name=p.name, provider=p.provider, trigger=p.trigger or "check", force=p.force,
                  verify=p.verify, keepalive=p.keepalive, address=p.address, family=p.family, ids=list(p.ids),
                  id_count=p.id_count, events=p.events, waiters=p.waiters, interfaces=p.interfaces)
        if job.force and not job.keepalive:
            limit = p.intervals.force
            if p.last_forced is not None and limit > 0 and now - p.last_forced < limit:
                job.force, job.force_limited = False, True
            else:
                p.last_forced = now
        p.clear_pending()
        p.running = True
        return job

    def next_deadline(self, now: float) -> Optional[float]:
        with self._cond:
            times: List[float] = [t for t, _ in self._deferred]
            due_providers = set()
            for p in self.plans.values():
                times.extend(p.timers())
                if p.due and not p.running:
                    due_providers.add(p.provider)
            for name in due_providers:
                br = self.breakers.get(name)
                if br is not None and br.open_until is not None and br.open_until > now:
                    times.append(br.open_until)  # held until the breaker half-opens
                else:
                    times.append(now if self._window is None else self._window)
            return min(times, default=None)

    def complete(self, jobs: List[Job], results: List["Result"]) -> List[READY]:
        """Learn from a run's results; returns waiters now complete (call them outside any lock)."""
        from edgeddns.result import FAILED

        ready: List[READY] = []
        with self._cond:
            now = self.monotonic()
            mine = {j.key: j for j in jobs}
            by_key: Dict[str, "Result"] = {}
            verdicts: Dict[str, bool] = {}
            for r in results:
                key = f"{r.record}/{r.type}/{r.provider}"  # RecordConfig.key
                by_key[key] = r
                job = mine.get(key)
                if job is not None:
                    job.annotate(r)
                p = self.plans.get(key)
                if p is not None:
                    self._learn(p, r, job, now, FAILED, verdicts)
            # Per provider, one verdict per run: any sign of trouble opens its breaker, else a success closes it.
            for name, ok in verdicts.items():
                self.breakers.setdefault(name, Breaker()).record(ok, not ok, now, self.rng)
            for job in jobs:
                p = self.plans.get(job.key)
                if p is not None:
                    p.running = False
                br = self.breakers.get(job.provider)
                if br is not None and br.probing == job.key:
                    br.probing = None  # also when the record is gone or gave no result: never wedge its provider
                ready.extend(self._release(job.waiters, by_key.get(job.key)))
            self._running = False
            self._cond.notify_all()
        return ready

    def _learn(self, p: RecordPlan, r: "Result", job: Optional[Job], now: float, failed: str,
               verdicts: Dict[str, bool]) -> None:
        code = (r.error or {}).get("code")
        br = self.breakers.setdefault(p.provider, Breaker())
        iv = p.intervals
        if r.status == failed:
            p.failures += 1
            if code in NO_RETRY:
                p.retry_at = None
            else:
                delay = self.backoff.delay(99 if code in SLOW_RETRY else p.failures, self.rng)
                p.retry_at = now + delay
                if job is not None:  # the retry carries what this run was for
                    p.verify |= job.verify
                    p.keepalive |= job.keepalive
                    if job.address is not None and p.address is None:
                        p.address = job.address
            if code in PROVIDER_TROUBLE:
                verdicts[p.provider] = False
        else:
            p.failures, p.retry_at = 0, None
            if r.status != "skipped":
                verdicts.setdefault(p.provider, True)
        if br.probing == p.key:
            br.probing = None
        if iv.poll:
            p.poll_at = now + iv.poll  # any check counts as the poll
        if iv.verify and (p.verify_at is None or (job is not None and job.verify)):
            p.verify_at = now + iv.verify * self.rng.uniform(0.9, 1.1)
        if iv.keepalive and r.status == "updated":
            p.keepalive_at = now + iv.keepalive

    def _release(self, waiters: List[Waiter], result: Optional["Result"]) -> List[READY]:
        ready: List[READY] = []
        for w in waiters:
            if result is not None:
                w.results.append(result)
            w.left -= 1
            if w.left <= 0:
                ready.append((w, w.results))
        return ready

    # ---- questions --------------------------------------------------------------------------
    def plan(self, key: str) -> RecordPlan:
        with self._cond:
            return self.plans[key]

    def queued(self) -> int:
        """Records with something pending (the bound on queued work)."""
        with self._cond:
            return sum(1 for p in self.plans.values() if p.due)

    def idle(self) -> bool:
        with self._cond:
            return not self._running and not any(p.due for p in self.plans.values())

    def wait_idle(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not self.idle():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def timers(self) -> Dict[str, Dict[str, float]]:
        """Per record key, seconds until each armed timer (retry, poll, verify, keepalive): for status."""
        with self._cond:
            now = self.monotonic()
            return {key: {name: max(0.0, at - now) for name, at in (
                ("retry", p.retry_at), ("poll", p.poll_at), ("verify", p.verify_at),
                ("keepalive", p.keepalive_at)) if at is not None} for key, p in self.plans.items()}

    def summary(self) -> Dict[str, int]:
        with self._cond:
            return {"events": self.events, "coalesced": self.coalesced,
                    "pending": sum(1 for p in self.plans.values() if p.due),
                    "retrying": sum(1 for p in self.plans.values() if p.retry_at is not None)}


def _call(ready: List[READY]) -> None:
    for w, results in ready:
        try:
            w.done(results)
        except Exception:
            log.exception("a result callback failed")
