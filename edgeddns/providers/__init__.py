"""Provider registry: a type name maps to a module, imported only when used.

Keeping the map as strings means loading a config that uses ``hosts`` never
imports the HTTP stack or any other provider.
"""

from __future__ import annotations

import importlib
from typing import Dict, Type

from edgeddns.providers.base import Provider

PROVIDERS: Dict[str, str] = {
    "hosts": "edgeddns.providers.hosts:HostsProvider",
    "alidns": "edgeddns.providers.alidns:AlidnsProvider",
    "dnspod": "edgeddns.providers.dnspod:DnspodProvider",
    "huaweicloud": "edgeddns.providers.huaweicloud:HuaweicloudProvider",
    "route53": "edgeddns.providers.route53:Route53Provider",
    "cloudflare": "edgeddns.providers.cloudflare:CloudflareProvider",
    "dyndns2": "edgeddns.providers.dyndns2:Dyndns2Provider",
    "webhook": "edgeddns.providers.webhook:WebhookProvider",
    "rfc2136": "edgeddns.providers.rfc2136:Rfc2136Provider",
    "powerdns": "edgeddns.providers.powerdns:PowerdnsProvider",
    "porkbun": "edgeddns.providers.porkbun:PorkbunProvider",
    "namecheap": "edgeddns.providers.namecheap:NamecheapProvider",
    "godaddy": "edgeddns.providers.godaddy:GodaddyProvider",
    "digitalocean": "edgeddns.providers.digitalocean:DigitaloceanProvider",
    "hetzner": "edgeddns.providers.hetzner:HetznerProvider",
    "hetznercloud": "edgeddns.providers.hetznercloud:HetznercloudProvider",
    "gandi": "edgeddns.providers.gandi:GandiProvider",
}


def provider_class(ptype: str) -> Type[Provider]:
    target = PROVIDERS.get(ptype)
    if target is None:
        raise KeyError(f'unknown provider type "{ptype}" (known: {", ".join(sorted(PROVIDERS))})')
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
