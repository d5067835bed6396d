"""Running a real ``edgeddns run`` agent as a subprocess, for the trigger tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Callable, List, Optional

from tests.conftest import ROOT

HOSTS_CONFIG = """
[agent]
node_id = "n"
state_dir = "{state}"
[ip]
ipv4 = ["cmd:cat {d}/wan-ip"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.lan"
provider = "lan"
allow_private = true
"""


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    return e


def write_wrapper(directory: str) -> str:
    """An ``edgeddns`` executable that runs this checkout's real CLI."""
    path = os.path.join(directory, "edgeddns")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m edgeddns \"$@\"\n")
    os.chmod(path, 0o755)
    return path


class AgentProc:
    def __init__(self, config: str, *, prefix: Optional[List[str]] = None, verbose: bool = False,
                 extra_env: Optional[dict] = None):
        self.config = config
        self.log_path = config + f".{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        args = [*(prefix or []), sys.executable, "-m", "edgeddns", "run", "-c", config] + (["-v"] if verbose else [])
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**env(), **(extra_env or {})}, cwd=ROOT)

    @property
    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, pred: Callable[[str], bool], timeout: float = 15) -> bool:
        return wait_for(lambda: pred(self.log), timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def wait_for(pred: Callable[[], bool], timeout: float = 15, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(step)
    return False


def read(path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def raw_request(path: str, payload: bytes, timeout: float = 5) -> dict:
    """Send raw bytes to the control socket; return the parsed reply line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(payload)
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return json.loads(buf.split(b"\n")[0])


def serving(sock_path: str) -> bool:
    try:
        return raw_request(sock_path, b'{"op":"status"}\n', timeout=1).get("ok") is True
    except (OSError, ValueError):
        return False
