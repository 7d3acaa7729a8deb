"""The command line's shape: `mappa --version`, and a group's options (`--data-dir`)
taken after the subcommand as well as before it, by every subcommand of every group
that has one, with the same meaning; the one given last wins."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from broker.cli.main import GROUP_OPTIONS, build_parser, installed_version, main


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
