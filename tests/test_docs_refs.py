"""The tests the docs name exist: a reader (or a reviewer) following ``test_x.py::test_y`` finds it.

SECURITY.md and docs/clock.md point at the test that proves each claim; a renamed or removed test must take
its reference with it.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from tests.conftest import ROOT

_REF = re.compile(r"`(?:tests/)?(test_[a-z0-9_]+\.py)(?:::([a-z0-9_]+))?`((?:,? (?:and )?`::[a-z0-9_]+`)*)")
_DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [
    os.path.join(ROOT, name) for name in ("README.md", "SECURITY.md", "BENCHMARKS.md")]


def references():
    for path in _DOCS:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in _REF.finditer(text):
            names = ([m.group(2)] if m.group(2) else []) + re.findall(r"::([a-z0-9_]+)", m.group(3))
            yield os.path.relpath(path, ROOT), m.group(1), names


def test_there_are_references():
    assert len(list(references())) >= 20


@pytest.mark.parametrize("doc,test_file,names", list(references()), ids=lambda v: str(v))
def test_a_referenced_test_exists(doc, test_file, names):
    path = os.path.join(ROOT, "tests", test_file)
    assert os.path.exists(path), f"{doc} names tests/{test_file}, which does not exist"
    with open(path, encoding="utf-8") as f:
        src = f.read()
    for name in names:
        assert re.search(rf"^(?:async )?def {name}\(", src, re.M), f"{doc} names {test_file}::{name}, not found"
