"""Config load refuses what would leak or break at the first update: credentials over cleartext
http://, header values that cannot be sent (non-Latin-1), secret files that are not small regular files."""

from __future__ import annotations

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
