"""The dyndns2 update protocol (``/nic/update``), with presets, and DuckDNS.

The protocol is write-only: a client cannot read the record back, so this
provider overrides ``ensure`` and relies on the engine's saved state to avoid
needless updates (services block clients that send repeated ``nochg``).

Every error answer of the protocol means "do not try again as you are": the
services document that ``badauth``, ``nohost``, ``abuse`` and the like need the
user to fix something, and that after ``911`` or ``dnserr`` a client must wait
at least 30 minutes. A process restart or the next address change must not
undo that, so the hold is written to ``<state_dir>/dyndns2-hold.json``, keyed by
provider and record, together with a salted fingerprint of everything that
shapes the request (endpoint, credentials, host name). A changed configuration
has a different fingerprint and releases the hold; so does a 30-minute hold
running out. See docs/providers.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Type
from urllib.parse import urlsplit

from edgeddns import USER_AGENT
from edgeddns.errors import AuthError, NotFoundError, ProviderError, RateLimitedError
from edgeddns.fileio import write_atomic
from edgeddns.options import Opt, Secret
from edgeddns.providers.base import Provider

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.http import HttpResponse

HOLD_FILE = "dyndns2-hold.json"
WAIT_SECONDS = 30 * 60  # 911 / dnserr: "retry no sooner than 30 minutes"
DEFAULT_USER_AGENT = USER_AGENT


@dataclass(frozen=True)
class Preset:
    url: str
    shape: str = "dyndns2"  # "dyndns2" (Basic auth, /nic/update) or "duckdns" (token URL)
    v4_param: str = "myip"
    v6_param: str = "myip"
    #: extra parameters per family that keep the service from touching the other family
    keep_other: Dict[str, Dict[str, str]] = field(default_factory=dict)
    #: record types the endpoint can update
    families: Tuple[str, ...] = ("A", "AAAA")
    doc: str = ""


PRESETS: Dict[str, Preset] = {
    "dyndns": Preset("https://members.dyndns.org/nic/update", doc="Dyn (Oracle) Remote Access"),
    "noip": Preset("https://dynupdate.no-ip.com/nic/update", v6_param="myipv6", doc="No-IP"),
    # Dynu fills in the address it sees for a family that is not given; "no" leaves it alone.
    "dynu": Preset("https://api.dynu.com/nic/update", v6_param="myipv6",
                   keep_other={"A": {"myipv6": "no"}, "AAAA": {"myip": "no"}}, doc="Dynu"),
    "he": Preset("https://dyn.dns.he.net/nic/update", doc="Hurricane Electric (username = host name, "
                 "password = the record's key)"),
    "duckdns": Preset("https://www.duckdns.org/update", shape="duckdns", doc="DuckDNS (token)"),
    # deSEC: a family not given is taken from the connection's address; "preserve" leaves it alone.
    "desec": Preset("https://update.dedyn.io/nic/update", v4_param="myipv4", v6_param="myipv6",
                    keep_other={"A": {"myipv6": "preserve"}, "AAAA": {"myipv4": "preserve"}},
                    doc="deSEC (username = the domain, password = a token)"),
    # dynv6's dyndns2 endpoint updates only the IPv4 address of a zone (its own /api/update does more).
    "dynv6": Preset("https://dynv6.com/nic/update", families=("A",), doc="dynv6 (password = the zone's token)"),
}


@dataclass(frozen=True)
class Answer:
    """What one protocol answer means and what the client must do next."""

    error: Type[ProviderError]
    text: str
    hold: Optional[float]  # None: until the configuration changes; else seconds


# The answers the protocol documents. Every one of them is fatal for the
# current configuration except 911/dnserr, which ask for a 30-minute pause.
ANSWERS: Dict[str, Answer] = {
    "badauth": Answer(AuthError, "the user name and password were refused", None),
    "!donator": Answer(ProviderError, "the update asked for a feature this account does not have", None),
    "notfqdn": Answer(NotFoundError, "the host name is not a fully qualified name the service accepts", None),
    "nohost": Answer(NotFoundError, "the host name does not exist in this account", None),
    "numhost": Answer(ProviderError, "too many host names in one update (or a round-robin host)", None),
    "abuse": Answer(RateLimitedError, "the host name is blocked for update abuse", None),
    "badagent": Answer(ProviderError, "the service refused this client (User-Agent or request form)", None),
    "dnserr": Answer(ProviderError, "the service reported an error in its DNS system", WAIT_SECONDS),
    "911": Answer(ProviderError, "the service reported a problem or maintenance on its side", WAIT_SECONDS),
    # DuckDNS has only one error answer: a wrong token or a domain not in the account.
    "KO": Answer(AuthError, "the token or the domain was refused", None),
}


def _iso(ts: float) -> str:
    from edgeddns.result import iso

    return iso(ts)


class HoldStore:
    """The persisted "do not send" marks, one per provider and record.

    The file is tiny and written only when a hold starts or ends, so it costs
    no flash wear on a healthy system. If it cannot be written the hold lives
    in memory for this process, which is still better than hammering.
    """

    def __init__(self, directory: Optional[str]):
        self.directory = directory
        self.path = os.path.join(directory, HOLD_FILE) if directory else None
        self.data: Dict[str, Any] = {"version": 1, "salt": "", "holds": {}}
        self.error: Optional[str] = None
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        from edgeddns.fileio import read_limited

        try:
            # In the state dir: a regular file of bounded size, never through a symlink.
            data = json.loads(read_limited(self.path, 1 << 20, follow=False).decode("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # unreadable: behave as if no hold existed (one request at most)
        if isinstance(data, dict) and isinstance(data.get("holds"), dict):
            self.data = {"version": 1, "salt": str(data.get("salt", "")), "holds": data["holds"]}

    @property
    def salt(self) -> str:
        if not self.data["salt"]:
            import secrets

            self.data["salt"] = secrets.token_hex(16)
        return self.data["salt"]

    def fingerprint(self, parts: Any) -> str:
        # Salted so the file does not hold a plain hash of a password.
        from edgeddns.fingerprint import salted_digest

        return salted_digest(self.salt, parts)

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        h = self.data["holds"].get(key)
        return h if isinstance(h, dict) else None

    def put(self, key: str, entry: Dict[str, Any]) -> None:
        self.data["holds"][key] = entry
        self._flush()

    def drop(self, key: str) -> None:
        if self.data["holds"].pop(key, None) is not None:
            self._flush()

    def _flush(self) -> None:
        if self.path is None:
            return
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True), mode=0o600)
            self.error = None
        except OSError as e:
            self.error = f"cannot write {self.path}: {e.strerror}"


class Dyndns2Provider(Provider):
    OPTIONS = {
        "preset": Opt(str, choices=tuple(PRESETS), doc="a known service; sets the endpoint and request shape"),
        "username": Opt(str, doc="account or DDNS-key user name (dyndns2 services)"),
        "password": Opt(Secret, header=False, doc="password or DDNS-key password (dyndns2 services)"),
        "token": Opt(Secret, doc="account token (DuckDNS)"),
        "user_agent": Opt(str, default=DEFAULT_USER_AGENT, header=True, doc="User-Agent sent with every update"),
    }
    WRITE_ONLY = True

    def __init__(self, ctx, now: Optional[Callable[[], float]] = None):
        super().__init__(ctx)
        preset = PRESETS.get(self.options.get("preset") or "")
        self.preset = preset or Preset(self.config.endpoint or "")
        self.url = self.config.endpoint or self.preset.url
        self._now = now
        self._holds: Optional[HoldStore] = None

    @classmethod
    def check_config(cls, cfg: ProviderConfig, resolve_path) -> Optional[Tuple[str, str]]:
        o = cfg.options
        if not o.get("preset") and not cfg.endpoint:
            return "preset", f"give a preset ({', '.join(PRESETS)}) or an endpoint URL"
        shape = PRESETS[o["preset"]].shape if o.get("preset") else "dyndns2"
        if shape == "duckdns":
            if o.get("token") is None:
                return "token", "is required for DuckDNS (inline, env:VAR, or token_file)"
        else:
            if not o.get("username"):
                return "username", "is required"
            if o.get("password") is None:
                return "password", "is required (inline, env:VAR, or password_file)"
        ua = o.get("user_agent") or ""
        if not ua.strip() or any(c in ua for c in "\r\n"):
            return "user_agent", "must be one non-empty line"
        return None

    @classmethod
    def check_record(cls, cfg: ProviderConfig, record: RecordConfig) -> Optional[Tuple[str, str]]:
        name = cfg.options.get("preset")
        preset = PRESETS.get(name or "")
        if preset is None:
            return None
        if record.type not in preset.families:
            return "type", f"the {name} update endpoint can only set {'/'.join(preset.families)} records"
        if preset.shape == "duckdns":
            sub = record.name[: -len(".duckdns.org")] if record.name.endswith(".duckdns.org") else ""
            if not sub or "." in sub:
                return "name", f'DuckDNS updates names of the form <sub>.duckdns.org, not "{record.name}"'
        return None

    @classmethod
    def config_warnings(cls, cfg: ProviderConfig) -> List[Tuple[str, str]]:
        ua = cfg.options.get("user_agent") or DEFAULT_USER_AGENT
        if cfg.options.get("preset") == "noip" and "@" not in ua:
            return [("user_agent", "No-IP asks for a User-Agent naming the client and a contact e-mail, e.g. "
                                   f'"{DEFAULT_USER_AGENT} you@example.com"')]
        return []

    @classmethod
    def default_keepalive(cls, options: dict) -> Optional[float]:
        """Days between re-sends of an unchanged address: No-IP deletes free hosts after 30 days without one."""
        return 25.0 if options.get("preset") == "noip" else None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "dyndns2"

    @property
    def holds(self) -> HoldStore:
        if self._holds is None:
            self._holds = HoldStore(self.ctx.state_dir)
        return self._holds

    def now(self) -> float:
        return self._now() if self._now else self.ctx.clock.now()

    # -- the request -------------------------------------------------------
    def _request_parts(self, record: RecordConfig, value: str) -> Tuple[Dict[str, str], Dict[str, str]]:
        from edgeddns.address import checked

        value = checked(value, record.family)  # the query carries exactly one plain address
        headers = {"User-Agent": self.options.get("user_agent") or DEFAULT_USER_AGENT}
        p = self.preset
        if p.shape == "duckdns":
            sub = record.name[: -len(".duckdns.org")]  # check_record made sure of the form
            params = {"domains": sub, "token": self.options["token"].reveal(),
                      ("ip" if record.type == "A" else "ipv6"): value, "verbose": "true"}
            return params, headers
        params = {"hostname": record.name, (p.v4_param if record.type == "A" else p.v6_param): value}
        params.update(p.keep_other.get(record.type, {}))
        import base64

        cred = f"{self.options['username']}:{self.options['password'].reveal()}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(cred).decode()
        return params, headers

    def _fingerprint(self, record: RecordConfig) -> str:
        secret = self.options.get("password") or self.options.get("token")
        return self.holds.fingerprint([self.url, self.preset.shape, self.options.get("username"),
                                       secret.reveal() if secret else None, self.options.get("user_agent"),
                                       record.name, record.type])

    def ensure(self, record: RecordConfig, value: str) -> str:
        key = f"{self.config.name}/{record.name}/{record.type}"  # the hold file's key since version 1
        fp = self._fingerprint(record)
        self._check_hold(key, fp)
        params, headers = self._request_parts(record, value)
        resp = self.ctx.http.request("GET", self.url, params=params, headers=headers)
        try:
            status = self._parse(resp, value)
        except _Held as e:
            now = self.now()
            self.holds.put(key, {"answer": e.answer, "config": fp, "since": round(now, 3),
                                 "until": None if e.hold is None else round(now + e.hold, 3)})
            raise _answer_error(self.host, e.answer) from None
        if self.holds.get(key) is not None:
            self.holds.drop(key)
        return status

    def _check_hold(self, key: str, fp: str) -> None:
        h = self.holds.get(key)
        if h is None:
            return
        if h.get("config") != fp:
            self.holds.drop(key)  # the configuration changed: the user acted, try again
            return
        answer = ANSWERS.get(str(h.get("answer")))
        until = h.get("until")
        now = self.now()
        if answer is None or (isinstance(until, (int, float)) and now >= until):
            self.holds.drop(key)
            return
        if isinstance(until, (int, float)) and until - now > WAIT_SECONDS:
            # The clock went backwards (a box that booted at a wrong time and was corrected):
            # never let a 30-minute pause grow, re-anchor it to now.
            until = now + WAIT_SECONDS
            self.holds.put(key, dict(h, until=round(until, 3)))
        since = h.get("since")
        when = _iso(since) if isinstance(since, (int, float)) else "earlier"
        if isinstance(until, (int, float)):
            msg = (f"{self.host}: held after '{h['answer']}' ({answer.text}) at {when}; "
                   f"no request until {_iso(until)}")
            raise answer.error(msg, retryable=False, retry_after=max(0.0, until - now))
        raise answer.error(f"{self.host}: held after '{h['answer']}' ({answer.text}) at {when}; "
                           f"no request until the configuration changes", retryable=False)

    def _parse(self, resp: HttpResponse, value: str) -> str:
        text = resp.text.strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        first = lines[0] if lines else ""
        word = first.split(" ", 1)[0]
        if self.preset.shape == "duckdns":
            if resp.status == 200 and word == "OK":
                # verbose=true: OK / ipv4 / ipv6 / UPDATED|NOCHANGE
                return "unchanged" if lines[-1:] == ["NOCHANGE"] else "updated"
            if word == "KO":
                raise _Held("KO")
        else:
            if word in ("good", "nochg"):
                shown = first.split(" ", 1)[1].strip() if " " in first else ""
                # Dyn: "good 127.0.0.1" for another address means the agent was refused.
                if word == "good" and shown == "127.0.0.1" and value != "127.0.0.1":
                    raise _Held("badagent")
                return "updated" if word == "good" else "unchanged"
            if word in ANSWERS and word != "KO":
                raise _Held(word)
        retry_after = resp.retry_after()
        snippet = "".join(c if c.isprintable() else " " for c in first[:60])
        if resp.status == 429:
            raise RateLimitedError(f"{self.host}: HTTP 429", retry_after=retry_after)
        if resp.status in (401, 403):
            raise AuthError(f"{self.host}: HTTP {resp.status}")
        if resp.status >= 500:
            raise ProviderError(f"{self.host}: HTTP {resp.status}", retryable=True, retry_after=retry_after)
        raise ProviderError(f"{self.host}: unexpected answer (HTTP {resp.status}): {snippet!r}")


class _Held(Exception):
    """Internal: an answer that stops further requests (for a while or for good)."""

    def __init__(self, answer: str):
        super().__init__(answer)
        self.answer = answer
        self.hold = ANSWERS[answer].hold


def _answer_error(host: str, answer: str) -> ProviderError:
    a = ANSWERS[answer]
    when = "retry in 30 minutes at the earliest" if a.hold else "no retry until the configuration changes"
    return a.error(f"{host}: answer '{answer}': {a.text}; {when}", retryable=False, retry_after=a.hold)
