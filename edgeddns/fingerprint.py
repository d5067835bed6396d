"""A fingerprint of how a record is published: the provider's settings and the record's.

State keeps it next to the published address, so pointing ``[providers.x]``
at another account, endpoint, zone, file, TTL or ``proxied`` value re-publishes
once instead of waiting for the address to change. Secrets enter only as a
hash salted per state file, and the whole is hashed again: the state file
never holds a secret or anything a secret can be read back from cheaply.
Transport settings (``ca_file``, ``timeout``) change nothing at the provider,
so they are left out; so are the address sources (the address itself is compared).
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Optional

from edgeddns.options import Secret

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig


@cache  # a failed import is not cached by Python: try once
def _sha256() -> Callable[[bytes], Any]:
    # The interpreter's built-in SHA-256 costs a no-change check about 1 ms to
    # import; hashlib loads OpenSSL (about 3 ms). Same digest either way.
    try:
        from _sha2 import sha256  # type: ignore[import-not-found]  # Python >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef]
        except ImportError:  # pragma: no cover - a build without the built-in module
            from hashlib import sha256  # type: ignore[assignment]
    return sha256


def _plain(v: Any, salt: str) -> Any:
    """``v`` as JSON-able data; a secret only as its salted hash."""
    if isinstance(v, Secret):
        return "secret:" + salted_digest(salt, v.reveal())
    if isinstance(v, dict):
        return {str(k): _plain(x, salt) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x, salt) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    # Not a TOML value: only its type, since a repr may hold a memory address that
    # differs per process and would re-publish on every run.
    return f"<{type(v).__name__}>"


def provider_fingerprint(provider: ProviderConfig, salt: str) -> str:
    """The provider's part: the same for every record it publishes (computed once per provider)."""
    return salted_digest(salt, {"type": provider.type, "endpoint": provider.endpoint,
                                "options": _plain(provider.options, salt)})


def fingerprint(provider: ProviderConfig, record: RecordConfig, salt: str,
                provider_part: Optional[str] = None) -> str:
    """A short hex digest that changes when any setting that shapes the published record changes."""
    what = {
        "provider": provider_part or provider_fingerprint(provider, salt),
        "record": {"name": record.name, "type": record.type, "zone": record.zone, "ttl": record.ttl,
                   "options": _plain(record.options, salt)},
    }
    return salted_digest(salt, what)[:32]


def salted_digest(salt: str, parts: Any) -> str:
    """SHA-256 of ``salt``, a NUL and ``parts`` as canonical JSON (also dyndns2's hold file uses it)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return _sha256()((salt + "\0" + text).encode("utf-8")).hexdigest()
