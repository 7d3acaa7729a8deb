"""`mappa`: the command line. Builds settings once and hands them down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from broker.errors import MappaError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mappa", description="Secure inter-agency information sharing for MAPPA."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the end-to-end slice on a fresh data directory")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    demo.add_argument("--suite", choices=["classic", "pq-hybrid"], default="classic")
    demo.add_argument("--data-dir", type=Path, help="fresh directory to use (default: temporary)")
    demo.add_argument(
        "--bootstrap",
        help="external Kafka bootstrap (default: MAPPA_KAFKA_BOOTSTRAP, else embedded broker)",
    )

    sub.add_parser("areas", help="list the 42 MAPPA area codes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            import os

            from broker.cli.demo import demo_main

            return demo_main(
                data_dir=args.data_dir,
                suite=args.suite,
                bootstrap=args.bootstrap or os.environ.get("MAPPA_KAFKA_BOOTSTRAP") or None,
                as_json=args.json,
            )
        if args.command == "areas":
            from broker.areas import all_areas

            for a in all_areas().values():
                print(f"{a.code:<24} {a.name} ({a.country})")
            return 0
    except MappaError as exc:
        print(f"mappa: {exc.code}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mappa: interrupted; everything started has been stopped", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
