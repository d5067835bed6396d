"""Benchmark (not a test): the cost of ``edgeddns trigger`` and event-to-update latency.

    python bench/trigger.py [--runs 30] [--no-netns]

Measures, on this machine:
  1. ``edgeddns trigger`` against a running agent: wall time (median, p90),
     peak RSS, and the modules it imports beyond a bare interpreter; the same
     for ``python -c pass`` as the baseline.
  2. Hotplug: from the start of the OpenWrt hotplug script (busybox ash, as
     hotplug-call runs it) to the new address landing in the hosts file the
     agent writes.
  3. Netlink (root, in a network namespace): from ``ip addr add`` returning to
     the new address landing in the hosts file.
Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOTPLUG = os.path.join(ROOT, "openwrt/files/etc/hotplug.d/iface/95-edgeddns")

CFG = """
[agent]
node_id = "bench"
state_dir = "{d}/state"
[ip]
ipv4 = [{src}]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.example.com"
provider = "lan"
allow_private = true
"""


def run_hotplug(d: str, cfg: str) -> None:
    """The hotplug script as OpenWrt's hotplug-call runs it: sourced by busybox ash, netifd's env.

    ``edgeddns`` on its PATH is this checkout; ``logger`` swallows the log line.
    """
    bindir = os.path.join(d, "bin")
    if not os.path.isdir(bindir):
        os.makedirs(bindir)
        with open(os.path.join(bindir, "edgeddns"), "w") as f:
            f.write(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m edgeddns \"$@\"\n")
        with open(os.path.join(bindir, "logger"), "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\n")
        for n in ("edgeddns", "logger"):
            os.chmod(os.path.join(bindir, n), 0o755)
    # The script looks for the agent (control.sock, ubus.pid) in the state dir hotplug.conf names:
    # every config here keeps it in {d}/state.
    hp_env = {"PATH": f"{bindir}:/usr/bin:/bin", "ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1",
              "EDGEDDNS_BIN": "edgeddns", "EDGEDDNS_CONF": cfg, "EDGEDDNS_HOTPLUG_CONF": "/nonexistent",
              "EDGEDDNS_STATE_DIR": os.path.join(d, "state")}
    subprocess.run(["busybox", "ash", "-c", 'for s in "$@"; do ( . "$s" ); done', "hotplug-call", HOTPLUG],
                   env=hp_env, stdin=subprocess.DEVNULL, check=True)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    return e


def q(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def fmt_ms(values) -> str:
    return (f"median {statistics.median(values) * 1000:.1f} ms, p90 {q(values, 0.9) * 1000:.1f} ms, "
            f"max {max(values) * 1000:.1f} ms")


def wait_file(path, text, timeout=10.0, step=0.0005) -> float:
    t0 = time.monotonic()
    end = t0 + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                if text in f.read():
                    return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(step)
    raise TimeoutError(f"{text!r} never appeared in {path}")


def start_agent(cfg, prefix=()):
    p = subprocess.Popen([*prefix, sys.executable, "-m", "edgeddns", "run", "-c", cfg], env=env(), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = os.path.join(os.path.dirname(cfg), "state", "control.sock")
    end = time.monotonic() + 15
    while not os.path.exists(sock):
        if time.monotonic() > end or p.poll() is not None:
            raise RuntimeError("agent did not start")
        time.sleep(0.01)
    time.sleep(0.3)
    return p


def stop(p):
    p.terminate()
    p.wait(20)


def timed_rss(argv) -> tuple:
    """Wall seconds and peak RSS (KiB) of one child, via /usr/bin/time -f %M."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env(), cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    return wall, int(r.stderr.strip().splitlines()[-1]), r


def modules(cli_args=None) -> list:
    """sys.modules after a bare start, or after running the CLI in-process.

    (``-X importtime`` misses modules loaded through importlib.import_module,
    which is how the CLI loads its command modules.)
    """
    code = "import sys\n"
    if cli_args is not None:
        code += f"from edgeddns.cli import main\nmain({cli_args!r})\n"
    code += "print(' '.join(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], env=env(), cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip().splitlines()[-1].split()


