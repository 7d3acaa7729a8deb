"""`mappa schemas`: export the message types' JSON Schemas, or check them for drift."""

from __future__ import annotations

import argparse
from pathlib import Path

import schemas
from broker.cli.output import JSON_HELP, print_json
from schemas.messages.export import drift, export

DEFAULT_DIR = Path(schemas.__file__).resolve().parent / "json"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("schemas", help="JSON Schema of every message type")
    actions = group.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("export", run_export, "write schemas/json/<type>.v<version>.json (all three views)"),
        ("check", run_check, "exit 1 if the files differ from the models"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument(
            "--dir",
            type=Path,
            default=DEFAULT_DIR,
            metavar="DIR",
            help="schema directory (default: the packaged schemas/json)",
        )
        p.add_argument("--json", action="store_true", help=JSON_HELP)
        p.set_defaults(handler=handler)


def run_export(args: argparse.Namespace) -> int:
    written = export(args.dir)
    if args.json:
        print_json({"dir": str(args.dir), "written": [str(p) for p in written]})
        return 0
    print(f"wrote {len(written)} schemas to {args.dir}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    problems = drift(args.dir)
    if args.json:
        print_json({"dir": str(args.dir), "up_to_date": not problems, "differ": problems})
        return 1 if problems else 0
    for line in problems:
        print(f"{args.dir}/{line}")
    if problems:
        print("run `mappa schemas export` (or `make schemas`) and commit the result")
        return 1
    print(f"{args.dir}: up to date")
    return 0
