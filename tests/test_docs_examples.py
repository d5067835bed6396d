"""Every TOML example in docs/ and the README passes ``check-config`` on its own.

Each ```toml block is saved alone as ``config.toml`` and checked by the real
CLI. What a reader is told to provide next to it is provided: the environment
variables it names as ``"env:VAR"``, and the files its ``*_file`` / ``ca_file``
keys name relative to the config (``secret_key_file = "huawei.sk"`` means the
file next to ``config.toml``). An absolute path would depend on this machine,
so examples use relative ones.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from tests.conftest import ROOT, run_cli

_BLOCK = re.compile(r"^```toml[ \t]*\n(.*?)^```", re.S | re.M)
_ENV = re.compile(r'"env:([A-Za-z_][A-Za-z0-9_]*)"')
_FILE = re.compile(r'^\s*(\w*_file)\s*=\s*"([^"]+)"', re.M)


def examples():
    paths = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "README.md")]
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in _BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            yield pytest.param(m.group(1), id=f"{os.path.relpath(path, ROOT)}:{line}")


def test_there_are_examples():
    assert len(list(examples())) >= 5


@pytest.mark.parametrize("body", list(examples()))  # a list: pytest 10 refuses generators
def test_example_passes_check_config(body, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(body)
    cfg.chmod(0o600)
    env = {var: "example-secret-value" for var in _ENV.findall(body)}
    for key, name in _FILE.findall(body):
        assert not os.path.isabs(name), f"{key} = {name!r}: use a path relative to the config in examples"
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("example-secret-value\n")
    r = run_cli("check-config", "-c", str(cfg), env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
