"""Errors that cross module boundaries.

Our exception hierarchy:

* ChannelhubError
  + ConfigError            -- a wrong or missing configuration value; names the key
  + AdapterError           -- raised by channel adapters
    x SignatureInvalid     -- forged, unsigned or altered webhook (403, nothing stored)
    x PayloadMalformed     -- not what the provider sends (400, machine-readable code)
    x UnknownAccount       -- a page, number or bot we do not serve (404)
    x ProviderRejected     -- permanent send failure; never retried
    x ProviderUnavailable  -- transient send failure; retried, may carry retry_after
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "ChannelhubError",
    "ConfigError",
    "PayloadMalformed",
    "ProviderRejected",
    "ProviderUnavailable",
    "SignatureInvalid",
    "UnknownAccount",
]


class ChannelhubError(Exception):
    """Base of everything we raise on purpose."""


class ConfigError(ChannelhubError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class AdapterError(ChannelhubError):
    code = "adapter_error"


class SignatureInvalid(AdapterError):
    code = "signature_invalid"


class PayloadMalformed(AdapterError):
    """``code`` is machine-readable (``invalid_json``, ``missing_field``, ...)."""

    def __init__(self, message: str, *, code: str = "payload_malformed") -> None:
        super().__init__(message)
        self.code = code


class UnknownAccount(AdapterError):
    code = "unknown_account"


class ProviderRejected(AdapterError):
    """The provider refused for good: retrying the same call cannot succeed."""

    code = "provider_rejected"

    def __init__(self, provider_code: str, reason: str, *, detail: str | None = None) -> None:
        super().__init__(f"{provider_code}: {reason}")
        self.provider_code = provider_code
        self.reason = reason  # a sentence an agent understands
        self.detail = detail  # the provider's own words, for logs


class ProviderUnavailable(AdapterError):
    """Network fault, timeout, 5xx or rate limit: worth another try."""

    code = "provider_unavailable"

    def __init__(
        self,
        reason: str,
        *,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason if provider_code is None else f"{provider_code}: {reason}")
        self.reason = reason
        self.provider_code = provider_code
        self.retry_after = retry_after
