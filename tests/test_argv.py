"""edgeddns.argv reads the hot commands' plain spellings; argparse stays the authority.

Whenever the quick reader answers, its namespace must be the one argparse
builds; for everything else (help, errors, abbreviations, bundled flags) it
must step aside so argparse gives its usual answer and message.
"""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeddns.argv import quick
from edgeddns.cli import parser

TOKENS = ["trigger", "update", "status", "run", "-c", "--config", "--config=/e/c.toml", "/e/c.toml", "-v", "-vv",
          "--verbose", "-q", "--quiet", "--syslog", "--iface", "--iface=wan", "wan", "--action", "ifup",
          "--device", "eth1", "--fallback-update", "--fallback", "--timeout", "--timeout=1.5", "0.25", "nan",
          "x1", "-1", "--record", "--record=a.example", "a.example", "--force", "--force=1", "--dry-run", "--json",
          "--standalone", "-h", "--help", "--", "-", "", "--iface=", "--record=a=b", "-c/e/c.toml", "-c=x"]


def argparse_view(argv):
    """argparse's namespace as a dict, or None if it exits (help or an error)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return vars(parser().parse_args(argv))
    except SystemExit:
        return None


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=8),
       st.sampled_from(["trigger", "update", "status", "run", "clock", "-v"]))
def test_quick_reader_agrees_with_argparse_or_steps_aside(rest, first):
    argv = [first, *rest]
    q = quick(argv)
    if q is None:
        return
    assert vars(q) == argparse_view(argv), argv


@pytest.mark.parametrize("argv", [
    ["trigger"],
    ["trigger", "-c", "/e/c.toml", "--iface", "wan", "--action", "ifup", "--device", "eth1"],
    ["trigger", "--config=/e/c.toml", "--fallback-update", "--timeout", "2", "-v", "-v", "--syslog"],
    ["update", "-c", "/e/c.toml"],
    ["update", "--record", "a.example", "--record=b.example", "--force", "--dry-run", "--json", "--standalone", "-q"],
    ["run", "-c", "/etc/edgeddns/config.toml", "--syslog"],
    ["status", "--json"],
])
def test_the_hotplug_and_cron_spellings_are_read_quickly(argv):
    q = quick(argv)
    assert q is not None and vars(q) == argparse_view(argv)


@pytest.mark.parametrize("argv", [
    [], ["-v", "trigger"], ["trigger", "-h"], ["update", "--help"], ["trigger", "--ifa", "wan"],
    ["trigger", "--timeout", "soon"], ["trigger", "--timeout", "-1"], ["update", "--force=1"], ["update", "x"],
    ["trigger", "-c"], ["trigger", "-c", "--iface"], ["trigger", "-vv"], ["clock"], ["update", "--"],
    ["run", "--json"], ["status", "--iface", "wan"],
])
def test_anything_else_is_left_to_argparse(argv):
    assert quick(argv) is None


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e9"])
def test_timeouts_must_be_finite_seconds(value):
    """``--timeout nan`` once reached the socket (and made the quick reader and argparse disagree)."""
    from tests.conftest import run_cli

    assert quick(["trigger", "--timeout", value]) is None
    p = run_cli("trigger", "--timeout", value)
    assert p.returncode == 2 and "--timeout" in p.stderr and "Traceback" not in p.stderr, p.stderr
