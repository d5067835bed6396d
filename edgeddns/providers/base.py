"""The one interface every provider implements.

A provider knows how to find, create and update one record at one DNS
service. The engine decides *whether* to write; the provider only does what it
is asked, maps the service's errors to :mod:`edgeddns.errors` classes, and
takes "now" from the clock it was given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from edgeddns.options import Opt

if TYPE_CHECKING:
    from edgeddns.clock import Clock
    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.http import HttpClient
    from edgeddns.providers.zones import Zone, ZoneResolver


@dataclass
class RemoteRecord:
    """A record as the provider holds it."""

    id: str
    name: str
    type: str
    value: str
    ttl: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderContext:
    """What a provider is given: its config, the clock, and an HTTP client."""

    config: ProviderConfig
    clock: Clock
    http_factory: Callable[[ProviderConfig], HttpClient]
    state_dir: Optional[str] = None
    #: seconds that only move forward; zone answers expire by it
    monotonic: Callable[[], float] = time.monotonic
    _http: Optional[HttpClient] = None

    @property
    def http(self) -> HttpClient:
        # Built on first use: the hosts provider never pays for an HTTP stack.
        if self._http is None:
            self._http = self.http_factory(self.config)
        return self._http

    def release_http(self) -> None:
        """Close the session; the next request builds a new one (see Engine.release_sessions)."""
        if self._http is not None:
            self._http.close()
            self._http = None


class Provider:
    #: options of ``[providers.NAME]`` besides type/endpoint/ca_file/timeout
    OPTIONS: Dict[str, Opt] = {}
    #: extra per-record options this provider understands
    RECORD_OPTIONS: Dict[str, Opt] = {}
    #: the service cannot be read back (dyndns2, webhook): such providers override ``ensure``
    WRITE_ONLY = False
    #: requests carry a timestamp: the engine makes the clock usable before the first one
    SIGNED = False
    #: the engine passes ``previous=<last published address or None>`` to ``ensure``
    WANTS_PREVIOUS = False
    #: the engine passes ``retrying=True`` to ``ensure`` when this record's last attempt failed,
    #: so side effects after the write (hosts' reload_cmd) are done again even if the record is right
    WANTS_RETRYING = False
    #: the service's name at the head of its messages ("DigitalOcean")
    DISPLAY = ""
    #: what holds names at this service, in the "no zone" message ("domain of this account")
    ZONES_OF = "zone of this account"
    #: the answer when a record names a zone the account does not have (services addressed by zone id)
    ZONE_MISSING = "zone {zone} is not in this account"

    def __init__(self, ctx: ProviderContext):
        self.ctx = ctx
        self.config = ctx.config
        self.options = ctx.config.options
        #: the API providers' zone answers (:mod:`edgeddns.providers.zones`); None for the others
        self.zones: Optional[ZoneResolver] = None

    @classmethod
    def check_config(cls, cfg: ProviderConfig,
                     resolve_path: Callable[[str], str]) -> Optional[Tuple[str, str]]:
        """Cross-field checks at load; return (key, message) on a problem."""
        return None

    @classmethod
    def check_record(cls, cfg: ProviderConfig, record: RecordConfig) -> Optional[Tuple[str, str]]:
        """Checks of one record against this provider at load; return (record key, message) on a problem."""
        return None

    @classmethod
    def config_warnings(cls, cfg: ProviderConfig) -> List[Tuple[str, str]]:
        """(key, text) pairs ``check-config`` prints as warnings; the config still loads."""
        return []

    @property
    def host(self) -> str:
        """The host requests go to, for logs and clock observations."""
        return self.config.type

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        """Records at the provider with this name and type (usually 0 or 1)."""
        raise NotImplementedError

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        raise NotImplementedError

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        raise NotImplementedError

    def probe_time(self) -> None:
        """One cheap unsigned request to the API endpoint, made only for its ``Date`` header.

        The clock asks for it when NTP gave no time before a signed request;
        the HTTP client hands the header to the clock. Any answer will do
        (usually an error about missing parameters); transport errors propagate.
        """
        url = getattr(self, "endpoint", None) or self.config.endpoint
        if url and url.startswith("https://"):
            self.ctx.http.request("GET", url)

    def held_zone(self, name: str) -> Zone:
        """(zone, zone id) of the longest zone the account holds for ``name``; not_found when none does."""
        from edgeddns.errors import NotFoundError

        assert self.zones is not None
        found = self.zones.find(name)
        if found is None:
            raise NotFoundError(f"{self.DISPLAY or self.config.type}: no {self.ZONES_OF} holds {name}")
        return found

    def zone_for(self, record: RecordConfig) -> str:
        """The record's zone: its own, else the longest one the account holds (services addressed by
        zone name; those addressed by zone id override this to return (zone, id))."""
        return record.zone or self.held_zone(record.name)[0]

    def zone_with_id(self, record: RecordConfig) -> Zone:
        """(zone, zone id) for services addressed by zone id: the record's zone looked up by its name,
        else the longest one the account holds."""
        from edgeddns.errors import NotFoundError

        assert self.zones is not None
        if record.zone:
            zid = self.zones.zone_id(record.zone)
            if zid is None:
                raise NotFoundError(f"{self.DISPLAY or self.config.type}: "
                                    + self.ZONE_MISSING.format(zone=record.zone))
            return record.zone, zid
        return self.held_zone(record.name)

    def forget_zones(self) -> None:
        """The service answered ``not_found``: the next record asks for its zone again."""
        if self.zones is not None:
            self.zones.forget()

    def close(self) -> None:
        if self.ctx._http is not None:
            self.ctx._http.close()

    # The flow every provider shares; WRITE_ONLY providers (dyndns2, webhook)
    # override ``ensure`` because they cannot read the record back.
    def ensure(self, record: RecordConfig, value: str) -> str:
        """Make the record hold ``value``; return "updated" or "unchanged"."""
        existing = self.find(record)
        for r in existing:
            if r.value == value and (record.ttl is None or r.ttl is None or r.ttl == record.ttl):
                return "unchanged"
        if existing:
            self.update(record, existing[0], value)
        else:
            self.create(record, value)
        return "updated"


def zone_holds(cfg: ProviderConfig, record: RecordConfig) -> Optional[Tuple[str, str]]:
    """check_record for providers with a provider-wide ``zone`` option: the record must be in it."""
    zone = str(cfg.options.get("zone") or "").rstrip(".").lower()
    if zone and not record.zone and not (record.name == zone or record.name.endswith("." + zone)):
        return "name", f'is not in the provider\'s zone "{zone}" (set this record\'s zone, or use another provider)'
    return None


def split_name(name: str, zone: str) -> str:
    """The host part of ``name`` inside ``zone`` ("@" for the apex)."""
    if name == zone:
        return "@"
    return name[: -(len(zone) + 1)]
