"""Log output a user sees: timestamps, where lines go, -v/-q anywhere on the command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT, write_config

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d edgeddns: (DEBUG|INFO|WARNING|ERROR): ", re.M)

CFG = """
[agent]
node_id = "t"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:192.0.2.7"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.lan"
provider = "lan"
allow_private = true
"""


def run(tmp_path, *argv, env=None, stderr_path=None):
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    e = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    e.pop("JOURNAL_STREAM", None) if "JOURNAL_STREAM" not in (env or {}) else None
    if stderr_path is None:
        return subprocess.run([sys.executable, "-m", "edgeddns", *argv, "-c", cfg], capture_output=True, text=True,
                              env=e, timeout=60)
    with open(stderr_path, "w") as err:
        r = subprocess.run([sys.executable, "-m", "edgeddns", *argv, "-c", cfg], stdout=subprocess.PIPE, stderr=err,
                           text=True, env=e, timeout=60)
    with open(stderr_path) as f:
        r.stderr = f.read()
    return r


def test_log_lines_carry_an_iso_timestamp_by_default(tmp_path):
    r = run(tmp_path, "update", "-v", env={"TZ": "UTC"})
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x]
    assert lines and all(ISO.match(x) for x in lines), r.stderr
    assert "+00:00 edgeddns: DEBUG: " in r.stderr


def test_no_timestamp_when_stderr_is_the_journal(tmp_path):
    """systemd names its stream in JOURNAL_STREAM (device:inode of our stderr); the journal stamps lines."""
    path = tmp_path / "journal"
    path.write_text("")
    st = os.stat(path)
    r = run(tmp_path, "-v", "update", env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stderr_path=path)
    assert r.returncode == 0, r.stderr
    assert r.stderr and not ISO.search(r.stderr), r.stderr
    assert re.search(r"^edgeddns: DEBUG: ", r.stderr, re.M), r.stderr
    # A JOURNAL_STREAM that is not our stderr (inherited by a child of a service) changes nothing.
    r = run(tmp_path, "-v", "update", env={"JOURNAL_STREAM": "1:1"})
    assert ISO.search(r.stderr), r.stderr


def test_verbose_and_quiet_before_or_after_the_command(tmp_path):
    for argv in (["-v", "update"], ["update", "-v"], ["update", "--verbose"]):
        r = run(tmp_path, *argv)
        assert r.returncode == 0 and "DEBUG" in r.stderr, (argv, r.stderr)
    for argv in (["-q", "update"], ["update", "-q"]):
        r = run(tmp_path, *argv)
        assert r.returncode == 0 and r.stderr == "", (argv, r.stderr)


def test_syslog_without_a_socket_falls_back_to_stderr(tmp_path):
    r = run(tmp_path, "update", "--syslog", "-v", env={"EDGEDDNS_SYSLOG_SOCKET": str(tmp_path / "nothing")})
    assert r.returncode == 0
    assert "cannot log to syslog at" in r.stderr and "DEBUG" in r.stderr


def test_under_procd_means_parent_pid_1_and_it_is_procd(tmp_path):
    from edgeddns.log import under_procd

    comm = tmp_path / "comm"
    comm.write_text("procd\n")
    assert under_procd(ppid=1, comm=str(comm))
    assert not under_procd(ppid=42, comm=str(comm))
    comm.write_text("systemd\n")
    assert not under_procd(ppid=1, comm=str(comm))
    assert not under_procd(ppid=1, comm=str(tmp_path / "missing"))


def test_syslog_lines_survive_logd_going_away_and_coming_back(tmp_path, capsys):
    import logging
    import socket

    from edgeddns.log import SyslogHandler

    path = str(tmp_path / "log")
    logd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    logd.bind(path)
    h = SyslogHandler(path)
    h.setFormatter(logging.Formatter("%(message)s"))
    rec = logging.LogRecord("edgeddns", logging.WARNING, __file__, 1, "first %s", ("line",), None)
    h.emit(rec)
    assert logd.recv(4096).startswith(b"<28>edgeddns[")
    logd.close()
    os.unlink(path)
    h.emit(logging.LogRecord("edgeddns", logging.ERROR, __file__, 1, "while logd is away", (), None))
    err = capsys.readouterr().err
    assert err == "edgeddns: ERROR: while logd is away\n"  # kept, and no "--- Logging error ---" traceback
    logd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    logd.bind(path)  # logd restarted: a new socket at the same path
    h.emit(logging.LogRecord("edgeddns", logging.INFO, __file__, 1, "back", (), None))
    assert logd.recv(4096).endswith(b"]: back")
    logd.close()
    h.close()
