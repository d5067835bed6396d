"""``edgeddns clock``: the evidence of sync, every NTP server's answer, and the time the agent would use.

It measures but never changes anything (neither the system clock nor the
state directory).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from edgeddns.clock import boottime, release_floor
from edgeddns.sntp import SntpClient
from edgeddns.syncprobe import SyncProbe, read_boot_id
from edgeddns.timestore import FLOOR_SLACK, ClockStore

if TYPE_CHECKING:
    import argparse


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def cmd_clock(args: argparse.Namespace) -> int:
    """Show the evidence of sync, every server's answer, and the time the agent would use."""
    from edgeddns.bootstrap import load_config

    cfg = load_config(args)
    cc = cfg.clock
    ev = SyncProbe(cfg.agent.state_dir).check()
    sntp = SntpClient(timeout=cc.timeout)
    meas = sntp.measure(cc.ntp_servers)
    mono, wall = boottime(), time.time()
    saved = ClockStore(cfg.agent.state_dir).load()
    floor = max(release_floor(), saved.verified - FLOOR_SLACK)
    if ev.synced and wall < floor:
        ev.synced = False
        ev.lines.append(f"system clock reads before the floor ({_iso(floor)}): not trusted")
    kept = None  # what the next one-shot in this boot would reuse
    o = saved.offset
    if o is not None and o.boot_id == read_boot_id() and 0 <= mono - o.set_at:
        kept = {"offset": round(o.base + mono - wall, 6), "source": o.source, "age": round(mono - o.set_at, 1),
                "reusable": mono - o.set_at <= cc.max_age}
    if meas.chosen is not None and meas.chosen.base + mono < floor:
        meas.error = f"{meas.chosen.server} answered a time before the floor ({_iso(floor)})"
        meas.chosen = None
    servers = []
    for o in meas.outcomes:
        if o.sample is not None:
            s = o.sample
            servers.append({"server": o.server, "offset": round(s.base + mono - wall, 6), "delay": round(s.delay, 6),
                            "stratum": s.stratum, "error": None})
        else:
            servers.append({"server": o.server, "offset": None, "delay": None, "stratum": None, "error": o.error})
    if cc.mode == "system":
        chosen = {"offset": 0.0, "source": "system"}
    elif cc.mode == "auto" and ev.synced:
        chosen = {"offset": 0.0, "source": "system"}
    elif meas.chosen is not None:
        chosen = {"offset": round(meas.chosen.base + mono - wall, 6), "source": f"ntp:{meas.chosen.server}"}
    else:
        chosen = {"offset": None, "source": None}
    out = {"mode": cc.mode, "synchronized": ev.synced, "evidence": ev.lines, "servers": servers,
           "ntp_error": meas.error, "floor": _iso(floor), "saved": kept, "chosen": chosen}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"mode: {cc.mode}")
        print("system clock: " + ("synchronised" if ev.synced else "not proven synchronised"))
        for line in ev.lines:
            print(f"  {line}")
        print("NTP servers:")
        width = max((len(s["server"]) for s in servers), default=0)
        for s in servers:
            if s["error"]:
                print(f"  {s['server']:<{width}}  error: {s['error']}")
            else:
                print(f"  {s['server']:<{width}}  offset {s['offset']:+.6f} s  delay {s['delay']:.6f} s  "
                      f"stratum {s['stratum']}")
        if meas.error:
            print(f"  no NTP result: {meas.error}")
        print(f"floor: {_iso(floor)} (nothing earlier is believed, no certificate expired before it is accepted)")
        if kept:
            print(f"saved in this boot: offset {kept['offset']:+.3f} s from {kept['source']}, {kept['age']:.0f} s ago"
                  + ("" if kept["reusable"] else " (older than max_age: the next one-shot measures again)"))
        if chosen["source"]:
            print(f"chosen: offset {chosen['offset']:+.3f} s, source {chosen['source']}")
        else:
            print("chosen: none: signed requests will take the time from the provider's Date header, "
                  "or fail with clock_unsynced")
    return 0 if chosen["source"] else 1