def bench_trigger(d, runs):
    with open(os.path.join(d, "wan-ip"), "w") as f:
        f.write("10.0.0.1\n")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(CFG.format(d=d, src=f'"cmd:cat {d}/wan-ip"'))
    p = start_agent(cfg)
    try:
        base = [timed_rss([sys.executable, "-c", "pass"]) for _ in range(runs)]
        trig = [timed_rss([sys.executable, "-m", "edgeddns", "trigger", "-c", cfg, "--iface", "wan",
                           "--action", "ifup"]) for _ in range(runs)]
        assert all(r[2].returncode == 0 for r in trig), trig[0][2].stderr
        bare_mods = set(modules())
        trig_mods = modules(["trigger", "-c", cfg])
        extra = sorted({m for m in trig_mods if m not in bare_mods})
        # Hotplug script -> hosts file.
        landed, returned = [], []
        for i in range(runs):
            ip = f"10.0.1.{i + 2}"
            with open(os.path.join(d, "wan-ip"), "w") as f:
                f.write(ip + "\n")
            t0 = time.monotonic()
            run_hotplug(d, cfg)
            returned.append(time.monotonic() - t0)
            landed.append(wait_file(os.path.join(d, "hosts"), f"{ip} home.example.com") - t0)
            time.sleep(0.05)
    finally:
        stop(p)
    return base, trig, extra, returned, landed


def _ip(ns, *args):
    subprocess.run(["ip", "netns", "exec", ns, "ip", *args], check=True, capture_output=True)


def bench_netlink(d, runs):
    ns = f"edgeddns-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        _ip(ns, "link", "set", "lo", "up")
        _ip(ns, "link", "add", "wan0", "type", "veth", "peer", "name", "peer0")
        _ip(ns, "link", "set", "wan0", "up")
        _ip(ns, "link", "set", "peer0", "up")
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(CFG.format(d=d, src='"interface:wan0"'))
        _ip(ns, "addr", "add", "81.2.69.1/24", "dev", "wan0")
        p = start_agent(cfg, prefix=("ip", "netns", "exec", ns))
        lat, ip_cmd = [], []
        try:
            wait_file(os.path.join(d, "hosts"), "81.2.69.1 home.example.com")
            old = "81.2.69.1/24"
            for i in range(runs):
                # The old address goes first (that check finds nothing to publish), then
                # the new one arrives: the timed path is "address added -> record".
                _ip(ns, "addr", "del", old, "dev", "wan0")
                time.sleep(0.1)
                new = f"81.2.{70 + i}.1/24"
                t0 = time.monotonic()
                _ip(ns, "addr", "add", new, "dev", "wan0")
                ip_cmd.append(time.monotonic() - t0)
                lat.append(wait_file(os.path.join(d, "hosts"), f"{new.split('/')[0]} home.example.com") - t0)
                old = new
                time.sleep(0.05)
        finally:
            stop(p)
        return lat, ip_cmd
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--no-netns", action="store_true")
    a = ap.parse_args()
    if not shutil.which("busybox"):
        sys.exit("needs busybox")
    with tempfile.TemporaryDirectory() as d:
        base, trig, extra, returned, landed = bench_trigger(d, a.runs)
    lat = None
    if not a.no_netns and os.geteuid() == 0:
        with tempfile.TemporaryDirectory() as d:
            lat = bench_netlink(d, a.runs)
    print("## OpenWrt paths\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Python {platform.python_version()}; {a.runs} runs each; `python bench/trigger.py`.\n")
    print("| what | wall time | peak RSS |")
    print("|---|---|---|")
    print(f"| `python -c pass` (baseline) | {fmt_ms([b[0] for b in base])} | "
          f"{statistics.median(b[1] for b in base) / 1024:.1f} MiB |")
    print(f"| `edgeddns trigger` (agent running) | {fmt_ms([t[0] for t in trig])} | "
          f"{statistics.median(t[1] for t in trig) / 1024:.1f} MiB |")
    print(f"\nModules `edgeddns trigger` imports beyond the bare interpreter ({len(extra)}): "
          + ", ".join(f"`{m}`" for m in extra) + "\n")
    print("| latency | figures |")
    print("|---|---|")
    print(f"| hotplug script (busybox ash) start -> script returns | {fmt_ms(returned)} |")
    print(f"| hotplug script start -> record in the hosts file | {fmt_ms(landed)} |")
    if lat:
        print(f"| netlink: `ip netns exec .. ip addr add` start -> record in the hosts file | {fmt_ms(lat[0])} |")
        print(f"| (of which the `ip netns exec .. ip addr add` command itself) | {fmt_ms(lat[1])} |")


if __name__ == "__main__":
    main()
