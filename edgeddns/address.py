"""One check for an address that is about to be stored, written or sent.

``ipaddress`` accepts any text after ``%`` as an IPv6 scope id, line breaks and
spaces included, and ``str()`` gives it back unchanged: a value that passes
``ip_address()`` can still carry a second hosts-file line. So an address is
only ever used in its canonical text form, and a scope id (meaningless on a
WAN address) is refused. Commands check at the boundary; providers that put
the value into a file, a body or a query check again before they write.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

from edgeddns.errors import BadAddressError


def canonical(value: Any, family: Optional[int] = None) -> str:
    """The address in canonical form; ``ValueError`` (with a reason) for anything else."""
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError("is not an IP address") from None
    if getattr(ip, "scope_id", None) is not None:
        raise ValueError("carries a scope id (%...), which a published address never has")
    if family is not None and ip.version != family:
        raise ValueError(f"is not an IPv{family} address")
    return str(ip)


def checked(value: Any, family: int, what: str = "address") -> str:
    """For providers: the canonical value, or :class:`BadAddressError`; never writes a bad one."""
    try:
        out = canonical(value, family)
    except ValueError as e:
        raise BadAddressError(f"refused to publish the {what}: it {e}") from None
    return out  # exactly what was checked, e.g. without surrounding blanks
