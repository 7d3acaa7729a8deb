"""Progress of long work (`mappa audit verify`, `audit export`, `bench`, `deadletter
retry`), shown on standard error while standard error is a terminal, and not at all
otherwise: a log file or a script's pipe gets the result line, not a stream of
redrawn bars. Standard output, which may carry ``--json``, is never written to.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

# ``advance(done, total)``: how far the work is, in its own units.
Advance = Callable[[int, int | None], None]


def _ignore(done: int, total: int | None) -> None:
    """Where nobody watches: nothing to draw."""


@contextmanager
def progress(description: str, *, shown: bool | None = None) -> Iterator[Advance]:
    """A progress bar for ``description`` on standard error, yielding ``advance(done,
    total)`` (a spinner while ``total`` is None). ``shown`` defaults to whether standard
    error is a terminal; when it is not, ``advance`` does nothing. Raises nothing."""
    if not (sys.stderr.isatty() if shown is None else shown):
        yield _ignore
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task(description, total=None)

    def advance(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance
