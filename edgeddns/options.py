"""The option types every provider declares: :class:`Secret` and :class:`Opt`.

A leaf module, so providers and the config loader share them without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple


class Secret:
    """A credential whose text never reaches a repr, a log or a dump."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str):
        self._value = value
        self.origin = origin  # "inline", "env:VAR", "file:PATH"

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<secret {self.origin}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Opt:
    """One option a provider accepts."""

    kind: type = str  # str, int, bool, float, dict, list, or Secret
    required: bool = False
    default: Any = None
    choices: Tuple[Any, ...] = ()
    check: Optional[Callable[[Any], Optional[str]]] = None  # returns an error text or None
    doc: str = ""
    #: the value is sent in an HTTP header (a dict: a map of header name -> value), so it must be
    #: one line of Latin-1 text; None means "yes for a Secret, no otherwise"
    header: Optional[bool] = None
    #: the value is a URL requests go to (checked like ``endpoint`` for cleartext credentials)
    url: bool = False

    def in_header(self) -> bool:
        return self.kind is Secret if self.header is None else self.header
