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
  + Refusal                -- a use case said no; nothing changed. code, message and extra fields
    x NotFound             -- what the action names does not exist (404)
    x Forbidden            -- the actor may not do this (403)
    x Conflict             -- the state is not what the action needs, or someone got there first (409)
    x Invalid              -- the request itself is wrong: a status, queue or agent that does not fit (422)
      x PolicyRefusal      -- the outbound policy forbids this send now: rule, window_closed_at, alternatives
    x Unavailable          -- something the action needs (the media store, ...) cannot be used now (503)

The API answers a refusal from its fields alone (``hub.api.errors``); a CLI prints its message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "WHSEC_RECIPE",
    "AdapterError",
    "ChannelhubError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PayloadMalformed",
    "PolicyRefusal",
    "ProviderRejected",
    "ProviderUnavailable",
    "Refusal",
    "SignatureInvalid",
    "Unavailable",
    "UnknownAccount",
]


class ChannelhubError(Exception):
    """Base of everything we raise on purpose."""


#: what a configuration error about a Standard Webhooks secret tells its reader to do
WHSEC_RECIPE = (
    'make one with: python -c "import base64, secrets; '
    "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\""
)


class ConfigError(ChannelhubError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    @classmethod
    def unknown(cls, key: str, known: Iterable[str], *, what: str = "key") -> ConfigError:
        """``key`` (dotted, ``where.name``) is not one of ``known``: say the likely one meant, or list them.

        A typo (``prot``, ``[[bot]]``) is the usual cause, and "unknown key" alone leaves the reader to find
        the right spelling in the docs."""
        name = key.rsplit(".", 1)[-1]
        choices = sorted(known)
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(choices)}"
        return cls(key, f"unknown {what}; {hint}")


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


class Refusal(ChannelhubError):
    """An action that does not apply as things are now; nothing changed.

    ``kind`` names the family member (``not_found``, ``forbidden``, ``conflict``, ``invalid``, the
    kinds the routing store raises), ``code`` is machine-readable, ``message`` is a sentence for the
    person who asked, and ``fields`` are JSON-ready details (``field``, ``conversation_id``, ...).
    """

    kind: ClassVar[str] = "conflict"

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: Mapping[str, Any] = fields

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.fields.items())
        return f"{type(self).__name__}({self.code!r}, {self.message!r}{extra})"

    @staticmethod
    def of_kind(kind: str, code: str, message: str, **fields: Any) -> Refusal:
        """The family member for one of the routing store's string kinds (an unknown kind is a conflict)."""
        cls = _BY_KIND.get(kind, Conflict)
        return cls(code, message, **fields)


class NotFound(Refusal):
    kind = "not_found"


class Forbidden(Refusal):
    kind = "forbidden"


class Conflict(Refusal):
    kind = "conflict"


class Invalid(Refusal):
    kind = "invalid"


class Unavailable(Refusal):
    """A dependency of the action is in a bad state (unreachable, misconfigured): nothing changed, and the
    same request may succeed later. Not the caller's fault, so not a 4xx; never a bare 500 either."""

    kind = "unavailable"


class PolicyRefusal(Invalid):
    """hub.policy refused the send: the ``rule`` (also the code), when the window closed, and what is
    still allowed instead (``alternatives``, as the API shows them: kind, name, until)."""

    def __init__(
        self,
        rule: str,
        message: str,
        *,
        window_closed_at: datetime | None = None,
        alternatives: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(
            rule,
            message,
            rule=rule,
            window_closed_at=window_closed_at.isoformat() if window_closed_at else None,
            alternatives=[dict(a) for a in alternatives],
        )
        self.rule = rule
        self.window_closed_at = window_closed_at
        self.alternatives = tuple(alternatives)


_BY_KIND: dict[str, type[Refusal]] = {c.kind: c for c in (NotFound, Forbidden, Conflict, Invalid, Unavailable)}
