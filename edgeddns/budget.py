"""One exchange's time, connect to last byte, shared by every blocking step.

A socket timeout bounds each read, not the exchange: a peer sending one byte
just inside it keeps the exchange alive for ever. Before each blocking step
the socket's timeout is set to what is left of the whole budget instead, so
no trickle can stretch it. For code that owns its reads (the ``url:`` fetch,
RFC 2136 over UDP and TCP); reads inside urllib3 are cut by
:class:`edgeddns.deadline.Deadline`'s timer instead. ``_socket`` and ``time``
only: the no-change check's ``url:`` fetch uses it.
"""

import _socket
import time


class Budget:
    """``seconds`` from now, for every step of one exchange."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; a socket timeout when none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise _socket.timeout("the exchange's time budget is spent")
        return left

    def arm(self, sock: "_socket.socket") -> None:
        """Let ``sock``'s next blocking step take what is left, no more."""
        sock.settimeout(self.left())
