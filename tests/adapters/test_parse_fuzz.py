"""Every adapter's ``parse`` over mutated real payloads: it returns events or refuses, never crashes.

The recorded fixtures are mutated the way a provider's change, a buggy sender or an
attacker with a leaked secret might: a value replaced by another JSON type (huge
integers, 1e308, NaN, deep lists, long strings), a key deleted, a key added, the bytes
cut short or flipped. Whatever comes in, the only exceptions that may leave ``parse``
are its documented refusals: ``PayloadMalformed`` (the route keeps a signed one as a
dead letter) and ``UnknownAccount`` (a mutated page or number id names an account
that is not this one). A ``TypeError``, ``KeyError``, ``OverflowError`` or
``RecursionError`` would be a 500 the provider retries for ever.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.messenger import MessengerAdapter
from adapters.twilio_whatsapp import TwilioWhatsAppAdapter
from adapters.viber import ViberAdapter
from adapters.whatsapp_cloud import WhatsAppCloudAdapter
from hub.errors import PayloadMalformed, UnknownAccount
from hub.model import Channel, ChannelAccount

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXAMPLES = 150  # per provider: a few seconds in all
REFUSALS = (PayloadMalformed, UnknownAccount)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible, never flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def _bodies(provider: str, suffix: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((FIXTURES / provider).glob(f"*.{suffix}"))]


JSON_FIXTURES = {provider: _bodies(provider, "json") for provider in ("messenger", "whatsapp_cloud", "viber")}
FORM_FIXTURES = _bodies("twilio", "form")

# ------------------------------------------------------------------ mutations

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 10**17, 10**300, int("9" * 4000), 1e17, 1e308, -1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "1e308", "NaN", "-5", "9" * 40, "image", "sticker", "nfm_reply", "order", "voice"]),
)
absurd_numbers = st.one_of(
    st.sampled_from([-1, 0, 10**17, -(10**17), 10**300, int("9" * 4000), 1e17, 1e308, -1e308, 2**63, 2**64 + 1]),
    st.sampled_from([math.nan, math.inf, -math.inf, "1e308", "-5", "9" * 40, "", "NaN", "0x10"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document (the root excluded), depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and value.isdigit())


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated_json(draw: st.DrawFn, fixtures: list[bytes]) -> bytes:
    document = json.loads(draw(st.sampled_from(fixtures)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(_paths(document))
        if not paths:
            break
        action = draw(st.sampled_from(["replace", "replace", "absurd", "absurd", "delete", "add", "deepen"]))
        numeric = [p for p in paths if _is_numeric(_parent(document, p)[p[-1]])]
        if action == "absurd" and numeric:  # timestamps, watermarks, coordinates, prices, tokens
            path = draw(st.sampled_from(numeric))
            _parent(document, path)[path[-1]] = draw(absurd_numbers)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        if action in ("replace", "absurd"):
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["timestamp", "time", "type", "id", "text", "url", "payload", "x"]))] = draw(
                json_values
            )
        elif action == "deepen":
            depth = draw(st.integers(min_value=1, max_value=200))
            value: Any = parent[path[-1]]
            for _ in range(depth):
                value = [value]
            parent[path[-1]] = value
    body = json.dumps(document, allow_nan=True).encode()
    cut = draw(st.sampled_from([None, None, None, "truncate", "flip"]))
    if cut == "truncate" and body:
        body = body[: draw(st.integers(min_value=0, max_value=len(body) - 1))]
    elif cut == "flip" and body:
        index = draw(st.integers(min_value=0, max_value=len(body) - 1))
        body = body[:index] + bytes([body[index] ^ draw(st.integers(min_value=1, max_value=255))]) + body[index + 1 :]
    return body


form_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "99999999999999999999", "NaN", "inf", "1e308", "abc", "whatsapp:", "sticker"]),
)


@st.composite
def mutated_form(draw: st.DrawFn) -> bytes:
    pairs = parse_qsl(draw(st.sampled_from(FORM_FIXTURES)).decode(), keep_blank_values=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "add" or not pairs:
            name = draw(st.sampled_from(["NumMedia", "MediaUrl0", "MediaContentType0", "Latitude", "Longitude", "X"]))
            pairs.append((name, draw(form_values)))
            continue
        index = draw(st.integers(min_value=0, max_value=len(pairs) - 1))
        if action == "delete":
            del pairs[index]
        else:
            pairs[index] = (pairs[index][0], draw(form_values))
    return urlencode(pairs).encode()


# ------------------------------------------------------------------ adapters


def _account(account_id: str, channel: Channel, provider: str, **credentials: str) -> ChannelAccount:
    return ChannelAccount(
        id=account_id,
        channel=channel,
        provider=provider,
        queue="support",
        api_base="https://provider.example.test",
        credentials=credentials,
    )


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def _must_not_crash(parse: Callable[[bytes], object], body: bytes) -> None:
    try:
        events = parse(body)
    except REFUSALS:
        return
    assert isinstance(events, list | tuple)
    for event in events:
        for name in getattr(event, "__slots__", ()):
            value = getattr(event, name)
            if isinstance(value, datetime):
                assert value.tzinfo is not None
                assert value.astimezone(UTC).year >= 2009
            if isinstance(value, float):
                assert math.isfinite(value)
        json.dumps([getattr(e, "text", None) for e in events])  # what is stored can be written


@FUZZ
@given(body=mutated_json(JSON_FIXTURES["messenger"]))
def test_messenger_parse_only_refuses(session: aiohttp.ClientSession, body: bytes) -> None:
    adapter = MessengerAdapter(
        _account(
            "fb-main",
            Channel.MESSENGER,
            "messenger",
            page_id="104729435879226",
            app_secret="s",
            page_access_token="t",
            verify_token="v",
        ),
        session,
    )
    _must_not_crash(adapter.parse, body)


@FUZZ
@given(body=mutated_json(JSON_FIXTURES["whatsapp_cloud"]))
def test_whatsapp_cloud_parse_only_refuses(session: aiohttp.ClientSession, body: bytes) -> None:
    adapter = WhatsAppCloudAdapter(
        _account(
            "wa-cloud",
            Channel.WHATSAPP,
            "cloud",
            phone_number_id="106540352242922",
            app_secret="s",
            access_token="t",
            verify_token="v",
        ),
        session,
    )
    _must_not_crash(adapter.parse, body)


@FUZZ
@given(body=mutated_json(JSON_FIXTURES["viber"]))
def test_viber_parse_only_refuses(session: aiohttp.ClientSession, body: bytes) -> None:
    adapter = ViberAdapter(_account("viber-main", Channel.VIBER, "viber", auth_token="t", name="Acme"), session)
    _must_not_crash(lambda b: adapter.parse(b, {}), body)


@FUZZ
@given(body=mutated_form())
def test_twilio_parse_only_refuses(session: aiohttp.ClientSession, body: bytes) -> None:
    adapter = TwilioWhatsAppAdapter(
        _account(
            "wa-twilio",
            Channel.WHATSAPP,
            "twilio",
            account_sid="AC1",
            auth_token="t",
            from_number="whatsapp:+14155238886",
        ),
        session,
    )
    _must_not_crash(lambda b: adapter.parse(b, {}), body)


def test_the_fixtures_themselves_parse() -> None:
    """The seeds are real payloads: a fuzz run that only ever saw refusals would prove little."""
    assert all(JSON_FIXTURES.values())
    assert FORM_FIXTURES
