"""Which address wins when a source offers several, and why.

A source (``interface:``, ``ubus:``) can list many IPv6 addresses: stable and
privacy ones, a fresh prefix next to a deprecated one, addresses still doing
duplicate address detection. The kernel lists them newest first, so "take the
first" flips whenever an address is re-added. Here every candidate is first
checked for eligibility, then ranked by a named policy whose order does not
depend on the order of the dump:

- never: temporary (privacy) addresses, deprecated ones (flag, or preferred
  lifetime 0), tentative or DAD-failed ones, and anything ``match`` excludes;
- ``stable`` (default): a permanent address (preferred lifetime forever) before
  a dynamic one, then the lowest address. Dynamic lifetimes count down and are
  renewed at different moments, so their seconds are not compared: that would
  flip the choice between two dumps;
- ``longest_lifetime``: the longest preferred lifetime, then the longest valid
  lifetime, then the lowest address (after renumbering, the fresh prefix);
- ``newest``: the address the kernel created last (its creation stamp, not its
  place in the dump), then the lowest address.

IPv4 addresses keep the kernel's order (primary first); ``match`` still
applies. Sources that know nothing about their addresses (``cmd:``, ``url:``,
``static:``) keep the order they printed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

POLICIES = ("stable", "newest", "longest_lifetime")
DEFAULT_POLICY = "stable"
_FOREVER = float("inf")


@dataclass(frozen=True)
class Candidate:
    """One address a source offered, with what the source knows about it."""

    address: str
    prefixlen: Optional[int] = None
    temporary: bool = False
    deprecated: bool = False
    tentative: bool = False
    preferred: Optional[int] = None  # seconds left; None = forever (or not known)
    valid: Optional[int] = None
    created: Optional[int] = None  # kernel creation stamp (1/100 s since boot)
    known: bool = False  # flags and lifetimes come from the kernel or netifd

    def excluded(self) -> Optional[str]:
        if self.temporary:
            return "temporary (privacy)"
        if self.deprecated or self.preferred == 0:
            return "deprecated"
        if self.tentative:
            return "tentative"
        return None


@dataclass(frozen=True)
class Match:
    """``match``: a prefix (``2001:db8:1::/48``) or an interface id (``::211:32ff:fe12:3456``)."""

    text: str
    network: Optional[Union[ipaddress.IPv4Network, ipaddress.IPv6Network]] = None
    iid: Optional[int] = None  # the low 64 bits an IPv6 address must end in

    @property
    def family(self) -> int:
        return self.network.version if self.network is not None else 6

    def fits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if self.network is not None:
            return ip.version == self.network.version and ip in self.network
        return ip.version == 6 and int(ip) & ((1 << 64) - 1) == self.iid


def parse_match(text: str) -> Match:
    """Parse ``match``; ValueError says what is wrong."""
    text = text.strip()
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as e:
            raise ValueError(f'"{text}" is not a prefix like 2001:db8:1::/48 ({e})') from None
        return Match(text, network=net)
    try:
        ip = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f'"{text}" is neither a prefix (2001:db8:1::/48) nor an interface id '
                         f'(::211:32ff:fe12:3456)') from None
    if int(ip) >> 64 or not int(ip):
        raise ValueError(f'"{text}" is not an interface id: give the low 64 bits, like ::211:32ff:fe12:3456, '
                         f'or a prefix with its length')
    return Match(text, iid=int(ip))


def _key(policy: str, c: Candidate) -> Tuple:
    addr = int(ipaddress.ip_address(c.address))
    pref = _FOREVER if c.preferred is None else c.preferred
    valid = _FOREVER if c.valid is None else c.valid
    if policy == "longest_lifetime":
        return (-pref, -valid, addr)
    stable = (pref != _FOREVER, addr)
    if policy == "newest":  # without a creation stamp (netifd), as "stable"
        return (c.created is None, -(c.created or 0)) + stable
    return stable


def rank(cands: List[Candidate], family: int, policy: str = DEFAULT_POLICY,
         match: Optional[Match] = None) -> Tuple[List[Candidate], List[Tuple[str, str]]]:
    """Eligible candidates, best first, and the (address, why) of those left out."""
    ok: List[Candidate] = []
    out: List[Tuple[str, str]] = []
    for c in cands:
        why = c.excluded() if family == 6 else None
        if why is None and match is not None and not match.fits(c.address):
            why = f"outside match {match.text}"
        if why is None:
            ok.append(c)
        else:
            out.append((c.address, why))
    if family == 6 and any(c.known for c in ok):
        ok.sort(key=lambda c: _key(policy, c))
    return ok, out


def explain(chosen: Candidate, policy: str, ranked: List[Candidate], left_out: List[Tuple[str, str]],
            match: Optional[Match] = None) -> str:
    """One line on why ``chosen`` won, for ``-v`` logs and the result's ``selection``."""
    if len(ranked) == 1:
        why = "the only eligible address"
    elif not chosen.known or ipaddress.ip_address(chosen.address).version == 4:
        why = f"first of {len(ranked)} eligible, in the source's order"
    elif policy == "longest_lifetime":
        why = f"longest preferred lifetime ({_life(chosen.preferred)}) of {len(ranked)} eligible"
    elif policy == "newest":
        why = f"created last of {len(ranked)} eligible"
    else:
        kind = "permanent" if chosen.preferred is None else "dynamic"
        why = f"{kind} (preferred lifetime {_life(chosen.preferred)}), lowest of {len(ranked)} eligible"
    text = f"{policy}: {chosen.address}, {why}"
    if match is not None:
        text += f", match {match.text}"
    if left_out:
        text += "; skipped " + ", ".join(f"{a} ({w})" for a, w in left_out[:4])
        if len(left_out) > 4:
            text += f" and {len(left_out) - 4} more"
    return text


def _life(seconds: Optional[int]) -> str:
    return "forever" if seconds is None else f"{seconds} s"
