"""Logging: to stderr with timestamps, or to syslog at each line's real priority.

Every configured secret is scrubbed from every line, whatever the target.

Where lines go:
- ``syslog``: datagrams to ``/dev/log`` (facility daemon, ``edgeddns[pid]``),
  one per line, at the line's own priority. Under procd this is the only way
  to get real priorities: procd logs whatever a service writes to stderr at
  ``daemon.err`` (see tests/fakes/openwrt-recordings/README.md).
- ``stderr``: ``2026-05-01T10:00:00.123+02:00 edgeddns: INFO: ...`` in local
  time (``TZ`` applies). Without the timestamp when stderr is the journal
  (``JOURNAL_STREAM`` names it), which stamps every line itself.
- ``auto`` (the default): syslog when running under procd, else stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, TYPE_CHECKING, Iterable, Optional, Union

if TYPE_CHECKING:
    import socket

    from edgeddns.redact import Redactor

LOGGER = "edgeddns"
TARGETS = ("auto", "stderr", "syslog")
SYSLOG_PATH = "/dev/log"
LOG_DAEMON = 3  # syslog facility
# logging level -> syslog severity
SEVERITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class RedactFilter(logging.Filter):
    """Every line goes through the one redaction step (:mod:`edgeddns.redact`), traceback included."""

    def __init__(self, secrets: Union[Iterable[str], "Redactor"]):
        from edgeddns.redact import Redactor

        super().__init__()
        self.redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            record.msg, record.args = self.redactor.text(record.getMessage()), None
            if record.exc_info:
                record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class IsoFormatter(logging.Formatter):
    """``<ISO 8601 local time with offset> edgeddns: LEVEL: message``."""

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        t = time.localtime(record.created)
        off = t.tm_gmtoff or 0
        sign = "+" if off >= 0 else "-"
        off = abs(off)
        return (time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}"
                + f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}")


class SyslogHandler(logging.Handler):
    """RFC 3164-style datagrams to a local syslog socket; reconnects if logd restarts."""

    def __init__(self, path: str = SYSLOG_PATH, ident: str = LOGGER, facility: int = LOG_DAEMON):
        super().__init__()
        self.path = path
        self.ident = ident
        self.facility = facility
        self._sock: Optional["socket.socket"] = None
        self.connect()

    def connect(self) -> None:
        import socket

        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        self._sock = s

    def emit(self, record: logging.LogRecord) -> None:
        try:
            pri = self.facility * 8 + SEVERITY.get(record.levelno, 6)
            text = self.format(record).replace("\n", " ")
        except Exception:
            self.handleError(record)
            return
        data = f"<{pri}>{self.ident}[{os.getpid()}]: {text}".encode("utf-8", "replace")
        try:
            try:
                assert self._sock is not None
                self._sock.send(data)
            except OSError:
                self.connect()  # logd was restarted: its socket is a new one
                assert self._sock is not None
                self._sock.send(data)
        except OSError:
            # logd is away: the line goes to stderr (procd logs it once logd is back) rather than lost.
            try:
                sys.stderr.write(f"edgeddns: {record.levelname}: {text}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        super().close()


def under_procd(ppid: Optional[int] = None, comm: str = "/proc/1/comm") -> bool:
    """True when procd started us: our parent is pid 1 and pid 1 is procd."""
    if (os.getppid() if ppid is None else ppid) != 1:
        return False
    try:
        with open(comm) as f:
            return f.read().strip() == "procd"
    except OSError:
        return False


def stderr_is_journal(stream: IO[str]) -> bool:
    """systemd sets JOURNAL_STREAM to the journal stream's ``device:inode`` for the service's stderr."""
    want = os.environ.get("JOURNAL_STREAM")
    if not want:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return want == f"{st.st_dev}:{st.st_ino}"


def setup(level: str = "info", secrets: Union[Iterable[str], "Redactor"] = (), *, target: str = "auto",
          stream: Optional[IO[str]] = None, syslog_path: Optional[str] = None) -> logging.Logger:
    log = logging.getLogger(LOGGER)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    stream = stream or sys.stderr
    handler: Optional[logging.Handler] = None
    problem = None
    if target == "syslog" or (target == "auto" and under_procd()):
        path = syslog_path or os.environ.get("EDGEDDNS_SYSLOG_SOCKET") or SYSLOG_PATH
        try:
            handler = SyslogHandler(path)
            handler.setFormatter(logging.Formatter("%(message)s"))  # the priority says the level
        except OSError as e:
            problem = f"cannot log to syslog at {path} ({e.strerror or e}); logging to stderr"
    if handler is None:
        handler = logging.StreamHandler(stream)
        if stderr_is_journal(stream):
            handler.setFormatter(logging.Formatter("edgeddns: %(levelname)s: %(message)s"))
        else:
            handler.setFormatter(IsoFormatter("%(asctime)s edgeddns: %(levelname)s: %(message)s"))
    handler.addFilter(RedactFilter(secrets))
    log.addHandler(handler)
    log.setLevel(getattr(logging, level.upper(), logging.INFO))
    log.propagate = False
    if problem:
        log.warning(problem)
    return log
