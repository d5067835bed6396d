"""Typed access to one TOML table, with errors that name the file and key.

:class:`Reader` is what every section parser uses: ``get`` checks a value's
type, ``only`` refuses unknown keys, ``secret`` resolves inline / ``env:VAR`` /
``*_file`` credentials, ``options`` applies a provider's option schema.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Dict, List, Optional, Tuple

from edgeddns.errors import ConfigError
from edgeddns.fileio import read_limited
from edgeddns.options import Opt, Secret

MAX_SECRET_FILE = 64 * 1024


def tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a decimal number", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def kname(k: type) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(k, k.__name__)


class Reader:
    def __init__(self, path: str, environ: Optional[Dict[str, str]] = None):
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))
        self.environ = os.environ if environ is None else environ
        self.secrets: List[Secret] = []
        self.inline_secrets = False
        self.warnings: List[str] = []
        # What the config depends on besides its own text (edgeddns.quickcheck's memo checks them):
        # the files it names (secrets, CA bundles) and whether a secret came from the environment.
        self.files: List[str] = []
        self.env_secrets = False

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.path, key, message)

    def table(self, data: Any, key: str) -> Dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table, not {tname(data)}")
        return data

    def only(self, data: Dict[str, Any], key: str, allowed: Any) -> None:
        for k in data:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                from edgeddns.config.sections import home_of  # only on this error path

                home = home_of(k)
                if home is not None and key != home:
                    # TOML's trap: a key belongs to the last [header] above it (often a [[records]]).
                    guess = f": it belongs in [{home}] (in TOML a key belongs to the last [table] header above it)"
                else:
                    from difflib import get_close_matches

                    close = get_close_matches(k, sorted(allowed), n=1, cutoff=0.6)
                    guess = f', did you mean "{close[0]}"?' if close else ""
                raise self.fail(where, f"unknown key{guess} (allowed: {', '.join(sorted(allowed))})")

    def get(self, data: Dict[str, Any], key: str, name: str, kind: type, default: Any = None,
            required: bool = False) -> Any:
        where = f"{key}.{name}" if key else name
        if name not in data:
            if required:
                raise self.fail(where, "is required")
            return default
        value = data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool):
            raise self.fail(where, "must be an integer, not a boolean")
        if not isinstance(value, kind):
            shown = f" ({value!r})" if isinstance(value, float) else ""  # "not a decimal number (600.0)"
            raise self.fail(where, f"must be {kname(kind)}, not {tname(value)}{shown}")
        return value

    def resolve_path(self, p: str) -> str:
        p = os.path.expanduser(p)
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(self.base, p))

    def secret(self, data: Dict[str, Any], key: str, name: str, required: bool) -> Optional[Secret]:
        """A secret is inline, ``env:VAR``, or read from ``<name>_file``."""
        where = f"{key}.{name}"
        file_key = f"{name}_file"
        if name in data and file_key in data:
            raise self.fail(where, f"give either {name} or {file_key}, not both")
        if file_key in data:
            fpath = self.get(data, key, file_key, str)
            value = self._secret_file(f"{key}.{file_key}", fpath)
            if not value:
                raise self.fail(f"{key}.{file_key}", f"{fpath} is empty")
            s = Secret(value, f"file:{fpath}")
        elif name in data:
            raw = data[name]
            if not isinstance(raw, str):
                raise self.fail(where, f"must be a string, not {tname(raw)}")
            if raw.startswith("env:"):
                var = raw[4:]
                if var not in self.environ or not self.environ[var]:
                    raise self.fail(where, f"environment variable {var} is not set")
                s = Secret(self.environ[var], raw)
                self.env_secrets = True
            else:
                if not raw:
                    raise self.fail(where, "is empty")
                self.inline_secrets = True
                s = Secret(raw, "inline")
        else:
            if required:
                raise self.fail(where, f"is required (inline, env:VAR, or {file_key})")
            return None
        self.secrets.append(s)
        return s

    def _secret_file(self, where: str, fpath: str) -> str:
        """A secret file's text: a regular file of at most 64 KiB, read without blocking.

        A FIFO or a device would block (or never end) the load, and a reload
        runs on the thread that handles signals: such files are refused
        before a byte is read.
        """
        full = self.resolve_path(fpath)
        self.files.append(full)
        try:
            raw = read_limited(full, MAX_SECRET_FILE)
        except OSError as e:
            shown = fpath if full == fpath else f"{fpath} ({full})"  # a relative path: say where it was looked for
            raise self.fail(where, f"cannot read {shown}: {e.strerror}") from None
        try:
            value = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise self.fail(where, f"{fpath} is not UTF-8 text") from None
        try:
            readable = os.stat(full).st_mode & stat.S_IROTH
        except OSError:
            readable = 0
        if readable:
            self.warnings.append(f"{where}: {fpath} holds a secret but is readable by other users "
                                 f"(chmod 600 {fpath})")
        return value

    def options(self, data: Dict[str, Any], key: str, schema: Dict[str, Opt],
                reserved: Tuple[str, ...]) -> Dict[str, Any]:
        allowed = set(reserved) | set(schema)
        allowed |= {f"{k}_file" for k, o in schema.items() if o.kind is Secret}
        self.only(data, key, allowed)
        out: Dict[str, Any] = {}
        for name, opt in schema.items():
            where = f"{key}.{name}"
            if opt.kind is Secret:
                out[name] = self.secret(data, key, name, opt.required)
                self._header_ok(out[name], opt, where)
                continue
            value = self.get(data, key, name, opt.kind, opt.default, opt.required)
            if value is None:
                out[name] = None
                continue
            if opt.choices and value not in opt.choices:
                raise self.fail(where, f"must be one of {', '.join(map(str, opt.choices))}, not {value!r}")
            if opt.check is not None:
                problem = opt.check(value)
                if problem:
                    raise self.fail(where, problem)
            self._header_ok(value, opt, where)
            out[name] = value
        return out

    def _header_ok(self, value: Any, opt: Opt, where: str) -> None:
        from edgeddns.config.transport import header_problem
        from edgeddns.redact import credential_header_values

        if value is None or not opt.in_header():
            return
        # A dict option in headers is a map of header name -> value.
        items = [(f"{where}.{k}", v) for k, v in value.items()] if isinstance(value, dict) else [(where, value)]
        for at, v in items:
            problem = header_problem(v)
            if problem:
                raise self.fail(at, problem)
        if isinstance(value, dict):
            # A token written straight into a header ("Authorization = 'Bearer ...'") is a secret too:
            # every output channel masks it, and the config file's modes are checked as for inline ones.
            for v in credential_header_values(value):
                self.secrets.append(Secret(v, "inline"))
                self.inline_secrets = True

    def existing_file(self, data: Dict[str, Any], key: str, name: str) -> Optional[str]:
        """A path option (``ca_file``) resolved against the config's directory; it must exist."""
        value = self.get(data, key, name, str)
        if value is None:
            return None
        if not value.strip():
            raise self.fail(f"{key}.{name}", "is empty (leave it out for the default)")
        value = self.resolve_path(value)
        self.files.append(value)
        if not os.path.isfile(value):
            raise self.fail(f"{key}.{name}", f"no such file: {value}")
        return value
