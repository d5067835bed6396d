"""How light edgeddns is on a router: every cheap path as a ratio to a bare interpreter.

    sudo python3 bench/light.py [--rounds 20] [--idle 15] [--peers]

Builds ``bench/.venv-light`` (a clean venv with a regular, non-editable
install of this checkout, so start-up is measured as users get it), enters a
loopback-only network namespace, then measures in interleaved rounds (every
path once per round, so a burst of load on a shared machine hits them alike):

- the floor: ``python -c pass`` from the same venv, and the import floor of a
  daemon that talks HTTPS and MQTT (``import ssl, paho.mqtt.client, requests``);
- ``edgeddns update`` finding nothing changed: hosts provider, and dyndns2 with
  a ``url:`` source (a plain-HTTP checkip page);
- ``edgeddns trigger`` to a running agent (the OpenWrt hotplug fallback);
- a one-shot Alidns update (HTTPS, signed) with sync evidence and without it
  (NTP unreachable): the saved per-boot offset should make the second cost
  about the same as the first;
- ``update`` with 10, 100 and 1,000 records, nothing changed;
- idle daemons: hosts; hosts + MQTT; dyndns2 + MQTT (RSS after start-up);
- with ``--peers`` (after ``bench/setup.sh``): inadyn ``--once``, ddclient and
  NewFuture/DDNS one-shots in the same rounds;
- with ``--baseline REF`` (a git commit): the no-change updates, ``trigger``
  and the idle daemons also from a second clean venv holding REF, in the same
  rounds, so a change is measured before/after under the same load.

Wall time is the median over rounds; memory is the child's peak RSS from GNU
time. Results go to ``bench/results/light.json`` and a Markdown section is
printed for BENCHMARKS.md. Benchmarks only: never part of the tests or CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)

from incumbents import (  # noqa: E402
    ALI_ID,
    ALI_SECRET,
    HOSTS,
    PASSWORD,
    USER,
    Addresses,
    Bench,
    Run,
    enter_netns,
    median,
    proc_status,
    tree_pids,
)

from tests.mosquitto import Mosquitto  # noqa: E402

VENV = os.path.join(BENCH, ".venv-light")
VENV_BASE = os.path.join(BENCH, ".venv-light-base")


def build_venv(venv: str = VENV, src: str = ROOT) -> str:
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", src], check=True)
    # The package itself is replaced every run, so the venv holds the checkout as it is now.
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", src], check=True)
    shutil.rmtree(os.path.join(src, "build"), ignore_errors=True)
    return py


def build_baseline(ref: str) -> str:
    """A second clean venv with the package as it was at git ``ref`` (exported, not checked out)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return build_venv(VENV_BASE, tmp)


