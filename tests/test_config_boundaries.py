"""Config load refuses what would leak or break at the first update: credentials over cleartext
http://, header values that cannot be sent (non-Latin-1), secret files that are not small regular files."""

from __future__ import annotations

import os
import time

import pytest

from edgeddns.config import load
from edgeddns.errors import ConfigError
from tests.conftest import run_cli, write_config

HEAD = """
[agent]
node_id = "n1"
state_dir = "state"
[ip]
ipv4 = ["static:8.8.8.8"]
"""


def _load(tmp_path, provider: str, record_provider: str = "p"):
    name = "home.duckdns.org" if "duckdns" in provider else "home.example.com"
    text = HEAD + provider + f'\n[[records]]\nname = "{name}"\nprovider = "{record_provider}"\n'
    return load(write_config(tmp_path, text), environ={})


def _fails(tmp_path, provider: str, key: str, words=()) -> str:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, provider)
    assert e.value.key == key, e.value.message
    for w in words:
        assert w in e.value.message
    return e.value.message


DYN_HTTP = """
[providers.p]
type = "dyndns2"
endpoint = "http://members.example.net/nic/update"
username = "u"
password = "pw"
"""

CLEARTEXT = [
    (DYN_HTTP, "providers.p.endpoint"),
    ('[providers.p]\ntype = "dyndns2"\npreset = "duckdns"\ntoken = "t0k"\n'
     'endpoint = "http://www.duckdns.org/update"\n', "providers.p.endpoint"),
    ('[providers.p]\ntype = "webhook"\nurl = "http://hooks.example.net/u?ip={ip}"\n'
     '[providers.p.headers]\nAuthorization = "Bearer abc"\n', "providers.p.url"),
    ('[providers.p]\ntype = "webhook"\nurl = "http://hooks.example.net/u?ip={ip}&t={secret}"\nsecret = "s3"\n',
     "providers.p.url"),
    ('[providers.p]\ntype = "webhook"\nurl = "http://hooks.example.net/u?ip={ip}"\nsecret = "s3"\n'
     '[providers.p.headers]\nX-Token = "{secret}"\n', "providers.p.url"),
    ('[providers.p]\ntype = "webhook"\nurl = "http://user:pw@hooks.example.net/u?ip={ip}"\n', "providers.p.url"),
    ('[providers.p]\ntype = "cloudflare"\napi_token = "tok"\nendpoint = "http://cf.example.net/client/v4"\n',
     "providers.p.endpoint"),
]


@pytest.mark.parametrize("provider,key", CLEARTEXT)
def test_credentials_over_cleartext_http_are_a_config_error(tmp_path, provider, key):
    msg = _fails(tmp_path, provider, key, ["http://", "allow_http"])
    assert "pw" not in msg.replace("http", "") and "abc" not in msg and "s3" not in msg and "t0k" not in msg


@pytest.mark.parametrize("provider,key", CLEARTEXT)
def test_allow_http_or_loopback_lets_cleartext_through(tmp_path, provider, key):
    _load(tmp_path, provider.replace('type = ', 'allow_http = true\ntype = ', 1))
    for loop in ("127.0.0.1:8080", "[::1]:8080", "localhost"):
        host = "members.example.net" if "members" in provider else (
            "www.duckdns.org" if "duckdns" in provider else (
                "cf.example.net" if "cf.example" in provider else "hooks.example.net"))
        _load(tmp_path, provider.replace(host, loop))


def test_http_without_credentials_is_fine(tmp_path):
    _load(tmp_path, '[providers.p]\ntype = "webhook"\nurl = "http://hooks.example.net/u?ip={ip}"\n')


def test_cleartext_refusal_is_one_line_exit_2(tmp_path):
    cfg = write_config(tmp_path, HEAD + DYN_HTTP + '\n[[records]]\nname = "home.example.com"\nprovider = "p"\n')
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "providers.p.endpoint" in p.stderr and "Traceback" not in p.stderr


