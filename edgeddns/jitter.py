"""The agent's default source of random delays, without the :mod:`random` module.

Every jitter in the agent (verification, retries, breakers, command spreads,
reconnects) needs only ``uniform(a, b)``. :mod:`random` would bring ``math``,
``bisect`` and hashing into an idle daemon that never needs them; the kernel's
random bytes give the same uniform numbers. Tests inject a seeded
``random.Random`` instead (same method, same meaning).
"""

from __future__ import annotations

import os
import time

_MASK = (1 << 64) - 1


class Jitter:
    """``random.Random.uniform`` from the kernel's random bytes: 53 random bits, as ``random.random()`` has."""

    def __init__(self) -> None:
        self._n = 0

    def random(self) -> float:
        """A float in [0, 1)."""
        return (int.from_bytes(self._bytes(), "big") >> 3) / 9007199254740992.0  # 2 ** 53

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def _bytes(self) -> bytes:
        try:
            return os.getrandom(7, os.GRND_NONBLOCK)
        except BlockingIOError:
            # Early boot on an older kernel: the pool is not ready and getrandom (os.urandom too) would
            # wait for it, where random.Random seeds itself from the time instead. A jitter only has to
            # differ between devices and draws: the clock and pid, mixed (splitmix64).
            self._n += 1
            z = (time.time_ns() ^ (os.getpid() << 40) ^ (self._n * 0x9E3779B97F4A7C15)) & _MASK
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
            return ((z ^ (z >> 31)) >> 8).to_bytes(7, "big")
        except (AttributeError, OSError):  # no getrandom (not Linux, or a kernel before 3.17)
            return os.urandom(7)