class Light:
    def __init__(self, args: argparse.Namespace, py: str):
        self.args = args
        self.py = py
        self.edge = os.path.join(os.path.dirname(py), "edgeddns")
        base_py = os.environ.get("EDGEDDNS_LIGHT_BASE_PY")
        self.base_edge = os.path.join(os.path.dirname(base_py), "edgeddns") if base_py else None
        args.edge_bin, args.ddns_bin = self.edge, os.path.join(BENCH, ".venv-peers", "bin", "ddns")
        self.b = Bench(args)  # the fakes: dyndns2 + checkip (plain and TLS), Alidns over TLS
        self.work = self.b.work
        self.addr = Addresses()
        self.broker = Mosquitto(os.path.join(self.work, "mqtt")).start()

    def close(self) -> None:
        self.broker.stop()
        self.b.close()

    def conf(self, name: str, body: str) -> str:
        return self.b.write(name, body)

    def agent_table(self, name: str) -> str:
        return f'[agent]\nnode_id = "{name}"\nstate_dir = "{self.b.path(name + "-state", "")}"\n\n'

    def mqtt_table(self) -> str:
        return f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\ntls = false\n\n'

    def hosts_conf(self, name: str, records: int = 1, mqtt: bool = False) -> str:
        recs = "".join(f'[[records]]\nname = "h{i}.example.com"\nprovider = "lan"\n\n' for i in range(records))
        return self.conf(name + ".toml", self.agent_table(name) + (self.mqtt_table() if mqtt else "")
                         + '[ip]\nipv4 = ["static:93.184.216.34"]\n\n'
                         + f'[providers.lan]\ntype = "hosts"\npath = "{self.b.path(name + "-hosts")}"\n\n' + recs)

    def iface_conf(self, name: str) -> str:
        """The shipped config's source (interface:default), for a hosts record."""
        return self.conf(name + ".toml", self.agent_table(name) + '[ip]\nipv4 = ["interface:default"]\n\n'
                         + f'[providers.lan]\ntype = "hosts"\npath = "{self.b.path(name + "-hosts")}"\n\n'
                         + '[[records]]\nname = "h0.example.com"\nprovider = "lan"\n')

    def dyn_conf(self, name: str, mqtt: bool = False) -> str:
        return self.conf(name + ".toml", self.agent_table(name) + (self.mqtt_table() if mqtt else "")
                         + f'[ip]\nipv4 = ["url:{self.b.checkip}"]\n\n'
                         + f'[providers.p]\ntype = "dyndns2"\nendpoint = "{self.b.dyn.url}/nic/update"\n'
                         + f'username = "{USER}"\npassword = "{PASSWORD}"\n'
                         + f'\n[[records]]\nname = "{HOSTS["edgeddns"]}"\nprovider = "p"\n')

    def ali_conf(self, name: str) -> str:
        return self.conf(name + ".toml", self.agent_table(name)
                         + '[clock]\nmode = "auto"\nntp_servers = ["127.0.0.1:9"]\n\n'
                         + f'[ip]\nipv4 = ["url:{self.b.checkip}"]\n\n'
                         + f'[providers.ali]\ntype = "alidns"\naccess_key_id = "{ALI_ID}"\n'
                         + f'access_key_secret = "{ALI_SECRET}"\nendpoint = "{self.b.ali_srv.url}"\n'
                         + f'ca_file = "{self.b.ca_file}"\n\n'
                         + f'[[records]]\nname = "{HOSTS["edgeddns"]}"\nprovider = "ali"\n')


def env(**extra: str) -> Dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTHONPATH", None)
    e.update(extra)
    return e


def measure(argv: List[str], env: Dict[str, str], timeout: float = 60.0) -> Tuple[Run, float]:
    """incumbents.measure plus CPU time (user + system, ms) of the command.

    CPU time moves much less than wall time when other jobs share the machine.
    It comes from the rusage of GNU time (which adds its waited-for child's),
    exact to the microsecond, unlike GNU time's own 10 ms ``%U``/``%S``.
    """
    with tempfile.NamedTemporaryFile("r") as tf, tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-o", tf.name, "-f", "%M", *argv], stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL, env=env)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = (time.perf_counter() - t0) * 1000.0
        p.returncode = os.waitstatus_to_exitcode(status)
        lines = tf.read().strip().splitlines()
        out.seek(0)
        text = out.read()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
    return Run(p.returncode, wall, rss, text[-4000:]), (usage.ru_utime + usage.ru_stime) * 1000.0


