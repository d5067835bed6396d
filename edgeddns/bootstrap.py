"""What every command does first: find and load the config, set up logging.

Kept apart from :mod:`edgeddns.cli` so the agent and the one-shot commands can
use it without importing the command-line parser.
"""

import os
import sys

TYPE_CHECKING = False  # typing's own flag would import typing on the hotplug path
if TYPE_CHECKING:
    import argparse

    from edgeddns.config import Config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


SEARCH_PATH = ("config.toml", "/etc/edgeddns/config.toml")


def default_config_path() -> str:
    env = os.environ.get("EDGEDDNS_CONFIG")
    if env:
        return env
    for path in SEARCH_PATH:
        if os.path.exists(path):
            return path
    return SEARCH_PATH[-1]


def no_config_found() -> str:
    """Why no config was loaded, naming every place looked at (None if one exists)."""
    tried = ", ".join(os.path.abspath(p) if not os.path.isabs(p) else p for p in SEARCH_PATH)
    return (f"no config file found: EDGEDDNS_CONFIG is not set, and none of {tried} exists "
            f"(give one with -c FILE)")


def load_config(args: "argparse.Namespace") -> "Config":
    """Load the config or exit 2 with one line naming the file and key."""
    from edgeddns.config import load
    from edgeddns.errors import ConfigError

    path = args.config or default_config_path()
    if not args.config and not os.environ.get("EDGEDDNS_CONFIG") and not os.path.exists(path):
        print(f"edgeddns: {no_config_found()}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    try:
        cfg = load(path)
    except ConfigError as e:
        print(f"edgeddns: {e.message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    for w in cfg.warnings:
        print(f"edgeddns: warning: {w}", file=sys.stderr)
    return cfg


def setup_logging(args: "argparse.Namespace", cfg: "Config", *, lazy: bool = False):
    """Configure the ``edgeddns`` logger; ``lazy``: only once a line is due (see edgeddns.lazylog)."""
    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", 0)
    level = "debug" if verbose > quiet else "warning" if quiet > verbose else cfg.agent.log_level
    target = "syslog" if getattr(args, "syslog", False) else getattr(cfg.agent, "log_target", "auto")

    def setup():
        from edgeddns import log

        return log.setup(level, cfg.redactor, target=target)

    if not lazy or level == "debug":  # -v is for a person watching: no saving worth the care
        return setup()
    from edgeddns.lazylog import LazyLogger, defer_setup

    defer_setup(level, setup)
    return LazyLogger()


def private_state_dir(state_dir: str, *, client: bool = False) -> None:
    """Refuse (one line, exit 2) a state dir another user could tamper with.

    The agent and ``update`` create it (0700) and must own it; they also clear
    temp files a crash left in it. A client (``trigger``, ``status``) only
    talks to the socket in it: it creates nothing and also accepts a dir owned
    by root, or, when it is root itself, by the agent's own (other) user.
    """
    from edgeddns.statedir import private_dir_problem

    if client:
        owners = range(0, 1 << 32) if os.geteuid() == 0 else {os.geteuid(), 0}
        problem = private_dir_problem(state_dir, create=False, owners=owners)
    else:
        problem = private_dir_problem(state_dir, create=True)
    if problem:
        print(f"edgeddns: state dir {state_dir} {problem}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    if not client:
        from edgeddns.fileio import remove_stale_temps

        remove_stale_temps(state_dir)
