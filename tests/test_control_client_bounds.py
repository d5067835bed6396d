"""The control socket's client trusts the agent's answer only so far.

``edgeddns trigger`` runs as root from every hotplug event (netifd runs them one at a time), and may talk
to an agent that runs as a user of its own: a compromised agent user must not be able to eat root's
memory with an endless answer, or hold the hotplug path with one that trickles. A real UNIX socket.
"""

from __future__ import annotations

import os
import socket
import threading
import tracemalloc

from edgeddns import control


def _server(path: str, behave):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    stop = threading.Event()

    def serve():
        try:
            conn, _ = s.accept()
        except OSError:  # the test closed the listener without a client (it refused to connect)
            return
        with conn:
            conn.recv(4096)
            try:
                behave(conn, stop)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return s, stop


def test_an_endless_answer_is_cut_not_held(tmp_path):
    """Before: the client read until a newline came, whatever the size (64 MiB held here, 200 MB as easily)."""
    path = str(tmp_path / "control.sock")
    flood = 64 << 20

    def endless(conn, stop):
        chunk = b"x" * 65536
        for _ in range(flood // len(chunk)):
            conn.sendall(chunk)

    s, stop = _server(path, endless)
    tracemalloc.start()
    try:
        try:
            control.request(path, {"op": "status"}, timeout=30)
            raise AssertionError("an endless answer was accepted")
        except control.ControlError as e:
            assert e.code == "protocol", e.message
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stop.set()
        s.close()
    assert peak < (16 << 20) + (4 << 20), f"held {peak} bytes of a {flood}-byte answer"


def test_a_trickled_answer_ends_at_the_timeout(tmp_path):
    """Before: the timeout bounded each read, so one byte every 0.2 s kept the client (and the hotplug
    script that netifd waits for) waiting as long as the agent liked."""
    path = str(tmp_path / "control.sock")

    def trickle(conn, stop):
        while not stop.wait(0.2):
            conn.sendall(b"x")

    s, stop = _server(path, trickle)
    got = {}

    def call():
        try:
            control.request(path, {"op": "trigger"}, timeout=1)
        except control.ControlError as e:
            got["code"] = e.code

    t = threading.Thread(target=call, daemon=True)
    t.start()
    try:
        t.join(20)  # the budget is 1 s; the trickle never ends
        assert not t.is_alive(), "the client still waits on a trickling agent"
        assert got.get("code") == "timeout", got
    finally:
        stop.set()
        s.close()
        if os.path.exists(path):
            os.unlink(path)


def test_a_symlink_in_place_of_the_socket_is_not_followed(tmp_path):
    """An agent running as a user of its own owns its state dir, so it can put a symlink where control.sock
    belongs; root's trigger then connected wherever it pointed (any UNIX socket root may reach) and wrote its
    request there. Before: the request reached the other socket and its answer was believed."""
    other = str(tmp_path / "other.sock")
    got = {}

    def answer(conn, stop):
        got["request"] = True
        conn.sendall(b'{"ok": true, "queued": true, "pid": 1}\n')

    s, stop = _server(other, answer)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.symlink(other, state / control.SOCKET_NAME)
    try:
        try:
            reply = control.request(str(state / control.SOCKET_NAME), {"op": "trigger"}, timeout=2)
        except control.ControlError as e:
            reply = {"refused": e.code}
        assert reply == {"refused": "protocol"} and "request" not in got, reply
    finally:
        stop.set()
        s.close()
