"""hub.store.templates on both engines: versions, restore, import, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.store import Store
from hub.store.templates import (
    count_templates,
    create_template,
    delete_template,
    get_template,
    import_templates,
    list_templates,
    restore_template,
    template_versions_of,
    update_template,
)
from hub.templates import TemplateDraft, TemplateExists, TemplateNotFound

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SID = "HX0123456789abcdef0123456789abcdef"


def draft(body: str = "Hi {{ name }}", name: str = "greet", **fields: object) -> TemplateDraft:
    return TemplateDraft(name=name, body=body, variables={"name": "Ann"}, **fields)  # type: ignore[arg-type]


async def test_every_save_is_a_new_immutable_version(store: Store) -> None:
    first = await create_template(store, draft(), now=NOW)
    second = await update_template(store, draft("Hello {{ name }}"), now=NOW + timedelta(minutes=1))
    assert (first.version, second.version) == (1, 2)
    assert (await get_template(store, "greet")).body == "Hello {{ name }}"
    assert (await get_template(store, "greet", 1)).body == "Hi {{ name }}"
    assert [v.version for v in await template_versions_of(store, "greet")] == [1, 2]


async def test_json_fields_and_times_survive_the_database(store: Store) -> None:
    bindings = {"twilio": {"content_sid": SID, "variables": {"1": "name"}}}
    await create_template(
        store, draft(variants={"viber": "Yo {{ name }}"}, tag="HUMAN_AGENT", bindings=bindings), now=NOW
    )
    loaded = await get_template(store, "greet")
    assert loaded.variants == {"viber": "Yo {{ name }}"}
    assert loaded.bindings == bindings
    assert loaded.tag == "HUMAN_AGENT"
    assert loaded.created_at == NOW


async def test_a_name_is_created_once(store: Store) -> None:
    await create_template(store, draft(), now=NOW)
    with pytest.raises(TemplateExists):
        await create_template(store, draft("other"), now=NOW)
    assert [v.version for v in await template_versions_of(store, "greet")] == [1]


async def test_unknown_names_and_versions_are_not_found(store: Store) -> None:
    with pytest.raises(TemplateNotFound):
        await get_template(store, "nope")
    with pytest.raises(TemplateNotFound):
        await update_template(store, draft(name="nope"), now=NOW)
    await create_template(store, draft(), now=NOW)
    with pytest.raises(TemplateNotFound):
        await get_template(store, "greet", 9)
    with pytest.raises(TemplateNotFound):
        await restore_template(store, "greet", 9, now=NOW)


async def test_restore_appends_a_copy_of_the_old_version(store: Store) -> None:
    await create_template(store, draft("one {{ name }}"), now=NOW)
    await update_template(store, draft("two {{ name }}"), now=NOW)
    restored = await restore_template(store, "greet", 1, now=NOW)
    assert (restored.version, restored.body) == (3, "one {{ name }}")
    assert [v.body for v in await template_versions_of(store, "greet")] == [
        "one {{ name }}",
        "two {{ name }}",
        "one {{ name }}",
    ]


async def test_list_shows_current_versions_by_name(store: Store) -> None:
    await create_template(store, draft(name="b"), now=NOW)
    await create_template(store, draft(name="a"), now=NOW)
    await update_template(store, draft("v2 {{ name }}", name="a"), now=NOW)
    assert [(t.name, t.version) for t in await list_templates(store)] == [("a", 2), ("b", 1)]


async def test_delete_removes_the_template_and_its_history(store: Store) -> None:
    await create_template(store, draft(), now=NOW)
    await update_template(store, draft("v2"), now=NOW)
    await delete_template(store, "greet")
    assert await count_templates(store) == 0
    with pytest.raises(TemplateNotFound):
        await delete_template(store, "greet")
    again = await create_template(store, draft(), now=NOW)
    assert again.version == 1


async def test_import_creates_updates_and_skips_unchanged(store: Store) -> None:
    await create_template(store, draft(name="kept"), now=NOW)
    await create_template(store, draft(name="changed"), now=NOW)
    outcome = await import_templates(
        store, [draft(name="kept"), draft("new body", name="changed"), draft(name="fresh")], now=NOW
    )
    assert outcome == {"kept": "unchanged", "changed": "updated", "fresh": "created"}
    again = await import_templates(
        store, [draft(name="kept"), draft("new body", name="changed"), draft(name="fresh")], now=NOW
    )
    assert set(again.values()) == {"unchanged"}
    assert (await get_template(store, "changed")).version == 2


async def test_seed_imports_only_into_an_empty_store(store: Store) -> None:
    assert await import_templates(store, [draft(name="a")], now=NOW, only_if_empty=True) == {"a": "created"}
    assert await import_templates(store, [draft(name="b")], now=NOW, only_if_empty=True) == {}
    assert [t.name for t in await list_templates(store)] == ["a"]


async def test_a_failing_import_saves_nothing(store: Store) -> None:
    unstorable = draft(name="broken", bindings={"twilio": {object()}})  # not JSON: fails on the second row
    with pytest.raises(Exception, match="not JSON serializable"):  # wrapped by SQLAlchemy
        await import_templates(store, [draft(name="ok"), unstorable], now=NOW)
    assert await count_templates(store) == 0
