"""Every option of every `mappa` command says what it is, and the ones that take a date, a
number or a duration say in which format; each of those is parsed by a type that
refuses a bad value in one line, without echoing it."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from broker.cli import api, bench
from broker.cli.arguments import calendar_date
from broker.cli.main import build_parser, main

# What a date option's help or metavar must show.
DATE_FORMAT = "YYYY-MM-DD"
# An option is about a date, a number or a duration when its name says so...
DATE_NAME = re.compile(r"(^|_)(date|today|since|until|at|on)$|_on$")
NUMBER_NAME = re.compile(r"(^|_)(limit|size|after|seq|version|days|minutes|port|scale|from)$|ids$")
DURATION_NAME = re.compile(r"(^|_)(expires|grace|overlap_minutes|days)$")
# ...or its type does; these are our types for them (Python's int, float and
# date.fromisoformat take more than an operator means: see broker/cli/arguments.py).
DURATION_TYPES = (api.lifetime, api.lifetime_or_none)
NUMBER_TYPES = (bench.fraction,)
# A number's help states it ("a whole number", "a decimal number") or its metavar its unit.
NUMBER_METAVARS = {"N", "SEQ", "ID", "DAYS", "MINUTES", "PORT", "FRACTION"}
# A duration's help gives an example or its metavar names it.
DURATION_WORDS = re.compile(r"\b(90d|30m|1h|minutes|days)\b|DURATION")


def commands(
    parser: argparse.ArgumentParser, path: str = "mappa"
) -> Iterator[tuple[str, argparse.Action]]:
    """Every (command, action) of the parser and its subcommands, help and version aside."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def named(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.dest


def is_whole_number(kind: object) -> bool:
    return getattr(kind, "__name__", "") == "whole number"


ACTIONS = list(commands(build_parser()))


def test_the_walk_reaches_every_command() -> None:
    """The walk below is not vacuous: it sees the options of nested subcommands."""
    seen = {f"{path} {named(a)}" for path, a in ACTIONS}
    assert "mappa transfer request --move-date" in seen
    assert "mappa api token issue --expires" in seen
    assert len(ACTIONS) > 150


def test_every_option_has_help() -> None:
    bare = [f"{path} {named(a)}" for path, a in ACTIONS if not a.help or a.help == "==SUPPRESS=="]
    assert bare == []


def stated(action: argparse.Action) -> str:
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    return f"{metavar} {action.help}"


def test_dates_numbers_and_durations_state_their_format() -> None:
    unstated = []
    for path, a in ACTIONS:
        if a.nargs == 0:  # a flag takes no value
            continue
        dest, text = a.dest, stated(a)
        metavar = a.metavar if isinstance(a.metavar, str) else ""
        if a.type in DURATION_TYPES or DURATION_NAME.search(dest):
            ok = DURATION_WORDS.search(text) is not None or "number" in text
        elif a.type is calendar_date or DATE_NAME.search(dest):
            ok = DATE_FORMAT in text
        elif is_whole_number(a.type) or a.type in NUMBER_TYPES or NUMBER_NAME.search(dest):
            ok = "number" in (a.help or "") or metavar in NUMBER_METAVARS
        else:
            continue
        if not ok:
            unstated.append(f"{path} {named(a)}: {text}")
    assert unstated == []


def test_dates_and_numbers_are_parsed_by_our_types() -> None:
    """No option takes Python's int, float or date.fromisoformat directly; every option
    named for a date is a calendar_date (or a date-or-time the command checks itself)."""
    raw = [f"{path} {named(a)}" for path, a in ACTIONS if a.type in (int, float)]
    assert raw == []
    # Options that take a date or a time of day, checked where they are used.
    date_or_time = {"since", "until", "at"}
    loose = [
        f"{path} {named(a)}"
        for path, a in ACTIONS
        if DATE_NAME.search(a.dest) and a.dest not in date_or_time and a.type is not calendar_date
    ]
    assert loose == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["transfer", "request", "--as", "a", "--user", "u", "--pnc", "p", "--to", "t",
             "--reason", "r", "--move-date", "20/12/2026"],
            "argument --move-date: expected a real date as YYYY-MM-DD",
        ),
        (["transfer", "overdue", "--today", "2026-02-30"], "expected a real date as YYYY-MM-DD"),
        (["isa", "check", "f", "--today", "20261223"], "expected a real date as YYYY-MM-DD"),
        (["audit", "query", "--limit", "1e3"], "expected a whole number from 1"),
        (["bench", "--scale", "nan"], "expected a decimal number above 0 up to 1"),
        (["bench", "--scale", "2"], "expected a decimal number above 0 up to 1"),
        (["api", "token", "issue", "--agency", "a", "--expires", "2026-13-01"],
         "expected a lifetime (90d, 12h, 30m) or a date (YYYY-MM-DD)"),
        (["keys", "rotate", "--agency", "a", "--overlap-minutes", "-5"],
         "expected a whole number from 0"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_in_one_line_without_echo(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert expected in err
    assert "fromisoformat" not in err
    assert argv[-1] not in err  # the refused value is never echoed
    assert err.count("\n") == 1
