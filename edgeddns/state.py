"""The last published address of each record, kept in ``state_dir``.

Written atomically (temp file, fsync, rename) and only when something changed,
because router flash wears and a crash must never leave a half-written file.
If the directory cannot be written the state lives on in memory and the
problem is reported once, so updates still happen.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from edgeddns.fileio import write_atomic

STATE_FILE = "state.json"


@dataclass
class StateStore:
    directory: str
    records: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    error: Optional[str] = None  # why the last write failed, if it did
    writes: int = 0

    @property
    def path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    @classmethod
    def open(cls, directory: str) -> StateStore:
        store = cls(directory)
        store.records = store._read()
        return store

    def _read(self) -> Dict[str, Dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # An unreadable file costs one extra provider read per record, nothing more.
            self.error = f"{self.path}: unreadable, starting fresh ({e.__class__.__name__})"
            return {}
        recs = data.get("records") if isinstance(data, dict) else None
        return {k: v for k, v in (recs or {}).items() if isinstance(v, dict)}

    def get(self, key: str) -> Dict[str, Any]:
        return self.records.get(key, {})

    def put(self, key: str, entry: Dict[str, Any]) -> bool:
        """Record ``entry``; write the file only if it differs. Returns True if written."""
        if self.records.get(key) == entry:
            return False
        self.records[key] = entry
        return self.flush()

    def flush(self) -> bool:
        payload = json.dumps({"version": 1, "records": self.records}, indent=1, sort_keys=True)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            write_atomic(self.path, payload, 0o600)
        except OSError as e:
            self.error = f"cannot write {self.path}: {e.strerror}; keeping state in memory"
            return False
        self.error = None
        self.writes += 1
        return True
