"""``[agent] state_dir`` of a config file, found cheaply.

The hotplug path (``edgeddns trigger``) and the one-shot ``update`` need the
state dir (where the agent's socket and lock are) before, or without, loading
the whole config: a line scan reads the plain spelling; anything unusual is
left to the TOML parser. Whether the dir can be trusted is here too
(:func:`private_dir_problem`), so the hotplug path checks it without loading
the file-writing module. Standard library only.
"""

import os
import stat
import sys

TYPE_CHECKING = False  # typing's own flag would import typing on the hotplug path
if TYPE_CHECKING:
    from typing import Container, Optional


class StateDirError(Exception):
    """The config file cannot be read well enough to find the state dir."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.code = "config"


def default_state_dir() -> str:
    """Same rule as :func:`edgeddns.config.default_state_dir` (tests keep them equal)."""
    if os.geteuid() == 0:
        return "/var/lib/edgeddns"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgeddns")


_UNSURE = object()


def _scan_state_dir(text: str) -> object:
    """``[agent] state_dir`` found by a line scan, None if absent, or _UNSURE.

    The hotplug path runs this on every WAN event; the TOML parser would cost
    it a few ms and about 3 MB. Only the plain spelling is read here; anything
    unusual (multi-line strings, escapes, dotted or inline ``agent`` keys, a
    malformed header) is left to the real parser.
    """
    if '"""' in text or "'''" in text:
        return _UNSURE
    table: Optional[str] = ""
    found: object = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            head = line.split("#", 1)[0].strip()
            inner = head[2:-2] if head.startswith("[[") else head[1:-1]
            if not head.endswith("]") or "[" in inner or "]" in inner or not inner.strip():
                return _UNSURE
            table = inner.strip().strip('"\'')
            continue
        key, eq, value = line.partition("=")
        key = key.strip().strip('"\'')
        if table == "" and (key == "agent" or key.startswith("agent.")):
            return _UNSURE
        if table != "agent" or key != "state_dir":
            if table == "agent" and key.startswith("state_dir"):
                return _UNSURE
            continue
        value = value.strip()
        quote = value[:1]
        if not eq or quote not in ('"', "'") or found is not None:
            return _UNSURE
        end = value.find(quote, 1)
        if end < 0:
            return _UNSURE
        body, rest = value[1:end], value[end + 1:].strip()
        if (rest and not rest.startswith("#")) or (quote == '"' and "\\" in body):
            return _UNSURE  # trailing junk, or escapes only the real parser should read
        found = body
    return found


MAX_CONFIG = 1 << 20
# The loader's words for a file with no settings (edgeddns.config must not be imported on this path).
EMPTY = ("no settings: the file is empty or only comments "
         "(every key is in docs/config.md; the shipped config.toml is a start)")


def state_dir_of(config_path: str) -> str:
    """``[agent] state_dir`` of a config file, read cheaply (no validation, no providers)."""
    try:
        with open(config_path, "rb") as f:
            raw = f.read(MAX_CONFIG + 1)  # the same bound as the full loader
    except OSError as e:
        raise StateDirError(f"{config_path}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_CONFIG:
        raise StateDirError(f"{config_path}: larger than 1 MiB: not a config file")
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # a byte-order mark, as the loader allows
    try:
        text = raw.decode("utf-8")
        quick = _scan_state_dir(text)
    except UnicodeDecodeError:
        quick = _UNSURE
    if quick is None and not any(s and not s.startswith("#") for s in (ln.strip() for ln in text.splitlines())):
        raise StateDirError(f"{config_path}: {EMPTY}")
    if quick is not _UNSURE:
        return _resolve_state_dir(config_path, quick)
    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:  # pragma: no cover - old interpreters
        import tomli as toml
    try:
        data = toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateDirError(f"{config_path}: not UTF-8 text") from None  # the loader's words
    except toml.TOMLDecodeError as e:
        raise StateDirError(f"{config_path}: invalid TOML: {e}") from None
    if not data:
        raise StateDirError(f"{config_path}: {EMPTY}")
    agent = data.get("agent")
    return _resolve_state_dir(config_path, agent.get("state_dir") if isinstance(agent, dict) else None)


def _resolve_state_dir(config_path: str, sd: object) -> str:
    if isinstance(sd, str) and not sd.strip():
        raise StateDirError(f"{config_path}: agent.state_dir: is empty (leave it out for the default)")  # as the loader
    if not isinstance(sd, str):
        return default_state_dir()
    sd = os.path.expanduser(sd)
    if os.path.isabs(sd):
        return sd
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_path)), sd))


def private_dir_problem(path: str, *, create: bool, owners: "Optional[Container[int]]" = None) -> "Optional[str]":
    """Why ``path`` cannot be trusted as a private directory, or None.

    Refused: a symlink, a non-directory, a directory owned by anyone but
    ``owners`` (default: this user), one writable by group or others, and one
    inside a world-writable directory without the sticky bit (where anyone
    could rename it away and put their own in its place). ``create`` makes it
    (0700, parents 0755) when missing. A directory that is missing (and could
    not be made) is not a problem here: there is nothing in it to trust.
    """
    path = os.path.abspath(path)
    if create:
        try:
            _make_parents(os.path.dirname(path))
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            # Cannot be made (read-only or full file system): nothing there to
            # distrust; the state store reports it and keeps the state in memory.
            pass
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot inspect it: {e.strerror}"
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink: give the real directory"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    allowed = owners if owners is not None else {os.geteuid()}
    if st.st_uid not in allowed:
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}): another user controls it"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): chmod 700 it"
    parent = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            pst = os.stat(parent)
        except OSError:
            break
        if pst.st_mode & stat.S_IWOTH and not pst.st_mode & stat.S_ISVTX:
            return f"is inside {parent}, which anyone may write to (no sticky bit)"
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return None


def _make_parents(directory: str) -> None:
    """Like ``makedirs``, but each directory made is 0755 whatever the umask (no global umask change)."""
    if os.path.isdir(directory):
        return
    _make_parents(os.path.dirname(directory))
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        return
    os.chmod(directory, 0o755)
