"""``[[webhooks_out]]`` and ``[webhooks_delivery]``: strictly validated; and which hub event becomes which type."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable

import pytest

from hub.errors import WHSEC_RECIPE, ConfigError
from hub.events import (
    ContactUpdated,
    ConversationClosedByBot,
    ConversationHandedOff,
    ConversationOpened,
    ConversationUpdated,
    ConversationWaiting,
    MessageCreated,
    MessageDelivery,
    Offer,
)
from hub.settings import Settings
from hub.webhooks_out_config import EVENT_TYPES
from hub.webhooks_out_events import outgoing_of

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()


def entry(**overrides: str) -> str:
    keys = {
        "id": '"crm"',
        "url": '"https://crm.example/hooks"',
        "secret": f'"{SECRET}"',
        "events": '["message.created"]',
    }
    keys.update(overrides)
    return "\n[[webhooks_out]]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items() if v)


def test_a_webhook_is_read_with_its_events_scope_and_a_secret_from_the_environment(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        entry(secret='"env:CRM_SECRET"', queues='["sales"]', pause_after="5"), env={"CRM_SECRET": SECRET}
    )
    (hook,) = settings.webhooks_out
    assert (hook.id, hook.url, hook.secret, hook.events, hook.queues, hook.pause_after) == (
        "crm",
        "https://crm.example/hooks",
        SECRET,
        ("message.created",),
        ("sales",),
        5,
    )
    assert SECRET in settings.secrets()  # redacted from the logs like every secret


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"events": '["message.sent"]'}, "webhooks_out[0].events"),
        ({"events": "[]"}, "webhooks_out[0].events"),
        ({"events": '["message.created", "message.created"]'}, "webhooks_out[0].events"),
        ({"secret": '"not-a-secret"'}, "webhooks_out[0].secret"),
        ({"secret": '"whsec_!!!"'}, "webhooks_out[0].secret"),
        ({"secret": '"whsec_c2hvcnQ="'}, "webhooks_out[0].secret"),
        ({"url": '"ftp://crm.example"'}, "webhooks_out[0].url"),
        ({"queues": '["nowhere"]'}, "webhooks_out[0].queues"),
        ({"pause_after": "0"}, "webhooks_out[0].pause_after"),
        ({"colour": '"red"'}, "webhooks_out[0].colour"),
        ({"url": ""}, "webhooks_out[0].url"),
        ({"id": '"has space"'}, "webhooks_out[0].id"),
    ],
)
def test_a_bad_webhook_entry_is_refused_naming_its_key(
    make_settings: Callable[..., Settings], overrides: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(entry(**overrides))
    assert refused.value.key == key


@pytest.mark.parametrize("secret", ['"not-a-secret"', '"whsec_c2hvcnQ="', ""])
def test_a_bad_or_missing_secret_says_how_to_make_one(make_settings: Callable[..., Settings], secret: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(entry(secret=secret))
    assert refused.value.problem.endswith("; " + WHSEC_RECIPE)
    code = WHSEC_RECIPE.split('python -c "', 1)[1].removesuffix('"')  # the recipe, run as the reader would
    made = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert make_settings(entry(secret=f'"{made}"')).webhooks_out[0].id == "crm"


def test_two_webhooks_with_one_id_are_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="defined twice"):
        make_settings(entry() + entry())


def test_delivery_tuning_keeps_retrying_for_at_least_a_day(make_settings: Callable[..., Settings]) -> None:
    assert (
        make_settings("\n[webhooks_delivery]\nfirst_retry_seconds = 0.5\n").webhooks_delivery.first_retry_seconds == 0.5
    )
    with pytest.raises(ConfigError) as refused:
        make_settings("\n[webhooks_delivery]\ngive_up_after_hours = 2\n")
    assert refused.value.key == "webhooks_delivery.give_up_after_hours"
    with pytest.raises(ConfigError) as refused:
        make_settings("\n[webhooks_delivery]\nconcurrency = 1.5\n")
    assert refused.value.key == "webhooks_delivery.concurrency"


def test_delivered_deliveries_are_kept_30_days_unless_keep_days_says_otherwise(
    make_settings: Callable[..., Settings],
) -> None:
    assert make_settings("").webhooks_delivery.keep_days == 30
    assert make_settings("\n[webhooks_delivery]\nkeep_days = 7\n").webhooks_delivery.keep_days == 7
    with pytest.raises(ConfigError) as refused:
        make_settings("\n[webhooks_delivery]\nkeep_days = 0\n")
    assert refused.value.key == "webhooks_delivery.keep_days"


def test_each_hub_event_maps_to_its_outgoing_type_and_offers_to_none() -> None:
    mapped = [
        outgoing_of(MessageCreated(conversation_id=1, message_id=2, direction="in", identity_id=3)),
        outgoing_of(MessageDelivery(conversation_id=1, message_id=2, state="sent")),
        outgoing_of(ConversationOpened(conversation_id=1, agent_id=4, identity_id=3)),
        outgoing_of(ConversationWaiting(conversation_id=1, queue_id="q"), new_conversation=True),
        outgoing_of(ConversationUpdated(conversation_id=1, action="accepted", by=4, audience=(4,))),
        outgoing_of(ConversationUpdated(conversation_id=1, action="transferred", by=4, audience=(4,))),
        outgoing_of(ConversationHandedOff(conversation_id=1, queue_id="q", reason="bot_asked")),
        outgoing_of(ConversationUpdated(conversation_id=1, action="closed", by=4, audience=(4,))),
        outgoing_of(ContactUpdated(contact_id=9)),
    ]
    assert [m.type if m else None for m in mapped] == [
        "message.created",
        "message.delivery",
        "conversation.opened",
        "conversation.opened",
        "conversation.assigned",
        "conversation.transferred",
        "conversation.handed_off",
        "conversation.closed",
        "contact.updated",
    ]
    assert {m.type for m in mapped if m} == set(EVENT_TYPES)
    # deactivating an agent hands their conversations on: the admin who did it is not the agent who had them
    released = outgoing_of(
        ConversationUpdated(
            conversation_id=1,
            action="transferred",
            by=4,
            audience=(4,),
            details={"to_queue": "q", "reason": "deactivated", "by": 7},
        )
    )
    assert released is not None
    assert released.extra == {"by": 4, "to_queue": "q", "reason": "deactivated", "released_by": 7}
    by_bot = outgoing_of(ConversationClosedByBot(conversation_id=1, queue_id="q", bot="faq", status="resolved"))
    assert by_bot is not None
    assert (by_bot.type, by_bot.extra) == ("conversation.closed", {"by": None, "bot": "faq", "status": "resolved"})
    assert outgoing_of(ConversationWaiting(conversation_id=1, queue_id="q")) is None  # requeued, not opened
    assert outgoing_of(ConversationUpdated(conversation_id=1, action="invited", by=4, audience=(4,))) is None
    assert outgoing_of(Offer(conversation_id=1, agent_id=4, queue_id="q", deadline=None)) is None  # type: ignore[arg-type]


def test_the_environment_sets_an_integrations_numbers_and_the_delivery_tuning(
    make_settings: Callable[..., Settings],
) -> None:
    """Every value can come from the environment (README): the variables' text is read as the number it says."""
    settings = make_settings(
        entry(),
        env={
            "CHANNELHUB_WEBHOOKS_OUT_CRM_PAUSE_AFTER": "7",
            "CHANNELHUB_WEBHOOKS_DELIVERY_TIMEOUT_SECONDS": "2.5",
            "CHANNELHUB_WEBHOOKS_DELIVERY_CONCURRENCY": "4",
        },
    )
    assert settings.webhooks_out[0].pause_after == 7
    assert (settings.webhooks_delivery.timeout_seconds, settings.webhooks_delivery.concurrency) == (2.5, 4)
    with pytest.raises(ConfigError) as caught:
        make_settings(entry(), env={"CHANNELHUB_WEBHOOKS_DELIVERY_GIVE_UP_AFTER_HOURS": "2"})
    assert caught.value.key == "webhooks_delivery.give_up_after_hours"
    with pytest.raises(ConfigError) as caught:
        make_settings(entry(), env={"CHANNELHUB_WEBHOOKS_DELIVERY_CONCURRENCY": "lots"})
    assert caught.value.key == "webhooks_delivery.concurrency"
