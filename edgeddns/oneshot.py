"""``edgeddns update``: check every record once.

One writer per state dir: while an agent runs, the request is handed to it
over the control socket and its results are printed here (same lines, same
exit codes), so the state file never has two writers. Without an agent the
update runs in this process, holding the state dir's lock while it writes.
``--standalone`` runs here regardless; ``--dry-run`` writes nothing and
always runs here.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Dict, Optional

from edgeddns.bootstrap import EXIT_FAILED, EXIT_USAGE, load_config, private_state_dir, setup_logging
from edgeddns.result import FAILED, format_line

if TYPE_CHECKING:
    import argparse

    from edgeddns.redact import Redactor

HANDOFF_TIMEOUT = 660.0  # seconds: the agent answers after the run (provider timeouts, retries)


def cmd_update(args: argparse.Namespace) -> int:
    import time

    from edgeddns.lazylog import cancel_deferred

    args.started_ns = time.time_ns()  # before the config is read: see quickcheck.remember
    cfg = load_config(args)
    private_state_dir(cfg.agent.state_dir)
    log = setup_logging(args, cfg, lazy=True)  # a run that finds nothing changed usually logs nothing
    try:
        return _update(cfg, args, log)
    finally:
        cancel_deferred()  # a setup never needed ends with the command (in-process callers, tests)


def _update(cfg: Any, args: argparse.Namespace, log: Any) -> int:
    names = args.record
    if names:
        unknown = [n for n in names if not cfg.record(n)]
        if unknown:
            print(f"edgeddns: unknown record {unknown[0]!r} (configured: "
                  f"{', '.join(sorted({r.name for r in cfg.records})) or 'none'})", file=sys.stderr)
            return EXIT_USAGE
    secrets = cfg.redactor
    if args.dry_run or getattr(args, "standalone", False):
        return _here(cfg, args, log, secrets)
    from edgeddns.statelock import StateLock

    lock = StateLock(cfg.agent.state_dir)
    try:
        held = lock.acquire("update")
        if held is not None and held.role == "update":  # another one-shot: it is quick
            held = lock.acquire("update", wait=HANDOFF_TIMEOUT)
    except OSError as e:
        log.warning("cannot lock the state dir %s (%s); updating without the lock", cfg.agent.state_dir,
                    e.strerror or e)
        held = None
    if held is None:
        try:
            return _here(cfg, args, log, secrets)
        finally:
            lock.release()
    return _hand_over(cfg, args, held.pid, secrets)


def _hand_over(cfg: Any, args: argparse.Namespace, pid: Optional[int], secrets: Redactor) -> int:
    from edgeddns.control import ControlError, request, socket_path

    who = f"pid {pid}" if pid else "unknown pid"
    req = {"op": "update", "records": args.record, "force": bool(args.force)}
    try:
        reply = request(socket_path(cfg.agent.state_dir), req, timeout=HANDOFF_TIMEOUT)
    except ControlError as e:
        print(f"edgeddns: an agent ({who}) holds the state dir {cfg.agent.state_dir}, but its control socket "
              f"did not take the update: {e.message} (--standalone updates here anyway)", file=sys.stderr)
        return EXIT_FAILED
    if not reply.get("ok"):
        err = reply.get("error") or {}
        print(f"edgeddns: the agent refused: [{err.get('code')}] {err.get('message')}", file=sys.stderr)
        return EXIT_FAILED
    print(f"edgeddns: handed to the running agent (agent pid {reply.get('pid', pid)})", file=sys.stderr)
    results = [d for d in reply.get("results") or [] if isinstance(d, dict)]
    for d in results:
        _print(d, args.json, secrets)
    return 1 if any(d.get("status") == FAILED for d in results) else 0


def _here(cfg: Any, args: argparse.Namespace, log: Any, secrets: Redactor) -> int:
    from edgeddns.clock import build_clock
    from edgeddns.engine import Engine, UpdateRequest, summarize
    from edgeddns.ipsource import Detector
    from edgeddns.state import StateStore

    state = StateStore.open(cfg.agent.state_dir)
    if state.error:
        log.warning(state.error)
    clock = build_clock(cfg.clock, cfg.agent.state_dir)
    # ``fetched``: url: answers the memo check (edgeddns.quickcheck) already has; ``asked`` for the next memo.
    detector = Detector(clock=clock, asked=[], fetched=getattr(args, "fetched", None))
    engine = Engine(cfg, clock, state, detector=detector)
    try:
        # ``trigger --fallback-update`` runs this on the agent's behalf and says so in the results.
        results = engine.run(UpdateRequest(records=args.record, force=args.force, dry_run=args.dry_run,
                                           trigger=getattr(args, "trigger", "cli")))
    finally:
        engine.close()
    out = "".join(_print(r.as_dict(), args.json, secrets) for r in results)
    if state.error:
        log.warning(state.error)
    if not results:
        log.warning("no records configured")
    status = summarize(results)
    if not args.dry_run:
        from edgeddns import quickcheck

        started = getattr(args, "started_ns", None)
        remembered = started is not None and quickcheck.remember(args, cfg, detector, results, out, status,
                                                                 state.error, started)
        if not remembered and quickcheck.plain(args):
            quickcheck.forget(cfg.path)  # a plain run that could not be memoised: neither can the next
    return status


def _print(d: Dict[str, Any], as_json: bool, secrets: Redactor) -> str:
    """Print one result (a line of text or JSON) and return what was printed."""
    d = secrets.data(d)  # before serialising: a secret is matched as itself, not as JSON made it
    line = (json.dumps(d, sort_keys=False) if as_json else format_line(d)) + "\n"
    sys.stdout.write(line)
    sys.stdout.flush()
    return line
