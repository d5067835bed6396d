"""Config errors: one line naming the file and key, exit 2, never a traceback."""

from __future__ import annotations

import os

import pytest

from edgeddns.config import dump, load
from edgeddns.errors import ConfigError
from edgeddns.options import Secret
from tests.conftest import run_cli, write_config

BASE = """
[agent]
node_id = "n1"
state_dir = "state"
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.ali]
type = "alidns"
access_key_id = "id"
access_key_secret = "env:EDGE_TEST_SECRET"
[[records]]
name = "a.example.com"
provider = "ali"
"""


def load_text(tmp_path, text, env=None):
    return load(write_config(tmp_path, text), environ=env if env is not None else {"EDGE_TEST_SECRET": "xyz1"})


CASES = [
    (BASE.replace('provider = "ali"\n', 'provider = "ali2"\n'), 'records[0].provider: unknown provider "ali2" '
                                                               '(defined: ali)'),
    (BASE.replace('type = "alidns"', 'type = "nope"'), 'providers.ali.type: unknown provider type "nope"'),
    (BASE.replace('access_key_id = "id"\n', ""), "providers.ali.access_key_id: is required"),
    (BASE + 'type = "MX"\n', 'records[0].type: must be "A" or "AAAA"'),
    (BASE.replace('"a.example.com"', '"a..example.com"'), "records[0].name:"),
    (BASE.replace('"a.example.com"', '"localhost"'), "records[0].name: \"localhost\" must be a fully qualified"),
    (BASE.replace('"a.example.com"', '"a.example.com; rm -rf /"'), "records[0].name:"),
    (BASE + "ttl = 0\n", "records[0].ttl: must be between"),
    (BASE + "ttl = \"600\"\n", "records[0].ttl: must be an integer, not a string"),
    (BASE + "colour = 1\n", "records[0].colour: unknown key"),
    (BASE.replace("[agent]", "[agent]\nfoo = 1"), "agent.foo: unknown key"),
    (BASE.replace('["static:8.8.8.8"]', '["dns:x"]'), 'ip.ipv4[0]: "dns:x" is not an address source'),
    (BASE.replace('["static:8.8.8.8"]', '["url:ftp://x"]'), "ip.ipv4[0]:"),
    (BASE.replace('node_id = "n1"', 'node_id = "a/b"'), "agent.node_id: must be"),
    (BASE.replace('"env:EDGE_TEST_SECRET"', '"env:EDGE_UNSET_VAR"'),
     "providers.ali.access_key_secret: environment variable EDGE_UNSET_VAR is not set"),
    (BASE + '[[records]]\nname = "a.example.com"\nprovider = "ali"\n',
     "records[1].name: a.example.com A is listed twice"),
    (BASE + 'zone = "other.com"\n', 'records[0].zone: "other.com" is not a suffix'),
    (BASE + '[clock]\nmode = "sometimes"\n', 'clock.mode: must be "auto", "system" or "ntp"'),
    (BASE + "[mqtt]\nport = 1\n", "mqtt.host: is required"),
    (BASE + '[mqtt]\nhost = "h"\nqos = 3\n', "mqtt.qos: must be 0, 1 or 2"),
    (BASE + '[mqtt]\nhost = "h"\ntopic_prefix = "a/#"\n', "mqtt.topic_prefix:"),
    (BASE.replace("[ip]\nipv4", "[ip]\nipv5"), "ip.ipv5: unknown key"),
    ("[agent\n", "invalid TOML"),
    ("records = 3\n", "records: must be an array"),
    (BASE.replace('ipv4 = ["static:8.8.8.8"]', ""), "records[0].ip: no address source"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_config_errors_name_file_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, text)
    msg = ei.value.message
    assert msg.startswith(os.path.join(str(tmp_path), "config.toml") + ": ")
    assert expected in msg


def test_cli_bad_config_one_line_exit_2(tmp_path):
    path = write_config(tmp_path, BASE.replace('provider = "ali"\n', 'provider = "ali2"\n'))
    p = run_cli("update", "-c", path, env={"EDGE_TEST_SECRET": "xyz1"})
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0, p.stderr
    assert 'records[0].provider: unknown provider "ali2" (defined: ali)' in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_missing_config_exit_2(tmp_path):
    p = run_cli("check-config", "-c", str(tmp_path / "nope.toml"))
    assert p.returncode == 2 and "cannot read" in p.stderr and "Traceback" not in p.stderr


def test_secret_sources(tmp_path):
    (tmp_path / "key").write_text("from-file-secret\n")
    cfg = load_text(tmp_path, BASE.replace('access_key_secret = "env:EDGE_TEST_SECRET"',
                                           'access_key_secret_file = "key"'))
    s = cfg.providers["ali"].options["access_key_secret"]
    assert isinstance(s, Secret) and s.reveal() == "from-file-secret" and "from-file" not in repr(s)
    cfg = load_text(tmp_path, BASE)
    assert cfg.providers["ali"].options["access_key_secret"].reveal() == "xyz1"


def test_inline_secret_world_readable_warns(tmp_path):
    text = BASE.replace('"env:EDGE_TEST_SECRET"', '"inline-secret-123"')
    cfg = load(write_config(tmp_path, text, mode=0o644))
    assert any("readable by other users" in w for w in cfg.warnings)
    cfg = load(write_config(tmp_path, text, mode=0o600))
    assert not cfg.warnings


def test_check_config_masks_secrets(tmp_path):
    path = write_config(tmp_path, BASE.replace('"env:EDGE_TEST_SECRET"', '"inline-secret-123"'))
    p = run_cli("check-config", "-c", path)
    assert p.returncode == 0, p.stderr
    assert "inline-secret-123" not in p.stdout + p.stderr and "***" in p.stdout
    d = dump(load(path))
    assert d["providers"]["ali"]["options"]["access_key_secret"] == "***"


def test_relative_paths_resolve_against_config_dir(tmp_path):
    cfg = load_text(tmp_path, BASE)
    assert cfg.agent.state_dir == os.path.join(str(tmp_path), "state")


def test_defaults(tmp_path):
    (tmp_path / "raw.toml").write_text(BASE.replace('node_id = "n1"\n', ""))  # not write_config: no [clock]
    cfg = load(str(tmp_path / "raw.toml"), environ={"EDGE_TEST_SECRET": "xyz1"})
    assert cfg.agent.node_id and cfg.clock.mode == "auto" and cfg.mqtt is None
    assert cfg.records[0].type == "A" and cfg.records[0].family == 4


def test_shipped_config_loads():
    from tests.conftest import ROOT

    cfg = load(os.path.join(ROOT, "config.toml"))
    assert cfg.records and not cfg.warnings


def test_every_error_code_is_documented_and_no_other():
    """docs/errors.md is the contract for result and CLI error codes: it and the code must agree."""
    import re

    from edgeddns.errors import ERROR_CODES
    from tests.conftest import ROOT

    with open(os.path.join(ROOT, "docs", "errors.md")) as f:
        results = f.read().split("\n## Control socket answers")[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", results, re.M))
    assert documented == set(ERROR_CODES)


def test_every_control_socket_code_is_documented_and_no_other():
    """The codes the control socket's two ends give (ControlError on the client, _error on the agent)."""
    import re

    from tests.conftest import ROOT

    with open(os.path.join(ROOT, "docs", "errors.md")) as f:
        section = f.read().split("\n## Control socket answers")[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    used = set()
    for name in ("control.py", "control_server.py"):
        with open(os.path.join(ROOT, "edgeddns", name)) as f:
            src = f.read()
        used |= set(re.findall(r'ControlError\([^()]*(?:\([^()]*\)[^()]*)*, "([a-z_]+)"\)', src))
        used |= set(re.findall(r'_error\("([a-z_]+)"', src))
        used |= set(re.findall(r'"code": "([a-z_]+)"', src))
    assert used and documented == used, (sorted(documented - used), sorted(used - documented))



def _imports_after(code: str) -> str:
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": root})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_config_and_provider_registry_are_not_a_circle():
    """Providers use only the option types; the config package imports the registry only to load."""
    from edgeddns.providers import PROVIDERS

    mods = sorted(t.partition(":")[0] for t in PROVIDERS.values())
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print('edgeddns.config' in sys.modules)")
    assert _imports_after(code) == "False"
    assert _imports_after("import sys, edgeddns.config; print('edgeddns.providers' in sys.modules)") == "False"
