"""`mappa`: the command line. Each command group lives in its own module with a
``register(subparsers)`` that adds its parser and sets ``handler``; settings are
built once, from the environment, inside the handler that needs them.

Whatever goes wrong ends in one line on standard error and a non-zero exit, never a
traceback: a bad argument ``mappa: usage: ...`` (exit 2), one of our errors
``mappa: <code>: <message>`` (exit 1; exit 4 when Kafka or a database did not answer,
``UNAVAILABLE_ERRORS``), a file the system would not let us read or write
``mappa: io.failed: ...`` (exit 1), anything else ``mappa: internal error: <type>``
(exit 70), with the traceback only under ``--debug`` or MAPPA_DEBUG=1. None of them
quotes what a file or an argument held. The statuses are ``broker.cli.exits``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from broker.cli import (
    api,
    areas,
    bench,
    deadletter,
    demo,
    deploy,
    directory,
    exits,
    keys,
    ledger,
    migrate,
    records,
    serve,
    statistics,
    track,
    transfer,
    users,
)
from broker.cli import audit as audit_cli
from broker.cli import isa as isa_cli
from broker.cli import schemas as schemas_cli
from broker.cli import witness as witness_cli
from broker.errors import MappaError, StoreUnavailable
from broker.kafka.transport import TransportError
from broker.transfer.desk import TransferPending

COMMAND_GROUPS = (
    demo,
    areas,
    keys,
    directory,
    isa_cli,
    schemas_cli,
    audit_cli,
    witness_cli,
    transfer,
    deadletter,
    records,
    track,
    serve,
    ledger,
    migrate,
    api,
    users,
    deploy,
    bench,
    statistics,
)


# Our errors that say a service did not answer (or a step is not yet confirmed), not
# that anything was refused: trying again may work.
UNAVAILABLE_ERRORS: tuple[type[MappaError], ...] = (
    StoreUnavailable,
    TransportError,
    TransferPending,
)
# A message is cut here: one line a person reads, not a dump of what was given.
MAX_MESSAGE_CHARS = 400
# argparse quotes the value it refused; the messages say what is expected instead.
_ECHOES = (
    (re.compile(r"invalid choice: .*? \(choose from"), "invalid choice (choose from"),
    (re.compile(r"invalid (.+?) value: .*"), r"invalid \1 value"),
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``mappa: usage: ...``) naming the command
    and what is wrong, not the usage text and never the refused value; and it ends by
    ``UsageError``, so that ``main`` returns rather than exits."""

    def error(self, message: str) -> NoReturn:
        for pattern, replacement in _ECHOES:
            message = pattern.sub(replacement, message)
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


class UsageError(Exception):
    """A command line argparse refused; the message is the one line to print."""


def one_line(text: str) -> str:
    """``text`` on one line of printable characters, cut at ``MAX_MESSAGE_CHARS``."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 3] + "..."


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mappa",
        description="Secure inter-agency information sharing for MAPPA.",
        epilog=exits.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="let an unexpected error end in its traceback (also MAPPA_DEBUG=1)",
    )
    parser.add_argument("--version", action="version", version=f"mappa {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    options_anywhere(parser)
    return parser


# Options a command group takes for all its subcommands, which a person may also give
# after the subcommand (`mappa audit verify --data-dir D` as `mappa audit --data-dir D
# verify`).
GROUP_OPTIONS = ("--data-dir",)


def options_anywhere(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand below a parser that has a ``GROUP_OPTIONS`` option the same
    option, defaulting to nothing (so the group's value stands unless it is given again
    after the subcommand, which then wins). Raises nothing."""
    own = {o: a for a in parser._actions for o in a.option_strings if o in GROUP_OPTIONS}
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            held = {o for a in child._actions for o in a.option_strings}
            for option, inherited in own.items():
                if option not in held:
                    child.add_argument(
                        option, dest=inherited.dest, type=inherited.type,
                        default=argparse.SUPPRESS, help=inherited.help,
                    )  # fmt: skip
            options_anywhere(child)


def installed_version() -> str:
    """This package's version as installed (``unknown`` when run from a bare tree)."""
    try:
        return importlib.metadata.version("mappa-broker")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _say(text: str) -> None:
    print(f"mappa: {one_line(text)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _say(f"usage: {exc}")
        return exits.USAGE
    debug = bool(args.debug) or os.environ.get("MAPPA_DEBUG", "") not in ("", "0")
    try:
        code: int = args.handler(args)
    except MappaError as exc:
        _say(f"{exc.code}: {exc}")
        return exits.UNAVAILABLE if isinstance(exc, UNAVAILABLE_ERRORS) else exits.REFUSED
    except KeyboardInterrupt:
        _say("interrupted; everything started has been stopped")
        return exits.INTERRUPTED
    except OSError as exc:
        if debug:
            raise
        # The system's reason and the path: not the content of anything.
        where = f": {exc.filename}" if exc.filename else ""
        _say(f"io.failed: {exc.strerror or type(exc).__name__}{where}")
        return exits.REFUSED
    except Exception as exc:
        if debug:
            raise
        # Its message may quote the input: the type alone, and where to get the rest.
        _say(
            f"internal error: {type(exc).__name__} "
            "(run with --debug or MAPPA_DEBUG=1 for the traceback)"
        )
        return exits.INTERNAL
    return code


if __name__ == "__main__":
    sys.exit(main())
