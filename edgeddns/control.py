"""The local trigger channel: a UNIX socket in the state dir.

The running agent listens on ``<state_dir>/control.sock``; ``edgeddns
trigger`` (what the OpenWrt hotplug script and the procd interface trigger
run) and ``edgeddns status`` talk to it. The protocol is one JSON object per
line each way::

    {"op": "trigger", "iface": "wan", "action": "ifup", "device": "eth1"}
    -> {"ok": true, "queued": true, "trigger": "hotplug", "pid": 1234}
    {"op": "status"}
    -> {"ok": true, "state": {...}, "pid": 1234}

A trigger is acknowledged as soon as it is queued, never after the update:
netifd runs hotplug scripts one at a time, so a slow provider must not hold
up the next interface event.

Access control is the file system (directory 0700, socket 0600) plus a check
of the peer's uid with ``SO_PEERCRED``: only the agent's own user and root may
talk to it. One agent per state dir: an ``flock`` on ``control.lock`` and a
connect probe decide whether an existing socket is live (keep it, run without
a control channel) or left over from a killed agent (replace it).

The client side is on the hotplug path, so this module imports only the
standard library modules it needs at top level; the config is read with
``tomllib`` alone, not through :mod:`edgeddns.config`.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    import argparse

    from edgeddns.agent import Agent
    from edgeddns.config import Config
    from edgeddns.watch import SocketWatcher

SOCKET_NAME = "control.sock"
LOCK_NAME = "control.lock"
MAX_REQUEST = 4096  # bytes in one request line
MAX_FIELD = 64  # characters in iface / action / device
EXIT_NO_AGENT = 3  # ``trigger`` and ``status`` when nothing listens

# netifd actions that carry no new address: acknowledged, nothing queued.
IGNORED_ACTIONS = frozenset({"ifdown", "ifup-failed", "free", "create", "iflink", "reload"})


class ControlError(Exception):
    """The control socket cannot be served or reached; ``code`` is stable."""

    def __init__(self, message: str, code: str = "control"):
        super().__init__(message)
        self.message = message
        self.code = code


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


# ---- server (inside ``edgeddns run``) ------------------------------------------


class ControlServer:
    """Serves the control socket for one agent; a ``Source`` of events."""

    def __init__(self, config: "Config", *, path: Optional[str] = None, max_clients: int = 8,
                 client_timeout: float = 2.0):
        self.path = path or socket_path(config.agent.state_dir)
        self.max_clients = max_clients
        self.client_timeout = client_timeout
        self.error: Optional[str] = None  # why the socket is not served, if it is not
        self._agent: Optional["Agent"] = None
        self._sock: Optional[socket.socket] = None
        self._lock_fd: Optional[int] = None
        self._ino: Optional[int] = None
        self._watcher: Optional["SocketWatcher"] = None
        self._slots = threading.BoundedSemaphore(max_clients)

    # -- lifecycle
    def start(self, agent: "Agent") -> None:
        import logging

        self._agent = agent
        try:
            self._listen()
        except ControlError as e:
            # The agent still works (netlink, MQTT, poll); only triggers are lost.
            self.error = e.message
            logging.getLogger("edgeddns").error("control socket: %s", e.message)
            return
        from edgeddns.watch import SocketWatcher

        assert self._sock is not None
        self._watcher = SocketWatcher(self._sock, self._accept, "edgeddns-control")

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            # Remove the file only if it is still the one we made.
            try:
                if os.lstat(self.path).st_ino == self._ino:
                    os.unlink(self.path)
            except OSError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _listen(self) -> None:
        import fcntl
        import stat

        directory = os.path.dirname(os.path.abspath(self.path))
        tmp = f"{self.path}.{os.getpid()}"
        if len(os.fsencode(tmp)) >= 107:
            raise ControlError(f"{self.path}: path too long for a UNIX socket; use a shorter state_dir")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise ControlError(f"cannot create {directory}: {e.strerror}") from None
        try:
            fd = os.open(os.path.join(directory, LOCK_NAME),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise ControlError(f"cannot open the lock in {directory}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ControlError(f"another edgeddns agent is running with state dir {directory}; "
                               f"this one runs without a control socket", "busy") from None
        except OSError:
            pass  # no flock on this file system: the connect probe below decides alone
        self._lock_fd = fd
        try:
            self._replace_stale(stat)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                # Bound under a private name and chmod'ed before it is renamed
                # into place, so the socket is never reachable with wider modes.
                s.bind(tmp)
                os.chmod(tmp, 0o600)
                s.listen(16)
                os.rename(tmp, self.path)
                self._ino = os.lstat(self.path).st_ino
            except OSError as e:
                s.close()
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise ControlError(f"cannot listen on {self.path}: {e.strerror}") from None
        except ControlError:
            os.close(fd)
            self._lock_fd = None
            raise
        self._sock = s

    def _replace_stale(self, stat: Any) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ControlError(f"cannot inspect {self.path}: {e.strerror}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"{self.path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        probe.settimeout(1.0)
        try:
            probe.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # nobody listens: left over from an agent that was killed
        except OSError as e:
            raise ControlError(f"cannot probe {self.path}: {e.strerror or e}") from None
        else:
            raise ControlError(f"another edgeddns agent is listening on {self.path}; "
                               f"this one runs without a control socket", "busy")
        finally:
            probe.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    # -- serving
    def _accept(self) -> bool:
        assert self._sock is not None
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return True
        if not self._slots.acquire(blocking=False):
            self._reply(conn, {"ok": False, "error": {"code": "busy", "message": "too many clients"}})
            conn.close()
            return True
        threading.Thread(target=self._client, args=(conn,), name="edgeddns-control-client",
                         daemon=True).start()
        return True

    def _client(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.client_timeout)
            uid = peer_uid(conn)
            try:
                line = _read_line(conn, MAX_REQUEST)
            except ControlError as e:
                line, problem = b"", e
            except OSError:
                return  # the client went away or stalled: nobody to answer
            else:
                problem = None
            # The request is read (and ignored) before a refusal, so the
            # client is not cut off mid-send and gets to see why.
            if uid is not None and uid not in (os.geteuid(), 0):
                self._log("warning", "control socket: refused a client with uid %d", uid)
                self._reply(conn, _error("forbidden", f"uid {uid} may not control this agent"))
            elif problem is not None:
                self._reply(conn, _error(problem.code, problem.message))
            else:
                self._reply(conn, self.handle(line))
        finally:
            conn.close()
            self._slots.release()

    @staticmethod
    def _reply(conn: socket.socket, obj: Dict[str, Any]) -> None:
        try:
            conn.sendall(json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n")
        except OSError:
            pass

    def _log(self, level: str, msg: str, *args: Any) -> None:
        import logging

        getattr(logging.getLogger("edgeddns"), level)(msg, *args)

    def handle(self, line: bytes) -> Dict[str, Any]:
        """One request line in, one reply object out; never raises."""
        try:
            req = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error("bad_request", "not a JSON object")
        if not isinstance(req, dict):
            return _error("bad_request", "not a JSON object")
        op = req.get("op")
        if op == "trigger":
            return self._trigger(req)
        if op == "status":
            return {"ok": True, "state": self._state(), "pid": os.getpid()}
        return _error("bad_request", f"unknown op {op!r} (use trigger or status)")

    def _trigger(self, req: Dict[str, Any]) -> Dict[str, Any]:
        from edgeddns.events import Event

        fields: Dict[str, Optional[str]] = {}
        for name in ("iface", "action", "device"):
            v = req.get(name)
            if v is not None and (not isinstance(v, str) or len(v) > MAX_FIELD or "\n" in v):
                return _error("bad_request", f"{name} must be a string of at most {MAX_FIELD} characters")
            fields[name] = v or None
        iface, action = fields["iface"], fields["action"]
        agent = self._agent
        assert agent is not None
        if action in IGNORED_ACTIONS:
            return {"ok": True, "queued": False, "reason": f"{action}: no address to publish", "pid": os.getpid()}
        self._log("info", "trigger %s%s%s", action or "manual", f" {iface}" if iface else "",
                  f" ({fields['device']})" if fields["device"] else "")
        if action and action.startswith("ntp"):
            # The system clock was stepped or synchronised: measure again
            # (network I/O, so not on this thread), then check the records.
            resync = getattr(agent.clock, "resync", None)

            def after_clock() -> None:
                if callable(resync):
                    from edgeddns.errors import EdgeError

                    try:
                        resync()
                    except EdgeError as e:  # NTP silent: expected, and the clock keeps what it knew
                        self._log("warning", "clock resync: %s", e.message)
                    except Exception:
                        self._log("exception", "clock resync failed")
                agent.submit(Event("ntp", iface=iface))

            threading.Thread(target=after_clock, name="edgeddns-resync", daemon=True).start()
            return {"ok": True, "queued": True, "trigger": "ntp", "pid": os.getpid()}
        agent.submit(Event("hotplug", iface=iface))
        return {"ok": True, "queued": True, "trigger": "hotplug", "pid": os.getpid()}

    def _state(self) -> Dict[str, Any]:
        assert self._agent is not None
        for _ in range(5):  # the worker may be replacing the records dict right now
            try:
                return self._agent.state()
            except RuntimeError:
                continue
        return self._agent.state()


def peer_uid(conn: socket.socket) -> Optional[int]:
    """The uid of the process at the other end (Linux ``SO_PEERCRED``)."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid


