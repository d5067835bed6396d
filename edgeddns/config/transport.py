"""Checks on what a provider will put on the wire, made once at load.

- A value that goes into an HTTP header must be one line of Latin-1 text:
  anything else fails every update later with an encoding error.
- Credentials must not travel over cleartext ``http://`` unless the host is
  the loopback (a local relay, a test fake) or the provider says
  ``allow_http = true`` (a trusted network, knowingly).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional, Tuple

from edgeddns.options import Opt, Secret
from edgeddns.redact import CREDENTIAL_HEADER as _CREDENTIAL_HEADER

_PLACEHOLDER_SECRET = "{secret}"


def header_problem(value: Any) -> Optional[str]:
    """Why ``value`` (a str or a Secret) cannot be sent in an HTTP header, or None."""
    text = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(text, str):
        return None
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return "must be Latin-1 text: it is sent in an HTTP header (non-Latin-1 characters cannot be)"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "must be one line without control characters: it is sent in an HTTP header"
    return None


def url_problem(url: str) -> Optional[str]:
    """Why ``url`` cannot be fetched at all (a port out of range or not a number, no host), or None:
    said at load instead of failing every request later."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as e:
        return f"{url!r} is not a valid URL ({e})"
    if not parts.hostname:
        return f"{url!r} names no host"
    return None


def is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials(options: Dict[str, Any], schema: Dict[str, Opt], url: str) -> List[str]:
    """Names of what a request to ``url`` would carry as credentials."""
    from urllib.parse import urlsplit  # here: a config without http:// URLs (hosts) never needs it

    found = [name for name, opt in schema.items() if opt.kind is Secret and options.get(name) is not None]
    parts = urlsplit(url)
    if parts.username or parts.password:
        found.append("the user:password in the URL")
    for name, opt in schema.items():
        value = options.get(name)
        if opt.kind is dict and opt.in_header() and isinstance(value, dict):
            found += [f"{name}.{h}" for h in value if _CREDENTIAL_HEADER.search(h)]
    return found


def urls_problem(endpoint: Optional[str], options: Dict[str, Any], schema: Dict[str, Opt]) -> Optional[Tuple[str, str]]:
    """(key, message) for the first URL of a provider (its endpoint, its URL options) that cannot be fetched."""
    urls = [("endpoint", endpoint)] + [(n, options.get(n)) for n, o in schema.items() if o.url]
    for key, url in urls:
        problem = url_problem(url) if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else None
        if problem:
            return key, problem
    return None


def cleartext_problem(endpoint: Optional[str], options: Dict[str, Any], schema: Dict[str, Opt],
                      allow_http: bool) -> Optional[Tuple[str, str]]:
    """(key, message) when credentials would be sent over http:// to a non-loopback host."""
    if allow_http:
        return None
    urls = [("endpoint", endpoint)] + [(n, options.get(n)) for n, o in schema.items() if o.url]
    for key, url in urls:
        if not isinstance(url, str) or not url.lower().startswith("http://"):
            continue
        from urllib.parse import urlsplit

        host = urlsplit(url).hostname or ""
        if is_loopback(host):
            continue
        creds = _credentials(options, schema, url)
        if creds:
            return key, (f"http:// would send {', '.join(creds)} in clear text to {host}: use https://, "
                         f"or set allow_http = true if this network is trusted")
    return None
