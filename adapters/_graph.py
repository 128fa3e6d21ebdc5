"""Graph API pieces shared by the Messenger and WhatsApp Cloud adapters.

Meta signs both products' webhooks the same way (``X-Hub-Signature-256``, HMAC-SHA256
of the raw body with the app secret), verifies callback URLs with the same GET
handshake, and answers both APIs with the same error object. This module owns
those three things and one aiohttp call with a timeout; the product modules own
their payloads and their tables of error codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from hub.errors import AdapterError, PayloadMalformed, ProviderRejected, ProviderUnavailable, SignatureInvalid

__all__ = [
    "COMMON_ERRORS",
    "DEFAULT_API_BASE",
    "DEFAULT_TIMEOUT",
    "SIGNATURE_HEADER",
    "ErrorRule",
    "classify_error",
    "graph_request",
    "handshake_challenge",
    "load_json",
    "sign",
    "strict_json",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
DEFAULT_API_BASE = "https://graph.facebook.com/v21.0"  # the Graph API version the adapters are written for
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
_RATE_LIMIT_DEFAULT_WAIT = 60.0  # seconds, when Meta gives no hint (app-level limits clear slowly)


# ------------------------------------------------------------------ signatures


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta sends for ``body`` (also used by our emulator and tests)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def verify_signature(headers: Mapping[str, str], body: bytes, app_secret: str) -> None:
    """Raise SignatureInvalid unless ``X-Hub-Signature-256`` signs these exact bytes.

    The algorithm is fixed (never taken from the header) and the compare is constant-time.
    """
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise SignatureInvalid(f"the {SIGNATURE_HEADER} header is missing")
    if not header.startswith("sha256="):
        raise SignatureInvalid(f"the {SIGNATURE_HEADER} header is not a sha256 signature")
    if not hmac.compare_digest(sign(body, app_secret).encode(), header.strip().encode()):
        raise SignatureInvalid("the signature does not match the body")


def handshake_challenge(query: Mapping[str, str], verify_tokens: Iterable[str]) -> str | None:
    """The ``hub.challenge`` to echo when Meta's subscription handshake is ours, else None."""
    if query.get("hub.mode") != "subscribe":
        return None
    token = query.get("hub.verify_token") or ""
    challenge = query.get("hub.challenge")
    if challenge is None:
        return None
    matched = False
    for expected in verify_tokens:
        # compare against every token so timing does not reveal which one matched
        matched |= hmac.compare_digest(token.encode(), expected.encode())
    return challenge if matched else None


