"""Command line: ``edgeddns <command>``.

Each command's work lives in its own module and is imported only when that
command runs, so ``edgeddns trigger`` (the hotplug path) costs little more
than the interpreter itself.
"""

import os
import sys

from edgeddns.bootstrap import EXIT_FAILED, EXIT_OK, EXIT_USAGE, default_config_path, load_config

# Not at run time: the hot commands (see edgeddns.argv) never build the parser.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import List, Optional

COMMANDS = {
    "update": "edgeddns.oneshot:cmd_update",
    "check-config": "edgeddns.cli:cmd_check_config",
    "run": "edgeddns.daemon:cmd_run",
    "clock": "edgeddns.clockcmd:cmd_clock",
    "trigger": "edgeddns.control:cmd_trigger",
    "status": "edgeddns.control:cmd_status",
    "fleet": "edgeddns.fleet:cmd_fleet",
}


def parser() -> "argparse.ArgumentParser":
    import argparse

    from edgeddns import __version__
    from edgeddns.argv import seconds, spread_seconds

    p = argparse.ArgumentParser(prog="edgeddns",
                                description="Event-driven dynamic DNS for routers and NAS boxes.")
    p.add_argument("--version", action="version", version=f"edgeddns {__version__}")
    # -c/-v/-q/--syslog work before the command too; they land in their own dests
    # (a subparser's defaults would overwrite the same dest) and main() merges them.
    p.add_argument("-c", "--config", dest="g_config", default=None, metavar="CONFIG",
                   help="config file (also accepted after the command, which wins)")
    p.add_argument("-v", "--verbose", dest="g_verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", dest="g_quiet", action="count", default=0, help="only warnings and errors")
    p.add_argument("--syslog", dest="g_syslog", action="store_true", help="log to syslog (/dev/log)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("-c", "--config", default=None, help="config file (default: $EDGEDDNS_CONFIG, "
                        "./config.toml, /etc/edgeddns/config.toml)")
        sp.add_argument("-v", "--verbose", action="count", default=0, help="more log output (debug)")
        sp.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors")
        sp.add_argument("--syslog", action="store_true",
                        help="log to syslog (/dev/log, facility daemon) at each line's priority")
        return sp

    u = add("update", "check every record once and update what changed")
    u.add_argument("--record", action="append", metavar="NAME", help="only this record (repeatable)")
    u.add_argument("--force", action="store_true", help="ask the provider even if nothing seems changed")
    u.add_argument("--dry-run", action="store_true", help="detect and compare, change nothing")
    u.add_argument("--json", action="store_true", help="one JSON result object per line")
    u.add_argument("--standalone", action="store_true",
                   help="update in this process even if an agent is running (default: hand it to the agent)")
    add("check-config", "validate the config and print it, secrets masked")
    add("run", "run the agent until SIGTERM: events, MQTT commands, results")
    c = add("clock", "show whether the system clock is trustworthy and the measured offset")
    c.add_argument("--json", action="store_true")
    t = add("trigger", "tell the running agent that the WAN changed (for hotplug scripts)")
    t.add_argument("--iface", default=None, help="the interface that changed")
    t.add_argument("--action", default=None, help="the hotplug action (ifup, ifupdate, ...)")
    t.add_argument("--device", default=None, help="the device behind the interface")
    t.add_argument("--fallback-update", action="store_true", help="update here if no agent is running")
    t.add_argument("--timeout", type=seconds, default=0.5, help="seconds to wait for the agent")
    s = add("status", "ask the running agent for its state")
    s.add_argument("--json", action="store_true")
    f = add("fleet", "a controller's view of every agent on the broker ([mqtt] of the config)")
    fsub = f.add_subparsers(dest="fleet_command", metavar="status|update")
    for name, text in (("status", "every node: online, records, clock, last errors"),
                       ("update", "broadcast an update and collect every node's answer and results")):
        fp = fsub.add_parser(name, help=text, description=text)
        # -c and -v after the subcommand as well (SUPPRESS keeps the ones given before it)
        fp.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file")
        fp.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)
        fp.add_argument("--json", action="store_true")
        fp.add_argument("--timeout", type=seconds, default=10.0 if name == "update" else 3.0,
                        help="seconds to wait for the broker and the answers")
        if name == "update":
            fp.add_argument("--records", nargs="+", metavar="NAME", help="only these records")
            fp.add_argument("--force", action="store_true", help="ask the providers even if nothing changed")
            fp.add_argument("--spread", type=spread_seconds, default=None, metavar="S",
                            help="each agent starts within a random 0..S s (default: the agents' own)")
            fp.add_argument("--group", default=None, help="read results through $share/GROUP (several "
                            "controllers)")
    f.set_defaults(json=False, timeout=3.0)
    return p


def cmd_check_config(args: "argparse.Namespace") -> int:
    import json

    from edgeddns.config import dump

    cfg = load_config(args)
    # What run and update would refuse at start, said here too (checked as a client: nothing is created, root
    # may check the config of an agent that runs as another user, a user that of an agent running as root).
    import os

    from edgeddns.statedir import private_dir_problem

    owners = range(0, 1 << 32) if os.geteuid() == 0 else {os.geteuid(), 0}
    problem = private_dir_problem(cfg.agent.state_dir, create=False, owners=owners)
    if problem:
        print(f"edgeddns: {cfg.path}: agent.state_dir: {cfg.agent.state_dir} {problem}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(dump(cfg), indent=2, default=str))
    print(f"edgeddns: {cfg.path}: OK ({len(cfg.records)} records, {len(cfg.providers)} providers)",
          file=sys.stderr)
    return EXIT_OK


def main(argv: "Optional[List[str]]" = None) -> int:
    from edgeddns.argv import quick

    args = quick(sys.argv[1:] if argv is None else argv) or parser().parse_args(argv)
    if args.command:
        args.verbose += args.g_verbose
        args.quiet += args.g_quiet
        args.syslog = args.syslog or args.g_syslog
        if getattr(args, "config", None) is None:
            args.config = args.g_config
    if not args.command:
        parser().print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "update":
        from edgeddns import quickcheck

        config = args.config or default_config_path()
        if quickcheck.plain(args) and os.path.isfile(config):
            try:
                status = quickcheck.answer(args, config)  # nothing changed since the last run: its lines again
            except BrokenPipeError:  # `edgeddns update | head -0`: as below
                return EXIT_FAILED
            if status is not None:
                return status
    module, _, func = COMMANDS[args.command].partition(":")
    try:
        handler = getattr(__import__(module, fromlist=[func]), func)
    except (ImportError, AttributeError):
        print(f"edgeddns: '{args.command}' is not available in this build", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except KeyboardInterrupt:
        # Ctrl-C: nothing failed, the user stopped it (no result line, no traceback).
        print("edgeddns: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
