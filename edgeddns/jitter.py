"""The agent's default source of random delays, without the :mod:`random` module.

Every jitter in the agent (verification, retries, breakers, command spreads,
reconnects) needs only ``uniform(a, b)``. :mod:`random` would bring ``math``,
``bisect`` and hashing into an idle daemon that never needs them; the kernel's
random bytes give the same uniform numbers. Tests inject a seeded
``random.Random`` instead (same method, same meaning).
"""

from __future__ import annotations

import os


class Jitter:
    """``random.Random.uniform`` from ``os.urandom``: 53 random bits, as ``random.random()`` has."""

    def random(self) -> float:
        """A float in [0, 1)."""
        return (int.from_bytes(os.urandom(7), "big") >> 3) / 9007199254740992.0  # 2 ** 53

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()