#: ``\u0000`` not itself escaped (an odd number of backslashes before the ``u``): PostgreSQL cannot store NUL in
#: text, so a customer's NUL becomes U+FFFD before anything is read
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
#: an escape of a UTF-16 surrogate (``\ud800`` .. ``\udfff``); one with no partner is no character
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _whole(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a pair written as two halves becomes its character)."""
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _without_lone_surrogates(value: Any) -> Any:
    """Every string and key of a parsed JSON value made writable as UTF-8; containers changed in place.

    ``json.loads`` lets a lone surrogate through (``"\\ud800"`` or its bytes): no database, log line or
    outgoing request can encode it, so the customer's message would fail to store for ever."""
    if isinstance(value, str):
        return _whole(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    item[index] = _whole(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(item, dict):
            for key in list(item):
                child = item[key]
                if isinstance(child, str):
                    item[key] = child = _whole(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
                if (whole := _whole(key)) != key:
                    del item[key]
                    item[whole] = child
    return value


def strict_json(body: bytes) -> Any:
    """The body as JSON (RFC 8259: no NaN or Infinity), or PayloadMalformed.

    Nesting deeper than the interpreter's recursion limit is refused as ``too_deep``
    instead of escaping as a RecursionError (a 500 the provider would retry for ever). An
    escaped NUL character (the database's text columns cannot hold it) and a lone surrogate
    (no character at all) become U+FFFD: the rest of the customer's message is kept.
    """
    if b"\\u0000" in body:
        body = _NUL_ESCAPE.sub(rb"\1\\ufffd", body)
    try:
        value = json.loads(body, parse_constant=_not_json)
    except RecursionError:
        raise PayloadMalformed("the JSON is nested too deeply", code="too_deep") from None
    except (ValueError, UnicodeDecodeError):
        raise PayloadMalformed("the body is not JSON", code="invalid_json") from None
    if not body.isascii() or _SURROGATE_ESCAPE.search(body):
        value = _without_lone_surrogates(value)
    return value


def load_json(body: bytes, expected_object: str) -> dict[str, Any]:
    """The webhook JSON, checked for Meta's envelope (``object`` and a list of ``entry``)."""
    data = strict_json(body)
    if not isinstance(data, dict):
        raise PayloadMalformed("the body must be a JSON object", code="invalid_json")
    if data.get("object") != expected_object:
        raise PayloadMalformed(
            f"'object' is {data.get('object')!r}, expected {expected_object!r}", code="unexpected_object"
        )
    entries = data.get("entry")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PayloadMalformed("'entry' must be a list of objects", code="missing_field")
    return data


# ----------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How one Graph error code (optionally with a subcode) is treated."""

    transient: bool
    reason: str  # a sentence an agent understands
    rate_limit: bool = False


#: codes both products share (channels.md 1.6 and 3.5); products add and override
COMMON_ERRORS: dict[int | tuple[int, int], ErrorRule] = {
    1: ErrorRule(True, "The provider reported an unknown error; the message will be retried."),
    2: ErrorRule(True, "The provider is temporarily unavailable; the message will be retried."),
    4: ErrorRule(
        True, "Too many messages are being sent right now; the message will go out when the limit clears.", True
    ),
    613: ErrorRule(
        True, "Too many messages are being sent right now; the message will go out when the limit clears.", True
    ),
    100: ErrorRule(False, "The provider refused the message as invalid (a parameter is wrong or missing)."),
    190: ErrorRule(
        False, "The access token for this channel is invalid or expired; an administrator must reconnect it."
    ),
    368: ErrorRule(False, "The sender is temporarily blocked by Meta for policy violations."),
}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``Retry-After`` or Meta's business-use-case usage header."""
    value = _header(headers, "Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
    usage = _header(headers, "X-Business-Use-Case-Usage")
    if usage:
        try:
            minutes = [
                float(item.get("estimated_time_to_regain_access") or 0)
                for items in json.loads(usage).values()
                for item in items
            ]
        except (ValueError, AttributeError, TypeError):
            minutes = []
        if minutes and max(minutes) > 0:
            return max(minutes) * 60.0
    return None


def classify_error(
    status: int,
    payload: Any,
    headers: Mapping[str, str],
    rules: Mapping[int | tuple[int, int], ErrorRule],
    *,
    provider: str,
) -> AdapterError:
    """A Graph error response -> ProviderRejected (permanent) or ProviderUnavailable (transient).

    ``provider_code`` is ``"code"`` or ``"code/subcode"`` (``"10/2018278"``) so agents and
    logs see exactly what Meta said.
    """
    error = payload.get("error") if isinstance(payload, dict) else None
    retry_after = _retry_after(headers)
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        if status == 429:
            return ProviderUnavailable(
                f"{provider} is rate limiting us (HTTP 429)", provider_code="http_429", retry_after=retry_after
            )
        if status >= 500:
            return ProviderUnavailable(f"{provider} answered HTTP {status}", provider_code=f"http_{status}")
        return ProviderRejected(f"http_{status}", f"{provider} refused the request (HTTP {status}).")
    code: int = error["code"]
    subcode = error.get("error_subcode")
    provider_code = f"{code}/{subcode}" if isinstance(subcode, int) else str(code)
    detail = str(error.get("message") or "")
    details = error.get("error_data", {}).get("details") if isinstance(error.get("error_data"), dict) else None
    if details:
        detail = f"{detail} ({details})" if detail else str(details)
    rule = rules.get((code, subcode)) if isinstance(subcode, int) else None
    rule = rule or rules.get(code)
    if rule is None:
        transient = bool(error.get("is_transient")) or status >= 500
        if transient:
            return ProviderUnavailable(
                f"{provider} reported a temporary error: {detail or 'no detail'}",
                provider_code=provider_code,
                retry_after=retry_after,
            )
        return ProviderRejected(
            provider_code, f"{provider} refused the message: {detail or 'no reason given'}.", detail=detail
        )
    if rule.transient:
        if rule.rate_limit and retry_after is None:
            retry_after = _RATE_LIMIT_DEFAULT_WAIT
        return ProviderUnavailable(rule.reason, provider_code=provider_code, retry_after=retry_after)
    return ProviderRejected(provider_code, rule.reason, detail=detail or None)


async def graph_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    rules: Mapping[int | tuple[int, int], ErrorRule],
    provider: str,
    params: Mapping[str, str] | None = None,
    json_body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    form: aiohttp.MultipartWriter | None = None,
) -> dict[str, Any]:
    """One Graph API call with a timeout; the JSON object on 2xx, else a classified AdapterError.

    ``form``: a multipart body instead of JSON (a media upload). Network faults and timeouts are transient.
    No retry here: the outbox owns retries.
    """
    try:
        async with session.request(
            method, url, params=params, json=json_body, data=form, headers=headers, timeout=client_timeout
        ) as response:
            raw = await response.read()
            status = response.status
            response_headers = dict(response.headers)
    except TimeoutError:
        raise ProviderUnavailable(f"{provider} did not answer in time", provider_code="timeout") from None
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(
            f"could not reach {provider} ({type(exc).__name__})", provider_code="network"
        ) from None
    try:
        payload: Any = json.loads(raw) if raw else {}
    except ValueError:
        payload = None
    if 200 <= status < 300 and isinstance(payload, dict):
        return payload
    if 200 <= status < 300:
        raise ProviderUnavailable(f"{provider} answered with a body that is not JSON", provider_code="bad_response")
    error = classify_error(status, payload, response_headers, rules, provider=provider)
    logger.info("%s call refused: %s", provider, error, extra={"http_status": status})
    raise error
