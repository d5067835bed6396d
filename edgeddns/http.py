"""The HTTP transport providers share.

Owns timeouts, TLS (through :mod:`edgeddns.tls`), the mapping of transport
failures to error codes, and feeding each response's ``Date`` header to the
clock. ``requests`` is imported here and nowhere at module level elsewhere, so
a run that needs no HTTP never pays for it.
"""

from __future__ import annotations

import email.utils
import json as _json
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional
from urllib.parse import urlsplit

from edgeddns import USER_AGENT
from edgeddns.deadline import Deadline
from edgeddns.errors import NetworkError, ProviderError, TlsError
from edgeddns.lazylog import LazyLogger

if TYPE_CHECKING:
    from edgeddns.clock import Clock

MAX_BODY = 1 << 20
log = LazyLogger("edgeddns")  # a one-shot sets logging up only when a line is due


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
        except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting is RecursionError
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

        requests = import_requests()
        from requests.adapters import HTTPAdapter
        from urllib3.exceptions import SystemTimeWarning

        # urllib3 warns when the system clock is before its build year; the
        # clock and TLS modules handle a wrong clock, so the warning only misleads.
        warnings.filterwarnings("ignore", category=SystemTimeWarning)

        self.clock = clock
        self.timeout = timeout
        self.monotonic = monotonic
        self._requests = requests
        self._local = threading.local()  # the Deadline of the request this thread is making
        pools = _watched_pools(self._local)

        class _Adapter(HTTPAdapter):
            def __init__(self, make_context: Optional[Callable[[], Any]] = None):
                # The TLS context (with its CA store: the whole bundle where SSL_CERT_FILE names one,
                # about 1.2 MB that stays resident) is built by the first request that needs it: a
                # provider that speaks plain HTTP never does.
                self._make_context = make_context
                self._ssl_context: Any = None
                super().__init__(max_retries=0)

            def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
                if self._make_context is not None:
                    self._ssl_context, self._make_context = self._make_context(), None
                    # Pools are made on first use, so none exists yet without it (proxy managers
                    # are made later still, by proxy_manager_for below).
                    self.poolmanager.connection_pool_kw["ssl_context"] = self._ssl_context
                return super().send(request, *args, **kwargs)

            def init_poolmanager(self, *args, **kwargs):
                if self._ssl_context is not None:
                    kwargs["ssl_context"] = self._ssl_context
                super().init_poolmanager(*args, **kwargs)
                self.poolmanager.pool_classes_by_scheme = pools

            def proxy_manager_for(self, *args, **kwargs):
                if self._ssl_context is not None:
                    kwargs["ssl_context"] = self._ssl_context
                manager = super().proxy_manager_for(*args, **kwargs)
                manager.pool_classes_by_scheme = pools
                return manager

        self.session = requests.Session()
        self.session.mount("https://", _Adapter(lambda: _tls_context(ca_file, clock)))
        self.session.mount("http://", _Adapter())
        self.session.headers["User-Agent"] = USER_AGENT
        # Small JSON answers need no compression, and an uncompressed body is
        # one our own bound below measures exactly.
        self.session.headers["Accept-Encoding"] = "identity"
        # A session-wide auth that changes nothing: requests then skips its ~/.netrc ($NETRC) lookup,
        # which reads that file on every request without auth of its own and sends its login to the
        # host (replacing a Bearer header too). A provider's credentials come from the config only;
        # proxies from the environment still apply.
        self.session.auth = _no_ambient_auth

    def request(self, method: str, url: str, *, params: Optional[Mapping[str, str]] = None,
                data: Any = None, json: Any = None, headers: Optional[Dict[str, str]] = None,
                auth: Any = None, timeout: Optional[float] = None) -> HttpResponse:
        """One request; ``timeout`` (or the client's) bounds the whole of it, connect to last byte."""
        from urllib3.exceptions import HTTPError as Urllib3Error

        req = self._requests
        parts = urlsplit(url)
        host = parts.hostname or "?"
        budget = timeout or self.timeout
        start = self.monotonic()
        outcome = "no answer"
        try:
            with Deadline(budget) as deadline:
                self._local.deadline = deadline
                try:
                    resp = self.session.request(method, url, params=params, data=data, json=json, headers=headers,
                                                auth=auth, timeout=budget, stream=True, allow_redirects=False)
                    try:
                        body = _read_body(resp, host)
                    finally:
                        deadline.cancel()  # before the connection goes back to the pool
                        resp.close()
                except req.exceptions.SSLError as e:
                    if deadline.expired:
                        raise NetworkError(f"{host}: timed out after {budget:g} s") from None
                    raise TlsError(f"TLS to {host} failed: {_reason(e)}") from None
                except req.exceptions.Timeout:
                    raise NetworkError(f"{host}: timed out after {budget:g} s") from None
                except (req.exceptions.RequestException, Urllib3Error, OSError) as e:
                    if deadline.expired:
                        raise NetworkError(f"{host}: timed out after {budget:g} s") from None
                    raise NetworkError(f"{host}: {_reason(e)}") from None
                finally:
                    self._local.deadline = None
            outcome = str(resp.status_code)
        except ProviderError as e:
            outcome = f"[{e.code}]"
            raise
        finally:
            _trace(method, host, parts.path or "/", outcome, self.monotonic() - start)
        elapsed = self.monotonic() - start
        out = HttpResponse(resp.status_code, resp.headers, body, resp.url, elapsed)
        server_time = out.server_time()
        if server_time is not None:
            # Over https the Date header is authenticated by the verified chain.
            if url.startswith("https://"):
                self.clock.observe_server_time(host, server_time, rtt=elapsed)
        return out

    def close(self) -> None:
        self.session.close()


