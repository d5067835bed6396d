"""A fake Namecheap Dynamic DNS endpoint (``GET /update``), from Namecheap's knowledge-base article.

Parameters ``host`` ("@" for the apex), ``domain``, ``password`` (the
domain's DDNS password), ``ip``. Always HTTP 200; the outcome is the XML
``interface-response``: ``ErrCount`` 0 and ``IP`` on success, else
``errors/Err1`` and a ``responses/response`` with ``ResponseNumber`` and
``ResponseString``. A host must already have an A record ("No Records
updated. A record not Found;"). The declaration says utf-16 while the body
is UTF-8, as the service sends it.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Dict, List, Tuple

from tests.fakes.server import Reply, Request

HEAD = '<?xml version="1.0" encoding="utf-16"?>\r\n'


def _answer(ip: str = "", errors: Tuple[Tuple[str, str, str], ...] = ()) -> Reply:
    parts = [HEAD, "<interface-response>", "<Command>SETDNSHOST</Command>", "<Language>eng</Language>"]
    if not errors:
        parts += [f"<IP>{ip}</IP>", "<ErrCount>0</ErrCount>", "<errors />", "<ResponseCount>0</ResponseCount>",
                  "<responses />"]
    else:
        parts += [f"<ErrCount>{len(errors)}</ErrCount>", "<errors>"]
        parts += [f"<Err{i + 1}>{e[0]}</Err{i + 1}>" for i, e in enumerate(errors)]
        parts += ["</errors>", f"<ResponseCount>{len(errors)}</ResponseCount>", "<responses>"]
        parts += [f"<response><ResponseNumber>{num}</ResponseNumber><ResponseString>{text}</ResponseString>"
                  "</response>" for _, num, text in errors]
        parts += ["</responses>"]
    parts += ["<Done>true</Done>", "<debug><![CDATA[]]></debug>", "</interface-response>"]
    return Reply(200, "\r\n".join(parts).encode(), {"Content-Type": "text/html; charset=utf-8"})


class FakeNamecheap:
    def __init__(self, passwords: Dict[str, str], hosts: List[str]):
        self.passwords = {d.lower(): p for d, p in passwords.items()}  # domain -> DDNS password
        self.records: Dict[str, str] = {h.lower(): "127.0.0.1" for h in hosts}  # host fqdn -> A (pre-created)
        self.calls: List[Dict[str, str]] = []
        self.writes = 0
        self.readable = False
        self.lock = threading.Lock()

    def values(self, name: str, rtype: str) -> List[str]:
        v = self.records.get(name) if rtype == "A" else None
        return [v] if v and v != "127.0.0.1" else []

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.records[name] = value

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            if req.path != "/update":
                return Reply.text(404, "Not Found")
            q = req.query
            self.calls.append(dict(q))
            domain = q.get("domain", "").lower()
            if domain not in self.passwords:
                return _answer(errors=(("Domain name not found", "316153", "Validation error; not found; "
                                        "domain name(s)"),))
            if q.get("password") != self.passwords[domain]:
                return _answer(errors=(("Passwords do not match", "304156", "Validation error; invalid ; "
                                        "password"),))
            try:
                ip = ipaddress.ip_address(q.get("ip", ""))
            except ValueError:
                ip = None
            if ip is None or ip.version != 4:
                return _answer(errors=(("Invalid IP", "304154", "Validation error; invalid ; IP Address"),))
            host = q.get("host", "@").lower()
            fqdn = domain if host == "@" else f"{host}.{domain}"
            if fqdn not in self.records:
                return _answer(errors=(("No Records updated. A record not Found;", "380091",
                                        "No updates; A record not Found;"),))
            self.records[fqdn] = str(ip)
            self.writes += 1
            return _answer(str(ip))
