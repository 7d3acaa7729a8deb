"""`mappa demo`: the command. The scenario is in ``scenario``, its summary in ``report``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from pathlib import Path

from broker.cli.demo.report import render
from broker.cli.demo.scenario import run_demo
from broker.cli.runner import run_interruptible
from broker.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end slice on a fresh data directory")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    demo.add_argument(
        "--suite",
        choices=["classic", "pq-hybrid"],
        default="classic",
        help="the cryptographic suite every agency sends in (default classic)",
    )
    demo.add_argument("--data-dir", type=Path, help="fresh directory to use (default: temporary)")
    where = demo.add_mutually_exclusive_group()
    where.add_argument(
        "--bootstrap",
        help="external Kafka bootstrap (default: MAPPA_KAFKA_BOOTSTRAP, else embedded broker)",
    )
    where.add_argument(
        "--kafka",
        choices=["embedded", "apache"],
        default="embedded",
        help="embedded: tansu (default); apache: a 3-node Apache Kafka cluster started here, "
        "with SASL_SSL and the agreement's ACLs (Java 17 and Maven; about a minute)",
    )
    demo.set_defaults(
        handler=lambda args: demo_main(
            data_dir=args.data_dir,
            suite=args.suite,
            bootstrap=args.bootstrap or os.environ.get("MAPPA_KAFKA_BOOTSTRAP") or None,
            as_json=args.json,
            apache=args.kafka == "apache",
        )
    )


def demo_main(
    *, data_dir: Path | None, suite: str, bootstrap: str | None, as_json: bool, apache: bool
) -> int:
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mappa-demo-")))
        elif data_dir.exists() and any(data_dir.iterdir()):
            print(f"mappa demo: {data_dir} is not empty; the demo needs a fresh data directory")
            return 2
        settings = Settings(
            data_dir=data_dir, suite=suite, kafka_bootstrap=None if apache else bootstrap
        )
        summary = run_interruptible(run_demo(settings, apache=apache))
    print(json.dumps(summary.to_json(), indent=2) if as_json else render(summary))
    return 0
