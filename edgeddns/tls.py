"""TLS contexts for everything the agent connects to.

Verification is always on: the chain and the hostname are checked against the
system CAs plus an optional extra ``ca_file``. There is deliberately no switch
to turn it off.

Only the *validity period* depends on the clock. When the agent's clock agrees
with the system clock, OpenSSL checks it as usual. Otherwise each new
connection is set up with ``X509_V_FLAG_NO_CHECK_TIME``. Either way, right
after the handshake (chain and hostname already verified by OpenSSL), we check
the dates of the verified chain ourselves: against the corrected time when an
offset is known, and always against the clock's floor (this release's date or
the latest time this device verified): no certificate that expired before the
floor is accepted, whatever any clock, NTP server or system clock says. A
failure is raised as ``ssl.SSLCertVerificationError``, which the HTTP layer
reports with the error code ``tls``.

What is checked: every certificate of the verified chain on Python 3.10 and
newer (through the ssl module's chain accessor), only the leaf on 3.9.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from edgeddns.clock import Clock, SystemClock

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (1.1.0 and later; an older OpenSSL ignores
#: the bit, which fails safe: the time is then still checked against the system clock).
NO_CHECK_TIME = getattr(ssl, "VERIFY_X509_NO_CHECK_TIME", 0x200000)
#: slack when judging validity at the corrected time (its error is about a second)
LEEWAY = 60.0
#: corrected and system clocks closer than this: let OpenSSL judge the dates itself
STRICT_TOLERANCE = 300.0
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _subject(info: Dict[str, Any]) -> str:
    for rdn in info.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return "?"


def validity_problem(chain: List[Dict[str, Any]], now: Optional[float], *, floor: float,
                     leeway: float = LEEWAY) -> Optional[tuple]:
    """Why this chain is not valid at ``now`` (with ``now`` None, only the floor is known).

    ``floor`` is a time known to have passed (the release date, or the latest
    time this device verified): a certificate that expired before it is refused
    whatever ``now`` says, so no clock (a lying NTP server, a wrong system clock)
    can bring an expired certificate back to life.
    Returns ``(verify_code, message)`` or None. ``chain`` holds dicts in the
    ``getpeercert()`` format, leaf first.
    """
    if not chain:
        return X509_V_ERR_CERT_HAS_EXPIRED, "the server presented no certificate to check"
    for i, info in enumerate(chain):
        try:
            not_before = ssl.cert_time_to_seconds(info["notBefore"])
            not_after = ssl.cert_time_to_seconds(info["notAfter"])
        except (KeyError, ValueError):
            return X509_V_ERR_CERT_HAS_EXPIRED, "a certificate's validity dates cannot be read"
        who = "certificate" if i == 0 else f"chain certificate {i} ({_subject(info)})"
        if not_after < floor:
            return (X509_V_ERR_CERT_HAS_EXPIRED,
                    f"{who} expired on {_iso(not_after)}, before {_iso(floor)}, a time known to have passed "
                    "(this edgeddns release's date or the latest time this device verified)")
        if now is None:
            continue
        if now + leeway < not_before:
            return (X509_V_ERR_CERT_NOT_YET_VALID,
                    f"{who} is not yet valid at the corrected time {_iso(now)} (from {_iso(not_before)})")
        elif now - leeway > not_after:
            return (X509_V_ERR_CERT_HAS_EXPIRED,
                    f"{who} has expired at the corrected time {_iso(now)} (on {_iso(not_after)})")
    return None


def peer_chain(obj: Any) -> List[Dict[str, Any]]:
    """The verified chain of a handshaken SSLSocket/SSLObject, leaf first (leaf only on 3.9)."""
    inner = getattr(obj, "_sslobj", None)
    getter = getattr(inner, "get_verified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            infos = [c.get_info() for c in chain if hasattr(c, "get_info")]
            if infos:
                return infos
        except (ssl.SSLError, ValueError, AttributeError):
            pass
    leaf = obj.getpeercert()
    return [leaf] if leaf else []


def _fail(code: int, message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    err.verify_code = code
    err.verify_message = message
    return err


class _CheckedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        ctx = self.context
        # Judged only against the release floor: judge again once the time is known.
        self._edgeddns_floor_only = not ctx.clock.trusted  # type: ignore[attr-defined]
        self._edgeddns_check(ctx.validity_problem(self))  # type: ignore[attr-defined]

    def sendall(self, data: Any, flags: int = 0) -> None:
        # A connection opened before the clock was known (e.g. the request whose
        # Date header taught us the time) is kept alive in the pool; check its
        # dates at the corrected time before it carries anything else.
        if getattr(self, "_edgeddns_floor_only", False) and self.context.clock.trusted:  # type: ignore[attr-defined]
            self._edgeddns_floor_only = False
            self._edgeddns_check(self.context.validity_problem(self))  # type: ignore[attr-defined]
        super().sendall(data, flags)

    def _edgeddns_check(self, problem: Optional[tuple]) -> None:
        if problem:
            self.close()
            raise _fail(*problem)


class _CheckedObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()
        problem = self.context.validity_problem(self)  # type: ignore[attr-defined]
        if problem:
            raise _fail(*problem)


class ClockedContext(ssl.SSLContext):
    """An SSLContext whose validity-period check follows the agent's clock."""

    sslsocket_class = _CheckedSocket
    sslobject_class = _CheckedObject

    def attach(self, clock: Clock, wall: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.wall = wall
        self._flags_lock = threading.Lock()
        self.verify_flags = int(self.verify_flags) | NO_CHECK_TIME

    def _strict(self) -> bool:
        """True when OpenSSL's own check against the system clock gives the right answer."""
        clock = self.clock
        if not clock.trusted:
            clock.settle()  # learn the time (NTP) before judging a certificate, if we can
        return clock.trusted and abs(clock.now() - self.wall()) <= STRICT_TOLERANCE

    # OpenSSL copies the verify flags into each connection when it is created
    # (SSL_new, inside these two calls), so they can be chosen per connection.
    # Should a future Python stop calling these, the flag stays set and the
    # post-handshake check still applies: it fails safe.
    def _wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        strict = self._strict()
        with self._flags_lock:
            self._set_time_check(strict)
            return super()._wrap_socket(*args, **kwargs)  # type: ignore[misc]

    def _wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        strict = self._strict()
        with self._flags_lock:
            self._set_time_check(strict)
            return super()._wrap_bio(*args, **kwargs)  # type: ignore[misc]

    def _set_time_check(self, strict: bool) -> None:
        flags = int(self.verify_flags)
        self.verify_flags = (flags & ~NO_CHECK_TIME) if strict else (flags | NO_CHECK_TIME)

    def validity_problem(self, obj: Any) -> Optional[tuple]:
        clock = self.clock
        now = clock.now() if clock.trusted else None
        return validity_problem(peer_chain(obj), now, floor=clock.floor())


def _hashed_dir(path: Optional[str]) -> bool:
    """True if ``path`` holds OpenSSL's hash-named CA links (``5ad8a5d6.0``)."""
    if not path:
        return False
    try:
        with os.scandir(path) as it:
            for e in it:
                stem, dot, n = e.name.partition(".")
                if dot and len(stem) == 8 and n.isdigit() and all(c in "0123456789abcdef" for c in stem):
                    return True
    except OSError:
        return False
    return False


def load_system_cas(ctx: ssl.SSLContext) -> None:
    """The system trust store, loaded lazily where the system allows it.

    OpenSSL reads a hashed certificate directory on demand (only the CAs a
    handshake needs), whereas the bundle file puts every CA in memory, about
    1.2 MB per context on Debian: most of what a long-running agent holds
    beyond its imports. Same trust either way; the bundle is used when the
    directory is not hashed or SSL_CERT_FILE asks for a file.
    """
    paths = ssl.get_default_verify_paths()
    if not os.environ.get(paths.openssl_cafile_env) and _hashed_dir(paths.capath):
        ctx.load_verify_locations(capath=paths.capath)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


def make_context(ca_file: Optional[str] = None, clock: Optional[Clock] = None, *,
                 wall: Callable[[], float] = time.time) -> ssl.SSLContext:
    """A verifying client context whose validity check follows ``clock`` (the system clock if None).

    Whatever the clock, the floor applies: see :func:`validity_problem`.
    """
    ctx = ClockedContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.attach(clock if clock is not None else SystemClock(wall), wall)
    load_system_cas(ctx)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
