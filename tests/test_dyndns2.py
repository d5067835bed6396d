"""dyndns2 and DuckDNS end to end: every documented answer, and the back-off each demands."""

from __future__ import annotations

import json
import os
import textwrap
import time

import pytest

from edgeddns.providers.dyndns2 import ANSWERS, HOLD_FILE
from tests.conftest import json_results, provider_config, record_toml, run_cli, write_config
from tests.fakes.dyndns2 import FakeDuckDNS, FakeDyndns2
from tests.fakes.server import FakeServer, Reply

USER, PASSWORD = "user@example.org", "dyn-Pa55word:with colon"
DUCK_TOKEN = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"


@pytest.fixture
def dyn(server_context):
    fake = FakeDyndns2({USER: PASSWORD}, ["home.example.com", "nas.example.net"], v6_param="myipv6")
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.server = srv
    fake.url = srv.url + "nic/update"
    yield fake
    srv.stop()


@pytest.fixture
def duck(server_context):
    fake = FakeDuckDNS(DUCK_TOKEN, ["myhome"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.url = srv.url + "update"
    yield fake
    srv.stop()


def dyn_config(tmp_path, fake, ca_file, *, ip="static:8.8.8.8", preset="noip", password=PASSWORD,
               extra="", records=None):
    return provider_config(tmp_path, f"""
[providers.dyn]
type = "dyndns2"
preset = "{preset}"
username = "{USER}"
password = "{password}"
endpoint = "{fake.url}"
ca_file = "{ca_file}"
timeout = 3
{textwrap.dedent(extra)}
""", records if records is not None else record_toml("dyn"), ip=ip)


def update(cfg, *args):
    p = run_cli("update", "-c", cfg, "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    return p, json_results(p)


def hold_path(tmp_path) -> str:
    return os.path.join(str(tmp_path), "state", HOLD_FILE)


def holds(tmp_path):
    with open(hold_path(tmp_path)) as f:
        return json.load(f)["holds"]


def test_good_then_no_request_then_update(tmp_path, dyn, ca_file):
    cfg = dyn_config(tmp_path, dyn, ca_file)
    p, (r,) = update(cfg)
    assert p.returncode == 0 and r["status"] == "updated", p.stdout + p.stderr
    assert dyn.values("home.example.com", "A") == ["8.8.8.8"]
    (req,) = dyn.requests
    assert req.query == {"hostname": "home.example.com", "myip": "8.8.8.8"}
    assert req.headers["user-agent"].startswith("edgeddns/") and "(+https://" in req.headers["user-agent"]
    assert req.headers["authorization"].startswith("Basic ")

    _, (r,) = update(cfg)  # nothing changed: no request at all (repeated nochg gets hosts blocked)
    assert r["status"] == "unchanged" and len(dyn.calls) == 1

    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file, ip="static:1.1.1.1"))
    assert r["status"] == "updated" and dyn.values("home.example.com", "A") == ["1.1.1.1"]
    assert not os.path.exists(hold_path(tmp_path))


def test_nochg_is_unchanged(tmp_path, dyn, ca_file):
    dyn.seed("home.example.com", "A", "8.8.8.8")
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file))
    assert r["status"] == "unchanged" and r["error"] is None and dyn.writes == 0


def test_aaaa_noip_uses_myipv6(tmp_path, dyn, ca_file):
    cfg = dyn_config(tmp_path, dyn, ca_file, records="""
        [[records]]
        name = "nas.example.net"
        type = "AAAA"
        provider = "dyn"
    """)
    _, (r,) = update(cfg)
    assert r["status"] == "updated"
    assert dyn.requests[-1].query == {"hostname": "nas.example.net", "myipv6": "2001:4860:4860::8888"}
    assert dyn.values("nas.example.net", "AAAA") == ["2001:4860:4860::8888"]
    assert dyn.values("nas.example.net", "A") == []


def test_dynu_keeps_the_other_family(tmp_path, dyn, ca_file):
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file, preset="dynu"))
    assert r["status"] == "updated"
    assert dyn.requests[-1].query == {"hostname": "home.example.com", "myip": "8.8.8.8", "myipv6": "no"}


