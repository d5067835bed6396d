"""``check-config --dump``: the parsed configuration as plain data, secrets masked."""

from __future__ import annotations

from typing import Any, Dict

from edgeddns.config.model import Config
from edgeddns.options import Secret


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
    # Secrets that are not Secret objects (a token written into a header) go through the one step too.
    return cfg.redactor.data(out)
