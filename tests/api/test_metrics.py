"""GET /metrics over real HTTP: what a webhook, an offer and a send leave in the Prometheus text, and who may
read it (a bearer token, a listener of its own, or loopback clients only)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url

from adapters.emulators.core import EmulatorState, build_emulator_app
from adapters.twilio_whatsapp import sign
from hub.api.keys import CLOCK
from hub.api.observe import METRICS_LISTENER
from hub.api.server import create_app
from hub.errors import ProviderRejected
from hub.events import AttachmentChanged
from hub.metrics import HubMetrics
from hub.settings import Settings
from hub.store.templates import create_template
from hub.templates import TemplateDraft
from tests.api.conftest import API_CONFIG, Api, Clock, MakeApi, delivered, eventually
from tests.faults._proxy import CuttableProxy
from tests.ports import free_port
from tests.webhook_receiver import Receiver

TOKEN = "metrics-token-0123456789"
WITH_TOKEN = f"""
[metrics]
token = "{TOKEN}"
"""
BEARER = {"Authorization": f"Bearer {TOKEN}"}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Served:
    api: Api
    emulator: EmulatorState

    def customer_wrote(self, number: str) -> None:
        """The emulated provider saw the customer write (its 24-hour window is open)."""
        self.emulator.customer("wa-test", number).last_inbound_at = self.api.clock()


MakeServed = Callable[..., Awaitable[Served]]


@pytest.fixture
async def served(
    aiohttp_client: Any, aiohttp_server: Any, make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[MakeServed]:
    """``await served(extra_toml="", env={})``: the API's hub with the real Twilio adapter, sending to the
    Twilio emulator over loopback; ``env`` is the environment the configuration is read with."""
    states: list[EmulatorState] = []

    async def make(extra_toml: str = "", env: dict[str, str] | None = None) -> Served:
        clock = Clock()
        state = EmulatorState(make_settings(API_CONFIG), "http://127.0.0.1:9", clock=clock)
        states.append(state)
        emulator = await aiohttp_server(build_emulator_app(state))
        environ = {"CHANNELHUB_ACCOUNTS_WA_TEST_API_BASE": str(emulator.make_url("/twilio")).rstrip("/"), **(env or {})}
        settings = make_settings(API_CONFIG + extra_toml, env=environ, database_url=database_url)
        app = create_app(settings, clock=clock)
        return Served(api=Api(client=await aiohttp_client(app), app=app, clock=clock), emulator=state)

    yield make
    for state in states:
        await state.drain()  # its status callbacks go nowhere (the hub's public URL is not served here)
        await state.close()


async def scrape(api: Api, headers: dict[str, str] | None = None) -> Samples:
    response = await api.client.get("/metrics", headers=headers or BEARER)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())


async def twilio_webhook(api: Api, message_sid: str, *, signed: bool = True) -> aiohttp.ClientResponse:
    """A customer's WhatsApp message as Twilio posts it to /webhooks/twilio."""
    fields = [("MessageSid", message_sid)] if message_sid else []
    fields += [
        ("Body", "hello"),
        ("From", "whatsapp:+447700900123"),
        ("To", "whatsapp:+15550001111"),
        ("ProfileName", "Jane"),
    ]
    url = api.settings.server.public_url.rstrip("/") + "/webhooks/twilio"
    signature = sign(url, fields, "test-auth-token") if signed else "not-the-signature"
    return await api.client.post(
        "/webhooks/twilio",
        data=fields,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


async def test_a_webhook_an_offer_and_a_send_are_counted(served: MakeServed) -> None:
    emulated = await served(WITH_TOKEN)
    api = emulated.api
    emulated.customer_wrote("+447700900123")
    ana = await api.agent("ana", ready=True)
    assert (await twilio_webhook(api, "SM0001")).status == 200
    assert (await twilio_webhook(api, "SM0001")).status == 200  # Twilio delivers it again
    assert (await twilio_webhook(api, "SM0002", signed=False)).status == 403
    assert (await twilio_webhook(api, "")).status == 200  # signed but unusable: kept as a dead letter
    conversation_id = await api.open_conversation("wa-test", "+447700900123")
    await api.sweep()
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "On it!"}, 201)
    await delivered(api)

    samples = await scrape(api)

    assert value(samples, "channelhub_webhooks_received_total", channel="twilio") == 4
    assert value(samples, "channelhub_webhooks_duplicated_total", channel="twilio") == 1
    assert value(samples, "channelhub_webhooks_refused_total", channel="twilio", code="signature_invalid") == 1
    assert value(samples, "channelhub_webhooks_refused_total", channel="twilio", code="missing_field") == 1
    assert value(samples, "channelhub_ingest_group_size_count") >= 2
    assert value(samples, "channelhub_ingest_commit_seconds_count") >= 2
    assert value(samples, "channelhub_offers_total", outcome="made") == 1
    assert value(samples, "channelhub_offers_total", outcome="accepted") == 1
    assert value(samples, "channelhub_offers_total", outcome="missed") == 0
    assert value(samples, "channelhub_sends_total", result="sent") == 1
    assert value(samples, "channelhub_send_retries_total") == 0
    assert value(samples, "channelhub_agents", presence="ready") == 1
    assert value(samples, "channelhub_outbox_depth") == 0
    assert value(samples, "channelhub_outbox_rows", state="done") == 1
    accept_route = "/api/v1/conversations/{id}/accept"
    assert value(samples, "channelhub_http_request_duration_seconds_count", route=accept_route, method="POST") == 1
    assert value(samples, "channelhub_http_requests_total", route=accept_route, method="POST", status="200") == 1
    routes = {dict(labels).get("route") for name, labels in samples if name == "channelhub_http_requests_total"}
    assert f"/api/v1/conversations/{conversation_id}/accept" not in routes  # the declared path, never the URL
    assert all(name.startswith("channelhub_") for name, _ in samples if not name.startswith(("python_", "process_")))
    assert not [name for name, _ in samples if name.endswith("_created")]  # no timestamp series beside each one


