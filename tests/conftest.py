"""Shared fixtures: a test CA, the fake providers, config files, and running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Dict, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The memos of no-change updates (edgeddns.quickcheck) go to the suite's own private dir, not /run;
# every CLI the tests start inherits it.
if not os.environ.get("EDGEDDNS_RUNTIME_DIR"):
    import tempfile

    os.environ["EDGEDDNS_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="edgeddns-run-")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fakes.alidns import FakeAlidns  # noqa: E402
from tests.fakes.fixtures import signed  # noqa: E402,F401  (dnspod, huaweicloud, route53, alidns V3)
from tests.fakes.server import FakeServer  # noqa: E402

ALI_ID = "LTAI5tTestKeyId"
ALI_SECRET = "s3cr3t-AliKey-0123456789abcdef"


@pytest.fixture(scope="session")
def ca():
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def server_context(ca):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def alidns(server_context):
    fake = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com", "example.net"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.server = srv
    fake.url = srv.url
    yield fake
    srv.stop()


def write_config(tmp_path, body: str, name: str = "config.toml", mode: int = 0o600) -> str:
    path = os.path.join(str(tmp_path), name)
    body = textwrap.dedent(body)
    if "[clock]" not in body and "[providers." in body and body.lstrip().startswith("["):
        # The default clock mode would ask public NTP servers; tests stay on loopback.
        body = '[clock]\nmode = "system"\n\n' + body
    with open(path, "w") as f:
        f.write(body)
    os.chmod(path, mode)
    return path


def hosts_config(tmp_path, ipv4: str = "static:8.8.8.8") -> str:
    """The smallest real config: one record, home.example.com A, in a hosts file, state beside it."""
    return write_config(tmp_path, f"""
        [agent]
        node_id = "t"
        state_dir = "{tmp_path}/state"
        [ip]
        ipv4 = ["{ipv4}"]
        [providers.lan]
        type = "hosts"
        path = "{tmp_path}/hosts"
        [[records]]
        name = "home.example.com"
        provider = "lan"
    """)


def provider_config(tmp_path, provider: str, records: str, *, ip: str = "static:8.8.8.8",
                    ip6: str = "static:2001:4860:4860::8888") -> str:
    """The usual [agent] and [ip] tables, then one provider's table (TOML text) and the records."""
    return write_config(tmp_path, textwrap.dedent(f"""
        [agent]
        node_id = "test"
        state_dir = "{tmp_path}/state"

        [ip]
        ipv4 = ["{ip}"]
        ipv6 = ["{ip6}"]
    """) + textwrap.dedent(provider) + "\n" + textwrap.dedent(records))


def record_toml(provider: str, name: str = "home.example.com") -> str:
    return f'\n[[records]]\nname = "{name}"\nprovider = "{provider}"\n'


def json_results(proc: subprocess.CompletedProcess) -> list:
    """The result objects an ``update --json`` printed."""
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def alidns_config(tmp_path, fake, ca_file: str, *, ip: str = "static:8.8.8.8", extra: str = "",
                  records: Optional[str] = None) -> str:
    if "[clock]" not in extra:
        # The default clock would ask public NTP servers: tests stay on the loopback.
        extra += '\n[clock]\nmode = "system"\nntp_servers = ["127.0.0.1:9"]\n'
    return provider_config(tmp_path, f"""
[providers.ali]
type = "alidns"
access_key_id = "{ALI_ID}"
access_key_secret = "{ALI_SECRET}"
endpoint = "{fake.url}"
ca_file = "{ca_file}"
timeout = 3
{textwrap.dedent(extra)}
""", records if records is not None else record_toml("ali"), ip=ip)


def run_cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 60,
            prefix: Optional[list] = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([*(prefix or []), sys.executable, "-m", "edgeddns", *args], capture_output=True,
                          text=True, env=e, timeout=timeout, cwd=ROOT)
