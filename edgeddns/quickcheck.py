"""A cron ``edgeddns update`` that finds nothing changed, answered without loading the config.

A one-shot's outcome is a function of its inputs alone: the config file, the
files and environment it reads, the state file, and what the address sources
answer. After a run in which every record came out ``unchanged`` and nothing
was logged, :func:`remember` writes those inputs and the printed lines to a
memo in a private runtime directory (a tmpfs: no flash writes, gone at boot).
The next plain ``edgeddns update`` (:func:`answer`) checks every input again
(the files by their stat signature, the state by its bytes, the sources by
asking them again) and prints the same lines when all are as they were. That
check needs no TOML parser, no dataclasses and no address parsing, which are
most of a one-shot's start-up. Anything different, missing or unreadable
falls back to the whole update, which takes the source answers already
fetched instead of asking twice.

Memoised: ``static:``, plain-HTTP ``url:`` and ``interface:`` sources (an
interface's answer is the kernel's address table with each lifetime reduced
to gone / forever / counting down, and the default route's device). Not
memoised (the whole update runs): ``ubus:`` and ``cmd:`` sources (their
answers move by themselves), HTTPS sources (certificates are judged by the
config's clock), a record that picks the longest remaining lifetime, secrets
from ``env:VAR`` (the memo would have to hold them), any option on the
command line but ``-c``/``-q``, a run that logs or warns, and a state dir an
agent holds (the update is handed to it).
"""

import marshal
import os
import sys

TYPE_CHECKING = False  # typing's own flag imports typing: this module exists to avoid such costs
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict, List, Optional, Tuple

    from edgeddns.config import Config
    from edgeddns.ipsource import Detector
    from edgeddns.result import Result

FORMAT = 2  # 2: sources as (kind, arg, family, how to ask, answer)
MAX_MEMO = 4 << 20  # bytes; a thousand records' state is about 200 KiB
# A file changed this recently may change again within its time stamp's granularity (a second on
# some flash file systems) without its signature changing: no memo is written until it has settled.
SETTLE_NS = 2_000_000_000
ENV = ("HOME", "XDG_STATE_HOME")  # the default state dir and ~ in paths depend on them
LOCK_NAME = "control.lock"  # edgeddns.statelock.LOCK_NAME (not imported: it pulls in dataclasses)
STATE_NAME = "state.json"  # edgeddns.state.STATE_FILE


def memo_dir() -> "Optional[str]":
    """Where memos live: ``$EDGEDDNS_RUNTIME_DIR``; else root's ``/run/edgeddns`` (``/var/run`` on
    OpenWrt), a tmpfs; else the user's ``$XDG_RUNTIME_DIR/edgeddns``; else (a user's cron job has no
    runtime dir) ``$XDG_CACHE_HOME/edgeddns`` or ``~/.cache/edgeddns``."""
    given = os.environ.get("EDGEDDNS_RUNTIME_DIR")
    if given:
        return given
    if os.geteuid() == 0:
        return "/run/edgeddns" if os.path.isdir("/run") else "/var/run/edgeddns"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "edgeddns")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "edgeddns") if os.path.isabs(cache) else None


def memo_path(config: str) -> "Optional[str]":
    """The memo of the config at ``config``: its absolute path, escaped into one file name."""
    base = memo_dir()
    if base is None:
        return None
    name = os.path.abspath(config).replace("%", "%25").replace("/", "%2F") + ".memo"
    return os.path.join(base, name) if len(name) <= 255 else None


def plain(args: "argparse.Namespace") -> bool:
    """An ``update`` whose output a memo can give: no option but the config and ``-q`` (a one-shot
    that changes nothing logs nothing below a warning, and a memo is only of a run that logged nothing)."""
    if getattr(args, "command", None) != "update" or getattr(args, "trigger", "cli") != "cli":
        return False  # also ``trigger --fallback-update``, which runs an update on the agent's behalf
    return not any(getattr(args, name, None) for name in ("record", "force", "dry_run", "json", "standalone",
                                                          "verbose", "syslog"))


def signature(path: str) -> "Optional[Tuple[int, ...]]":
    """A file's identity and last change as stat tells them; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def dir_signature(path: str) -> "Optional[Tuple[Tuple[int, ...], ...]]":
    """What the update's check of a private dir reads (``statedir.private_dir_problem``): the dir's own
    kind, owner and mode (not followed), and the modes of the dirs above it; None when it is missing."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    out = [(st.st_dev, st.st_ino, st.st_mode, st.st_uid)]
    parent = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            out.append((os.stat(parent).st_mode,))
        except OSError:
            break
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return tuple(out)


def _version() -> "Tuple[str, Optional[Tuple[int, ...]]]":
    """This edgeddns: its version and its package file (a reinstall rewrites it)."""
    from edgeddns import __file__ as init
    from edgeddns import __version__

    return __version__, signature(init)


def answer(args: "argparse.Namespace", config: str) -> "Optional[int]":
    """Print the last run's lines and return its exit status when nothing it read has changed.

    None: the whole update must run. Answers the sources gave while checking
    are left in ``args.fetched`` for it.
    """
    path = memo_path(config)
    if path is None:
        return None
    memo = _read(path)
    if memo is None or memo.get("format") != FORMAT or memo.get("python") != sys.version:
        return None
    try:
        return _replay(memo, args, config)
    except (KeyError, TypeError, ValueError):  # a memo of another shape: the update decides
        return None


def _read(path: str) -> "Optional[Dict[str, Any]]":
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # Only a memo this user wrote (0600): anyone else's could claim "unchanged" for ever.
        if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not 0 < st.st_size <= MAX_MEMO:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_MEMO + 1)
        memo = marshal.loads(data)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)
    return memo if isinstance(memo, dict) else None


