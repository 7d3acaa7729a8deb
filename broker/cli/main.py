"""`mappa`: the command line. Each command group lives in its own module with a
``register(subparsers)`` that adds its parser and sets ``handler``; settings are
built once, from the environment, inside the handler that needs them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from broker.cli import (
    api,
    areas,
    bench,
    deadletter,
    demo,
    deploy,
    directory,
    keys,
    serve,
    track,
    transfer,
)
from broker.cli import audit as audit_cli
from broker.cli import isa as isa_cli
from broker.cli import schemas as schemas_cli
from broker.errors import MappaError

COMMAND_GROUPS = (
    demo,
    areas,
    keys,
    directory,
    isa_cli,
    schemas_cli,
    audit_cli,
    transfer,
    deadletter,
    track,
    serve,
    api,
    deploy,
    bench,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mappa", description="Secure inter-agency information sharing for MAPPA."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except MappaError as exc:
        print(f"mappa: {exc.code}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mappa: interrupted; everything started has been stopped", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
