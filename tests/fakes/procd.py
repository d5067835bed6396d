"""A STAND-IN for OpenWrt's procd (and logd), for tests only: it is not procd.

It follows what the maintainers observed with the real procd
(tests/fakes/openwrt-recordings/README.md), no more:

- ``start`` registers the instance the init script describes. No instance
  running: it is started. The same definition again: nothing happens. A
  changed definition (a new ``-c`` argument, say): with ``reload_signal`` set,
  the running process gets that signal and keeps its old arguments; without
  it, the process is stopped (SIGTERM) and started with the new definition.
- ``reload`` runs the script's ``reload_service`` if it has one, else ``start``.
- ``stderr 1``: every line the service writes to stderr is logged at
  ``daemon.err``; ``stdout 1`` at ``daemon.info``.
- Interface triggers fire on ifup, ifupdate, link changes and ifdown alike,
  after a delay (1 s on the real one) and debounced, with no event data: no
  ``PARAM_*`` reaches the action.
- logd: a datagram socket at ``syslog_path`` (the test's /dev/log); each
  ``<PRI>ident: text`` is logged at its own facility and priority.

The init script itself runs in busybox ash under tests/fakes/rc.common, which
records the procd_* calls this class then acts on.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RC_COMMON = os.path.join(ROOT, "tests", "fakes", "rc.common")
FACILITIES = {0: "kern", 1: "user", 3: "daemon", 4: "auth", 10: "authpriv", 16: "local0"}
SEVERITIES = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]


def _fields(line: str) -> List[str]:
    return re.findall(r"\[([^\]]*)\]", line)


class FakeProcd:
    def __init__(self, init_script: str, workdir: str, env: Dict[str, str], *,
                 trigger_delay: float = 1.0):
        self.init_script = init_script
        self.workdir = workdir
        self.env = dict(env)
        self.trigger_delay = trigger_delay
        self.name = os.path.basename(init_script)
        self.syslog: List[str] = []  # "daemon.err edgeddns[12]: text", in arrival order
        self.actions: List[List[str]] = []  # every trigger action run, with its PARAM_* environment
        self.definition: Optional[List[str]] = None
        self.proc: Optional[subprocess.Popen] = None
        self.triggers: List[List[str]] = []
        self.signals_sent: List[str] = []
        self._lock = threading.Lock()
        self._timers: Dict[str, threading.Timer] = {}
        self.syslog_path = os.path.join(workdir, "dev-log")
        self._logd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._logd.bind(self.syslog_path)
        self._logd_thread = threading.Thread(target=self._logd_loop, daemon=True)
        self._logd_thread.start()

    # ---- logd
    def _logd_loop(self) -> None:
        while True:
            try:
                data = self._logd.recv(65536)
            except OSError:
                return
            if not data:  # shut down by stop()
                return
            m = re.match(rb"<(\d+)>(.*)", data, re.S)
            if not m:
                continue
            pri = int(m.group(1))
            text = m.group(2).rstrip(b"\0\n").decode("utf-8", "replace")
            self._log(f"{FACILITIES.get(pri >> 3, str(pri >> 3))}.{SEVERITIES[pri & 7]} {text}")

    def _log(self, line: str) -> None:
        with self._lock:
            self.syslog.append(line)

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.syslog)

    # ---- the init script
    def rc(self, action: str, *args: str, env: Optional[Dict[str, str]] = None) -> List[str]:
        record = os.path.join(self.workdir, f"procd-{action}-{time.monotonic_ns()}.txt")
        e = {**self.env, **(env or {}), "RECORD": record}
        r = subprocess.run(["busybox", "ash", RC_COMMON, self.init_script, action, *args], env=e,
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError(f"{self.name} {action}: {r.stderr}")
        try:
            with open(record) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def start(self, env: Optional[Dict[str, str]] = None) -> None:
        self._apply(self.rc("start", env=env), env)

    def reload(self, env: Optional[Dict[str, str]] = None) -> None:
        lines = self.rc("reload", env=env)
        if "fallback_start" in lines:  # no reload_service: rc.common runs start
            self.start(env)
            return
        self._apply(lines, env)

    def stop(self) -> Optional[int]:
        for t in list(self._timers.values()):
            t.cancel()
        code = self._kill()
        # Wake the logd thread and wait for it before closing: with threads left in recv() on
        # closed sockets, a later test's log lines went missing now and then (its socket reuses
        # the descriptor number).
        try:
            self._logd.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._logd_thread.join(5)
        self._logd.close()
        return code

    def _apply(self, lines: List[str], env: Optional[Dict[str, str]]) -> None:
        for line in lines:
            if line.startswith("send_signal "):
                name, _inst, sig = (_fields(line) + ["*", "HUP"])[:3]
                if name == self.name:
                    self._signal(sig)
        if "open_instance" not in lines:
            return
        inst = lines[lines.index("open_instance") + 1:lines.index("close_instance")]
        self.triggers = [_fields(x) for x in lines if x.startswith("interface_trigger ")]
        if self.proc is not None and self.proc.poll() is None:
            if inst == self.definition:
                return  # unchanged: start does nothing
            reload_sig = next((_fields(x)[1] for x in inst if _fields(x)[:1] == ["reload_signal"]), None)
            if reload_sig:
                self._signal(reload_sig)  # the process keeps its old arguments
                self.definition = inst
                return
            self._kill()
        self.definition = inst
        self._spawn(inst)

    def params(self, name: str) -> Optional[List[str]]:
        for x in self.definition or []:
            f = _fields(x)
            if f and f[0] == name:
                return f[1:]
        return None

    def _spawn(self, inst: List[str]) -> None:
        argv = self.params("command")
        assert argv, inst
        env = {k: v for k, v in self.env.items() if not k.startswith("PARAM_")}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     stdin=subprocess.DEVNULL)
        pid = self.proc.pid
        for stream, param, level in ((self.proc.stdout, "stdout", "daemon.info"),
                                     (self.proc.stderr, "stderr", "daemon.err")):
            on = (self.params(param) or ["0"])[0] == "1"
            threading.Thread(target=self._pump, args=(stream, on, f"{level} {self.name}[{pid}]: "),
                             daemon=True).start()

    def _pump(self, stream, on: bool, prefix: str) -> None:
        for raw in iter(stream.readline, b""):
            if on:
                self._log(prefix + raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def _signal(self, sig: str) -> None:
        self.signals_sent.append(sig)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(getattr(signal, f"SIG{sig}"))

    def _kill(self) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            timeout = float((self.params("term_timeout") or ["5"])[0])
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    @property
    def cmdline(self) -> List[str]:
        """The running process's real arguments (from /proc, not from the definition)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]

    # ---- netifd -> procd interface triggers
    def interface_event(self, iface: str, action: str) -> None:
        """netifd reports ``action`` on ``iface``; procd's triggers do not see which action it was."""
        del action  # the trigger fires alike on ifup, ifupdate, link changes and ifdown
        for t in self.triggers:
            _kind, t_iface, *cmd = t
            if t_iface != iface:
                continue
            key = f"{t_iface} {' '.join(cmd)}"
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()  # debounced
            timer = threading.Timer(self.trigger_delay, self._run_action, args=(cmd,))
            self._timers[key] = timer
            timer.start()

    def _run_action(self, cmd: List[str]) -> None:
        env = {k: v for k, v in self.env.items() if not k.startswith("PARAM_")}
        self.actions.append(cmd + [f"{k}={v}" for k, v in env.items() if k.startswith("PARAM_")])
        script, *args = cmd
        if script in ("/etc/init.d/" + self.name, self.init_script):
            record = os.path.join(self.workdir, "procd-action.txt")
            subprocess.run(["busybox", "ash", RC_COMMON, self.init_script, *args], env={**env, "RECORD": record},
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
