"""One update flow, run against every provider's fake, so no provider can skip a case.

Steps: create an A record; run again (unchanged, zero provider calls); change
the address (updated); a record already right at the provider (no write);
create an AAAA record. Entries come from tests/fakes/matrix.py.
"""

from __future__ import annotations

import pytest

from tests.conftest import json_results, run_cli, write_config
from tests.fakes.matrix import ENTRIES

V4_A, V4_B, V4_SEED, V6 = "8.8.8.8", "1.1.1.1", "9.9.9.9", "2001:4860:4860::8888"


def _config(tmp_path, provider_toml: str, records: str, ipv4: str) -> str:
    return write_config(tmp_path, f"""
[agent]
node_id = "matrix"
state_dir = "{tmp_path}/state"

[clock]
mode = "system"  # never ask the public NTP servers from a test

[ip]
ipv4 = ["static:{ipv4}"]
ipv6 = ["static:{V6}"]
{provider_toml}
{records}
""")


def _record(name: str, rtype: str = "A", ip: str = "") -> str:
    src = f'\nip = ["static:{ip}"]' if ip else ""
    return f'\n[[records]]\nname = "{name}"\ntype = "{rtype}"\nprovider = "p"{src}\n'


def _update(cfg: str, record: str):
    p = run_cli("update", "-c", cfg, "--json", "--record", record)
    assert "Traceback" not in p.stderr, p.stderr
    results = json_results(p)
    assert len(results) == 1, p.stdout + p.stderr
    return results[0]


def _attr(entry, name, default=None):
    return entry.get(name, default) if isinstance(entry, dict) else getattr(entry, name, default)


def _stop(entry, fake) -> None:
    if hasattr(fake, "stop"):
        fake.stop()
        return
    stop = _attr(entry, "stop")
    try:
        stop(fake)
    except TypeError:
        stop()


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_update_flow(name, tmp_path, ca_file, server_context):
    entry = ENTRIES[name]
    fake, provider_toml = _attr(entry, "start")(ca_file, server_context)
    try:
        readable = getattr(fake, "readable", _attr(entry, "readable", True))
        v4_only = getattr(fake, "families", ("A", "AAAA")) == ("A",)
        seeded = "seeded.example.com" if v4_only else "seeded.example.net"
        records = (_record("matrix.example.com") + ("" if v4_only else _record("matrix.example.net", "AAAA"))
                   + _record(seeded, ip=V4_SEED))

        # 1. create an A record
        cfg = _config(tmp_path, provider_toml, records, V4_A)
        r = _update(cfg, "matrix.example.com")
        assert r["status"] == "updated" and r["error"] is None, r
        assert fake.values("matrix.example.com", "A") == [V4_A]

        # 2. nothing changed: unchanged, and not one request to the provider
        before = len(fake.calls)
        r = _update(cfg, "matrix.example.com")
        assert r["status"] == "unchanged", r
        assert len(fake.calls) == before

        # 3. the address changes: updated in place
        cfg = _config(tmp_path, provider_toml, records, V4_B)
        r = _update(cfg, "matrix.example.com")
        assert r["status"] == "updated" and r["previous_ip"] == V4_A, r
        assert fake.values("matrix.example.com", "A") == [V4_B]

        # 4. already right at the provider (no local state for it): no write
        if readable:
            fake.seed(seeded, "A", V4_SEED)
            writes = fake.writes
            r = _update(cfg, seeded)
            assert r["status"] == "unchanged" and r["error"] is None, r
            assert fake.writes == writes
            assert fake.values(seeded, "A") == [V4_SEED]

        if v4_only:  # 5'. the service sets A records only: an AAAA record is refused when the config loads
            bad = _config(tmp_path, provider_toml, _record("matrix.example.com", "AAAA"), V4_B)
            p = run_cli("check-config", "-c", bad)
            assert p.returncode == 2 and "records[0].type" in p.stderr, p.stderr
            return

        # 5. an AAAA record
        r = _update(cfg, "matrix.example.net")
        assert r["status"] == "updated" and r["ip"] == V6, r
        assert fake.values("matrix.example.net", "AAAA") == [V6]
        assert fake.values("matrix.example.net", "A") == []
    finally:
        _stop(entry, fake)
