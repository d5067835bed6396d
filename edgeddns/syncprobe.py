"""Is the system clock kept synchronised? Positive evidence only.

Absence of evidence means "measure", never "the clock is wrong". Read by
``edgeddns.timesync`` (``[clock] mode = "auto"``) and by ``edgeddns clock``.
Nothing here changes the clock or needs privilege.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

TIMESYNCD_FLAG = "/run/systemd/timesync/synchronized"
#: written by openwrt/files/etc/hotplug.d/ntp/25-edgeddns into the state directory
HOTPLUG_MARKER = "ntpd.sync"
DNSMASQ_MARKER = "/var/state/dnsmasqsec"  # OpenWrt's dnsmasq hook: "ntpd says time is valid"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
IGNORE_ENV = "EDGEDDNS_IGNORE_SYNC_EVIDENCE"
#: a daemon that disciplines the kernel clock keeps maxerror well below the kernel's 16 s ceiling
MAXERROR_LIMIT_US = 5_000_000

STA_UNSYNC = 0x0040


def read_adjtimex() -> Optional[Tuple[int, int, int]]:
    """(state, status, maxerror in µs) from a read-only ``adjtimex(2)``, or None where unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    # Imported here: ctypes costs the no-change path a few ms it never needs. OpenWrt ships it as an
    # add-on (python3-ctypes) that the package does not need: without it the kernel is not asked.
    try:
        import ctypes
    except ImportError:
        return None

    class _Timex(ctypes.Structure):
        # Only the leading fields are named: their offsets are the same on every
        # Linux ABI (32/64-bit, glibc/musl). The tail (which grows with a 64-bit
        # time_t on 32-bit systems) is covered by generous padding.
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("_rest", ctypes.c_char * 512)]

    try:
        # CDLL(None) is the process's own symbol table, libc included; find_library
        # would spawn ldconfig or a compiler to find the same thing.
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        tx.modes = 0  # read only: no privilege needed, nothing changes
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state, tx.status, tx.maxerror


@dataclass
class Evidence:
    """Whether the clock is proven synchronised, and every signal looked at."""

    synced: bool
    lines: List[str] = field(default_factory=list)  # every signal looked at, for `edgeddns clock`


@dataclass
class SyncProbe:
    """Positive evidence of synchronisation. Absence of evidence only means "measure"."""

    state_dir: Optional[str] = None
    timesyncd_flag: str = TIMESYNCD_FLAG
    dnsmasq_marker: str = DNSMASQ_MARKER
    boot_id_file: str = BOOT_ID
    adjtimex: Callable[[], Optional[Tuple[int, int, int]]] = read_adjtimex
    #: set by the environment variable below: a simulated wrong clock (libfaketime in the
    #: tests) runs on a host whose real sync evidence would otherwise be believed
    ignore: bool = field(default_factory=lambda: bool(os.environ.get(IGNORE_ENV)))

    def check(self) -> Evidence:
        if self.ignore:
            return Evidence(False, [f"sync evidence ignored ({IGNORE_ENV} is set)"])
        ev = Evidence(False)
        if os.path.exists(self.timesyncd_flag):
            ev.synced = True
            ev.lines.append(f"systemd-timesyncd: {self.timesyncd_flag} exists (synchronised)")
        else:
            ev.lines.append(f"systemd-timesyncd: {self.timesyncd_flag} absent")
        if self.state_dir:
            ok, line = self._hotplug(os.path.join(self.state_dir, HOTPLUG_MARKER))
            ev.synced |= ok
            ev.lines.append(line)
        if os.path.exists(self.dnsmasq_marker):
            ev.synced = True
            ev.lines.append(f"OpenWrt dnsmasq: {self.dnsmasq_marker} exists (ntpd reported sync this boot)")
        tx = self.adjtimex()
        if tx is None:
            ev.lines.append("kernel: adjtimex unavailable")
        else:
            _state, status, maxerror = tx
            unsync = "; STA_UNSYNC set (not proof either way)" if status & STA_UNSYNC else ""
            if 0 <= maxerror < MAXERROR_LIMIT_US:
                ev.synced = True
                ev.lines.append(f"kernel: maxerror {maxerror / 1e6:.3f} s: a daemon disciplines the clock{unsync}")
            else:
                ev.lines.append(f"kernel: maxerror {maxerror / 1e6:.3f} s: no daemon disciplines the clock{unsync}")
        return ev

    def _hotplug(self, path: str) -> Tuple[bool, str]:
        from edgeddns.fileio import read_limited

        try:
            # In the state dir: a small regular file, never through a symlink (fileio.read_limited).
            text = read_limited(path, 4096, follow=False).decode("utf-8", "replace")
            fields = dict(line.strip().split("=", 1) for line in text.splitlines() if "=" in line)
        except OSError:
            return False, f"busybox ntpd hotplug: {path} absent"
        boot = read_boot_id(self.boot_id_file)
        if boot and fields.get("boot_id") and fields["boot_id"] != boot:
            return False, f"busybox ntpd hotplug: {path} is from an earlier boot (ignored)"
        try:
            stratum = int(fields.get("stratum", "16"))
        except ValueError:
            stratum = 16
        if fields.get("sync") == "1" and 0 < stratum < 16:
            return True, f"busybox ntpd hotplug: synchronised, stratum {stratum} ({fields.get('action', '?')})"
        return False, f"busybox ntpd hotplug: not synchronised ({fields.get('action', '?')})"


def read_boot_id(path: str = BOOT_ID) -> str:
    """This boot's id (Linux), or "" where there is none: then nothing is tied to a boot."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read(64).strip()
    except (OSError, UnicodeError):
        return ""
