"""webhook: escaping per place (URL, JSON, form, headers), secrets, answers, and no shell."""

from __future__ import annotations

import json
import os
import textwrap
from urllib.parse import parse_qsl

import pytest

from edgeddns.providers.webhook import fill, render_form, render_json, render_url
from tests.conftest import json_results, run_cli, write_config
from tests.fakes.server import FakeServer, Reply
from tests.fakes.webhook import FakeWebhook

TOKEN = "hook-T0ken/with+odd&chars"
HOSTILE = 'a"b\\c\'d&e=f#g?h/i%j k\n{ip}$(touch /tmp/x);`id`'


@pytest.fixture
def hook(server_context):
    fake = FakeWebhook(token=TOKEN)
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.server = srv
    fake.url = srv.url
    yield fake
    srv.stop()


def hook_config(tmp_path, fake, ca_file, body: str, *, ip="static:8.8.8.8", name="home.example.com",
                rtype="A", ip6="static:2001:4860:4860::8888"):
    return write_config(tmp_path, f"""
        [agent]
        node_id = "test"
        state_dir = "{tmp_path}/state"

        [ip]
        ipv4 = ["{ip}"]
        ipv6 = ["{ip6}"]

        [[records]]
        name = "{name}"
        type = "{rtype}"
        provider = "hook"

        [providers.hook]
        type = "webhook"
        ca_file = "{ca_file}"
        secret = "env:HOOK_TOKEN"
        headers = {{ Authorization = "Bearer {{secret}}" }}
    """ + textwrap.dedent(body).replace("URL/", fake.url))


def update(cfg, *args, token=TOKEN):
    p = run_cli("update", "-c", cfg, "--json", *args, env={"HOOK_TOKEN": token})
    assert "Traceback" not in p.stderr, p.stderr
    return p, json_results(p)


# -- rendering, in process ----------------------------------------------------------

def test_url_values_are_percent_encoded_and_cannot_change_structure():
    v = {"ip": "2001:db8::1", "record": "*.example.com", "type": "AAAA", "previous_ip": HOSTILE}
    url = render_url("https://h.example/u/{record}?ip={ip}&prev={previous_ip}&t={type}#x", v)
    assert url.startswith("https://h.example/u/%2A.example.com?ip=2001%3Adb8%3A%3A1&prev=")
    query = url.split("?", 1)[1].split("#", 1)[0]
    assert dict(parse_qsl(query)) == {"ip": "2001:db8::1", "prev": HOSTILE, "t": "AAAA"}
    assert url.endswith("#x") and url.count("#") == 1 and url.count("?") == 1


def test_json_values_are_escaped_inside_strings():
    v = {"ip": "8.8.8.8", "record": HOSTILE, "type": "A", "previous_ip": ""}
    out = json.dumps(render_json({"name": "{record}", "list": ["{ip}", 5, True], "{type}": {"n": None}}, v))
    assert json.loads(out) == {"name": HOSTILE, "list": ["8.8.8.8", 5, True], "A": {"n": None}}


def test_form_values_are_encoded_per_pair():
    v = {"ip": "2001:db8::1", "record": HOSTILE, "type": "AAAA", "previous_ip": ""}
    out = render_form("ip={ip}&name={record}&static=a+b", v)
    assert parse_qsl(out) == [("ip", "2001:db8::1"), ("name", HOSTILE), ("static", "a b")]


def test_unknown_braces_stay_and_values_are_not_reexpanded():
    assert fill('{"x": {ip}, "y": "{nope}"}', {"ip": "{record}", "record": "r"}) == '{"x": {record}, "y": "{nope}"}'


