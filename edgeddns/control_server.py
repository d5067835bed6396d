"""The control socket's server side, inside ``edgeddns run``.

Serves ``<state_dir>/control.sock`` (one JSON object per line each way, or a
plain one-line answer to a trigger that asks for it; see :mod:`edgeddns.control`
for the protocol and the client). Requests become
commands for the agent's :class:`~edgeddns.handler.CommandHandler`, like MQTT
commands do. Access control is the file system (directory 0700, socket 0600)
plus the peer's uid (``SO_PEERCRED``): only the agent's own user and root. The
agent's lock on the state dir (:mod:`edgeddns.statelock`) makes it the only
one here; a socket left by a killed agent is found by a connect probe and
replaced.
"""

from __future__ import annotations

import _socket  # socket.py would keep selectors, enum's socket classes and array in an idle daemon
import json
import os
import struct
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from edgeddns.control import IGNORED_ACTIONS, MAX_FIELD, MAX_REQUEST, WORD_CHARS, ControlError, socket_path

if TYPE_CHECKING:
    from edgeddns.config import Config
    from edgeddns.events import AgentPort
    from edgeddns.watch import SocketWatcher


class ControlServer:
    """Serves the control socket for one agent; a ``Source`` of events."""

    def __init__(self, config: "Config", *, path: Optional[str] = None, max_clients: int = 8,
                 client_timeout: float = 2.0, update_timeout: float = 600.0):
        self.path = path or socket_path(config.agent.state_dir)
        self.config = config
        self.max_clients = max_clients
        self.client_timeout = client_timeout
        self.update_timeout = update_timeout
        self.error: Optional[str] = None  # why the socket is not served, if it is not
        self._agent: Optional["AgentPort"] = None
        self._sock: Optional[_socket.socket] = None
        self._ino: Optional[int] = None
        self._watcher: Optional["SocketWatcher"] = None
        self._slots = threading.BoundedSemaphore(max_clients)

    # -- lifecycle
    def start(self, agent: "AgentPort") -> None:
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

    def _listen(self) -> None:
        import stat

        directory = os.path.dirname(os.path.abspath(self.path))
        tmp = f"{self.path}.{os.getpid()}"
        if len(os.fsencode(tmp)) >= 107:
            raise ControlError(f"{self.path}: path too long for a UNIX socket; use a shorter state_dir")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise ControlError(f"cannot create {directory}: {e.strerror}") from None
        self._replace_stale(stat)
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
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
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
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
            fd, _ = self._sock._accept()  # accept4(SOCK_CLOEXEC), as socket.py's accept() does
        except OSError:
            return True
        conn = _socket.socket(fileno=fd)  # blocking, as the listener is
        if not self._slots.acquire(blocking=False):
            self._reply(conn, {"ok": False, "error": {"code": "busy", "message": "too many clients"}})
            conn.close()
            return True
        try:
            head = conn.recv(MAX_REQUEST + 1, _socket.MSG_DONTWAIT)
        except BlockingIOError:
            head = b""
        except OSError:
            conn.close()
            self._slots.release()
            return True
        if b"\n" in head and _op(head) == "trigger":
            # A trigger whose whole request is here already (the hotplug client sends it as it connects):
            # answered on this thread. Its answer is one short line and it only queues an event, so nothing
            # here waits on the client; a thread of its own would cost the hotplug path a few hundred µs.
            try:
                self._client(conn, head)
            except Exception:  # a bug answering one client must not end the accept loop
                import logging

                logging.getLogger("edgeddns").exception("control socket: answering a trigger failed")
            return True
        threading.Thread(target=self._client, args=(conn, head), name="edgeddns-control-client",
                         daemon=True).start()
        return True

    def _client(self, conn: _socket.socket, head: bytes = b"") -> None:
        later: List[Callable[[], None]] = []
        try:
            conn.settimeout(self.client_timeout)
            uid = peer_uid(conn)
            try:
                line = _read_line(conn, MAX_REQUEST, head)
            except ControlError as e:
                line, problem = b"", e
            except OSError:
                return  # the client went away or stalled: nobody to answer
            else:
                problem = None
            # The request is read (and ignored) before a refusal, so the
            # client is not cut off mid-send and gets to see why.
            req = _parse(line) if problem is None else None
            text = isinstance(req, dict) and req.get("reply") == "text"
            if uid is not None and uid not in (os.geteuid(), 0):
                self._log("warning", "control socket: refused a client with uid %d", uid)
                self._reply(conn, _error("forbidden", f"uid {uid} may not control this agent"), text)
            elif problem is not None:
                self._reply(conn, _error(problem.code, problem.message))
            else:
                self._reply(conn, self._redact(self._handle(req, later)), text)
        finally:
            conn.close()
            self._slots.release()
            # A trigger's work starts once it is answered: the agent's threads it wakes would otherwise
            # compete with the answer for the interpreter while the hotplug client waits.
            for work in later:
                work()

    def _redact(self, obj: Dict[str, Any]) -> Dict[str, Any]:
        """Answers go through the live config's redaction step, like every other output."""
        config = getattr(self._agent, "config", None) or self.config
        return config.redactor.data(obj)

    @staticmethod
    def _reply(conn: _socket.socket, obj: Dict[str, Any], text: bool = False) -> None:
        data = plain_answer(obj) if text else json.dumps(obj, separators=(",", ":"), default=str)
        try:
            conn.sendall(data.encode() + b"\n")
        except OSError:
            pass

    def _log(self, level: str, msg: str, *args: Any) -> None:
        import logging

        getattr(logging.getLogger("edgeddns"), level)(msg, *args)

    def handle(self, line: bytes) -> Dict[str, Any]:
        """One request line in, one reply object out; never raises."""
        later: List[Callable[[], None]] = []
        answer = self._handle(_parse(line), later)
        for work in later:
            work()
        return answer

    def _handle(self, req: Any, later: List[Callable[[], None]]) -> Dict[str, Any]:
        if not isinstance(req, dict):
            return _error("bad_request", "not a JSON object")
        op = req.get("op")
        reply = req.get("reply", "json")
        if reply not in ("json", "text"):
            return _error("bad_request", 'reply must be "json" or "text"')
        if reply == "text" and op != "trigger":
            return _error("bad_request", "a plain answer is for op trigger only")
        if op == "trigger":
            return self._trigger(req, later)
        if op == "status":
            return {"ok": True, "state": self._state(), "pid": os.getpid()}
        if op == "update":
            return self._update(req)
        return _error("bad_request", f"unknown op {op!r} (use trigger, status or update)")

    def _trigger(self, req: Dict[str, Any], later: List[Callable[[], None]]) -> Dict[str, Any]:
        """The answer; the work (log line, queued command) goes to ``later``, run after the answer is sent."""
        from edgeddns.commands import Command

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
        later.append(lambda: self._log("info", "trigger %s%s%s", action or "manual", f" {iface}" if iface else "",
                                       f" ({fields['device']})" if fields["device"] else ""))
        if action and action.startswith("ntp"):
            # The system clock was stepped or synchronised: measure again, then check the records.
            later.append(lambda: agent.commands.handle(Command("sync_time"), _ignore, trigger="ntp", then_check=True))
            return {"ok": True, "queued": True, "trigger": "ntp", "pid": os.getpid()}
        later.append(lambda: agent.commands.handle(Command("update", iface=iface), _ignore, trigger="hotplug"))
        return {"ok": True, "queued": True, "trigger": "hotplug", "pid": os.getpid()}

    def _update(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """``edgeddns update`` handed over by the one-shot command: answered with the results."""
        from edgeddns.commands import Command

        agent = self._agent
        assert agent is not None
        records, force = req.get("records"), req.get("force", False)
        if records is not None and (not isinstance(records, list) or len(records) > 64 or not all(
                isinstance(r, str) and 0 < len(r) <= 253 for r in records)):
            return _error("bad_request", "records must be a list of record names")
        if not isinstance(force, bool):
            return _error("bad_request", "force must be true or false")
        for r in records or []:
            if not agent.config.record(r):
                return _error("unknown_record", f"no record {r[:64]!r} is configured in the running agent")
        answer: Dict[str, Any] = {}
        done = threading.Event()

        def reply(a: Dict[str, Any]) -> None:
            answer.update(a)
            done.set()

        self._log("info", "update handed over by edgeddns update%s", " --force" if force else "")
        agent.commands.handle(Command("update", records=records, force=force), reply, trigger="cli", wait=True)
        if not done.wait(self.update_timeout):
            return _error("timeout", f"no result within {self.update_timeout:g} s")
        if answer.get("status") != "done":
            err = answer.get("error") or {}
            return _error(err.get("code", "internal"), err.get("message", "the update was not run"))
        return {"ok": True, "results": answer.get("results", []), "pid": os.getpid()}

    def _state(self) -> Dict[str, Any]:
        assert self._agent is not None
        for _ in range(5):  # the worker may be replacing the records dict right now
            try:
                return self._agent.state()
            except RuntimeError:
                continue
        return self._agent.state()


def _ignore(answer: Dict[str, Any]) -> None:
    """Triggers are acknowledged when queued; their answers have nowhere to go."""


def peer_uid(conn: _socket.socket) -> Optional[int]:
    """The uid of the process at the other end (Linux ``SO_PEERCRED``)."""
    opt = getattr(_socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        raw = conn.getsockopt(_socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid


def _read_line(conn: _socket.socket, limit: int, buf: bytes = b"") -> bytes:
    if len(buf) > limit:
        raise ControlError(f"request longer than {limit} bytes", "bad_request")
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


def _op(head: bytes) -> Any:
    req = _parse(head.split(b"\n", 1)[0].strip())
    return req.get("op") if isinstance(req, dict) else None


def _parse(line: bytes) -> Any:
    """The request object, or None for a line that is not JSON."""
    try:
        return json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # 4 KiB can nest past the recursion limit
        return None


def plain_answer(obj: Dict[str, Any]) -> str:
    """A trigger's answer as the one plain line :func:`edgeddns.control.read_trigger_answer` reads."""
    if obj.get("ok"):
        if obj.get("queued"):
            return f"ok queued {_word(obj.get('trigger'))} {obj.get('pid')}"
        return f"ok ignored {obj.get('pid')} {_text(obj.get('reason'))}"
    err = obj.get("error") or {}
    return f"error {_word(err.get('code'))} {_text(err.get('message'))}"


def _word(value: object) -> str:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_FIELD and WORD_CHARS.issuperset(value) \
        else "internal"


def _text(value: object) -> str:
    """Free text on one line: control characters (a newline would end the answer) become spaces."""
    text = "".join(c if c.isprintable() else " " for c in str(value)[:1000]).strip()
    return text or "-"


def _error(code: str, message: str) -> Dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}