def _no_ambient_auth(request: Any) -> Any:
    return request


def _tls_context(ca_file: Optional[str], clock: Clock) -> Any:
    from edgeddns import tls  # only with the first https request (see _Adapter)

    return tls.make_context(ca_file, clock)


# What requests imports only to guess the encoding of Response.text (see import_requests).
CHARSET_DETECTORS = ("charset_normalizer", "chardet")


def import_requests() -> Any:
    """``requests``, imported without a character-set detector.

    requests loads charset_normalizer (or chardet) only to guess the encoding
    of ``Response.text``; this module reads the raw bytes and decodes them
    itself. The detector is the largest part of what an HTTP update leaves in
    a daemon (its compiled tables: about 2.6 MiB of the 6.6 that requests
    costs). requests 2.32 and later go without one (``apparent_encoding`` is
    then UTF-8); an older requests that needs one is imported as it is.
    """
    import sys
    import warnings

    # requests says once that it found no detector: that is the intent here, not news.
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection", module="requests")
    blocked = [m for m in CHARSET_DETECTORS if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # "import m" raises ImportError (only while requests loads)
    try:
        import requests
    except ImportError:
        for name in [k for k in sys.modules if k == "requests" or k.startswith("requests.")]:
            del sys.modules[name]  # the half-imported package: import it again, detector and all
        for m in blocked:
            del sys.modules[m]
        blocked = []
        import requests
    finally:
        for m in blocked:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]  # no one else is refused it
    return requests


def _trace(method: str, host: str, path: str, outcome: str, elapsed: float) -> None:
    """One debug line per HTTP call. No query string (DuckDNS puts its token there), no headers."""
    if log.isEnabledFor(10):  # DEBUG
        from edgeddns.trace import ATTEMPT

        log.debug("http %s %s%s -> %s in %.0f ms (attempt %d)", method, host, path, outcome, elapsed * 1000,
                  ATTEMPT.get())


def _read_body(resp: Any, host: str) -> bytes:
    """At most MAX_BODY bytes, counted after decoding, whatever the urllib3 version would do."""
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    inflate: Any = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        # 32 + 15: a zlib or gzip header, detected; max_length keeps a bomb from inflating past the cap.
        inflate = zlib.decompressobj(32 + 15)
    elif encoding not in ("", "identity"):
        raise ProviderError(f"{host}: answered with unsupported Content-Encoding {encoding!r}")
    out = bytearray()
    while len(out) <= MAX_BODY:
        chunk = resp.raw.read(65536, decode_content=False)
        if not chunk:
            break
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, MAX_BODY + 1 - len(out))
            except zlib.error:
                raise ProviderError(f"{host}: malformed {encoding} body") from None
        out += chunk
    if len(out) > MAX_BODY:
        raise ProviderError(f"{host}: response larger than {MAX_BODY} bytes")
    return bytes(out)


def _watched_pools(local: threading.local) -> Dict[str, Any]:
    """Pool classes whose connections report themselves to the current request's Deadline."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(base: Any) -> Any:
        class Watched(base):
            def connect(self, *args: Any, **kwargs: Any) -> Any:
                _attach(self)
                return super().connect(*args, **kwargs)

            def request(self, *args: Any, **kwargs: Any) -> Any:
                _attach(self)  # also a kept-alive connection taken from the pool
                return super().request(*args, **kwargs)

        return Watched

    def _attach(conn: Any) -> None:
        deadline = getattr(local, "deadline", None)
        if deadline is not None:
            deadline.attach(conn)

    class Pool(HTTPConnectionPool):
        ConnectionCls = watched(HTTPConnection)

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = watched(HTTPSConnection)

    return {"http": Pool, "https": TlsPool}


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
