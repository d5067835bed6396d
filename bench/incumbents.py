"""edgeddns side by side with inadyn, ddclient and NewFuture/DDNS, in one run.

Run ``sudo bench/setup.sh`` once, then::

    sudo bench/.venv-peers/bin/python bench/incumbents.py [--runs 10] [--samples 10] [--idle 60]

It re-executes itself in a new network namespace (``unshare -n``; ``-rn`` when
not root) holding only a loopback interface, so no tool can reach anything but
the fakes on 127.0.0.1, whatever it tries. Fakes: ``bench/fake_dyndns2.py``
(dyndns2 + checkip) for inadyn, ddclient and edgeddns's dyndns2 provider;
the tests' fake Alidns (``bench/fake_alidns_v3.py`` adds the V3 signature
DDNS 4.x uses) over HTTPS with a trustme CA for DDNS and edgeddns's alidns
provider. Every tool learns the WAN address from the same plain-HTTP checkip
page, so all do the same work: one address lookup, then the provider calls.

A full run takes about 13 minutes, most of it ddclient's 60 s minimum poll
period in the latency phase; ``--phases oneshot,calls,clock`` takes about one
minute and keeps the other phases' figures from the previous results file.
``--render bench/results/incumbents.json`` prints the BENCHMARKS.md section.

Phases (results as JSON in ``bench/results/incumbents.json`` and as Markdown
on stdout): one-shot updates, provider calls per check, the clock skewed,
daemon latency at the shortest poll interval, and idle daemons. Benchmarks
only: never part of the test suite or CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)

from fake_alidns_v3 import FakeAlidnsV3  # noqa: E402
from fake_dyndns2 import FakeDyndns2  # noqa: E402

from tests.fakes.server import FakeServer  # noqa: E402

USER, PASSWORD = "bench", "bench-pass-0123"
ALI_ID, ALI_SECRET = "LTAIbenchKey", "bench-ali-secret-0123456789"
HOSTS = {"inadyn": "inadyn.example.com", "ddclient": "ddclient.example.com", "edgeddns": "edge.example.com",
         "ddns": "ddns.example.com"}
SKEWS = {"right": None, "3 h behind": "-3h", "2 y ahead": "+2y"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    rc: int
    wall_ms: float
    rss_kb: int
    output: str


@dataclass
class Report:
    machine: Dict[str, str] = field(default_factory=dict)
    versions: Dict[str, str] = field(default_factory=dict)
    commands: Dict[str, str] = field(default_factory=dict)
    oneshot: Dict[str, dict] = field(default_factory=dict)
    calls: Dict[str, dict] = field(default_factory=dict)
    clock: Dict[str, dict] = field(default_factory=dict)
    latency: Dict[str, dict] = field(default_factory=dict)
    idle: Dict[str, dict] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


# -- plumbing -------------------------------------------------------------
def enter_netns() -> None:
    """Re-exec inside a fresh network namespace with only ``lo`` up."""
    if os.environ.get("EDGEDDNS_BENCH_NETNS") == "1":
        return
    os.environ["EDGEDDNS_BENCH_NETNS"] = "1"
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    # The script that was started (light.py and fleet.py use this too), not this module's file.
    os.execvp(unshare[0], unshare + ["sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable,
                                     os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def measure(argv: List[str], env: Optional[Dict[str, str]] = None, timeout: float = 60.0) -> Run:
    """Run once; wall time here, peak RSS from GNU time.

    ``os.wait4`` would report the *parent's* RSS too: Linux carries the high
    water mark of the address space a child had before ``exec`` (a copy of
    this Python), so the small C program ``/usr/bin/time`` does the fork.
    """
    with tempfile.NamedTemporaryFile("r") as tf, tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-o", tf.name, "-f", "%M", *argv], stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL, env=env)
        # Not p.wait(timeout): with a timeout it polls with sleeps of up to 50 ms, which
        # quantises every measurement; a blocking waitpid plus a kill timer does not.
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            rc = p.wait()
        finally:
            timer.cancel()
        wall = (time.perf_counter() - t0) * 1000.0
        lines = tf.read().strip().splitlines()
        out.seek(0)
        text = out.read()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
    return Run(rc, wall, rss, text[-4000:])


def skewed(argv: List[str], skew: Optional[str]) -> List[str]:
    return argv if skew is None else ["faketime", "-f", skew, *argv]


def skew_env(skew: Optional[str]) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if skew is not None:
        # Python's time.monotonic() must stay real: libfaketime 0.9.10 otherwise breaks its sleeps.
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return env


def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def tree_pids(pid: int) -> List[int]:
    """``pid`` and its descendants (ddclient and inadyn may fork helpers)."""
    out, todo = [], [pid]
    while todo and len(out) < 64:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


class Addresses:
    """A fresh public-looking IPv4 address on every call (never sent anywhere but the fakes)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"93.184.{self.n // 250 % 250}.{self.n % 250 + 1}"


