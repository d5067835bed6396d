"""The shipped configs stay valid when a user uncomments their examples.

``config.toml``, ``docker/config.toml`` and OpenWrt's ``/etc/edgeddns/config.toml``
carry commented-out sections ("uncomment the Alibaba Cloud section below"):
they are documentation too. Every commented ``key = value`` and ``[table]``
line is uncommented and the result must pass ``check-config`` with the
environment variables and files it names provided.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import ROOT, run_cli

SHIPPED = ["config.toml", "docker/config.toml", "openwrt/files/etc/edgeddns/config.toml"]
_COMMENTED = re.compile(r"^# ?(\[\[?[a-z.]+\]\]?\s*(#.*)?|[a-z_]+ = .*)$")
_ENV = re.compile(r'"env:([A-Za-z_][A-Za-z0-9_]*)"')
_FILE = re.compile(r'^(\s*\w*_file\s*=\s*)"([^"]+)"', re.M)


def uncommented(text: str) -> str:
    return "\n".join(m.group(1) if (m := _COMMENTED.match(line)) else line for line in text.splitlines()) + "\n"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_with_every_example_uncommented(name, tmp_path):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        text = uncommented(f.read())
    assert "[providers.ali]" in text.replace("# [providers.ali]", ""), "the examples were not uncommented"
    # Files the examples name (absolute, for the target machine) are provided next to the test config.
    for _, path in _FILE.findall(text):
        (tmp_path / os.path.basename(path)).write_text("example-secret-value\n")
    text = _FILE.sub(lambda m: f'{m.group(1)}"{os.path.basename(m.group(2))}"', text)
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    env = {var: "example-secret-value" for var in _ENV.findall(text)}
    r = run_cli("check-config", "-c", str(cfg), env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert re.search(r"OK \([23] records, 2 providers\)", r.stderr), r.stderr  # the examples are in
    assert '"mqtt": {' in r.stdout
