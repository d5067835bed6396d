"""The embedded default: a dnsmasq-compatible hosts file.

Needs no account and no network, so the shipped config does a whole update on
a fresh machine. On OpenWrt, point dnsmasq's ``addn-hosts`` at the file and the
LAN resolves the names. Lines for names we do not manage are kept as they are.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, List, Optional, Tuple

from edgeddns.errors import ProviderError
from edgeddns.fileio import read_limited, write_atomic
from edgeddns.options import Opt
from edgeddns.providers.base import Provider, RemoteRecord

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig


MAX_HOSTS_FILE = 4 << 20


def _check_cmd(v: str) -> Optional[str]:
    try:
        import shlex

        return None if shlex.split(v) else "is empty"
    except ValueError as e:
        return f"is not a valid command line: {e}"


class HostsProvider(Provider):
    OPTIONS = {
        "path": Opt(str, required=True, doc="hosts file to write (dnsmasq addn-hosts)"),
        "reload_cmd": Opt(str, check=_check_cmd, doc="command run after a change, without a shell"),
    }
    # A failed reload_cmd leaves the file right; the retry must run it again.
    WANTS_RETRYING = True

    @classmethod
    def check_config(cls, cfg: ProviderConfig, resolve_path) -> Optional[Tuple[str, str]]:
        cfg.options["path"] = resolve_path(cfg.options["path"])
        cmd = cfg.options.get("reload_cmd")
        if cmd:
            import shlex

            # Like path: "./reload.sh" is next to the config, not in the agent's working directory.
            argv = shlex.split(cmd)  # checked by _check_cmd already
            if "/" in argv[0] and not os.path.isabs(argv[0]):
                cfg.options["reload_cmd"] = shlex.join([resolve_path(argv[0])] + argv[1:])
        if os.path.isdir(cfg.options["path"]):
            return "path", f"{cfg.options['path']} is a directory; name a file"
        return None

    @property
    def host(self) -> str:
        return "hosts"

    def _read(self) -> List[str]:
        path = self.options["path"]
        try:
            # A regular file of bounded size: a FIFO would hang, a huge file is not a hosts file to rewrite.
            data = read_limited(path, MAX_HOSTS_FILE)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ProviderError(f"cannot read {path}: {e.strerror}; refusing to rewrite it") from None
        try:
            return data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ProviderError(f"{path} is not UTF-8 text; refusing to rewrite it") from None

    @staticmethod
    def _entry(line: str) -> Optional[Tuple[str, List[str]]]:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            return None
        try:
            ipaddress.ip_address(fields[0])
        except ValueError:
            return None
        return fields[0], [n.lower() for n in fields[1:]]

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        out = []
        for line in self._read():
            e = self._entry(line)
            if e and record.name in e[1] and (ipaddress.ip_address(e[0]).version == record.family):
                out.append(RemoteRecord(record.name, record.name, record.type, e[0]))
        return out

    def ensure(self, record: RecordConfig, value: str, retrying: bool = False) -> str:
        from edgeddns.address import checked

        # A line break in the value would be a line of its own, served by dnsmasq to the whole LAN.
        value = checked(value, record.family)
        lines = self._read()
        kept, found = [], False
        for line in lines:
            e = self._entry(line)
            if e and record.name in e[1] and ipaddress.ip_address(e[0]).version == record.family:
                if e[0] == value and not found:
                    found = True
                    kept.append(line)
                    continue
                names = [n for n in e[1] if n != record.name]
                if names:  # other names on that line stay where they were
                    kept.append(" ".join([e[0], *names]))
                continue
            kept.append(line)
        if found and len(kept) == len(lines):
            if retrying and self.options.get("reload_cmd"):
                # The file is right, but the last attempt failed: maybe only its reload did.
                self._reload()
                return "updated"
            return "unchanged"
        if not found:
            kept.append(f"{value} {record.name}")
        try:
            os.makedirs(os.path.dirname(self.options["path"]), exist_ok=True)
            write_atomic(self.options["path"], "\n".join(kept) + "\n")
        except OSError as e:
            raise ProviderError(f"cannot write {self.options['path']}: {e.strerror}") from None
        self._reload()
        return "updated"

    def _reload(self) -> None:
        cmd = self.options.get("reload_cmd")
        if not cmd:
            return
        import shlex
        import subprocess

        try:
            # edgeddns.spawn: a clean signal mask and its own session (a Ctrl-C on the
            # agent's terminal must not kill it halfway).
            from edgeddns.spawn import run

            proc = run(shlex.split(cmd), capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ProviderError(f"reload_cmd failed: {e.__class__.__name__}") from None
        if proc.returncode != 0:
            raise ProviderError(f"reload_cmd exited with status {proc.returncode}")
