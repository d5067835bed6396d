"""Commands from any transport, handled one way.

The MQTT bridge and the control socket parse their own wire formats, then
hand a :class:`~edgeddns.commands.Command` here with a ``reply`` callable.
This module decides what a command does to the agent: an ``update`` becomes
an event for the scheduler, ``status`` answers from the agent's state, and the
slow ones (``sync_time`` measures the clock, ``reload`` reads files) run on one
helper thread per kind, so a transport's own thread never blocks and a second
request of a kind that is still running is refused as ``busy``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from edgeddns.events import Event
from edgeddns.result import iso

if TYPE_CHECKING:
    import random

    from edgeddns.commands import Command
    from edgeddns.events import AgentPort
    from edgeddns.result import Result

log = logging.getLogger("edgeddns")

Reply = Callable[[Dict[str, Any]], None]


def rejected(action: str, code: str, message: str, cid: Optional[str]) -> Dict[str, Any]:
    from edgeddns.commands import Rejection

    return Rejection(action, code, message, cid).answer()


class CommandHandler:
    def __init__(self, agent: "AgentPort", rng: Optional["random.Random"] = None):
        self.agent = agent
        self.rng = rng
        self._lock = threading.Lock()
        self._jobs: Dict[str, threading.Thread] = {}

    def handle(self, cmd: "Command", reply: Reply, *, trigger: str = "mqtt", wait: bool = False,
               then_check: bool = False) -> None:
        """Act on one valid command; ``reply`` is called exactly once, maybe later, maybe on another thread.

        ``wait``: answer an update with its results instead of at once.
        ``then_check``: after ``sync_time``, check the records (the clock was stepped).
        """
        base: Dict[str, Any] = {"id": cmd.id, "action": cmd.action}
        try:
            if cmd.expires is not None and self.agent.clock.now() > cmd.expires:
                # Judged by the corrected clock: a router whose own clock is off still refuses stale work.
                reply(rejected(cmd.action, "expired", f"the command expired at {iso(cmd.expires)}", cmd.id))
                return
            if cmd.action == "update":
                self._update(cmd, reply, base, trigger, wait)
            elif cmd.action == "status":
                reply({**base, "status": "ok", "state": self.agent.state()})
            elif cmd.action == "reload":
                self._job(cmd, reply, base, self._reload)
            elif cmd.action == "sync_time":
                if not self._job(cmd, reply, base, lambda c, b: self._sync_time(c, b, trigger, then_check)) \
                        and then_check:
                    self.agent.submit(Event(trigger))  # a measurement is running already; check anyway
            else:
                reply(rejected(cmd.action, "unknown_action", f"unknown action {cmd.action!r}", cmd.id))
        except Exception as e:  # a bug here costs one answer, not the transport's thread
            log.debug("command %s failed", cmd.action, exc_info=True)
            reply(rejected(cmd.action, "internal", f"{e.__class__.__name__} while handling the command", cmd.id))

    def _update(self, cmd: "Command", reply: Reply, base: Dict[str, Any], trigger: str, wait: bool) -> None:
        done = None
        if wait:
            def done(results: List["Result"]) -> None:
                if not results and self.agent.config.records:
                    # Records exist (named ones were checked at parse), yet none ran: the agent stopped first.
                    reply(rejected(cmd.action, "busy", "the agent stopped before this update ran", cmd.id))
                    return
                reply({**base, "status": "done", "results": [r.as_dict() for r in results]})
        delay = self._delay(cmd)
        # A WAN event forwarded by a transport may be one of a burst of flaps; "update now" is not.
        accepted = self.agent.submit(Event(trigger, records=cmd.records, force=cmd.force, id=cmd.id,
                                           addresses=dict(cmd.addresses), iface=cmd.iface, done=done,
                                           settle=bool(cmd.addresses or cmd.iface), delay=delay,
                                           expires=cmd.expires))
        if accepted is False:
            reply(rejected(cmd.action, "busy", "the agent is stopping" if not delay else
                           "too many spread commands are waiting", cmd.id))
            return
        if not wait:
            answer = {**base, "status": "accepted", "records": cmd.records}
            if delay:
                answer["at"] = iso(self.agent.clock.now() + delay)
            if cmd.ignored:
                answer["ignored"] = cmd.ignored
                answer["note"] = "addresses in commands are ignored unless [mqtt] accept_ip = true"
            reply(answer)

    def _delay(self, cmd: "Command") -> float:
        """Seconds before a fleet-wide update starts: a random part of its spread window.

        A broadcast reaches every agent at once; without a spread a whole fleet would call the
        providers in the same second. Per-node commands start at once unless they ask for a spread.
        """
        spread = cmd.spread
        if spread is None and cmd.broadcast:
            m = self.agent.config.mqtt
            if m is not None:
                spread = m.broadcast_spread_force if cmd.force else m.broadcast_spread
        if not spread:
            return 0.0
        if self.rng is None:
            import random

            self.rng = random.Random()
        return self.rng.uniform(0.0, spread)

    def _job(self, cmd: "Command", reply: Reply, base: Dict[str, Any],
             fn: Callable[["Command", Dict[str, Any]], Dict[str, Any]]) -> bool:
        """Run ``fn`` on a helper thread; False (and a ``busy`` answer) if one of its kind still runs."""
        with self._lock:
            job = self._jobs.get(cmd.action)
            if job is not None and job.is_alive():
                reply(rejected(cmd.action, "busy", f"a {cmd.action} is still running", cmd.id))
                return False

            def run() -> None:
                try:
                    answer = fn(cmd, base)
                except Exception as e:
                    log.debug("%s failed", cmd.action, exc_info=True)
                    answer = rejected(cmd.action, "internal", f"{e.__class__.__name__} during {cmd.action}", cmd.id)
                reply(answer)

            t = threading.Thread(target=run, name=f"edgeddns-{cmd.action}", daemon=True)
            self._jobs[cmd.action] = t
            t.start()
        return True

    def _reload(self, cmd: "Command", base: Dict[str, Any]) -> Dict[str, Any]:
        error = self.agent.reload()
        if error is None:
            return {**base, "status": "ok"}
        return rejected(cmd.action, "config", error, cmd.id)

    def _sync_time(self, cmd: "Command", base: Dict[str, Any], trigger: str, then_check: bool) -> Dict[str, Any]:
        from edgeddns.errors import EdgeError

        clock = self.agent.clock
        resync = getattr(clock, "resync", None)
        answer: Dict[str, Any] = {**base, "status": "ok"}
        if resync is None:
            answer["note"] = "this clock does not measure an offset ([clock] mode = \"system\")"
        else:
            try:
                resync()
            except EdgeError as e:  # NTP silent: expected, and the clock keeps what it knew
                log.warning("clock resync: %s", e.message)
                answer = {**base, "status": "failed", "error": e.as_dict()}
        if then_check:  # whatever the measurement said, the records are checked
            self.agent.submit(Event(trigger))
        answer["clock"] = {**clock.info().as_dict(), "trusted": clock.trusted}
        return answer