# -- tool configurations --------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace):
        import trustme

        self.args = args
        self.work = tempfile.mkdtemp(prefix="edgeddns-bench-")
        self.edge = args.edge_bin
        self.ddns = args.ddns_bin
        self.addr = Addresses()
        ca = trustme.CA()
        self.ca_file = os.path.join(self.work, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        # A realistic leaf: issued 30 days ago, valid 90 days (as public ACME CAs issue),
        # so a clock 2 years ahead meets an expired certificate, as it would in the field.
        now = datetime.datetime.now(datetime.timezone.utc)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost", not_before=now - datetime.timedelta(days=30),
                      not_after=now + datetime.timedelta(days=60)).configure_cert(ctx)
        self.dyn = FakeDyndns2(USER, PASSWORD, set(HOSTS.values())).start()  # plain: updates + checkip
        self.dyn_tls = FakeDyndns2(USER, PASSWORD, set(HOSTS.values()), ssl_context=ctx).start()
        self.ali = FakeAlidnsV3({ALI_ID: ALI_SECRET}, ["example.com"])
        self.ali_srv = FakeServer(self.ali, ssl_context=ctx)
        # As in fake_dyndns2: without TCP_NODELAY a keep-alive client (edgeddns's requests session)
        # pays a ~40 ms delayed-ACK stall per request, which real API servers do not impose.
        self.ali_srv.httpd.RequestHandlerClass.disable_nagle_algorithm = True
        self.ali_srv.start()
        self.checkip = f"{self.dyn.url}/checkip"

    def close(self) -> None:
        for s in (self.dyn, self.dyn_tls):
            s.stop()
        self.ali_srv.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def path(self, *parts: str) -> str:
        p = os.path.join(self.work, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def write(self, name: str, text: str) -> str:
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o600)
        return p

    # inadyn --------------------------------------------------------------
    def inadyn_conf(self, name: str, *, period: Optional[int], tls: bool = False) -> str:
        srv = f"localhost:{self.dyn_tls.port}" if tls else f"127.0.0.1:{self.dyn.port}"
        lines = [f"period = {period}"] if period else []
        lines += ["verify-address = false"]  # the bench's addresses are fine; skip inadyn's own filter
        if tls:
            lines.append(f"ca-trust-file = {self.ca_file}")
        lines += ["custom bench {", f"    username = {USER}", f"    password = {PASSWORD}",
                  f"    ssl = {'true' if tls else 'false'}", f"    checkip-server = 127.0.0.1:{self.dyn.port}",
                  "    checkip-path = /checkip", "    checkip-ssl = false", f"    ddns-server = {srv}",
                  '    ddns-path = "/nic/update?hostname=%h&myip=%i"', f"    hostname = {HOSTS['inadyn']}", "}"]
        return self.write(name, "\n".join(lines) + "\n")

    def inadyn_once(self, conf: str, cache: str) -> List[str]:
        return ["inadyn", "--once", "--foreground", "--no-pidfile", "-f", conf, "--cache-dir", cache, "-l", "notice"]

    def inadyn_daemon(self, conf: str, cache: str) -> List[str]:
        return ["inadyn", "--foreground", "--no-pidfile", "-f", conf, "--cache-dir", cache, "-l", "notice"]

    # ddclient ------------------------------------------------------------
    def ddclient_conf(self, name: str, *, oneshot: bool, tls: bool = False) -> str:
        # ddclient wants a dotted host name or an address here ("localhost" is rejected), and with
        # ssl=yes it fetches the checkip page over https too, so the TLS fake serves both.
        srv = f"127.0.0.1:{self.dyn_tls.port}" if tls else f"127.0.0.1:{self.dyn.port}"
        web = f"{self.dyn_tls.url}/checkip" if tls else self.checkip
        lines = [f"ssl={'yes' if tls else 'no'}", "use=web", f"web={web}", "protocol=dyndns2",
                 f"server={srv}", f"login={USER}", f"password={PASSWORD}"]
        if tls:
            lines.append(f"ssl_ca_file={self.ca_file}")
        if oneshot:
            # Back-to-back one-shot runs would otherwise be refused by the 30 s default min-interval.
            lines.append("min-interval=0")
        lines.append(HOSTS["ddclient"])
        return self.write(name, "\n".join(lines) + "\n")

    def ddclient_argv(self, conf: str, cache: str, daemon: int) -> List[str]:
        return ["ddclient", "-foreground", f"-daemon={daemon}", "-file", conf, "-cache", cache,
                "-pid", cache + ".pid"]

    # NewFuture/DDNS ----------------------------------------------------------
    def ddns_argv(self, cache: Optional[str]) -> List[str]:
        return [self.ddns, "--dns", "alidns", "--id", ALI_ID, "--token", ALI_SECRET,
                "--endpoint", self.ali_srv.url.rstrip("/"), "--ssl", self.ca_file,
                "--index4", f"url:{self.checkip}", "--index6", "false", "--ipv4", HOSTS["ddns"],
                *(["--cache", cache] if cache else ["--no-cache"]), "--log_level", "WARNING"]

    # edgeddns ------------------------------------------------------------
    def edge_conf(self, name: str, provider: str, state: str, *, tls: bool = False) -> str:
        if provider == "dyndns2":
            url = f"{self.dyn_tls.url if tls else self.dyn.url}/nic/update"
            prov = (f'type = "dyndns2"\nendpoint = "{url}"\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
                    + (f'ca_file = "{self.ca_file}"\n' if tls else ""))
        else:
            prov = (f'type = "alidns"\naccess_key_id = "{ALI_ID}"\naccess_key_secret = "{ALI_SECRET}"\n'
                    f'endpoint = "{self.ali_srv.url}"\nca_file = "{self.ca_file}"\n')
        return self.write(name, f"""[agent]
node_id = "bench"
state_dir = "{state}"

[ip]
ipv4 = ["url:{self.checkip}"]

[providers.p]
{prov}timeout = 5

[[records]]
name = "{HOSTS['edgeddns']}"
type = "A"
provider = "p"
""")

    def edge_update(self, conf: str, *extra: str) -> List[str]:
        return [self.edge, "update", "-c", conf, *extra]


