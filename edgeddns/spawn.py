"""Running a child program with a clean slate.

The agent blocks SIGHUP, SIGINT and SIGTERM in every thread (the main thread
takes them with ``sigwait``), and a child inherits a blocked mask across
``exec``: a ``cmd:`` source or a ``reload_cmd`` would then ignore ``kill``.
``subprocess`` cannot reset the mask without a ``preexec_fn`` (unsafe with
threads), so this spawns with ``posix_spawn``, which can: empty mask, default
dispositions, a session of its own (a Ctrl-C on the agent's terminal must not
kill a child mid-answer), stdin from /dev/null, stdout and stderr captured
(bounded).
The signature follows :func:`subprocess.run` for the parts we use.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

MAX_OUTPUT = 64 * 1024  # bytes kept per stream; the rest is read and dropped
_RESET = tuple(s for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGQUIT,
                           getattr(signal, "SIGXFSZ", None)) if s is not None)


def start(argv: Sequence[str], *, env: Optional[Dict[str, str]] = None) -> Tuple[int, int]:
    """Start a long-lived ``argv`` with the same clean slate; its stdout is a pipe, stderr /dev/null.

    Returns ``(pid, fd)``: the caller reads ``fd`` and reaps ``pid`` (the ubus subscription).
    """
    argv = list(argv)
    r, w = os.pipe()
    actions: List[tuple] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, w, 1),
                            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                              setsigmask=(), setsigdef=_RESET, setsid=True)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    os.close(w)
    return pid, r


def run(argv: Sequence[str], *, capture_output: bool = True, text: bool = False, timeout: Optional[float] = None,
        check: bool = False, env: Optional[Dict[str, str]] = None, max_output: int = MAX_OUTPUT,
        **_ignored: Any) -> "subprocess.CompletedProcess[Any]":
    """Run ``argv`` (searched in PATH); raise FileNotFoundError, PermissionError or TimeoutExpired."""
    argv = list(argv)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions: List[tuple] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                            (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                              setsigmask=(), setsigdef=_RESET, setsid=True)
    except BaseException:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    os.close(out_w)
    os.close(err_w)
    chunks: Dict[int, List[bytes]] = {out_r: [], err_r: []}
    sizes = {out_r: 0, err_r: 0}
    deadline = None if timeout is None else time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    try:
        for fd in (out_r, err_r):
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                _kill(pid)
                raise subprocess.TimeoutExpired(argv, timeout or 0.0)
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    continue
                if sizes[key.fd] < max_output:
                    chunks[key.fd].append(data[:max_output - sizes[key.fd]])
                sizes[key.fd] += len(data)
        status = _wait(pid, deadline, argv, timeout)
    finally:
        sel.close()
        os.close(out_r)
        os.close(err_r)
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    rc = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    if text:
        res: subprocess.CompletedProcess[Any] = subprocess.CompletedProcess(
            argv, rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    else:
        res = subprocess.CompletedProcess(argv, rc, out, err)
    if check:
        res.check_returncode()
    return res


def _wait(pid: int, deadline: Optional[float], argv: List[str], timeout: Optional[float]) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            _kill(pid)
            raise subprocess.TimeoutExpired(argv, timeout or 0.0)
        time.sleep(0.01)  # the child closed its output and is about to exit


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
