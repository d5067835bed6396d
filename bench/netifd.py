"""Benchmark (not a test): a netifd notification to the record updated, and the cost of listening.

    python3 bench/netifd.py [--rounds 40] [--idle 10]

The agent is a regular (non-editable) install in bench/.venv-light (built as
bench/light.py does); netifd's side is tests/fakes/ubus, which prints the
notifications recorded from the real ``ubus subscribe network.interface``
(tests/fakes/openwrt-recordings/). The record goes to a hosts file; "landed"
means the new address is in it. Measured, interleaved round by round:

- the floor: ``python -c pass`` from the same venv (wall time);
- subscription path: the recorded notification is written to the
  subscribed ``ubus`` child -> the address has landed (no process starts);
- hotplug fallback (agent not subscribed): netifd's status changes, then the
  hotplug script runs (busybox ash, sourced as hotplug-call does) -> landed;
  this path starts ``edgeddns trigger`` and the agent runs ``ubus call``;
- idle cost of being subscribed: the RSS of the children (``ubus subscribe``
  and ``ubus listen ubus.object.add``), and the CPU time (utime + stime from
  /proc) the agent and the children use over ``--idle`` seconds.

Prints a Markdown section for BENCHMARKS.md and writes bench/results/netifd.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
FAKES = os.path.join(ROOT, "tests", "fakes")
HOTPLUG = os.path.join(ROOT, "openwrt/files/etc/hotplug.d/iface/95-edgeddns")
RECORDED = os.path.join(FAKES, "openwrt-recordings", "ubus-subscribe-network.interface.txt")
UP, RENEWED = 1, 2  # recorded lines: ifup with 192.0.2.2, renewal to 192.0.2.4
ADDR = {UP: "192.0.2.2", RENEWED: "192.0.2.4"}

CFG = """
[agent]
node_id = "bench"
state_dir = "{d}/state"
[clock]
mode = "system"
[ip]
ipv4 = ["ubus:wan"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "router.lan"
provider = "lan"
allow_private = true
"""


def q(values: List[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def ms(values: List[float]) -> Dict[str, float]:
    return {"median_ms": round(statistics.median(values) * 1000, 2), "p99_ms": round(q(values, 0.99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2), "n": len(values)}


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def children(pid: int) -> List[int]:
    """Children of every thread of ``pid`` (the ubus child is the subscription thread's)."""
    out: List[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


class Box:
    """One agent with the ubus stand-in on its PATH."""

    def __init__(self, edge: str, subscribe: bool):
        self.d = tempfile.mkdtemp(prefix="edgeddns-netifd-")
        self.fake = os.path.join(self.d, "ubusd")
        os.makedirs(self.fake)
        os.mkfifo(os.path.join(self.fake, "feed"))
        if not subscribe:
            # A ubus that answers calls but refuses the subscription: the agent keeps
            # retrying it with back-off, and the hotplug script is the path.
            with open(os.path.join(self.fake, "no-subscribe"), "w"):
                pass
        bindir = os.path.join(self.d, "bin")
        os.makedirs(bindir)
        self._script(bindir, "ubus", f'exec sh {FAKES}/ubus "$@"')
        self._script(bindir, "edgeddns", f'exec {edge} "$@"')
        self._script(bindir, "logger", "cat >/dev/null")
        self.env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "UBUS_FAKE_DIR": self.fake}
        self.env.pop("PYTHONPATH", None)
        self.cfg = os.path.join(self.d, "config.toml")
        with open(self.cfg, "w") as f:
            f.write(CFG.format(d=self.d))
        self.set_status(UP)
        self.hosts = os.path.join(self.d, "hosts")
        self.proc = subprocess.Popen([edge, "run", "-c", self.cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=self.env, cwd=self.d)
        self.wait_for(ADDR[UP])
        if subscribe:
            end = time.monotonic() + 10
            while not os.path.exists(os.path.join(self.d, "state", "ubus.pid")) and time.monotonic() < end:
                time.sleep(0.01)
        time.sleep(0.5)

    @staticmethod
    def _script(bindir: str, name: str, body: str) -> None:
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\n{body}\n")
        os.chmod(path, 0o755)

    def set_status(self, line: int) -> None:
        """What ``ubus call network.interface.wan status`` answers: netifd's status after ``line``."""
        with open(RECORDED) as f:
            status = json.loads(f.read().splitlines()[line - 1])["interface.update"]
        del status["interface"]
        tmp = os.path.join(self.fake, "wan.status.json.tmp")
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.replace(tmp, os.path.join(self.fake, "wan.status.json"))

    def landed(self, addr: str) -> bool:
        try:
            with open(self.hosts) as f:
                return f"{addr} router.lan" in f.read()
        except FileNotFoundError:
            return False

    def wait_for(self, addr: str, timeout: float = 20.0) -> float:
        t0 = time.perf_counter()
        while not self.landed(addr):
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{addr} never landed in {self.hosts}")
            time.sleep(0.0002)
        return time.perf_counter()

    def notify(self, line: int) -> float:
        t0 = time.perf_counter()
        fd = os.open(os.path.join(self.fake, "feed"), os.O_WRONLY)  # blocks until the child reads
        os.write(fd, f"{line}\n".encode())
        os.close(fd)
        return self.wait_for(ADDR[line]) - t0

    def hotplug(self, line: int) -> float:
        self.set_status(line)
        env = {"PATH": self.env["PATH"], "ACTION": "ifupdate", "INTERFACE": "wan", "DEVICE": "wan0",
               "IFUPDATE_ADDRESSES": "1", "EDGEDDNS_BIN": "edgeddns", "EDGEDDNS_CONF": self.cfg,
               "EDGEDDNS_HOTPLUG_CONF": "/nonexistent", "EDGEDDNS_STATE_DIR": os.path.join(self.d, "state")}
        t0 = time.perf_counter()
        subprocess.run(["busybox", "ash", "-c", 'for s in "$@"; do ( . "$s" ); done', "hotplug-call", HOTPLUG],
                       env=env, stdin=subprocess.DEVNULL, check=True)
        return self.wait_for(ADDR[line]) - t0

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def floor(py: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([py, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args()
    sys.path.insert(0, BENCH)
    from light import build_venv

    py = build_venv()
    edge = os.path.join(os.path.dirname(py), "edgeddns")
    sub, fallback = Box(edge, subscribe=True), Box(edge, subscribe=False)
    res: Dict[str, List[float]] = {"floor": [], "subscription": [], "hotplug": []}
    try:
        for i in range(args.rounds):
            line = RENEWED if i % 2 == 0 else UP
            res["floor"].append(floor(py))
            res["subscription"].append(sub.notify(line))
            res["hotplug"].append(fallback.hotplug(line))
        kids = children(sub.proc.pid)  # ubus subscribe, and ubus listen for netifd restarts
        before = {"agent": cpu_ticks(sub.proc.pid), "child": sum(cpu_ticks(k) for k in kids)}
        time.sleep(args.idle)
        after = {"agent": cpu_ticks(sub.proc.pid), "child": sum(cpu_ticks(k) for k in kids)}
        idle = {
            "children": len(kids),
            "child_rss_kib": sum(rss_kib(k) for k in kids),
            "agent_rss_kib": rss_kib(sub.proc.pid),
            "agent_rss_kib_unsubscribed": rss_kib(fallback.proc.pid),
            "cpu_ticks": {k: after[k] - before[k] for k in after},
            "clk_tck": os.sysconf("SC_CLK_TCK"),
            "seconds": args.idle,
        }
    finally:
        sub.close()
        fallback.close()
    fl = statistics.median(res["floor"])
    rep = {"python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
           "floor": ms(res["floor"]), "idle": idle}
    for path in ("subscription", "hotplug"):
        rep[path] = {**ms(res[path]), "x_floor": round(statistics.median(res[path]) / fl, 2)}
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    with open(os.path.join(BENCH, "results", "netifd.json"), "w") as f:
        json.dump(rep, f, indent=1)
    print(render(rep))
    return 0


def render(rep: dict) -> str:
    f, s, h, i = rep["floor"], rep["subscription"], rep["hotplug"], rep["idle"]
    return "\n".join([
        f"`python3 bench/netifd.py --rounds {f['n']} --idle {i['seconds']:g}` ({rep['machine']}, Python "
        f"{rep['python']}, regular install in a clean venv; netifd's side is tests/fakes/ubus replaying the "
        "recorded notifications).",
        "",
        "| path | median | p99 | max | median vs `python -c pass` |",
        "|---|---|---|---|---|",
        f"| `python -c pass` (floor, same venv) | {f['median_ms']} ms | {f['p99_ms']} ms | {f['max_ms']} ms | 1 |",
        f"| notification -> record updated, subscription | {s['median_ms']} ms | {s['p99_ms']} ms | "
        f"{s['max_ms']} ms | {s['x_floor']}x |",
        f"| netifd status change + hotplug script -> record updated (fallback) | {h['median_ms']} ms | "
        f"{h['p99_ms']} ms | {h['max_ms']} ms | {h['x_floor']}x |",
        "",
        f"Idle while subscribed, over {i['seconds']:g} s: agent {i['cpu_ticks']['agent']} and its {i['children']} "
        f"`ubus` children {i['cpu_ticks']['child']} CPU ticks (1 tick = {1000 // i['clk_tck']} ms); RSS of the "
        f"children {i['child_rss_kib']} KiB together (the stand-in is a `sh` script; the real `ubus` CLI is a "
        "small C program); "
        f"agent {i['agent_rss_kib']} KiB subscribed vs {i['agent_rss_kib_unsubscribed']} KiB not subscribed.",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
