"""Answers from the network are parsed in time linear in their size (they are capped at 1 MiB upstream).

A CPU limit on a child process, not a timing: the linear parse takes milliseconds, the quadratic one
it replaced took about half an hour on the same 1 MiB, so the limit is far from either.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

CPU_SECONDS = 60

BODIES = {
    "open_errcount": "'<interface-response>' + '<ErrCount>' * (MIB // 10)",
    "open_err_entries": "'<interface-response><errors>' + '<Err1>' * (MIB // 6) + '</errors>'",
    "open_cdata": "'<interface-response><errors><Err1>' + '<![CDATA[' * (MIB // 9) + '</Err1></errors>'",
}


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_namecheap_answer_parse_is_linear(shape):
    """Before: a 1 MiB answer of repeated opening tags kept the worker busy for about half an hour
    (80 KB already took 9 s), through the HTTP deadline, which ends when the body is read."""
    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_CPU, ({CPU_SECONDS}, {CPU_SECONDS}))
from edgeddns.errors import ProviderError
from edgeddns.providers.namecheap import parse_answer
MIB = 1 << 20
body = {BODIES[shape]}
try:
    print(parse_answer(body)[0])
except ProviderError as e:
    print(e)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"}, timeout=CPU_SECONDS * 3)
    assert p.returncode == 0, f"killed by its CPU limit (status {p.returncode}): {p.stderr[-300:]}"