NON_LATIN1 = [
    ('[providers.p]\ntype = "cloudflare"\napi_token = "tok€n"\n', "providers.p.api_token"),
    ('[providers.p]\ntype = "route53"\naccess_key_id = "AKIA€X"\nsecret_access_key = "s"\n',
     "providers.p.access_key_id"),
    ('[providers.p]\ntype = "alidns"\naccess_key_id = "id"\naccess_key_secret = "s"\nsecurity_token = "t☃"\n',
     "providers.p.security_token"),
    ('[providers.p]\ntype = "dnspod"\nsecret_id = "id文"\nsecret_key = "k"\n', "providers.p.secret_id"),
    ('[providers.p]\ntype = "huaweicloud"\naccess_key = "ak"\nsecret_key = "k"\nproject_id = "p€"\n',
     "providers.p.project_id"),
    ('[providers.p]\ntype = "webhook"\nurl = "https://h.example.net/?ip={ip}"\nsecret = "s€"\n'
     '[providers.p.headers]\nX-Token = "{secret}"\n', "providers.p.secret"),
    ('[providers.p]\ntype = "webhook"\nurl = "https://h.example.net/?ip={ip}"\n'
     '[providers.p.headers]\nX-Token = "v€"\n', "providers.p.headers.X-Token"),
    ('[providers.p]\ntype = "dyndns2"\npreset = "dyndns"\nusername = "u"\npassword = "p"\nuser_agent = "a€"\n',
     "providers.p.user_agent"),
]


@pytest.mark.parametrize("provider,key", NON_LATIN1)
def test_header_values_must_be_latin1_at_load(tmp_path, provider, key):
    """Today these pass check-config and every update fails as ``internal`` (UnicodeEncodeError)."""
    _fails(tmp_path, provider, key, ["Latin-1"])


def test_non_latin1_basic_auth_password_is_still_accepted(tmp_path):
    """dyndns2 sends the password base64-encoded (UTF-8), so any text works there."""
    _load(tmp_path, '[providers.p]\ntype = "dyndns2"\npreset = "dyndns"\nusername = "u"\npassword = "pässwörd€"\n')


def test_non_latin1_token_fails_at_check_config_not_at_update(tmp_path):
    cfg = write_config(tmp_path, HEAD + NON_LATIN1[0][0] + '\n[[records]]\nname = "home.example.com"\n'
                       'provider = "p"\n')
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2 and "providers.p.api_token" in p.stderr and "Traceback" not in p.stderr
    assert "tok€n" not in p.stderr


# ---- *_file secrets: small regular files only, read without blocking ---------------------------

def _secret_file_config(tmp_path, secret_path: str) -> str:
    return write_config(tmp_path, HEAD + f"""
[providers.p]
type = "cloudflare"
api_token_file = "{secret_path}"
[[records]]
name = "home.example.com"
provider = "p"
""")


def test_secret_file_fifo_is_refused_without_hanging(tmp_path):
    """Before: check-config blocked for ever opening the FIFO."""
    fifo = str(tmp_path / "token.fifo")
    os.mkfifo(fifo, 0o600)
    p = run_cli("check-config", "-c", _secret_file_config(tmp_path, fifo), timeout=20)
    assert p.returncode == 2 and "providers.p.api_token_file" in p.stderr and "regular file" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_secret_file_device_is_refused(tmp_path):
    """Before: /dev/zero was read until memory ran out (1.5 GB, then MemoryError)."""
    p = run_cli("check-config", "-c", _secret_file_config(tmp_path, "/dev/zero"), timeout=30,
                prefix=["prlimit", "--as=1000000000"])
    assert p.returncode == 2 and "regular file" in p.stderr and "Traceback" not in p.stderr, p.stderr[-500:]


