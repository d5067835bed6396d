"""Errors with stable codes.

Every failure the agent reports carries one of the codes below; they appear in
results, MQTT answers and exit messages, and are documented in docs/errors.md.
Messages never include secrets: callers pass only names, hosts and provider text.
"""

from __future__ import annotations

from typing import Optional

# Line breaks and other control characters, as escapes: an error message carries text from the network
# (a provider's answer, a server's reason) into CLI lines, log lines, results and answers, where a line
# break would forge a line of its own and an escape sequence would drive a terminal.
_ONE_LINE = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_ONE_LINE.update({0x0A: "\\n", 0x0D: "\\r", 0x09: " ", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """``text`` without control characters (escaped), so it stays one line wherever it is shown."""
    return text.translate(_ONE_LINE)


class EdgeError(Exception):
    """Base class: ``code`` is stable, ``message`` is for humans (always one line)."""

    code = "internal"

    def __init__(self, message: str, *, code: Optional[str] = None):
        message = one_line(message) if isinstance(message, str) else message
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ConfigError(EdgeError):
    """Bad configuration: always names the file and the key path."""

    code = "config"

    def __init__(self, path: str, key: str, message: str):
        self.path = path
        self.key = key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


class ProviderError(EdgeError):
    """The provider answered with an error we do not map more precisely."""

    code = "provider"
    #: a later attempt may succeed (network trouble, throttling, a 5xx)
    retryable = False

    def __init__(self, message: str, *, code: Optional[str] = None,
                 retry_after: Optional[float] = None, server_time: Optional[float] = None,
                 retryable: Optional[bool] = None):
        super().__init__(message, code=code)
        if retryable is not None:
            self.retryable = retryable
        #: seconds the provider asked us to wait (Retry-After, dyndns2 abuse/911)
        self.retry_after = retry_after
        #: the provider's clock (epoch seconds) when its answer carried one
        self.server_time = server_time


class AuthError(ProviderError):
    code = "auth"


class ClockSkewError(ProviderError):
    """The provider rejected our timestamp; ``server_time`` may say why."""

    code = "clock_skew"


class RateLimitedError(ProviderError):
    code = "rate_limited"
    retryable = True


class NotFoundError(ProviderError):
    """The zone or host does not exist in the account."""

    code = "not_found"


class NetworkError(ProviderError):
    """DNS resolution, connect, reset or timeout: the request may not have arrived."""

    code = "network"
    retryable = True


class TlsError(ProviderError):
    code = "tls"


class ClockUnsyncedError(EdgeError):
    """Signing needs a trustworthy time and no source could give one."""

    code = "clock_unsynced"


class AddressError(EdgeError):
    """No usable address could be detected for a record."""

    code = "no_address"


class NotPublicError(EdgeError):
    """Addresses were found, but none may be published (private, CGNAT, ...)."""

    code = "not_public"


class BadAddressError(EdgeError):
    """An address about to be written or sent is not one plain address of the record's family."""

    code = "bad_address"


class InterfaceDownError(AddressError):
    """The interface a record reads is down (netifd says so): the record is skipped, not retried."""

    code = "interface_down"

    def __init__(self, message: str, interfaces: tuple = ()):
        super().__init__(message)
        self.interfaces = interfaces


ERROR_CODES = {
    "config": "the configuration is invalid",
    "auth": "the provider refused the credentials or the signature",
    "clock_skew": "the provider refused the request's timestamp",
    "clock_unsynced": "no trustworthy time source was available to sign with",
    "rate_limited": "the provider asked us to slow down",
    "not_found": "the zone or record does not exist in the account",
    "network": "the provider could not be reached (DNS, connect, timeout, reset)",
    "tls": "the provider's certificate could not be verified",
    "provider": "the provider answered with an error not listed above",
    "no_address": "no address source produced an address (all failed)",
    "bad_address": "an address about to be published is not one plain address of the record's family (refused)",
    "not_public": "the detected address is private, CGNAT, loopback, link-local or ULA (record skipped)",
    "interface_down": "the interface the record reads is down (record skipped until it comes back up)",
    "internal": "a bug in edgeddns: please report it",
}
