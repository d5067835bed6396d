"""At debug level: one line per HTTP call (method, host, path, status, ms, attempt), never a secret."""

from __future__ import annotations

import base64
import re

from tests.clockfix import chronyd, fake_ntp  # noqa: F401
from tests.conftest import run_cli
from tests.fakes.server import Reply
from tests.test_dyndns2 import DUCK_TOKEN, PASSWORD, USER, duck, duck_config, dyn, dyn_config  # noqa: F401

LINE = re.compile(r"DEBUG: http (GET|POST|PUT|PATCH|DELETE) (\S+?)(/\S*) -> (\S+) in (\d+) ms \(attempt (\d+)\)$", re.M)


def secrets_absent(text: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in text
        assert base64.b64encode(s.encode()).decode() not in text


def test_each_http_call_and_its_attempt(tmp_path, dyn, ca_file):  # noqa: F811
    dyn.server.faults = [Reply(503, b"<html>busy</html>", {"Content-Type": "text/html"})]
    r = run_cli("update", "-v", "--json", "-c", dyn_config(tmp_path, dyn, ca_file))
    calls = LINE.findall(r.stderr)
    assert [(m, h, p, st, att) for m, h, p, st, _ms, att in calls] == [
        ("GET", "127.0.0.1", "/nic/update", "503", "1"), ("GET", "127.0.0.1", "/nic/update", "200", "2")], r.stderr
    assert "on attempt 1; trying again in" in r.stderr
    secrets_absent(r.stderr, PASSWORD, f"{USER}:{PASSWORD}")
    assert "myip=" not in r.stderr and "hostname=" not in r.stderr  # no query string at all


def test_a_token_in_the_query_never_shows(tmp_path, duck, ca_file):  # noqa: F811
    r = run_cli("update", "-v", "-c", duck_config(tmp_path, duck, ca_file))
    calls = LINE.findall(r.stderr)
    assert [(m, p, st) for m, _h, p, st, _ms, _a in calls] == [("GET", "/update", "200")], r.stderr
    secrets_absent(r.stderr + r.stdout, DUCK_TOKEN)


def test_no_http_line_without_verbose(tmp_path, duck, ca_file):  # noqa: F811
    r = run_cli("update", "-c", duck_config(tmp_path, duck, ca_file))
    assert "http GET" not in r.stderr


def test_each_ntp_query_at_debug_level(chronyd, fake_ntp, caplog):  # noqa: F811
    import logging

    from edgeddns.sntp import SntpClient

    silent = fake_ntp(0.0, "silent")
    with caplog.at_level(logging.DEBUG, logger="edgeddns"):
        logging.getLogger("edgeddns").propagate = True
        try:
            SntpClient(timeout=0.4).measure([chronyd, silent.server])
        finally:
            logging.getLogger("edgeddns").propagate = False
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ntp ")]
    assert any(re.match(rf"ntp {re.escape(chronyd)} -> stratum 8, offset [+-]\d+\.\d{{3}} s, delay \d+\.\d ms", x)
               for x in lines), lines
    assert any(x.startswith(f"ntp {silent.server} -> no answer within 0.4 s") for x in lines), lines


def test_each_scheduler_decision_at_debug_level(tmp_path, caplog):
    """An event makes records due, a timer fires, a run starts: one debug line each."""
    import logging

    from edgeddns.events import Event
    from edgeddns.result import Result
    from tests.test_scheduler import make

    s, clock, _ = make(tmp_path)
    logger = logging.getLogger("edgeddns")
    with caplog.at_level(logging.DEBUG, logger="edgeddns"):
        logger.propagate = True
        try:
            s.submit(Event("ubus", records=["a.lan"], iface="wan"))
            clock.t += 1
            jobs = s.take(clock.t)
            s.complete(jobs, [Result("a.lan", "A", "lan", None, None, "failed",
                                     error={"code": "network", "message": "x"})])
            clock.t += 3600
            s.take(clock.t)
        finally:
            logger.propagate = False
    lines = [r.getMessage() for r in caplog.records]
    assert "event ubus wan: a.lan/A/lan due, settling 5 ms" in lines, lines
    assert "run: a.lan/A/lan (ubus)" in lines, lines
    assert "timer: retry check for a.lan/A/lan" in lines, lines
    assert "run: a.lan/A/lan (retry)" in lines, lines


def test_a_secret_in_a_webhook_path_is_masked_in_the_http_line(tmp_path, server_context, ca_file):
    """A webhook URL may carry the secret in its path (chat webhooks do): the line shows ***, never it."""
    from urllib.parse import quote

    from tests.fakes.server import FakeServer
    from tests.fakes.webhook import FakeWebhook
    from tests.test_webhook import TOKEN, hook_config

    fake = FakeWebhook(token=TOKEN)
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.url = srv.url
    try:
        cfg = hook_config(tmp_path, fake, ca_file, 'url = "URL/hooks/{secret}/update?ip={ip}"')
        r = run_cli("update", "-v", "-c", cfg, env={"HOOK_TOKEN": TOKEN})
    finally:
        srv.stop()
    assert "hook-T0ken" not in r.stderr and quote(TOKEN, safe="") not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if "DEBUG: http " in x]
    assert len(lines) == 1 and "/hooks/***/update -> 200" in lines[0], r.stderr
