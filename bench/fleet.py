"""A fleet on one broker: what a broadcast and a Home Assistant birth message cost.

    sudo python3 bench/fleet.py [--agents 50] [--broadcasts 3] [--spread S]

Starts N real agents (``edgeddns run`` from ``bench/.venv-light``, a regular
install: run ``bench/light.py`` once first, or this script builds it) on one
Mosquitto, in a loopback-only network namespace. Each agent has one dyndns2
record at the fake service (``bench/fake_dyndns2.py``), so every provider call
is seen with its arrival time. A monitor subscribed to ``#`` timestamps every
message the agents publish. Measured:

- per ``all/cmd/update`` broadcast with ``force`` (optionally with a
  ``spread``): the broker's publish rate (peak per 100 ms and the total), the
  provider calls per second (peak per 100 ms), and the time until every answer
  and every result is in;
- per ``homeassistant/status online`` birth message: the discovery publishes,
  their peak rate and how long the wave lasts;
- idle: the agents' CPU over a quiet period, and their resident memory.

Prints a Markdown section for BENCHMARKS.md and writes bench/results/fleet.json.
Benchmarks only: never part of the tests or CI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Dict, List, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)

from fake_dyndns2 import FakeDyndns2  # noqa: E402
from incumbents import CLK_TCK, enter_netns, proc_status  # noqa: E402
from light import build_venv  # noqa: E402

from tests.mosquitto import Mosquitto  # noqa: E402

USER, PASSWORD = "bench", "bench-pass-0123"
BUCKET = 0.1  # seconds per rate bucket


class Monitor:
    """An MQTT 5 client subscribed to everything; keeps (monotonic time, topic, payload) of each message."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.msgs: List[Tuple[float, str, bytes]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        ready = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe("#", 1)
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(10)

    def _on_message(self, c, u, m) -> None:
        with self.lock:
            self.msgs.append((time.monotonic(), m.topic, bytes(m.payload)))

    def since(self, t0: float) -> List[Tuple[float, str, bytes]]:
        with self.lock:
            return [x for x in self.msgs if x[0] >= t0]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def peak_rate(times: List[float]) -> float:
    if not times:
        return 0.0
    buckets = Counter(int(t / BUCKET) for t in times)
    return max(buckets.values()) / BUCKET


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def agent_conf(work: str, i: int, broker: int, dyn: FakeDyndns2, discovery: str) -> str:
    d = os.path.join(work, f"n{i}")
    os.makedirs(d)
    path = os.path.join(d, "config.toml")
    with open(path, "w") as f:
        f.write(f"""[agent]
node_id = "n{i}"
state_dir = "{d}/state"

[mqtt]
host = "127.0.0.1"
port = {broker}
discovery = "{discovery}"

[ip]
ipv4 = ["static:93.184.{i // 250}.{i % 250 + 1}"]

[providers.dyn]
type = "dyndns2"
endpoint = "{dyn.url}/nic/update"
username = "{USER}"
password = "{PASSWORD}"

[[records]]
name = "n{i}.example.com"
provider = "dyn"
""")
    os.chmod(path, 0o600)
    return path


