"""Home Assistant MQTT discovery payloads.

One device per agent; per record an address sensor and a problem
binary_sensor; an "update now" button; the clock offset. Every entity reads
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


def _match(rec: "RecordConfig") -> str:
    # Jinja for "the state entry of this record"; names and types are validated
    # DNS names, so they cannot break out of the quotes.
    return f"{{% for r in value_json.records if r.record == '{rec.name}' and r.type == '{rec.type}' %}}"


def messages(config: "Config", topics: Dict[str, str]) -> List[Tuple[str, Dict[str, Any]]]:
    """(topic, payload) for every entity of this agent; published retained."""
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

    for rec in config.records:
        obj = _oid(f"{rec.name}_{rec.type}").lower()
        add("sensor", obj, {
            "name": f"{rec.name} {rec.type}", "icon": "mdi:ip-network", "state_topic": topics["state"],
            "value_template": _match(rec) + "{{ r.ip }}{% endfor %}",
            "json_attributes_topic": topics["state"],
            "json_attributes_template": _match(rec) + "{{ r | tojson }}{% endfor %}",
        })
        add("binary_sensor", f"{obj}_problem", {
            "name": f"{rec.name} {rec.type} problem", "device_class": "problem", "state_topic": topics["state"],
            "value_template": _match(rec) + "{{ 'ON' if r.status in ('failed', 'skipped') else 'OFF' }}"
                                            "{% endfor %}",
            "entity_category": "diagnostic",
        })
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
