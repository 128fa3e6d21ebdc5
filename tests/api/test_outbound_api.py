"""Outbound over HTTP: eligibility, replies, "send a new message" (chat / close), and every
refusal answered 4xx with its own code and nothing queued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from hub.api.keys import INGESTOR
from hub.api.outbound import OUTBOX
from hub.model import (
    Channel,
    ConversationState,
    CustomerActivity,
    InboundMessage,
    Subscription,
    SubscriptionChanged,
)
from hub.ports import MB
from hub.store.outbound import load_identity
from hub.store.tables import conversations, identities, messages, outbox
from hub.store.templates import create_template
from hub.templates import TemplateDraft
from tests.api.conftest import Api, MakeApi, delivered

ACCOUNTS = """
[outbox]
poll_seconds = 30.0

[auth]
session_hours = 1000.0

[[accounts]]
id = "fb-test"
channel = "messenger"
queue = "support"
api_base = "http://127.0.0.1:9"
page_id = "100"
app_secret = "app-secret"
verify_token = "verify"
page_access_token = "page-token"

[[accounts]]
id = "vb-test"
channel = "viber"
queue = "support"
api_base = "http://127.0.0.1:9"
auth_token = "viber-token"
name = "Support"
"""
HOUR = 3600
DAY = 24 * HOUR


@pytest.fixture
async def hub(make_api: MakeApi) -> Api:
    api = await make_api(ACCOUNTS, fake_adapter=True)
    await create_template(
        api.store,
        TemplateDraft(
            name="test-order",
            body="Hi {{ name }}, your order {{ order }} has shipped.",
            variables={"name": "Jane", "order": "#1"},
            bindings={"twilio": {"content_sid": "HX0123", "variables": {"1": "name", "2": "order"}}},
        ),
        now=api.clock(),
    )
    await create_template(
        api.store,
        TemplateDraft(name="test-hello", body="Hello {{ name }}!", variables={"name": "Jane"}),
        now=api.clock(),
    )
    return api


async def counts(api: Api) -> tuple[int, int]:
    """(outbound messages, outbox rows)."""
    async with api.store.read() as connection:
        out = (await connection.execute(select(func.count()).where(messages.c.direction == "out"))).scalar_one()
        rows = (await connection.execute(select(func.count()).select_from(outbox))).scalar_one()
    return int(out), int(rows)


async def identity_of(api: Api, conversation_id: int) -> int:
    async with api.store.read() as connection:
        return int(
            (
                await connection.execute(
                    select(conversations.c.identity_id).where(conversations.c.id == conversation_id)
                )
            ).scalar_one()
        )


async def owned_conversation(api: Api, agent: Any, account: str = "wa-test", sender: str = "+420600000001") -> int:
    """A customer writes; the agent becomes the owner (as after accepting the offer)."""
    conversation_id = await api.customer_writes(account, sender)
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(state=ConversationState.ACTIVE.value, owner_agent_id=agent.id, waiting_since=None)
        )
        from hub.store.tables import participants

        await connection.execute(
            insert(participants).values(
                conversation_id=conversation_id, agent_id=agent.id, role="owner", joined_at=api.clock()
            )
        )
    return conversation_id


async def close_all(api: Api) -> None:
    async with api.store.write() as connection:
        await connection.execute(
            update(conversations).values(state=ConversationState.CLOSED.value, closed_at=api.clock())
        )


def assert_refusal(body: dict[str, Any], rule: str) -> dict[str, Any]:
    error = body["error"]
    assert error["code"] == rule
    assert error["rule"] == rule
    assert error["message"]
    assert "window_closed_at" in error
    assert isinstance(error["alternatives"], list)
    return error


async def refused(api: Api, agent: Any, path: str, json: dict[str, Any], rule: str, status: int = 422) -> Any:
    before = await counts(api)
    response = await agent.post(path, json=json)
    body = await response.json()
    assert response.status == status, body
    error = assert_refusal(body, rule)
    assert await counts(api) == before  # nothing queued
    return error


# ------------------------------------------------------------------ eligibility


async def test_eligibility_inside_the_window_allows_free_text_until_24_hours_after_the_last_message(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    written_at = hub.clock()
    hub.clock.advance(2 * HOUR)
    body = await agent.json("GET", f"/api/v1/identities/{identity}/eligibility")
    assert body["free_text"] is True
    assert body["free_text_until"] == (written_at + timedelta(days=1)).isoformat()
    assert body["rule"] is None
    assert {"test-order", "test-hello"} <= set(body["templates"])


async def test_eligibility_names_the_queue_a_new_message_goes_in_for_its_statuses(hub: Api) -> None:
    """The Send message window offers the statuses of the queue the message will be in: the customer's open
    conversation's (here moved to sales), else their account's."""
    agent = await hub.agent("ana", queues=("support", "sales"))
    conversation_id = await owned_conversation(hub, agent)
    identity = await identity_of(hub, conversation_id)
    await agent.json("POST", f"/api/v1/conversations/{conversation_id}/transfer", {"queue": "sales"})
    assert (await agent.json("GET", f"/api/v1/identities/{identity}/eligibility"))["queue"] == "sales"
    await close_all(hub)
    assert (await agent.json("GET", f"/api/v1/identities/{identity}/eligibility"))["queue"] == "support"


async def test_eligibility_after_the_window_names_the_rule_and_only_bound_templates(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    written_at = hub.clock()
    hub.clock.advance(DAY + 1)
    body = await agent.json("GET", f"/api/v1/identities/{identity}/eligibility")
    assert body["free_text"] is False
    assert body["rule"] == "window_closed"
    assert body["window_closed_at"] == (written_at + timedelta(days=1)).isoformat()
    assert "test-order" in body["templates"]
    assert "test-hello" not in body["templates"]
    assert {"kind": "template", "name": "test-order"} in body["alternatives"]


async def test_eligibility_messenger_lists_tags_with_their_limits(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes("fb-test", "psid-1"))
    written_at = hub.clock()
    hub.clock.advance(2 * DAY)
    body = await agent.json("GET", f"/api/v1/identities/{identity}/eligibility")
    tags = {t["tag"]: t["until"] for t in body["tags"]}
    assert tags["HUMAN_AGENT"] == (written_at + timedelta(days=7)).isoformat()
    assert tags["ACCOUNT_UPDATE"] is None
    assert body["rule"] == "window_closed"


async def test_eligibility_of_an_unknown_identity_is_404(hub: Api) -> None:
    agent = await hub.agent("ana")
    response = await agent.get("/api/v1/identities/999999/eligibility")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "identity_not_found"


async def test_eligibility_needs_a_login(hub: Api) -> None:
    response = await hub.client.get("/api/v1/identities/1/eligibility")
    assert response.status == 401


# ------------------------------------------------------------------------ replies


async def test_reply_inside_the_window_is_queued_and_delivered_once(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    body = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "On it!"}, 201)
    assert (body["direction"], body["delivery_state"], body["text"]) == ("out", "queued", "On it!")
    assert body["plan"]["basis"] == "window"
    assert await counts(hub) == (1, 1)
    await delivered(hub)
    assert [m.text for m in hub.adapter.sent] == ["On it!"]
    assert hub.adapter.sent[0].recipient_id == "+420600000001"


async def test_reply_with_a_bound_template_after_the_window_uses_the_content_sid(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    hub.clock.advance(3 * DAY)
    body = await agent.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"template": "test-order", "variables": {"name": "Jane", "order": "#42"}},
        201,
    )
    assert body["kind"] == "template"
    assert body["template"] == {"name": "test-order", "version": 1}
    assert body["text"] == "Hi Jane, your order #42 has shipped."
    assert body["plan"]["use_template_binding"] is True
    await delivered(hub)
    (sent,) = hub.adapter.sent
    assert sent.template is not None
    assert sent.template.content_sid == "HX0123"
    assert dict(sent.template.content_variables) == {"1": "Jane", "2": "#42"}
    assert sent.text is None


async def test_a_bound_template_reads_an_unpaired_customers_name_as_its_text_does(hub: Api) -> None:
    """A customer nobody paired with a contact yet is ``contact`` by their channel name in the text; the binding's
    ``contact.name`` placeholder reads the same name instead of refusing the send as a missing variable."""
    await create_template(
        hub.store,
        TemplateDraft(
            name="test-greet",
            body="Hi {{ contact.name }}, about {{ topic }}.",
            variables={"topic": "your order"},
            bindings={"twilio": {"content_sid": "HX0124", "variables": {"1": "contact.name", "2": "topic"}}},
        ),
        now=hub.clock(),
    )
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    hub.clock.advance(3 * DAY)
    body = await agent.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"template": "test-greet", "variables": {"topic": "a refund"}},
        201,
    )
    assert body["text"] == "Hi Customer +420600000001, about a refund."
    await delivered(hub)
    (sent,) = hub.adapter.sent
    assert sent.template is not None
    assert dict(sent.template.content_variables) == {"1": "Customer +420600000001", "2": "a refund"}


async def test_reply_after_the_window_is_refused_with_the_edge_and_the_templates(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    written_at = hub.clock()
    hub.clock.advance(DAY + 1)
    error = await refused(
        hub, agent, f"/api/v1/conversations/{conversation_id}/messages", {"text": "hello?"}, "window_closed"
    )
    assert error["window_closed_at"] == (written_at + timedelta(days=1)).isoformat()
    assert {"kind": "template", "name": "test-order"} in error["alternatives"]
    assert {"kind": "template", "name": "test-hello"} not in error["alternatives"]


async def test_template_without_binding_after_the_window_is_refused(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    hub.clock.advance(DAY + 1)
    await refused(
        hub,
        agent,
        f"/api/v1/conversations/{conversation_id}/messages",
        {"template": "test-hello", "variables": {"name": "Jane"}},
        "template_binding_required",
    )


async def test_text_over_the_channel_limit_is_refused(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    await refused(
        hub, agent, f"/api/v1/conversations/{conversation_id}/messages", {"text": "x" * 4097}, "text_too_long"
    )


@pytest.mark.parametrize(
    ("attachment", "rule"),
    [
        ({"url": "https://files.example/a.webp", "kind": "sticker"}, "attachment_not_supported"),
        ({"url": "https://files.example/a.png", "kind": "image", "size": 5 * MB + 1}, "attachment_too_large"),
        # a provider's "MB" is read as 10^6 bytes: 5 * 2^20 bytes is over 5 MB whichever the provider means
        ({"url": "https://files.example/a.png", "kind": "image", "size": 5 * 1024 * 1024}, "attachment_too_large"),
    ],
    ids=["kind", "one-byte-over", "binary-megabytes"],
)
async def test_attachment_the_channel_does_not_take_is_refused(hub: Api, attachment: dict[str, Any], rule: str) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    await refused(
        hub,
        agent,
        f"/api/v1/conversations/{conversation_id}/messages",
        {"attachments": [attachment]},
        rule,
    )


async def test_an_image_at_the_channel_s_limit_is_queued(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    image = {"url": "https://files.example/a.png", "kind": "image", "size": 5 * MB}
    body = await agent.json("POST", f"/api/v1/conversations/{conversation_id}/messages", {"attachments": [image]}, 201)
    assert body["kind"] == "image"


async def test_image_reply_is_queued_as_an_image(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    body = await agent.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"text": "the label", "attachments": [{"url": "https://files.example/label.png", "kind": "image"}]},
        201,
    )
    assert body["kind"] == "image"
    [attachment] = body["attachments"]  # a link the hub keeps no bytes of: the message JSON's fields, as given
    assert (attachment["kind"], attachment["url"], attachment["state"], attachment["id"]) == (
        "image",
        "https://files.example/label.png",
        "stored",
        None,
    )


async def test_messenger_retired_tag_is_refused_by_name(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent, "fb-test", "psid-1")
    hub.clock.advance(2 * DAY)
    error = await refused(
        hub,
        agent,
        f"/api/v1/conversations/{conversation_id}/messages",
        {"text": "your parcel left", "tag": "SHIPPING_UPDATE"},
        "tag_retired",
    )
    assert "SHIPPING_UPDATE" in error["message"]


async def test_messenger_human_agent_tag_within_seven_days_is_sent_as_a_message_tag(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent, "fb-test", "psid-1")
    hub.clock.advance(2 * DAY)
    body = await agent.json(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"text": "your refund is approved", "tag": "HUMAN_AGENT"},
        201,
    )
    assert (body["plan"]["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    await delivered(hub)
    (sent,) = hub.app[OUTBOX]._adapters["fb-test"].sent  # type: ignore[attr-defined]
    assert (sent.messaging_type, sent.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_messenger_human_agent_tag_after_seven_days_is_refused(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent, "fb-test", "psid-1")
    hub.clock.advance(7 * DAY + 1)
    await refused(
        hub,
        agent,
        f"/api/v1/conversations/{conversation_id}/messages",
        {"text": "still there?", "tag": "HUMAN_AGENT"},
        "tag_expired",
    )


async def test_messenger_customer_feedback_tag_on_text_is_refused_with_what_is_allowed_instead(hub: Api) -> None:
    """Meta lets CUSTOMER_FEEDBACK carry only its Customer Feedback template, which the hub does not send: text with
    it after the window is refused (nothing queued), naming the tags that still apply, HUMAN_AGENT among them."""
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent, "fb-test", "psid-1")
    hub.clock.advance(2 * DAY)
    error = await refused(
        hub,
        agent,
        f"/api/v1/conversations/{conversation_id}/messages",
        {"text": "how did we do?", "tag": "CUSTOMER_FEEDBACK"},
        "tag_template_only",
    )
    assert "Customer Feedback template" in error["message"]
    tags = {a["name"] for a in error["alternatives"] if a["kind"] == "tag"}
    assert "HUMAN_AGENT" in tags
    assert "CUSTOMER_FEEDBACK" not in tags


async def test_a_messenger_customer_who_reacts_opens_the_standard_window_again(hub: Api) -> None:
    """Two days after their last message the window is closed; their reaction to our message reopens it (Meta
    counts a reaction among the actions that open the standard messaging window), measured from the reaction."""
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent, "fb-test", "psid-1")
    hub.clock.advance(2 * DAY)
    path = f"/api/v1/conversations/{conversation_id}/messages"
    await refused(hub, agent, path, {"text": "still there?"}, "window_closed")
    reacted_at = hub.clock()
    await hub.app[INGESTOR].submit(
        [
            CustomerActivity(
                channel=Channel.MESSENGER,
                account_id="fb-test",
                sender_id="psid-1",
                kind="reaction",
                occurred_at=reacted_at,
            )
        ]
    )
    hub.clock.advance(DAY - 1)
    body = await agent.json("POST", path, {"text": "glad it helped"}, 201)
    assert (body["plan"]["basis"], body["plan"]["messaging_type"]) == ("window", "RESPONSE")
    assert body["plan"]["free_text_until"] == (reacted_at + timedelta(days=1)).isoformat()


async def test_viber_user_who_unsubscribed_is_refused(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent, "vb-test", "viber-user-1")
    from hub.api.keys import INGESTOR

    hub.clock.advance(60)
    await hub.app[INGESTOR].submit(
        [
            SubscriptionChanged(
                channel=Channel.VIBER,
                account_id="vb-test",
                user_id="viber-user-1",
                state=Subscription.UNSUBSCRIBED,
                occurred_at=hub.clock(),
            )
        ]
    )
    await refused(hub, agent, f"/api/v1/conversations/{conversation_id}/messages", {"text": "hello"}, "not_subscribed")


async def test_reply_to_a_conversation_you_do_not_take_part_in_is_403_and_queues_nothing(hub: Api) -> None:
    owner = await hub.agent("ana")
    other = await hub.agent("ben")
    conversation_id = await owned_conversation(hub, owner)
    response = await other.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "hi"})
    assert response.status == 403
    assert await counts(hub) == (0, 0)


async def test_reply_with_an_unknown_field_is_422(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    response = await agent.post(f"/api/v1/conversations/{conversation_id}/messages", json={"txt": "hi"})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "unknown_field"
    assert await counts(hub) == (0, 0)


async def test_missing_template_variable_is_422_with_the_names(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    response = await agent.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"template": "test-order", "variables": {"name": "Jane"}},
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "missing_variables"
    assert "order" in error["missing"]
    assert await counts(hub) == (0, 0)


# ----------------------------------------------------------------- new messages


async def test_outbound_chat_opens_an_active_conversation_owned_by_the_agent(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    hub.clock.advance(HOUR)
    body = await agent.json("POST", "/api/v1/outbound", {"identity": identity, "text": "Any news?"}, 201)
    conversation = body["conversation"]
    assert (conversation["state"], conversation["owner"], conversation["identity"]) == ("active", agent.id, identity)
    assert body["message"]["conversation_id"] == conversation["id"]
    assert body["message"]["delivery_state"] == "queued"
    seen = await agent.json("GET", f"/api/v1/conversations/{conversation['id']}")
    assert seen["state"] == "active"


async def test_an_agent_may_start_a_message_to_a_customer_of_a_queue_they_are_not_in(hub: Api) -> None:
    """The manual's only conditions for "Send a new message" are that the customer contacted us before and the
    channel's rules, from the static panel, the CRM contact or a ticket alike: not the agent's queues. The new
    conversation is in the channel account's queue, theirs to answer and to close with that queue's statuses."""
    outsider = await hub.agent("olga", queues=("sales",))
    identity = await identity_of(hub, await hub.customer_writes())  # wa-test feeds the support queue
    await close_all(hub)
    started = await outsider.json("POST", "/api/v1/outbound", {"identity": identity, "mode": "chat"})
    conversation = started["conversation"]
    assert (conversation["state"], conversation["queue"], conversation["owner"]) == ("active", "support", outsider.id)
    await outsider.json("POST", f"/api/v1/conversations/{conversation['id']}/messages", {"text": "Hello"}, 201)
    refused = await outsider.post(f"/api/v1/conversations/{conversation['id']}/close", json={"status": "callback"})
    assert (await refused.json())["error"]["code"] == "status_not_allowed"
    closed = await outsider.json("POST", f"/api/v1/conversations/{conversation['id']}/close", {"status": "resolved"})
    assert (closed["state"], closed["status"]) == ("closed", "resolved")


async def test_outbound_reuses_the_agents_own_open_conversation(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    identity = await identity_of(hub, conversation_id)
    body = await agent.json("POST", "/api/v1/outbound", {"identity": identity, "text": "one more thing"}, 201)
    assert body["conversation"]["id"] == conversation_id


async def test_outbound_to_an_identity_whose_open_conversation_is_someone_elses_is_409(hub: Api) -> None:
    owner = await hub.agent("ana")
    other = await hub.agent("ben")
    conversation_id = await owned_conversation(hub, owner)
    identity = await identity_of(hub, conversation_id)
    response = await other.post("/api/v1/outbound", json={"identity": identity, "text": "hi"})
    assert response.status == 409
    error = (await response.json())["error"]
    assert (error["code"], error["conversation_id"]) == ("conversation_taken", conversation_id)
    assert await counts(hub) == (0, 0)


async def test_outbound_close_sends_and_closes_with_the_status(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    body = await agent.json(
        "POST",
        "/api/v1/outbound",
        {"identity": identity, "text": "Done, bye", "mode": "close", "status": "resolved"},
        201,
    )
    assert (body["conversation"]["state"], body["conversation"]["status"]) == ("closed", "resolved")
    await delivered(hub)
    assert [m.text for m in hub.adapter.sent] == ["Done, bye"]


async def test_outbound_close_without_a_status_is_refused_and_queues_nothing(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    response = await agent.post("/api/v1/outbound", json={"identity": identity, "text": "bye", "mode": "close"})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "status_required"
    assert await counts(hub) == (0, 0)


async def test_outbound_to_an_unknown_identity_is_404(hub: Api) -> None:
    agent = await hub.agent("ana")
    response = await agent.post("/api/v1/outbound", json={"identity": 424242, "text": "hi"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "identity_not_found"
    assert await counts(hub) == (0, 0)


async def test_outbound_to_a_cold_identity_is_refused(hub: Api) -> None:
    agent = await hub.agent("ana")
    async with hub.store.write() as connection:
        identity = (
            await connection.execute(
                insert(identities)
                .values(
                    account_id="wa-test",
                    channel="whatsapp",
                    external_id="+420699999999",
                    created_at=hub.clock(),
                )
                .returning(identities.c.id)
            )
        ).scalar_one()
    await refused(hub, agent, "/api/v1/outbound", {"identity": identity, "text": "hi"}, "no_previous_contact")


async def test_outbound_to_a_viber_user_who_only_opened_the_chat_explains_the_welcome_message(hub: Api) -> None:
    agent = await hub.agent("ana")
    from hub.api.keys import INGESTOR

    await hub.app[INGESTOR].submit(
        [
            SubscriptionChanged(
                channel=Channel.VIBER,
                account_id="vb-test",
                user_id="viber-user-2",
                state=Subscription.OPENED,
                occurred_at=hub.clock(),
            )
        ]
    )
    async with hub.store.read() as connection:
        identity = (
            await connection.execute(select(identities.c.id).where(identities.c.external_id == "viber-user-2"))
        ).scalar_one()
    error = await refused(hub, agent, "/api/v1/outbound", {"identity": identity, "text": "hi"}, "welcome_only")
    assert "welcome message" in error["message"]


async def test_window_runs_per_identity_not_per_conversation(hub: Api) -> None:
    """A new conversation with a customer who wrote an hour ago is inside the window."""
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    hub.clock.advance(HOUR)
    await agent.json("POST", "/api/v1/outbound", {"identity": identity, "text": "following up"}, 201)
    stored = await load_identity(hub.store, identity)
    assert stored is not None
    assert stored.last_inbound_at == hub.clock() - timedelta(hours=1)


async def test_window_uses_the_providers_timestamp_not_our_receipt_time(hub: Api) -> None:
    agent = await hub.agent("ana")
    from hub.api.keys import INGESTOR

    late = InboundMessage(
        channel=Channel.WHATSAPP,
        account_id="wa-test",
        sender_id="+420600000077",
        provider_message_id="late-1",
        sent_at=hub.clock() - timedelta(days=1, seconds=1),  # delivered to us a day late
        text="hello",
    )
    await hub.app[INGESTOR].submit([late])
    async with hub.store.read() as connection:
        identity = (
            await connection.execute(select(identities.c.id).where(identities.c.external_id == "+420600000077"))
        ).scalar_one()
    await close_all(hub)
    await refused(hub, agent, "/api/v1/outbound", {"identity": identity, "text": "hi"}, "window_closed")


async def test_retry_with_the_same_idempotency_key_gets_the_first_answer_and_queues_once(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    path = f"/api/v1/conversations/{conversation_id}/messages"
    headers = {"Idempotency-Key": "reply-1"}
    first = await agent.post(path, json={"text": "only once"}, headers=headers)
    again = await agent.post(path, json={"text": "only once"}, headers=headers)
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["id"] == (await again.json())["id"]
    assert await counts(hub) == (1, 1)
    await delivered(hub)
    assert [m.text for m in hub.adapter.sent] == ["only once"]


# ----------------------------------------------------------------- "start chat" without a message


async def test_start_chat_without_a_message_opens_the_conversation_and_sends_nothing(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    hub.clock.advance(HOUR)
    response = await agent.post("/api/v1/outbound", json={"identity": identity, "mode": "chat"})
    assert response.status == 200
    body = await response.json()
    conversation = body["conversation"]
    assert (conversation["state"], conversation["owner"], conversation["identity"]) == ("active", agent.id, identity)
    assert body["message"] is None
    assert await counts(hub) == (0, 0)  # nothing queued, nothing sent
    seen = await agent.json("GET", f"/api/v1/conversations/{conversation['id']}")
    assert (seen["state"], [p["agent_id"] for p in seen["participants"]]) == ("active", [agent.id])
    # the first message goes through the window rules as any reply does
    sent = await agent.json("POST", f"/api/v1/conversations/{conversation['id']}/messages", {"text": "Hi!"}, 201)
    assert sent["conversation_id"] == conversation["id"]


async def test_start_chat_after_the_window_opens_and_the_first_message_meets_the_rules(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    hub.clock.advance(2 * DAY)
    body = await agent.json("POST", "/api/v1/outbound", {"identity": identity}, 200)
    conversation_id = body["conversation"]["id"]
    path = f"/api/v1/conversations/{conversation_id}/messages"
    await refused(hub, agent, path, {"text": "Hello again"}, "window_closed")


async def test_start_chat_reuses_the_agents_own_open_conversation(hub: Api) -> None:
    agent = await hub.agent("ana")
    conversation_id = await owned_conversation(hub, agent)
    identity = await identity_of(hub, conversation_id)
    body = await agent.json("POST", "/api/v1/outbound", {"identity": identity, "mode": "chat"}, 200)
    assert body["conversation"]["id"] == conversation_id


async def test_start_chat_where_someone_else_has_the_customer_is_409(hub: Api) -> None:
    owner, other = await hub.agent("ana"), await hub.agent("ben")
    conversation_id = await owned_conversation(hub, owner)
    identity = await identity_of(hub, conversation_id)
    response = await other.post("/api/v1/outbound", json={"identity": identity})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conversation_taken"


async def test_send_and_close_still_needs_a_message(hub: Api) -> None:
    agent = await hub.agent("ana")
    identity = await identity_of(hub, await hub.customer_writes())
    await close_all(hub)
    response = await agent.post("/api/v1/outbound", json={"identity": identity, "mode": "close", "status": "resolved"})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "empty_message"
    assert await counts(hub) == (0, 0)


async def test_start_chat_with_an_unknown_identity_is_404(hub: Api) -> None:
    agent = await hub.agent("ana")
    response = await agent.post("/api/v1/outbound", json={"identity": 424242})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "identity_not_found"


async def test_the_openapi_document_gives_start_chat_its_200(hub: Api) -> None:
    document = await (await hub.client.get("/api/v1/openapi.json")).json()
    responses = document["paths"]["/outbound"]["post"]["responses"]
    assert {"200", "201"} <= set(responses)
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatStarted"}


async def test_the_openapi_body_of_a_new_message_lists_only_fields_the_route_takes(hub: Api) -> None:
    document = await (await hub.client.get("/api/v1/openapi.json")).json()
    fields = document["paths"]["/outbound"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    alice = await hub.agent("alice")
    for field in fields["properties"]:
        response = await alice.post("/api/v1/outbound", {"identity": 999999, field: None})
        error = (await response.json())["error"]
        assert (error["code"], error.get("field")) != ("unknown_field", field), field
