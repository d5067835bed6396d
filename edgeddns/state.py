"""What each record last published, where and how, kept in ``state_dir``.

Written atomically (temp file, fsync, rename) and only when something changed,
because router flash wears and a crash must never leave a half-written file.
If the directory cannot be written the state lives on in memory and the
problem is reported once, so updates still happen.

Entries are keyed ``name/type/provider`` (version 2). A version 1 file keyed
``name/type`` is read as it is: :meth:`StateStore.lookup` finds such an entry
for the provider it names, and the next save moves it to the new key. A file
of the wrong shape or an unknown version is renamed to ``state.json.bad``
(the reason goes to ``error``) and the state starts empty: that costs one
provider read per record, never a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from edgeddns.fileio import read_limited, write_atomic

STATE_FILE = "state.json"
MAX_STATE = 16 << 20
VERSION = 2
KNOWN_VERSIONS = (1, 2)


class _BadShape(ValueError):
    pass


@dataclass
class StateStore:
    """The state file: what was published for each record."""

    directory: str
    records: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    error: Optional[str] = None  # why the last read or write went wrong, if it did
    writes: int = 0
    _salt: Optional[str] = None

    @property
    def path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    @property
    def salt(self) -> str:
        """Random per state file; secrets enter fingerprints only hashed with it."""
        if not self._salt:
            self._salt = os.urandom(16).hex()
        return self._salt

    @classmethod
    def open(cls, directory: str) -> StateStore:
        store = cls(directory)
        store.records = store._read()
        return store

    def _read(self) -> Dict[str, Dict[str, Any]]:
        try:
            # Not through a symlink; bounded, so a huge file cannot take the memory.
            text = read_limited(self.path, MAX_STATE, follow=False).decode("utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # An unreadable file costs one extra provider read per record, nothing more.
            self.error = f"{self.path}: unreadable, starting fresh ({e.__class__.__name__})"
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise _BadShape(f"a JSON {type(data).__name__}, not an object")
            version = data.get("version", 1)
            if version not in KNOWN_VERSIONS or isinstance(version, bool):
                raise _BadShape(f"unknown version {str(version)[:20]}")
            recs = data.get("records", {})
            if not isinstance(recs, dict):
                raise _BadShape('"records" is not an object')
            salt = data.get("salt")
            if isinstance(salt, str) and salt:
                self._salt = salt
        except ValueError as e:
            self._set_aside(str(e) if isinstance(e, _BadShape) else "not valid JSON")
            return {}
        return {str(k): v for k, v in recs.items() if isinstance(v, dict)}

    def _set_aside(self, why: str) -> None:
        bad = self.path + ".bad"
        try:
            os.replace(self.path, bad)
            where = f"set aside as {bad}"
        except OSError as e:
            where = f"could not be set aside ({e.strerror}); it will be overwritten"
        self.error = f"{self.path}: {why}; {where}, starting fresh"

    def get(self, key: str) -> Dict[str, Any]:
        return self.records.get(key, {})

    def lookup(self, key: str, legacy: str, provider: str) -> Dict[str, Any]:
        """The entry under ``key``, else a version 1 entry under ``legacy`` written for ``provider``."""
        entry = self.records.get(key)
        if entry is not None:
            return entry
        old = self.records.get(legacy)
        if old is not None and old.get("provider") == provider:
            return old
        return {}

    def put(self, key: str, entry: Dict[str, Any], legacy: Optional[str] = None) -> bool:
        """Record ``entry``; write the file only if something differs. Returns True if written.

        ``legacy``: a version 1 key this entry replaces (dropped if it names the same provider).
        """
        old = self.records.get(legacy) if legacy else None
        drop = old is not None and old.get("provider") == entry.get("provider")
        if self.records.get(key) == entry and not drop:
            return False
        if drop:
            del self.records[legacy]  # type: ignore[arg-type]
        self.records[key] = entry
        return self.flush()

    def flush(self) -> bool:
        payload = json.dumps({"version": VERSION, "salt": self.salt, "records": self.records},
                             indent=1, sort_keys=True)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            write_atomic(self.path, payload, 0o600)
        except OSError as e:
            self.error = f"cannot write {self.path}: {e.strerror}; keeping state in memory"
            return False
        self.error = None
        self.writes += 1
        return True
