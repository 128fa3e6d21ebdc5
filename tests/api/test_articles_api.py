"""/api/v1/articles over real HTTP on both engines: write, version, search, read by queue, refuse."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, MakeApi

HOSTILE_MARKDOWN = """# Reset a password

<script>alert('x')</script>

[click](javascript:alert(1)) and [safe](https://example.com/help "Help")

<img src=x onerror=alert(1)>

| a | b |
|---|---|
| 1 | 2 |
"""


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


async def _write(admin: Any, **fields: Any) -> dict[str, Any]:
    body = {"title": "Refunds", "body": "Refunds take **five** days.", "tags": ["Billing"], "queues": []}
    body.update(fields)
    created: dict[str, Any] = await admin.json("POST", "/api/v1/articles", body, status=201)
    return created


async def test_an_admin_writes_an_article_and_every_edit_is_a_version(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    created = await _write(admin)
    assert created["version"] == 1
    assert created["html"] == "<p>Refunds take <strong>five</strong> days.</p>\n"
    assert created["tags"] == ["billing"]
    assert created["snippet"] == "Refunds take five days."
    updated = await admin.json("PUT", f"/api/v1/articles/{created['id']}", {"body": "Refunds take *three* days."})
    assert (updated["version"], updated["title"], updated["tags"]) == (2, "Refunds", ["billing"])
    versions = await admin.json("GET", f"/api/v1/articles/{created['id']}/versions")
    assert [v["version"] for v in versions["items"]] == [1, 2]
    assert versions["items"][0]["html"] == created["html"]


async def test_the_body_is_rendered_without_anything_that_runs(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    html = (await _write(admin, body=HOSTILE_MARKDOWN))["html"]
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # raw HTML is shown as text, never run
    assert 'href="javascript' not in html
    assert "<h1>Reset a password</h1>" in html
    assert '<a href="https://example.com/help" title="Help" rel="noopener noreferrer nofollow">safe</a>' in html
    assert "<table>" in html
    preview = await admin.json("POST", "/api/v1/articles/preview", {"body": "<b>x</b> *y*"})
    assert preview["html"] == "<p>&lt;b&gt;x&lt;/b&gt; <em>y</em></p>\n"


async def test_agents_search_and_read_the_articles_of_their_queues(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    agent = await api.agent("ann", queues=("support",))
    supervisor = await api.agent("boss", role="supervisor", queues=())
    mine = await _write(admin, title="Password reset", body="Send the reset link.", queues=["support"])
    theirs = await _write(admin, title="Password for sales", body="Sales reset.", queues=["sales"])
    await _write(admin, title="Password basics", body="For everyone.")
    found = await agent.json("GET", "/api/v1/articles?q=password")
    assert {a["title"] for a in found["items"]} == {"Password reset", "Password basics"}
    assert (await agent.json("GET", f"/api/v1/articles/{mine['id']}"))["html"] == "<p>Send the reset link.</p>\n"
    refused = await agent.json("GET", f"/api/v1/articles/{theirs['id']}", status=404)
    assert refused["error"]["code"] == "not_found"
    await agent.json("GET", f"/api/v1/articles/{theirs['id']}/versions", status=404)
    everything = await supervisor.json("GET", "/api/v1/articles?q=pasword")
    assert len(everything["items"]) == 3


async def test_search_pages_follow_on(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    for n in range(5):
        await _write(admin, title=f"Guide {n}", body="shipping guide")
    first = await admin.json("GET", "/api/v1/articles?q=shipping&limit=3")
    second = await admin.json("GET", f"/api/v1/articles?q=shipping&limit=3&after={first['next']}")
    assert len(first["items"]) == 3
    assert len(second["items"]) == 2
    assert second["next"] is None
    assert {a["id"] for a in first["items"]}.isdisjoint(a["id"] for a in second["items"])
    bad = await admin.json("GET", "/api/v1/articles?after=nonsense", status=422)
    assert bad["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"body": "x"}, "missing_field", "title"),
        ({"title": "x"}, "missing_field", "body"),
        ({"title": "", "body": "x"}, "invalid_field", "title"),
        ({"title": "x", "body": 5}, "invalid_field", "body"),
        ({"title": "x" * 301, "body": "x"}, "invalid_field", "title"),
        ({"title": "x", "body": "x", "tags": "a"}, "invalid_field", "tags"),
        ({"title": "x", "body": "x", "tags": ["a"] * 21}, "invalid_field", "tags"),
        ({"title": "x", "body": "x", "queues": ["nowhere"]}, "unknown_queue", "queues"),
        ({"title": "x", "body": "x", "colour": "red"}, "unknown_field", "colour"),
    ],
)
async def test_bad_input_is_refused_with_a_code_and_nothing_is_saved(
    api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    admin = await api.agent("root", role="admin")
    refused = await admin.json("POST", "/api/v1/articles", body, status=422)
    assert (refused["error"]["code"], refused["error"]["field"]) == (code, field)
    assert (await admin.json("GET", "/api/v1/articles"))["items"] == []


async def test_only_admins_write_and_a_refused_edit_changes_nothing(api: Api) -> None:
    admin = await api.agent("root", role="admin")
    agent = await api.agent("ann", queues=("support",))
    created = await _write(admin)
    await agent.json("POST", "/api/v1/articles", {"title": "x", "body": "y"}, status=403)
    await agent.json("PUT", f"/api/v1/articles/{created['id']}", {"title": "Mine now"}, status=403)
    await agent.json("DELETE", f"/api/v1/articles/{created['id']}", status=403)
    await admin.json("PUT", f"/api/v1/articles/{created['id']}", {"queues": ["nowhere"]}, status=422)
    assert (await admin.json("GET", f"/api/v1/articles/{created['id']}"))["version"] == 1
    response = await admin.delete(f"/api/v1/articles/{created['id']}")
    assert response.status == 204
    await admin.json("GET", f"/api/v1/articles/{created['id']}", status=404)
    await admin.json("PUT", f"/api/v1/articles/{created['id']}", {"title": "Back"}, status=404)
