"""`mappa areas`: the 42 MAPPA area codes."""

from __future__ import annotations

import argparse

from broker.areas import all_areas


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("areas", help="list the 42 MAPPA area codes").set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for a in all_areas().values():
        print(f"{a.code:<24} {a.name} ({a.country})")
    return 0
