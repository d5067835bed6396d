"""A user-defined HTTP request, for any service without a module of its own.

Placeholders ``{ip}``, ``{record}``, ``{type}``, ``{previous_ip}`` (and
``{secret}`` in the URL and headers) are filled in *after* the template has
been split into its parts, and each value is escaped for the part it lands in:

- URL: percent-encoded (RFC 3986 unreserved characters stay), so an IPv6
  address or ``*`` cannot change the URL's structure; placeholders may not
  appear in the scheme or host at all.
- ``body_format = "json"``: the template is parsed as JSON first and values are
  substituted inside its strings, then serialised: quotes and backslashes in a
  value cannot break out of a string.
- ``body_format = "form"``: the template is split into ``key=value`` pairs
  first, then each pair is percent-encoded.
- ``body_format = "text"``: substituted as is (addresses and validated DNS
  names contain no characters a text body must escape; the address is
  checked to be canonical right here, whatever checked it before).
- headers: as is, and a value with a line break is refused.

Nothing here runs a shell or any process. The secret never appears in an
error message: answers are quoted only after the secret has been masked.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from edgeddns.errors import AuthError, ProviderError, RateLimitedError
from edgeddns.options import Opt, Secret
from edgeddns.providers.base import Provider

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.http import HttpResponse

PLACEHOLDERS = ("ip", "record", "type", "previous_ip", "secret")
_PH = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded",
                 "text": "text/plain; charset=utf-8"}


def fill(template: str, values: Mapping[str, str], escape=lambda s: s) -> str:
    """Replace each known ``{name}``; anything else in braces stays as written."""
    return _PH.sub(lambda m: escape(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def placeholders_in(obj: Any) -> List[str]:
    """Every ``{name}`` in a string, or in the keys and strings of a JSON-like structure."""
    if isinstance(obj, str):
        return _PH.findall(obj)
    if isinstance(obj, dict):
        return [n for k, v in obj.items() for n in placeholders_in(k) + placeholders_in(v)]
    if isinstance(obj, list):
        return [n for v in obj for n in placeholders_in(v)]
    return []


def render_url(template: str, values: Mapping[str, str]) -> str:
    # quote(safe=""): "/", "?", "&", "=", "#", ":" in a value are encoded, so a value is always data.
    return fill(template, values, lambda s: quote(s, safe=""))


def render_json(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        return fill(template, values)
    if isinstance(template, dict):
        return {render_json(k, values): render_json(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render_json(v, values) for v in template]
    return template


def render_form(template: str, values: Mapping[str, str]) -> str:
    pairs = parse_qsl(template, keep_blank_values=True)
    return urlencode([(fill(k, values), fill(v, values)) for k, v in pairs], quote_via=quote)


def _url_problem(url: str) -> Optional[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http:// or https:// URL"
    if _PH.search(parts.scheme + "://" + parts.netloc):
        return "placeholders may appear in the path and query, not in the scheme or host"
    return None


class WebhookProvider(Provider):
    OPTIONS = {
        "url": Opt(str, required=True, check=_url_problem, url=True, doc="the URL; placeholders in path and query"),
        "method": Opt(str, choices=METHODS, doc="GET without a body, POST with one"),
        "headers": Opt(dict, default=None, header=True, doc="extra headers; values may use placeholders"),
        "body": Opt(str, doc="body template (see body_format)"),
        "json": Opt(dict, doc="a TOML table sent as the JSON body (implies body_format = json)"),
        "body_format": Opt(str, choices=("json", "form", "text"), doc="how body placeholders are escaped"),
        "success_match": Opt(str, doc="regular expression the answer must contain (besides HTTP 2xx)"),
        "secret": Opt(Secret, doc="a credential usable as {secret} in the URL and headers only"),
    }
    WRITE_ONLY = True
    WANTS_PREVIOUS = True

    def __init__(self, ctx):
        super().__init__(ctx)
        o = self.options
        self.format: Optional[str] = o.get("body_format") or ("json" if o.get("json") is not None else
                                                              ("text" if o.get("body") is not None else None))
        if o.get("json") is not None:
            self.template: Any = o["json"]
        elif o.get("body") is not None and self.format == "json":
            self.template = json.loads(o["body"])
        else:
            self.template = o.get("body")
        self.method = o.get("method") or ("POST" if self.template is not None else "GET")
        self._match = re.compile(o["success_match"]) if o.get("success_match") else None

    @classmethod
    def check_config(cls, cfg: ProviderConfig, resolve_path) -> Optional[Tuple[str, str]]:
        o = cfg.options
        if cfg.endpoint:
            return "endpoint", "a webhook has no endpoint: put the whole address in url"
        if o.get("body") is not None and o.get("json") is not None:
            return "json", "give either body or json, not both"
        if o.get("json") is not None and o.get("body_format") not in (None, "json"):
            return "body_format", 'a json table is always sent as JSON (body_format = "json")'
        body = o.get("body")
        if body is not None and o.get("body_format") == "json":
            try:
                json.loads(body)
            except ValueError as e:
                return "body", f'is not valid JSON (body_format = "json"): {e}'
        if o.get("success_match"):
            try:
                re.compile(o["success_match"])
            except re.error as e:
                return "success_match", f"is not a valid regular expression: {e}"
        headers = o.get("headers") or {}
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                return f"headers.{name}", "is not a valid header name"
            if not isinstance(value, str):
                return f"headers.{name}", "must be a string"
            if "\r" in value or "\n" in value:
                return f"headers.{name}", "must be one line"
        secret = o.get("secret")
        if secret is not None and any(c in secret.reveal() for c in "\r\n"):
            return "secret", "must be one line"
        # Typos in placeholder names fail at load, not at the first address change.
        known = set(PLACEHOLDERS)
        places = [("url", o["url"]), ("body", body), ("json", o.get("json"))]
        places += [(f"headers.{k}", v) for k, v in headers.items()]
        for key, where in places:
            for name in placeholders_in(where):
                if name not in known:
                    return key, f"unknown placeholder {{{name}}} (known: {', '.join('{%s}' % p for p in known)})"
                if name == "secret" and key in ("body", "json"):
                    return key, "{secret} may be used in url and headers only"
                if name == "secret" and secret is None:
                    return key, "{secret} is used but no secret is configured"
        return None

    @property
    def host(self) -> str:
        return urlsplit(self.options["url"]).hostname or "webhook"

    def _values(self, record: RecordConfig, value: str, previous: Optional[str]) -> Dict[str, str]:
        from edgeddns.address import canonical, checked

        # Text bodies are filled in as is: only a canonical address may go there. The previous
        # address comes from the state file; one that is not plain is left out, not sent.
        try:
            previous = canonical(previous, record.family) if previous else ""
        except ValueError:
            previous = ""
        return {"ip": checked(value, record.family), "record": record.name, "type": record.type,
                "previous_ip": previous}

    def build(self, record: RecordConfig, value: str,
              previous: Optional[str] = None) -> Tuple[str, str, Dict[str, str], Optional[bytes]]:
        """(method, url, headers, body) for this record and address."""
        values = self._values(record, value, previous)
        with_secret = dict(values)
        secret = self.options.get("secret")
        if secret is not None:
            with_secret["secret"] = secret.reveal()
        url = render_url(self.options["url"], with_secret)
        headers = {k: fill(v, with_secret) for k, v in (self.options.get("headers") or {}).items()}
        if any("\r" in v or "\n" in v for v in headers.values()):
            raise ProviderError(f"webhook {self.host}: a header value would contain a line break")
        body: Optional[bytes] = None
        if self.template is not None:
            if self.format == "json":
                body = json.dumps(render_json(self.template, values), ensure_ascii=False).encode()
            elif self.format == "form":
                body = render_form(self.template, values).encode()
            else:
                body = fill(self.template, values).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = CONTENT_TYPES[self.format or "text"]
        return self.method, url, headers, body

    def ensure(self, record: RecordConfig, value: str, previous: Optional[str] = None) -> str:
        method, url, headers, body = self.build(record, value, previous)
        resp = self.ctx.http.request(method, url, data=body, headers=headers)
        self._check(resp)
        return "updated"

    def _redact(self, text: str) -> str:
        """The answer may echo the URL or headers: the secret goes before the text is quoted."""
        from edgeddns.redact import Redactor, credential_header_values

        secret = self.options.get("secret")
        secrets = [secret.reveal()] if secret is not None else []
        return Redactor(secrets + credential_header_values(self.options.get("headers") or {})).text(text)

    def _check(self, resp: HttpResponse) -> None:
        text = resp.text
        if 200 <= resp.status < 300:
            if self._match is None or self._match.search(text):
                return
            raise ProviderError(f"webhook {self.host}: HTTP {resp.status} but the answer does not match "
                                f"success_match: {self._snippet(text)!r}")
        where = f"webhook {self.host}: HTTP {resp.status}"
        if text.strip():
            where += f": {self._snippet(text)!r}"
        retry_after = resp.retry_after()
        if resp.status in (401, 403):
            raise AuthError(where)
        if resp.status == 429:
            raise RateLimitedError(where, retry_after=retry_after)
        if 300 <= resp.status < 400:
            raise ProviderError(where + " (redirects are not followed: use the final URL)")
        raise ProviderError(where, retryable=resp.status >= 500, retry_after=retry_after)

    def _snippet(self, text: str) -> str:
        text = self._redact(text)
        return "".join(c if c.isprintable() else " " for c in text[:100]).strip()