# -- phases ---------------------------------------------------------------
def published(b: Bench, tool: str) -> Optional[str]:
    if tool == "ddns" or tool.startswith("edgeddns-alidns"):  # both alidns variants share the record
        recs = b.ali.find(HOSTS["edgeddns" if tool.startswith("edgeddns") else "ddns"], "A")
        return recs[0]["Value"] if recs else None
    host = HOSTS["edgeddns" if tool.startswith("edgeddns") else tool]
    return b.dyn.records.get(host) or b.dyn_tls.records.get(host)


def oneshot_phase(b: Bench, rep: Report) -> None:
    n = b.args.runs
    tools: Dict[str, Callable[[], List[str]]] = {}
    inadyn_conf = b.inadyn_conf("inadyn-once.conf", period=None)
    tools["inadyn"] = lambda: b.inadyn_once(inadyn_conf, b.path("inadyn-cache", ""))
    dd_conf = b.ddclient_conf("ddclient-once.conf", oneshot=True)
    tools["ddclient"] = lambda: b.ddclient_argv(dd_conf, b.path("ddclient.cache"), 0)
    edge_dyn = b.edge_conf("edge-dyn.toml", "dyndns2", b.path("edge-dyn-state", ""))
    tools["edgeddns-dyndns2"] = lambda: b.edge_update(edge_dyn)
    tools["ddns"] = lambda: b.ddns_argv(b.path("ddns.cache"))
    edge_ali = b.edge_conf("edge-ali.toml", "alidns", b.path("edge-ali-state", ""))
    tools["edgeddns-alidns"] = lambda: b.edge_update(edge_ali)
    # Same, trusting the system clock as DDNS does: the default ("auto") first measures the clock
    # when it is not provably synchronised (here: NTP unreachable, so one extra HTTPS Date probe).
    edge_ali_sys = b.write("edge-ali-sys.toml", open(edge_ali).read().replace(
        "[ip]", '[clock]\nmode = "system"\n\n[ip]').replace("edge-ali-state", "edge-ali-sys-state"))
    tools["edgeddns-alidns (clock system)"] = lambda: b.edge_update(edge_ali_sys)
    rep.commands.update({k: " ".join(f()) for k, f in tools.items()})
    for name in ("inadyn-once.conf", "ddclient-once.conf", "edge-dyn.toml", "edge-ali.toml"):
        with open(b.path(name)) as f:
            rep.commands[f"config file {name}"] = f.read().strip()
    runs: Dict[str, List[Run]] = {t: [] for t in tools}
    ok = {t: 0 for t in tools}
    # Round-robin, so a burst of load on a shared machine hits every tool alike.
    for i in range(n + 1):  # round 0 creates the records and warms the page cache
        for tool, argv in tools.items():
            addr = b.addr()
            b.dyn.set_wan(addr)
            r = measure(argv(), skew_env(None))
            changed = r.rc == 0 and published(b, tool) == addr
            if i == 0:
                if not changed:
                    rep.notes.append(f"{tool}: first one-shot run failed: rc={r.rc} {r.output[-600:]}")
                continue
            ok[tool] += changed
            runs[tool].append(r)
    for tool, rs in runs.items():
        rep.oneshot[tool] = {"runs": len(rs), "changed": ok[tool], "wall_ms": median([r.wall_ms for r in rs]),
                             "rss_kb": median([r.rss_kb for r in rs]),
                             "wall_ms_all": [round(r.wall_ms, 1) for r in rs]}
        print(f"one-shot {tool}: {rep.oneshot[tool]['wall_ms']:.1f} ms, {rep.oneshot[tool]['rss_kb']} kB, "
              f"{ok[tool]}/{len(rs)} changed", flush=True)

    # edgeddns: the check that finds nothing changed (no provider call at all).
    # edgeddns: the check that finds nothing changed (no provider call at all), and two references.
    py = os.path.join(os.path.dirname(b.edge), "python")
    extra = {"edgeddns-dyndns2 (nothing changed)": b.edge_update(edge_dyn),
             "edgeddns-alidns (nothing changed)": b.edge_update(edge_ali),
             "python (bare interpreter)": [py, "-c", "pass"],
             "python -c 'import requests'": [py, "-c", "import requests"]}
    runs = {k: [] for k in extra}
    for _ in range(n):
        for key, argv2 in extra.items():
            runs[key].append(measure(argv2, skew_env(None)))
    for key, rs in runs.items():
        rep.oneshot[key] = {"runs": n, "ok": sum(r.rc == 0 for r in rs), "wall_ms": median([r.wall_ms for r in rs]),
                            "rss_kb": median([r.rss_kb for r in rs]), "wall_ms_all": [round(r.wall_ms, 1) for r in rs]}
        rep.commands[key] = " ".join(extra[key])
        print(f"one-shot {key}: {rep.oneshot[key]['wall_ms']:.1f} ms", flush=True)
    probe = measure([py, "-c", "import edgeddns.control"])
    if probe.rc != 0:
        rep.notes.append("edgeddns trigger: not in this build (edgeddns.control missing); not measured here")
        return
    # The hotplug path as on a router: the agent runs, `edgeddns trigger` tells it the WAN changed.
    agent = subprocess.Popen([b.edge, "run", "-c", edge_dyn], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = b.path("edge-dyn-state", "control.sock")
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        argv = [b.edge, "trigger", "-c", edge_dyn, "--iface", "wan", "--action", "ifup"]
        runs = [measure(argv) for _ in range(n)]
        key = "edgeddns trigger (agent running)"
        rep.oneshot[key] = {"runs": n, "ok": sum(r.rc == 0 for r in runs), "wall_ms": median([r.wall_ms for r in runs]),
                            "rss_kb": median([r.rss_kb for r in runs]),
                            "wall_ms_all": [round(r.wall_ms, 1) for r in runs]}
        rep.commands[key] = " ".join(argv)
        print(f"one-shot {key}: {rep.oneshot[key]['wall_ms']:.1f} ms, ok {rep.oneshot[key]['ok']}/{n}", flush=True)
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def calls_phase(b: Bench, rep: Report) -> None:
    """Provider calls of one check when nothing changed, and when only the local cache is lost."""
    def dyn_calls() -> int:
        return b.dyn.count("good", "nochg", "badauth", "nohost", "notfqdn", "other")

    inadyn_conf = b.inadyn_conf("inadyn-once.conf", period=None)
    dd_conf = b.ddclient_conf("ddclient-once.conf", oneshot=True)
    edge_dyn = b.edge_conf("edge-dyn.toml", "dyndns2", b.path("edge-dyn-state", ""))
    edge_ali = b.edge_conf("edge-ali.toml", "alidns", b.path("edge-ali-state", ""))
    cases = {
        "inadyn": (lambda: b.inadyn_once(inadyn_conf, b.path("inadyn-cache", "")), [b.path("inadyn-cache")], "dyn"),
        "ddclient": (lambda: b.ddclient_argv(dd_conf, b.path("ddclient.cache"), 0), [b.path("ddclient.cache")], "dyn"),
        "edgeddns-dyndns2": (lambda: b.edge_update(edge_dyn), [b.path("edge-dyn-state")], "dyn"),
        "ddns": (lambda: b.ddns_argv(b.path("ddns.cache")), [b.path("ddns.cache")], "ali"),
        "edgeddns-alidns": (lambda: b.edge_update(edge_ali), [b.path("edge-ali-state")], "ali"),
    }
    addr = b.addr()
    b.dyn.set_wan(addr)
    for tool, (argv, caches, kind) in cases.items():
        out = {}
        measure(argv(), skew_env(None))  # publish addr
        for case in ("nothing changed", "record already right, local cache lost"):
            if case.startswith("record"):
                for c in caches:
                    if os.path.isdir(c):
                        shutil.rmtree(c, ignore_errors=True)
                    elif os.path.exists(c):
                        os.remove(c)
            c0, w0, k0 = (dyn_calls(), b.dyn.count("good", "nochg"), b.dyn.count("checkip")) if kind == "dyn" else (
                len(b.ali.calls), b.ali.writes, b.dyn.count("checkip"))
            r = measure(argv(), skew_env(None))
            c1, w1, k1 = (dyn_calls(), b.dyn.count("good", "nochg"), b.dyn.count("checkip")) if kind == "dyn" else (
                len(b.ali.calls), b.ali.writes, b.dyn.count("checkip"))
            out[case] = {"rc": r.rc, "provider_calls": c1 - c0, "writes": w1 - w0, "checkip": k1 - k0}
        rep.calls[tool] = out
        print(f"calls {tool}: {out}", flush=True)


def clock_phase(b: Bench, rep: Report) -> None:
    cases = {
        "ddns (alidns, V3 signature)": lambda: b.ddns_argv(None),
        # Written here too, so `--phases clock` runs on its own (it used to need the oneshot phase's file).
        "edgeddns (alidns, RPC signature)": lambda: b.edge_update(
            b.edge_conf("edge-ali.toml", "alidns", b.path("edge-ali-state", ""))),
        "inadyn (dyndns2 over TLS)": lambda: b.inadyn_once(b.inadyn_conf("inadyn-tls.conf", period=None, tls=True),
                                                           b.path("inadyn-tls-cache", "")),
        "ddclient (dyndns2 over TLS)": lambda: b.ddclient_argv(b.ddclient_conf("ddclient-tls.conf", oneshot=True,
                                                                               tls=True),
                                                               b.path("ddclient-tls.cache"), 0),
        "edgeddns (dyndns2 over TLS)": lambda: b.edge_update(
            b.edge_conf("edge-dyn-tls.toml", "dyndns2", b.path("edge-dyn-tls-state", ""), tls=True)),
    }
    for tool, argv in cases.items():
        out = {}
        for label, skew in SKEWS.items():
            addr = b.addr()
            b.dyn.set_wan(addr)
            b.dyn_tls.set_wan(addr)
            r = measure(skewed(argv(), skew), skew_env(skew))
            if "TLS" in tool:
                got = b.dyn_tls.records.get(HOSTS[tool.split()[0]])
            else:
                got = published(b, "ddns" if tool.startswith("ddns") else "edgeddns-alidns")
            ok = r.rc == 0 and got == addr
            tail = " | ".join(x.strip() for x in r.output.strip().splitlines()[-3:])[-300:]
            out[label] = {"ok": ok, "rc": r.rc, "reason": "" if ok else failure_reason(r.output),
                          "why": "" if ok else tail}
        rep.clock[tool] = out
        rep.commands[f"clock: {tool}"] = "faketime -f {-3h|+2y} " + " ".join(argv())
        print(f"clock {tool}: " + ", ".join(f"{k}={'ok' if v['ok'] else 'FAIL'}" for k, v in out.items()),
              flush=True)


def failure_reason(output: str) -> str:
    low = output.lower()
    if "invalidtimestamp" in low:
        return "InvalidTimeStamp.Expired (signature time refused)"
    if "certificate has expired" in low or "certificate expired" in low or "certificate_verify_failed" in low \
            or "ssl connect attempt failed" in low or "certificate verification" in low or "tls" in low:
        return "TLS: certificate not valid at the device's time"
    return "failed"


def latency_phase(b: Bench, rep: Report) -> None:
    """WAN change at a random moment to the update's arrival, daemons at their shortest poll interval."""
    fakes = {"inadyn": FakeDyndns2(USER, PASSWORD, {HOSTS["inadyn"]}).start(),
             "ddclient": FakeDyndns2(USER, PASSWORD, {HOSTS["ddclient"]}).start()}
    conf_i = b.write("inadyn-lat.conf", open(b.inadyn_conf("tmp-i.conf", period=1)).read()
                     .replace(str(b.dyn.port), str(fakes["inadyn"].port)))
    conf_d = b.write("ddclient-lat.conf", open(b.ddclient_conf("tmp-d.conf", oneshot=False)).read()
                     .replace(str(b.dyn.port), str(fakes["ddclient"].port)))
    daemons = {"inadyn": (b.inadyn_daemon(conf_i, b.path("inadyn-lat-cache", "")), 1.0),
               "ddclient": (b.ddclient_argv(conf_d, b.path("ddclient-lat.cache"), 60), 60.0)}

    def sampler(tool: str) -> None:
        fake = fakes[tool]
        argv, period = daemons[tool]
        rep.commands[f"daemon: {tool}"] = " ".join(argv)
        fake.set_wan(b.addr())
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rng = random.Random(7)
        lat, lost = [], 0
        try:
            if fake.wait_for({"good"}, 0.0, period * 2 + 20) is None:
                rep.notes.append(f"{tool} daemon: no first update")
                return
            cpu0, t0 = sum(proc_cpu_s(p) for p in tree_pids(proc.pid)), time.monotonic()
            k0, u0 = fake.count("checkip"), fake.count("good", "nochg")
            for _ in range(b.args.samples):
                time.sleep(rng.uniform(0, period))
                changed = fake.set_wan(b.addr())
                ev = fake.wait_for({"good"}, changed, period * 2 + 20)
                if ev is None:
                    lost += 1
                else:
                    lat.append((ev.mono - changed) * 1000.0)
            dt = time.monotonic() - t0
            cpu = sum(proc_cpu_s(p) for p in tree_pids(proc.pid)) - cpu0
            rep.latency[tool] = {
                "period_s": period, "samples": len(lat), "lost": lost, "median_ms": median(lat),
                "p90_ms": sorted(lat)[int(0.9 * (len(lat) - 1))] if lat else None,
                "max_ms": max(lat) if lat else None, "all_ms": [round(x, 1) for x in lat],
                "checkip_per_min": (fake.count("checkip") - k0) / dt * 60.0,
                "updates": fake.count("good", "nochg") - u0,
                "cpu_pct": cpu / dt * 100.0, "rss_kb": proc_status(proc.pid, "VmRSS"), "seconds": round(dt, 1)}
            print(f"latency {tool}: {rep.latency[tool]['median_ms']:.0f} ms median over {len(lat)}", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            fake.stop()

    threads = [threading.Thread(target=sampler, args=(t,)) for t in daemons]
    for t in threads:
        t.start()
    for t in threads:
        t.join(b.args.samples * 200 + 300)


def idle_phase(b: Bench, rep: Report) -> None:
    """Resident memory and CPU of each daemon at its default interval, with nothing changing."""
    fake = FakeDyndns2(USER, PASSWORD, set(HOSTS.values())).start()
    fake.set_wan(b.addr())
    conf_i = b.write("inadyn-idle.conf", open(b.inadyn_conf("tmp-i2.conf", period=None)).read()
                     .replace(str(b.dyn.port), str(fake.port)))
    conf_d = b.write("ddclient-idle.conf", open(b.ddclient_conf("tmp-d2.conf", oneshot=False)).read()
                     .replace(str(b.dyn.port), str(fake.port)))
    conf_e = b.write("edge-idle.toml", open(b.edge_conf("tmp-e.toml", "dyndns2", b.path("edge-idle-state", "")))
                     .read().replace(str(b.dyn.port), str(fake.port)))
    argvs = {"inadyn (default period)": b.inadyn_daemon(conf_i, b.path("inadyn-idle-cache", "")),
             "ddclient (-daemon=300)": b.ddclient_argv(conf_d, b.path("ddclient-idle.cache"), 300),
             "edgeddns run (dyndns2, events only)": [b.edge, "run", "-c", conf_e]}
    procs = {k: subprocess.Popen(v, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k, v in argvs.items()}
    try:
        time.sleep(5)  # start-up and the first update
        cpu0 = {k: sum(proc_cpu_s(p) for p in tree_pids(pr.pid)) for k, pr in procs.items()}
        t0 = time.monotonic()
        time.sleep(b.args.idle)
        dt = time.monotonic() - t0
        for k, pr in procs.items():
            if pr.poll() is not None:
                rep.notes.append(f"idle: {k} exited with {pr.returncode}")
                continue
            pids = tree_pids(pr.pid)
            rep.idle[k] = {"rss_kb": sum(proc_status(p, "VmRSS") for p in pids),
                           "hwm_kb": max(proc_status(p, "VmHWM") for p in pids),
                           "cpu_pct": (sum(proc_cpu_s(p) for p in pids) - cpu0[k]) / dt * 100.0,
                           "seconds": round(dt, 1), "processes": len(pids)}
            rep.commands[f"idle: {k}"] = " ".join(argvs[k])
            print(f"idle {k}: {rep.idle[k]}", flush=True)
        rep.idle["_fake_requests"] = dict(fake.counts)
    finally:
        for pr in procs.values():
            pr.send_signal(signal.SIGTERM)
        for pr in procs.values():
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait()
        fake.stop()
    # What the agent's imports alone cost, for "steady memory within 2 MB of its imports".
    py = os.path.join(os.path.dirname(b.edge), "python")
    code = ("import edgeddns.agent, edgeddns.engine, edgeddns.providers.dyndns2, edgeddns.http, requests, "
            "edgeddns.netlink, edgeddns.echo")
    r = measure([py, "-c", code])
    rep.idle["_edgeddns_imports_rss_kb"] = {"rss_kb": r.rss_kb, "rc": r.rc, "command": f"{py} -c '{code}'"}


def versions(b: Bench, rep: Report) -> None:
    def first(argv: List[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except OSError as e:
            return f"unavailable ({e})"
        return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "?"

    rep.versions = {
        "inadyn": first(["inadyn", "--version"]),
        "ddclient": first(["dpkg-query", "-W", "-f", "${Version}", "ddclient"]),
        "NewFuture/DDNS": first([b.ddns, "--version"]),
        "edgeddns": first([b.edge, "--version"]),
        "faketime": first(["dpkg-query", "-W", "-f", "${Version}", "faketime"]),
    }
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rep.machine = {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
                   "python": first([os.path.join(os.path.dirname(b.edge), "python"), "--version"]),
                   "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}


# -- Markdown -------------------------------------------------------------
def _mb(kb: Optional[float]) -> str:
    return "—" if kb is None or kb < 0 else f"{kb / 1024:.1f} MB"


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return "—" if not a or not b or a < 0 or b < 0 else f"{a / b:.2f}×"


def render(rep: dict) -> str:
    """The BENCHMARKS.md section, from a results JSON."""
    m, v, o = rep["machine"], rep["versions"], rep["oneshot"]
    out = ["## Side by side with the incumbents", "",
           f"Measured {m.get('date', '?')} by `bench/incumbents.py` (set up with `bench/setup.sh`), all tools in one "
           "run, inside a private network namespace holding only `lo`: nothing could leave 127.0.0.1. Machine: "
           f"{m.get('nproc')} CPUs ({m.get('cpu')}), kernel {m.get('kernel')}, {m.get('python')} (edgeddns and DDNS), "
           f"load average {m.get('loadavg_at_start')} at start and {m.get('loadavg_at_end')} at the end (the machine "
           "was shared with other jobs, so absolute times are noisy; the runs are interleaved round-robin so load "
           "hits every tool alike).", "",
           "Versions: " + "; ".join(f"{k} `{x}`" for k, x in v.items()) + ".", "",
           "Every tool learns the WAN address from the same plain-HTTP checkip page of `bench/fake_dyndns2.py`. "
           "inadyn, ddclient and edgeddns (`dyndns2` provider) update that fake; NewFuture/DDNS and edgeddns "
           "(`alidns` provider) update the tests' fake Alidns over HTTPS with a trustme CA "
           "(`bench/fake_alidns_v3.py` adds the V3 signature DDNS 4.x uses). Peak RSS is GNU time's `%M` (the whole "
           "process; `os.wait4` would include the bench's own pages, see `measure()`). Ratios are edgeddns / peer: "
           "below 1 means edgeddns is faster or smaller.", "",
           f"### One-shot update (median of {o.get('inadyn', {}).get('runs', '?')} runs, each changing the address)",
           "", "| tool | provider | wall | peak RSS | edgeddns / peer: wall | edgeddns / peer: RSS | runs that changed "
           "the record |", "|---|---|---:|---:|---:|---:|---:|"]
    ed, ea = o.get("edgeddns-dyndns2", {}), o.get("edgeddns-alidns", {})
    ddns = o.get("ddns", {})
    rows = [("inadyn", "dyndns2", ed), ("ddclient", "dyndns2", ed), ("edgeddns-dyndns2", "dyndns2", None),
            ("ddns", "Alidns", ea), ("edgeddns-alidns", "Alidns", None),
            ("edgeddns-alidns (clock system)", "Alidns", "vs-ddns")]
    for tool, prov, mine in rows:
        x = o.get(tool)
        if not x:
            continue
        if mine == "vs-ddns":  # this edgeddns row carries its own ratio against DDNS
            out.append(f"| **edgeddns** (`[clock] mode = \"system\"`, as DDNS trusts its clock) | {prov} | "
                       f"{x['wall_ms']:.0f} ms | {_mb(x['rss_kb'])} | {_ratio(x['wall_ms'], ddns.get('wall_ms'))} "
                       f"(vs DDNS) | {_ratio(x['rss_kb'], ddns.get('rss_kb'))} (vs DDNS) | "
                       f"{x['changed']}/{x['runs']} |")
            continue
        name = {"ddns": "NewFuture/DDNS", "edgeddns-dyndns2": "**edgeddns**",
                "edgeddns-alidns": "**edgeddns** (`[clock] mode = \"auto\"`, the default)"}.get(tool, tool)
        out.append(f"| {name} | {prov} | {x['wall_ms']:.0f} ms | {_mb(x['rss_kb'])} | "
                   f"{_ratio(mine.get('wall_ms'), x['wall_ms']) if mine else ''} | "
                   f"{_ratio(mine.get('rss_kb'), x['rss_kb']) if mine else ''} | {x['changed']}/{x['runs']} |")
    out += ["", "Reference points, same runs:", "", "| command | wall | peak RSS |", "|---|---:|---:|"]
    for key in ("edgeddns-dyndns2 (nothing changed)", "edgeddns-alidns (nothing changed)",
                "edgeddns trigger (agent running)", "python (bare interpreter)", "python -c 'import requests'"):
        x = o.get(key)
        if x:
            out.append(f"| {key} | {x['wall_ms']:.0f} ms | {_mb(x['rss_kb'])} |")
    if "edgeddns trigger (agent running)" not in o:
        out.append("| edgeddns trigger | not in this build when measured (see `## OpenWrt paths` / "
                   "`bench/trigger.py`) | |")

    lat = rep.get("latency", {})
    out += ["", "### WAN change to the provider receiving the update", "",
            "Measured: the bench changes the checkip address at a random moment (uniform over one period) and "
            "timestamps the update's arrival at the fake (same process, monotonic clock). Computed: for a poller "
            "with period P and changes at random moments, the wait until the next check is uniform on [0, P], so "
            "the expected median is P/2 (plus the update's own time, negligible here); measuring a 300 s period "
            "properly would take hours, so those rows are computed, not measured.", "",
            "| tool | mode | poll period | median | p90 | samples | checkip requests / min | CPU while polling |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for tool in ("inadyn", "ddclient"):
        x = lat.get(tool)
        if x:
            out.append(f"| {tool} | daemon, shortest period (measured) | {x['period_s']:.0f} s | "
                       f"{x['median_ms'] / 1000:.2f} s | {x['p90_ms'] / 1000:.2f} s | {x['samples']} "
                       f"({x['lost']} lost) | {x['checkip_per_min']:.1f} | {x['cpu_pct']:.2f} % |")
    out += ["| inadyn | daemon, default period (computed) | 120 s | 60 s | 108 s | — | 0.5 | — |",
            "| ddclient | daemon, `daemon=300` (Debian's default; computed) | 300 s | 150 s | 270 s | — | 0.2 | — |",
            "| NewFuture/DDNS | `ddns task` (cron/systemd timer, default 5 min; computed) | 300 s | 150 s | 270 s "
            "| — | 0.2 | — |",
            "| ddns-go | default `-f 300` (published, computed) | 300 s | 150 s | 270 s | — | 0.2 | — |",
            "| **edgeddns** | `run`, events only (`poll_interval = 0`) | none | see below | | | **0** | |", "",
            "edgeddns does not poll: it reacts to a hotplug trigger, an MQTT command or a netlink address event. "
            "Those paths are measured by `bench/trigger.py` and `bench/mqtt_latency.py` (sections `## OpenWrt paths` "
            "and `## MQTT agent`); their figures and the ratios to the pollers are in the table below this one.", ""]

    calls = rep.get("calls", {})
    out += ["### Provider calls per check", "",
            "One check after a successful update (nothing changed), and one after deleting only the tool's local "
            "cache/state while the record at the provider is already right. `calls` counts requests to the provider "
            "API, `writes` the updates among them (for dyndns2 every update request is a write: the protocol cannot "
            "read). Every tool also made exactly one checkip request per check.", "",
            "| tool | nothing changed: calls / writes | record already right, cache lost: calls / writes |",
            "|---|---:|---:|"]
    for tool, x in calls.items():
        a, b2 = x.get("nothing changed", {}), x.get("record already right, local cache lost", {})
        out.append(f"| {tool} | {a.get('provider_calls')} / {a.get('writes')} | "
                   f"{b2.get('provider_calls')} / {b2.get('writes')} |")
    out += ["", "dyndns2 cannot read a record, so with its cache lost every client sends one update, which the "
            "service answers `nochg` (services treat repeated `nochg` as abuse). In the field inadyn would first "
            "resolve the host name in DNS and skip the update if it matches; in the bench's namespace there is no "
            "DNS, so it updated. NewFuture/DDNS reads the zone name (`GetMainDomainName`) and the record on every "
            "uncached check; edgeddns reads the record only.", ""]

    idle = rep.get("idle", {})
    out += ["### Daemons while idle", "",
            f"Each daemon at its default interval, nothing changing, measured over {next((x['seconds'] for x in idle.values() if isinstance(x, dict) and 'seconds' in x), '?')} s after "  # noqa: E501
            "a 5 s settle: resident memory (VmRSS, whole process tree) and CPU (utime+stime / wall).", "",
            "| daemon | RSS | CPU | edgeddns / peer: RSS | edgeddns / peer: CPU |", "|---|---:|---:|---:|---:|"]
    mine = idle.get("edgeddns run (dyndns2, events only)", {})
    for k, x in idle.items():
        if k.startswith("_"):
            continue
        peer = not k.startswith("edgeddns")
        out.append(f"| {k} | {_mb(x['rss_kb'])} | {x['cpu_pct']:.3f} % | "
                   f"{_ratio(mine.get('rss_kb'), x['rss_kb']) if peer else ''} | "
                   f"{_ratio(mine.get('cpu_pct'), x['cpu_pct']) if peer and x['cpu_pct'] else ''} |")
    fr = idle.get("_fake_requests")
    if fr:
        out += ["", f"CPU is sampled in clock ticks (10 ms), so 0.000 % means under about 0.02 % over the window. "
                f"Requests the three idle daemons made in all: {fr} (one start-up check and update each; inadyn "
                "did not check again within the window, consistent with a default period above 60 s)."]
    imp = idle.get("_edgeddns_imports_rss_kb")
    if imp and mine:
        out += ["", f"edgeddns's imports alone (agent, engine, dyndns2, http, requests, netlink, echo) peak at "
                f"{_mb(imp['rss_kb'])}; the idle agent is {(mine['rss_kb'] - imp['rss_kb']) / 1024:+.1f} MB from that."]

    clock = rep.get("clock", {})
    out += ["", "### With the device clock wrong", "",
            "Each tool ran once per row under libfaketime (`faketime -f -3h` / `+2y`, with "
            "`FAKETIME_DONT_FAKE_MONOTONIC=1`), each time with a new address. The fakes run on the true clock. The "
            "server certificate is realistic: issued 30 days ago, valid 90 days, so 2 years ahead it has expired. "
            "Fake Alidns refuses timestamps more than 15 minutes off (`InvalidTimeStamp.Expired`), as Alibaba "
            "Cloud does. dyndns2 requests carry no timestamp, so only TLS can fail there; those rows use a "
            "dyndns2 fake over HTTPS with the same certificate.", "",
            "| tool | clock right | 3 h behind | 2 years ahead |", "|---|---|---|---|"]
    for tool, x in clock.items():
        cells = []
        for label in ("right", "3 h behind", "2 y ahead"):
            c = x.get(label, {})
            cells.append("ok" if c.get("ok") else f"**fails** (exit {c.get('rc')}): {c.get('reason') or c.get('why')}")
        out.append(f"| {tool} | " + " | ".join(cells) + " |")
    out += ["", "<details><summary>Exact command lines and generated config files (ports and temporary paths vary "
            "per run; the credentials are the fakes')</summary>", "", "```"]
    for k, c in rep.get("commands", {}).items():
        out.append(f"# {k}\n{c.replace(ROOT + os.sep, '')}")  # paths relative to the checkout
    out += ["```", "", "</details>", ""]
    if rep.get("notes"):
        out += ["Notes from the run: " + "; ".join(rep["notes"]), ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="edgeddns vs inadyn, ddclient, NewFuture/DDNS (127.0.0.1 only)")
    ap.add_argument("--runs", type=int, default=10, help="measured one-shot runs per tool (median)")
    ap.add_argument("--samples", type=int, default=10, help="WAN changes per daemon in the latency phase")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    ap.add_argument("--phases", default="oneshot,calls,clock,latency,idle")
    ap.add_argument("--edge-bin", default=os.path.join(BENCH, ".venv-edge", "bin", "edgeddns"))
    ap.add_argument("--ddns-bin", default=os.path.join(BENCH, ".venv-peers", "bin", "ddns"))
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "incumbents.json"))
    ap.add_argument("--render", metavar="JSON", help="print the BENCHMARKS.md section for a results file and exit")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    args.runs = max(1, min(args.runs, 200))
    args.samples = max(1, min(args.samples, 100))
    args.idle = max(5.0, min(args.idle, 3600.0))
    for need in ("inadyn", "ddclient", "faketime", "/usr/bin/time", args.edge_bin, args.ddns_bin):
        if not shutil.which(need):
            print(f"incumbents.py: {need} not found; run bench/setup.sh first", file=sys.stderr)
            return 2
    enter_netns()
    b = Bench(args)
    rep = Report()
    phases = args.phases.split(",")
    if os.path.exists(args.out) and set(phases) != {"oneshot", "calls", "clock", "latency", "idle"}:
        # A partial re-run keeps the other phases' figures from the previous results file.
        with open(args.out) as f:
            old = json.load(f)
        for name in ("calls", "clock", "latency", "idle", "commands", "oneshot"):
            getattr(rep, name).update(old.get(name, {}))
        rep.notes.append(f"phases {','.join(phases)} re-run on {datetime.date.today()}; the others kept from "
                         f"the run of {old.get('machine', {}).get('date')}")
    try:
        versions(b, rep)
        for name, fn in (("oneshot", oneshot_phase), ("calls", calls_phase), ("clock", clock_phase),
                         ("latency", latency_phase), ("idle", idle_phase)):
            if name in phases:
                fn(b, rep)
    finally:
        b.close()
    rep.machine["loadavg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(asdict(rep), f, indent=1, default=str)
    print(f"wrote {args.out}")
    print(render(json.loads(json.dumps(asdict(rep), default=str))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
