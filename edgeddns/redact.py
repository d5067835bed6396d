"""The one redaction step: configured secrets out of everything we output.

Every output channel (the CLI's lines and ``--json``, log lines, MQTT
results/state/answers, control-socket answers, a webhook's error snippets)
passes its data through a :class:`Redactor` *before* serialising it, so a
secret is matched as the text it is, not as JSON or ``repr`` turned it. Text
that already is serialised somewhere upstream (a provider's answer quoted in
an error message, a URL in a transport error) is matched in the forms a secret
takes there too: JSON-escaped, ``repr``-escaped, percent-encoded.

Each channel gets its Redactor from the live config (``Config.redactor``), so
a secret a reload adds is masked from then on. A leaf module.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, Tuple

# Header names that carry credentials by convention.
CREDENTIAL_HEADER = re.compile(r"auth|token|key|secret|pass|cookie|signature|session", re.IGNORECASE)
MASK = "***"
MIN_LENGTH = 4  # shorter "secrets" would mask ordinary words everywhere


def _repr_body(text: str, quote_char: str) -> str:
    """``text`` as it appears inside a ``repr`` of a larger string quoted with ``quote_char``."""
    return "".join("\\" + c if c == quote_char else repr(c)[1:-1] for c in text)


def _forms(secret: str) -> List[str]:
    from urllib.parse import quote, quote_plus  # here: a config without secrets never needs it

    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             _repr_body(secret, "'"), _repr_body(secret, '"'), ascii(secret)[1:-1],
             quote(secret, safe=""), quote(secret), quote_plus(secret)}
    return [f for f in forms if len(f) >= MIN_LENGTH]


class Redactor:
    """Replaces every configured secret, in each of its spellings, by ``***``."""

    __slots__ = ("_forms",)

    def __init__(self, secrets: Iterable[str] = ()):
        forms = {f for s in secrets if s and len(s) >= MIN_LENGTH for f in _forms(s)}
        # Longest first: a secret that contains another is masked whole.
        self._forms: Tuple[str, ...] = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str) -> str:
        for f in self._forms:
            if f in text:
                text = text.replace(f, MASK)
        return text

    def data(self, obj: Any) -> Any:
        """A copy of ``obj`` (JSON-like: dicts, lists, strings...) with every string redacted."""
        if not self._forms:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.data(k) if isinstance(k, str) else k: self.data(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.data(v) for v in obj]
        return obj


def credential_header_values(headers: Dict[str, Any]) -> List[str]:
    """The literal values of credential-named headers (``{secret}`` placeholders are secrets already)."""
    return [v for k, v in headers.items()
            if isinstance(v, str) and CREDENTIAL_HEADER.search(k) and v and "{" not in v]


NONE = Redactor()
