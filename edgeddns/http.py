"""The HTTP transport providers share.

Owns timeouts, TLS (through :mod:`edgeddns.tls`), the mapping of transport
failures to error codes, and feeding each response's ``Date`` header to the
clock. ``requests`` is imported here and nowhere at module level elsewhere, so
a run that needs no HTTP never pays for it.
"""

from __future__ import annotations

import email.utils
import json as _json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

from edgeddns import __version__
from edgeddns.errors import NetworkError, ProviderError, TlsError

if TYPE_CHECKING:
    from edgeddns.clock import Clock

USER_AGENT = f"edgeddns/{__version__}"
MAX_BODY = 1 << 20


@dataclass
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    elapsed: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return _json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            snippet = self.text[:120].replace("\n", " ")
            raise ProviderError(f"HTTP {self.status} from {urlsplit(self.url).hostname}: "
                                f"malformed JSON: {snippet!r}") from None

    def retry_after(self) -> Optional[float]:
        """``Retry-After`` in seconds (the delta form; the date form is treated as absent)."""
        v = self.headers.get("Retry-After")
        if v is None:
            return None
        try:
            return max(0.0, float(v))
        except ValueError:
            return None

    def server_time(self) -> Optional[float]:
        """The ``Date`` header as epoch seconds, if present and sane."""
        return parse_http_date(self.headers.get("Date"))


def parse_http_date(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    return dt.timestamp()


class HttpClient:
    """A small session: one connection pool, verified TLS, bounded bodies."""

    def __init__(self, *, clock: Clock, ca_file: Optional[str] = None, timeout: float = 10.0,
                 monotonic=time.monotonic):
        import warnings

        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.exceptions import SystemTimeWarning

        # urllib3 warns when the system clock is before its build year; the
        # clock and TLS modules handle a wrong clock, so the warning only misleads.
        warnings.filterwarnings("ignore", category=SystemTimeWarning)

        from edgeddns import tls

        self.clock = clock
        self.timeout = timeout
        self.monotonic = monotonic
        self._requests = requests
        context = tls.make_context(ca_file, clock)

        class _Adapter(HTTPAdapter):
            def init_poolmanager(self, *args, **kwargs):
                kwargs["ssl_context"] = context
                return super().init_poolmanager(*args, **kwargs)

            def proxy_manager_for(self, *args, **kwargs):
                kwargs["ssl_context"] = context
                return super().proxy_manager_for(*args, **kwargs)

        self.session = requests.Session()
        self.session.mount("https://", _Adapter(max_retries=0))
        self.session.mount("http://", HTTPAdapter(max_retries=0))
        self.session.headers["User-Agent"] = USER_AGENT
        self.context = context

    def request(self, method: str, url: str, *, params: Optional[Mapping[str, str]] = None,
                data: Any = None, json: Any = None, headers: Optional[Dict[str, str]] = None,
                auth: Any = None, timeout: Optional[float] = None) -> HttpResponse:
        req = self._requests
        host = urlsplit(url).hostname or "?"
        start = self.monotonic()
        try:
            resp = self.session.request(method, url, params=params, data=data, json=json, headers=headers,
                                        auth=auth, timeout=timeout or self.timeout, stream=True,
                                        allow_redirects=False)
            try:
                body = resp.raw.read(MAX_BODY + 1, decode_content=True)
            finally:
                resp.close()
        except req.exceptions.SSLError as e:
            raise TlsError(f"TLS to {host} failed: {_reason(e)}") from None
        except req.exceptions.Timeout:
            raise NetworkError(f"{host}: timed out after {timeout or self.timeout:g} s") from None
        except (req.exceptions.ConnectionError, req.exceptions.ChunkedEncodingError) as e:
            raise NetworkError(f"{host}: {_reason(e)}") from None
        except req.exceptions.RequestException as e:
            raise NetworkError(f"{host}: {_reason(e)}") from None
        elapsed = self.monotonic() - start
        if len(body) > MAX_BODY:
            raise ProviderError(f"{host}: response larger than {MAX_BODY} bytes")
        out = HttpResponse(resp.status_code, resp.headers, body, resp.url, elapsed)
        server_time = out.server_time()
        if server_time is not None:
            # Over https the Date header is authenticated by the verified chain.
            if url.startswith("https://"):
                self.clock.observe_server_time(host, server_time, rtt=elapsed)
        return out

    def close(self) -> None:
        self.session.close()


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, without URLs or params."""
    seen = set()
    e: Optional[BaseException] = exc
    text = ""
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and getattr(e, "strerror", None):
            text = e.strerror or text
        elif e.args and isinstance(e.args[0], str):
            text = e.args[0]
        nxt = getattr(e, "reason", None)
        if not isinstance(nxt, BaseException) and e.args and isinstance(e.args[0], BaseException):
            nxt = e.args[0]  # urllib3 wraps the ssl error as its first argument
        e = nxt if isinstance(nxt, BaseException) else (e.__cause__ or e.__context__)
    text = text or exc.__class__.__name__
    # urllib3 messages embed the request URL, which may carry signed query params.
    if "url:" in text:
        text = text.split("url:")[0].rstrip(" (")
    return text[:200]