# Answers forced by the fake; badauth, nohost and badagent also come from real checks below.
STOP = ["badauth", "!donator", "notfqdn", "nohost", "numhost", "abuse", "badagent"]
WAIT = ["911", "dnserr"]
CODES = {"badauth": "auth", "!donator": "provider", "notfqdn": "not_found", "nohost": "not_found",
         "numhost": "provider", "abuse": "rate_limited", "badagent": "provider", "dnserr": "provider",
         "911": "provider"}


def test_every_documented_answer_is_mapped():
    assert set(STOP) | set(WAIT) == set(ANSWERS) - {"KO"}
    assert {a for a, x in ANSWERS.items() if x.hold} == set(WAIT)


@pytest.mark.parametrize("answer", STOP + WAIT)
def test_error_answer_then_no_request(tmp_path, dyn, ca_file, answer):
    dyn.answers = [answer]
    cfg = dyn_config(tmp_path, dyn, ca_file)
    p, (r,) = update(cfg)
    assert p.returncode == 1 and r["status"] == "failed"
    assert r["error"]["code"] == CODES[answer] and f"'{answer}'" in r["error"]["message"]
    assert len(dyn.calls) == 1  # not retried, whatever the engine's retry policy
    (h,) = holds(tmp_path).values()
    assert h["answer"] == answer and (h["until"] is None) == (answer in STOP)
    assert PASSWORD not in json.dumps(holds(tmp_path))

    # A restart and a new address: still no request.
    p, (r,) = update(dyn_config(tmp_path, dyn, ca_file, ip="static:1.1.1.1"), "--force")
    assert r["status"] == "failed" and r["error"]["code"] == CODES[answer]
    assert "held after" in r["error"]["message"] and len(dyn.calls) == 1


def test_911_hold_expires_after_30_minutes(tmp_path, dyn, ca_file):
    dyn.answers = ["911"]
    cfg = dyn_config(tmp_path, dyn, ca_file)
    update(cfg)
    path = hold_path(tmp_path)
    with open(path) as f:
        data = json.load(f)
    (h,) = data["holds"].values()
    assert 29 * 60 < h["until"] - h["since"] <= 30 * 60 + 1
    h["until"] = h["since"] - 1  # as if 30 minutes had passed
    with open(path, "w") as f:
        json.dump(data, f)
    _, (r,) = update(cfg)
    assert r["status"] == "updated" and len(dyn.calls) == 2
    assert holds(tmp_path) == {}


def test_badauth_stops_until_the_password_changes(tmp_path, dyn, ca_file):
    cfg = dyn_config(tmp_path, dyn, ca_file, password="wrong-password")
    p, (r,) = update(cfg)
    assert r["error"]["code"] == "auth" and dyn.requests[-1].headers["authorization"].startswith("Basic ")
    assert "wrong-password" not in p.stdout + p.stderr
    for _ in range(2):
        _, (r,) = update(cfg, "--force")
        assert r["error"]["code"] == "auth" and len(dyn.calls) == 1
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file))  # the user fixed the password
    assert r["status"] == "updated" and len(dyn.calls) == 2


def test_hold_is_per_record(tmp_path, dyn, ca_file):
    records = """
        [[records]]
        name = "unknown.example.com"
        provider = "dyn"

        [[records]]
        name = "home.example.com"
        provider = "dyn"
    """
    cfg = dyn_config(tmp_path, dyn, ca_file, records=records)
    _, (bad, good) = update(cfg)
    assert bad["error"]["code"] == "not_found" and good["status"] == "updated"
    _, (bad, good) = update(dyn_config(tmp_path, dyn, ca_file, ip="static:1.1.1.1", records=records))
    assert "held after 'nohost'" in bad["error"]["message"] and good["status"] == "updated"
    assert [c["hostname"] for c in dyn.calls] == ["unknown.example.com", "home.example.com", "home.example.com"]


def test_generic_user_agent_gets_badagent(tmp_path, dyn, ca_file):
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file, extra='user_agent = "python-requests/2.31"'))
    assert r["error"]["code"] == "provider" and "'badagent'" in r["error"]["message"]


def test_good_127_for_another_address_is_badagent(tmp_path, dyn, ca_file):
    dyn.answers = ["good 127.0.0.1"]
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file))
    assert r["status"] == "failed" and "'badagent'" in r["error"]["message"]


