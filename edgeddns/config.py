"""Load ``config.toml`` into typed, validated objects.

Every problem is reported as a :class:`ConfigError` naming the file and the key
path (``records[1].provider``), so the CLI can print one line and exit 2.
Provider tables are checked against the option schema each provider module
declares, so a typo in a key is caught at load, not at the first update.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from edgeddns.errors import ConfigError
from edgeddns.options import Opt, Secret

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on old interpreters only
    import tomli as _toml


@dataclass
class AgentConfig:
    node_id: str
    state_dir: str
    poll_interval: float = 0.0  # minutes, 0 = no safety-net poll
    log_level: str = "info"


@dataclass
class IpConfig:
    ipv4: List[str] = field(default_factory=list)
    ipv6: List[str] = field(default_factory=list)


DEFAULT_NTP_SERVERS = [
    "ntp.aliyun.com",
    "ntp.tencent.com",
    "time.cloudflare.com",
    "pool.ntp.org",
    "time.google.com",
]


@dataclass
class ClockConfig:
    mode: str = "auto"  # auto | system | ntp
    ntp_servers: List[str] = field(default_factory=lambda: list(DEFAULT_NTP_SERVERS))
    max_age: float = 3600.0  # seconds before the offset is measured again
    timeout: float = 1.0  # per NTP server


@dataclass
class MqttConfig:
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
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    protocol: str = "auto"  # auto (MQTT 5, falling back to 3.1.1) | 5 | 3.1.1
    max_payload: int = 4096
    queue_size: int = 1000


@dataclass
class ProviderConfig:
    name: str
    type: str
    options: Dict[str, Any]
    endpoint: Optional[str] = None
    ca_file: Optional[str] = None
    timeout: float = 10.0


@dataclass
class RecordConfig:
    name: str
    type: str  # "A" or "AAAA"
    provider: str
    zone: Optional[str] = None
    ttl: Optional[int] = None
    ip: Optional[List[str]] = None  # per-record source override
    allow_private: bool = False
    options: Dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> int:
        return 4 if self.type == "A" else 6

    @property
    def key(self) -> str:
        return f"{self.name}/{self.type}"


@dataclass
class Config:
    path: str
    agent: AgentConfig
    ip: IpConfig
    clock: ClockConfig
    providers: Dict[str, ProviderConfig]
    records: List[RecordConfig]
    mqtt: Optional[MqttConfig] = None
    secrets: List[Secret] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def sources_for(self, record: RecordConfig) -> List[str]:
        return config_sources(self.ip, record)

    def record(self, name: str, rtype: Optional[str] = None) -> List[RecordConfig]:
        name = name.rstrip(".").lower()
        return [r for r in self.records if r.name == name and (rtype is None or r.type == rtype)]


SOURCE_KINDS = ("interface", "url", "cmd", "static", "ubus")
_LABEL = re.compile(r"^(\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)$")


def valid_hostname(name: str) -> Optional[str]:
    """Return why ``name`` is not a usable DNS name, or None."""
    if not name or len(name) > 253:
        return "must be a DNS name of 1 to 253 characters"
    labels = name.split(".")
    if len(labels) < 2:
        return f'"{name}" must be a fully qualified name (e.g. home.example.com)'
    for i, label in enumerate(labels):
        if not _LABEL.match(label) or (label == "*" and i != 0):
            return f'"{name}" is not a valid DNS name (label "{label}")'
    return None


class _Loader:
    def __init__(self, path: str, environ: Optional[Dict[str, str]] = None):
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))
        self.environ = os.environ if environ is None else environ
        self.secrets: List[Secret] = []
        self.inline_secrets = False

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.path, key, message)

    def table(self, data: Any, key: str) -> Dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table, not {_tname(data)}")
        return data

    def only(self, data: Dict[str, Any], key: str, allowed: Any) -> None:
        for k in data:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, data: Dict[str, Any], key: str, name: str, kind: type, default: Any = None,
            required: bool = False) -> Any:
        where = f"{key}.{name}" if key else name
        if name not in data:
            if required:
                raise self.fail(where, "is required")
            return default
        value = data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool):
            raise self.fail(where, "must be an integer, not a boolean")
        if not isinstance(value, kind):
            raise self.fail(where, f"must be {_kname(kind)}, not {_tname(value)}")
        return value

    def resolve_path(self, p: str) -> str:
        p = os.path.expanduser(p)
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(self.base, p))

    def secret(self, data: Dict[str, Any], key: str, name: str, required: bool) -> Optional[Secret]:
        """A secret is inline, ``env:VAR``, or read from ``<name>_file``."""
        where = f"{key}.{name}"
        file_key = f"{name}_file"
        if name in data and file_key in data:
            raise self.fail(where, f"give either {name} or {file_key}, not both")
        if file_key in data:
            fpath = self.get(data, key, file_key, str)
            full = self.resolve_path(fpath)
            try:
                with open(full, encoding="utf-8") as f:
                    value = f.read().strip()
            except OSError as e:
                raise self.fail(f"{key}.{file_key}", f"cannot read {fpath}: {e.strerror}") from None
            if not value:
                raise self.fail(f"{key}.{file_key}", f"{fpath} is empty")
            s = Secret(value, f"file:{fpath}")
        elif name in data:
            raw = data[name]
            if not isinstance(raw, str):
                raise self.fail(where, f"must be a string, not {_tname(raw)}")
            if raw.startswith("env:"):
                var = raw[4:]
                if var not in self.environ or not self.environ[var]:
                    raise self.fail(where, f"environment variable {var} is not set")
                s = Secret(self.environ[var], raw)
            else:
                if not raw:
                    raise self.fail(where, "is empty")
                self.inline_secrets = True
                s = Secret(raw, "inline")
        else:
            if required:
                raise self.fail(where, f"is required (inline, env:VAR, or {file_key})")
            return None
        self.secrets.append(s)
        return s

    def options(self, data: Dict[str, Any], key: str, schema: Dict[str, Opt],
                reserved: Tuple[str, ...]) -> Dict[str, Any]:
        allowed = set(reserved) | set(schema)
        allowed |= {f"{k}_file" for k, o in schema.items() if o.kind is Secret}
        self.only(data, key, allowed)
        out: Dict[str, Any] = {}
        for name, opt in schema.items():
            where = f"{key}.{name}"
            if opt.kind is Secret:
                out[name] = self.secret(data, key, name, opt.required)
                continue
            value = self.get(data, key, name, opt.kind, opt.default, opt.required)
            if value is None:
                out[name] = None
                continue
            if opt.choices and value not in opt.choices:
                raise self.fail(where, f"must be one of {', '.join(map(str, opt.choices))}, not {value!r}")
            if opt.check is not None:
                problem = opt.check(value)
                if problem:
                    raise self.fail(where, problem)
            out[name] = value
        return out


def _tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def _kname(k: type) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(k, k.__name__)


def _check_source(loader: _Loader, key: str, src: Any) -> str:
    if not isinstance(src, str):
        raise loader.fail(key, f"must be a string, not {_tname(src)}")
    kind, sep, arg = src.partition(":")
    if not sep or kind not in SOURCE_KINDS or not arg.strip():
        raise loader.fail(key, f'"{src}" is not an address source (use one of: '
                          + ", ".join(f"{k}:..." for k in SOURCE_KINDS) + ")")
    if kind == "url" and not arg.startswith(("http://", "https://")):
        raise loader.fail(key, f'"{src}": the URL must start with http:// or https://')
    return src


def _sources(loader: _Loader, data: Dict[str, Any], key: str, name: str) -> Optional[List[str]]:
    if name not in data:
        return None
    value = data[name]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise loader.fail(f"{key}.{name}" if key else name,
                          f"must be an array of sources, not {_tname(value)}")
    return [_check_source(loader, f"{key}.{name}[{i}]" if key else f"{name}[{i}]", s)
            for i, s in enumerate(value)]


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/edgeddns"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgeddns")


def _node_id_ok(v: str) -> Optional[str]:
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", v):
        return "must be 1 to 64 letters, digits, '.', '_' or '-' (it is part of MQTT topics)"
    return None


def load(path: str, environ: Optional[Dict[str, str]] = None) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` on any problem."""
    loader = _Loader(path, environ)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror}") from None
    try:
        data = _toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    except _toml.TOMLDecodeError as e:
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
    return _build(loader, data, path)


def _build(loader: _Loader, data: Dict[str, Any], path: str) -> Config:
    loader.only(data, "", {"agent", "ip", "clock", "providers", "records", "mqtt"})

    a = loader.table(data.get("agent"), "agent")
    loader.only(a, "agent", {"node_id", "state_dir", "poll_interval", "log_level"})
    node_id = loader.get(a, "agent", "node_id", str) or os.uname().nodename.split(".")[0] or "edgeddns"
    problem = _node_id_ok(node_id)
    if problem:
        if "node_id" in a:
            raise loader.fail("agent.node_id", problem)
        node_id = re.sub(r"[^A-Za-z0-9_.-]", "-", node_id)[:64]
    state_dir = loader.get(a, "agent", "state_dir", str)
    poll = loader.get(a, "agent", "poll_interval", float, 0.0)
    if poll < 0:
        raise loader.fail("agent.poll_interval", "must be 0 (off) or a number of minutes")
    level = loader.get(a, "agent", "log_level", str, "info")
    if level not in ("debug", "info", "warning", "error"):
        raise loader.fail("agent.log_level", "must be one of debug, info, warning, error")
    agent = AgentConfig(node_id=node_id,
                        state_dir=loader.resolve_path(state_dir) if state_dir else default_state_dir(),
                        poll_interval=poll, log_level=level)

    i = loader.table(data.get("ip"), "ip")
    loader.only(i, "ip", {"ipv4", "ipv6"})
    ip = IpConfig(ipv4=_sources(loader, i, "ip", "ipv4") or [], ipv6=_sources(loader, i, "ip", "ipv6") or [])

    c = loader.table(data.get("clock"), "clock")
    loader.only(c, "clock", {"mode", "ntp_servers", "max_age", "timeout"})
    mode = loader.get(c, "clock", "mode", str, "auto")
    if mode not in ("auto", "system", "ntp"):
        raise loader.fail("clock.mode", f'must be "auto", "system" or "ntp", not "{mode}"')
    servers = loader.get(c, "clock", "ntp_servers", list, list(DEFAULT_NTP_SERVERS))
    for n, s in enumerate(servers):
        if not isinstance(s, str) or not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.:-]+)$", s):
            raise loader.fail(f"clock.ntp_servers[{n}]", "must be \"host\" or \"host:port\"")
    max_age = loader.get(c, "clock", "max_age", float, 3600.0)
    timeout = loader.get(c, "clock", "timeout", float, 1.0)
    if max_age <= 0:
        raise loader.fail("clock.max_age", "must be a positive number of seconds")
    if not 0 < timeout <= 30:
        raise loader.fail("clock.timeout", "must be between 0 and 30 seconds")
    clock = ClockConfig(mode=mode, ntp_servers=servers, max_age=max_age, timeout=timeout)

    mqtt = _mqtt(loader, data) if "mqtt" in data else None

    from edgeddns.providers import provider_class

    ptab = loader.table(data.get("providers"), "providers")
    providers: Dict[str, ProviderConfig] = {}
    for name, p in ptab.items():
        key = f"providers.{name}"
        p = loader.table(p, key)
        ptype = loader.get(p, key, "type", str, required=True)
        try:
            cls = provider_class(ptype)
        except KeyError as e:
            raise loader.fail(f"{key}.type", str(e.args[0])) from None
        opts = loader.options(p, key, cls.OPTIONS, ("type", "endpoint", "ca_file", "timeout"))
        endpoint = loader.get(p, key, "endpoint", str)
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise loader.fail(f"{key}.endpoint", "must be an http:// or https:// URL")
        ca_file = loader.get(p, key, "ca_file", str)
        if ca_file is not None:
            ca_file = loader.resolve_path(ca_file)
            if not os.path.isfile(ca_file):
                raise loader.fail(f"{key}.ca_file", f"no such file: {ca_file}")
        ptimeout = loader.get(p, key, "timeout", float, 10.0)
        if not 0 < ptimeout <= 120:
            raise loader.fail(f"{key}.timeout", "must be between 0 and 120 seconds")
        cfg = ProviderConfig(name=name, type=ptype, options=opts, endpoint=endpoint,
                             ca_file=ca_file, timeout=ptimeout)
        problem = cls.check_config(cfg, loader.resolve_path)
        if problem:
            raise loader.fail(problem[0] and f"{key}.{problem[0]}" or key, problem[1])
        providers[name] = cfg

    rlist = data.get("records", [])
    if not isinstance(rlist, list):
        raise loader.fail("records", "must be an array of tables ([[records]])")
    records: List[RecordConfig] = []
    seen = set()
    for n, r in enumerate(rlist):
        key = f"records[{n}]"
        r = loader.table(r, key)
        pname = loader.get(r, key, "provider", str, required=True)
        if pname not in providers:
            defined = ", ".join(providers) or "none"
            raise loader.fail(f"{key}.provider", f'unknown provider "{pname}" (defined: {defined})')
        cls = provider_class(providers[pname].type)
        rname = loader.get(r, key, "name", str, required=True).rstrip(".").lower()
        problem = valid_hostname(rname)
        if problem:
            raise loader.fail(f"{key}.name", problem)
        rtype = loader.get(r, key, "type", str, "A").upper()
        if rtype not in ("A", "AAAA"):
            raise loader.fail(f"{key}.type", f'must be "A" or "AAAA", not "{rtype}"')
        zone = loader.get(r, key, "zone", str)
        if zone is not None:
            zone = zone.rstrip(".").lower()
            if not (rname == zone or rname.endswith("." + zone)) or valid_hostname(zone):
                raise loader.fail(f"{key}.zone", f'"{zone}" is not a suffix of "{rname}"')
        ttl = loader.get(r, key, "ttl", int)
        if ttl is not None and not 1 <= ttl <= 86400 * 7:
            raise loader.fail(f"{key}.ttl", "must be between 1 and 604800 seconds")
        ropts = loader.options(r, key, cls.RECORD_OPTIONS,
                               ("name", "type", "provider", "zone", "ttl", "ip", "allow_private"))
        rec = RecordConfig(name=rname, type=rtype, provider=pname, zone=zone, ttl=ttl,
                           ip=_sources(loader, r, key, "ip"),
                           allow_private=loader.get(r, key, "allow_private", bool, False), options=ropts)
        if rec.key in seen:
            raise loader.fail(f"{key}.name", f"{rname} {rtype} is listed twice")
        seen.add(rec.key)
        if not config_sources(ip, rec):
            fam = "ipv4" if rec.family == 4 else "ipv6"
            raise loader.fail(f"{key}.ip", f"no address source: set [ip] {fam} or this record's ip")
        records.append(rec)

    cfg = Config(path=path, agent=agent, ip=ip, clock=clock, providers=providers, records=records,
                 mqtt=mqtt, secrets=loader.secrets)
    if loader.inline_secrets:
        try:
            mode_bits = os.stat(path).st_mode
        except OSError:
            mode_bits = 0
        if mode_bits & (stat.S_IRGRP | stat.S_IROTH):
            cfg.warnings.append(f"{path}: holds inline secrets but is readable by other users "
                                f"(chmod 600 {path}, or use env:VAR or *_file)")
    return cfg


