"""Network inputs: every HTTP request has an overall deadline and a bounded body, on both paths
(the requests-based provider transport and the minimal fetcher behind ``url:`` sources)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from typing import List, Optional

import pytest

from edgeddns.clock import SystemClock
from edgeddns.errors import NetworkError, ProviderError
from edgeddns.http import MAX_BODY, HttpClient

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n"
BODY = b"8.8.8.8"


class RawServer:
    """A loopback TCP server that answers each connection with ``script(conn)``; counts bytes sent."""

    def __init__(self, script, ssl_context=None):
        self.script = script
        self.ssl_context = ssl_context
        self.sent: List[int] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        n = [0]
        self.sent.append(0)
        idx = len(self.sent) - 1
        conn.settimeout(5)
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk

            def send(data: bytes):
                conn.sendall(data)
                n[0] += len(data)
                self.sent[idx] = n[0]

            self.script(send, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/ip"


def trickle(data: bytes, every: float, prefix: bytes = b""):
    """Send ``prefix`` at once, then ``data`` one byte every ``every`` seconds (each gap below the timeout)."""

    def script(send, stop):
        if prefix:
            send(prefix)
        for b in data:
            if stop.wait(every):
                return
            send(bytes([b]))

    return script


BUDGET = 1.0
EVERY = 0.3  # every gap is well inside the per-read timeout, so only an overall deadline stops it


@pytest.fixture
def raw_server():
    servers: List[RawServer] = []

    def make(script, ssl_context=None) -> RawServer:
        s = RawServer(script, ssl_context)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _client() -> HttpClient:
    return HttpClient(clock=SystemClock(), timeout=BUDGET)


@pytest.mark.parametrize("phase", ["head", "body"])
def test_provider_transport_has_an_overall_deadline(raw_server, phase):
    """A server trickling 1 byte per 0.3 s (whole answer: ~20 s) cannot hold a 1 s request open."""
    script = trickle(HEAD + BODY, EVERY) if phase == "head" else trickle(BODY * 10, EVERY, HEAD.replace(b"7", b"70"))
    srv = raw_server(script)
    http = _client()
    try:
        with pytest.raises(NetworkError) as e:
            http.request("GET", srv.url)
    finally:
        http.close()
    assert "timed out" in e.value.message
    # The server got to send only what fits in the budget (plus a margin), not its whole answer.
    sent = srv.sent[0] - (len(HEAD) if phase == "body" else 0)
    assert sent <= 4 * BUDGET / EVERY, srv.sent


def test_update_through_a_trickling_webhook_ends_as_network_error(raw_server, tmp_path):
    """End to end: the provider call fails with ``network`` well before the trickle would end (~20 s)."""
    from tests.conftest import json_results, provider_config, run_cli

    srv = raw_server(trickle(HEAD + BODY, EVERY))
    cfg = provider_config(tmp_path, f"""
        [clock]
        mode = "system"
        [providers.hook]
        type = "webhook"
        url = "{srv.url}?ip={{ip}}"
        timeout = {BUDGET}
    """, '[[records]]\nname = "home.example.com"\nprovider = "hook"\n')
    p = run_cli("update", "-c", cfg, "--json", timeout=60)
    (r,) = json_results(p)
    assert r["error"]["code"] == "network" and "timed out" in r["error"]["message"], r
    # Each attempt (the engine may retry) was cut inside its budget.
    assert srv.sent and max(srv.sent) <= 4 * BUDGET / EVERY, srv.sent


def test_tls_provider_transport_has_an_overall_deadline(raw_server, server_context, ca_file):
    """Over TLS the read blocks inside the ssl layer; shutting the socket under it still ends it."""
    srv = raw_server(trickle(HEAD + BODY, EVERY), server_context)
    http = HttpClient(clock=SystemClock(), ca_file=ca_file, timeout=BUDGET)
    try:
        with pytest.raises(NetworkError) as e:
            http.request("GET", srv.url)
    finally:
        http.close()
    assert "timed out" in e.value.message
    assert srv.sent[0] <= 4 * BUDGET / EVERY, srv.sent


def test_url_source_fetch_has_an_overall_deadline(raw_server):
    from edgeddns import echo

    srv = raw_server(trickle(HEAD + BODY, EVERY))
    with pytest.raises(OSError) as e:
        echo.fetch(srv.url, 4, timeout=BUDGET)
    assert "timed out" in str(e.value)
    assert srv.sent[0] <= 4 * BUDGET / EVERY, srv.sent


def test_deadline_does_not_cut_a_quick_answer_or_a_reused_connection(raw_server):
    """A normal answer is unaffected, and a pooled connection used later gets a fresh budget."""

    def script(send, stop):
        send(HEAD + BODY)

    srv = raw_server(script)
    http = _client()
    try:
        for _ in range(3):
            assert http.request("GET", srv.url).text == "8.8.8.8"
            time.sleep(BUDGET / 2)
    finally:
        http.close()


def _body_server(raw_server, body: bytes, headers: bytes = b""):
    def script(send, stop):
        send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), headers) + body)

    return raw_server(script)


def test_provider_body_is_capped_in_our_code(raw_server):
    srv = _body_server(raw_server, b"x" * (MAX_BODY + 10))
    http = _client()
    try:
        with pytest.raises(ProviderError) as e:
            http.request("GET", srv.url)
    finally:
        http.close()
    assert "larger than" in e.value.message


def test_provider_compressed_body_is_capped_after_decoding(raw_server):
    """A 20 MiB answer gzipped to ~20 KiB (a decompression bomb) stops at the cap, whatever urllib3 does."""
    import tracemalloc

    bomb = gzip.compress(b"0" * (20 << 20))
    srv = _body_server(raw_server, bomb, b"Content-Encoding: gzip\r\n")
    http = _client()
    tracemalloc.start()
    try:
        with pytest.raises(ProviderError) as e:
            http.request("GET", srv.url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        http.close()
    assert "larger than" in e.value.message
    # Never inflated past the cap: a bound on what was held, not a speed or size benchmark.
    assert peak < 4 * MAX_BODY, peak


def test_provider_small_gzip_body_is_decoded(raw_server):
    srv = _body_server(raw_server, gzip.compress(b'{"ok": true}'), b"Content-Encoding: gzip\r\n")
    http = _client()
    try:
        assert http.request("GET", srv.url).json() == {"ok": True}
    finally:
        http.close()


def test_provider_asks_for_uncompressed_answers(raw_server):
    seen: List[bytes] = []

    def script(send, stop):
        send(HEAD + BODY)

    srv = raw_server(script)
    orig = srv._one

    def spy(conn):
        data = conn.recv(4096, socket.MSG_PEEK)
        seen.append(data)
        orig(conn)

    srv._one = spy
    http = _client()
    try:
        http.request("GET", srv.url)
    finally:
        http.close()
    assert b"accept-encoding: identity" in seen[0].lower()


def test_url_source_body_is_capped(raw_server):
    from edgeddns import echo

    srv = _body_server(raw_server, b"1" * (8 << 20))
    text: Optional[str] = None
    try:
        text = echo.fetch(srv.url, 4, timeout=5)
    except OSError:
        pass
    assert text is None or len(text) <= echo.MAX_ANSWER
    assert srv.sent[0] < (1 << 20) + 4096 or text is None


def test_a_trickled_tls_handshake_is_cut_at_the_deadline(ca_file):
    """The server answers the ClientHello with a record header announcing 16 KiB, then one byte at a time."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sent: List[int] = [0]
    stop = threading.Event()

    def serve():
        conn, _ = sock.accept()
        try:
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while not stop.wait(EVERY):
                conn.sendall(b"\x02")
                sent[0] += 1
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    http = HttpClient(clock=SystemClock(), ca_file=ca_file, timeout=BUDGET)
    try:
        with pytest.raises(NetworkError) as e:
            http.request("GET", f"https://127.0.0.1:{sock.getsockname()[1]}/")
    finally:
        stop.set()
        http.close()
        sock.close()
    assert "timed out" in e.value.message, e.value.message
    assert sent[0] <= 4 * BUDGET / EVERY, sent
