"""The small top-level tables: ``[agent]``, ``[ip]``, ``[clock]``, and address sources."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from edgeddns.config.model import DEFAULT_NTP_SERVERS, AgentConfig, ClockConfig, IpConfig
from edgeddns.config.reader import Reader, tname

SOURCE_KINDS = ("interface", "url", "cmd", "static", "ubus")
AGENT_KEYS = frozenset({"node_id", "state_dir", "poll_interval", "log_level", "log_target", "verify_interval",
                        "source_poll_interval", "force_interval"})
IP_KEYS = frozenset({"ipv4", "ipv6", "select", "match"})
CLOCK_KEYS = frozenset({"mode", "ntp_servers", "max_age", "timeout"})


def home_of(key: str) -> Optional[str]:
    """The one top-level table ``key`` belongs to, for an unknown key's message (None: several or none)."""
    from edgeddns.config.mqtt_section import MQTT_KEYS
    from edgeddns.providers import PROVIDERS, provider_class

    # A key some provider takes (username, zone, ttl) is no sign of a misplaced header.
    if any(key in provider_class(t).OPTIONS or key in provider_class(t).RECORD_OPTIONS for t in PROVIDERS):
        return None
    homes = [name for name, keys in (("agent", AGENT_KEYS), ("ip", IP_KEYS), ("clock", CLOCK_KEYS),
                                     ("mqtt", MQTT_KEYS)) if key in keys]
    return homes[0] if len(homes) == 1 else None
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
            return f'"{name}" is not a valid DNS name (label "{label}")' + _name_hint(name)
    return None


def _name_hint(name: str) -> str:
    """The likely fix for a name that is not one: a URL pasted whole, or an internationalized name."""
    if "://" in name:
        return f': it is a URL: give the name only, "{name.split("://", 1)[1].split("/", 1)[0]}"'
    if not name.isascii():
        try:  # the codec is loaded only on this error path
            return f': write it in its ASCII (IDNA) form, "{name.encode("idna").decode("ascii")}"'
        except UnicodeError:
            return ""
    return ""


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/edgeddns"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgeddns")


def _node_id_ok(v: str) -> Optional[str]:
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", v):
        return "must be 1 to 64 letters, digits, '.', '_' or '-' (it is part of MQTT topics)"
    return None


def _check_source(rd: Reader, key: str, src: Any) -> str:
    if not isinstance(src, str):
        raise rd.fail(key, f"must be a string, not {tname(src)}")
    kind, sep, arg = src.partition(":")
    if not sep or kind not in SOURCE_KINDS or not arg.strip():
        raise rd.fail(key, f'"{src}" is not an address source (use one of: '
                      + ", ".join(f"{k}:..." for k in SOURCE_KINDS) + ")")
    if kind == "url" and not arg.startswith(("http://", "https://")):
        raise rd.fail(key, f'"{src}": the URL must start with http:// or https://')
    if kind == "url" and "@" in arg.split("/", 3)[2]:
        # The fetcher sends no credentials (it would put them in the Host header, in clear over http://).
        raise rd.fail(key, "a url: source takes no user:password@ (what-is-my-IP pages need none)")
    if kind == "url":
        from edgeddns.config.transport import url_problem

        problem = url_problem(arg)
        if problem:
            raise rd.fail(key, problem)
    if kind == "static" and static_family(src) is None:
        raise rd.fail(key, f'"{src}": {arg.strip()} is not an IP address')
    if kind == "cmd":
        return "cmd:" + command_line(rd, key, arg)
    return src


def command_line(rd: Reader, key: str, cmd: str) -> str:
    """A command run without a shell: checked now, and a relative program path (``./myip.sh``) made
    relative to the config's directory, like every other path (the agent's working directory is "/"
    under procd). A bare name is left to PATH."""
    import shlex

    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise rd.fail(key, f"is not a valid command line: {e}") from None
    if not argv:
        raise rd.fail(key, "is empty")
    prog = argv[0]
    if "/" not in prog or os.path.isabs(prog):
        return cmd
    return shlex.join([rd.resolve_path(prog)] + argv[1:])


def static_family(src: str) -> Optional[int]:
    """4 or 6 for ``static:ADDRESS``, None if ADDRESS is not one (or not a static source)."""
    import ipaddress

    kind, _, arg = src.partition(":")
    if kind != "static":
        return None
    try:
        return ipaddress.ip_address(arg.strip()).version
    except ValueError:
        return None


def check_static_family(rd: Reader, key: str, srcs: List[str], family: int, what: str) -> None:
    """A static address of the other family can never serve: a config error, not a failure at run time."""
    for i, src in enumerate(srcs):
        fam = static_family(src)
        if fam is not None and fam != family:
            raise rd.fail(f"{key}[{i}]", f'"{src}" is an IPv{fam} address, but {what} needs IPv{family}')


def sources(rd: Reader, data: Dict[str, Any], key: str, name: str) -> Optional[List[str]]:
    if name not in data:
        return None
    value = data[name]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise rd.fail(f"{key}.{name}" if key else name,
                      f"must be an array of sources, not {tname(value)}")
    return [_check_source(rd, f"{key}.{name}[{i}]" if key else f"{name}[{i}]", s)
            for i, s in enumerate(value)]


def agent_section(rd: Reader, data: Dict[str, Any]) -> AgentConfig:
    a = rd.table(data.get("agent"), "agent")
    rd.only(a, "agent", AGENT_KEYS)
    node_id = rd.get(a, "agent", "node_id", str)
    if node_id is None:
        node_id = os.uname().nodename.split(".")[0] or "edgeddns"
    problem = _node_id_ok(node_id)
    if problem:
        if "node_id" in a:
            raise rd.fail("agent.node_id", problem)
        node_id = re.sub(r"[^A-Za-z0-9_.-]", "-", node_id)[:64]
    state_dir = rd.get(a, "agent", "state_dir", str)
    if state_dir is not None and not state_dir.strip():
        raise rd.fail("agent.state_dir", "is empty (leave it out for the default)")
    poll = interval(rd, a, "agent", "poll_interval", 0.0, "minutes", YEAR_MINUTES, 0.01)
    verify = interval(rd, a, "agent", "verify_interval", 1440.0, "minutes", YEAR_MINUTES, 1.0)
    source_poll = interval(rd, a, "agent", "source_poll_interval", 5.0, "minutes", YEAR_MINUTES, 0.01)
    force_interval = interval(rd, a, "agent", "force_interval", 60.0, "seconds", 86400.0, 0.0)
    level = rd.get(a, "agent", "log_level", str, "info")
    if level not in ("debug", "info", "warning", "error"):
        raise rd.fail("agent.log_level", "must be one of debug, info, warning, error")
    target = rd.get(a, "agent", "log_target", str, "auto")
    if target not in ("auto", "stderr", "syslog"):
        raise rd.fail("agent.log_target", "must be one of auto, stderr, syslog")
    return AgentConfig(node_id=node_id,
                       state_dir=rd.resolve_path(state_dir) if state_dir is not None else default_state_dir(),
                       poll_interval=poll, log_level=level, log_target=target, verify_interval=verify,
                       source_poll_interval=source_poll, force_interval=force_interval)


YEAR_MINUTES = 525600.0


def interval(rd: Reader, data: Dict[str, Any], key: str, name: str, default: Optional[float], unit: str,
             most: float, least: float) -> Optional[float]:
    """0 (off) or a finite number of ``unit`` in [least, most]: inf, nan and 1e300 are config errors."""
    value = rd.get(data, key, name, float, default)
    if value is None or value == 0:
        return value
    if not least <= value <= most:  # nan fails every comparison
        raise rd.fail(f"{key}.{name}", f"must be 0 (off) or between {least:g} and {most:g} {unit}")
    return value


def ip_section(rd: Reader, data: Dict[str, Any]) -> IpConfig:
    i = rd.table(data.get("ip"), "ip")
    rd.only(i, "ip", IP_KEYS)
    v4, v6 = sources(rd, i, "ip", "ipv4") or [], sources(rd, i, "ip", "ipv6") or []
    check_static_family(rd, "ip.ipv4", v4, 4, "ip.ipv4")
    check_static_family(rd, "ip.ipv6", v6, 6, "ip.ipv6")
    return IpConfig(ipv4=v4, ipv6=v6,
                    select=select_key(rd, i, "ip") or "stable", match=match_key(rd, i, "ip", None))


RECORD_ADDRESS_KEYS = ("ipv6_suffix", "prefix_len", "select", "match")


def select_key(rd: Reader, data: Dict[str, Any], key: str) -> Optional[str]:
    from edgeddns.ipselect import POLICIES

    value = rd.get(data, key, "select", str)
    if value is not None and value not in POLICIES:
        raise rd.fail(f"{key}.select", f'must be one of {", ".join(POLICIES)}, not "{value}"')
    return value


def match_key(rd: Reader, data: Dict[str, Any], key: str, family: Optional[int]) -> Optional[str]:
    """``match``: a prefix or an interface id (checked here, parsed again where it is used)."""
    from edgeddns.ipselect import parse_match

    value = rd.get(data, key, "match", str)
    if value is None:
        return None
    try:
        m = parse_match(value)
    except ValueError as e:
        raise rd.fail(f"{key}.match", str(e)) from None
    if family is not None and m.family != family:
        raise rd.fail(f"{key}.match", f'"{value}" is an IPv{m.family} match, but this is an IPv{family} record')
    return value.strip()


def suffix_keys(rd: Reader, data: Dict[str, Any], key: str, rtype: str) -> Tuple[Optional[str], int]:
    """``ipv6_suffix`` and ``prefix_len`` of a record."""
    from edgeddns.ipsuffix import DEFAULT_PREFIX_LEN, parse_suffix

    suffix = rd.get(data, key, "ipv6_suffix", str)
    plen = rd.get(data, key, "prefix_len", int)
    if suffix is None:
        if plen is not None:
            raise rd.fail(f"{key}.prefix_len", "only means something with ipv6_suffix")
        return None, DEFAULT_PREFIX_LEN
    if rtype != "AAAA":
        raise rd.fail(f"{key}.ipv6_suffix", 'needs type = "AAAA"')
    plen = DEFAULT_PREFIX_LEN if plen is None else plen
    if not 1 <= plen <= 128:
        raise rd.fail(f"{key}.prefix_len", f"must be between 1 and 128, not {plen}")
    try:
        value = parse_suffix(suffix, plen)
    except ValueError as e:
        raise rd.fail(f"{key}.ipv6_suffix", str(e)) from None
    return str(ipaddress.IPv6Address(value)), plen  # canonical: "::211:32ff:fe12:3456"


def clock_section(rd: Reader, data: Dict[str, Any]) -> ClockConfig:
    c = rd.table(data.get("clock"), "clock")
    rd.only(c, "clock", CLOCK_KEYS)
    mode = rd.get(c, "clock", "mode", str, "auto")
    if mode not in ("auto", "system", "ntp"):
        raise rd.fail("clock.mode", f'must be "auto", "system" or "ntp", not "{mode}"')
    servers = rd.get(c, "clock", "ntp_servers", list, list(DEFAULT_NTP_SERVERS))
    for n, s in enumerate(servers):
        if not isinstance(s, str) or not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.:-]+)(:[^:]*)?$", s):
            raise rd.fail(f"clock.ntp_servers[{n}]", "must be \"host\" or \"host:port\"")
        port = s.rpartition("]")[2][1:] if s.startswith("[") else (s.partition(":")[2] if s.count(":") == 1 else "")
        if (s.startswith("[") and s.rpartition("]")[2] not in ("", f":{port}")) or (
                (port or s.endswith(":")) and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise rd.fail(f"clock.ntp_servers[{n}]", f'"{s}": the port must be a number from 1 to 65535')
    max_age = rd.get(c, "clock", "max_age", float, 3600.0)
    timeout = rd.get(c, "clock", "timeout", float, 1.0)
    if not 0 < max_age < 1e9:  # also refuses inf and nan
        raise rd.fail("clock.max_age", "must be a positive number of seconds")
    if not 0 < timeout <= 30:
        raise rd.fail("clock.timeout", "must be between 0 and 30 seconds")
    return ClockConfig(mode=mode, ntp_servers=servers, max_age=max_age, timeout=timeout)
