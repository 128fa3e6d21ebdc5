"""The dispatcher signs deliveries itself (the key decoded once per secret): what it sends must verify with the
``standardwebhooks`` package, byte for byte, whatever the secret's padding or the body's bytes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from hub.webhooks_out import signed_headers

AT = datetime(2026, 12, 6, 15, 0, 7, 900_000, tzinfo=UTC)
KEY = b"0123456789abcdef0123456789abcdef!"  # 33 bytes: its base64 is padded


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_" + base64.b64encode(KEY).decode(),
        "whsec_" + base64.b64encode(KEY).decode().rstrip("="),  # unpadded, as the package accepts
    ],
)
@pytest.mark.parametrize(
    "body", [b'{"type":"message.created","data":{"text":"\xc5\xbelu\xc5\xa5ou\xc4\x8dk\xc3\xbd"}}', b"{}"]
)
def test_signed_headers_verify_with_the_standard_webhooks_package_and_match_its_signature(
    secret: str, body: bytes
) -> None:
    headers = signed_headers(secret, 42, body, AT)

    assert headers["webhook-id"] == "dlv_42"
    assert headers["webhook-timestamp"] == str(int(AT.timestamp()))
    assert headers["webhook-signature"] == Webhook(secret).sign("dlv_42", AT, body)
    sent_now = signed_headers(secret, 42, body, datetime.now(UTC))  # the package refuses a stale timestamp
    assert Webhook(secret).verify(body, sent_now, json_parse=False) is None


def test_a_signature_under_another_secret_does_not_verify() -> None:
    body = b'{"type":"message.created"}'
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret!!").decode()
    headers = signed_headers(other, 1, body, datetime.now(UTC))

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook("whsec_" + base64.b64encode(KEY).decode()).verify(body, headers)
