"""Real time sources for the clock tests: chronyd on the loopback, a lying NTP
responder, libfaketime with a sleep shim, and certificates with real dates."""

from __future__ import annotations

import datetime
import glob
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from typing import Dict, Optional

import pytest

from edgeddns.sntp import SntpClient, unix_to_ntp

HERE = os.path.dirname(os.path.abspath(__file__))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- chronyd

@pytest.fixture(scope="session")
def chronyd(tmp_path_factory):
    """A real NTP server on 127.0.0.1 that never steers the clock (chronyd -x); yields "127.0.0.1:PORT"."""
    exe = shutil.which("chronyd") or ("/usr/sbin/chronyd" if os.path.exists("/usr/sbin/chronyd") else None)
    if exe is None:
        pytest.skip("chronyd is not installed (apt-get install chrony; scripts/test does it)")
    d = tmp_path_factory.mktemp("chrony")
    port = free_udp_port()
    conf = d / "chrony.conf"
    conf.write_text(f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\ncmdport 0\n"
                    f"bindcmdaddress /\npidfile {d}/chronyd.pid\ndriftfile {d}/drift\n")
    # -x: never touch the system clock; -d: foreground; -U: run without being root;
    # as root, stay root (-u) so the files in the private temp dir stay writable.
    args = [exe, "-x", "-d", "-U", "-f", str(conf)]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "root"]
    log = open(d / "chronyd.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = f"127.0.0.1:{port}"
    client = SntpClient(timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.query(server)
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail(f"chronyd did not start: {(d / 'chronyd.log').read_text()[-500:]}")
            time.sleep(0.1)
    yield server
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# ---------------------------------------------------------------- a lying server

class FakeNtp:
    """A UDP NTP responder on 127.0.0.1 with a chosen offset and misbehaviour.

    ``behaviour``: "good", "spoof" (wrong origin), "kod" (stratum 0, RATE),
    "li3" (leap alarm), "zero" (zero transmit time), "silent" (never answers).
    """

    def __init__(self, offset: float = 0.0, behaviour: str = "good"):
        self.offset = offset
        self.behaviour = behaviour
        self.queries = 0  # requests received, answered or not
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.server = f"127.0.0.1:{self.port}"
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                data, addr = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            t2 = time.time() + self.offset
            self.queries += 1
            if self.behaviour == "silent" or len(data) < 48:
                continue
            origin = data[40:48]
            li, stratum, ref = 0, 2, b"GPS\0"
            if self.behaviour == "spoof":
                origin = bytes(8)
            elif self.behaviour == "kod":
                stratum, ref = 0, b"RATE"
            elif self.behaviour == "li3":
                li = 3
            t3 = time.time() + self.offset
            tx = 0 if self.behaviour == "zero" else unix_to_ntp(t3)
            reply = struct.pack("!BBbbII4s8s8sQQ", (li << 6) | (4 << 3) | 4, stratum, 4, -20, 0, 0, ref,
                                bytes(8), origin, unix_to_ntp(t2), tx)
            try:
                self.sock.sendto(reply, addr)
            except OSError:
                pass

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def fake_ntp():
    made = []

    def make(offset: float = 0.0, behaviour: str = "good") -> FakeNtp:
        f = FakeNtp(offset, behaviour)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


# ---------------------------------------------------------------- libfaketime

def libfaketime_path() -> Optional[str]:
    try:
        out = subprocess.run(["dpkg", "-L", "libfaketime"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.endswith("/libfaketime.so.1"):
                return line
    except (OSError, subprocess.SubprocessError):
        pass
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


class Faketime:
    """Environment for a child whose wall clock is skewed and whose monotonic clock is real.

    The skew is read from a file on every clock read (FAKETIME_NO_CACHE), so a
    test can step the child's clock while it runs with :meth:`set`.
    """

    def __init__(self, lib: str, shim: str, rc_file: str):
        self.lib, self.shim, self.rc_file = lib, shim, rc_file

    def set(self, skew: str) -> None:
        tmp = self.rc_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(skew + "\n")
        os.replace(tmp, self.rc_file)

    def env(self, skew: Optional[str] = None) -> Dict[str, str]:
        if skew is not None:
            self.set(skew)
        return {
            # The shim comes first: it sends monotonic sleeps straight to the kernel.
            "LD_PRELOAD": f"{self.shim} {self.lib}",
            "FAKETIME_TIMESTAMP_FILE": self.rc_file,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


@pytest.fixture(scope="session")
def faketime_tools(tmp_path_factory):
    lib = libfaketime_path()
    if lib is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime; scripts/test does it)")
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the sleep shim (apt-get install gcc libc6-dev)")
    d = tmp_path_factory.mktemp("faketime")
    shim = str(d / "realsleep.so")
    p = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", shim, os.path.join(HERE, "native", "realsleep.c"),
                        "-ldl"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"building the sleep shim failed: {p.stderr[-500:]}")
    return lib, shim


@pytest.fixture
def faketime(faketime_tools, tmp_path):
    lib, shim = faketime_tools
    return Faketime(lib, shim, str(tmp_path / "faketime.rc"))


# ---------------------------------------------------------------- certificates with real dates

def dated_context(ca, *names: str, days_before: float = 1, days_after: float = 90) -> ssl.SSLContext:
    """A server context whose certificate is valid from now-days_before to now+days_after (real time)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cert = ca.issue_cert(*(names or ("127.0.0.1", "localhost")),
                         not_before=now - datetime.timedelta(days=days_before),
                         not_after=now + datetime.timedelta(days=days_after))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx
