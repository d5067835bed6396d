"""Local files and users: a state dir another user can touch is refused, files in it are opened
without following symlinks, temp files cannot be pre-planted, stale ones are removed at start."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time

import pytest

from edgeddns.fileio import write_atomic
from tests.agentproc import HOSTS_CONFIG, read, wait_for
from tests.conftest import run_cli, write_config

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to nobody)")


@pytest.fixture
def base():
    """A world-traversable directory outside pytest's 0700 tree, like /tmp or /var/lib."""
    d = tempfile.mkdtemp(prefix="edgeddns-sd-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _config(tmp_path, state: str) -> str:
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    return write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))


def _refused(p, state: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and state in lines[0] and "Traceback" not in p.stderr, p.stderr


COMMANDS = [("update",), ("trigger", "--iface", "wan"), ("trigger", "--iface", "wan", "--fallback-update")]


@needs_root
@pytest.mark.parametrize("cmd", COMMANDS + [("run",)])
def test_state_dir_of_another_user_is_refused(tmp_path, base, cmd):
    """The attack: nobody pre-creates a world-writable state dir; root must not use it."""
    state = os.path.join(base, "state")
    os.mkdir(state)
    os.chown(state, NOBODY, NOBODY)
    os.chmod(state, 0o777)
    cfg = _config(tmp_path, state)
    p = run_cli(cmd[0], "-c", cfg, *cmd[1:], timeout=30)
    _refused(p, state)
    assert os.listdir(state) == []  # root created nothing in it
    assert not (tmp_path / "hosts").exists()


@needs_root
def test_state_dir_owned_by_another_user_even_if_private_is_refused_for_the_agent(tmp_path, base):
    state = os.path.join(base, "state")
    os.mkdir(state, 0o700)
    os.chown(state, NOBODY, NOBODY)
    p = run_cli("update", "-c", _config(tmp_path, state))
    _refused(p, state)
    assert "owned by" in p.stderr


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_state_dir_writable_by_group_or_others_is_refused(tmp_path, base, mode):
    state = os.path.join(base, "state")
    os.mkdir(state)
    os.chmod(state, mode)
    p = run_cli("update", "-c", _config(tmp_path, state))
    _refused(p, state)
    assert "writable" in p.stderr


def test_state_dir_that_is_a_symlink_is_refused(tmp_path, base):
    real = os.path.join(base, "real")
    os.mkdir(real, 0o700)
    state = os.path.join(base, "state")
    os.symlink(real, state)
    p = run_cli("update", "-c", _config(tmp_path, state))
    _refused(p, state)
    assert "symlink" in p.stderr and os.listdir(real) == []


def test_state_dir_under_a_world_writable_non_sticky_parent_is_refused(tmp_path, base):
    parent = os.path.join(base, "open")
    os.mkdir(parent)
    os.chmod(parent, 0o777)  # anyone could rename the state dir away and put their own in its place
    state = os.path.join(parent, "state")
    p = run_cli("update", "-c", _config(tmp_path, state))
    _refused(p, state)


def test_state_dir_is_created_0700_even_with_umask_0(tmp_path, base):
    state = os.path.join(base, "new", "state")
    cfg = _config(tmp_path, state)
    p = run_cli("update", "-c", cfg, prefix=["sh", "-c", 'umask 0; exec "$@"', "sh"])
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert not stat.S_IMODE(os.stat(os.path.dirname(state)).st_mode) & 0o022


def test_symlink_at_control_lock_is_not_followed(tmp_path, base):
    """A symlink planted at control.lock must not make the agent create (or truncate) its target."""
    state = os.path.join(base, "state")
    os.mkdir(state, 0o700)
    target = os.path.join(base, "created-by-the-agent")
    os.symlink(target, os.path.join(state, "control.lock"))
    p = run_cli("run", "-c", _config(tmp_path, state), timeout=30)
    # The agent will not run without its lock, and says why in one line.
    assert p.returncode != 0 and "symbolic links" in p.stderr, (p.returncode, p.stderr)
    assert not os.path.lexists(target), p.stderr
    p = run_cli("update", "-c", _config(tmp_path, state), timeout=30)
    assert not os.path.lexists(target), p.stderr


@needs_root
def test_a_planted_temp_file_is_never_written_through(tmp_path, base):
    """nobody pre-creates the temp name root would use: root's file must still end up root's."""
    d = os.path.join(base, "shared")
    os.mkdir(d)
    os.chmod(d, 0o1777)  # like /tmp: anyone may create files
    target = os.path.join(d, "hosts")
    planted = [os.path.join(d, f".hosts.{os.getpid()}.tmp")]
    for p in planted:
        with open(p, "w"):
            pass
        os.chown(p, NOBODY, NOBODY)
        os.chmod(p, 0o666)
    write_atomic(target, "10.0.0.1 home.lan\n", 0o644)
    st = os.stat(target)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o644
    with open(target) as f:
        assert f.read() == "10.0.0.1 home.lan\n"
    for p in planted:
        assert os.stat(p).st_uid == NOBODY and os.path.getsize(p) == 0


def test_write_atomic_does_not_follow_a_symlink_at_its_temp_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / f".out.{os.getpid()}.tmp")
    write_atomic(str(tmp_path / "out"), "new\n")
    assert victim.read_text() == "precious\n" and (tmp_path / "out").read_text() == "new\n"


