"""The typed configuration: plain dataclasses, no loading logic.

A leaf (it imports only :mod:`edgeddns.options`), so providers can name
:class:`ProviderConfig` and :class:`RecordConfig` without pulling in the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, List, Optional, Tuple

from edgeddns.options import Secret
from edgeddns.redact import Redactor


@dataclass
class AgentConfig:
    """``[agent]``: who this node is, where its state lives, how it logs."""

    node_id: str
    state_dir: str
    poll_interval: float = 0.0  # minutes, 0 = no safety-net poll
    log_level: str = "info"
    log_target: str = "auto"  # auto (syslog under procd, else stderr), stderr, syslog
    verify_interval: float = 1440.0  # minutes between reads of the live record, 0 = off
    source_poll_interval: float = 5.0  # minutes, records on url:/cmd: sources when poll_interval is 0
    force_interval: float = 60.0  # seconds: at most one forced write per record in this time


@dataclass
class IpConfig:
    """``[ip]``: the address sources per family and how an IPv6 address is chosen."""

    ipv4: List[str] = field(default_factory=list)
    ipv6: List[str] = field(default_factory=list)
    select: str = "stable"  # which IPv6 address of a source wins (edgeddns.ipselect)
    match: Optional[str] = None  # a prefix or interface id the address must have


DEFAULT_NTP_SERVERS = [
    "ntp.aliyun.com",
    "ntp.tencent.com",
    "time.cloudflare.com",
    "pool.ntp.org",
    "time.google.com",
]


@dataclass
class ClockConfig:
    """``[clock]``: whether and how the system clock is checked (edgeddns.timesync)."""

    mode: str = "auto"  # auto | system | ntp
    ntp_servers: List[str] = field(default_factory=lambda: list(DEFAULT_NTP_SERVERS))
    max_age: float = 3600.0  # seconds before the offset is measured again
    timeout: float = 1.0  # per NTP server


@dataclass
class MqttConfig:
    """``[mqtt]``: the broker, its credentials and TLS, topics, discovery."""

    host: str
    port: int = 1883
    tls: bool = False
    ca_file: Optional[str] = None
    username: Optional[str] = None
    password: Optional[Secret] = None
    client_id: Optional[str] = None
    keepalive: int = 60
    topic_prefix: str = "edgeddns"
    qos: int = 1
    accept_ip: bool = False
    discovery: str = "full"  # "full", "minimal" (one address sensor per record) or "off"
    broadcast_spread: float = 10.0  # seconds: an all/cmd/update starts within a random 0..this
    broadcast_spread_force: float = 30.0  # the same for one with "force" (every agent calls its providers)
    discovery_spread: float = 10.0  # seconds: the republish after a Home Assistant birth starts within
    discovery_prefix: str = "homeassistant"
    protocol: str = "auto"  # auto (MQTT 5, falling back to 3.1.1) | 5 | 3.1.1
    max_payload: int = 4096
    queue_size: int = 1000


@dataclass
class ProviderConfig:
    """One ``[providers.NAME]`` table, its options checked against the provider's schema."""

    name: str
    type: str
    options: Dict[str, Any]
    endpoint: Optional[str] = None
    ca_file: Optional[str] = None
    timeout: float = 10.0
    allow_http: bool = False  # credentials may go over http:// to a non-loopback host
    keepalive_interval: Optional[float] = None  # days between re-sends of an unchanged address


@dataclass
class RecordConfig:
    """One ``[[records]]`` entry: a name, a type and the provider that publishes it."""

    name: str
    type: str  # "A" or "AAAA"
    provider: str
    zone: Optional[str] = None
    ttl: Optional[int] = None
    ip: Optional[List[str]] = None  # per-record source override
    allow_private: bool = False
    options: Dict[str, Any] = field(default_factory=dict)
    ipv6_suffix: Optional[str] = None  # publish the source's prefix plus this interface id
    prefix_len: int = 64
    select: Optional[str] = None  # overrides [ip] select
    match: Optional[str] = None  # overrides [ip] match
    keepalive_interval: Optional[float] = None  # days; None = the provider's

    @property
    def family(self) -> int:
        return 4 if self.type == "A" else 6

    @property
    def key(self) -> str:
        """A record is a name, a type and a provider: one name may be published at several."""
        return f"{self.name}/{self.type}/{self.provider}"


@dataclass
class Config:
    """A whole validated config file."""

    path: str
    agent: AgentConfig
    ip: IpConfig
    clock: ClockConfig
    providers: Dict[str, ProviderConfig]
    records: List[RecordConfig]
    mqtt: Optional[MqttConfig] = None
    secrets: List[Secret] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)  # the files it names and read (secrets, CA bundles)
    env_secrets: bool = False  # a secret came from the environment (env:VAR)

    @cached_property
    def redactor(self) -> Redactor:
        """The redaction step every output channel applies, fed by this config's secrets."""
        return Redactor(s.reveal() for s in self.secrets)

    def sources_for(self, record: RecordConfig) -> List[str]:
        return config_sources(self.ip, record)

    def selection_for(self, record: RecordConfig) -> Tuple[str, Optional[str]]:
        """(select, match) for a record: its own, else [ip]'s; an [ip] match of the other family does not apply."""
        select = record.select or self.ip.select
        if record.match is not None:
            return select, record.match
        m = self.ip.match
        if m is not None and (6 if ":" in m else 4) != record.family:
            m = None
        return select, m

    def record(self, name: str, rtype: Optional[str] = None) -> List[RecordConfig]:
        name = name.rstrip(".").lower()
        return [r for r in self.records if r.name == name and (rtype is None or r.type == rtype)]


def config_sources(ip: IpConfig, rec: RecordConfig) -> List[str]:
    if rec.ip is not None:
        return rec.ip
    return ip.ipv4 if rec.family == 4 else ip.ipv6
