"""Small pieces the signed providers share (dnspod, huaweicloud, route53, alidns V3).

Each provider keeps its own signer in its own module, because each owner
documents its own canonical form; only the primitives that are the same
everywhere live here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    pass


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def hmac_sha256(key: bytes, msg: str) -> bytes:
    import hashlib
    import hmac

    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def rfc3986(value: str) -> str:
    """Percent-encode everything but A-Z a-z 0-9 - _ . ~ (space is %20, never +)."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted by encoded name, both sides RFC 3986 encoded: the form every scheme here signs."""
    pairs = sorted((rfc3986(k), rfc3986(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def host_header(url: str) -> str:
    """The Host header requests will send for ``url`` (port kept unless it is the scheme's default)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    if parts.port and parts.port != default:
        host = f"{host}:{parts.port}"
    return host
