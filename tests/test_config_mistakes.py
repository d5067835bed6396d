"""A new user's typical config mistakes: each gets one line naming the file and key, exit 2.

Found by trying them on a fresh clone (see /work/team/newcomer.notes.md): an
empty string that silently meant "the default", a file saved with a byte-order
mark, an empty file that ran an agent doing nothing.
"""

from __future__ import annotations

import pytest

from edgeddns.config import load
from edgeddns.errors import ConfigError
from tests.conftest import run_cli, write_config

BASE = """
[agent]
state_dir = "state"
[ip]
ipv4 = ["static:192.0.2.1"]
[providers.lan]
type = "hosts"
path = "hosts"
[[records]]
name = "a.example.com"
provider = "lan"
allow_private = true
"""
MQTT = '[mqtt]\nhost = "broker.lan"\n'


def _error(tmp_path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load(write_config(tmp_path, text), environ={})
    return e.value


@pytest.mark.parametrize("text,key,words", [
    (BASE.replace('state_dir = "state"', 'state_dir = ""'), "agent.state_dir", "is empty"),
    (BASE.replace("[agent]", '[agent]\nnode_id = ""'), "agent.node_id", "must be 1 to 64"),
    (BASE + MQTT.replace('"broker.lan"', '""'), "mqtt.host", "is empty"),
    (BASE + MQTT + 'discovery_prefix = ""\n', "mqtt.discovery_prefix", "without wildcards"),
    (BASE + MQTT + 'discovery_prefix = "home/#"\n', "mqtt.discovery_prefix", "without wildcards"),
    (BASE + MQTT + 'ca_file = ""\n', "mqtt.ca_file", "is empty"),
], ids=["state_dir", "node_id", "mqtt.host", "discovery_prefix", "discovery_prefix#", "ca_file"])
def test_an_empty_string_is_not_the_default(tmp_path, text, key, words):
    """An empty value was taken as "not set" (state_dir, node_id) or accepted as is (mqtt.host)."""
    e = _error(tmp_path, text)
    assert e.key == key, e.message
    assert words in e.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# [agent]\n"], ids=["empty", "blank", "comments"])
def test_an_empty_file_is_an_error(tmp_path, text):
    """An empty config loaded as 0 records: ``run`` then idled forever, doing nothing."""
    path = write_config(tmp_path, text)
    for cmd in ("check-config", "update", "run"):
        r = run_cli(cmd, "-c", path, timeout=30)
        assert r.returncode == 2, (cmd, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
        assert f"{path}: " in r.stderr and "no settings" in r.stderr, r.stderr


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Windows editors may start a UTF-8 file with a BOM: it was 'invalid TOML (line 1, column 1)'."""
    path = write_config(tmp_path, "\ufeff" + BASE.lstrip())
    cfg = load(path, environ={})
    assert cfg.records[0].name == "a.example.com"


def test_a_typo_gets_a_suggestion(tmp_path):
    e = _error(tmp_path, BASE + 'typ = "AAAA"\n')
    assert e.key == "records[0].typ"
    assert 'did you mean "type"?' in e.message and "(allowed: " in e.message
    e = _error(tmp_path, BASE.replace("state_dir", "statedir"))
    assert 'did you mean "state_dir"?' in e.message
    e = _error(tmp_path, BASE + "tll = 60\n")  # short keys too
    assert 'did you mean "ttl"?' in e.message, e.message
    e = _error(tmp_path, BASE + MQTT + 'hostname = "b"\n')
    assert 'did you mean "host"?' in e.message, e.message
    e = _error(tmp_path, BASE + "colour = 1\n")  # nothing close: no guess
    assert "did you mean" not in e.message


def test_no_provider_defined_says_so(tmp_path):
    text = BASE.replace('[providers.lan]\ntype = "hosts"\npath = "hosts"\n', "")
    e = _error(tmp_path, text)
    assert e.key == "records[0].provider"
    assert "no provider is defined" in e.message and "[providers.lan]" in e.message


def test_config_option_before_the_command(tmp_path):
    """``edgeddns -c FILE update`` (the git/ssh habit) was 'invalid choice: FILE'."""
    path = write_config(tmp_path, BASE)
    r = run_cli("-c", path, "check-config", timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"{path}: OK" in r.stderr
    # After the command it still wins over one given before.
    r = run_cli("-c", "/nonexistent/x.toml", "check-config", "-c", path, timeout=30)
    assert r.returncode == 0, r.stderr


def test_relative_commands_are_next_to_the_config(tmp_path):
    """docs/config.md: relative paths are relative to the config's directory. A ``cmd:./x`` source and a
    ``reload_cmd = "./x"`` ran against the agent's working directory instead ("/" under procd): check-config
    said OK, every update failed with "command not found"."""
    script = tmp_path / "getip.sh"
    script.write_text("#!/bin/sh\necho 198.51.100.77\n")
    script.chmod(0o755)
    text = (BASE.replace('ipv4 = ["static:192.0.2.1"]', "ipv4 = [\"cmd:./getip.sh --family '4 only'\"]")
            .replace('path = "hosts"', 'path = "hosts"\nreload_cmd = "./getip.sh"'))
    path = write_config(tmp_path, text)
    cfg = load(path, environ={})
    assert cfg.ip.ipv4 == [f"cmd:{script} --family '4 only'"]
    assert cfg.providers["lan"].options["reload_cmd"] == str(script)
    r = run_cli("update", "-c", path, timeout=60)  # cwd is the repository, not tmp_path
    assert r.returncode == 0 and "updated" in r.stdout and "198.51.100.77" in r.stdout, r
    # A bare name is looked up in PATH as before, an absolute path is kept.
    cfg = load(write_config(tmp_path, BASE.replace('"static:192.0.2.1"', '"cmd:getip.sh"', 1)), environ={})
    assert cfg.ip.ipv4 == ["cmd:getip.sh"]


def test_a_broken_command_line_is_a_config_error(tmp_path):
    e = _error(tmp_path, BASE.replace('"static:192.0.2.1"', "\"cmd:sh -c 'ip addr\""))
    assert e.key == "ip.ipv4[0]" and "not a valid command line" in e.message, e.message


@pytest.mark.parametrize("quick", [True, False], ids=["line-scan", "toml"])
def test_trigger_reads_the_state_dir_of_a_file_with_a_byte_order_mark(tmp_path, quick):
    """``trigger``/``status`` read state_dir on their own: with a BOM they must find the agent's socket too."""
    from edgeddns.statedir import state_dir_of

    text = BASE.lstrip() if quick else BASE.lstrip() + 'x = """multi-line strings send it to the parser"""\n'
    path = write_config(tmp_path, "\ufeff" + text)
    assert state_dir_of(path) == str(tmp_path / "state")


def test_a_missing_relative_file_names_where_it_was_looked_for(tmp_path):
    """``api_token_file = "cf.token"`` is next to the config, not in the working directory: say where."""
    e = _error(tmp_path, BASE + '[providers.cf]\ntype = "cloudflare"\napi_token_file = "cf.token"\n')
    assert e.key == "providers.cf.api_token_file"
    assert f"cannot read cf.token ({tmp_path / 'cf.token'}): No such file" in e.message, e.message
    e = _error(tmp_path, BASE + '[providers.cf]\ntype = "cloudflare"\napi_token_file = "/nonexistent/cf.token"\n')
    assert "cannot read /nonexistent/cf.token: No such file" in e.message, e.message
    e = _error(tmp_path, BASE + MQTT + 'ca_file = "ca.pem"\n')
    assert e.key == "mqtt.ca_file" and f"no such file: {tmp_path / 'ca.pem'}" in e.message, e.message


def test_trigger_and_status_say_not_utf8_like_the_loader(tmp_path):
    """A binary file: the loader says "not UTF-8 text"; trigger/status printed Python's codec error."""
    path = tmp_path / "config.toml"
    path.write_bytes(b"\x00\xab\xcd binary \xff\xfe garbage")
    for cmd in ("check-config", "status", "trigger"):
        r = run_cli(cmd, "-c", str(path), timeout=30)
        assert r.returncode == 2, (cmd, r)
        assert r.stderr.strip() == f"edgeddns: {path}: not UTF-8 text", (cmd, r.stderr)


def test_a_table_declared_twice_is_named_as_written(tmp_path):
    """Uncommenting a template section that already exists: tomllib says "('providers', 'lan')"."""
    e = _error(tmp_path, BASE + '[providers.lan]\ntype = "hosts"\npath = "other"\n')
    assert e.key == "" and "invalid TOML: Cannot declare [providers.lan] twice (at line" in e.message, e.message
    e = _error(tmp_path, "[agent]\n" + BASE)
    assert "Cannot declare [agent] twice" in e.message, e.message


@pytest.mark.parametrize("text,key,home", [
    (BASE + "poll_interval = 5\n", "records[0].poll_interval", "[agent]"),    # after [[records]]: the record's
    ("state_dir = \"st\"\n" + BASE, "state_dir", "[agent]"),                   # no header at all
    (BASE.replace('path = "hosts"', 'path = "hosts"\nipv6 = ["interface:lan"]'), "providers.lan.ipv6", "[ip]"),
    (BASE + MQTT.replace("[mqtt]\n", "[mqtt]\n[clock]\n"), "clock.host", "[mqtt]"),
], ids=["after-records", "top-level", "in-provider", "in-clock"])
def test_a_key_under_the_wrong_header_says_where_it_belongs(tmp_path, text, key, home):
    """In TOML a key belongs to the last header above it: the classic trap is a setting written after a
    [[records]] entry. The message said only "unknown key (allowed: ...)"."""
    e = _error(tmp_path, text)
    assert e.key == key, e.message
    assert f"belongs in {home}" in e.message, e.message


def test_an_interface_that_does_not_exist_is_named_as_such():
    """``interface:wan`` on OpenWrt (wan is netifd's name; the device is eth0.2 or pppoe-wan) or a typo on a
    NAS said only "no IPv4 address on wan", as if the interface were up without an address."""
    import socket

    from edgeddns.ipsource import Detector

    here = [n for _, n in socket.if_nameindex()]
    reason = Detector().detect(["interface:nosuch0"], 4).reason()
    assert "no IPv4 address on nosuch0: no such interface here" in reason, reason
    assert here[0] in reason and "ubus:nosuch0" in reason, reason
    # An interface that exists but has no address of the family keeps the plain words.
    reason = Detector(interface_addresses=lambda fam: []).detect([f"interface:{here[0]}"], 4).reason()
    assert reason.endswith(f"no IPv4 address on {here[0]}"), reason


@pytest.mark.parametrize("name,words", [
    ("bücher.example.com", '"xn--bcher-kva.example.com"'),
    ("中文.example.com", '"xn--fiq228c.example.com"'),
    ("https://home.example.com/", 'a URL: give the name only, "home.example.com"'),
])
def test_a_record_name_mistake_gets_the_fix(tmp_path, name, words):
    """An internationalized name must be written in its ASCII (IDNA) form; a URL is not a name."""
    e = _error(tmp_path, BASE.replace('"a.example.com"', f'"{name}"'))
    assert e.key == "records[0].name" and words in e.message, e.message


def test_check_config_refuses_the_state_dir_run_would_refuse(tmp_path):
    """check-config said OK for a state_dir that is a file; ``run`` and ``update`` then exited 2."""
    (tmp_path / "afile").write_text("")
    path = write_config(tmp_path, BASE.replace('state_dir = "state"', 'state_dir = "afile"'))
    r = run_cli("check-config", "-c", path, timeout=30)
    assert r.returncode == 2, r
    assert r.stderr.strip() == f"edgeddns: {path}: agent.state_dir: {tmp_path / 'afile'} is not a directory", r.stderr
    r = run_cli("update", "-c", path, timeout=30)
    assert r.returncode == 2 and "is not a directory" in r.stderr, r
    # A state dir that does not exist yet is fine: run creates it (check-config creates nothing).
    path = write_config(tmp_path, BASE.replace('state_dir = "state"', 'state_dir = "later/state"'))
    r = run_cli("check-config", "-c", path, timeout=30)
    assert r.returncode == 0 and not (tmp_path / "later").exists(), r


def test_a_provider_key_in_the_wrong_provider_gets_no_header_hint(tmp_path):
    """``username`` under cloudflare is a provider mistake (dyndns2 takes it), not a misplaced [mqtt] key."""
    e = _error(tmp_path, BASE + '[providers.cf]\ntype = "cloudflare"\napi_token = "env:T"\nusername = "me"\n'
               .replace('"env:T"', '"tok-123456"'))
    assert e.key == "providers.cf.username" and "belongs in" not in e.message, e.message


def test_a_fraction_where_an_integer_goes_is_named_with_its_value(tmp_path):
    """``ttl = 600.0`` said "must be an integer, not a number": 600.0 is a number."""
    e = _error(tmp_path, BASE + "ttl = 600.0\n")
    assert e.key == "records[0].ttl", e.message
    assert e.message.endswith("must be an integer, not a decimal number (600.0)"), e.message
    e = _error(tmp_path, BASE + 'ttl = "600"\n')  # other types keep their words
    assert e.message.endswith("must be an integer, not a string"), e.message


def test_trigger_and_status_on_an_empty_config_say_so(tmp_path):
    """They read state_dir alone: an empty file sent them to the default state dir ("no agent is running")."""
    path = write_config(tmp_path, "# nothing yet\n")
    for cmd in ("status", "trigger"):
        r = run_cli(cmd, "-c", path, timeout=30)
        assert r.returncode == 2 and "no settings: the file is empty or only comments" in r.stderr, (cmd, r)


def test_check_config_by_a_user_accepts_a_root_owned_state_dir(tmp_path, monkeypatch, capsys):
    """A user validating the router's config (agent runs as root) must not be told root's dir is untrusted."""
    import os

    from edgeddns.cli import main

    if os.geteuid() != 0:
        pytest.skip("needs a root-owned directory")
    (tmp_path / "state").mkdir(mode=0o700)
    path = write_config(tmp_path, BASE)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["check-config", "-c", path]) == 0, capsys.readouterr().err
    (tmp_path / "state").chmod(0o777)  # but never a dir others may write
    assert main(["check-config", "-c", path]) == 2
    assert "writable by group or others" in capsys.readouterr().err


def test_trigger_and_status_refuse_an_empty_state_dir_like_the_loader(tmp_path):
    path = write_config(tmp_path, BASE.replace('state_dir = "state"', 'state_dir = ""'))
    for cmd in ("check-config", "status", "trigger"):
        r = run_cli(cmd, "-c", path, timeout=30)
        assert r.returncode == 2, (cmd, r)
        assert r.stderr.strip() == f"edgeddns: {path}: agent.state_dir: is empty (leave it out for the default)", r


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:99999/", "not a valid URL"),
    ("http://ip.example.net:port/", "not a valid URL"),
    ("http://[::1/", "not a valid URL"),
    ("http:///ip", "names no host"),
], ids=["port-range", "port-word", "bracket", "no-host"])
def test_a_url_source_that_cannot_be_fetched_is_a_config_error(tmp_path, url, words):
    """A port out of range was accepted and each check then failed as "internal (a bug; please report)"."""
    path = write_config(tmp_path, BASE.replace("static:192.0.2.1", f"url:{url}"))
    r = run_cli("check-config", "-c", path, timeout=30)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0 and "ip.ipv4[0]" in r.stderr and words in r.stderr, r.stderr


@pytest.mark.parametrize("provider,key", [
    ('type = "dyndns2"\nendpoint = "https://127.0.0.1:99999/nic/update"\nusername = "u"\npassword = "p"',
     "providers.p.endpoint"),
    ('type = "dyndns2"\nendpoint = "https:///nic/update"\nusername = "u"\npassword = "p"', "providers.p.endpoint"),
    ('type = "webhook"\nurl = "https://hooks.example.net:0x50/ddns"', "providers.p.url"),
], ids=["endpoint-port", "endpoint-no-host", "webhook-url-port"])
def test_a_provider_url_that_cannot_be_fetched_is_a_config_error(tmp_path, provider, key):
    """These loaded, and every update then failed with the HTTP library's words for it."""
    text = BASE.replace("[providers.lan]", f"[providers.p]\n{provider}\n\n[providers.lan]")
    e = _error(tmp_path, text)
    assert e.key == key and ("not a valid URL" in e.message or "names no host" in e.message), (e.key, e.message)