def _read_line(conn: socket.socket, limit: int) -> bytes:
    buf = b""
    while b"\n" not in buf:
        chunk = conn.recv(1024)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ControlError(f"request longer than {limit} bytes", "bad_request")
    line = buf.split(b"\n", 1)[0].strip()
    if not line:
        raise ControlError("empty request", "bad_request")
    return line


def _error(code: str, message: str) -> Dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


# ---- client (``edgeddns trigger`` / ``edgeddns status``) -----------------------


def request(path: str, obj: Dict[str, Any], timeout: float = 2.0) -> Dict[str, Any]:
    """Send one request, return the reply. ControlError codes: no_agent, denied, timeout, protocol."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"no agent is running (nothing listens on {path})", "no_agent") from None
        except PermissionError:
            raise ControlError(f"permission denied on {path} (run as the agent's user or root)",
                               "denied") from None
        try:
            s.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        except BrokenPipeError:
            pass  # the agent hung up early; its reply, if any, is still readable
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        raise ControlError(f"the agent did not answer within {timeout:g} s", "timeout") from None
    except OSError as e:
        raise ControlError(f"{path}: {e.strerror or e}", "protocol") from None
    finally:
        s.close()
    try:
        reply = json.loads(buf.split(b"\n", 1)[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError("the agent sent a malformed reply", "protocol") from None
    if not isinstance(reply, dict):
        raise ControlError("the agent sent a malformed reply", "protocol")
    return reply


def default_state_dir() -> str:
    """Same rule as :func:`edgeddns.config.default_state_dir` (tests keep them equal)."""
    if os.geteuid() == 0:
        return "/var/lib/edgeddns"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgeddns")


_UNSURE = object()


def _scan_state_dir(text: str) -> object:
    """``[agent] state_dir`` found by a line scan, None if absent, or _UNSURE.

    The hotplug path runs this on every WAN event; the TOML parser would cost
    it a few ms and about 3 MB. Only the plain spelling is read here; anything
    unusual (multi-line strings, escapes, dotted or inline ``agent`` keys, a
    malformed header) is left to the real parser.
    """
    if '"""' in text or "'''" in text:
        return _UNSURE
    table: Optional[str] = ""
    found: object = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            head = line.split("#", 1)[0].strip()
            inner = head[2:-2] if head.startswith("[[") else head[1:-1]
            if not head.endswith("]") or "[" in inner or "]" in inner or not inner.strip():
                return _UNSURE
            table = inner.strip().strip('"\'')
            continue
        key, eq, value = line.partition("=")
        key = key.strip().strip('"\'')
        if table == "" and (key == "agent" or key.startswith("agent.")):
            return _UNSURE
        if table != "agent" or key != "state_dir":
            if table == "agent" and key.startswith("state_dir"):
                return _UNSURE
            continue
        value = value.strip()
        quote = value[:1]
        if not eq or quote not in ('"', "'") or found is not None:
            return _UNSURE
        end = value.find(quote, 1)
        if end < 0:
            return _UNSURE
        body, rest = value[1:end], value[end + 1:].strip()
        if (rest and not rest.startswith("#")) or (quote == '"' and "\\" in body):
            return _UNSURE  # trailing junk, or escapes only the real parser should read
        found = body
    return found


