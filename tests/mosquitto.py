"""A real Mosquitto broker on 127.0.0.1 for tests and benchmarks.

It gets a free port (plus one for TLS when a certificate is given), a
password file made with ``mosquitto_passwd -b``, and an ACL file. Running as
root, Mosquitto 2 drops to the ``mosquitto`` user and then cannot read files in
pytest's 0700 temporary directories, so the config names the current user.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from typing import Dict, List, Optional

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, workdir: str, *, users: Optional[Dict[str, str]] = None, acl: Optional[str] = None,
                 tls: Optional[Dict[str, str]] = None, persistence: bool = False, extra: Optional[List[str]] = None):
        """``tls`` = {"ca": path, "cert": path, "key": path} adds a TLS listener."""
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(workdir, "mosquitto.log")
        lines: List[str] = ["per_listener_settings false", f"user {getpass.getuser()}", "log_dest stdout",
                            "log_type error", "log_type warning", "log_type notice", "log_type information"]
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 0"]
        else:
            lines.append("persistence false")
        if users:
            pw = os.path.join(workdir, "passwd")
            open(pw, "w").close()
            for u, p in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, u, p], check=True, capture_output=True)
            os.chmod(pw, 0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            path = os.path.join(workdir, "acl")
            with open(path, "w") as f:
                f.write(acl)
            os.chmod(path, 0o600)
            lines.append(f"acl_file {path}")
        lines += extra or []
        lines.append(f"listener {self.port} 127.0.0.1")
        if tls:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls['ca']}", f"certfile {tls['cert']}",
                      f"keyfile {tls['key']}", "tls_version tlsv1.2"]
        self.conf = os.path.join(workdir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        assert MOSQUITTO, "mosquitto is not installed"
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        try:
            return open(self.log_path).read()
        except OSError:
            return ""


class Relay:
    """A TCP relay to a broker whose connections can be cut (a WAN blip without a broker restart) and
    whose new connections can be held off (closed at once) while a test gets its own clients ready."""

    def __init__(self, port: int):
        import threading

        self.target = port
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.conns: list = []
        self.held = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            try:
                if self.held:
                    raise OSError("held")
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            with self.lock:
                self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                # shutdown, not only close: the other pump thread is blocked in recv on these sockets,
                # and close() alone neither wakes it nor sends the FIN while that call holds the file.
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self) -> None:
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def close(self) -> None:
        self.cut()
        self.srv.close()
