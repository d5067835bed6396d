"""The program a regular install puts in ``bin/``, on the hotplug path.

``edgeddns trigger`` runs on every WAN event; what it costs is what the installed ``bin/edgeddns`` imports
beyond the interpreter itself. pip's generated console-script wrapper imports ``re`` (and with it
``enum``, ``functools``, ``collections``...) before edgeddns runs, so the package ships its own small
script instead (the OpenWrt package's ``/usr/bin/edgeddns``, one file for both). Here a wheel is built
from this checkout as pip builds it, installed into a clean venv, and run against a real agent;
Python's own import log (``PYTHONPROFILEIMPORTTIME``) names every module it loads, compared with
``python -c pass`` of the same venv. Deterministic: module names, never timings.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import pytest

from tests.agentproc import HOSTS_CONFIG, AgentProc, serving, wait_for
from tests.conftest import ROOT, write_config

WRAPPER = os.path.join(ROOT, "openwrt", "files", "usr", "bin", "edgeddns")

# Beyond `python -c pass`: edgeddns's own modules on this path and a few small built-in ones.
ALLOWED = {"edgeddns", "edgeddns.argv", "edgeddns.cli", "edgeddns.bootstrap", "edgeddns.control",
           "edgeddns.statedir", "_socket", "stat", "_stat", "time"}
NEVER = ("__future__", "errno", "types", "re", "json", "enum", "typing", "dataclasses", "functools", "collections",
         "ssl", "requests", "paho", "argparse", "logging", "socket", "threading")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A clean venv holding a regular (non-editable) install of a wheel built from this checkout."""
    tmp = tmp_path_factory.mktemp("install")
    src = str(tmp / "src")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "*.egg-info", ".venv*",
                                                             ".hypothesis", ".pytest_cache", ".ruff_cache", "tests",
                                                             "bench", "docs"))
    # Built as pip builds it, with the setuptools of this environment ([test] extras name it): the tests
    # run without a network, where pip's isolated build could not fetch one.
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp / "dist"), src], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    wheel = glob.glob(str(tmp / "dist" / "edgeddns-*.whl"))
    assert len(wheel) == 1, wheel
    venv = str(tmp / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    py = os.path.join(venv, "bin", "python")
    p = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index",
                        wheel[0]], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return venv


def _env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    e["PYTHONPROFILEIMPORTTIME"] = "1"
    return e


def _imported(argv):
    """(exit status, stdout, modules imported) of a run, from Python's own import log."""
    p = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=60, cwd="/")
    mods = set()
    other = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name != "imported package":
                mods.add(name)
        else:
            other.append(line)
    return p.returncode, p.stdout, "\n".join(other), mods


def test_the_installed_program_is_ours_and_runs_with_the_venvs_interpreter(venv):
    script = os.path.join(venv, "bin", "edgeddns")
    with open(script) as f:
        first, body = f.read().split("\n", 1)
    interpreter = first[2:].strip()
    assert first.startswith("#!") and os.path.dirname(interpreter) == os.path.join(venv, "bin"), first
    with open(WRAPPER) as f:
        assert f.read().split("\n", 1)[1] == body, "bin/edgeddns and the OpenWrt wrapper differ"
    assert os.access(script, os.X_OK)
    for argv in ([script, "--version"], [os.path.join(venv, "bin", "python"), "-m", "edgeddns", "--version"]):
        p = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=60, cwd="/")
        assert p.returncode == 0 and p.stdout.startswith("edgeddns "), (argv, p.stdout, p.stderr[-2000:])


def test_the_installed_trigger_loads_nothing_beyond_its_own_few_modules(venv, tmp_path):
    state = tmp_path / "state"
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
    py = os.path.join(venv, "bin", "python")
    rc, _, err, floor = _imported([py, "-c", "pass"])
    assert rc == 0 and floor, err
    argv = ["trigger", "-c", cfg, "--iface", "wan", "--action", "ifup", "--device", "eth1", "--timeout", "5"]
    a = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(str(state / "control.sock"))), a.log
        # The pip-installed program, and the OpenWrt package's (the same file) run by the same interpreter.
        for how, prog in (("bin/edgeddns", [os.path.join(venv, "bin", "edgeddns")]), ("OpenWrt", [py, WRAPPER])):
            rc, out, err, mods = _imported([*prog, *argv])
            assert rc == 0 and out == f"queued: hotplug wan (agent pid {a.proc.pid})\n", (how, out, err)
            extra = mods - floor
            assert sorted(m for m in extra if m.split(".")[0] in NEVER) == [], (how, sorted(extra))
            assert extra <= ALLOWED, (how, sorted(extra - ALLOWED))
    finally:
        assert a.stop() == 0, a.log


def test_the_docker_images_sources_are_enough_to_install(tmp_path):
    """The Dockerfile copies a few paths into /src and pip-installs that: bin/edgeddns must be among them."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        lines = f.read().split("RUN pip install", 1)[0].splitlines()
    src = tmp_path / "src"
    src.mkdir()
    for line in lines:
        if not line.startswith("COPY ") or not line.split()[-1].startswith("/src/"):
            continue
        *paths, dest = line.split()[1:]
        for p in paths:
            target = os.path.join(str(src), dest[len("/src/"):])
            target = os.path.join(target, os.path.basename(p)) if dest.endswith("/") else target
            if os.path.isdir(os.path.join(ROOT, p)):
                shutil.copytree(os.path.join(ROOT, p), target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, p), target)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    import zipfile

    (wheel,) = glob.glob(str(tmp_path / "dist" / "edgeddns-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert [n for n in z.namelist() if n.endswith(".data/scripts/edgeddns")], z.namelist()


def test_the_launcher_does_not_look_for_modules_in_its_own_directory(tmp_path):
    """Python puts a script's directory first on sys.path, so the first import of each module lists it:
    /usr/bin (the OpenWrt package's place, or a system-wide install's) holds a thousand names on a desktop,
    hundreds on a router, and none of them is a module of ours. Seen through Python's audit events."""
    bindir = tmp_path / "usr" / "bin"
    bindir.mkdir(parents=True)
    for i in range(50):
        (bindir / f"tool{i}").write_text("")
    launcher = bindir / "edgeddns"
    shutil.copy(WRAPPER, launcher)
    # Run as `python launcher` runs it: its directory first on sys.path, its code as __main__.
    code = ("import os, sys\nlisted = []\n"
            "sys.addaudithook(lambda ev, args: listed.append(args[0]) if ev == 'os.listdir' else None)\n"
            "launcher = sys.argv[1]\nsys.path[0] = os.path.dirname(launcher)\nsys.argv[:] = [launcher, '--version']\n"
            "with open(launcher) as f:\n    code = compile(f.read(), launcher, 'exec')\n"
            "try:\n    exec(code, {'__name__': '__main__', '__file__': launcher})\nexcept SystemExit as e:\n"
            "    rc = e.code\n"
            "print('LISTED', os.path.dirname(launcher) in listed, rc)")
    p = subprocess.run([sys.executable, "-c", code, str(launcher)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert p.stdout.strip().endswith("LISTED False 0"), (p.stdout, p.stderr)
