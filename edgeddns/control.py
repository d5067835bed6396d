"""The local control channel: a UNIX socket in the state dir, client side.

The running agent listens on ``<state_dir>/control.sock`` (the server is
:mod:`edgeddns.control_server`); ``edgeddns trigger`` (what the OpenWrt
hotplug script and the procd interface trigger run), ``edgeddns status`` and
``edgeddns update`` (handing its work to a running agent) talk to it. A
request is one JSON object per line; the answer is one JSON object per line::

    {"op": "trigger", "iface": "wan", "action": "ifup", "device": "eth1"}
    -> {"ok": true, "queued": true, "trigger": "hotplug", "pid": 1234}
    {"op": "status"}
    -> {"ok": true, "state": {...}, "pid": 1234}
    {"op": "update", "records": ["home.example.com"], "force": false}
    -> {"ok": true, "results": [{...}, ...], "pid": 1234}   (after the run)

except for a trigger that asks for the plain answer (``edgeddns trigger``
does), one line of words, the free text last::

    {"op":"trigger","iface":"wan","action":"ifup","device":"eth1","reply":"text"}
    -> ok queued hotplug 1234
    -> ok ignored 1234 ifdown: no address to publish
    -> error bad_request iface must be a string of at most 64 characters

The hotplug path runs on every WAN event, and ``json`` would cost it ``re``,
``enum``, ``functools`` and ``collections`` (about half an interpreter
start): its request is JSON text formatted from checked values
(:func:`trigger_request`) and its answer is read by :func:`read_trigger_answer`,
which refuses anything but those shapes. An agent from before the plain
answer ignores ``reply`` and answers JSON, which is then read as before.

A trigger is acknowledged as soon as it is queued, never after the update:
netifd runs hotplug scripts one at a time, so a slow provider must not hold
up the next interface event.

This module is on the hotplug path, so it imports only the standard library
modules it needs at top level; the state dir is found by
:mod:`edgeddns.statedir`, not through :mod:`edgeddns.config`.
"""

import _socket  # socket.py would add selectors, enum and array to every hotplug event
import os
import sys
import time

from edgeddns.statedir import StateDirError, default_state_dir, state_dir_of

TYPE_CHECKING = False  # typing's own flag would import typing on the hotplug path
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict, Optional

__all__ = ["ControlError", "request", "exchange", "trigger_request", "read_trigger_answer", "socket_path",
           "state_dir_of", "default_state_dir", "cmd_trigger", "cmd_status"]

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096  # bytes in one request line
MAX_FIELD = 64  # characters in iface / action / device
# bytes in one answer: a status of a thousand records is well under 1 MiB. The agent may run as a user
# of its own while root's hotplug path asks it: its answer must not cost root unbounded memory.
MAX_REPLY = 16 << 20
MAX_TRIGGER_REPLY = 4096  # a trigger's answer is one short line
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


def request(path: str, obj: "Dict[str, Any]", timeout: float = 2.0) -> "Dict[str, Any]":
    """Send one request, return the reply. ControlError codes: no_agent, denied, timeout, protocol."""
    import json

    line = exchange(path, json.dumps(obj, separators=(",", ":")).encode() + b"\n", timeout, MAX_REPLY)
    try:
        reply = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ControlError("the agent sent a malformed reply", "protocol") from None
    if not isinstance(reply, dict):
        raise ControlError("the agent sent a malformed reply", "protocol")
    return reply


