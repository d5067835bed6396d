"""What OpenWrt ships as add-on packages the edgeddns package does not pull in.

OpenWrt splits Python's standard library: ``xml`` (python3-xml) and ``ctypes``
(python3-ctypes) are add-ons. Route 53 answers in XML; without the add-on the
user must hear what to install, not see a traceback or an "internal" bug.
(``ctypes`` missing: tests/test_timesync.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.fakes.fixtures import signed_config
from tests.fakes.matrix_signed import ENTRIES

WITHOUT_XML = ("import sys\nfor m in ('xml', 'xml.etree', 'xml.etree.ElementTree', 'xml.parsers', "
               "'xml.parsers.expat', 'pyexpat'):\n    sys.modules[m] = None\n"
               "from edgeddns.cli import main\nraise SystemExit(main(sys.argv[1:]))\n")


def run_without_xml(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", WITHOUT_XML, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)


def test_route53_without_the_xml_addon_says_what_to_install(tmp_path, ca_file, server_context):
    entry = ENTRIES["route53"]()
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    try:
        cfg = signed_config(tmp_path, fake)
        check = run_without_xml("check-config", "-c", cfg)
        assert "python3-xml" in check.stderr, check.stdout + check.stderr
        p = run_without_xml("update", "-c", cfg, "--json")
    finally:
        entry.stop()
    assert "Traceback" not in p.stderr, p.stderr
    r = json.loads(p.stdout.splitlines()[0])
    assert r["status"] == "failed" and r["error"]["code"] == "provider", r
    assert "python3-xml" in r["error"]["message"], r
