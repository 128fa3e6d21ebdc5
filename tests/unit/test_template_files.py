"""The template file format: parse, dump, round trip, and the shipped templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.template_files import TemplateFileError, dump_template, parse_template, read_dir, write_dir
from hub.templates import TemplateDraft, TemplateVersion, validate

SHIPPED = Path(__file__).resolve().parents[2] / "templates"
SID = "HX0123456789abcdef0123456789abcdef"

FULL = TemplateDraft(
    name="order_update",
    description='Where an order is — "quoted", with a backslash \\ and ünïcode',
    body="Hi {{ name }},\n\nyour order {{ order }} shipped.\n",
    variables={"name": "Ann", "order": "A-1042"},
    variants={"viber": "Order {{ order }} 🚚\nsecond line", "messenger": "it's '''odd''' here'"},
    tag="POST_PURCHASE_UPDATE",
    bindings={
        "twilio": {"content_sid": SID, "variables": {"1": "name", "2": "order"}},
        "cloud": {"name": "order_update", "language": "en_US", "parameters": ["name", "order"]},
    },
)

ROUND_TRIPS = [
    FULL,
    TemplateDraft(name="plain", body="Hello"),
    TemplateDraft(name="blank-lines", body="\n\nHello\n\n"),
    TemplateDraft(name="dashes", body="---\nnot a fence inside the body\n---"),
    TemplateDraft(name="tabs", body="a\tb", variables={"weird key ok": "x"}),
]


@pytest.mark.parametrize("draft", ROUND_TRIPS, ids=lambda d: d.name)
def test_dump_then_parse_gives_the_same_template(draft: TemplateDraft) -> None:
    assert parse_template(dump_template(draft)) == draft


def test_a_saved_version_dumps_like_its_draft() -> None:
    version = TemplateVersion(
        name=FULL.name,
        version=4,
        description=FULL.description,
        body=FULL.body,
        variables=FULL.variables,
        variants=FULL.variants,
        tag=FULL.tag,
        bindings=FULL.bindings,
    )
    assert dump_template(version) == dump_template(FULL)


def test_directory_round_trip(tmp_path: Path) -> None:
    saved = [
        TemplateVersion(d.name, 1, d.description, d.body, d.variables, d.variants, d.tag, d.bindings)
        for d in ROUND_TRIPS
    ]
    written = write_dir(tmp_path / "out", saved)
    assert sorted(p.name for p in written) == sorted(f"{d.name}.j2" for d in ROUND_TRIPS)
    assert sorted(read_dir(tmp_path / "out"), key=lambda d: d.name) == sorted(ROUND_TRIPS, key=lambda d: d.name)


BAD_FILES = [
    ("no front matter\n", "must start"),
    ("---\nname = 'x'\nbody never starts\n", "closing"),
    ("---\nname = \n---\nHi\n", "not valid TOML"),
    ("---\ndescription = 'no name'\n---\nHi\n", "needs name"),
    ("---\nname = 'x'\ncolour = 'red'\n---\nHi\n", "unknown front matter"),
    ("---\nname = 'x'\nvariables = 'a'\n---\nHi\n", "must be a table"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_FILES)
def test_malformed_files_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(TemplateFileError, match=reason):
        parse_template(text, source="bad.j2")


def test_two_files_with_one_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.j2").write_text("---\nname = 'same'\n---\nA\n", encoding="utf-8")
    (tmp_path / "b.j2").write_text("---\nname = 'same'\n---\nB\n", encoding="utf-8")
    with pytest.raises(TemplateFileError, match=r"also defined in a\.j2"):
        read_dir(tmp_path)


def test_windows_line_endings_are_read() -> None:
    draft = parse_template("---\r\nname = 'x'\r\n---\r\nHi\r\nthere\r\n")
    assert (draft.name, draft.body) == ("x", "Hi\nthere")


def test_the_shipped_templates_are_valid_and_round_trip() -> None:
    drafts = read_dir(SHIPPED)
    assert len(drafts) >= 4
    for draft in drafts:
        validate(draft)
        assert parse_template(dump_template(draft)) == draft
    names = {d.name for d in drafts}
    assert {"greeting", "order_update", "follow_up_human_agent", "closing", "callback_request"} <= names
