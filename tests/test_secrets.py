"""No secret in any output: every configured secret is grepped for in every run's output."""

from __future__ import annotations

from tests.conftest import ALI_SECRET, alidns_config, run_cli

ENV_SECRET = "env-provided-secret-9f8e7d"


def outputs(*procs):
    return "".join(p.stdout + p.stderr for p in procs)


def test_no_secret_anywhere(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file)
    runs = [
        run_cli("check-config", "-c", cfg),
        run_cli("update", "-c", cfg, "--dry-run", "-v"),
        run_cli("update", "-c", cfg, "--json", "-v"),
        run_cli("update", "-c", cfg, "--force", "-v"),
    ]
    # Failures: a wrong secret at the provider, and a provider that is down.
    alidns.keys = {k: "different" for k in alidns.keys}
    runs.append(run_cli("update", "-c", cfg, "--force", "--json", "-v"))
    alidns.server.stop()
    runs.append(run_cli("update", "-c", cfg, "--force", "-v"))
    text = outputs(*runs)
    assert ALI_SECRET not in text
    assert "auth" in text and "network" in text


def test_env_secret_never_printed(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file)
    text = open(cfg).read().replace(f'"{ALI_SECRET}"', '"env:EDGE_ALI_SECRET"')
    open(cfg, "w").write(text)
    alidns.keys = {k: ENV_SECRET for k in alidns.keys}
    env = {"EDGE_ALI_SECRET": ENV_SECRET}
    runs = [run_cli("check-config", "-c", cfg, env=env), run_cli("update", "-c", cfg, "--json", "-v", env=env)]
    assert '"status": "updated"' in runs[1].stdout
    assert ENV_SECRET not in outputs(*runs)
