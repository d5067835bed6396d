"""An idle daemon keeps no HTTP session: each provider's is closed when a run ends.

A session holds a connection pool, sockets and a TLS context with the CA
store (about 2 MB with the first one). Runs are minutes apart, so the engine
closes them after every run and the next run builds them again; several
providers then reuse the same freed memory instead of each keeping its own.
"""

from __future__ import annotations

import pytest

from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.engine import Engine, UpdateRequest, default_http_factory
from edgeddns.state import StateStore
from tests.conftest import provider_config, record_toml
from tests.fakes.dyndns2 import FakeDyndns2
from tests.fakes.server import FakeServer

USER, PASSWORD = "user@example.org", "dyn-Pa55word"


@pytest.fixture
def dyn(server_context):
    fake = FakeDyndns2({USER: PASSWORD}, ["home.example.com", "nas.example.net"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.url = srv.url + "nic/update"
    yield fake
    srv.stop()


def test_sessions_are_closed_after_each_run_and_rebuilt_by_the_next(tmp_path, dyn, ca_file):
    providers = "".join(f"""
[providers.{n}]
type = "dyndns2"
username = "{USER}"
password = "{PASSWORD}"
endpoint = "{dyn.url}"
ca_file = "{ca_file}"
timeout = 3
""" for n in ("a", "b"))
    cfg = load(provider_config(tmp_path, providers, record_toml("a") + record_toml("b", "nas.example.net")))
    clock = SystemClock()
    built, closed = [], []
    real = default_http_factory(clock)

    def factory(pc):
        h = real(pc)
        built.append(h)
        close = h.close
        h.close = lambda: (closed.append(h), close())[1]
        return h

    engine = Engine(cfg, clock, StateStore.open(cfg.agent.state_dir), http_factory=factory)
    for run in (1, 2):
        results = engine.run(UpdateRequest(force=True))
        assert [r.status for r in results] in (["updated", "updated"], ["unchanged", "unchanged"]), results
        assert len(built) == 2 * run and closed == built, (run, built, closed)
        assert all(p.ctx._http is None for p in engine._providers.values())
    engine.close()
    assert len(closed) == 4


def test_a_tls_context_is_built_by_the_first_https_request_only(monkeypatch, dyn, ca_file):
    """Its CA store is most of what a session costs (the whole bundle, ~1.2 MB, where SSL_CERT_FILE names
    one): a provider that speaks plain HTTP (a LAN webhook, PowerDNS on localhost) never builds one."""
    from edgeddns import tls
    from edgeddns.http import HttpClient

    built = []
    real = tls.make_context
    monkeypatch.setattr(tls, "make_context", lambda *a, **kw: built.append(a) or real(*a, **kw))
    plain = FakeServer(FakeDyndns2({USER: PASSWORD}, ["home.example.com"])).start()
    http = HttpClient(clock=SystemClock(), ca_file=ca_file, timeout=3)
    try:
        r = http.request("GET", plain.url + "nic/update", params={"hostname": "home.example.com", "myip": "8.8.8.8"},
                         auth=(USER, PASSWORD))
        assert r.status == 200 and r.text.startswith("good"), r.text
        assert built == []
        for ip in ("8.8.8.8", "8.8.4.4"):  # verified with the configured CA: the clocked context is the one used
            r = http.request("GET", dyn.url, params={"hostname": "home.example.com", "myip": ip},
                             auth=(USER, PASSWORD))
            assert r.status == 200 and r.text.startswith("good"), r.text
        assert len(built) == 1 and built[0][0] == ca_file
    finally:
        http.close()
        plain.stop()


def test_no_ambient_netrc_credentials_reach_a_provider(monkeypatch, tmp_path):
    """requests (trust_env) reads ~/.netrc or $NETRC on every request and, for a request without its own
    auth, sends that file's login for the host: over a header a provider needs (a Bearer token), too.
    A provider's credentials come from the config only."""
    from edgeddns.http import HttpClient

    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ambient password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    fake = FakeDyndns2({USER: PASSWORD}, ["home.example.com"])
    srv = FakeServer(fake).start()
    http = HttpClient(clock=SystemClock(), timeout=3)
    try:
        http.request("GET", srv.url + "nic/update", params={"hostname": "home.example.com"})
        http.request("GET", srv.url + "nic/update", headers={"Authorization": "Bearer api-token"})
        r = http.request("GET", srv.url + "nic/update", params={"hostname": "home.example.com", "myip": "8.8.8.8"},
                         auth=(USER, PASSWORD))
    finally:
        http.close()
        srv.stop()
    assert [q.headers.get("authorization") for q in fake.requests[:2]] == [None, "Bearer api-token"]
    assert r.text.startswith("good"), r.text  # the configured credentials still go
