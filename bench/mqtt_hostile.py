"""Benchmark (not a test): what hostile MQTT input costs the agent's memory.

    python3 bench/mqtt_hostile.py [--ref REV] [--big-mb 200] [--flood 80000]

Builds ``bench/.venv-mqtt`` (a clean venv with a regular, non-editable install
of this checkout) and, with ``--ref``, ``bench/.venv-mqtt-ref`` holding the
given git revision (e.g. ``12137fc``, main before the MQTT bounds of issue 11),
so "before" and "after" are measured in the same run on the same machine.
For each build, against a real Mosquitto on loopback and ``edgeddns run`` as
a separate process (hosts provider, MQTT 5):

- the floor: peak RSS of ``python -c pass`` from the same venv (GNU time);
- the agent's RSS after start-up;
- one ``--big-mb`` MB publish to ``cmd/status``: the agent's peak RSS
  (VmHWM) and its RSS 5 s later, and whether a status is answered afterwards;
- a flood of ``--flood`` ``update`` commands (QoS 0, as fast as one paho
  publisher goes), then one ``status``: the agent's peak and settled RSS, how
  many update answers arrived before the status answer, and how long the
  status answer took.

Results go to ``bench/results/mqtt_hostile.json`` and a Markdown section is
printed for BENCHMARKS.md. Benchmarks only: never part of the tests or CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)

from tests.mosquitto import Mosquitto  # noqa: E402

CONFIG = """
[clock]
mode = "system"
[agent]
node_id = "b1"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[mqtt]
host = "127.0.0.1"
port = {port}
discovery = false
[[records]]
name = "a.lan"
provider = "lan"
allow_private = true
"""


def build_venv(name: str, src: str) -> str:
    venv = os.path.join(BENCH, name)
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", src], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", src], check=True)
    shutil.rmtree(os.path.join(src, "build"), ignore_errors=True)
    return py


def checkout(rev: str) -> str:
    d = tempfile.mkdtemp(prefix="edgeddns-ref-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    return d


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def floor_kib(py: str) -> int:
    out = subprocess.run(["/usr/bin/time", "-f", "%M", py, "-c", "pass"], capture_output=True, text=True)
    return int(out.stderr.strip().splitlines()[-1])


class Ctl:
    def __init__(self, port: int, *topics: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.cond = threading.Condition()
        self.msgs: List[Any] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on
        ready = threading.Event()
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(10)

    def _on(self, c: Any, u: Any, m: Any) -> None:
        with self.cond:
            self.msgs.append((time.monotonic(), m.topic, bytes(m.payload[:4096])))
            self.cond.notify_all()

    def wait_answer(self, cid: str, timeout: float) -> Optional[float]:
        end = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for t, topic, p in self.msgs[seen:]:
                    if topic.startswith("edgeddns/b1/response/") and f'"id":"{cid}"'.encode() in p:
                        return t
                seen = len(self.msgs)
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def run_build(label: str, py: str, big_mb: int, flood: int) -> Dict[str, Any]:
    d = tempfile.mkdtemp(prefix="edgeddns-hostile-")
    broker = Mosquitto(os.path.join(d, "mosq")).start()
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(d=d, port=broker.port))
    os.chmod(cfg, 0o600)
    edge = os.path.join(os.path.dirname(py), "edgeddns")
    log = open(os.path.join(d, "agent.log"), "w")
    agent = subprocess.Popen([edge, "run", "-c", cfg], stdout=log, stderr=subprocess.STDOUT, cwd=d)
    ctl = Ctl(broker.port, "edgeddns/b1/response/#", "edgeddns/b1/result")  # not the commands themselves
    attacker = Ctl(broker.port, "nothing/here")
    out: Dict[str, Any] = {"build": label, "floor_kib": floor_kib(py)}
    try:
        for k in range(60):  # until the agent has connected and subscribed
            ctl.c.publish("edgeddns/b1/cmd/status", json.dumps({"id": f"warm{k}"}), qos=1).wait_for_publish(5)
            if ctl.wait_answer(f"warm{k}", 1.0) is not None:
                break
        else:
            raise RuntimeError("the agent did not answer: " + open(os.path.join(d, "agent.log")).read()[-2000:])
        time.sleep(1.0)
        out["start_kib"] = status_kib(agent.pid, "VmRSS")

        # -- one big message (QoS 1: once the broker acknowledged it, it holds all of it)
        payload = b'{"id":"big","pad":"' + b"x" * (big_mb << 20) + b'"}'
        attacker.c.publish("edgeddns/b1/cmd/status", payload, qos=1).wait_for_publish(120)
        del payload
        # Commands are handled in order: once this is answered, the big one was read (or never sent).
        ctl.c.publish("edgeddns/b1/cmd/status", json.dumps({"id": "after-big"}), qos=1).wait_for_publish(30)
        out["big_then_answers"] = ctl.wait_answer("after-big", 120) is not None
        out["big_peak_kib"] = status_kib(agent.pid, "VmHWM")
        time.sleep(5.0)
        out["big_after_kib"] = status_kib(agent.pid, "VmRSS")

        # -- a flood of updates, then one status
        with open(f"/proc/{agent.pid}/clear_refs", "w") as f:
            f.write("5")  # resets the peak (VmHWM) to the current RSS
        mark = len(ctl.msgs)
        t0 = time.monotonic()
        for i in range(flood):
            attacker.c.publish("edgeddns/b1/cmd/update", json.dumps({"id": f"f{i}"}), qos=0)
        # A QoS 1 message behind the flood: its PUBACK means the broker has all of the flood.
        attacker.c.publish("edgeddns/b1/cmd/update", json.dumps({"id": "f-last"}), qos=1).wait_for_publish(120)
        t_flood = time.monotonic() - t0
        t_status = time.monotonic()
        ctl.c.publish("edgeddns/b1/cmd/status", json.dumps({"id": "st-flood"}), qos=1)
        answered = ctl.wait_answer("st-flood", 180)
        out["flood"] = flood
        out["flood_publish_s"] = round(t_flood, 2)
        out["flood_status_answer_s"] = None if answered is None else round(answered - t_status, 2)
        with ctl.cond:
            out["flood_update_answers_before_status"] = sum(
                1 for t, topic, _ in ctl.msgs[mark:] if topic == "edgeddns/b1/response/update"
                and (answered is None or t <= answered))
        time.sleep(5.0)
        out["flood_peak_kib"] = status_kib(agent.pid, "VmHWM")
        out["flood_after_kib"] = status_kib(agent.pid, "VmRSS")
        with ctl.cond:
            results = [p for _, topic, p in ctl.msgs[mark:] if topic == "edgeddns/b1/result"]
        out["flood_result_bytes"] = sum(len(p) for p in results)
        out["agent_alive"] = agent.poll() is None
    finally:
        ctl.close()
        attacker.close()
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
        broker.stop()
        shutil.rmtree(d, ignore_errors=True)
    return out


def mb(kib: int) -> str:
    return f"{kib / 1024:.0f} MB"


def section(rows: List[Dict[str, Any]], args: argparse.Namespace) -> str:
    lines = ["## Hostile MQTT input (issue 11: oversized messages, command floods)", "",
             f"`bench/mqtt_hostile.py --big-mb {args.big_mb} --flood {args.flood}"
             + (f" --ref {args.ref}`" if args.ref else "`")
             + f", {time.strftime('%Y-%m-%d')}, regular installs in clean venvs, Mosquitto on loopback, "
               "the agent with the hosts provider over MQTT 5. Ratios are to `python -c pass` (peak RSS) "
               "from the same venv, measured in the same run.", "",
             "| build | start | one big message: peak | 5 s later | then answers | flood: peak | 5 s later "
             "| update answers before the status | status answered after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["floor_kib"]
        lines.append(
            f"| {r['build']} | {mb(r['start_kib'])} ({r['start_kib'] / f:.1f}x) "
            f"| {mb(r['big_peak_kib'])} ({r['big_peak_kib'] / f:.1f}x) | {mb(r['big_after_kib'])} "
            f"| {'yes' if r['big_then_answers'] else 'no'} "
            f"| {mb(r['flood_peak_kib'])} ({r['flood_peak_kib'] / f:.1f}x) | {mb(r['flood_after_kib'])} "
            f"| {r['flood_update_answers_before_status']} of {r['flood']} "
            f"| {r['flood_status_answer_s']} s |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", help="also measure this git revision (the 'before')")
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--flood", type=int, default=80000)
    args = ap.parse_args()
    builds = []
    if args.ref:
        builds.append((f"`{args.ref}` (before)", build_venv(".venv-mqtt-ref", checkout(args.ref))))
    builds.append(("this checkout", build_venv(".venv-mqtt", ROOT)))
    rows = [run_build(label, py, args.big_mb, args.flood) for label, py in builds]
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    with open(os.path.join(BENCH, "results", "mqtt_hostile.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(section(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