def test_server_error_is_retried_and_not_held(tmp_path, dyn, ca_file):
    dyn.server.faults = [Reply(503, b"<html>busy</html>", {"Content-Type": "text/html"})]
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file))
    assert r["status"] == "updated" and r["attempts"] == 2


def test_unknown_answer_is_provider_error(tmp_path, dyn, ca_file):
    dyn.answers = ["<html>maintenance</html>"]
    _, (r,) = update(dyn_config(tmp_path, dyn, ca_file))
    assert r["error"]["code"] == "provider" and "unexpected answer" in r["error"]["message"]


def duck_config(tmp_path, fake, ca_file, token=DUCK_TOKEN, rtype="A"):
    return write_config(tmp_path, f"""
        [agent]
        state_dir = "{tmp_path}/state"
        [ip]
        ipv4 = ["static:8.8.8.8"]
        ipv6 = ["static:2001:4860:4860::8888"]
        [providers.duck]
        type = "dyndns2"
        preset = "duckdns"
        token = "{token}"
        endpoint = "{fake.url}"
        ca_file = "{ca_file}"
        [[records]]
        name = "myhome.duckdns.org"
        type = "{rtype}"
        provider = "duck"
    """)


def test_duckdns_a_and_aaaa(tmp_path, duck, ca_file):
    _, (r,) = update(duck_config(tmp_path, duck, ca_file))
    assert r["status"] == "updated"
    assert duck.calls[-1] == {"domains": "myhome", "token": DUCK_TOKEN, "ip": "8.8.8.8", "verbose": "true"}
    _, (r,) = update(duck_config(tmp_path, duck, ca_file, rtype="AAAA"))
    assert r["status"] == "updated" and duck.calls[-1]["ipv6"] == "2001:4860:4860::8888"
    assert "ip" not in duck.calls[-1]
    assert duck.records == {("myhome", "A"): "8.8.8.8", ("myhome", "AAAA"): "2001:4860:4860::8888"}
    # Already right at DuckDNS (state lost): NOCHANGE is "unchanged".
    os.unlink(os.path.join(str(tmp_path), "state", "state.json"))
    _, (r,) = update(duck_config(tmp_path, duck, ca_file))
    assert r["status"] == "unchanged"


def test_duckdns_ko_is_auth_and_held(tmp_path, duck, ca_file):
    p, (r,) = update(duck_config(tmp_path, duck, ca_file, token="00000000-bad-token"))
    assert r["error"]["code"] == "auth" and "'KO'" in r["error"]["message"]
    assert "00000000-bad-token" not in p.stdout + p.stderr
    _, (r,) = update(duck_config(tmp_path, duck, ca_file, token="00000000-bad-token"))
    assert "held after 'KO'" in r["error"]["message"] and len(duck.calls) == 1


@pytest.mark.parametrize("body,key", [
    ('username = "u"\npassword = "p"', "providers.d.preset"),
    ('preset = "noip"\npassword = "p"', "providers.d.username"),
    ('preset = "noip"\nusername = "u"', "providers.d.password"),
    ('preset = "duckdns"', "providers.d.token"),
    ('preset = "nosuch"', "providers.d.preset"),
])
def test_config_errors(tmp_path, body, key):
    cfg = write_config(tmp_path, f"""
        [agent]
        state_dir = "{tmp_path}/state"
        [providers.d]
        type = "dyndns2"
        {textwrap.indent(body, "        ").strip()}
    """)
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2 and key in p.stderr, p.stderr


def test_911_hold_never_grows_when_the_clock_went_back(tmp_path, dyn, ca_file):
    dyn.answers = ["911"]
    cfg = dyn_config(tmp_path, dyn, ca_file)
    update(cfg)
    path = hold_path(tmp_path)
    with open(path) as f:
        data = json.load(f)
    (h,) = data["holds"].values()
    h["since"] += 10 * 365 * 86400  # written while the clock was ten years ahead
    h["until"] += 10 * 365 * 86400
    with open(path, "w") as f:
        json.dump(data, f)
    _, (r,) = update(cfg, "--force")
    assert "held after '911'" in r["error"]["message"] and len(dyn.calls) == 1
    (h,) = holds(tmp_path).values()
    assert h["until"] - time.time() <= 30 * 60 + 5  # re-anchored to at most 30 minutes from now