async def test_a_missed_offer_and_a_provider_failure_are_counted(make_api: MakeApi) -> None:
    api = await make_api(WITH_TOKEN, fake_adapter=True)
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    api.clock.advance(3600)
    await api.sweep()  # the offer ran out
    bob = await api.agent("bob")
    await bob.json("POST", f"/api/v1/conversations/{conversation_id}/take")
    api.adapter.fail_next(ProviderRejected("63016", "outside the window"))
    await bob.json("POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "hi"}, 201)
    await delivered(api)

    samples = await scrape(api)

    assert value(samples, "channelhub_offers_total", outcome="missed") == 1
    assert value(samples, "channelhub_sends_total", result="failed") == 1
    assert value(samples, "channelhub_send_failures_total", code="63016") == 1
    assert ana.login == "ana"


async def test_a_refused_template_render_is_counted_by_its_code(make_api: MakeApi) -> None:
    api = await make_api(WITH_TOKEN, fake_adapter=True)
    await create_template(
        api.store,
        TemplateDraft(name="order", body="Hi {{ name }}, order {{ order }}.", variables={"name": "J", "order": "1"}),
        now=api.clock(),
    )
    ana = await api.agent("ana", ready=True)
    conversation_id = await api.customer_writes()
    await api.sweep()
    await ana.json("POST", f"/api/v1/conversations/{conversation_id}/accept")
    refused = await ana.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"template": "order", "variables": {"name": "Jane"}}
    )
    assert refused.status == 422

    samples = await scrape(api)

    assert value(samples, "channelhub_template_renders_refused_total", code="missing_variables") == 1
    assert value(samples, "channelhub_sends_total", result="sent") == 0


async def test_outgoing_webhook_attempts_are_counted_by_result(make_api: MakeApi) -> None:
    secret = "whsec_" + base64.b64encode(b"m" * 32).decode()
    receiver = Receiver(secret)
    await receiver.start()
    try:
        hooks = "".join(
            f'\n[[webhooks_out]]\nid = "{name}"\nurl = "{url}"\nsecret = "{secret}"\nevents = ["message.created"]\n'
            for name, url in (("up", receiver.url), ("down", f"http://127.0.0.1:{free_port()}/hook"))
        )
        api = await make_api(WITH_TOKEN + hooks + "\n[webhooks_delivery]\npoll_seconds = 0.05\n", fake_adapter=True)
        await api.customer_writes(text="a message both integrations hear of")

        async def both_tried() -> bool:
            samples = await scrape(api)
            return all(
                value(samples, "channelhub_webhooks_out_attempts_total", result=result) >= 1
                for result in ("delivered", "failed")
            )

        await eventually(both_tried, "an attempt of each integration counted")
    finally:
        await receiver.stop()
    samples = await scrape(api)
    assert value(samples, "channelhub_webhooks_out_attempts_total", result="delivered") == len(receiver.accepted) == 1


async def test_with_the_database_gone_the_process_still_reports_its_own_counts(
    aiohttp_client: Any, make_settings: Callable[..., Settings], database_url: str
) -> None:
    """A database outage is when the process's own counts matter (webhooks refused, sends failed, CPU): the
    scrape leaves out only the gauges it reads from the database, instead of failing whole."""
    if not database_url.startswith("postgresql"):
        pytest.skip("cuts the connection to PostgreSQL (a proxy on loopback)")
    real = make_url(database_url)
    proxy = CuttableProxy(real.host or "127.0.0.1", real.port or 5432, free_port())
    await proxy.start()
    try:
        through_proxy = real.set(port=proxy.port).render_as_string(hide_password=False)
        app = create_app(make_settings(API_CONFIG + WITH_TOKEN, database_url=through_proxy), clock=Clock())
        api = Api(client=await aiohttp_client(app), app=app, clock=app[CLOCK])
        await api.customer_writes()
        assert value(await scrape(api), "channelhub_conversations_waiting", queue="support") == 1
        await proxy.cut()

        response = await api.client.get("/metrics", headers=BEARER)

        assert response.status == 200, await response.text()
        samples = parse(await response.text())
        assert value(samples, "channelhub_process_cpu_seconds_total") > 0
        assert value(samples, "channelhub_ingest_group_size_count") == 1
        assert ("channelhub_conversations_waiting", (("queue", "support"),)) not in samples  # not a stale figure
        assert ("channelhub_outbox_depth", ()) not in samples
        await proxy.restore()
        assert value(await scrape(api), "channelhub_conversations_waiting", queue="support") == 1
    finally:
        await proxy.close()