def exchange(path: str, data: bytes, timeout: float, limit: int) -> bytes:
    """Send ``data``, return the first line of the answer (without its newline), at most ``limit`` bytes."""
    import stat  # loaded with os already

    # connect() follows symlinks. An agent running as a user of its own owns the dir and could point
    # control.sock at any socket root may reach; only a socket itself is talked to. (A swap between this
    # check and connect() stays possible: UNIX sockets have no connect-without-following.)
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ControlError(f"{path} is not a socket (a symlink or a file): not connecting to it", "protocol")
    except FileNotFoundError:
        raise ControlError(f"no agent is running (nothing listens on {path})", "no_agent") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path} (run as the agent's user or root)", "denied") from None
    except OSError as e:
        raise ControlError(f"{path}: {e.strerror or e}", "protocol") from None
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    end = time.monotonic() + timeout  # the whole exchange's budget: a trickled answer cannot stretch it
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"no agent is running (nothing listens on {path})", "no_agent") from None
        except PermissionError:
            raise ControlError(f"permission denied on {path} (run as the agent's user or root)",
                               "denied") from None
        try:
            s.sendall(data)
        except BrokenPipeError:
            pass  # the agent hung up early; its reply, if any, is still readable
        parts, size = [], 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise _socket.timeout()
            s.settimeout(left)
            chunk = s.recv(min(65536, limit + 1))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if b"\n" in chunk:
                break
            if size > limit:
                raise ControlError(f"the agent sent a malformed reply (longer than {limit} bytes)", "protocol")
        buf = b"".join(parts)
    except _socket.timeout:
        raise ControlError(f"the agent did not answer within {timeout:g} s", "timeout") from None
    except OSError as e:
        raise ControlError(f"{path}: {e.strerror or e}", "protocol") from None
    finally:
        s.close()
    line = buf.split(b"\n", 1)[0]
    if len(line) > limit:
        raise ControlError(f"the agent sent a malformed reply (longer than {limit} bytes)", "protocol")
    return line


# What a trigger's field may hold to be formatted into the request as it is: netifd's interface and
# device names and hotplug actions (``wan``, ``pppoe-wan``, ``eth0.2``, ``ifupdate``, ``ntp-step``). None
# of these needs escaping in JSON; any other value goes through ``json`` (slower, as correct).
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:@+")
_DIGITS = frozenset("0123456789")


def trigger_request(iface: "Optional[str]", action: "Optional[str]", device: "Optional[str]") -> bytes:
    """The request line of a trigger that asks for the plain answer."""
    fields = (("iface", iface), ("action", action), ("device", device))
    if all(v is None or WORD_CHARS.issuperset(v) for _, v in fields):
        body = "".join(f',"{k}":' + ("null" if v is None else f'"{v}"') for k, v in fields)
        return ('{"op":"trigger"' + body + ',"reply":"text"}\n').encode()
    import json

    obj = {"op": "trigger", **dict(fields), "reply": "text"}
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _word(text: object) -> bool:
    return isinstance(text, str) and 0 < len(text) <= MAX_FIELD and WORD_CHARS.issuperset(text)


def _printable(text: object) -> bool:
    # No control characters (an escape sequence would reach root's terminal or syslog), bounded.
    return isinstance(text, str) and 0 < len(text) <= 1024 and text.isprintable()


def _pid(text: str) -> "Optional[int]":
    return int(text) if 0 < len(text) <= 10 and _DIGITS.issuperset(text) else None


