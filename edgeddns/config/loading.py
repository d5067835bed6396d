"""Read ``config.toml`` and build a :class:`Config`: the providers and records tables.

The provider registry is imported here (and only here), never by the model,
so providers can name the config types without a circle.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any, Dict, List, Optional

from edgeddns.config.model import Config, ProviderConfig, RecordConfig, config_sources
from edgeddns.config.mqtt_section import mqtt_section
from edgeddns.config.reader import Reader
from edgeddns.config.sections import (
    RECORD_ADDRESS_KEYS,
    agent_section,
    check_static_family,
    clock_section,
    interval,
    ip_section,
    match_key,
    select_key,
    sources,
    suffix_keys,
    valid_hostname,
)
from edgeddns.config.transport import cleartext_problem, urls_problem
from edgeddns.errors import ConfigError
from edgeddns.options import Secret

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on old interpreters only
    import tomli as _toml


MAX_CONFIG = 1 << 20


def load(path: str, environ: Optional[Dict[str, str]] = None) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` on any problem."""
    rd = Reader(path, environ)
    try:
        # Any kind of file (a pipe from ``-c <(...)`` too), but bounded: /dev/zero is not a config.
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG + 1)
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror}") from None
    if len(raw) > MAX_CONFIG:
        raise ConfigError(path, "", "larger than 1 MiB: not a config file")
    # A byte-order mark (some Windows editors write one) is not a TOML error. Stripped by hand: the
    # utf-8-sig codec would be one more module on the hotplug path.
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        data = _toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    except _toml.TOMLDecodeError as e:
        raise ConfigError(path, "", f"invalid TOML: {_as_written(str(e))}") from None
    if not data:
        # An agent with nothing configured would idle forever: a truncated or wrong file, not a setup.
        raise ConfigError(path, "", "no settings: the file is empty or only comments "
                                    "(every key is in docs/config.md; the shipped config.toml is a start)")
    return build(rd, data, path)


def _as_written(message: str) -> str:
    """tomllib names a table as a tuple ("Cannot declare ('providers', 'lan') twice"): say [providers.lan]."""
    import re

    return re.sub(r"\(((?:'[^']*', ?)*'[^']*',?)\)",
                  lambda m: "[" + ".".join(re.findall(r"'([^']*)'", m.group(1))) + "]", message)


def build(rd: Reader, data: Dict[str, Any], path: str) -> Config:
    rd.only(data, "", {"agent", "ip", "clock", "providers", "records", "mqtt"})
    agent = agent_section(rd, data)
    ip = ip_section(rd, data)
    clock = clock_section(rd, data)
    mqtt = mqtt_section(rd, data) if "mqtt" in data else None
    providers = _providers(rd, data)
    records = _records(rd, data, providers, ip)
    cfg = Config(path=path, agent=agent, ip=ip, clock=clock, providers=providers, records=records,
                 mqtt=mqtt, secrets=rd.secrets, warnings=list(rd.warnings), files=list(rd.files),
                 env_secrets=rd.env_secrets)
    cfg.warnings.extend(_provider_warnings(path, providers))
    if rd.inline_secrets:
        try:
            mode_bits = os.stat(path).st_mode
        except OSError:
            mode_bits = 0
        if mode_bits & (stat.S_IRGRP | stat.S_IROTH):
            cfg.warnings.append(f"{path}: holds inline secrets but is readable by other users "
                                f"(chmod 600 {path}, or use env:VAR or *_file)")
    return cfg


def _provider_warnings(path: str, providers: Dict[str, ProviderConfig]) -> List[str]:
    from edgeddns.providers import provider_class

    return [f"{path}: providers.{name}.{key}: {text}" for name, pc in providers.items()
            for key, text in provider_class(pc.type).config_warnings(pc)]


def _providers(rd: Reader, data: Dict[str, Any]) -> Dict[str, ProviderConfig]:
    from edgeddns.providers import provider_class

    ptab = rd.table(data.get("providers"), "providers")
    providers: Dict[str, ProviderConfig] = {}
    for name, p in ptab.items():
        key = f"providers.{name}"
        p = rd.table(p, key)
        ptype = rd.get(p, key, "type", str, required=True)
        try:
            cls = provider_class(ptype)
        except KeyError as e:
            raise rd.fail(f"{key}.type", str(e.args[0])) from None
        opts = rd.options(p, key, cls.OPTIONS, ("type", "endpoint", "ca_file", "timeout", "allow_http",
                                                "keepalive_interval"))
        endpoint = rd.get(p, key, "endpoint", str)
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise rd.fail(f"{key}.endpoint", "must be an http:// or https:// URL")
        ca_file = rd.existing_file(p, key, "ca_file")
        ptimeout = rd.get(p, key, "timeout", float, 10.0)
        if not 0 < ptimeout <= 120:
            raise rd.fail(f"{key}.timeout", "must be between 0 and 120 seconds")
        allow_http = rd.get(p, key, "allow_http", bool, False)
        keepalive = interval(rd, p, key, "keepalive_interval", None, "days", 365.0, 0.0)
        if keepalive is None:
            keepalive = getattr(cls, "default_keepalive", lambda o: None)(opts)
        cfg = ProviderConfig(name=name, type=ptype, options=opts, endpoint=endpoint,
                             ca_file=ca_file, timeout=ptimeout, allow_http=allow_http,
                             keepalive_interval=keepalive or None)
        problem = (urls_problem(endpoint, opts, cls.OPTIONS) or cls.check_config(cfg, rd.resolve_path)
                   or cleartext_problem(endpoint, opts, cls.OPTIONS, allow_http))
        if problem:
            raise rd.fail(problem[0] and f"{key}.{problem[0]}" or key, problem[1])
        providers[name] = cfg
    return providers


