"""What a debug line about one HTTP call needs to know of its caller: the attempt.

A leaf: the engine sets the attempt around each provider call, and the HTTP
transport reads it for its one debug line per request. A ContextVar, so
concurrent updates on other threads never see each other's.
"""

from __future__ import annotations

from contextvars import ContextVar

ATTEMPT: ContextVar[int] = ContextVar("edgeddns_attempt", default=1)
