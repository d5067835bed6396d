"""Home Assistant MQTT discovery payloads.

One device per agent; per record an address sensor and a problem
binary_sensor; an "update now" button; the clock offset. ``discovery =
"minimal"`` keeps only the address sensors (a fleet pays per retained topic). Every entity reads
the retained state topic and follows the availability topic, so Home
Assistant shows the agent as unavailable when its last will fires.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from edgeddns import __version__

if TYPE_CHECKING:
    from edgeddns.config import Config, RecordConfig


def _oid(text: str) -> str:
    """Home Assistant allows only ``[a-zA-Z0-9_-]`` in the node and object ids of a topic."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _lit(text: str) -> str:
    """A Jinja string literal that holds ``text`` exactly: anything but [A-Za-z0-9_.-] is a \\u escape,
    so a provider name (any TOML key) cannot break out of the quotes."""
    out = []
    for ch in text:
        if (ch.isascii() and ch.isalnum()) or ch in "_.-":
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            out.append(f"\\U{ord(ch):08x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "'" + "".join(out) + "'"


def _match(rec: "RecordConfig") -> str:
    # Jinja for "the state entry of this record": one name may be published at several providers.
    return (f"{{% for r in value_json.records if r.record == {_lit(rec.name)} and r.type == {_lit(rec.type)}"
            f" and r.provider == {_lit(rec.provider)} %}}")


def object_ids(records: "List[RecordConfig]") -> Dict[str, str]:
    """A distinct Home Assistant object id per record key.

    A name without "_" published at one provider keeps the id edgeddns always
    gave it (``home_example_com_a``), so existing entities stay. Any other pair,
    where "." and "_" would both become "_" (``a.b.example.com`` and
    ``a_b.example.com``) or several providers share a name, gets its provider
    and a short checksum of the exact key appended.
    """
    import zlib

    per_name: Dict[Tuple[str, str], int] = {}
    for r in records:
        per_name[(r.name, r.type)] = per_name.get((r.name, r.type), 0) + 1
    out: Dict[str, str] = {}
    for r in records:
        base = _oid(f"{r.name}_{r.type}").lower()
        if "_" in r.name or per_name[(r.name, r.type)] > 1:
            crc = zlib.crc32(r.key.encode("utf-8")) & 0xFFFFFFFF
            base = _oid(f"{base}_{r.provider}").lower()[:180] + f"_{crc:08x}"
        out[r.key] = base
    return out


def messages(config: "Config", topics: Dict[str, str], mode: str = "full") -> List[Tuple[str, Dict[str, Any]]]:
    """(topic, payload) for every entity of this agent in ``mode``; published retained."""
    m = config.mqtt
    assert m is not None
    node = config.agent.node_id
    nid = _oid(node)
    prefix = m.discovery_prefix
    device = {"identifiers": [f"edgeddns_{nid}"], "name": f"edgeddns {node}", "manufacturer": "edgeddns",
              "model": "edgeddns agent", "sw_version": __version__}
    common = {"availability_topic": topics["availability"], "payload_available": "online",
              "payload_not_available": "offline", "device": device}
    out: List[Tuple[str, Dict[str, Any]]] = []

    def add(component: str, obj: str, payload: Dict[str, Any]) -> None:
        payload = {**payload, "unique_id": f"edgeddns_{nid}_{obj}", "object_id": f"edgeddns_{nid}_{obj}",
                   **common}
        out.append((f"{prefix}/{component}/{nid}/{obj}/config", payload))

    oids = object_ids(config.records)
    names = [(r.name, r.type) for r in config.records]
    for rec in config.records:
        obj = oids[rec.key]
        label = f"{rec.name} {rec.type}"
        if names.count((rec.name, rec.type)) > 1:
            label += f" via {rec.provider}"
        add("sensor", obj, {
            "name": label, "icon": "mdi:ip-network", "state_topic": topics["state"],
            "value_template": _match(rec) + "{{ r.ip }}{% endfor %}",
            "json_attributes_topic": topics["state"],
            "json_attributes_template": _match(rec) + "{{ r | tojson }}{% endfor %}",
        })
        if mode == "minimal":
            continue
        add("binary_sensor", f"{obj}_problem", {
            "name": f"{label} problem", "device_class": "problem", "state_topic": topics["state"],
            "value_template": _match(rec) + "{{ 'ON' if r.status in ('failed', 'skipped') else 'OFF' }}"
                                            "{% endfor %}",
            "entity_category": "diagnostic",
        })
    if mode == "minimal":
        return out
    add("button", "update_now", {
        "name": "Update DNS now", "icon": "mdi:refresh", "command_topic": topics["cmd"] + "/update",
        # No id: a button sends the same payload every time, and ids are deduplicated.
        "payload_press": "{}", "qos": m.qos, "retain": False,
    })
    add("sensor", "clock_offset", {
        "name": "Clock offset", "icon": "mdi:clock-alert-outline", "state_topic": topics["state"],
        "value_template": "{{ value_json.clock.offset }}", "unit_of_measurement": "s",
        "state_class": "measurement", "entity_category": "diagnostic",
        "json_attributes_topic": topics["state"], "json_attributes_template": "{{ value_json.clock | tojson }}",
    })
    return out