def read_trigger_answer(line: bytes) -> "Dict[str, Any]":
    """A trigger's answer, plain or (from an agent before the plain answer) JSON, as checked fields.

    ``{"ok": True, "queued": True, "trigger": word, "pid": int}``,
    ``{"ok": True, "queued": False, "reason": text, "pid": int}`` or
    ``{"ok": False, "code": word, "message": text}``; anything else is a ``protocol`` ControlError.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text.startswith("{"):
        answer = _from_json(text)
    else:
        answer = None
        words = text.split(" ", 3)
        if words[0] == "ok" and len(words) == 4 and words[1] == "queued":
            answer = {"ok": True, "queued": True, "trigger": words[2], "pid": _pid(words[3])}
        elif words[0] == "ok" and len(words) >= 3 and words[1] == "ignored":
            answer = {"ok": True, "queued": False, "pid": _pid(words[2]),
                      "reason": " ".join(words[3:]) or None}
        elif words[0] == "error" and len(words) >= 3:
            answer = {"ok": False, "code": words[1], "message": " ".join(words[2:])}
    if answer is not None:
        if answer["ok"] and answer["pid"] is not None and (
                _word(answer.get("trigger")) if answer["queued"] else _printable(answer.get("reason"))):
            return answer
        if not answer["ok"] and _word(answer["code"]) and _printable(answer["message"]):
            return answer
    raise ControlError("the agent sent a malformed reply", "protocol")


def _from_json(text: str) -> "Optional[Dict[str, Any]]":
    import json

    try:
        reply = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(reply, dict):
        return None
    pid = reply.get("pid")
    pid = pid if type(pid) is int and 0 < pid < 1 << 32 else None
    if reply.get("ok") is True and reply.get("queued") is True:
        return {"ok": True, "queued": True, "trigger": reply.get("trigger", "hotplug"), "pid": pid}
    if reply.get("ok") is True and reply.get("queued") is False:
        return {"ok": True, "queued": False, "reason": reply.get("reason", "nothing to do"), "pid": pid}
    err = reply.get("error")
    if reply.get("ok") is False and isinstance(err, dict):
        return {"ok": False, "code": err.get("code"), "message": err.get("message")}
    return None


def _config_path(args: "argparse.Namespace") -> str:
    from edgeddns.bootstrap import default_config_path, no_config_found

    if args.config or os.environ.get("EDGEDDNS_CONFIG"):
        return args.config or default_config_path()
    path = default_config_path()
    if not os.path.exists(path):
        raise StateDirError(no_config_found())  # naming every place looked at, not just the last
    return path


def cmd_trigger(args: "argparse.Namespace") -> int:
    from edgeddns.bootstrap import EXIT_FAILED, EXIT_USAGE, private_state_dir

    try:
        state_dir = state_dir_of(_config_path(args))
    except StateDirError as e:
        print(f"edgeddns: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    private_state_dir(state_dir, client=True)
    sock = socket_path(state_dir)
    try:
        line = exchange(sock, trigger_request(args.iface, args.action, args.device), args.timeout,
                        MAX_TRIGGER_REPLY)
        answer = read_trigger_answer(line)
    except ControlError as e:
        if e.code == "no_agent" and args.fallback_update:
            print(f"edgeddns: {e.message}; updating here", file=sys.stderr)
            return _fallback_update(args)
        print(f"edgeddns: {e.message}", file=sys.stderr)
        return EXIT_NO_AGENT if e.code == "no_agent" else EXIT_FAILED
    if not answer["ok"]:
        print(f"edgeddns: the agent refused: [{answer['code']}] {answer['message']}", file=sys.stderr)
        return EXIT_FAILED
    if answer["queued"]:
        print(f"queued: {answer['trigger']}{' ' + args.iface if args.iface else ''} (agent pid {answer['pid']})")
    else:
        print(f"ignored: {answer['reason']} (agent pid {answer['pid']})")
    return 0


def _fallback_update(args: "argparse.Namespace") -> int:
    """No agent: do what it would have done, once, in this process."""
    import argparse as ap

    from edgeddns.oneshot import cmd_update

    return cmd_update(ap.Namespace(config=args.config, verbose=args.verbose, record=None, force=False,
                                   dry_run=False, json=False, standalone=False, trigger="hotplug"))


def cmd_status(args: "argparse.Namespace") -> int:
    from edgeddns.bootstrap import EXIT_FAILED, EXIT_USAGE, private_state_dir
    from edgeddns.status import error_object, render

    def fail(code: str, message: str, status: int) -> int:
        # --json always prints one object, so a script can tell "no agent" from a broken pipe.
        if args.json:
            print(error_object(code, message))
        print(f"edgeddns: {message}", file=sys.stderr)
        return status

    try:
        state_dir = state_dir_of(_config_path(args))
        private_state_dir(state_dir, client=True)
        sock = socket_path(state_dir)
        reply = request(sock, {"op": "status"}, timeout=getattr(args, "timeout", None) or 2.0)
    except (ControlError, StateDirError) as e:
        return fail(e.code, e.message,
                    EXIT_USAGE if e.code == "config" else EXIT_NO_AGENT if e.code == "no_agent" else EXIT_FAILED)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        return fail(str(err.get("code")), f"the agent refused: [{err.get('code')}] {err.get('message')}",
                    EXIT_FAILED)
    state = reply.get("state") or {}
    if args.json:
        import json

        print(json.dumps(state, indent=1))
        return 0
    for line in render(state, reply.get("pid")):
        print(line)
    return 0
