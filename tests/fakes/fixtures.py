"""Fixtures for the signed providers' end-to-end tests (imported by tests/conftest.py)."""

from __future__ import annotations

import os
import textwrap
from typing import Optional

import pytest

from tests.fakes.matrix_signed import ENTRIES

SIGNED_KINDS = ["dnspod", "huaweicloud", "route53", "alidns-v3"]


@pytest.fixture(params=SIGNED_KINDS)
def signed(request, ca_file, server_context):
    """A started fake of one signed provider; ``.toml`` is its ``[providers.p]`` table."""
    entry = ENTRIES[request.param]()
    fake, toml = entry.start(ca_file, server_context)
    fake.kind = request.param
    fake.toml = toml
    fake.secret = entry.secret
    fake.entry = entry
    yield fake
    entry.stop()


def signed_config(tmp_path, fake, *, ip: str = "static:8.8.8.8", ip6: str = "static:2001:4860:4860::8888",
                  records: Optional[str] = None, provider_extra: str = "") -> str:
    """A config file with one provider ``p`` (the fake) and, unless given, home.example.com A."""
    records = records if records is not None else """
        [[records]]
        name = "home.example.com"
        type = "A"
        provider = "p"
    """
    body = textwrap.dedent(f"""
        [agent]
        node_id = "test"
        state_dir = "{tmp_path}/state"

        [clock]
        mode = "system"

        [ip]
        ipv4 = ["{ip}"]
        ipv6 = ["{ip6}"]

    """) + fake.toml + provider_extra + "\n" + textwrap.dedent(records)
    path = os.path.join(str(tmp_path), "config.toml")
    with open(path, "w") as f:
        f.write(body)
    os.chmod(path, 0o600)
    return path
