"""`mappa areas`: the 42 MAPPA area codes."""

from __future__ import annotations

import argparse

from broker.areas import all_areas
from broker.cli.output import JSON_HELP, print_json, print_table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    areas = sub.add_parser("areas", help="list the 42 MAPPA area codes")
    areas.add_argument("--json", action="store_true", help=JSON_HELP)
    areas.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rows = [{"code": a.code, "name": a.name, "country": a.country} for a in all_areas().values()]
    if args.json:
        print_json(rows)
    else:
        print_table(("code", "name", "country"), (list(r.values()) for r in rows))
    return 0
