"""A fake webhook receiver.

It records every request as received (raw query string, headers, body), and
checks a Bearer token when one is set. For the provider matrix it also keeps
"records": a request carrying ``name``, ``type`` and ``ip`` (in the query, a
JSON body or a form body) stores that address.
"""

from __future__ import annotations

import json
import threading
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl

from tests.fakes.server import Reply, Request


class FakeWebhook:
    def __init__(self, token: Optional[str] = None):
        self.token = token
        self.requests: List[Request] = []
        self.calls: List[str] = []
        self.writes = 0
        self.records: Dict[Tuple[str, str], str] = {}
        self.reply: Optional[Reply] = None  # answer every request with this instead
        self.lock = threading.Lock()
        self.readable = False  # a webhook cannot be asked what it holds

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            self.requests.append(req)
            self.calls.append(f"{req.method} {req.path}")
            if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
                # Echo what arrived, as careless servers do: the client must not print it.
                return Reply.text(401, f"unauthorized: {req.headers.get('authorization', '')}")
            if self.reply is not None:
                return self.reply
            fields = dict(req.query)
            ctype = req.headers.get("content-type", "")
            if req.body and ctype.startswith("application/json"):
                data = req.json()
                if isinstance(data, dict):
                    fields.update({k: v for k, v in data.items() if isinstance(v, str)})
            elif req.body and ctype.startswith("application/x-www-form-urlencoded"):
                fields.update(dict(parse_qsl(req.body.decode(), keep_blank_values=True)))
            if {"name", "type", "ip"} <= set(fields):
                self.records[(fields["name"], fields["type"])] = fields["ip"]
            self.writes += 1
            return Reply.json(200, {"ok": True})

    # -- matrix contract ---------------------------------------------------------
    def values(self, name: str, rtype: str) -> List[str]:
        v = self.records.get((name, rtype))
        return [v] if v else []

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.records[(name, rtype)] = value

    def body_json(self, i: int = -1):
        return json.loads(self.requests[i].body)
