"""edgeddns.lazylog: a one-shot imports logging only when a line is due, and loses no line.

The lazy path only exists while ``logging`` is not imported, which pytest
always has: each check runs in a fresh interpreter (-S, see test_light).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT, hosts_config, write_config
from tests.test_light import bare_env


def run(code, *argv):
    p = subprocess.run([sys.executable, "-S", "-c", "import os\n" + code, *argv], capture_output=True, text=True,
                       env=bare_env(), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_lines_below_the_level_cost_no_import_and_the_first_due_line_sets_logging_up():
    p = run("""
import sys
from edgeddns.lazylog import LazyLogger, defer_setup
def setup():
    from edgeddns import log
    return log.setup("info", ["s3cret-token"], target="stderr")
lg = LazyLogger()
defer_setup("info", setup)
lg.debug("not shown %s", "s3cret-token")
print("after debug:", "logging" in sys.modules, lg.isEnabledFor(10), lg.isEnabledFor(20))
lg.info("the token is %s", "s3cret-token")
print("after info:", "logging" in sys.modules)
lg.debug("still not shown")
try:
    raise ValueError("s3cret-token in a traceback")
except ValueError:
    lg.exception("failed")
""")
    assert "after debug: False False True" in p.stdout
    assert "after info: True" in p.stdout
    lines = p.stderr.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\S+ edgeddns: INFO: the token is \*\*\*$", lines[0]), p.stderr
    assert "not shown" not in p.stderr and "s3cret" not in p.stderr
    assert "ERROR: failed" in p.stderr and "ValueError: *** in a traceback" in p.stderr


def test_without_a_deferred_setup_it_behaves_as_unconfigured_logging():
    """Nobody set logging up: warnings and worse reach stderr (logging's last resort), the rest is dropped."""
    p = run("""
import sys
from edgeddns.lazylog import LazyLogger
lg = LazyLogger()
lg.info("an info line")
print("after info:", "logging" in sys.modules)
lg.warning("a warning line")
""")
    assert "after info: False" in p.stdout
    assert p.stderr.strip() == "a warning line"


def test_a_one_shot_warning_is_still_logged_formatted(tmp_path):
    """A no-change update that has something to say says it, through the real setup (format, redaction)."""
    state = tmp_path / "state"
    cfg = write_config(tmp_path, f"""
        [agent]
        node_id = "t"
        state_dir = "{state}"
        [ip]
        ipv4 = ["static:8.8.8.8"]
        [providers.lan]
        type = "hosts"
        path = "{tmp_path}/hosts"
        [[records]]
        name = "home.example.com"
        provider = "lan"
    """)
    code = "import sys\nfrom edgeddns.cli import main\nrc = main(sys.argv[1:])\nraise SystemExit(rc)"
    env = bare_env()
    p = subprocess.run([sys.executable, "-S", "-c", code, "update", "-c", cfg], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stdout + p.stderr
    (state / "state.json").write_text("{ not json")
    p = subprocess.run([sys.executable, "-S", "-c", code, "update", "-c", cfg], capture_output=True, text=True,
                       env=env, timeout=60)
    assert re.search(r"^\d{4}-\d\d-\d\dT\S+ edgeddns: WARNING: .*state", p.stderr, re.M), p.stdout + p.stderr


# Modules that only the agent (or the fleet controller) imports may log through logging directly; any
# other module can run in a one-shot, whose logging setup is deferred: a line logged there through
# logging.getLogger would bypass the setup (no format, no redaction). They use LazyLogger.
AGENT_ONLY = {"agent", "daemon", "scheduler", "handler", "mqtt", "mqtt_inbound", "mqtt_link", "mqtt_outbound", "ubus",
              "netevents", "control_server", "log", "lazylog", "fleet", "watch", "spawn", "discovery"}


def test_modules_a_one_shot_can_run_log_through_the_lazy_logger():
    offenders = []
    for base, _, files in os.walk(os.path.join(ROOT, "edgeddns")):
        for name in files:
            if not name.endswith(".py"):
                continue
            mod = os.path.relpath(os.path.join(base, name), os.path.join(ROOT, "edgeddns"))[:-3].replace(os.sep, ".")
            if mod in AGENT_ONLY:
                continue
            with open(os.path.join(base, name), encoding="utf-8") as f:
                text = f.read()
            if re.search(r"^\s*(import logging|from logging import)", text, re.M) or "getLogger(" in text:
                offenders.append(mod)
    assert offenders == [], offenders


def test_a_deferred_setup_ends_with_the_command(tmp_path):
    """In-process callers (tests, the trigger fallback) are not left with a pending setup that would
    drop later lines logged through an otherwise configured logging."""
    from edgeddns import lazylog
    from edgeddns.cli import main

    cfg = hosts_config(tmp_path)
    assert main(["update", "-c", cfg]) == 0
    assert lazylog._deferred == []