def config_sources(ip: IpConfig, rec: RecordConfig) -> List[str]:
    if rec.ip is not None:
        return rec.ip
    return ip.ipv4 if rec.family == 4 else ip.ipv6


def _mqtt(loader: _Loader, data: Dict[str, Any]) -> MqttConfig:
    m = loader.table(data.get("mqtt"), "mqtt")
    fields = {"host", "port", "tls", "ca_file", "username", "password", "password_file", "client_id",
              "keepalive", "topic_prefix", "qos", "accept_ip", "discovery", "discovery_prefix", "protocol",
              "max_payload", "queue_size"}
    loader.only(m, "mqtt", fields)
    host = loader.get(m, "mqtt", "host", str, required=True)
    tls = loader.get(m, "mqtt", "tls", bool, False)
    port = loader.get(m, "mqtt", "port", int, 8883 if tls else 1883)
    if not 0 < port < 65536:
        raise loader.fail("mqtt.port", "must be between 1 and 65535")
    ca_file = loader.get(m, "mqtt", "ca_file", str)
    if ca_file is not None:
        ca_file = loader.resolve_path(ca_file)
        if not os.path.isfile(ca_file):
            raise loader.fail("mqtt.ca_file", f"no such file: {ca_file}")
    prefix = loader.get(m, "mqtt", "topic_prefix", str, "edgeddns")
    if not prefix or any(ch in prefix for ch in "+#\0") or prefix.startswith("/") or prefix.endswith("/"):
        raise loader.fail("mqtt.topic_prefix", "must be a topic without wildcards or leading/trailing '/'")
    qos = loader.get(m, "mqtt", "qos", int, 1)
    if qos not in (0, 1, 2):
        raise loader.fail("mqtt.qos", "must be 0, 1 or 2")
    keepalive = loader.get(m, "mqtt", "keepalive", int, 60)
    if not 5 <= keepalive <= 65535:
        raise loader.fail("mqtt.keepalive", "must be between 5 and 65535 seconds")
    protocol = loader.get(m, "mqtt", "protocol", str, "auto")
    if protocol not in ("auto", "5", "3.1.1"):
        raise loader.fail("mqtt.protocol", 'must be "auto", "5" or "3.1.1"')
    max_payload = loader.get(m, "mqtt", "max_payload", int, 4096)
    if not 64 <= max_payload <= 1 << 20:
        raise loader.fail("mqtt.max_payload", "must be between 64 and 1048576 bytes")
    queue_size = loader.get(m, "mqtt", "queue_size", int, 1000)
    if not 1 <= queue_size <= 100000:
        raise loader.fail("mqtt.queue_size", "must be between 1 and 100000")
    return MqttConfig(
        host=host, port=port, tls=tls, ca_file=ca_file,
        username=loader.get(m, "mqtt", "username", str),
        password=loader.secret(m, "mqtt", "password", False),
        client_id=loader.get(m, "mqtt", "client_id", str),
        keepalive=keepalive, topic_prefix=prefix, qos=qos,
        accept_ip=loader.get(m, "mqtt", "accept_ip", bool, False),
        discovery=loader.get(m, "mqtt", "discovery", bool, True),
        discovery_prefix=loader.get(m, "mqtt", "discovery_prefix", str, "homeassistant"),
        protocol=protocol, max_payload=max_payload, queue_size=queue_size,
    )


def dump(cfg: Config) -> Dict[str, Any]:
    """The parsed configuration as plain data, with every secret masked."""

    def clean(v: Any) -> Any:
        if isinstance(v, Secret):
            return f"*** ({v.origin})" if v.origin != "inline" else "***"
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if hasattr(v, "__dataclass_fields__"):
            return clean({k: getattr(v, k) for k in v.__dataclass_fields__})
        return v

    out = clean({"agent": cfg.agent, "ip": cfg.ip, "clock": cfg.clock, "providers": cfg.providers,
                 "records": cfg.records})
    if cfg.mqtt:
        out["mqtt"] = clean(cfg.mqtt)
    return out
