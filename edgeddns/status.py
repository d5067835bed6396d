"""``edgeddns status``: the running agent's state, for a person or a script.

Per record: the last result and when, the last error, the address published,
and when the agent will look again (next poll, retry or verification). Then
the MQTT connection and the clock source. ``--json`` always prints one JSON
object: the state, or ``{"ok": false, "error": {...}}`` when there is no
agent to ask.
"""

from __future__ import annotations

import calendar
import json
import time
from typing import Any, Dict, List, Optional


def error_object(code: str, message: str) -> str:
    return json.dumps({"ok": False, "error": {"code": code, "message": message}})


def parse_iso(ts: Any) -> Optional[float]:
    """Epoch seconds of the agent's ``2026-01-02T03:04:05.678Z``, or None."""
    if not isinstance(ts, str) or not ts.endswith("Z"):
        return None
    base, _, frac = ts[:-1].partition(".")
    try:
        t = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return t + (float(f"0.{frac}") if frac.isdigit() else 0.0)


def _when(ts: Any, now: float) -> str:
    t = parse_iso(ts)
    if t is None:
        return str(ts)
    left = t - now
    rel = "now" if abs(left) < 1 else (f"in {_span(left)}" if left > 0 else f"{_span(-left)} ago")
    return f"{ts} ({rel})"


def _span(s: float) -> str:
    s = int(round(s))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def render(state: Dict[str, Any], pid: Any, now: Optional[float] = None) -> List[str]:
    now = time.time() if now is None else now
    out = [f"agent    {state.get('node_id')} (edgeddns {state.get('version')}, pid {pid}), "
           f"running since {state.get('started')}"]
    clock = state.get("clock") or {}
    offset = clock.get("offset")
    out.append(f"clock    {clock.get('source', '?')}"
               + (f" {offset:+.3f} s" if isinstance(offset, (int, float)) else "")
               + ("" if clock.get("trusted", True) else " (not trusted)"))
    mqtt = state.get("mqtt")
    if not isinstance(mqtt, dict):
        out.append("mqtt     not configured")
    else:
        since = f" since {mqtt['since']}" if mqtt.get("since") else ""
        out.append(f"mqtt     {'connected to' if mqtt.get('connected') else 'not connected to'} "
                   f"{mqtt.get('broker', '?')}{since}"
                   + (f" (last error: {mqtt['error']})" if mqtt.get("error") and not mqtt.get("connected") else ""))
    out.append(f"updates  {state.get('updates', 0)} runs")
    records = state.get("records") or []
    if not records:
        out.append("records  none checked yet")
    for r in records:
        out.append(f"  {r.get('record')} {r.get('type')} via {r.get('provider')}")
        status = r.get("status") or "not checked yet"
        last = f"{status}" + (f" {r['ip']}" if r.get("ip") else "")
        if r.get("ts"):
            last += f" at {_when(r['ts'], now)}"
        out.append(f"    last       {last}")
        out.append(f"    published  {r.get('published_ip') or 'nothing yet'}")
        err = r.get("error")
        if isinstance(err, dict):
            out.append(f"    error      [{err.get('code')}] {err.get('message')}")
        else:
            last = r.get("last_error")
            if isinstance(last, dict):
                out.append(f"    last error [{last.get('code')}] {last.get('message')} at {_when(last.get('ts'), now)}")
            else:
                out.append("    last error none")
        nxt = r.get("next") or {}
        if isinstance(nxt, dict) and nxt:
            order = sorted(nxt.items(), key=lambda kv: parse_iso(kv[1]) or 0)
            out.append("    next       " + "; ".join(f"{k} {_when(v, now)}" for k, v in order))
        else:
            out.append("    next       on the next event (no timer)")
    return out
