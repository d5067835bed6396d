"""Ctrl-C on a terminal: SIGINT to the whole foreground process group, children included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.agentproc import read, wait_for
from tests.conftest import ROOT, write_config

CFG = """
[agent]
node_id = "t"
state_dir = "{d}/state"
[ip]
ipv4 = ["cmd:sh -c 'touch {d}/started; sleep 1.5; echo 192.0.2.9'"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "a.lan"
provider = "lan"
allow_private = true
"""


def start(tmp_path, *argv):
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    log = open(tmp_path / "out", "w")
    # A job of its own, as a shell runs it: Ctrl-C goes to its process group.
    p = subprocess.Popen([sys.executable, "-m", "edgeddns", *argv, "-c", cfg], stdout=log, stderr=subprocess.STDOUT,
                         env={**os.environ, "PYTHONPATH": ROOT}, start_new_session=True)
    return p, log


def test_ctrl_c_during_an_update_in_the_agent_is_not_a_failure(tmp_path):
    p, log = start(tmp_path, "run")
    try:
        # The startup check's cmd: source is running.
        assert wait_for(lambda: (tmp_path / "started").exists(), timeout=20), read(tmp_path / "out")
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
        log.close()
    out = read(tmp_path / "out")
    assert "stopping on SIGINT" in out, out
    assert "failed" not in out and "retrying" not in out, out
    # The update in flight was finished, not thrown away.
    assert "192.0.2.9 a.lan" in read(tmp_path / "hosts"), out


def test_ctrl_c_during_a_one_shot_update_says_so(tmp_path):
    p, log = start(tmp_path, "update")
    try:
        assert wait_for(lambda: (tmp_path / "started").exists(), timeout=20), read(tmp_path / "out")
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(30) == 130
    finally:
        if p.poll() is None:
            p.kill()
        log.close()
    out = read(tmp_path / "out")
    assert "interrupted" in out and "failed" not in out and "Traceback" not in out, out