def _replay(memo: "Dict[str, Any]", args: "argparse.Namespace", config: str) -> "Optional[int]":
    if memo["config"] != os.path.abspath(config) or memo["edgeddns"] != list(_version()):
        return None
    if any(os.environ.get(name) != value for name, value in memo["env"].items()):
        return None
    if any(signature(p) != (tuple(sig) if sig is not None else None) for p, sig in memo["files"]):
        return None
    state_dir = memo["state_dir"]
    if dir_signature(state_dir) != memo["state_dir_signature"]:
        return None  # moved, or its owner or mode changed: the update checks it again (and may refuse it)
    lock = _share_lock(os.path.join(state_dir, LOCK_NAME))
    if lock is None:
        return None  # an agent or another update holds the state dir: the update hands over or waits
    try:
        try:
            with open(os.path.join(state_dir, STATE_NAME), "rb") as f:
                state = f.read(MAX_MEMO + 1)
        except FileNotFoundError:
            state = None
        except OSError:
            return None  # unreadable now: the update says why
        if state != memo["state"]:
            return None
        fetched: Dict[Tuple[str, int], str] = {}
        for kind, arg, family, how, answer in memo["sources"]:
            got = _ask(kind, arg, family, how)
            if got is None:
                return None  # the update asks again and says why it failed
            if kind == "url":
                fetched[(arg, family)] = got
            if got != answer:
                args.fetched = fetched  # the update takes these instead of asking twice
                return None
    finally:
        os.close(lock)
    sys.stdout.write(memo["out"])
    sys.stdout.flush()
    return memo["status"]


def _ask(kind: str, arg: str, family: int, how: "Any") -> "Any":
    """A source's answer as the memo holds it (None when it cannot be had): a url:'s text, or an
    interface:'s device and the kernel's address table (see nlwire.address_table)."""
    if kind == "url":
        from edgeddns.echo import get

        to, timeout = how
        try:
            return get(tuple(to), family, timeout=timeout)
        except OSError:
            return None
    from edgeddns import nlwire

    name = nlwire.default_route_interface(family) if arg == "default" else arg
    try:
        return name, nlwire.address_table(nlwire.dump_addresses(family))
    except OSError:
        return None


def _share_lock(path: str) -> "Optional[int]":
    """The state dir's lock, shared (writers take it exclusively); None when it is taken or missing."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remember(args: "argparse.Namespace", cfg: "Config", detector: "Detector", results: "List[Result]", out: str,
             status: int, state_error: "Optional[str]", started_ns: int) -> bool:
    """Write the memo of a run that changed nothing and said nothing; False when it is not one.

    ``started_ns``: when the run began (``time.time_ns()``), before it read the config.
    """
    from edgeddns.lazylog import still_deferred
    from edgeddns.result import UNCHANGED

    path = memo_path(cfg.path)
    if (path is None or not plain(args) or not results or any(r.status != UNCHANGED for r in results)
            or status or state_error or cfg.warnings or cfg.env_secrets or not still_deferred()
            or detector.asked is None):
        return False
    sources = _sources(detector.asked, detector.url_timeout)
    if sources is None or (any(kind == "interface" for kind, *_ in sources) and _compares_lifetimes(cfg)):
        return False
    files = [(p, signature(p)) for p in [cfg.path, *cfg.files]]
    if any(sig is not None and started_ns - max(sig[5], sig[6]) < SETTLE_NS for _, sig in files):
        return False  # changed during the run or just before it
    state_dir = os.path.abspath(cfg.agent.state_dir)
    try:
        with open(os.path.join(state_dir, STATE_NAME), "rb") as f:
            state: Optional[bytes] = f.read(MAX_MEMO + 1)
    except FileNotFoundError:
        state = None
    except OSError:
        return False
    memo = {"format": FORMAT, "python": sys.version, "edgeddns": list(_version()),
            "config": os.path.abspath(cfg.path),
            "env": {name: os.environ.get(name) for name in ENV}, "files": files, "state_dir": state_dir,
            "state_dir_signature": dir_signature(state_dir),
            "state": state, "sources": sources, "out": out, "status": status}
    return _write(path, marshal.dumps(memo))


def _sources(asked: "List[Tuple[str, str, int, Any]]", timeout: float) -> "Optional[List[tuple]]":
    """The sources to ask again, in order, as (kind, arg, family, how to ask, the answer to expect);
    None when one cannot be replayed."""
    out = []
    for kind, arg, family, answer in asked:
        if kind == "static":
            continue  # its answer is in the config
        if answer is None or kind not in ("url", "interface"):
            return None
        if kind == "url":
            if not arg.startswith("http://"):
                return None  # https: certificates are judged by the config's clock
            from edgeddns.echo import target

            out.append((kind, arg, family, (target(arg), timeout), answer))
        else:
            out.append((kind, arg, family, None, answer))
    return out


def _compares_lifetimes(cfg: "Config") -> bool:
    """Does a record choose among interface addresses by their remaining lifetimes (which tick)?"""
    return any(cfg.selection_for(r)[0] == "longest_lifetime" and r.family == 6 for r in cfg.records)


def _write(path: str, data: bytes) -> bool:
    from edgeddns.fileio import write_atomic
    from edgeddns.statedir import private_dir_problem

    directory = os.path.dirname(path)
    if private_dir_problem(directory, create=True) or not os.path.isdir(directory):
        return False
    try:
        write_atomic(path, data, mode=0o600)
    except OSError:
        return False
    return True


def forget(config: str) -> None:
    """Drop the memo of ``config`` (the run that follows would not match it)."""
    path = memo_path(config)
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass
