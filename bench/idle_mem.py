"""Where an idle daemon's resident megabytes go: the idle rows of bench/light.py, with a breakdown.

    sudo python3 bench/idle_mem.py [--rounds 3] [--idle 8] [--diag] [--baseline REF]

Uses bench/light.py's clean venv (a regular, non-editable install of this
checkout) and its configs (hosts; hosts + MQTT; dyndns2 + MQTT) inside a
loopback-only network namespace. In every round it measures the floors
(``python -c pass`` and ``import ssl, paho.mqtt.client, requests``, peak RSS
as light.py does; and what the standard modules every daemon holds and
paho's import cost: see FLOORS) and each idle daemon (VmRSS after start-up
settles; a fresh state dir each, so each has made its first update), one at
a time, and prints medians with the differences the issue's goals use.

``--diag`` runs each daemon once more through a wrapper that, after start-up,
writes what it holds: modules loaded (beyond a bare interpreter), threads and
their stacks, the RSS of each mapping (libcrypto, libpython, the heap ...),
and, with ``-X tracemalloc``, the Python allocations by file. The wrapper's
own thread and tracemalloc cost memory: read those figures as a breakdown,
not as the daemon's size. Benchmarks only: never part of the tests or CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)

from incumbents import enter_netns, proc_status, tree_pids  # noqa: E402
from light import Light, build_baseline, build_venv, env, measure, start_agent, stop_agent  # noqa: E402

# Runs `edgeddns run` as the console script would, plus a thread (signals blocked, as the
# daemon's own) that dumps what the process holds once start-up is over.
WRAPPER = r'''
import sys, os, signal, threading, time
bare = set(sys.modules)
out, delay = sys.argv[1], float(sys.argv[2])
sys.argv = ["edgeddns"] + sys.argv[3:]

def dump():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    time.sleep(delay)
    rep = {}
    import tracemalloc
    if tracemalloc.is_tracing():  # first: the dump's own imports and stacks would count
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        rep["tracemalloc_total_kb"] = sum(s.size for s in snap.statistics("filename")) // 1024
        rep["tracemalloc_by_file"] = [(str(s.traceback[0].filename), s.size // 1024)
                                      for s in snap.statistics("filename")[:40]]
        # By the import statement (or call) outside importlib that led to the allocation.
        by_site = {}
        for st in snap.traces:
            site = next((f"{fr.filename}:{fr.lineno}" for fr in reversed(st.traceback)  # innermost first
                         if not fr.filename.startswith("<frozen")), "?")
            by_site[site] = by_site.get(site, 0) + st.size
        rep["tracemalloc_by_site"] = sorted(((k, v // 1024) for k, v in by_site.items()), key=lambda kv: -kv[1])[:60]
        # By the innermost line of edgeddns itself on the way (cumulative: an import there and all it imports).
        by_ours = {}
        for st in snap.traces:
            site = next((f"{fr.filename.rsplit('/edgeddns/', 1)[-1]}:{fr.lineno}" for fr in reversed(st.traceback)
                         if "/edgeddns/" in fr.filename), "outside edgeddns")
            by_ours[site] = by_ours.get(site, 0) + st.size
        rep["tracemalloc_by_edgeddns_line"] = sorted(((k, v // 1024) for k, v in by_ours.items()),
                                                     key=lambda kv: -kv[1])[:80]
    # glibc's per-arena totals and pymalloc's arenas (both print to fd 2): memory held but free.
    saved = os.dup(2)
    with open(out + ".stats", "w") as f:
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    with open(out + ".stats") as f:
        stats = f.read()
    rep["pymalloc"] = [l for l in stats.splitlines() if l.startswith(("# arenas", "# bytes in", "Total",
                                                                       "# times", "Arena", "system bytes",
                                                                       "in use bytes", "max mmap"))]
    import json, traceback, gc
    rep["modules"] = sorted(set(sys.modules) - bare)
    frames = sys._current_frames()
    rep["threads"] = [{"name": t.name, "daemon": t.daemon,
                       "stack": traceback.format_stack(frames[t.ident])[-4:] if t.ident in frames else []}
                      for t in threading.enumerate() if t is not threading.current_thread()]
    maps, cur, anon, size = {}, None, [], 0
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                cur = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Size:":
                size = int(parts[1])
            elif parts[0] == "Rss:":
                maps[cur] = maps.get(cur, 0) + int(parts[1])
                if cur == "[anon]" and int(parts[1]):
                    anon.append((size, int(parts[1])))
    rep["maps_kb"] = dict(sorted(maps.items(), key=lambda kv: -kv[1]))
    rep["anon_size_rss_kb"] = sorted(anon, key=lambda x: -x[1])
    with open("/proc/self/smaps_rollup") as f:
        rep["rollup"] = f.read()
    counts = {}
    for o in gc.get_objects():
        counts[type(o).__name__] = counts.get(type(o).__name__, 0) + 1
    rep["gc_objects"] = sorted(counts.items(), key=lambda kv: -kv[1])[:25]
    with open(out, "w") as f:
        json.dump(rep, f, indent=1)

threading.Thread(target=dump, daemon=True).start()
from edgeddns.cli import main
raise SystemExit(main())
'''


# Peak RSS of these, as light.py measures its floors. "floor" and "ifloor" are the issue's; the others say
# what the project's own choices cost before any edgeddns code runs: the standard modules every daemon
# holds (dataclasses brings inspect and ast; tomllib brings typing; json and tomllib need re; the daemon
# logs), and paho's import (ssl, urllib.request, email, http.client, hashlib, uuid at its module level).
STDLIB = ("import re, typing, dataclasses, json, ipaddress, logging, threading, select, fcntl, _socket\n"
          "try:\n import tomllib\nexcept ImportError:\n import tomli")
FLOORS = {"floor": "pass", "ifloor": "import ssl, paho.mqtt.client, requests",
          "stdlib floor": STDLIB, "paho floor": "import paho.mqtt.client",
          "paho + stdlib floor": "import paho.mqtt.client\n" + STDLIB}


def idle_rss(lt: Light, cfg: str, seconds: float, edge: str) -> int:
    p = start_agent(lt, cfg, edge)
    try:
        time.sleep(seconds)
        return sum(proc_status(x, "VmRSS") for x in tree_pids(p.pid))
    finally:
        stop_agent(p)


def diag(lt: Light, cfg: str, seconds: float, tracemalloc: bool) -> dict:
    import signal

    out = os.path.join(lt.work, "diag.json")
    if os.path.exists(out):
        os.unlink(out)
    argv = [lt.py] + (["-X", "tracemalloc=40"] if tracemalloc else []) + ["-c", WRAPPER, out, str(seconds),
                                                                      "run", "-c", cfg]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=lt.work)
    end = time.monotonic() + seconds + 20
    while not os.path.exists(out) and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    p.wait(15)
    with open(out) as f:
        return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=8.0, help="seconds each idle daemon runs before it is read")
    ap.add_argument("--diag", action="store_true", help="also dump a breakdown of each daemon")
    ap.add_argument("--only", default="", help="comma-separated subset: hosts,mqtt,dyn")
    ap.add_argument("--baseline", metavar="REF", help="also measure this git commit's install (same rounds)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="set this in the environment of everything measured (e.g. MALLOC_ARENA_MAX=1)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "idle_mem.json"))
    args = ap.parse_args()
    if os.environ.get("EDGEDDNS_BENCH_NETNS") != "1":
        os.environ["EDGEDDNS_LIGHT_PY"] = build_venv()
        if args.baseline:
            os.environ["EDGEDDNS_LIGHT_BASE_PY"] = build_baseline(args.baseline)
    enter_netns()
    for kv in args.env:  # light.env() copies os.environ for every child
        os.environ[kv.partition("=")[0]] = kv.partition("=")[2]
    py = os.environ["EDGEDDNS_LIGHT_PY"]
    args.peers = False
    lt = Light(args, py)
    try:
        lt.b.dyn.set_wan(lt.addr())
        # A config per daemon and round, each with a fresh state dir: every daemon starts as
        # light.py's do, with its first update to make (the dyndns2 one through requests).
        fresh = {"hosts": lambda n: lt.hosts_conf(n), "mqtt": lambda n: lt.hosts_conf(n, mqtt=True),
                 "dyn": lambda n: lt.dyn_conf(n, mqtt=True)}
        kinds = [k for k in fresh if not args.only or k in args.only.split(",")]
        daemons = [(k, k, lt.edge) for k in kinds] + ([("base-" + k, k, lt.base_edge) for k in kinds]
                                                      if lt.base_edge else [])
        res: Dict[str, List[int]] = {k: [] for k in FLOORS}
        res.update({k: [] for k, _, _ in daemons})
        for i in range(args.rounds):
            for key, code in FLOORS.items():
                res[key].append(measure([lt.py, "-c", code], env())[0].rss_kb)
            for key, kind, edge in daemons:
                res[key].append(idle_rss(lt, fresh[kind](f"idle-{key}-{i}"), args.idle, edge))
        med = {k: statistics.median(v) / 1024 for k, v in res.items()}
        print(f"load {os.getloadavg()[0]:.2f}; {args.rounds} rounds, medians (MiB)")
        for key, code in FLOORS.items():
            print(f"{key}: {med[key]:.2f}  over floor {med[key] - med['floor']:+.2f}   ({code!r})")
        for key, _, _ in daemons:
            print(f"{key}: {med[key]:.2f}  over floor {med[key] - med['floor']:+.2f}  "
                  f"over import floor {med[key] - med['ifloor']:+.2f}  over stdlib floor "
                  f"{med[key] - med['stdlib floor']:+.2f}  over paho + stdlib floor "
                  f"{med[key] - med['paho + stdlib floor']:+.2f}   all: {[round(x / 1024, 2) for x in res[key]]}")
        rep = {"medians_mib": med, "runs_kb": res, "load": os.getloadavg()[0]}
        if args.diag:
            rep["diag"] = {}
            for key in kinds:  # each with a fresh state dir: its first update happens, as in the rounds
                rep["diag"][key] = diag(lt, fresh[key](f"diag-{key}"), args.idle, tracemalloc=False)
                rep["diag"][key + "+tracemalloc"] = diag(lt, fresh[key](f"diag-tm-{key}"), args.idle,
                                                         tracemalloc=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(rep, f, indent=1)
    finally:
        lt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