def test_no_process_is_ever_started(tmp_path, hook, ca_file, monkeypatch):
    """Build and send hostile requests in process with process creation made to fail."""
    import subprocess

    from edgeddns.clock import SystemClock
    from edgeddns.config import load
    from edgeddns.engine import default_http_factory
    from edgeddns.providers.base import ProviderContext
    from edgeddns.providers.webhook import WebhookProvider

    def refuse(*a, **k):
        raise AssertionError("a process was started")

    for name in ("Popen", "run", "call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    monkeypatch.setattr(os, "system", refuse)
    monkeypatch.setattr(os, "popen", refuse)
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    cfg = load(hook_config(tmp_path, hook, ca_file, """
        url = "URL/x?prev={previous_ip}"
        body_format = "text"
        body = "sh -c '{previous_ip}' ; $({previous_ip}) `{previous_ip}`"
    """))
    marker = str(tmp_path / "pwned")
    hostile = HOSTILE.replace("/tmp/x", marker)
    clock = SystemClock()
    p = WebhookProvider(ProviderContext(cfg.providers["hook"], clock, default_http_factory(clock)))
    try:
        assert p.ensure(cfg.records[0], "8.8.8.8", previous=hostile) == "updated"
    finally:
        p.close()
    req = hook.requests[-1]
    # A previous address that is not one plain address (it comes from the state file) is left out.
    assert req.query["prev"] == ""
    assert req.body.decode() == "sh -c '' ; $() ``"
    assert not os.path.exists(marker)


# -- end to end --------------------------------------------------------------------

def test_get_with_ipv6_and_wildcard_in_url_and_previous_ip(tmp_path, hook, ca_file):
    body = 'url = "URL/dns/{record}?ip={ip}&type={type}&previous={previous_ip}"'
    cfg = hook_config(tmp_path, hook, ca_file, body, name="*.example.com", rtype="AAAA")
    p, (r,) = update(cfg)
    assert p.returncode == 0 and r["status"] == "updated", p.stdout + p.stderr
    req = hook.requests[-1]
    assert req.method == "GET" and req.body == b""
    assert req.path == "/dns/%2A.example.com"
    assert req.query_string == "ip=2001%3A4860%3A4860%3A%3A8888&type=AAAA&previous="
    assert req.headers["authorization"] == f"Bearer {TOKEN}"

    _, (r,) = update(cfg)
    assert r["status"] == "unchanged" and len(hook.requests) == 1

    cfg = hook_config(tmp_path, hook, ca_file, body, name="*.example.com", rtype="AAAA",
                      ip6="static:2606:4700:4700::1111")
    _, (r,) = update(cfg)
    assert r["status"] == "updated"
    assert parse_qsl(hook.requests[-1].query_string) == [("ip", "2606:4700:4700::1111"), ("type", "AAAA"),
                                                          ("previous", "2001:4860:4860::8888")]


def test_json_table_body(tmp_path, hook, ca_file):
    cfg = hook_config(tmp_path, hook, ca_file, """
        url = "URL/update"
        method = "PUT"
        json = { name = "{record}", type = "{type}", ip = "{ip}", meta = { ttl = 60, tags = ["ddns", "{type}"] } }
    """)
    _, (r,) = update(cfg)
    assert r["status"] == "updated"
    req = hook.requests[-1]
    assert req.method == "PUT" and req.headers["content-type"] == "application/json"
    assert json.loads(req.body) == {"name": "home.example.com", "type": "A", "ip": "8.8.8.8",
                                    "meta": {"ttl": 60, "tags": ["ddns", "A"]}}
    assert hook.values("home.example.com", "A") == ["8.8.8.8"]


def test_json_string_body_and_custom_content_type(tmp_path, hook, ca_file):
    cfg = hook_config(tmp_path, hook, ca_file, """
        url = "URL/update"
        body_format = "json"
        body = '{"records": [{"host": "{record}", "value": "{ip}", "was": "{previous_ip}"}]}'
    """)
    _, (r,) = update(cfg)
    req = hook.requests[-1]
    assert r["status"] == "updated" and req.method == "POST"
    assert json.loads(req.body) == {"records": [{"host": "home.example.com", "value": "8.8.8.8", "was": ""}]}


def test_form_body_with_ipv6(tmp_path, hook, ca_file):
    cfg = hook_config(tmp_path, hook, ca_file, """
        url = "URL/form"
        body_format = "form"
        body = "name={record}&type={type}&ip={ip}"
    """, rtype="AAAA")
    _, (r,) = update(cfg)
    req = hook.requests[-1]
    assert r["status"] == "updated"
    assert req.body == b"name=home.example.com&type=AAAA&ip=2001%3A4860%3A4860%3A%3A8888"
    assert hook.values("home.example.com", "AAAA") == ["2001:4860:4860::8888"]


def test_wrong_secret_is_auth_and_never_printed(tmp_path, hook, ca_file):
    bad = "Wr0ng-secret-value"
    cfg = hook_config(tmp_path, hook, ca_file, 'url = "URL/x?token={secret}"')
    p, (r,) = update(cfg, token=bad)
    assert r["error"]["code"] == "auth" and "401" in r["error"]["message"]
    assert "***" in r["error"]["message"]  # the server echoed it; we masked it
    assert bad not in p.stdout + p.stderr


def test_success_match(tmp_path, hook, ca_file):
    cfg = hook_config(tmp_path, hook, ca_file, 'url = "URL/x"\nsuccess_match = "\\"ok\\": *true"')
    assert update(cfg)[1][0]["status"] == "updated"
    hook.reply = Reply.json(200, {"ok": False, "error": "quota"})
    _, (r,) = update(cfg, "--force")
    assert r["error"]["code"] == "provider" and "success_match" in r["error"]["message"]


@pytest.mark.parametrize("reply,code,tries", [
    (Reply.text(500, "oops"), "provider", 3),
    (Reply(429, b"slow down", {"Retry-After": "0"}), "rate_limited", 3),
    (Reply.text(404, "no such hook"), "provider", 1),
    (Reply(302, b"", {"Location": "https://elsewhere.example/"}), "provider", 1),
])
def test_error_answers(tmp_path, hook, ca_file, reply, code, tries):
    hook.reply = reply
    _, (r,) = update(hook_config(tmp_path, hook, ca_file, 'url = "URL/x"'))
    assert r["error"]["code"] == code and len(hook.requests) == tries


@pytest.mark.parametrize("body,key", [
    ('url = "https://{record}/x"', "providers.hook.url"),
    ('url = "URL/x?i={addr}"', "providers.hook.url"),
    ('url = "URL/x"\nbody = "t={secret}"', "providers.hook.body"),
    ('url = "URL/x"\nbody_format = "json"\nbody = "{not json"', "providers.hook.body"),
    ('url = "URL/x"\nbody = "a"\njson = { a = 1 }', "providers.hook.json"),
    ('url = "URL/x"\nsuccess_match = "("', "providers.hook.success_match"),
    ('url = "URL/x"\nmethod = "TRACE"', "providers.hook.method"),
])
def test_config_errors(tmp_path, hook, ca_file, body, key):
    p = run_cli("check-config", "-c", hook_config(tmp_path, hook, ca_file, body), env={"HOOK_TOKEN": TOKEN})
    assert p.returncode == 2 and key in p.stderr, p.stderr
