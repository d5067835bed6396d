"""The one zone resolver the API providers share: which zone (and zone id) holds a name.

A zone lookup costs one or more API calls, so answers are kept, but never for
long: an entry expires after an hour, and the provider drops every entry when
the service answers ``not_found`` (a token given permission, a zone deleted
and re-created with a new id, a delegated sub-zone added): the next run asks
again instead of repeating a stale answer until the agent restarts.
Negative answers ("no zone holds this name") are kept under the same rules,
so a misconfigured record costs a lookup per hour, not one per check.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

ZONE_TTL = 3600.0  # seconds an answer is trusted
# Pages of one zone list. The API says whether more follow; one that always says so (or sends page 1
# as the next again) must not keep the one worker asking for ever. 100 pages is 5,000 to 100,000 zones.
MAX_PAGES = 100


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` of a provider's answer, or None where a level is missing or not an object."""
    for k in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(k)
    return data


def page_number(v: Any) -> Optional[int]:
    """A page number from a paging field (an int or digits), else None: the answer's word, not a crash."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    return int(v) if isinstance(v, str) and v.isdigit() and len(v) < 10 else None


def too_many_pages(who: str) -> Exception:
    from edgeddns.errors import ProviderError

    return ProviderError(f"{who}: the zone list does not end (more than {MAX_PAGES} pages, or a page again); "
                         "set the record's zone")

# (zone name, zone id); the id is "" for services addressed by zone name (Alidns, DNSPod).
Zone = Tuple[str, str]


def longest_zone(name: str, zones) -> Optional[str]:
    """The longest of ``zones`` that is ``name`` or a suffix of it on a label boundary."""
    best: Optional[str] = None
    for z in zones:
        z = z.rstrip(".").lower()
        if (name == z or name.endswith("." + z)) and (best is None or len(z) > len(best)):
            best = z
    return best


class ZoneResolver:
    """Zone answers for one provider instance, from a list of the account's zones or lookups by name.

    ``list_zones()`` returns every zone of the account as name -> id; ``lookup(zone)``
    returns one zone's id or None. A provider gives one or both: with a list, a
    record's zone is the longest owned suffix; with lookups only, candidates
    are asked longest first (a delegated sub-zone wins over its parent).
    ``search(name)`` instead answers for one name directly (rfc2136 asks the
    server for the SOA that covers it).
    """

    def __init__(self, *, monotonic: Callable[[], float],
                 list_zones: Optional[Callable[[], Dict[str, str]]] = None,
                 lookup: Optional[Callable[[str], Optional[str]]] = None,
                 search: Optional[Callable[[str], Optional[Zone]]] = None,
                 ttl: float = ZONE_TTL):
        if list_zones is None and lookup is None and search is None:
            raise ValueError("a zone resolver needs list_zones, lookup or search")
        self.monotonic = monotonic
        self.list_zones = list_zones
        self.lookup = lookup
        self.search = search
        self.ttl = ttl
        self._cache: Dict[Tuple[str, str], Tuple[float, Any]] = {}

    def _get(self, key: Tuple[str, str], make: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self.monotonic():
            return hit[1]
        value = make()  # an exception caches nothing
        self._cache[key] = (self.monotonic() + self.ttl, value)
        return value

    def owned(self) -> Dict[str, str]:
        """Every zone of the account, name -> id (needs ``list_zones``)."""
        assert self.list_zones is not None
        return self._get(("owned", ""), self.list_zones)

    def zone_id(self, zone: str) -> Optional[str]:
        """The id of the zone named exactly ``zone``, or None when the account has no such zone."""
        if self.lookup is None:
            return self.owned().get(zone)
        lookup = self.lookup
        return self._get(("zone", zone), lambda: lookup(zone))

    def find(self, name: str) -> Optional[Zone]:
        """The longest zone holding ``name``, or None."""
        return self._get(("record", name), lambda: self._search(name))

    def _search(self, name: str) -> Optional[Zone]:
        if self.search is not None:
            return self.search(name)
        if self.list_zones is not None:
            owned = self.owned()
            z = longest_zone(name, owned)
            return None if z is None else (z, owned[z])
        labels = name.split(".")
        for i in range(len(labels) - 1):
            cand = ".".join(labels[i:])
            zid = self.zone_id(cand)
            if zid is not None:
                return cand, zid
        return None

    def learn(self, name: str, zone: str, zid: str = "") -> None:
        """Remember a zone the service named in an answer about ``name``."""
        self._cache[("record", name)] = (self.monotonic() + self.ttl, (zone, zid))

    def forget(self) -> None:
        """Drop every answer (called on ``not_found``)."""
        self._cache.clear()
