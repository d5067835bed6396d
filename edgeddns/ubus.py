"""netifd's interface notifications over ubus: the WAN trigger on OpenWrt.

The agent runs ``ubus subscribe network.interface`` as a child process. netifd
then notifies ``interface.update`` (ifup, an address or prefix change, a link
change) and ``interface.down``, each carrying the interface's whole status,
and the child prints each one as a JSON object on one line::

    { "interface.update": {"interface": "wan", "up": true, "ipv4-address": [...], ...} }

The status travels with the event, so the update needs no ``ubus call`` and
no netlink dump, and no Python starts per event. (``ubus listen`` would not
do: its events carry only ifup/ifdown, and a renewal never appears there.)

A notification for an interface no record reads (``ubus:NAME``), or one whose
addresses, prefixes and up state are what the last one said (a route or data
change), queues nothing. When the child exits (ubusd restarted, netifd gone)
the source resubscribes with a growing back-off and queues one full check,
since notifications may have been missed meanwhile; it never polls ubus.

While subscribed, ``<state_dir>/ubus.pid`` holds the agent's pid: the hotplug
script sees it and leaves the event to the agent.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Set

if TYPE_CHECKING:
    from edgeddns.config import Config

log = logging.getLogger("edgeddns")

PID_NAME = "ubus.pid"
SUBSCRIBE = ("ubus", "subscribe", "network.interface")
# A subscription is to one object id: when netifd restarts ("/etc/init.d/network restart"), its new
# network.interface object has a new id and the old subscriber hears nothing more, although
# its process runs on. ubusd announces the new object with this event.
OBJECT_ADDED = ("ubus", "listen", "ubus.object.add")
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
STABLE = 30.0  # a child that lived this long resets the back-off
SETTLE = 0.3  # a child alive after this long has subscribed (a failed one exits at once)
MAX_LINE = 256 * 1024  # one notification; netifd's are a few kB
# What makes a notification worth a check: the rest (uptime, routes, dns) moves no address.
ADDRESS_KEYS = ("up", "ipv4-address", "ipv6-address", "ipv6-prefix", "ipv6-prefix-assignment")


class Child:
    """The ``ubus subscribe`` (or ``listen``) process, spawned with a clean slate.

    The agent blocks SIGTERM, SIGINT and SIGHUP in every thread, and a blocked
    mask survives ``exec``: a child spawned by ``subprocess`` would ignore our
    SIGTERM and outlive the agent. :func:`edgeddns.spawn.start` resets the mask
    and the dispositions, and a new session keeps a terminal's Ctrl-C for the agent.
    """

    def __init__(self, argv: Sequence[str]):
        from edgeddns.spawn import start

        self.pid, fd = start(argv)
        self.stdout: IO[str] = os.fdopen(fd, "r", encoding="utf-8", errors="replace")
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """The exit status, or None if it still runs after ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() >= end:
                return None
            if end is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                    self.returncode = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    self.returncode = -1
            else:
                time.sleep(0.01)
        return self.returncode

    def terminate(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except OSError as e:
                if e.errno != errno.ESRCH:
                    raise


def _end(child: Child) -> Optional[int]:
    """Stop a child and reap it; SIGKILL if it ignores SIGTERM, since it must not outlive us."""
    if child.poll() is None:
        child.terminate()
    code = child.wait(5)
    if code is None:
        os.kill(child.pid, signal.SIGKILL)
        code = child.wait()
    return code


def lines(stream: IO[str], limit: int = MAX_LINE) -> Iterator[str]:
    """The child's lines, each read with a bound: a longer one is skipped a piece at a time, never held
    whole (``for line in stream`` would hold an endless line until memory runs out)."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit:
            yield line
            continue
        while line and not line.endswith("\n"):
            line = stream.readline(limit + 1)
        log.debug("ubus: skipped a line longer than %d characters", limit)


def ubus_names(config: "Config") -> Set[str]:
    """Every NAME of ``ubus:NAME`` in the config, globally or per record."""
    sources = list(config.ip.ipv4) + list(config.ip.ipv6)
    for r in config.records:
        sources.extend(r.ip or [])
    return {s.partition(":")[2] for s in sources if s.startswith("ubus:")}


def parse(line: str) -> Optional[tuple]:
    """``(kind, interface, status)`` of one ``ubus subscribe`` line, or None."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):  # deep nesting is RecursionError: it ended the reading thread
        return None
    if not isinstance(obj, dict) or len(obj) != 1:
        return None
    kind, status = next(iter(obj.items()))
    if kind not in ("interface.update", "interface.down") or not isinstance(status, dict):
        return None
    iface = status.get("interface")
    if not isinstance(iface, str) or not iface:
        return None
    return kind, iface, status


def address_key(kind: str, status: Dict[str, Any]) -> str:
    view = {k: status.get(k) for k in ADDRESS_KEYS}
    if kind == "interface.down":
        view["up"] = False
    return json.dumps(view, sort_keys=True)


class UbusSource:
    """A ``Source``: netifd notifications in, agent events out."""

    def __init__(self, config: "Config", *, argv: Sequence[str] = SUBSCRIBE,
                 watch_argv: Optional[Sequence[str]] = OBJECT_ADDED,
                 backoff: tuple = (BACKOFF_FIRST, BACKOFF_MAX), settle: float = SETTLE,
                 monotonic: Callable[[], float] = time.monotonic):
        self.config = config
        self.argv = list(argv)
        self.watch_argv = list(watch_argv) if watch_argv else None
        self.backoff = backoff
        self.settle = settle
        self.monotonic = monotonic
        self.events = 0  # events submitted, for tests and benchmarks
        self.subscriptions = 0  # children started
        self._agent: Any = None
        self._last: Dict[str, str] = {}  # interface -> address_key of its last notification
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: Optional[Child] = None
        self._thread: Optional[threading.Thread] = None

    @staticmethod
    def wanted(config: "Config", which: Optional[Callable[[str], Optional[str]]] = None) -> bool:
        """Only on a box with ubus, for a config that reads netifd's interfaces."""
        if not ubus_names(config):
            return False
        if which is None:
            import shutil  # here: with bz2 and lzma it stays resident in every daemon that never needs it

            which = shutil.which
        return which(SUBSCRIBE[0]) is not None

    # ---- lifecycle
    def start(self, agent: Any) -> None:
        self._agent = agent
        self._thread = threading.Thread(target=self._loop, name="edgeddns-ubus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._clear_pid()

    # ---- the subscription
    def _loop(self) -> None:
        delay = self.backoff[0]
        first = True
        while not self._stopping.is_set():
            started = self.monotonic()
            ok = self._subscribe(resubscribed=not first)
            if self._stopping.is_set():
                return
            if ok:
                first = False
                if self.monotonic() - started >= STABLE:
                    delay = self.backoff[0]
                log.warning("ubus: the network.interface subscription ended; resubscribing in %.0f s", delay)
            else:
                log.warning("ubus: cannot subscribe to network.interface; trying again in %.0f s", delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.backoff[1])

    def _subscribe(self, resubscribed: bool) -> bool:
        """Run one subscription child until it exits; False if it never got going."""
        try:
            child = Child(self.argv)
        except OSError as e:
            log.error("ubus: cannot run %s: %s", self.argv[0], e.strerror or e)
            return False
        with self._lock:
            self._child = child
        if self._stopping.is_set():
            child.terminate()
        self.subscriptions += 1
        # ubus prints nothing to confirm a subscription, but fails at once
        # when it cannot subscribe (no ubusd, no netifd object): a child
        # still there after a moment is subscribed. What netifd notifies
        # meanwhile waits in the pipe.
        child.wait(self.settle)
        if child.poll() is not None:
            child.stdout.close()
            log.debug("ubus: subscribing failed (status %s)", child.returncode)
            return False
        watcher = self._watch(child)
        self._write_pid()
        log.debug("ubus: subscribed to network.interface (child pid %d)", child.pid)
        # Whatever changed while nobody listened is unknown: what netifd said
        # before is forgotten and every record is checked once.
        self._last.clear()
        if resubscribed:
            self._submit(None, None, None)
        try:
            for line in lines(child.stdout):
                self.handle(line)
        except (OSError, ValueError):
            pass
        finally:
            self._clear_pid()
            child.stdout.close()
            code = _end(child)
            log.debug("ubus: subscription child exited with status %s", code)
            if watcher is not None:
                _end(watcher)
                watcher.stdout.close()
        return True

    def _watch(self, child: Child) -> Optional[Child]:
        """Run ``ubus listen ubus.object.add``; a new network.interface object ends ``child``."""
        if not self.watch_argv:
            return None
        try:
            watcher = Child(self.watch_argv)
        except OSError as e:
            log.debug("ubus: cannot watch for netifd restarts: %s", e.strerror or e)
            return None

        def read() -> None:
            try:
                for line in lines(watcher.stdout):
                    try:
                        event = json.loads(line).get("ubus.object.add") or {}
                    except (ValueError, AttributeError, RecursionError):
                        continue
                    if isinstance(event, dict) and event.get("path") == SUBSCRIBE[2]:
                        log.info("ubus: netifd registered network.interface again (restarted?); resubscribing")
                        child.terminate()
                        return
            except (OSError, ValueError):
                pass

        threading.Thread(target=read, name="edgeddns-ubus-watch", daemon=True).start()
        return watcher

    def handle(self, line: str) -> bool:
        """One notification line; True when it queued a check."""
        parsed = parse(line)
        if parsed is None:
            if line.strip():
                log.debug("ubus: ignored a line that is not a network.interface notification")
            return False
        kind, iface, status = parsed
        cfg = self._agent.config if self._agent is not None else self.config
        if iface not in ubus_names(cfg):
            return False
        key = address_key(kind, status)
        if self._last.get(iface) == key:
            log.debug("ubus: %s %s: addresses unchanged", kind, iface)
            return False
        self._last[iface] = key
        log.debug("ubus: %s %s", kind, iface)
        self._submit(iface, status if kind == "interface.update" else {**status, "up": False}, cfg)
        return True

    def _submit(self, iface: Optional[str], status: Optional[Dict[str, Any]], cfg: Optional["Config"]) -> None:
        from edgeddns.events import Event

        if self._agent is None:
            return
        if iface is None:
            event = Event("ubus")
        else:
            assert cfg is not None
            event = Event("ubus", records=records_of(cfg, iface), iface=iface, interfaces={iface: status or {}})
        self.events += 1
        self._agent.submit(event)

    # ---- the marker the hotplug script reads
    def _pid_path(self) -> str:
        cfg = self._agent.config if self._agent is not None else self.config
        return os.path.join(cfg.agent.state_dir, PID_NAME)

    def _write_pid(self) -> None:
        from edgeddns.fileio import write_atomic

        try:
            os.makedirs(os.path.dirname(self._pid_path()), mode=0o700, exist_ok=True)
            write_atomic(self._pid_path(), f"{os.getpid()}\n")
        except OSError as e:
            log.debug("ubus: cannot write %s: %s", self._pid_path(), e.strerror)

    def _clear_pid(self) -> None:
        try:
            with open(self._pid_path()) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.unlink(self._pid_path())
        except OSError:
            pass


def records_of(config: "Config", iface: str) -> List[str]:
    """The records a notification for ``iface`` concerns: those that read ``ubus:iface``, and those
    that read a ``url:`` or ``cmd:`` source, which no event of their own announces and which a WAN
    change moves (the hotplug script, which the subscription replaces, used to check them too)."""
    out = set()
    for r in config.records:
        sources = config.sources_for(r)
        if f"ubus:{iface}" in sources or any(s.startswith(("url:", "cmd:")) for s in sources):
            out.add(r.name)
    return sorted(out)
