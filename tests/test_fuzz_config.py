"""Fuzzing the config loader: every input is a valid config or one clear ConfigError."""

from __future__ import annotations

import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeddns.config import load
from edgeddns.errors import ConfigError

KEYS = ["agent", "ip", "clock", "providers", "records", "mqtt", "node_id", "state_dir", "poll_interval", "ipv4",
        "ipv6", "type", "name", "provider", "zone", "ttl", "ip", "host", "port", "qos", "mode", "ntp_servers",
        "access_key_id", "access_key_secret", "path", "allow_private", "endpoint", "ca_file", "timeout",
        "topic_prefix", "password", "password_file", "access_key_secret_file", "x"]
VALUES = ["alidns", "hosts", "A", "AAAA", "ali", "a.example.com", "static:8.8.8.8", "interface:eth0",
          "url:https://x.example/", "cmd:echo 1.2.3.4", "env:NOPE", "auto", "ntp", "", "../..", "/dev/null"]


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else "0"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(VALUES), st.text(max_size=20))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                   st.dictionaries(st.sampled_from(KEYS), c, max_size=4)),
                      max_leaves=12)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def check(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.toml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        try:
            cfg = load(path, environ={})
        except ConfigError as e:
            assert e.message.startswith(path) and "\n" not in e.message.strip()
        else:
            assert cfg.agent.node_id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_configs(doc):
    check("\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items()) + "\n")


VALID = """
[agent]
node_id = "n"
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.ali]
type = "alidns"
access_key_id = "id"
access_key_secret = "s"
[[records]]
name = "a.example.com"
provider = "ali"
"""


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.text(max_size=8)), max_size=4))
def test_mutated_valid_config(edits):
    text = VALID
    for pos, ins in edits:
        text = text[:pos] + ins + text[pos + 1:]
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    check(text)