def test_stale_temp_files_are_removed_at_start(tmp_path, base):
    state = os.path.join(base, "state")
    os.mkdir(state, 0o700)
    stale = [".state.json.12345.tmp", ".state.json.0123456789abcdef.tmp", ".dyndns2-hold.json.77.tmp"]
    keep = ["state.json.bad", "notes.tmp"]
    old = time.time() - 3600
    for name in stale + keep:
        path = os.path.join(state, name)
        with open(path, "w") as f:
            f.write("x")
        os.utime(path, (old, old))
    p = run_cli("update", "-c", _config(tmp_path, state))
    assert p.returncode == 0, p.stderr
    left = set(os.listdir(state))
    assert not left & set(stale), left
    assert set(keep) <= left


# ---- the OpenWrt ntp hook (busybox ash) ---------------------------------------------------------

HOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "openwrt", "files", "etc", "hotplug.d", "ntp", "25-edgeddns")


def _hook(tmp_path, state: str, pre: str = "", path: str = "/usr/bin:/bin") -> None:
    """Run the hook under busybox ash as busybox ntpd would; ``pre`` runs first in the same pid."""
    import subprocess

    ash = shutil.which("busybox")
    if ash is None:
        pytest.skip("busybox is not installed")
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    env = {"PATH": path, "EDGEDDNS_STATE_DIR": state, "EDGEDDNS_HOTPLUG_CONF": "/nonexistent",
           "EDGEDDNS_BOOT_ID_FILE": str(boot), "EDGEDDNS_BIN": "/bin/false", "ACTION": "stratum",
           "stratum": "2"}
    # exec keeps the pid, so ``pre`` can plant files at the names a pid-named temp file would use.
    p = subprocess.run([ash, "ash", "-c", pre + f'\nexec {ash} ash "$0"', HOOK], env=env,
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr


def test_ntp_hook_creates_its_state_dir_0700(tmp_path, base):
    state = os.path.join(base, "run", "edgeddns")
    _hook(tmp_path, state)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert "sync=1" in read(os.path.join(state, "ntpd.sync"))


def _without_mktemp(tmp_path) -> str:
    """A PATH with the tools the hook needs but no mktemp (the fallback: noclobber)."""
    d = tmp_path / "nomktemp"
    d.mkdir()
    for tool in ("ls", "mkdir", "mv", "chmod", "rm", "ln", "cat"):
        os.symlink(shutil.which(tool), d / tool)
    return str(d)


@pytest.mark.parametrize("with_mktemp", [True, False])
def test_ntp_hook_does_not_write_through_a_planted_symlink(tmp_path, base, with_mktemp):
    state = os.path.join(base, "state")
    os.mkdir(state, 0o700)
    victim = os.path.join(base, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    path = "/usr/bin:/bin" if with_mktemp else _without_mktemp(tmp_path)
    _hook(tmp_path, state, pre=f'ln -s {victim} "{state}/ntpd.sync.$$"', path=path)
    assert read(victim) == "precious\n"
    if with_mktemp:
        assert "sync=1" in read(os.path.join(state, "ntpd.sync"))


@pytest.mark.parametrize("kind", ["nobody", "world-writable", "symlink"])
def test_ntp_hook_writes_nothing_into_a_hostile_state_dir(tmp_path, base, kind):
    state = os.path.join(base, "state")
    real = state
    if kind == "symlink":
        real = os.path.join(base, "real")
        os.mkdir(real, 0o700)
        os.symlink(real, state)
    else:
        os.mkdir(state)
        os.chmod(state, 0o777)
        if kind == "nobody":
            if os.geteuid() != 0:
                pytest.skip("needs root")
            os.chown(state, NOBODY, NOBODY)
    _hook(tmp_path, state)
    assert os.listdir(real) == []


def test_ntp_hook_is_shellcheck_clean():
    import subprocess

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    p = subprocess.run(["shellcheck", "-s", "sh", HOOK], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


# ---- bounded local reads: cmd: output, the hosts file ---------------------------------------------

def test_cmd_source_output_is_capped():
    """Only the first 64 KiB of a command's output is kept: an address past it is never seen
    (before: 20 MB of output was read whole, every byte of it in memory)."""
    from edgeddns.ipsource import Detector

    beyond = "cmd:sh -c 'head -c 70000 /dev/zero | tr \"\\\\0\" x; echo; echo 8.8.8.8'"
    det = Detector().detect([beyond], 4)
    assert det.address is None and "printed no IPv4 address" in det.reason(), det.reason()
    within = "cmd:sh -c 'head -c 60000 /dev/zero | tr \"\\\\0\" x; echo; echo 8.8.8.8'"
    assert Detector().detect([within], 4).address == "8.8.8.8"


def _hosts_update(tmp_path, hosts_path: str):
    from tests.conftest import json_results

    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    text = HOSTS_CONFIG.format(d=tmp_path, state=tmp_path / "state").replace(f'"{tmp_path}/hosts"',
                                                                             f'"{hosts_path}"')
    p = run_cli("update", "-c", write_config(tmp_path, text), "--json", timeout=30)
    return p, json_results(p)


def test_hosts_file_too_large_to_rewrite_is_refused(tmp_path):
    hosts = tmp_path / "hosts"
    big = "# padding\n" * (1 << 20)  # 10 MiB of comments
    hosts.write_text(big)
    p, (r,) = _hosts_update(tmp_path, str(hosts))
    assert r["status"] == "failed" and "larger than" in r["error"]["message"], r
    assert hosts.read_text() == big  # untouched


def test_hosts_path_that_is_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "hosts"
    os.mkfifo(fifo)
    p, (r,) = _hosts_update(tmp_path, str(fifo))
    assert r["status"] == "failed" and "regular file" in r["error"]["message"], r


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_files_in_the_state_dir_are_not_read_through_symlinks_or_fifos(tmp_path, kind):
    """The ntpd sync marker and the dyndns2 hold file: a symlink is not followed, a FIFO does not hang."""
    from edgeddns.providers.dyndns2 import HOLD_FILE, HoldStore
    from edgeddns.syncprobe import SyncProbe

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (tmp_path / "boot").write_text("b1\n")
    real = tmp_path / "elsewhere"
    real.write_text("sync=1\nstratum=2\nboot_id=b1\n")
    hold = tmp_path / "hold.json"
    hold.write_text('{"version": 1, "salt": "s", "holds": {"p/a.example.com/A": {"answer": "badauth"}}}')
    for name, target in (("ntpd.sync", real), (HOLD_FILE, hold)):
        if kind == "symlink":
            os.symlink(target, state / name)
        else:
            os.mkfifo(state / name)
    probe = SyncProbe(str(state), timesyncd_flag=str(tmp_path / "none"), dnsmasq_marker=str(tmp_path / "none"),
                      boot_id_file=str(tmp_path / "boot"), adjtimex=lambda: None)
    assert not probe.check().synced
    assert HoldStore(str(state)).get("p/a.example.com/A") is None


@needs_root
def test_root_trigger_reaches_an_agent_running_as_its_own_user(base):
    """The client side of the state-dir rule: root's hotplug trigger accepts a private dir owned by the
    agent's (other) user, but never one that others can write to."""
    import subprocess

    from tests.agentproc import env

    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv")
    home = os.path.join(base, "agent")
    os.mkdir(home, 0o700)
    state = os.path.join(home, "state")
    with open(os.path.join(home, "wan-ip"), "w") as f:
        f.write("10.0.0.1\n")
    cfg = os.path.join(home, "config.toml")
    with open(cfg, "w") as f:
        f.write(HOSTS_CONFIG.format(d=home, state=state))
    os.chmod(cfg, 0o600)
    for p in (home, cfg, os.path.join(home, "wan-ip")):
        os.chown(p, NOBODY, NOBODY)
    log = open(os.path.join(base, "agent.log"), "w")
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                             "edgeddns", "run", "-c", cfg], stdout=log, stderr=subprocess.STDOUT, env=env())
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(state, "control.sock"))), read(log.name)
        p = run_cli("trigger", "-c", cfg, "--iface", "wan")
        assert p.returncode == 0 and "queued" in p.stdout, (p.stdout, p.stderr, read(log.name))
        os.chmod(state, 0o777)  # now anyone could have planted the socket: refused
        p = run_cli("trigger", "-c", cfg, "--iface", "wan")
        assert p.returncode == 2 and "writable by group or others" in p.stderr, p.stderr
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
