"""The update engine: event in, results out.

For each record: detect the address, compare with the saved state, and only
then ask the provider. A check where nothing changed makes no provider call;
a record already right at the provider gets no write. Transient failures are
retried a bounded number of times with jittered back-off; a refused timestamp
gets one resync-and-retry through the clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from edgeddns.errors import (
    AddressError,
    ClockSkewError,
    EdgeError,
    InterfaceDownError,
    NotFoundError,
    NotPublicError,
    ProviderError,
)
from edgeddns.lazylog import LazyLogger
from edgeddns.result import FAILED, SKIPPED, UNCHANGED, UPDATED, Result

log = LazyLogger("edgeddns")  # logging is imported only when a line is due
if TYPE_CHECKING:
    import random

    from edgeddns.clock import Clock
    from edgeddns.config import Config, ProviderConfig, RecordConfig
    from edgeddns.http import HttpClient
    from edgeddns.ipsource import Detection, Detector
    from edgeddns.providers.base import Provider
    from edgeddns.state import StateStore


@dataclass
class UpdateRequest:
    """What one engine run is asked to do, and why."""

    records: Optional[List[str]] = None  # names to update; None = all
    force: bool = False
    trigger: str = "cli"
    id: Optional[str] = None
    addresses: Dict[int, str] = field(default_factory=dict)  # family -> address from the event
    interfaces: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # netifd status per interface (ubus)
    dry_run: bool = False
    # Drift repair: providers that can read records read the live record and rewrite it if it
    # drifted from what we published, even when local state says nothing changed.
    verify: bool = False
    # Write-only providers (dyndns2, webhook) re-send the current address (hosts expire unused).
    keepalive: bool = False


@dataclass
class RetryPolicy:
    """How often and how long a transient failure is retried within one run."""

    attempts: int = 3
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, rng: "random.Random", retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        # "Full jitter": spreads a fleet's retries instead of synchronising them.
        return rng.uniform(0, min(self.cap, self.base * (2 ** attempt)))


def default_http_factory(clock: Clock) -> Callable[[ProviderConfig], HttpClient]:
    def make(pc: ProviderConfig) -> HttpClient:
        from edgeddns.http import HttpClient

        return HttpClient(clock=clock, ca_file=pc.ca_file, timeout=pc.timeout)

    return make


class Engine:
    def __init__(self, config: Config, clock: Clock, state: StateStore, *,
                 detector: Optional[Detector] = None,
                 http_factory: Optional[Callable[[ProviderConfig], HttpClient]] = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Optional["random.Random"] = None,
                 retry: Optional[RetryPolicy] = None):
        from edgeddns.ipsource import Detector

        self.config = config
        self.clock = clock
        self.state = state
        self.detector = detector or Detector(clock=clock)
        self.http_factory = http_factory or default_http_factory(clock)
        self.monotonic = monotonic
        self.sleep = sleep
        self._rng = rng
        self.retry = retry or RetryPolicy()
        self._providers: Dict[str, Provider] = {}
        self._fingerprints: Dict[str, str] = {}

    def provider(self, name: str) -> Provider:
        p = self._providers.get(name)
        if p is None:
            from edgeddns.providers import provider_class
            from edgeddns.providers.base import ProviderContext

            pc = self.config.providers[name]
            ctx = ProviderContext(config=pc, clock=self.clock, http_factory=self.http_factory,
                                  state_dir=self.config.agent.state_dir, monotonic=self.monotonic)
            p = provider_class(pc.type)(ctx)
            # Signing time is per host: a host that refused our timestamp is signed for with its own clock.
            for_host = getattr(self.clock, "for_host", None)
            if for_host is not None:
                ctx.clock = for_host(p.host)
            self._providers[name] = p
        return p

    def close(self) -> None:
        for p in self._providers.values():
            p.close()
        self._providers.clear()

    def select(self, names: Optional[List[str]]) -> List[RecordConfig]:
        if names is None:
            return list(self.config.records)
        # A name selects every (type, provider) pair of it; a key "name/type/provider" exactly one.
        wanted = {n.rstrip(".").lower() if "/" not in n else n for n in names}
        return [r for r in self.config.records if r.name in wanted or state_key(r) in wanted]

    def run(self, req: UpdateRequest) -> List[Result]:
        detections: Dict[Any, Any] = {("netifd", name): status for name, status in req.interfaces.items()}
        results = []
        try:
            for rec in self.select(req.records):
                results.append(self._one(rec, req, detections))
        finally:
            self.release_sessions()
        return results

    def release_sessions(self) -> None:
        """Close every provider's HTTP session: an idle daemon keeps no pool, socket or TLS context
        between runs (minutes apart); the next run builds them again."""
        for p in self._providers.values():
            p.ctx.release_http()

    def _detect(self, rec: RecordConfig, req: UpdateRequest,
                cache: Dict[Tuple[Tuple[str, ...], int, bool], Detection]) -> Detection:
        from edgeddns.ipsource import detect_record

        given = req.addresses.get(rec.family)
        if given is not None:
            from edgeddns.address import checked

            given = checked(given, rec.family)  # commands check it already; results never carry a bad one
        return detect_record(self.detector, self.config, rec, given, req.trigger, cache)

    def fingerprint(self, rec: RecordConfig) -> str:
        """How ``rec`` is published (provider and record settings); see :mod:`edgeddns.fingerprint`."""
        key = state_key(rec)
        fp = self._fingerprints.get(key)
        if fp is None:
            from edgeddns.fingerprint import fingerprint, provider_fingerprint

            pc = self.config.providers[rec.provider]
            part = self._fingerprints.get("provider:" + rec.provider)  # no record key has that form
            if part is None:
                part = self._fingerprints["provider:" + rec.provider] = provider_fingerprint(pc, self.state.salt)
            fp = fingerprint(pc, rec, self.state.salt, part)
            self._fingerprints[key] = fp
        return fp

    def _prev(self, rec: RecordConfig) -> Dict[str, Any]:
        return self.state.lookup(state_key(rec), legacy_key(rec), rec.provider)

    def _put(self, rec: RecordConfig, entry: Dict[str, Any]) -> None:
        self.state.put(state_key(rec), entry, legacy=legacy_key(rec))

    def _one(self, rec: RecordConfig, req: UpdateRequest, cache) -> Result:
        start = self.monotonic()
        prev = self._prev(rec)
        res = Result(record=rec.name, type=rec.type, provider=rec.provider, ip=None,
                     previous_ip=prev.get("ip"), status=FAILED, trigger=req.trigger, id=req.id)
        try:
            det = self._detect(rec, req, cache)
            if det.address is None:
                if det.down and not det.refused:
                    raise InterfaceDownError(det.down_reason())
                if det.refused:
                    raise NotPublicError(det.reason())
                raise AddressError(det.reason())
            res.ip, res.source = det.address, det.source
            if det.selection:
                res.extra["selection"] = det.selection
            fp = self.fingerprint(rec)
            # An entry from before fingerprints (no "fp") is trusted as published with today's settings.
            same_settings = prev.get("fp", fp) == fp
            known = (prev.get("ip") == det.address and prev.get("provider") == rec.provider
                     and prev.get("ok", False))
            if known and not same_settings:
                res.extra["settings_changed"] = True
            if known and same_settings and not req.force:
                res.status = UNCHANGED
                if "fp" not in prev and not req.dry_run:
                    self._put(rec, {**prev, "fp": fp})  # migrate the entry, without a provider call
                if (req.verify or req.keepalive) and not req.dry_run:
                    self._check_live(rec, req, det.address, res)
            elif req.dry_run:
                res.status = "would_update"
            else:
                retrying = bool(prev) and not prev.get("ok", False)
                res.status, notes = self._apply(rec, det.address, prev.get("ip"), retrying=retrying)
                res.extra.update(notes)
                self._save(rec, det.address, res)
        except (NotPublicError, InterfaceDownError) as e:
            # Not failures: nothing to retry until the address or the interface comes back.
            res.status, res.error = SKIPPED, e.as_dict()
        except EdgeError as e:
            res.status, res.error = FAILED, e.as_dict()
            if isinstance(e, NotFoundError) and rec.provider in self._providers:
                # A zone answer may be what is stale: the next run asks again.
                self._providers[rec.provider].forget_zones()
            if isinstance(e, ProviderError) and not req.dry_run:
                self._mark_failed(rec)
        except Exception as e:  # a bug must cost one record, not the agent
            res.status = FAILED
            res.error = {"code": "internal", "message": f"{e.__class__.__name__} (a bug; please report)"}
        # The clock this record's requests were signed with (its host's own, after a refused timestamp).
        signer = getattr(getattr(self._providers.get(rec.provider), "ctx", None), "clock", None) or self.clock
        res.clock = signer.info().as_dict()
        res.ts = self.clock.now()
        res.duration_ms = (self.monotonic() - start) * 1000.0
        return res

    def _check_live(self, rec: RecordConfig, req: UpdateRequest, address: str, res: Result) -> None:
        """Verify (readable providers) or keep alive (write-only ones) a record state calls published."""
        provider = self.provider(rec.provider)
        if provider.WRITE_ONLY:
            if not req.keepalive:
                return
            res.extra["keepalive"] = True
        elif not req.verify:
            return
        # ``ensure`` reads the live record (one read) and writes only if it differs.
        res.status, notes = self._apply(rec, address, address)
        res.extra.update(notes)
        if provider.WRITE_ONLY:
            self._save(rec, address, res)
        elif res.status == UPDATED:
            res.extra["repaired"] = True  # it had drifted: edited or deleted at the provider
            self._save(rec, address, res)
        else:
            res.extra["verified"] = True

    def _apply(self, rec: RecordConfig, address: str, previous: Optional[str] = None, *,
               retrying: bool = False) -> Tuple[str, Dict[str, object]]:
        provider = self.provider(rec.provider)
        notes: Dict[str, object] = {}
        # Only providers that ask for it get the last published address (webhook's {previous_ip})
        # or hear that the last attempt failed (hosts re-runs a failed reload_cmd), so every
        # other provider's ``ensure(record, value)`` signature stays as it is.
        kwargs: Dict[str, Any] = {"previous": previous} if getattr(provider, "WANTS_PREVIOUS", False) else {}
        if retrying and getattr(provider, "WANTS_RETRYING", False):
            kwargs["retrying"] = True
        if provider.SIGNED:
            # A provider whose time probe depends on the record (rfc2136 asks about the record's
            # own zone: servers sign answers only for zones they serve) offers probe_for(record).
            probe_for = getattr(provider, "probe_for", None)
            self.clock.ensure(probe=probe_for(rec) if probe_for else getattr(provider, "probe_time", None))
        from edgeddns.trace import ATTEMPT

        skew_retried = False
        attempt = 0
        while True:
            token = ATTEMPT.set(attempt + 1)  # for the HTTP layer's debug line
            try:
                status = provider.ensure(rec, address, **kwargs)
                if attempt:
                    notes["attempts"] = attempt + 1
                return (UPDATED if status == UPDATED else UNCHANGED), notes
            except ClockSkewError as e:
                if skew_retried or not self.clock.on_skew(provider.host, e.server_time):
                    raise
                skew_retried = True
                info_for = getattr(self.clock, "info_for", None)
                used = info_for(provider.host) if info_for is not None else self.clock.info()
                notes["clock_retry"] = {"reason": e.message[:200], "clock": used.as_dict()}
            except ProviderError as e:
                attempt += 1
                if not e.retryable or attempt >= self.retry.attempts:
                    raise
                delay = self.retry.delay(attempt - 1, self.rng, e.retry_after)
                log.debug("%s %s via %s: [%s] on attempt %d; trying again in %.1f s", rec.name, rec.type,
                          rec.provider, e.code, attempt, delay)
                self.sleep(delay)
            finally:
                ATTEMPT.reset(token)

    @property
    def rng(self) -> "random.Random":
        # Made on first retry: importing random costs every no-change check otherwise.
        if self._rng is None:
            import random

            self._rng = random.Random()
        return self._rng

    def _save(self, rec: RecordConfig, address: str, res: Result) -> None:
        self._put(rec, {"ip": address, "provider": rec.provider, "ok": True, "fp": self.fingerprint(rec),
                        "ts": round(self.clock.now(), 3)})
        if self.state.error:
            res.extra["state_error"] = self.state.error

    def _mark_failed(self, rec: RecordConfig) -> None:
        # Keep the last published address (for previous_ip) and remember the failure, also
        # across restarts: the next run calls the provider even if the address is the same.
        prev = dict(self._prev(rec))
        prev.update({"ok": False, "provider": rec.provider})
        prev.setdefault("ip", None)
        self._put(rec, prev)


def state_key(rec: RecordConfig) -> str:
    """A record's state entry: one per name, type and provider (``RecordConfig.key``)."""
    return rec.key


def legacy_key(rec: RecordConfig) -> str:
    """The key a version 1 state file used (name/type)."""
    return f"{rec.name}/{rec.type}"


def summarize(results: List[Result]) -> int:
    """CLI exit status: 0 when nothing failed, 1 otherwise."""
    return 1 if any(r.status == FAILED for r in results) else 0


__all__ = ["Engine", "UpdateRequest", "RetryPolicy", "summarize", "UPDATED", "UNCHANGED", "SKIPPED", "FAILED"]
