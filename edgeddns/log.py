"""Logging to stderr, with every configured secret scrubbed from every line."""

from __future__ import annotations

import logging
import sys
from typing import Iterable

LOGGER = "edgeddns"


class RedactFilter(logging.Filter):
    """Last line of defence: replaces any secret's text, wherever it came from."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            for s in self.secrets:
                msg = msg.replace(s, "***")
            record.msg, record.args = msg, None
        return True


def setup(level: str = "info", secrets: Iterable[str] = ()) -> logging.Logger:
    log = logging.getLogger(LOGGER)
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edgeddns: %(levelname)s: %(message)s"))
    handler.addFilter(RedactFilter(secrets))
    log.addHandler(handler)
    log.setLevel(getattr(logging, level.upper(), logging.INFO))
    log.propagate = False
    return log
