"""Addresses of hosts behind the router: the current prefix plus a fixed suffix.

A record with ``ipv6_suffix = "::211:32ff:fe12:3456"`` (the host's interface
identifier) and ``prefix_len`` (default 64) publishes the first ``prefix_len``
bits of an address its source yields (a LAN address, a delegated prefix, an
address carried by an event) followed by the last ``128 - prefix_len`` bits of
the suffix. With a /56 delegated and ``prefix_len = 56`` the suffix also holds
the subnet: ``"::12:211:32ff:fe12:3456"`` lands in subnet 12.
"""

from __future__ import annotations

import ipaddress

DEFAULT_PREFIX_LEN = 64


def parse_suffix(text: str, prefix_len: int = DEFAULT_PREFIX_LEN) -> int:
    """The suffix as an integer; ValueError says what is wrong with it."""
    if not 1 <= prefix_len <= 128:
        raise ValueError(f"prefix_len must be between 1 and 128, not {prefix_len}")
    try:
        value = int(ipaddress.IPv6Address(text.strip()))
    except ValueError:
        raise ValueError(f'"{text}" is not an interface id (write it like ::211:32ff:fe12:3456)') from None
    host_bits = 128 - prefix_len
    if value >> host_bits:
        raise ValueError(f'"{text}" does not fit in the {host_bits} bits after a /{prefix_len} prefix '
                         f'(an interface id starts with ::)')
    if not value:
        raise ValueError(f'"{text}" is all zeros: that is the subnet itself, not a host')
    return value


def combine(prefix_address: str, suffix: int, prefix_len: int = DEFAULT_PREFIX_LEN) -> str:
    """The first ``prefix_len`` bits of ``prefix_address``, then the suffix."""
    host_bits = 128 - prefix_len
    top = int(ipaddress.IPv6Address(prefix_address)) >> host_bits << host_bits
    return str(ipaddress.IPv6Address(top | suffix))


def prefix_text(prefix_address: str, prefix_len: int = DEFAULT_PREFIX_LEN) -> str:
    return str(ipaddress.IPv6Network(f"{prefix_address}/{prefix_len}", strict=False))
