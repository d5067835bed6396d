"""TLS contexts for everything the agent connects to.

Verification is always on: the chain and the hostname are checked against the
system CAs plus an optional extra ``ca_file``. There is deliberately no switch
to turn it off. ``edgeddns.timesync`` extends this so the validity period is
judged by the corrected clock when the system clock is not trusted.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from edgeddns.clock import Clock


def make_context(ca_file: Optional[str] = None, clock: Optional[Clock] = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
