"""Command line: ``edgeddns <command>``.

Each command's work lives in its own module and is imported only when that
command runs, so ``edgeddns trigger`` (the hotplug path) costs little more
than the interpreter itself.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import TYPE_CHECKING, List, Optional

from edgeddns import __version__

if TYPE_CHECKING:
    from edgeddns.config import Config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

COMMANDS = {
    "update": "edgeddns.cli:cmd_update",
    "check-config": "edgeddns.cli:cmd_check_config",
    "run": "edgeddns.agent:cmd_run",
    "clock": "edgeddns.timesync:cmd_clock",
    "trigger": "edgeddns.control:cmd_trigger",
    "status": "edgeddns.control:cmd_status",
}


def default_config_path() -> str:
    env = os.environ.get("EDGEDDNS_CONFIG")
    if env:
        return env
    if os.path.exists("config.toml"):
        return "config.toml"
    return "/etc/edgeddns/config.toml"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeddns",
                                description="Event-driven dynamic DNS for routers and NAS boxes.")
    p.add_argument("--version", action="version", version=f"edgeddns {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("-c", "--config", default=None, help="config file (default: $EDGEDDNS_CONFIG, "
                        "./config.toml, /etc/edgeddns/config.toml)")
        sp.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
        return sp

    u = add("update", "check every record once and update what changed")
    u.add_argument("--record", action="append", metavar="NAME", help="only this record (repeatable)")
    u.add_argument("--force", action="store_true", help="ask the provider even if nothing seems changed")
    u.add_argument("--dry-run", action="store_true", help="detect and compare, change nothing")
    u.add_argument("--json", action="store_true", help="one JSON result object per line")
    add("check-config", "validate the config and print it, secrets masked")
    add("run", "run the agent until SIGTERM: events, MQTT commands, results")
    c = add("clock", "show whether the system clock is trustworthy and the measured offset")
    c.add_argument("--json", action="store_true")
    t = add("trigger", "tell the running agent that the WAN changed (for hotplug scripts)")
    t.add_argument("--iface", default=None, help="the interface that changed")
    t.add_argument("--action", default=None, help="the hotplug action (ifup, ifupdate, ...)")
    t.add_argument("--device", default=None, help="the device behind the interface")
    t.add_argument("--fallback-update", action="store_true", help="update here if no agent is running")
    t.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for the agent")
    s = add("status", "ask the running agent for its state")
    s.add_argument("--json", action="store_true")
    return p


def load_config(args: argparse.Namespace) -> Config:
    """Load the config or exit 2 with one line naming the file and key."""
    from edgeddns.config import load
    from edgeddns.errors import ConfigError

    path = args.config or default_config_path()
    try:
        cfg = load(path)
    except ConfigError as e:
        print(f"edgeddns: {e.message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    for w in cfg.warnings:
        print(f"edgeddns: warning: {w}", file=sys.stderr)
    return cfg


def setup_logging(args: argparse.Namespace, cfg: Config):
    from edgeddns import log

    level = "debug" if args.verbose else cfg.agent.log_level
    return log.setup(level, (s.reveal() for s in cfg.secrets))


def format_result(d: dict) -> str:
    line = f"{d['status']:<12} {d['record']} {d['type']}"
    if d.get("ip"):
        line += f" {d['ip']}"
    if d.get("previous_ip") and d["previous_ip"] != d.get("ip"):
        line += f" (was {d['previous_ip']})"
    line += f" via {d['provider']}"
    if d.get("error"):
        line += f": [{d['error']['code']}] {d['error']['message']}"
    clock = d.get("clock") or {}
    if clock.get("source", "system") != "system":
        line += f" [clock {clock['source']} {clock['offset']:+.3f}s]"
    return line


def cmd_update(args: argparse.Namespace) -> int:
    from edgeddns.clock import build_clock
    from edgeddns.engine import Engine, UpdateRequest, summarize
    from edgeddns.state import StateStore

    cfg = load_config(args)
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
        text = json.dumps(d, sort_keys=False) if args.json else format_result(d)
        for s in secrets:  # results never hold secrets; this makes sure of it
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        print(text, flush=True)
    if state.error:
        log.warning(state.error)
    if not results:
        log.warning("no records configured")
    return summarize(results)


def cmd_check_config(args: argparse.Namespace) -> int:
    from edgeddns.config import dump

    cfg = load_config(args)
    print(json.dumps(dump(cfg), indent=2, default=str))
    print(f"edgeddns: {cfg.path}: OK ({len(cfg.records)} records, {len(cfg.providers)} providers)",
          file=sys.stderr)
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if not args.command:
        parser().print_help(sys.stderr)
        return EXIT_USAGE
    module, _, func = COMMANDS[args.command].partition(":")
    try:
        handler = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        print(f"edgeddns: '{args.command}' is not available in this build", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
