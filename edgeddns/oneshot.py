"""``edgeddns update``: check every record once, in this process."""

from __future__ import annotations

import argparse
import json
import sys

from edgeddns.bootstrap import EXIT_USAGE, load_config, private_state_dir, setup_logging
from edgeddns.result import format_line


def cmd_update(args: argparse.Namespace) -> int:
    from edgeddns.clock import build_clock
    from edgeddns.engine import Engine, UpdateRequest, summarize
    from edgeddns.state import StateStore

    cfg = load_config(args)
    private_state_dir(cfg.agent.state_dir)
    log = setup_logging(args, cfg)
    names = args.record
    if names:
        unknown = [n for n in names if not cfg.record(n)]
        if unknown:
            print(f"edgeddns: unknown record {unknown[0]!r} (configured: "
                  f"{', '.join(sorted({r.name for r in cfg.records})) or 'none'})", file=sys.stderr)
            return EXIT_USAGE
    state = StateStore.open(cfg.agent.state_dir)
    if state.error:
        log.warning(state.error)
    clock = build_clock(cfg.clock, cfg.agent.state_dir)
    engine = Engine(cfg, clock, state)
    try:
        # ``trigger --fallback-update`` runs this on the agent's behalf and says so in the results.
        results = engine.run(UpdateRequest(records=names, force=args.force, dry_run=args.dry_run,
                                           trigger=getattr(args, "trigger", "cli")))
    finally:
        engine.close()
    secrets = [s.reveal() for s in cfg.secrets]
    for r in results:
        d = r.as_dict()
        text = json.dumps(d, sort_keys=False) if args.json else format_line(d)
        for s in secrets:  # results never hold secrets; this makes sure of it
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        print(text, flush=True)
    if state.error:
        log.warning(state.error)
    if not results:
        log.warning("no records configured")
    return summarize(results)
