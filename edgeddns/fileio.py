"""Local files: written so a crash never leaves half of one, read with bounds,
kept in a directory no other user can touch.

Shared by the state store, the control socket, the config loader (secret
files) and the providers that write local files; a leaf module (``os``,
``stat``, ``time``; ``errno`` and ``re`` only in the functions that need
them), so a one-shot can use it at little cost. Whether a directory is
private enough is :func:`edgeddns.statedir.private_dir_problem`.
"""

import os
import stat
import time

TYPE_CHECKING = False  # typing's own flag would import typing on the hotplug path
if TYPE_CHECKING:
    from typing import Optional, Union

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
