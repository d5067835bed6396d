"""The URL address source's minimal HTTP client, against raw socket servers on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest

from edgeddns.echo import fetch
from tests.conftest import ROOT


def _serve_once(answer: bytes, *, keep_open: float = 0.0):
    """Accept one connection, read the request, send ``answer`` raw; optionally keep the socket open."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = {}

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(5)
            seen["request"] = conn.recv(4096)
            conn.sendall(answer)
            if keep_open:
                time.sleep(keep_open)
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1], seen


def test_content_length_answer_returns_without_waiting_for_close():
    port, seen = _serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n8.8.4.4\n", keep_open=3)
    # Waiting for EOF would end in a socket timeout (an OSError), so success proves it did not wait.
    assert fetch(f"http://127.0.0.1:{port}/ip?x=1", 4, timeout=2).strip() == "8.8.4.4"
    assert seen["request"].startswith(b"GET /ip?x=1 HTTP/1.0\r\n")
    assert f"Host: 127.0.0.1:{port}".encode() in seen["request"]


def test_chunked_and_eof_terminated_answers():
    port, _ = _serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n8.8.\r\n3\r\n4.4\r\n0\r\n\r\n")
    assert fetch(f"http://127.0.0.1:{port}/", 4) == "8.8.4.4"
    port, _ = _serve_once(b"HTTP/1.0 200 OK\r\n\r\nyour ip: 1.1.1.1\n")
    assert fetch(f"http://127.0.0.1:{port}/", 4) == "your ip: 1.1.1.1\n"


@pytest.mark.parametrize("answer, message", [
    (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", "HTTP 503"),
    (b"garbage without headers", "malformed"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed"),
])
def test_bad_answers_are_oserrors(answer, message):
    port, _ = _serve_once(answer)
    with pytest.raises(OSError, match=message):
        fetch(f"http://127.0.0.1:{port}/", 4)


def test_non_ascii_url_is_an_oserror():
    port, _ = _serve_once(b"HTTP/1.0 200 OK\r\n\r\n8.8.8.8")
    with pytest.raises(OSError, match="ASCII"):
        fetch(f"http://127.0.0.1:{port}/é", 4)


def test_plain_http_source_imports_neither_http_client_nor_ssl():
    import subprocess

    code = ("import sys, edgeddns.echo, edgeddns.ipsource; "
            "print(sorted(m for m in ('http.client', 'ssl', 'requests', 'email.parser') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ---------------------------------------------------------------- https: every check of the TLS context holds

@pytest.fixture
def https_echo(ca, ca_file, monkeypatch):
    """HTTPS echo servers whose certificates come from the test CA, which the system store is made to hold."""
    from tests.clockfix import dated_context
    from tests.fakes.server import FakeServer, Reply

    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # fetch() has no ca_file: the system store decides
    started = []

    def make(*names: str, days_before: float = 1, days_after: float = 90, other_ca=None) -> str:
        srv = FakeServer(lambda req: Reply.text(200, "8.8.4.4\n"),
                         ssl_context=dated_context(other_ca or ca, *names, days_before=days_before,
                                                   days_after=days_after)).start()
        started.append(srv)
        return f"https://127.0.0.1:{srv.port}/ip"

    yield make
    for srv in started:
        srv.stop()


def test_https_source_verifies_and_answers(https_echo):
    assert fetch(https_echo(), 4, timeout=5).strip() == "8.8.4.4"


def test_https_source_refuses_a_certificate_for_another_name(https_echo):
    """The certificate is valid and from a trusted CA, but names example.org: only the hostname check stops it."""
    import ssl

    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        fetch(https_echo("example.org"), 4, timeout=5)


def test_https_source_refuses_an_untrusted_ca_and_an_expired_certificate(https_echo):
    import ssl

    import trustme

    with pytest.raises(ssl.SSLCertVerificationError, match="local issuer|self.signed|unable to get"):
        fetch(https_echo(other_ca=trustme.CA()), 4, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        fetch(https_echo(days_before=100, days_after=-10), 4, timeout=5)


def test_tls_context_itself_checks_the_hostname(https_echo):
    """urllib3 matches hostnames on its own, which hides a context that does not: test the context alone."""
    import socket
    import ssl

    from edgeddns.tls import make_context

    url = https_echo("example.org")
    port = int(url.split(":")[2].split("/")[0])
    ctx = make_context()
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="match"):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
