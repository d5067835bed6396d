"""An overall deadline for one network request.

Socket timeouts bound each read, not the request: a server sending one byte
just inside the timeout keeps a request alive for ever. A :class:`Deadline`
arms a timer for the whole budget; when it fires, it shuts down the socket of
whatever connection the request is using, so the blocked read returns at once
and the caller reports a timeout. Used by ``edgeddns.http``, whose pooled
connections read inside urllib3 (``edgeddns.echo`` owns its reads and arms a
budget before each instead); a leaf module (only ``socket`` and ``threading``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Optional


class Deadline:
    """``with Deadline(budget) as d: d.attach(conn_or_socket); ...`` then check ``d.expired``."""

    def __init__(self, budget: float):
        self.budget = budget
        self.expired = False
        self._target: Optional[Any] = None
        self._done = False
        self._lock = threading.Lock()
        self._end = time.monotonic() + budget
        self._timer = threading.Timer(budget, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._end = time.monotonic() + self.budget
        self._timer.start()
        return self

    def remaining(self) -> float:
        """Seconds left (for the steps a shutdown cannot cut short, such as a TCP connect)."""
        return max(0.0, self._end - time.monotonic())

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def attach(self, target: Any) -> None:
        """The socket (or an object with a ``sock`` attribute, e.g. a pooled connection) now in use."""
        with self._lock:
            if self._done:
                return
            self._target = target
            if self.expired:
                _shutdown(target)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
            self._target = None
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._target is not None:
                _shutdown(self._target)


def _shutdown(target: Any) -> None:
    sock = target if isinstance(target, socket.socket) else getattr(target, "sock", None)
    if not isinstance(sock, socket.socket):
        return
    try:
        # The plain socket's shutdown even for an ssl.SSLSocket: its own shutdown
        # drops the TLS object under the reading thread's feet.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed: the read ends by itself
