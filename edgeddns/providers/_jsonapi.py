"""What the HTTP JSON providers share: base URL, zone resolver, host, and HTTP status -> error class.

The status mapping is the one retry policy of these services: 429 is
rate_limited (with the wait the service asked for), 401/403 auth, 404
not_found, anything else a provider error that a later attempt may fix only
on a 5xx. A provider passes its own text and its own extra cases (an error
code in the body that means the same as a status) as flags; what a service
does differently in substance stays in its module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional
from urllib.parse import urlsplit

from edgeddns.errors import AuthError, NotFoundError, ProviderError, RateLimitedError
from edgeddns.providers.base import Provider

if TYPE_CHECKING:
    from edgeddns.http import HttpResponse


def status_error(status: int, text: str, retry_after: Optional[float] = None, *, rate_limited: bool = False,
                 auth: bool = False, not_found: bool = False, auth_text: Optional[str] = None) -> ProviderError:
    """The error for a failed answer: ``status`` first checked in the order rate limit, auth, not found.

    ``rate_limited``/``auth``/``not_found`` add the service's own signs of the same case (an error
    code in the body); ``auth_text`` replaces ``text`` for an auth error (a hint on what to fix).
    """
    if status == 429 or rate_limited:
        return RateLimitedError(text, retry_after=retry_after)
    if status in (401, 403) or auth:
        return AuthError(text if auth_text is None else auth_text)
    if status == 404 or not_found:
        return NotFoundError(text)
    return ProviderError(text, retryable=status >= 500, retry_after=retry_after)


def error_body(resp: HttpResponse) -> Any:
    """The JSON of an error answer, or None when it is not JSON (a gateway's HTML page)."""
    try:
        return resp.json()
    except ProviderError:
        return None


class JsonApiProvider(Provider):
    """A service at one base URL whose zones come from the account's list (``_list_zones``)."""

    #: the base URL when the config sets no ``endpoint``
    ENDPOINT = ""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.base = (self.config.endpoint or self.ENDPOINT).rstrip("/")
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, **self._zone_sources())

    def _zone_sources(self) -> Dict[str, Callable[..., Any]]:
        """The ZoneResolver's sources: the account's zone list unless a service looks zones up by name."""
        return {"list_zones": self._list_zones}

    def _list_zones(self) -> Dict[str, str]:
        raise NotImplementedError

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or self.config.type
