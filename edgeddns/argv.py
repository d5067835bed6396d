"""The plain spellings of the everyday commands, read without argparse.

``edgeddns trigger`` (the hotplug fallback) and a cron ``edgeddns update``
run on every WAN event or tick; building the whole argparse parser (with its
subparsers, gettext and the help formatter's ``shutil``) costs them a few ms
on a router, and the daemon (``run``) would keep it resident (about 1.5 MiB).
:func:`quick` reads only the unambiguous spellings of ``trigger``, ``update``,
``run`` and ``status`` and answers None for anything else (help,
abbreviations, bundled short flags, a value that looks like an option,
errors), so argparse stays the one authority on what is accepted and on
every message. A test checks that both give the same namespace whenever
:func:`quick` answers. Standard library only, and nothing at import time.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import SimpleNamespace
    from typing import Dict, List, Optional, Tuple

# option -> (dest, kind); kind: "count", "flag" (store_true), "str", "float", "append"
_COMMON = {"-c": ("config", "str"), "--config": ("config", "str"), "-v": ("verbose", "count"),
           "--verbose": ("verbose", "count"), "-q": ("quiet", "count"), "--quiet": ("quiet", "count"),
           "--syslog": ("syslog", "flag")}
_HOT: "Dict[str, Dict[str, Tuple[str, str]]]" = {
    "trigger": {"--iface": ("iface", "str"), "--action": ("action", "str"), "--device": ("device", "str"),
                "--fallback-update": ("fallback_update", "flag"), "--timeout": ("timeout", "float")},
    "update": {"--record": ("record", "append"), "--force": ("force", "flag"), "--dry-run": ("dry_run", "flag"),
               "--json": ("json", "flag"), "--standalone": ("standalone", "flag")},
    "run": {},
    "status": {"--json": ("json", "flag")},
}
_DEFAULTS = {"trigger": {"iface": None, "action": None, "device": None, "fallback_update": False, "timeout": 0.5},
             "update": {"record": None, "force": False, "dry_run": False, "json": False, "standalone": False},
             "run": {}, "status": {"json": False}}


def quick(argv: "List[str]") -> "Optional[SimpleNamespace]":
    """The namespace argparse would build for ``argv``, or None when argparse must read it."""
    if not argv or argv[0] not in _HOT:
        return None
    command = argv[0]
    opts = _HOT[command]
    ns: Dict[str, object] = {"g_config": None, "g_verbose": 0, "g_quiet": 0, "g_syslog": False, "command": command,
                             "config": None, "verbose": 0, "quiet": 0, "syslog": False}
    ns.update(_DEFAULTS[command])
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = _COMMON.get(name) or opts.get(name)
        if spec is None:
            return None  # "-h", "--", an abbreviation, a positional, a typo: argparse decides
        dest, kind = spec
        if kind in ("count", "flag"):
            if eq:
                return None  # "--force=1": argparse's error
            ns[dest] = ns[dest] + 1 if kind == "count" else True
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None  # missing, or a value argparse might take for an option
            value = argv[i]
            i += 1
        if kind == "float":
            try:
                ns[dest] = seconds(value)
            except ValueError:
                return None  # argparse says why
        elif kind == "append":
            ns[dest] = (ns[dest] or []) + [value]
        else:
            ns[dest] = value
    import sys

    # types.SimpleNamespace itself, without importing the types module (on every hotplug event).
    return type(sys.implementation)(**ns)


def seconds(text: str) -> float:
    """A command line's number of seconds: finite, above 0, at most an hour (``nan``, ``-1`` are refused)."""
    value = float(text)
    if not 0 < value <= 3600:  # also false for nan
        raise ValueError(text)
    return value


def spread_seconds(text: str) -> float:
    """A spread window in seconds: 0 (at once) to an hour."""
    value = float(text)
    if not 0 <= value <= 3600:
        raise ValueError(text)
    return value
