"""edgeddns: event-driven dynamic DNS for routers and NAS boxes."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/edgeddns/edgeddns"
#: names the client, its version and where to learn about it (No-IP and others ask for this)
USER_AGENT = f"edgeddns/{__version__} (+{PROJECT_URL})"

# Certificates that expired before this date are refused even before the clock
# offset is known: the agent cannot be running earlier than its own release.
RELEASE_DATE = "2026-11-29"