def test_secret_file_larger_than_64k_is_refused(tmp_path):
    big = tmp_path / "token"
    big.write_text("x" * (64 * 1024 + 1))
    os.chmod(big, 0o600)
    p = run_cli("check-config", "-c", _secret_file_config(tmp_path, str(big)))
    assert p.returncode == 2 and "larger than 64 KiB" in p.stderr, p.stderr
    big.write_text("x" * 1000)
    assert run_cli("check-config", "-c", _secret_file_config(tmp_path, str(big))).returncode == 0


def test_secret_file_readable_by_others_warns(tmp_path):
    f = tmp_path / "token"
    f.write_text("t0ken-value\n")
    os.chmod(f, 0o644)
    p = run_cli("check-config", "-c", _secret_file_config(tmp_path, str(f)))
    assert p.returncode == 0 and "readable by other users" in p.stderr and str(f) in p.stderr, p.stderr
    assert "t0ken-value" not in p.stderr + p.stdout
    os.chmod(f, 0o600)
    p = run_cli("check-config", "-c", _secret_file_config(tmp_path, str(f)))
    assert p.returncode == 0 and "readable by other users" not in p.stderr, p.stderr


def test_reload_with_a_fifo_secret_file_keeps_the_agent_stoppable(tmp_path):
    """SIGHUP with a secret file turned into a FIFO: before, the main thread blocked in open() and
    SIGTERM was never acted on; now the reload is refused and SIGTERM stops the agent at once."""
    import signal

    from tests.agentproc import HOSTS_CONFIG, AgentProc

    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o600)
    extra = f'\n[providers.hook]\ntype = "webhook"\nurl = "https://127.0.0.1:9/?ip={{ip}}"\nsecret_file = "{secret}"\n'
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=tmp_path / "state") + extra)
    a = AgentProc(cfg)
    try:
        assert a.wait_log(lambda t: "running as" in t), a.log
        os.unlink(secret)
        os.mkfifo(secret, 0o600)
        a.proc.send_signal(signal.SIGHUP)
        assert a.wait_log(lambda t: "reload refused" in t, timeout=10), a.log
        a.proc.terminate()
        a.proc.wait(10)
    finally:
        rc = a.stop()
    assert rc == 0, a.log


def test_a_reload_that_blocks_does_not_hold_up_sigterm(tmp_path):
    """The config file itself replaced by a FIFO (nobody writes): the reload blocks in open(), but it
    runs off the signal-handling thread, so SIGTERM still stops the agent cleanly."""
    import signal

    from tests.agentproc import HOSTS_CONFIG, AgentProc

    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=tmp_path / "state"))
    a = AgentProc(cfg)
    try:
        assert a.wait_log(lambda t: "running as" in t), a.log
        os.unlink(cfg)
        os.mkfifo(cfg, 0o600)
        a.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        a.proc.terminate()
        a.proc.wait(10)
    finally:
        rc = a.stop()
    assert rc == 0 and "stopping on SIGTERM" in a.log, a.log


def test_config_file_larger_than_1_mib_is_refused(tmp_path):
    cfg = write_config(tmp_path, HEAD + "#" * (1 << 20))
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2 and "larger than 1 MiB" in p.stderr, p.stderr
    p = run_cli("check-config", "-c", "/dev/zero", timeout=30, prefix=["prlimit", "--as=1000000000"])
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-300:]


def test_trigger_with_an_endless_config_file_does_not_eat_memory():
    p = run_cli("trigger", "-c", "/dev/zero", timeout=30, prefix=["prlimit", "--as=1000000000"])
    assert p.returncode == 2 and "larger than 1 MiB" in p.stderr and "Traceback" not in p.stderr, p.stderr[-300:]


def test_url_source_with_credentials_is_refused(tmp_path):
    text = HEAD.replace('["static:8.8.8.8"]', '["url:http://user:pa55word@ip.example.net/"]')
    text += '[providers.h]\ntype = "hosts"\npath = "hosts"\n[[records]]\nname = "a.example.com"\nprovider = "h"\n'
    with pytest.raises(ConfigError) as e:
        load(write_config(tmp_path, text), environ={})
    assert e.value.key == "ip.ipv4[0]" and "pa55word" not in e.value.message
