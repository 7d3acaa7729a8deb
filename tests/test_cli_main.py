"""The command line's shape: `mappa --version`, and a group's options (`--data-dir`)
taken after the subcommand as well as before it, by every subcommand of every group
that has one, with the same meaning; the one given last wins. Its exit statuses: each
kind of outcome ends in the status `mappa --help` and docs/cli.md give it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from broker.cli import areas, exits
from broker.cli.main import GROUP_OPTIONS, build_parser, installed_version, main
from broker.errors import PolicyDenied, StoreUnavailable
from broker.kafka.transport import TransportError
from broker.transfer.desk import TransferPending


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every parser reached through ``parser``'s subcommands, by its words."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found[name] = child
                found |= {f"{name} {k}": v for k, v in subcommands(child).items()}
    return found


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def test_version_says_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"mappa {installed_version()}\n"
    assert installed_version() != "unknown"  # the package is installed in make test


def test_every_subcommand_below_a_group_option_takes_it_too() -> None:
    parser = build_parser()
    every = subcommands(parser)
    groups = {words: p for words, p in every.items() if options(p) & set(GROUP_OPTIONS)}
    checked = 0
    for words, group in groups.items():
        for below, child in subcommands(group).items():
            assert options(group) & set(GROUP_OPTIONS) <= options(child), f"{words} {below}"
            checked += 1
    assert checked > 10  # audit, api token, users, keys, ... have subcommands


@pytest.mark.parametrize(
    "line",
    [
        ["audit", "verify"],
        ["api", "token", "list"],
        ["users", "list"],
    ],
)
def test_the_data_dir_before_or_after_the_subcommand_is_the_same(
    line: list[str], tmp_path: Path
) -> None:
    parser = build_parser()
    group, *rest = line
    before = parser.parse_args([group, "--data-dir", str(tmp_path), *rest])
    after = parser.parse_args([group, *rest, "--data-dir", str(tmp_path)])
    assert before.data_dir == after.data_dir == tmp_path
    # Given in both places, the one after the subcommand wins; given in neither, none.
    both = parser.parse_args([group, "--data-dir", "/a", *rest, "--data-dir", str(tmp_path)])
    assert both.data_dir == tmp_path
    assert parser.parse_args(line).data_dir is None


# -- exit statuses --------------------------------------------------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def documented_statuses(text: str) -> dict[int, str]:
    """The statuses a text lists, one per line as ``  <number>  <meaning>``."""
    found = {}
    for line in text.splitlines():
        number, _, meaning = line.strip().partition(" ")
        if number.isdigit() and meaning:
            found[int(number)] = meaning.strip().split(":")[0].split(" ")[0]
    return found


def test_help_and_docs_list_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = documented_statuses(capsys.readouterr().out.partition("exit status:")[2])
    defined = {
        value for name, value in vars(exits).items() if name.isupper() and isinstance(value, int)
    }
    assert set(shown) == defined
    table = DOC.read_text().partition("## Exit status")[2].partition("\n## ")[0]
    in_doc = {int(c[0].strip("` ")) for c in (r.split("|")[1:] for r in table.splitlines()) if c
              and c[0].strip("` ").isdigit()}  # fmt: skip
    assert in_doc == defined


def failing_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """`mappa areas` raises ``exc``: the one command's handler, standing in for any."""

    def raising(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(areas, "run", raising)


@pytest.mark.parametrize(
    ("exc", "status", "said"),
    [
        (PolicyDenied("not under this agreement"), exits.REFUSED, "policy.denied"),
        (TransportError("no broker answered"), exits.UNAVAILABLE, "transport.failed"),
        (StoreUnavailable("locked"), exits.UNAVAILABLE, "store.unavailable"),
        (TransferPending("sent, not yet seen"), exits.UNAVAILABLE, "transfer.pending"),
        (KeyboardInterrupt(), exits.INTERRUPTED, "interrupted"),
        (PermissionError(13, "Permission denied", "/x"), exits.REFUSED, "io.failed"),
        (ZeroDivisionError("secret 2011/0456789K"), exits.INTERNAL, "internal error"),
    ],
)
def test_each_outcome_exits_with_its_documented_status(
    exc: BaseException,
    status: int,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MAPPA_DEBUG", raising=False)
    failing_with(monkeypatch, exc)
    assert main(["areas"]) == status
    out, err = capsys.readouterr()
    assert (out, err.count("\n")) == ("", 1)
    assert err.startswith("mappa: ")
    assert said in err
    assert "2011/0456789K" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["areas", "--no-such-option"]) == exits.USAGE
    assert capsys.readouterr().err.startswith("mappa: usage: ")
