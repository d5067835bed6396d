"""Every config key the loader accepts is documented, and every documented key is accepted.

The loader is asked, not copied: a config with an unknown key in a table gets
``unknown key (allowed: ...)``, and that list is what the table accepts.
docs/config.md's key tables (per ``## `[section]` `` heading) and each
provider's key tables in docs/providers.md (per ``## `type` `` heading) are
compared with it in both directions.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Set

import pytest

from edgeddns.config import load
from edgeddns.errors import ConfigError
from edgeddns.providers import PROVIDERS, provider_class
from tests.conftest import ROOT

_ALLOWED = re.compile(r"unknown key \(allowed: ([^)]*)\)")
_ROW_KEYS = re.compile(r"`([a-z_0-9]+)`")


def _accepted(tmp_path, body: str, where: str) -> Set[str]:
    """The keys the table ``where`` accepts: from the loader's own error for an unknown key."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(body)
    cfg.chmod(0o600)
    with pytest.raises(ConfigError) as e:
        load(str(cfg), environ={})
    assert e.value.key == (f"{where}.zz_not_a_key" if where else "zz_not_a_key"), str(e.value)
    m = _ALLOWED.search(str(e.value))
    assert m, str(e.value)
    return set(m.group(1).split(", "))


def _sections(path: str, heading: re.Pattern) -> Dict[str, str]:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^## ", text, flags=re.M)
    out: Dict[str, str] = {}
    for part in parts[1:]:
        m = heading.match(part)
        if m:
            out[m.group(1)] = part
    return out


def _table_keys(section: str) -> Set[str]:
    """Keys in the first column of the section's tables whose header's first cell is ``key``."""
    keys: Set[str] = set()
    in_key_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            in_key_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "key":
            in_key_table = True
            continue
        if in_key_table and not set(cells[0]) <= set("-: "):
            keys |= set(_ROW_KEYS.findall(cells[0]))
    return keys


_CONFIG_MD = _sections("docs/config.md", re.compile(r"`\[{1,2}([a-z]+)(?:\.NAME)?\]{1,2}`"))
_HOSTS = '[providers.lan]\ntype = "hosts"\npath = "hosts"\n'
_RECORD = '[[records]]\nname = "a.example.com"\nprovider = "lan"\nip = ["static:192.0.2.1"]\n'

# What each config.md section's table lists, next to a config that puts an unknown key in that table.
_TABLES = {
    "agent": "[agent]\nzz_not_a_key = 1\n",
    "ip": "[ip]\nzz_not_a_key = 1\n",
    "clock": "[clock]\nzz_not_a_key = 1\n",
    "mqtt": '[mqtt]\nhost = "broker.lan"\nzz_not_a_key = 1\n',
    "providers": _HOSTS + "zz_not_a_key = 1\n",
    "records": _HOSTS + _RECORD + "zz_not_a_key = 1\n",
}
_WHERE = {"providers": "providers.lan", "records": "records[0]"}


def test_config_md_has_a_table_per_section(tmp_path):
    assert set(_TABLES) <= set(_CONFIG_MD), sorted(_CONFIG_MD)
    top = _accepted(tmp_path, "zz_not_a_key = 1\n", "")
    assert top == set(_TABLES), "a new top-level table needs a section in docs/config.md and here"


@pytest.mark.parametrize("section", sorted(_TABLES))
def test_config_md_keys_match_the_loader(section, tmp_path):
    accepted = _accepted(tmp_path, _TABLES[section], _WHERE.get(section, section))
    if section in ("providers", "records"):
        # The hosts provider's own keys are in providers.md (checked below), not in config.md.
        cls = provider_class("hosts")
        own = set(cls.OPTIONS) | set(cls.RECORD_OPTIONS)
        accepted -= own | {f"{k}_file" for k in own}
    documented = _table_keys(_CONFIG_MD[section])
    assert accepted - documented == set(), f"accepted in [{section}] but not in docs/config.md"
    assert documented - accepted == set(), f"in docs/config.md's [{section}] table but refused by the loader"


_PROVIDERS_MD = _sections("docs/providers.md", re.compile(r"`([a-z0-9]+)`"))
# Keys every provider table accepts (documented once, in config.md's [providers.NAME]).
_COMMON = {"type", "endpoint", "ca_file", "timeout", "allow_http", "keepalive_interval"}


def test_every_provider_has_a_section():
    assert set(PROVIDERS) <= set(_PROVIDERS_MD), sorted(set(PROVIDERS) - set(_PROVIDERS_MD))


@pytest.mark.parametrize("ptype", sorted(PROVIDERS))
def test_providers_md_keys_match_the_provider(ptype):
    cls = provider_class(ptype)
    own = set(cls.OPTIONS) | set(cls.RECORD_OPTIONS)
    documented = _table_keys(_PROVIDERS_MD[ptype])
    assert own - documented == set(), f"{ptype}: accepted but not in its docs/providers.md key tables"
    # A provider's table may also describe a common key (endpoint) in its own terms.
    assert documented - own - _COMMON == set(), f"{ptype}: documented in docs/providers.md but refused"


def test_readme_lists_every_error_code():
    """README's result section lists the codes; docs/errors.md (checked in test_config) explains them."""
    from edgeddns.errors import ERROR_CODES

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("with a stable code from")
    listed = set(re.findall(r"`([a-z_]+)`", text[start:text.index(". ", start)]))
    assert listed == set(ERROR_CODES)


def _readme_commands() -> Dict[str, Set[str]]:
    """README's command table: ``edgeddns fleet update [...]`` -> the long options it shows."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    out: Dict[str, Set[str]] = {}
    for m in re.finditer(r"^\| `edgeddns ([a-z -]+?)(?: \[|`)([^|]*)\|", text, re.M):
        out[m.group(1).strip()] = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-c)\b", m.group(2)))
    return out


def _parser_commands() -> Dict[str, Set[str]]:
    import argparse

    from edgeddns.cli import parser

    def options(p: argparse.ArgumentParser) -> Set[str]:
        found = set()
        for a in p._actions:
            if a.option_strings and a.dest not in ("help", "verbose", "quiet", "syslog"):
                found.add(max(a.option_strings, key=len) if a.dest != "config" else "-c")
        return found

    def subs(p: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                return dict(a.choices)
        return {}

    out: Dict[str, Set[str]] = {}
    for name, sp in subs(parser()).items():
        inner = subs(sp)
        for sub, ssp in inner.items():
            out[f"{name} {sub}"] = options(ssp) | {"-c"}
        if not inner:
            out[name] = options(sp)
    return out


def test_readme_command_table_matches_the_parser():
    readme, real = _readme_commands(), _parser_commands()
    assert set(readme) - {"--version"} == set(real), "a command missing from README's table, or a stale one"
    for name, opts in real.items():
        assert opts == readme[name], f"edgeddns {name}: README shows {sorted(readme[name])}, it takes {sorted(opts)}"
