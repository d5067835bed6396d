"""Address sources and the public-address rule."""

from __future__ import annotations

import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from edgeddns.ipsource import Detector, scan, why_not_public
from edgeddns.netlink import IfAddr


@pytest.mark.parametrize("addr,word", [
    ("10.1.2.3", "private"), ("192.168.1.1", "private"), ("172.16.0.1", "private"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"), ("127.0.0.1", "loopback"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("fd12::1", "ULA"), ("::1", "loopback"),
    ("224.0.0.1", "unicast"), ("0.0.0.0", "unicast"), ("::ffff:8.8.8.8", "IPv4-mapped"), ("nope", "not an IP"),
])
def test_non_public(addr, word):
    assert word in why_not_public(addr)


@pytest.mark.parametrize("addr", ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2001:4860:4860::8888", "2400:3200::1"])
def test_public(addr):
    assert why_not_public(addr) is None


def test_scan():
    assert scan("ip=203.0.113.7\n", 4) == ["203.0.113.7"]
    assert scan("addr: 2001:db8::1/64 fe80::1", 6) == ["2001:db8::1", "fe80::1"]
    assert scan("999.1.1.1 1.2.3", 4) == []


def test_static_and_order():
    d = Detector()
    det = d.detect(["static:10.0.0.1", "static:8.8.8.8"], 4)
    assert det.address == "8.8.8.8" and det.source == "static:8.8.8.8" and det.refused
    det = d.detect(["static:10.0.0.1"], 4, allow_private=True)
    assert det.address == "10.0.0.1"
    assert d.detect(["static:8.8.8.8"], 6).address is None


def test_cgnat_reason():
    det = Detector().detect(["static:100.100.1.1"], 4)
    assert det.address is None and "CGNAT" in det.reason()


def test_cmd_source_runs_without_shell(tmp_path):
    marker = tmp_path / "pwned"
    d = Detector()
    det = d.detect([f"cmd:echo 8.8.4.4; touch {marker}"], 4)
    # Without a shell, "; touch" is just more arguments to echo.
    assert det.address == "8.8.4.4" and not marker.exists()
    assert "status 1" in d.detect(["cmd:false"], 4).reason()
    assert "not found" in d.detect(["cmd:/nonexistent/x"], 4).reason()


def test_interface_source_prefers_stable_global():
    addrs = [
        IfAddr(20, 2, "wan", 6, "2001:4860::aaaa", 64, 0x01, 0),  # temporary: never
        IfAddr(20, 2, "wan", 6, "2001:4860::dead", 64, 0x20, 0),  # deprecated: never
        IfAddr(20, 2, "wan", 6, "fe80::1", 64, 0x80, 253),
        IfAddr(20, 2, "wan", 6, "2001:4860::1", 64, 0x80, 0),
        IfAddr(20, 3, "lan", 6, "2001:4860::2", 64, 0x80, 0),
    ]
    d = Detector(interface_addresses=lambda fam: addrs)
    assert d.detect(["interface:wan"], 6).address == "2001:4860::1"
    assert "no IPv6 address on eth9" in d.detect(["interface:eth9"], 6).reason()


def test_interface_source_real_netlink():
    det = Detector().detect(["interface:lo"], 4, allow_private=True)
    assert det.address == "127.0.0.1"
    det = Detector().detect(["interface:lo"], 4)
    assert det.address is None and "loopback" in det.reason()


def _serve(body: bytes):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_url_source_and_fallback():
    srv = _serve(b"your ip: 8.8.8.8\n")
    try:
        det = Detector().detect(["url:http://127.0.0.1:1/", f"url:http://127.0.0.1:{srv.server_port}/"], 4)
        assert det.address == "8.8.8.8" and det.source.endswith(f"{srv.server_port}/")
    finally:
        srv.shutdown()


def test_ubus_source(tmp_path, monkeypatch):
    status = {"up": True, "ipv4-address": [{"address": "8.8.8.8", "mask": 32}],
              "ipv6-address": [{"address": "2001:4860::9", "mask": 64}]}
    ubus = tmp_path / "ubus"
    ubus.write_text("#!/bin/sh\n[ \"$2\" = \"network.interface.wan\" ] || exit 4\ncat <<'E'\n"
                    + json.dumps(status) + "\nE\n")
    ubus.chmod(ubus.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    d = Detector()
    assert d.detect(["ubus:wan"], 4).address == "8.8.8.8"
    assert d.detect(["ubus:wan"], 6).address == "2001:4860::9"
    assert "no such interface" in d.detect(["ubus:wan9"], 4).reason()
