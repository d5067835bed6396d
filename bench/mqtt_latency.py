"""Benchmark (not a test): the MQTT agent on loopback with the fake Alidns provider.

Measures, against a real Mosquitto and ``edgeddns run`` as a separate process:
  * latency from an ``update`` command to its ``result`` message (median, p99)
    - "change": every command carries a new public address (accept_ip), so each
      one is a real update at the fake provider (a query and a write over HTTPS)
    - "check": a plain trigger where nothing changed (no provider call)
  * the daemon's resident memory after start and after 1,000 updates
  * its CPU time while idle for 60 s (from /proc/<pid>/stat)
  * "hotplug": from the start of the OpenWrt hotplug script (busybox ash, as
    hotplug-call runs it, with netifd's environment) to the result message on
    MQTT, the WAN address read by the agent's own ``cmd:`` source

Run from the repository root: ``python bench/mqtt_latency.py [--idle 60] [-n 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.trigger import run_hotplug  # noqa: E402
from tests.conftest import ALI_ID, ALI_SECRET  # noqa: E402
from tests.fakes.alidns import FakeAlidns  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Controller:
    def __init__(self, port: int, node: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.node = node
        self.results: dict = {}
        self.cond = threading.Condition()
        ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(f"edgeddns/{node}/result", qos=1)
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        import socket

        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        ready.wait(10)

    def _on_message(self, c, u, m):
        now = time.perf_counter()
        d = json.loads(m.payload)
        with self.cond:
            for cid in {d.get("id"), *d.get("ids", [])}:
                if cid is not None:
                    self.results.setdefault(cid, (now, d))
            if d.get("trigger") == "hotplug":
                self.results.setdefault(("hotplug", d.get("ip")), (now, d))
            self.cond.notify_all()

    def wait_hotplug(self, ip: str, start: float, timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: ("hotplug", ip) in self.results, timeout):
                raise RuntimeError(f"no hotplug result for {ip}")
            return self.results[("hotplug", ip)][0] - start

    def roundtrip(self, cid: str, payload: dict, timeout: float = 30.0) -> float:
        start = time.perf_counter()
        self.c.publish(f"edgeddns/{self.node}/cmd/update", json.dumps({"id": cid, **payload}), qos=1)
        with self.cond:
            if not self.cond.wait_for(lambda: cid in self.results, timeout):
                raise RuntimeError(f"no result for {cid}")
            return self.results[cid][0] - start


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200, help="commands per latency series")
    ap.add_argument("--updates", type=int, default=1000, help="updates before the second memory reading")
    ap.add_argument("--no-broker-nodelay", dest="nodelay", action="store_false",
                    help="leave Mosquitto's set_tcp_nodelay at its default (off)")
    ap.add_argument("--fake-nagle", dest="fake_nodelay", action="store_false",
                    help="leave Nagle's algorithm on in the fake provider's HTTP server")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle for the CPU reading")
    ap.add_argument("--hotplug", type=int, default=50, help="runs of the hotplug series (needs busybox)")
    args = ap.parse_args()

    import trustme

    tmp = tempfile.mkdtemp(prefix="edgeddns-bench-")
    ca = trustme.CA()
    ca_file = os.path.join(tmp, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    fake = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com"])
    srv = FakeServer(fake, ssl_context=ctx).start()
    if args.fake_nodelay:
        # http.server writes headers and body separately; with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms). A real provider's front end does not behave like that.
        srv.httpd.RequestHandlerClass.disable_nagle_algorithm = True
    broker = Mosquitto(os.path.join(tmp, "mosq"), extra=["set_tcp_nodelay true"] if args.nodelay else []).start()
    cfg = os.path.join(tmp, "config.toml")
    with open(cfg, "w") as f:
        f.write(f"""
[agent]
node_id = "bench"
state_dir = "{tmp}/state"
log_level = "warning"
[ip]
ipv4 = ["cmd:cat {tmp}/wan-ip"]
[providers.ali]
type = "alidns"
access_key_id = "{ALI_ID}"
access_key_secret = "{ALI_SECRET}"
endpoint = "{srv.url}"
ca_file = "{ca_file}"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
accept_ip = true
[[records]]
name = "home.example.com"
provider = "ali"
""")
    os.chmod(cfg, 0o600)
    with open(os.path.join(tmp, "wan-ip"), "w") as f:
        f.write("8.8.8.8\n")
    ctl = Controller(broker.port, "bench")
    env = dict(os.environ, PYTHONPATH=ROOT)
    agent = subprocess.Popen([sys.executable, "-m", "edgeddns", "run", "-c", cfg], env=env, cwd=ROOT)
    out = {}
    try:
        time.sleep(1.0)  # the startup update and the first publishes
        out["rss_start_kib"] = rss_kib(agent.pid)

        def addr(i: int) -> str:
            return f"45.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}"

        change = [ctl.roundtrip(f"c{i}", {"ipv4": addr(i + 1)}) for i in range(args.n)]
        force = [ctl.roundtrip(f"f{i}", {"force": True}) for i in range(args.n)]
        check = [ctl.roundtrip(f"k{i}", {}) for i in range(args.n)]
        done = args.n
        for i in range(args.n, args.updates):
            ctl.roundtrip(f"c{i}", {"ipv4": addr(i + 1)})
            done += 1
        time.sleep(0.5)
        if args.hotplug and shutil.which("busybox"):
            hotplug = []
            for i in range(args.hotplug):
                ip = addr(100000 + i)
                with open(os.path.join(tmp, "wan-ip"), "w") as f:
                    f.write(ip + "\n")
                start = time.perf_counter()
                run_hotplug(tmp, cfg)
                hotplug.append(ctl.wait_hotplug(ip, start))
                time.sleep(0.05)
            out["hotplug_runs"] = len(hotplug)
            out["hotplug_median_ms"] = round(statistics.median(hotplug) * 1000, 2)
            out["hotplug_p99_ms"] = round(pct(hotplug, 99) * 1000, 2)
            out["hotplug_max_ms"] = round(max(hotplug) * 1000, 2)
        out["updates"] = done
        out["provider_writes"] = fake.writes
        out["rss_after_kib"] = rss_kib(agent.pid)
        durations = [ctl.results[f"c{i}"][1]["duration_ms"] for i in range(args.n)]
        out["change_engine_median_ms"] = round(statistics.median(durations), 2)
        for name, series in (("change", change), ("force", force), ("check", check)):
            out[f"{name}_median_ms"] = round(statistics.median(series) * 1000, 2)
            out[f"{name}_p99_ms"] = round(pct(series, 99) * 1000, 2)
            out[f"{name}_max_ms"] = round(max(series) * 1000, 2)
        time.sleep(2.0)
        c0 = cpu_seconds(agent.pid)
        time.sleep(args.idle)
        out["idle_seconds"] = args.idle
        out["idle_cpu_s"] = round(cpu_seconds(agent.pid) - c0, 3)
    finally:
        agent.terminate()
        agent.wait(20)
        broker.stop()
        srv.stop()
    out["broker_tcp_nodelay"] = args.nodelay
    out["fake_provider_nodelay"] = args.fake_nodelay
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
