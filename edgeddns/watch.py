"""A thread that sleeps on one socket until it is readable or told to stop.

The control socket and the netlink listener both need exactly this: no
polling while idle, and a prompt, clean stop (a self-pipe wakes the select).
"""

from __future__ import annotations

import os
import select
import threading
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    import _socket  # the base of socket.socket: the control server serves a bare one


class SocketWatcher:
    """Calls ``on_ready()`` each time ``sock`` is readable; returns False from it to stop."""

    def __init__(self, sock: _socket.socket, on_ready: Callable[[], bool], name: str):
        self.sock = sock
        self._on_ready = on_ready
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC) if hasattr(os, "pipe2") else os.pipe()
        self._thread: Optional[threading.Thread] = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.sock, self._wake_r], [], [])
            except InterruptedError:
                continue
            if self._wake_r in ready or not self._on_ready():
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the thread, wait for it, and close the pipe (not the socket: its owner does)."""
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(timeout)
        self._thread = None
        os.close(self._wake_r)
        os.close(self._wake_w)
