"""What a command found, printed for a person or for a program: an aligned table
(``print_table``) or one JSON document on standard output (``print_json``).

Every command that prints rows prints them through here, so that all tables look
alike and an empty cell means the same thing everywhere: ``EMPTY`` stands for a value
that is not there (None), never for a zero, an empty list or False (``cell``).

Standard output that is not a terminal (a pipe, a file, a test) gets no colour and a
table as wide as its widest row, so that an id or a timestamp is never wrapped or cut;
on a terminal rich fits the table to the window and folds a cell that cannot fit
rather than cutting it short.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

# The help of every command's ``--json``.
JSON_HELP = "print one JSON document on standard output instead of text"
# What an empty cell shows: a value that is not there.
EMPTY = "-"
# A table on a pipe is as wide as its rows need, up to this: far past any row we print
# (an id is 36 characters, a timestamp 24), short of a runaway cell filling memory.
PIPE_WIDTH = 1000


def cell(value: object) -> str:
    """``value`` as a table shows it: ``EMPTY`` for None (only), ``yes``/``no`` for a
    bool, a list joined by commas, anything else as ``str`` (so 0 is ``0``)."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value) or EMPTY
    return str(value)


def print_json(document: object) -> None:
    """``document`` as one JSON document on standard output. Its keys stay in the order
    the command built them (each command's are fixed): what a script reads is stable."""
    print(json.dumps(document, indent=1))


def render_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under the headings ``columns``, in aligned columns, each cell by
    ``cell``; lines carry no trailing spaces. Plain text, for a pipe."""
    return _render(columns, rows, terminal=False)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """``render_table`` on standard output; on a terminal, with a bold heading and fitted
    to the window."""
    terminal = sys.stdout.isatty()
    text = _render(columns, rows, terminal=terminal)
    if text:
        print(text)


def _render(columns: Sequence[str], rows: Iterable[Sequence[object]], *, terminal: bool) -> str:
    table = Table(
        box=None, pad_edge=False, show_edge=False, header_style="bold" if terminal else ""
    )
    for name in columns:
        # Fold, never cut: a folded id can still be read and copied.
        table.add_column(name, overflow="fold", no_wrap=not terminal)
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    console = Console(
        width=None if terminal else PIPE_WIDTH,
        force_terminal=terminal,
        no_color=not terminal,
        highlight=False,
        soft_wrap=False,
    )
    with console.capture() as captured:
        console.print(table)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())
