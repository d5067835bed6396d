"""Soak with the real parts: a real ``edgeddns run``, a real Mosquitto restarted again and again.

    python3 bench/soak_broker.py [--seconds 120] [--seed 1]

The companion of ``bench/soak.py`` (which simulates a month through the
scheduler on an injected clock, but has no broker). Here, in wall-clock time:
the address behind a ``cmd:`` source changes every 1-3 s and a hotplug
``edgeddns trigger`` announces it; the broker (persistence on, so sessions
survive) is stopped every 8-15 s for 1-4 s; every 10 s a burst of MQTT
``update`` commands arrives. A controller with a persistent MQTT 5 session
records every result. Reported: changes made, changes whose ``updated``
result reached the controller, results lost, whether the last address won
(hosts file and the retained state), the agent's peak RSS, broker restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)

from tests.mosquitto import Mosquitto  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    rng = random.Random(args.seed)
    d = tempfile.mkdtemp(prefix="soak-broker-")
    b = Mosquitto(os.path.join(d, "mosq"), persistence=True).start()
    ipfile = os.path.join(d, "ip")
    with open(ipfile, "w") as f:
        f.write("10.1.0.1\n")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f"""[agent]
node_id = "soak"
state_dir = "{d}/state"
[clock]
mode = "system"
[ip]
ipv4 = ["cmd:cat {ipfile}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "a.lan"
provider = "lan"
allow_private = true
[[records]]
name = "b.lan"
provider = "lan"
allow_private = true
[mqtt]
host = "127.0.0.1"
port = {b.port}
discovery = false
""")
    os.chmod(cfg, 0o600)
    got: List[Dict[str, Any]] = []
    state: Dict[str, Any] = {}
    lock = threading.Lock()

    def on_message(c: Any, u: Any, m: Any) -> None:
        with lock:
            if m.topic.endswith("/result"):
                got.append(json.loads(m.payload))
            elif m.topic.endswith("/state") and m.payload:
                state.update(json.loads(m.payload))

    ctl = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-ctl", protocol=mqtt.MQTTv5)
    ctl.on_message = on_message
    ctl.on_connect = lambda c, u, f, rc, p: c.subscribe([("edgeddns/soak/result", 1), ("edgeddns/soak/state", 1)])
    ctl.reconnect_delay_set(0.2, 1.0)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    ctl.connect("127.0.0.1", b.port, clean_start=False, properties=props)
    ctl.loop_start()
    env = dict(os.environ, PYTHONPATH=ROOT)
    agent = subprocess.Popen([sys.executable, "-m", "edgeddns", "run", "-c", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(d, "agent.log"), "w"), env=env, cwd=ROOT)
    time.sleep(2.0)
    changes: List[str] = []
    restarts = floods = commands = 0
    end = time.monotonic() + args.seconds
    next_change = time.monotonic()
    next_outage = time.monotonic() + rng.uniform(8, 15)
    next_flood = time.monotonic() + 10
    up_at = None
    n = 1
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_change:
            n += 1
            addr = f"10.1.{n // 250}.{n % 250 + 1}"
            with open(ipfile + ".tmp", "w") as f:
                f.write(addr + "\n")
            os.rename(ipfile + ".tmp", ipfile)
            changes.append(addr)
            subprocess.run([sys.executable, "-m", "edgeddns", "trigger", "-c", cfg, "--iface", "wan", "--action",
                            "ifupdate"], env=env, cwd=ROOT, capture_output=True)
            next_change = now + rng.uniform(1, 3)
        if up_at is None and now >= next_outage:
            b.stop()
            restarts += 1
            up_at = now + rng.uniform(1, 4)
        if up_at is not None and now >= up_at:
            b.start()
            up_at = None
            next_outage = now + rng.uniform(8, 15)
        if now >= next_flood and up_at is None:
            floods += 1
            for i in range(100):
                ctl.publish("edgeddns/soak/cmd/update", json.dumps({"id": f"f{floods}-{i}", "records": ["a.lan"]}),
                            qos=1)
                commands += 1
            next_flood = now + 10
        time.sleep(0.05)
    if up_at is not None:
        b.start()
    last = changes[-1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            done = {r["record"] for r in got if r.get("ip") == last and r["status"] in ("updated", "unchanged")}
        if done >= {"a.lan", "b.lan"}:
            break
        time.sleep(0.2)
    time.sleep(2.0)
    with open(f"/proc/{agent.pid}/status") as f:
        rss = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])  # peak RSS, KiB
    agent.terminate()
    agent.wait(30)
    ctl.loop_stop()
    ctl.disconnect()
    b.stop()
    with lock:
        updated = {(r["record"], r["ip"]) for r in got if r["status"] == "updated"}
        seen = {(r["record"], r["ip"]) for r in got}
    # An address replaced before the agent's next check was never published: it is not a loss.
    published = sum(1 for a in changes if ("a.lan", a) in updated and ("b.lan", a) in updated)
    with open(os.path.join(d, "hosts")) as f:
        hosts = f.read()
    with open(os.path.join(d, "agent.log")) as f:
        log = f.read()
    rep = {
        "seconds": args.seconds, "changes": len(changes), "broker_restarts": restarts, "commands": commands,
        "changes_with_both_updated_results": published,
        "changes_never_checked (replaced within one run)": len(changes) - len({a for (_, a) in seen} & set(changes)),
        "results_received": len(got),
        "last_address_in_hosts": f"{last} a.lan" in hosts and f"{last} b.lan" in hosts,
        "last_address_in_retained_state": all(r.get("ip") == last for r in state.get("records", [])),
        "agent_exit": agent.returncode, "agent_peak_rss_kib": rss, "tracebacks": log.count("Traceback"),
    }
    print(json.dumps(rep, indent=1))
    return 0 if rep["last_address_in_hosts"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
