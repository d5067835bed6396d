"""The ``edgeddns`` logger without importing :mod:`logging` until a line is due.

``logging`` (with ``traceback``, ``threading``, ``string`` and more) costs a
cron ``update`` that finds nothing changed about a tenth of its run, and such
a run usually logs nothing. Modules on that path log through
:class:`LazyLogger`; the one-shot command defers its logging setup with
:func:`defer_setup`. The first line at or above the deferred level imports
``logging``, runs the real setup (:func:`edgeddns.log.setup`) and is logged
as usual; lines below it are dropped as logging would drop them.

Once ``logging`` is imported (the agent, tests, anyone who configured it) a
LazyLogger forwards every call, so behaviour is exactly logging's. Before
that, an unconfigured ``logging`` would drop lines below WARNING (the root
logger's default level), and so does this. Standard library only.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
WARNING = 30

# The one deferred setup of this process: (level number, the call that performs it). Logging's
# configuration is process-wide by nature (as logging's own is); this is its not-yet-done part.
_deferred: List[tuple] = []


def defer_setup(level: str, setup: Callable[[], Any]) -> None:
    """Run ``setup`` (which configures logging) only when a line at ``level`` or above is logged."""
    _deferred[:] = [(LEVELS.get(level.lower(), 20), setup)]


def cancel_deferred() -> None:
    """Forget a setup no line needed: the command that deferred it is over."""
    _deferred.clear()


def still_deferred() -> bool:
    """Is the deferred setup still pending, that is, has no line been logged since it was deferred?"""
    return bool(_deferred)


def _due(level: int) -> bool:
    """Is a line at ``level`` to be logged? Performs the deferred setup when it is."""
    if "logging" in sys.modules and not _deferred:
        return True
    threshold = _deferred[0][0] if _deferred else WARNING
    if level < threshold:
        return False
    if _deferred:
        setup = _deferred.pop()[1]
        setup()
    return True


class LazyLogger:
    """Stands in for ``logging.getLogger(name)``: the methods the hot path uses."""

    def __init__(self, name: str = "edgeddns"):
        self.name = name

    def _emit(self, level: int, msg: object, args: tuple, kw: dict) -> None:
        if _due(level):
            import logging

            kw["stacklevel"] = kw.get("stacklevel", 1) + 2  # the caller, not this wrapper
            logging.getLogger(self.name).log(level, msg, *args, **kw)

    def isEnabledFor(self, level: int) -> bool:
        if "logging" in sys.modules and not _deferred:
            import logging

            return logging.getLogger(self.name).isEnabledFor(level)
        return level >= (_deferred[0][0] if _deferred else WARNING)

    def log(self, level: int, msg: object, *args: object, **kw: Any) -> None:
        self._emit(level, msg, args, kw)

    def debug(self, msg: object, *args: object, **kw: Any) -> None:
        self._emit(10, msg, args, kw)

    def info(self, msg: object, *args: object, **kw: Any) -> None:
        self._emit(20, msg, args, kw)

    def warning(self, msg: object, *args: object, **kw: Any) -> None:
        self._emit(30, msg, args, kw)

    def error(self, msg: object, *args: object, **kw: Any) -> None:
        self._emit(40, msg, args, kw)

    def exception(self, msg: object, *args: object, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._emit(40, msg, args, kw)

    def critical(self, msg: object, *args: object, **kw: Any) -> None:
        self._emit(50, msg, args, kw)
