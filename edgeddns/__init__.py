"""edgeddns: event-driven dynamic DNS for routers and NAS boxes."""

__version__ = "0.1.0"

# Certificates that expired before this date are refused even before the clock
# offset is known: the agent cannot be running earlier than its own release.
RELEASE_DATE = "2026-11-29"