def start_agent(lt: Light, cfg: str, edge: str = "") -> subprocess.Popen:
    p = subprocess.Popen([edge or lt.edge, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=env())
    sock = os.path.join(os.path.dirname(cfg), os.path.basename(cfg)[:-5] + "-state", "control.sock")
    end = time.monotonic() + 15
    while not os.path.exists(sock) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # the first check and, with MQTT, the connection and discovery
    return p


def stop_agent(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def sync_marker(state_dir: str) -> None:
    """The busybox-ntpd hotplug marker: sync evidence for this boot."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "ntpd.sync"), "w") as f:
        f.write(f"sync=1\naction=stratum\nstratum=2\nboot_id={boot}\n")  # what the OpenWrt ntp hook writes


def wan_link() -> None:
    """A WAN device with a public address and the default route, in the bench's own namespace."""
    for cmd in (["link", "add", "wan0", "type", "veth", "peer", "name", "wan0p"], ["link", "set", "wan0p", "up"],
                ["link", "set", "wan0", "up"], ["addr", "add", "81.2.69.160/24", "dev", "wan0"],
                ["route", "add", "default", "dev", "wan0"]):
        subprocess.run(["ip", *cmd], check=True, capture_output=True)


def oneshots(lt: Light, rounds: int, peers: bool) -> Dict[str, dict]:
    wan_link()
    iface = lt.iface_conf("iface")
    hosts = lt.hosts_conf("hosts")
    dyn = lt.dyn_conf("dyn")
    ali_sync = lt.ali_conf("ali-sync")
    ali_nosync = lt.ali_conf("ali-nosync")
    sync_marker(lt.b.path("ali-sync-state", ""))
    scale = {n: lt.hosts_conf(f"scale{n}", records=n) for n in (10, 100, 1000)}
    agent_cfg = lt.hosts_conf("agent")
    no_evidence = env(EDGEDDNS_IGNORE_SYNC_EVIDENCE="1")
    paths: Dict[str, Callable[[], tuple]] = {
        "floor: python -c pass": lambda: ([lt.py, "-c", "pass"], env()),
        "floor: import ssl, paho, requests": lambda: (
            [lt.py, "-c", "import ssl, paho.mqtt.client, requests"], env()),
        "update, nothing changed, hosts": lambda: ([lt.edge, "update", "-c", hosts], env()),
        "update, nothing changed, dyndns2 + url:": lambda: ([lt.edge, "update", "-c", dyn], env()),
        # The whole update, as a run the memo cannot answer does it (--standalone is never memoised
        # and, with no agent on these state dirs, changes nothing else).
        "update, nothing changed, hosts, whole update": lambda: (
            [lt.edge, "update", "--standalone", "-c", hosts], env()),
        "update, nothing changed, dyndns2 + url:, whole update": lambda: (
            [lt.edge, "update", "--standalone", "-c", dyn], env()),
        "update, nothing changed, interface:default (the shipped config's source)": lambda: (
            [lt.edge, "update", "-c", iface], env()),
        "update, nothing changed, interface:default, whole update": lambda: (
            [lt.edge, "update", "--standalone", "-c", iface], env()),
        "trigger to a running agent": lambda: (
            [lt.edge, "trigger", "-c", agent_cfg, "--iface", "wan", "--action", "ifup"], env()),
        # The same through the OpenWrt package's /usr/bin/edgeddns, run by the venv's python: since
        # pyproject's script-files the venv's bin/edgeddns is that file too (pip's generated console-script
        # wrapper imported re before edgeddns ran; the "import re" floor row shows what that cost).
        "trigger, OpenWrt wrapper": lambda: (
            [lt.py, os.path.join(ROOT, "openwrt", "files", "usr", "bin", "edgeddns"), "trigger", "-c", agent_cfg,
             "--iface", "wan", "--action", "ifup"], env()),
        "floor: import re (pip's wrapper does)": lambda: ([lt.py, "-c", "import re"], env()),
        # What a no-change update cannot do without: the TOML parser, dataclasses (the founders' choice
        # for the config model) and typing (both of which tomllib and dataclasses pull in), json (the
        # state file), ipaddress (address checks) and re (the wrapper).
        "floor: the standard modules a no-change update needs": lambda: (
            [lt.py, "-c", "import re, typing, dataclasses, json, ipaddress\ntry:\n import tomllib\n"
             "except ImportError:\n import tomli"], env()),
        # What every idle daemon holds before any edgeddns code: the above plus logging (the daemon logs)
        # and threading; and paho's own import (ssl, urllib.request, email, hashlib at its module level).
        "floor: the standard modules an idle daemon holds": lambda: (
            [lt.py, "-c", "import re, typing, dataclasses, json, ipaddress, logging, threading\ntry:\n import tomllib\n"
             "except ImportError:\n import tomli"], env()),
        "floor: import paho.mqtt.client": lambda: ([lt.py, "-c", "import paho.mqtt.client"], env()),
        "one-shot alidns update, sync evidence": lambda: (
            [lt.edge, "update", "-c", ali_sync, "--force"], env()),
        "one-shot alidns update, no evidence, NTP unreachable": lambda: (
            [lt.edge, "update", "-c", ali_nosync, "--force"], no_evidence),
    }
    for n, cfg in scale.items():
        paths[f"update, nothing changed, {n} records"] = (lambda c=cfg: ([lt.edge, "update", "-c", c], env()))
        paths[f"update, nothing changed, {n} records, whole update"] = (
            lambda c=cfg: ([lt.edge, "update", "--standalone", "-c", c], env()))
    if lt.base_edge:  # the same paths from the baseline install (own configs: own state dirs)
        base, bhosts, bdyn = lt.base_edge, lt.hosts_conf("base-hosts"), lt.dyn_conf("base-dyn")
        paths["baseline: update, nothing changed, hosts"] = lambda: ([base, "update", "-c", bhosts], env())
        paths["baseline: update, nothing changed, dyndns2 + url:"] = lambda: ([base, "update", "-c", bdyn], env())
        paths["baseline: trigger to a running agent"] = lambda: (
            [base, "trigger", "-c", agent_cfg, "--iface", "wan", "--action", "ifup"], env())
    if peers:
        b = lt.b
        iconf = b.inadyn_conf("inadyn-once.conf", period=None)
        dconf = b.ddclient_conf("ddclient-once.conf", oneshot=True)
        paths["peer: inadyn --once (nothing changed)"] = lambda: (
            b.inadyn_once(iconf, b.path("inadyn-cache", "")), env())
        paths["peer: ddclient (nothing changed)"] = lambda: (
            b.ddclient_argv(dconf, b.path("ddclient.cache"), 0), env())
        paths["peer: NewFuture/DDNS (nothing changed)"] = lambda: (b.ddns_argv(b.path("ddns.cache")), env())
    lt.b.dyn.set_wan(lt.addr())
    time.sleep(2.1)  # a memo is written only for config files unchanged for 2 s (edgeddns.quickcheck)
    agent = start_agent(lt, agent_cfg)
    runs: Dict[str, list] = {k: [] for k in paths}
    try:
        for i in range(rounds + 1):  # round 0 publishes, fills caches and warms the page cache
            for key, make in paths.items():
                argv, e = make()
                r, cpu = measure(argv, e)
                if i == 0:
                    if r.rc != 0:
                        print(f"warning: {key} exited {r.rc}: {r.output[-400:]}", flush=True)
                    continue
                runs[key].append((r, cpu))
    finally:
        stop_agent(agent)
    out = {}
    for key, rcs in runs.items():
        rs = [r for r, _ in rcs]
        out[key] = {"wall_ms": median([r.wall_ms for r in rs]), "rss_kb": median([r.rss_kb for r in rs]),
                    "cpu_ms": median([c for _, c in rcs]), "ok": sum(r.rc == 0 for r in rs), "runs": len(rs),
                    "command": " ".join(paths[key]()[0])}
        print(f"{key}: {out[key]['wall_ms']:.1f} ms, cpu {out[key]['cpu_ms']:.1f} ms, "
              f"{out[key]['rss_kb'] / 1024:.1f} MiB "
              f"({out[key]['ok']}/{len(rs)} ok)", flush=True)
    return out


def idle(lt: Light, seconds: float) -> Dict[str, dict]:
    confs = {"idle daemon, hosts": lt.hosts_conf("idle-hosts"),
             "idle daemon, hosts + MQTT": lt.hosts_conf("idle-hosts-mqtt", mqtt=True),
             "idle daemon, dyndns2 + MQTT": lt.dyn_conf("idle-dyn-mqtt", mqtt=True)}
    runs = [(key, cfg, lt.edge) for key, cfg in confs.items()]
    if lt.base_edge:
        runs += [("baseline: " + key, lt.hosts_conf("base-" + name, mqtt="MQTT" in key) if "hosts" in key
                  else lt.dyn_conf("base-" + name, mqtt=True), lt.base_edge)
                 for key, name in zip(confs, ("idle-hosts", "idle-hosts-mqtt", "idle-dyn-mqtt"))]
    lt.b.dyn.set_wan(lt.addr())
    out = {}
    for key, cfg, edge in runs:  # one at a time: each alone on the machine
        p = start_agent(lt, cfg, edge)
        try:
            time.sleep(seconds)
            pids = tree_pids(p.pid)
            out[key] = {"rss_kb": sum(proc_status(x, "VmRSS") for x in pids),
                        "hwm_kb": max(proc_status(x, "VmHWM") for x in pids), "alive": p.poll() is None,
                        "command": f"{edge} run -c {os.path.basename(cfg)}"}
        finally:
            stop_agent(p)
        print(f"{key}: {out[key]['rss_kb'] / 1024:.1f} MiB", flush=True)
    return out


def render(rep: dict) -> str:
    one, idl = rep["oneshot"], rep["idle"]
    floor = one["floor: python -c pass"]
    ifloor = one["floor: import ssl, paho, requests"]
    lines = [f"Measured {rep['date']} on {rep['machine']}; {rep['rounds']} interleaved rounds, medians; "
             f"regular install in a clean venv ({rep['python']}), loopback-only network namespace."
             + (f" Rows marked baseline: the install of {rep['baseline']}, in the same rounds."
                if rep.get("baseline") else ""),
             "", "| path | wall | × floor | CPU (user+sys) | × floor | peak RSS | over floor |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for key, v in one.items():
        cpu = (f"{v['cpu_ms']:.1f} ms | {v['cpu_ms'] / floor['cpu_ms']:.2f}×" if "cpu_ms" in v and floor.get("cpu_ms")
               else "– | –")
        lines.append(f"| {key} | {v['wall_ms']:.1f} ms | {v['wall_ms'] / floor['wall_ms']:.2f}× | {cpu} | "
                     f"{v['rss_kb'] / 1024:.1f} MiB | {(v['rss_kb'] - floor['rss_kb']) / 1024:+.1f} MiB |")
    lines += ["", "| idle daemon | RSS | over `python -c pass` | over the ssl+paho+requests import floor |",
              "|---|---:|---:|---:|"]
    for key, v in idl.items():
        lines.append(f"| {key} | {v['rss_kb'] / 1024:.1f} MiB | {(v['rss_kb'] - floor['rss_kb']) / 1024:+.1f} MiB | "
                     f"{(v['rss_kb'] - ifloor['rss_kb']) / 1024:+.1f} MiB |")
    s, n = one.get("one-shot alidns update, sync evidence"), one.get("one-shot alidns update, no evidence, "
                                                                    "NTP unreachable")
    if s and n:
        lines += ["", f"One-shot without sync evidence / with: {n['wall_ms'] / s['wall_ms']:.2f}×."]
    for how in ("", ", whole update"):
        r10, r1000 = (one.get(f"update, nothing changed, {n} records{how}") for n in (10, 1000))
        if r10 and r1000:
            lines.append(f"Per record (10 → 1,000, nothing changed{how or ', answered from the memo'}): "
                         f"{max((r1000['wall_ms'] - r10['wall_ms']) / 990, 0.0):.3f} ms and "
                         f"{(r1000['rss_kb'] - r10['rss_kb']) / 990:.2f} KiB.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--idle", type=float, default=15.0, help="seconds each idle daemon runs before it is read")
    ap.add_argument("--peers", action="store_true", help="inadyn, ddclient and DDNS too (bench/setup.sh first)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "light.json"))
    ap.add_argument("--render", metavar="JSON", help="print the Markdown for a results file and exit")
    ap.add_argument("--baseline", metavar="REF", help="also measure this git commit's install (before/after)")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    if os.environ.get("EDGEDDNS_BENCH_NETNS") != "1":
        py = build_venv()  # needs the package index: before the namespace cuts the network
        os.environ["EDGEDDNS_LIGHT_PY"] = py
        if args.baseline:
            os.environ["EDGEDDNS_LIGHT_BASE_PY"] = build_baseline(args.baseline)
    enter_netns()
    py = os.environ["EDGEDDNS_LIGHT_PY"]
    lt = Light(args, py)
    try:
        rep = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": args.rounds,
               "machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
               "python": subprocess.run([py, "--version"], capture_output=True, text=True).stdout.strip(),
               "baseline": args.baseline,
               "oneshot": oneshots(lt, args.rounds, args.peers), "idle": idle(lt, args.idle)}
    finally:
        lt.close()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rep, f, indent=1)
    print(render(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
