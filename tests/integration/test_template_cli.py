"""``channelhub templates import|export`` against a real database (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli import main
from hub.template_files import read_dir

SHIPPED = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("CHANNELHUB_CONFIG", raising=False)
    monkeypatch.setenv("CHANNELHUB_DATABASE_URL", database_url)
    return database_url


def test_import_then_export_round_trips_the_shipped_templates(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["templates", "import", str(SHIPPED)]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["templates", "export", str(tmp_path / "out")]) == 0
    exported = sorted(read_dir(tmp_path / "out"), key=lambda d: d.name)
    assert exported == sorted(read_dir(SHIPPED), key=lambda d: d.name)


def test_reimporting_unchanged_files_creates_no_version(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "hi.j2").write_text('---\nname = "hi"\n---\nHello\n', encoding="utf-8")
    assert main(["templates", "import", str(folder)]) == 0
    assert main(["templates", "import", str(folder)]) == 0
    (folder / "hi.j2").write_text('---\nname = "hi"\n---\nHello again\n', encoding="utf-8")
    assert main(["templates", "import", str(folder)]) == 0
    lines = capsys.readouterr().out.split()
    assert lines == ["created", "hi", "unchanged", "hi", "updated", "hi"]


def test_a_folder_with_one_bad_template_imports_nothing(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.j2").write_text('---\nname = "a"\n---\nfine\n', encoding="utf-8")
    (folder / "b.j2").write_text('---\nname = "b"\n---\n{{ "".__class__ }}\n', encoding="utf-8")
    assert main(["templates", "import", str(folder)]) == 1
    assert "unsafe_template" in capsys.readouterr().err
    assert main(["templates", "export", str(tmp_path / "out")]) == 0
    assert list((tmp_path / "out").iterdir()) == []
