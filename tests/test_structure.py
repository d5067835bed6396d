"""The shape of the code, as the import graph shows it (every import, also those inside functions).

- Nothing imports the command-line module: commands share ``bootstrap``.
- Event sources and providers never import the agent, the scheduler, the engine or the MQTT bridge:
  events flow one way, through ``edgeddns.events``.
- ``config`` is a leaf: besides its own package it uses only small leaf helpers (and, to validate a
  provider's options, the provider registry).

Imports under ``if TYPE_CHECKING:`` are type hints only and are not counted.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "edgeddns")

SOURCES = {"edgeddns.mqtt", "edgeddns.mqtt_inbound", "edgeddns.mqtt_outbound", "edgeddns.mqtt_link",
           "edgeddns.control_server", "edgeddns.netevents", "edgeddns.ubus", "edgeddns.watch"}
CORE = {"edgeddns.agent", "edgeddns.scheduler", "edgeddns.engine"}
MQTT = {"edgeddns.mqtt", "edgeddns.mqtt_inbound", "edgeddns.mqtt_outbound", "edgeddns.mqtt_link"}
# What the config package may use besides itself: leaves that parse or hold values.
CONFIG_MAY_USE = {"edgeddns", "edgeddns.errors", "edgeddns.options", "edgeddns.fileio", "edgeddns.redact",
                  "edgeddns.ipselect", "edgeddns.ipsuffix", "edgeddns.address", "edgeddns.providers"}


def imports() -> Dict[str, Set[str]]:
    """module -> the edgeddns modules it imports (``from a import b`` counts as ``a`` and, if a module, ``a.b``)."""
    found: Dict[str, Set[str]] = {}
    modules = set()
    for dp, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dp, f), ROOT)[:-3].replace(os.sep, ".")
                modules.add(rel[: -len(".__init__")] if rel.endswith(".__init__") else rel)
    for dp, _, files in os.walk(PKG):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dp, f)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            name = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
            deps: Set[str] = set()
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in _runtime_nodes(tree):
                if isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names if a.name.startswith("edgeddns"))
                elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeddns"):
                    deps.add(node.module)
                    deps.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
            found[name] = deps
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (type hints only, never imported)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def test_nothing_imports_the_command_line_module():
    offenders = sorted(m for m, deps in imports().items() if "edgeddns.cli" in deps and m != "edgeddns.__main__")
    assert offenders == []


def test_sources_and_providers_never_import_the_agent_side():
    bad = {}
    for m, deps in imports().items():
        if m in SOURCES or m.startswith("edgeddns.providers"):
            forbidden = CORE | (MQTT if m not in MQTT else set())
            hit = sorted(d for d in deps if d in forbidden)
            if hit:
                bad[m] = hit
    assert bad == {}


def test_config_is_a_leaf():
    bad = {}
    for m, deps in imports().items():
        if m == "edgeddns.config" or m.startswith("edgeddns.config."):
            hit = sorted(d for d in deps if not (d == "edgeddns.config" or d.startswith("edgeddns.config."))
                         and d not in CONFIG_MAY_USE and not d.startswith("edgeddns.providers"))
            if hit:
                bad[m] = hit
    assert bad == {}


def test_providers_never_import_the_config_package():
    """Providers get their settings as objects; the registry stays free of the config loader (no circle)."""
    bad = {m: sorted(d for d in deps if d == "edgeddns.config" or d.startswith("edgeddns.config."))
           for m, deps in imports().items() if m.startswith("edgeddns.providers")}
    assert {m: d for m, d in bad.items() if d} == {}