def _record_providers(rd: Reader, r: Dict[str, Any], key: str,
                      providers: Dict[str, ProviderConfig]) -> List[str]:
    """``provider = "x"`` or ``providers = ["x", "y"]``: one record per provider (issue 14 §3)."""
    if "providers" in r:
        if "provider" in r:
            raise rd.fail(f"{key}.providers", 'give either provider or providers, not both')
        names = r["providers"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise rd.fail(f"{key}.providers", 'must be a non-empty array of provider names, e.g. ["cf", "notify"]')
        if len(set(names)) != len(names):
            raise rd.fail(f"{key}.providers", "names a provider twice")
    else:
        names = [rd.get(r, key, "provider", str, required=True)]
    for pname in names:
        if pname not in providers:
            where = f"{key}.providers" if "providers" in r else f"{key}.provider"
            if not providers:
                raise rd.fail(where, f'unknown provider "{pname}": no provider is defined '
                                     f'(add a [providers.{pname}] table with its type)')
            raise rd.fail(where, f'unknown provider "{pname}" (defined: {", ".join(providers)})')
    return names


def _records(rd: Reader, data: Dict[str, Any], providers: Dict[str, ProviderConfig], ip: Any) -> List[RecordConfig]:
    from edgeddns.providers import provider_class

    rlist = data.get("records", [])
    if not isinstance(rlist, list):
        raise rd.fail("records", "must be an array of tables ([[records]])")
    records: List[RecordConfig] = []
    seen = set()
    for n, r in enumerate(rlist):
        key = f"records[{n}]"
        r = rd.table(r, key)
        pnames = _record_providers(rd, r, key, providers)
        rname = rd.get(r, key, "name", str, required=True).rstrip(".").lower()
        problem = valid_hostname(rname)
        if problem:
            raise rd.fail(f"{key}.name", problem)
        rtype = rd.get(r, key, "type", str, "A").upper()
        if rtype not in ("A", "AAAA"):
            raise rd.fail(f"{key}.type", f'must be "A" or "AAAA", not "{rtype}"')
        zone = rd.get(r, key, "zone", str)
        if zone is not None:
            zone = zone.rstrip(".").lower()
            if not (rname == zone or rname.endswith("." + zone)) or valid_hostname(zone):
                raise rd.fail(f"{key}.zone", f'"{zone}" is not a suffix of "{rname}"')
        ttl = rd.get(r, key, "ttl", int)
        if ttl is not None and not 1 <= ttl <= 86400 * 7:
            raise rd.fail(f"{key}.ttl", "must be between 1 and 604800 seconds")
        reserved = ("name", "type", "provider", "providers", "zone", "ttl", "ip", "allow_private",
                    "keepalive_interval") + RECORD_ADDRESS_KEYS
        classes = {pname: provider_class(providers[pname].type) for pname in pnames}
        # A key must mean something to at least one of the listed providers; each gets only its own.
        allowed = set(reserved)
        for cls in classes.values():
            allowed |= set(cls.RECORD_OPTIONS)
            allowed |= {f"{k}_file" for k, o in cls.RECORD_OPTIONS.items() if o.kind is Secret}
        rd.only(r, key, allowed)
        for pname, cls in classes.items():
            mine = set(reserved) | set(cls.RECORD_OPTIONS) | {f"{k}_file" for k in cls.RECORD_OPTIONS}
            ropts = rd.options({k: v for k, v in r.items() if k in mine}, key, cls.RECORD_OPTIONS, reserved)
            rec = RecordConfig(name=rname, type=rtype, provider=pname, zone=zone, ttl=ttl,
                               ip=sources(rd, r, key, "ip"),
                               allow_private=rd.get(r, key, "allow_private", bool, False), options=ropts,
                               select=select_key(rd, r, key), match=match_key(rd, r, key, 4 if rtype == "A" else 6),
                               keepalive_interval=interval(rd, r, key, "keepalive_interval", None, "days", 365.0, 0.0))
            rec.ipv6_suffix, rec.prefix_len = suffix_keys(rd, r, key, rtype)
            check_static_family(rd, f"{key}.ip", rec.ip or [], rec.family, f"this {rtype} record")
            problem = cls.check_record(providers[pname], rec)
            if problem:
                raise rd.fail(f"{key}.{problem[0]}", problem[1])
            if rec.key in seen:
                raise rd.fail(f"{key}.name", f"{rname} {rtype} is listed twice for provider {pname}")
            seen.add(rec.key)
            if not config_sources(ip, rec):
                fam = "ipv4" if rec.family == 4 else "ipv6"
                raise rd.fail(f"{key}.ip", f"no address source: set [ip] {fam} or this record's ip")
            records.append(rec)
    return records
