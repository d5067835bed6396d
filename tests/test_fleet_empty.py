"""``edgeddns fleet`` on a broker with no agent yet (a new user's first try): it says so."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")


def test_fleet_update_with_no_agent_says_so(tmp_path):
    broker = Mosquitto(str(tmp_path / "mqtt")).start()
    try:
        # A controller's config needs nothing but [mqtt].
        ctl = write_config(tmp_path, f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
        r = run_cli("fleet", "status", "-c", ctl, timeout=60)
        assert r.returncode == 0 and "no agents found on this broker" in r.stdout, r
        # It printed nothing at all before.
        r = run_cli("fleet", "update", "-c", ctl, "--timeout", "1", timeout=60)
        assert r.returncode == 0 and "no agents online on this broker" in r.stdout, r
        r = run_cli("fleet", "update", "-c", ctl, "--timeout", "1", "--json", timeout=60)
        assert r.returncode == 0 and '"expected": []' in r.stdout, r
    finally:
        broker.stop()


def test_fleet_json_errors_have_the_status_shape(tmp_path):
    """``--json`` on failure prints what ``status --json`` prints: ``{"ok": false, "error": {code, message}}``
    (it printed ``{"error": "text"}``, unlike every other error object)."""
    from tests.mosquitto import free_port

    ctl = write_config(tmp_path, f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    for cmd in ("status", "update"):
        r = run_cli("fleet", cmd, "-c", ctl, "--json", "--timeout", "1", timeout=60)
        assert r.returncode == 1, r
        doc = json.loads(r.stdout)
        assert doc["ok"] is False and doc["error"]["code"] == "fleet", doc
        assert "cannot reach the broker" in doc["error"]["message"], doc
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
