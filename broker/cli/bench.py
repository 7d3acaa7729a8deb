"""`mappa bench`: run the benchmark sections and print their figures."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import tempfile
from dataclasses import asdict

from broker.bench import BenchOptions, Figure
from broker.cli.runner import run_interruptible
from broker.kafka.embedded import EmbeddedBroker

# Module names under broker.bench, in print order.
SECTIONS: tuple[str, ...] = ("crypto", "transport", "ledger")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure and print throughput and latency figures")
    bench.add_argument("--section", action="append", choices=SECTIONS, help="run only these")
    bench.add_argument("--scale", type=float, default=1.0, help="fraction of the full run")
    bench.add_argument("--json", action="store_true", help="print figures as JSON")
    bench.add_argument("--bootstrap", help="external Kafka (default: embedded broker)")
    bench.set_defaults(handler=run)


async def run_sections(names: list[str], bootstrap: str | None, scale: float) -> list[Figure]:
    figures: list[Figure] = []
    async with contextlib.AsyncExitStack() as stack:
        if bootstrap is None:
            bootstrap = await stack.enter_async_context(EmbeddedBroker())
        data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mappa-bench-"))
        options = BenchOptions(bootstrap=bootstrap, scale=scale, data_dir=data_dir)
        for name in names:
            module = importlib.import_module(f"broker.bench.{name}")
            figures += await module.run(options)
    return figures


def render(figures: list[Figure]) -> str:
    lines = [f"{'section':<10} {'figure':<48} {'value':>14}  unit"]
    for f in figures:
        value = f"{f.value:,.1f}" if f.value >= 100 else f"{f.value:,.3f}"
        note = f"  ({f.note})" if f.note else ""
        lines.append(f"{f.section:<10} {f.name:<48} {value:>14}  {f.unit}{note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = args.section or list(SECTIONS)
    bootstrap = args.bootstrap or os.environ.get("MAPPA_KAFKA_BOOTSTRAP") or None
    figures = run_interruptible(run_sections(names, bootstrap, args.scale))
    print(json.dumps([asdict(f) for f in figures], indent=1) if args.json else render(figures))
    return 0