def state_dir_of(config_path: str) -> str:
    """``[agent] state_dir`` of a config file, read cheaply (no validation, no providers)."""
    try:
        with open(config_path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ControlError(f"{config_path}: cannot read: {e.strerror}", "config") from None
    try:
        quick = _scan_state_dir(raw.decode("utf-8"))
    except UnicodeDecodeError:
        quick = _UNSURE
    if quick is not _UNSURE:
        return _resolve_state_dir(config_path, quick)
    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:  # pragma: no cover - old interpreters
        import tomli as toml
    try:
        data = toml.loads(raw.decode("utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ControlError(f"{config_path}: invalid TOML: {e}", "config") from None
    agent = data.get("agent")
    return _resolve_state_dir(config_path, agent.get("state_dir") if isinstance(agent, dict) else None)


def _resolve_state_dir(config_path: str, sd: object) -> str:
    if not isinstance(sd, str) or not sd:
        return default_state_dir()
    sd = os.path.expanduser(sd)
    if os.path.isabs(sd):
        return sd
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_path)), sd))


def _config_path(args: "argparse.Namespace") -> str:
    from edgeddns.bootstrap import default_config_path

    return args.config or default_config_path()


def cmd_trigger(args: "argparse.Namespace") -> int:
    from edgeddns.bootstrap import EXIT_FAILED, EXIT_USAGE, private_state_dir

    path = _config_path(args)
    try:
        state_dir = state_dir_of(path)
    except ControlError as e:
        print(f"edgeddns: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    private_state_dir(state_dir, client=True)
    sock = socket_path(state_dir)
    req = {"op": "trigger", "iface": args.iface, "action": args.action, "device": args.device}
    try:
        reply = request(sock, req, timeout=args.timeout)
    except ControlError as e:
        if e.code == "no_agent" and args.fallback_update:
            print(f"edgeddns: {e.message}; updating here", file=sys.stderr)
            return _fallback_update(args)
        print(f"edgeddns: {e.message}", file=sys.stderr)
        return EXIT_NO_AGENT if e.code == "no_agent" else EXIT_FAILED
    if not reply.get("ok"):
        err = reply.get("error") or {}
        print(f"edgeddns: the agent refused: [{err.get('code')}] {err.get('message')}", file=sys.stderr)
        return EXIT_FAILED
    if reply.get("queued"):
        print(f"queued: {reply.get('trigger', 'hotplug')}{' ' + args.iface if args.iface else ''} "
              f"(agent pid {reply.get('pid')})")
    else:
        print(f"ignored: {reply.get('reason', 'nothing to do')} (agent pid {reply.get('pid')})")
    return 0


def _fallback_update(args: "argparse.Namespace") -> int:
    """No agent: do what it would have done, once, in this process."""
    import argparse as ap

    from edgeddns.oneshot import cmd_update

    return cmd_update(ap.Namespace(config=args.config, verbose=args.verbose, record=None, force=False,
                                   dry_run=False, json=False, trigger="hotplug"))


def cmd_status(args: "argparse.Namespace") -> int:
    from edgeddns.bootstrap import EXIT_FAILED, EXIT_USAGE, private_state_dir
    from edgeddns.result import format_line as format_result

    path = _config_path(args)
    try:
        state_dir = state_dir_of(path)
        private_state_dir(state_dir, client=True)
        sock = socket_path(state_dir)
        reply = request(sock, {"op": "status"}, timeout=getattr(args, "timeout", None) or 2.0)
    except ControlError as e:
        print(f"edgeddns: {e.message}", file=sys.stderr)
        return EXIT_USAGE if e.code == "config" else EXIT_NO_AGENT if e.code == "no_agent" else EXIT_FAILED
    if not reply.get("ok"):
        err = reply.get("error") or {}
        print(f"edgeddns: the agent refused: [{err.get('code')}] {err.get('message')}", file=sys.stderr)
        return EXIT_FAILED
    state = reply.get("state") or {}
    if args.json:
        print(json.dumps(state, indent=1))
        return 0
    clock = state.get("clock") or {}
    print(f"agent    {state.get('node_id')} (edgeddns {state.get('version')}, pid {reply.get('pid')}), "
          f"running since {state.get('started')}")
    print(f"clock    {clock.get('source')} {clock.get('offset', 0):+.3f} s"
          f"{'' if clock.get('trusted', True) else ' (not trusted)'}")
    print(f"updates  {state.get('updates', 0)} runs")
    for r in state.get("records") or []:
        print(f"  {format_result(r)}  [{r.get('ts')}]")
    return 0