async def test_waiting_conversations_and_the_longest_wait_per_queue(make_api: MakeApi) -> None:
    api = await make_api(WITH_TOKEN)
    await api.customer_writes(sender="+420600000001")
    api.clock.advance(30)
    await api.customer_writes(sender="+420600000002")
    api.clock.advance(15)

    samples = await scrape(api)

    assert value(samples, "channelhub_conversations_waiting", queue="support") == 2
    assert value(samples, "channelhub_longest_wait_seconds", queue="support") == 45


async def test_the_process_reports_its_cpu_and_memory(make_api: MakeApi) -> None:
    """What says a process is busy (docs/scaling.md: when to add one), under the hub's own prefix."""
    api = await make_api(WITH_TOKEN)
    samples = await scrape(api)
    assert value(samples, "channelhub_process_cpu_seconds_total") > 0
    assert value(samples, "channelhub_process_resident_memory_bytes") > 0
    assert value(samples, "channelhub_process_open_fds") > 0
    assert all(name.startswith("channelhub_") for name, _labels in samples)


async def test_without_the_token_metrics_are_refused(make_api: MakeApi) -> None:
    api = await make_api(WITH_TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        response = await api.client.get("/metrics", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "metrics_token_required"


async def test_the_token_may_come_from_the_environment(served: MakeServed) -> None:
    api = (await served('[metrics]\ntoken = "env:SCRAPE_TOKEN"\n', env={"SCRAPE_TOKEN": TOKEN})).api
    assert api.settings.metrics.token == TOKEN
    assert (await api.client.get("/metrics")).status == 401
    assert await scrape(api)


async def test_with_neither_token_nor_port_only_loopback_clients_without_a_proxy_read_them(api: Api) -> None:
    samples = await scrape(api, headers={"X-Unrelated": "1"})
    assert value(samples, "channelhub_agents", presence="ready") == 0
    for proxied in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
        response = await api.client.get("/metrics", headers=proxied)
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "metrics_loopback_only"


async def test_a_port_of_their_own_serves_metrics_there_and_not_on_the_main_listener(make_api: MakeApi) -> None:
    api = await make_api("[metrics]\nport = 0\n")
    assert (await api.client.get("/metrics")).status == 404
    port = api.app[METRICS_LISTENER].port
    assert port
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert len(response.headers.get("X-Request-Id", "")) == 32  # every answer carries one, here too
        samples = parse(await response.text())
    assert ("channelhub_outbox_depth", ()) in samples


async def test_two_hubs_in_one_process_keep_their_own_counts(make_api: MakeApi) -> None:
    first = await make_api(WITH_TOKEN)
    second = await make_api(WITH_TOKEN)
    await first.client.get("/healthz")
    await first.client.get("/healthz")
    one, other = await scrape(first), await scrape(second)
    assert value(one, "channelhub_http_requests_total", route="/healthz", method="GET", status="200") == 2
    assert value(other, "channelhub_http_requests_total", route="/healthz", method="GET", status="200") == 0


def test_the_media_fetchers_outcomes_are_counted_from_its_events() -> None:
    metrics = HubMetrics()
    for state in ("stored", "failed", "pending", "stored"):  # pending: an admin's retry, not an outcome
        metrics.on_event(AttachmentChanged(conversation_id=1, message_id=2, attachment={"id": 3, "state": state}))

    samples = parse(generate_latest(metrics.registry).decode())

    assert value(samples, "channelhub_media_fetches_total", result="stored") == 2
    assert value(samples, "channelhub_media_fetches_total", result="failed") == 1
    assert value(samples, "channelhub_media_fetches_total", result="pending") == 0


def test_inbound_events_acknowledged_without_handling_are_counted_by_channel_and_kind() -> None:
    """A WhatsApp group message (not supported) must show in the metrics, not only in a log line."""

    @dataclass
    class Ingestor:
        ignored_counts: dict[str, int]

    metrics = HubMetrics()
    metrics.watch_ingestor(Ingestor({"whatsapp:group_message": 2, "messenger:optin": 1}))

    samples = parse(generate_latest(metrics.registry).decode())

    assert value(samples, "channelhub_inbound_ignored_total", channel="whatsapp", kind="group_message") == 2
    assert value(samples, "channelhub_inbound_ignored_total", channel="messenger", kind="optin") == 1
