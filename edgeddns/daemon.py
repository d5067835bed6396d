"""``edgeddns run``: one agent per state dir, its signals, its sources.

The main thread takes the state dir's lock (a second agent exits 1 naming the
first), blocks SIGHUP/SIGINT/SIGTERM in every thread and waits for them with
``sigwait``; the agent and its sources do the work on their own threads.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from edgeddns import __version__

log = logging.getLogger("edgeddns")


def cmd_run(args) -> int:
    from edgeddns.agent import Agent
    from edgeddns.bootstrap import EXIT_FAILED, load_config, private_state_dir, setup_logging
    from edgeddns.config import load
    from edgeddns.sources import attach_sources
    from edgeddns.statelock import StateLock

    # A reload (SIGHUP) that comes while the config loads must not end the
    # process (its default action): held, and read as a reload once running.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    cfg = load_config(args)
    private_state_dir(cfg.agent.state_dir)
    lock = StateLock(cfg.agent.state_dir)
    try:
        # A one-shot update holds the lock only while it writes: wait for it, not for another agent.
        held = lock.acquire("run")
        if held is not None and held.role == "update":
            held = lock.acquire("run", wait=120.0)
    except OSError as e:
        print(f"edgeddns: cannot lock the state dir {cfg.agent.state_dir}: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILED
    if held is not None:
        who = f"pid {held.pid}" if held.pid else "unknown pid"
        print(f"edgeddns: another edgeddns agent ({who}) is running with state dir {cfg.agent.state_dir}; "
              f"not starting a second one", file=sys.stderr)
        return EXIT_FAILED
    setup_logging(args, cfg)
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    # Block the signals before any thread starts, so every thread inherits the
    # mask and only sigwait() below receives them (children get a clean mask: edgeddns.spawn).
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    agent = Agent(cfg, loader=load, on_config=lambda c: setup_logging(args, c),
                  on_fatal=lambda: os.kill(os.getpid(), signal.SIGTERM))
    attach_sources(agent, cfg)
    agent.start()
    log.info("edgeddns %s running as %s (pid %d), %d records", __version__, cfg.agent.node_id, os.getpid(),
             len(cfg.records))
    reloading = threading.Lock()

    def reload() -> None:
        with reloading:  # one at a time; a second SIGHUP reloads again after it
            agent.reload()

    try:
        while True:
            sig = signal.sigwait(sigs)
            if sig == signal.SIGHUP:
                # Off this thread: a reload that blocks reading a file must not keep SIGTERM waiting.
                threading.Thread(target=reload, name="edgeddns-reload", daemon=True).start()
                continue
            if agent.fatal is None:
                log.info("stopping on %s", signal.Signals(sig).name)
            break
    finally:
        agent.stop()
        lock.release()
    return EXIT_FAILED if agent.fatal is not None else 0
