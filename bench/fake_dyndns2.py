"""A small dyndns2 server for benchmarks, on 127.0.0.1 only.

It answers ``/nic/update?hostname=H[,H2]&myip=A`` as the dyndns2 protocol
documents (one answer line per host name: ``good A``, ``nochg A``,
``badauth``, ``nohost``, ``notfqdn``), and serves a plain-text "checkip" page
with a settable "WAN address" for the clients that can only learn their
address over HTTP (inadyn, ddclient). It logs when each request arrives, in
monotonic and wall time, so a bench in the same process can measure "address
changed" to "provider received the update" without clock arithmetic across
processes.

Use it as a module (``FakeDyndns2(...).start()``; ``set_wan()``; ``events``,
``counts``), or run it alone for manual testing::

    python bench/fake_dyndns2.py --port 8245 --seconds 600

where ``POST /control/wan`` with the address as body (or ``GET
/control/wan?ip=A``) sets the WAN address and ``GET /control/stats`` returns
the counters and the log as JSON. It serves at most ``--seconds`` and exits.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Set
from urllib.parse import parse_qsl, urlsplit

MAX_EVENTS = 100_000  # bounded log: a runaway client cannot eat the bench's memory


@dataclass
class Event:
    kind: str  # good | nochg | badauth | nohost | notfqdn | checkip | control | other
    mono: float  # time.monotonic() at arrival
    wall: float  # time.time() at arrival
    path: str
    hostname: str = ""
    myip: str = ""
    agent: str = ""


@dataclass
class FakeDyndns2:
    username: str = "bench"
    password: str = "bench-pass"
    hostnames: Set[str] = field(default_factory=lambda: {"home.example.com"})
    wan: str = "93.184.0.1"
    port: int = 0
    ssl_context: Optional[ssl.SSLContext] = None

    def __post_init__(self) -> None:
        self.records: Dict[str, str] = {}  # hostname -> address published
        self.events: List[Event] = []
        self.counts: Dict[str, int] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.httpd: Optional[ThreadingHTTPServer] = None

    # -- bench API ---------------------------------------------------------
    def set_wan(self, address: str) -> float:
        """Change the address the checkip page reports; return the monotonic time of the change."""
        with self.lock:
            self.wan = address
            return time.monotonic()

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.counts.clear()

    def count(self, *kinds: str) -> int:
        with self.lock:
            return sum(self.counts.get(k, 0) for k in kinds)

    def wait_for(self, kinds: Set[str], after: float, timeout: float) -> Optional[Event]:
        """The first event of ``kinds`` that arrived after monotonic ``after``, waiting at most ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for e in self.events:
                    if e.kind in kinds and e.mono >= after:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(min(left, 0.5))

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> FakeDyndns2:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, a keep-alive client's second
            # request waits for a delayed ACK (~40 ms). Real servers set TCP_NODELAY, so do we.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _reply(self, status: int, text: str, ctype: str = "text/plain") -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                mono, wall = time.monotonic(), time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 65536)) if length else b""
                parts = urlsplit(self.path)
                q = dict(parse_qsl(parts.query, keep_blank_values=True))
                ev = Event("other", mono, wall, parts.path, agent=self.headers.get("User-Agent", ""))
                status, text, ctype = 404, "not found", "text/plain"
                if parts.path == "/nic/update":
                    ev.hostname, ev.myip = q.get("hostname", ""), q.get("myip", "")
                    status, text, ev.kind = 200, *outer._update(self.headers.get("Authorization", ""),
                                                                 ev.hostname, ev.myip or self.client_address[0])
                elif parts.path in ("/checkip", "/"):
                    ev.kind = "checkip"
                    with outer.lock:
                        wan = outer.wan
                    status, text = 200, f"Current IP Address: {wan}\n"
                elif parts.path == "/control/wan":
                    ev.kind = "control"
                    ip = q.get("ip") or body.decode().strip()
                    try:
                        ipaddress.ip_address(ip)
                        outer.set_wan(ip)
                        status, text = 200, "ok\n"
                    except ValueError:
                        status, text = 400, "bad address\n"
                elif parts.path == "/control/stats":
                    ev.kind = "control"
                    with outer.lock:
                        data = {"counts": dict(outer.counts), "records": dict(outer.records),
                                "events": [asdict(e) for e in outer.events]}
                    status, text, ctype = 200, json.dumps(data), "application/json"
                with outer.changed:
                    if len(outer.events) < MAX_EVENTS:
                        outer.events.append(ev)
                    outer.counts[ev.kind] = outer.counts.get(ev.kind, 0) + 1
                    outer.changed.notify_all()
                self._reply(status, text, ctype)

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        if self.ssl_context is not None:
            self.httpd.socket = self.ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    # -- the protocol ------------------------------------------------------
    def _update(self, auth: str, hostnames: str, myip: str):
        """(answer text, event kind); the kind is that of the first host's answer."""
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if auth != expected:
            return "badauth\n", "badauth"
        try:
            ipaddress.ip_address(myip)
        except ValueError:
            return "dnserr\n", "other"
        lines, kinds = [], []
        for host in [h.strip().lower() for h in hostnames.split(",") if h.strip()][:20] or [""]:
            if "." not in host:
                lines.append("notfqdn")
                kinds.append("notfqdn")
            elif host not in self.hostnames:
                lines.append("nohost")
                kinds.append("nohost")
            else:
                with self.lock:
                    same = self.records.get(host) == myip
                    self.records[host] = myip
                lines.append(("nochg " if same else "good ") + myip)
                kinds.append("nochg" if same else "good")
        return "\n".join(lines) + "\n", kinds[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--username", default="bench")
    ap.add_argument("--password", default="bench-pass")
    ap.add_argument("--hostname", action="append", default=None)
    ap.add_argument("--wan", default="93.184.0.1")
    ap.add_argument("--seconds", type=float, default=600.0, help="serve this long, then exit (bounded)")
    a = ap.parse_args()
    fake = FakeDyndns2(a.username, a.password, set(a.hostname or ["home.example.com"]), a.wan, a.port).start()
    print(f"fake dyndns2 at {fake.url}/nic/update, checkip at {fake.url}/checkip", flush=True)
    try:
        time.sleep(max(0.0, min(a.seconds, 86400.0)))
    except KeyboardInterrupt:
        pass
    fake.stop()
    print(json.dumps(fake.counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