def run(args: argparse.Namespace, py: str) -> dict:
    edge = os.path.join(os.path.dirname(py), "edgeddns")
    work = tempfile.mkdtemp(prefix="edgeddns-fleet-")
    broker = Mosquitto(os.path.join(work, "mqtt"), extra=["max_queued_messages 100000",
                                                          "set_tcp_nodelay true"]).start()
    dyn = FakeDyndns2(USER, PASSWORD, {f"n{i}.example.com" for i in range(args.agents)}).start()
    mon = Monitor(broker.port)
    procs: List[subprocess.Popen] = []
    rep: dict = {"agents": args.agents, "discovery": args.discovery,
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "machine": f"{os.cpu_count()} cores", "broadcasts": [], "births": []}
    try:
        t0 = time.monotonic()
        for i in range(args.agents):
            procs.append(subprocess.Popen([edge, "run", "-c", agent_conf(work, i, broker.port, dyn, args.discovery)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60 + args.agents
        while time.monotonic() < deadline:
            online = {t for _, t, p in mon.since(t0) if t.endswith("/availability") and p == b"online"}
            if len(online) >= args.agents:
                break
            time.sleep(0.2)
        rep["start_s"] = round(time.monotonic() - t0, 1)
        time.sleep(3)  # the first updates and discovery settle
        for b in range(args.broadcasts):
            cid = f"bench-{b}"
            body: Dict[str, object] = {"id": cid, "force": True}
            if args.spread is not None:
                body["spread"] = args.spread
            dyn.reset()
            t1 = time.monotonic()
            mon.publish("edgeddns/all/cmd/update", json.dumps(body).encode())
            end = t1 + 30 + (args.spread or 0) + args.agents * 0.2
            answers: set = set()
            results: set = set()
            while time.monotonic() < end and (len(answers) < args.agents or len(results) < args.agents):
                time.sleep(0.05)
                for _, topic, payload in mon.since(t1):
                    if topic.endswith("/response/update") and cid.encode() in payload:
                        answers.add(topic)
                    elif topic.endswith("/result") and cid.encode() in payload:
                        results.add(topic)
            msgs = [x for x in mon.since(t1) if x[1] != "edgeddns/all/cmd/update"]
            last_answer = max((t for t, topic, p in msgs if topic.endswith("/response/update")), default=t1)
            last_result = max((t for t, topic, p in msgs if topic.endswith("/result")), default=t1)
            with dyn.lock:
                calls = [e.mono for e in dyn.events if e.kind in ("good", "nochg")]
            rep["broadcasts"].append({
                "spread": args.spread, "answers": len(answers), "results": len(results),
                "publishes": len(msgs), "publishes_per_agent": round(len(msgs) / args.agents, 2),
                "peak_publishes_per_s": peak_rate([t for t, _, _ in msgs]),
                "provider_calls": len(calls), "peak_provider_calls_per_s": peak_rate(calls),
                "all_answers_s": round(last_answer - t1, 3), "all_results_s": round(last_result - t1, 3)})
            print(f"broadcast {b}: {rep['broadcasts'][-1]}", flush=True)
            time.sleep(2)
        for b in range(args.births):
            t1 = time.monotonic()
            mon.publish("homeassistant/status", b"online")
            time.sleep(args.birth_wait)
            disc = [t for t, topic, _ in mon.since(t1) if topic.startswith("homeassistant/")
                    and topic != "homeassistant/status"]
            rep["births"].append({"discovery_publishes": len(disc), "peak_per_s": peak_rate(disc),
                                  "wave_s": round((max(disc) - min(disc)) if disc else 0.0, 3)})
            print(f"birth {b}: {rep['births'][-1]}", flush=True)
        c0 = sum(cpu_s(p.pid) for p in procs)
        time.sleep(args.idle)
        rep["idle_cpu_s_per_min_all_agents"] = round((sum(cpu_s(p.pid) for p in procs) - c0) * 60 / args.idle, 3)
        rss = [proc_status(p.pid, "VmRSS") for p in procs]
        rep["rss_mib_median"] = round(sorted(rss)[len(rss) // 2] / 1024, 1)
        retained = {topic for _, topic, p in mon.msgs if topic.startswith("homeassistant/")
                    and topic.endswith("/config") and p}
        rep["discovery_topics"] = len(retained)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        mon.c.loop_stop()
        broker.stop()
        dyn.stop()
    return rep


def render(rep: dict) -> str:
    n = rep["agents"]
    lines = [f"{n} agents on one Mosquitto (discovery {rep.get('discovery', 'full')}), {rep['machine']}, "
             f"{rep['date']}; agents started in {rep.get('start_s')} s.",
             "", "| broadcast | answers | results | publishes per agent | peak publishes/s | peak provider calls/s "
             "| all answers in | all results in |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for b in rep["broadcasts"]:
        lines.append(f"| `all/cmd/update` force, spread {b['spread']} | {b['answers']}/{n} | {b['results']}/{n} | "
                     f"{b['publishes_per_agent']} | {b['peak_publishes_per_s']:.0f} | "
                     f"{b['peak_provider_calls_per_s']:.0f} | {b['all_answers_s']} s | {b['all_results_s']} s |")
    for b in rep["births"]:
        lines.append(f"\nHome Assistant birth: {b['discovery_publishes']} discovery publishes, peak "
                     f"{b['peak_per_s']:.0f}/s, over {b['wave_s']} s.")
    lines.append(f"\nIdle: {rep['idle_cpu_s_per_min_all_agents']} s CPU per minute for all {n} agents; "
                 f"median RSS {rep['rss_mib_median']} MiB; {rep['discovery_topics']} retained discovery topics.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--broadcasts", type=int, default=2)
    ap.add_argument("--births", type=int, default=1)
    ap.add_argument("--birth-wait", type=float, default=15.0, help="seconds to collect discovery after a birth")
    ap.add_argument("--spread", type=float, default=None, help="the broadcast's spread (default: the agents')")
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--discovery", default="full", choices=("full", "minimal", "off"))
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "fleet.json"))
    ap.add_argument("--render", metavar="JSON")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    if os.environ.get("EDGEDDNS_BENCH_NETNS") != "1":
        os.environ["EDGEDDNS_LIGHT_PY"] = build_venv()
    enter_netns()
    rep = run(args, os.environ["EDGEDDNS_LIGHT_PY"])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rep, f, indent=1)
    print(render(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
