"""Load ``config.toml`` into typed, validated objects.

Every problem is reported as a :class:`~edgeddns.errors.ConfigError` naming the
file and the key path (``records[1].provider``), so the CLI can print one line
and exit 2. Provider tables are checked against the option schema each provider
module declares, so a typo in a key is caught at load, not at the first update.

The pieces: :mod:`.model` (the dataclasses, a leaf), :mod:`.reader` (typed
access to a table, secrets), :mod:`.sections` (agent, ip, clock, sources),
:mod:`.mqtt_section`, :mod:`.loading` (providers, records, ``load``) and
:mod:`.dumping` (``check-config --dump``).
"""

from edgeddns.config.dumping import dump
from edgeddns.config.loading import load
from edgeddns.config.model import (
    DEFAULT_NTP_SERVERS,
    AgentConfig,
    ClockConfig,
    Config,
    IpConfig,
    MqttConfig,
    ProviderConfig,
    RecordConfig,
    config_sources,
)
from edgeddns.config.sections import SOURCE_KINDS, default_state_dir, valid_hostname

__all__ = ["DEFAULT_NTP_SERVERS", "SOURCE_KINDS", "AgentConfig", "ClockConfig", "Config", "IpConfig",
           "MqttConfig", "ProviderConfig", "RecordConfig", "config_sources", "default_state_dir", "dump",
           "load", "valid_hostname"]
