"""Tables and JSON as every command prints them (broker/cli/output.py), and progress that
never reaches standard output (broker/cli/progress.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.cli.output import EMPTY, cell, render_table
from broker.cli.progress import progress

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "agencies.two-areas.example.yaml"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (0.0, "0.0"), ("", ""), (None, EMPTY), (False, "no"), (True, "yes"),
     ([], EMPTY), (["a", "b"], "a,b")],
)  # fmt: skip
def test_a_cell_is_empty_only_for_a_missing_value(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_a_table_on_a_pipe_aligns_and_never_cuts_an_id() -> None:
    ids = [str(uuid.uuid4()) * 8, "x"]  # far wider than any terminal
    text = render_table(("seq", "id", "state"), [(0, ids[0], None), (10, ids[1], "open")])
    head, first, second = text.splitlines()
    assert first.split() == ["0", ids[0], EMPTY]
    assert second.split() == ["10", ids[1], "open"]
    # Each column starts at the same place on every line, and no line ends in spaces.
    for name, cells in (("id", (ids[0], ids[1])), ("state", (EMPTY, "open"))):
        assert head.index(name) == first.rindex(cells[0]) == second.rindex(cells[1])
    assert all(line == line.rstrip() for line in text.splitlines())


def test_progress_draws_on_standard_error_only(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("counting", shown=True) as advance:
        for done in range(3):
            advance(done, 3)
    out, _ = capsys.readouterr()
    assert out == ""
    # Off a terminal (the default here), nothing is drawn at all.
    with progress("counting") as advance:
        advance(1, None)
    assert capsys.readouterr() == ("", "")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli-output") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAPPA_KEY_PASSPHRASE", "a passphrase for the output tests")
        assert main(["keys", "--data-dir", str(data), "init", "--agencies", str(EXAMPLE)]) == 0
    return data


@pytest.mark.parametrize(
    ("argv", "keys"),
    [
        (["areas"], {"code", "name", "country"}),
        (["keys", "show"], {"directory_version", "keys"}),
        (["directory", "show"], {"version", "agencies"}),
        (["users", "list"], None),
        (["api", "token", "list"], None),
    ],
)
def test_json_is_one_document_with_stable_keys_and_text_is_a_table(
    argv: list[str],
    keys: set[str] | None,
    deployment: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    group, *rest = argv
    line = [group, "--data-dir", str(deployment), *rest] if group != "areas" else argv
    assert main([*line, "--json"]) == 0, capsys.readouterr().err
    out, _ = capsys.readouterr()
    document = json.loads(out)  # one document, nothing else on standard output
    if isinstance(document, list) and keys is not None:
        assert document
        assert all(set(row) == keys for row in document)
    elif keys is not None:
        assert set(document) >= keys
    assert main(line) == 0
    text, _ = capsys.readouterr()
    assert not text.lstrip().startswith(("[", "{"))


@pytest.mark.parametrize(
    ("argv", "keys"),
    [
        (["directory", "verify"], {"valid", "version", "agencies", "signed_by", "valid_until"}),
        (["schemas", "check"], {"dir", "up_to_date", "differ"}),
    ],
)
def test_checks_say_their_verdict_as_json_too(
    argv: list[str], keys: set[str], deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    line = [*argv, "--data-dir", str(deployment)] if argv[0] == "directory" else argv
    assert main([*line, "--json"]) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    assert set(document) == keys
    assert document.get("valid", document.get("up_to_date")) is True


def test_an_agreement_check_lists_its_findings_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "isa.yaml"
    bad.write_text("id: x\nversion: 0\n")
    capsys.readouterr()
    assert main(["isa", "--data-dir", str(tmp_path / "none"), "check", str(bad), "--json"]) == 1
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["valid"] is False
    assert document["errors"] == len([f for f in document["findings"] if f["severity"] == "error"])
    assert document["errors"] > 0
    assert "no trust directory" in err  # the note, off the JSON document
