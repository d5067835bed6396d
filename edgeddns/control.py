"""The local control channel: a UNIX socket in the state dir, client side.

The running agent listens on ``<state_dir>/control.sock`` (the server is
:mod:`edgeddns.control_server`); ``edgeddns trigger`` (what the OpenWrt
hotplug script and the procd interface trigger run), ``edgeddns status`` and
``edgeddns update`` (handing its work to a running agent) talk to it. The
protocol is one JSON object per line each way::

    {"op": "trigger", "iface": "wan", "action": "ifup", "device": "eth1"}
    -> {"ok": true, "queued": true, "trigger": "hotplug", "pid": 1234}
    {"op": "status"}
    -> {"ok": true, "state": {...}, "pid": 1234}
    {"op": "update", "records": ["home.example.com"], "force": false}
    -> {"ok": true, "results": [{...}, ...], "pid": 1234}   (after the run)

A trigger is acknowledged as soon as it is queued, never after the update:
netifd runs hotplug scripts one at a time, so a slow provider must not hold
up the next interface event.

This module is on the hotplug path, so it imports only the standard library
modules it needs at top level; the state dir is found by
:mod:`edgeddns.statedir`, not through :mod:`edgeddns.config`.
"""

from __future__ import annotations

import _socket  # socket.py would add selectors, enum and array to every hotplug event
import json
import os
import sys
import time

from edgeddns.statedir import StateDirError, default_state_dir, state_dir_of

TYPE_CHECKING = False  # typing's own flag would import typing on the hotplug path
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict

__all__ = ["ControlError", "request", "socket_path", "state_dir_of", "default_state_dir", "cmd_trigger",
           "cmd_status"]

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096  # bytes in one request line
MAX_FIELD = 64  # characters in iface / action / device
# bytes in one answer: a status of a thousand records is well under 1 MiB. The agent may run as a user
# of its own while root's hotplug path asks it: its answer must not cost root unbounded memory.
MAX_REPLY = 16 << 20
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


def request(path: str, obj: Dict[str, Any], timeout: float = 2.0) -> Dict[str, Any]:
    """Send one request, return the reply. ControlError codes: no_agent, denied, timeout, protocol."""
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
            s.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        except BrokenPipeError:
            pass  # the agent hung up early; its reply, if any, is still readable
        parts, size = [], 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise _socket.timeout()
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if b"\n" in chunk:
                break
            if size > MAX_REPLY:
                raise ControlError(f"the agent's answer is longer than {MAX_REPLY} bytes", "protocol")
        buf = b"".join(parts)
    except _socket.timeout:
        raise ControlError(f"the agent did not answer within {timeout:g} s", "timeout") from None
    except OSError as e:
        raise ControlError(f"{path}: {e.strerror or e}", "protocol") from None
    finally:
        s.close()
    try:
        reply = json.loads(buf.split(b"\n", 1)[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ControlError("the agent sent a malformed reply", "protocol") from None
    if not isinstance(reply, dict):
        raise ControlError("the agent sent a malformed reply", "protocol")
    return reply


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
        print(json.dumps(state, indent=1))
        return 0
    for line in render(state, reply.get("pid")):
        print(line)
    return 0
