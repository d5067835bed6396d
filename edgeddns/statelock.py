"""One writer per state dir: an ``flock`` held for the writer's lifetime.

``edgeddns run`` holds ``<state_dir>/control.lock`` as long as it runs; a
one-shot ``edgeddns update`` holds it while it writes. The file names the
holder (``<pid> <role>``), so whoever finds it taken can say who has it, and
a one-shot can hand its work to a running agent instead of writing behind
its back. The lock dies with its process, so a killed agent leaves nothing
to clean up.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

LOCK_NAME = "control.lock"


@dataclass
class Holder:
    """Who holds the state dir's lock."""

    pid: Optional[int]
    role: str  # "run" (an agent) or "update" (a one-shot)


class StateLock:
    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self, role: str, wait: float = 0.0, step: float = 0.05) -> Optional[Holder]:
        """Take the lock (None), or after ``wait`` seconds say who holds it. OSError if it cannot be tried."""
        import fcntl

        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    os.close(fd)
                    return holder(self.path)
                time.sleep(step)
            except OSError:
                break  # no flock on this file system: run unguarded, as before
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {role}\n".encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def holder(path: str) -> Holder:
    """Who holds the lock at ``path``, as far as its content says."""
    try:
        with open(path, "rb") as f:
            words = f.read(64).decode("ascii", "replace").split()
    except OSError:
        words = []
    pid = int(words[0]) if words and words[0].isdigit() else None
    return Holder(pid, words[1] if len(words) > 1 else "run")
