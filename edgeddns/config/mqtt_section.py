"""The ``[mqtt]`` table."""

from __future__ import annotations

from typing import Any, Dict

from edgeddns.config.model import MqttConfig
from edgeddns.config.reader import Reader

MQTT_KEYS = frozenset({"host", "port", "tls", "ca_file", "username", "password", "password_file", "client_id",
           "keepalive", "topic_prefix", "qos", "accept_ip", "discovery", "discovery_prefix", "discovery_spread",
           "broadcast_spread", "broadcast_spread_force",
           "protocol", "max_payload", "queue_size"})


def mqtt_section(rd: Reader, data: Dict[str, Any]) -> MqttConfig:
    m = rd.table(data.get("mqtt"), "mqtt")
    rd.only(m, "mqtt", MQTT_KEYS)
    host = rd.get(m, "mqtt", "host", str, required=True)
    if not host.strip():
        raise rd.fail("mqtt.host", "is empty")
    tls = rd.get(m, "mqtt", "tls", bool, False)
    port = rd.get(m, "mqtt", "port", int, 8883 if tls else 1883)
    if not 0 < port < 65536:
        raise rd.fail("mqtt.port", "must be between 1 and 65535")
    ca_file = rd.existing_file(m, "mqtt", "ca_file")
    prefix = _topic(rd, m, "topic_prefix", "edgeddns")
    discovery_prefix = _topic(rd, m, "discovery_prefix", "homeassistant")
    qos = rd.get(m, "mqtt", "qos", int, 1)
    if qos not in (0, 1, 2):
        raise rd.fail("mqtt.qos", "must be 0, 1 or 2")
    keepalive = rd.get(m, "mqtt", "keepalive", int, 60)
    if not 5 <= keepalive <= 65535:
        raise rd.fail("mqtt.keepalive", "must be between 5 and 65535 seconds")
    protocol = rd.get(m, "mqtt", "protocol", str, "auto")
    if protocol not in ("auto", "5", "3.1.1"):
        raise rd.fail("mqtt.protocol", 'must be "auto", "5" or "3.1.1"')
    max_payload = rd.get(m, "mqtt", "max_payload", int, 4096)
    if not 64 <= max_payload <= 1 << 20:
        raise rd.fail("mqtt.max_payload", "must be between 64 and 1048576 bytes")
    queue_size = rd.get(m, "mqtt", "queue_size", int, 1000)
    if not 1 <= queue_size <= 100000:
        raise rd.fail("mqtt.queue_size", "must be between 1 and 100000")
    return MqttConfig(
        host=host, port=port, tls=tls, ca_file=ca_file,
        username=rd.get(m, "mqtt", "username", str),
        password=rd.secret(m, "mqtt", "password", False),
        client_id=rd.get(m, "mqtt", "client_id", str),
        keepalive=keepalive, topic_prefix=prefix, qos=qos,
        accept_ip=rd.get(m, "mqtt", "accept_ip", bool, False),
        discovery=_discovery(rd, m),
        discovery_spread=_seconds(rd, m, "discovery_spread", 10.0),
        broadcast_spread=_seconds(rd, m, "broadcast_spread", 10.0),
        broadcast_spread_force=_seconds(rd, m, "broadcast_spread_force", 30.0),
        discovery_prefix=discovery_prefix,
        protocol=protocol, max_payload=max_payload, queue_size=queue_size,
    )


def _topic(rd: Reader, m: Dict[str, Any], key: str, default: str) -> str:
    """A topic prefix: never empty, no wildcards, no leading or trailing '/'."""
    prefix = rd.get(m, "mqtt", key, str, default)
    if not prefix or any(ch in prefix for ch in "+#\0") or prefix.startswith("/") or prefix.endswith("/"):
        raise rd.fail(f"mqtt.{key}", "must be a topic without wildcards or leading/trailing '/'")
    return prefix


DISCOVERY_MODES = ("full", "minimal", "off")


def _discovery(rd: Reader, m: Dict[str, Any]) -> str:
    """``"full"``, ``"minimal"`` or ``"off"``; ``true``/``false`` (the older spelling) mean full/off."""
    v = m.get("discovery", "full")
    if isinstance(v, bool):
        return "full" if v else "off"
    if v not in DISCOVERY_MODES:
        raise rd.fail("mqtt.discovery", f'must be one of "full", "minimal", "off" (or true/false), not {v!r}')
    return v


def _seconds(rd: Reader, m: Dict[str, Any], key: str, default: float) -> float:
    v = m.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 3600:
        raise rd.fail(f"mqtt.{key}", "must be a number of seconds from 0 to 3600")
    return float(v)
