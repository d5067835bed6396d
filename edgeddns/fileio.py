"""Local files: written so a crash never leaves half of one, read with bounds,
kept in a directory no other user can touch.

Shared by the state store, the control socket, the config loader (secret
files) and the providers that write local files; a leaf module (``os``,
``stat``, ``time``; ``errno`` and ``re`` only in the functions that need them,
which the hotplug path does not call), so the hotplug path can use it at no cost.
"""

import os
import stat
import time

TYPE_CHECKING = False  # typing's own flag would import typing on the hotplug path
if TYPE_CHECKING:
    from typing import Container, Optional, Union

# ``.NAME.<16 hex>.tmp`` from write_atomic, and ``.NAME.<pid>.tmp`` from versions before it.
_TEMP = r"^\..+\.([0-9a-f]{16}|[0-9]+)\.tmp$"
STALE_AFTER = 60.0  # seconds: older temp files are left over from a crash, not being written


def fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str, data: "Union[str, bytes]", mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) so readers see the old or the new file, never half."""
    import errno  # only for its error numbers; not loaded on the hotplug path

    directory = os.path.dirname(os.path.abspath(path))
    # A temp file in the same directory (so rename is atomic), created new
    # (O_EXCL) under a random name: a file or symlink someone planted under a
    # name we might use is never opened. Random bytes from os.urandom, not
    # the tempfile module, whose import costs the hotplug path a few ms.
    for _ in range(8):
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.urandom(8).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, "no free temporary file name", directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def read_limited(path: str, limit: int, *, follow: bool = True) -> bytes:
    """The content of a regular file of at most ``limit`` bytes.

    Opened non-blocking, so a FIFO or a device never hangs the caller: anything
    but a regular file is refused before a byte is read, and so is a file
    larger than ``limit``. ``follow=False`` refuses a symlink (``O_NOFOLLOW``).
    Errors are :class:`OSError` with a readable ``strerror``.
    """
    import errno  # only for its error numbers; not loaded on the hotplug path

    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {_size(limit)}", path)
        chunks = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:  # it grew while we read
            raise OSError(errno.EFBIG, f"larger than {_size(limit)}", path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    if n >= 1 << 20 and not n % (1 << 20):
        return f"{n >> 20} MiB"
    return f"{n >> 10} KiB" if not n % 1024 else f"{n} bytes"


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


def remove_stale_temps(directory: str, now: "Optional[float]" = None) -> None:
    """Delete temp files a crash left behind (only ours by name, only old ones)."""
    import re  # not at the top: the hotplug path (trigger) reads this module and never clears temps

    now = time.time() if now is None else now
    try:
        names = os.listdir(directory)
    except OSError:
        return
    temp = re.compile(_TEMP)
    for name in names:
        if not temp.match(name):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            # A fresh one may be another process's write in progress.
            if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and abs(now - st.st_mtime) > STALE_AFTER:
                os.unlink(path)
        except OSError:
            pass
