"""`mappa bench`: run the benchmark sections and print their figures."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import tempfile
from dataclasses import asdict

from broker.bench import BenchOptions, Figure
from broker.cli.output import JSON_HELP, print_json, render_table
from broker.cli.progress import progress
from broker.cli.runner import run_interruptible
from broker.kafka.embedded import EmbeddedBroker

# Module names under broker.bench, in print order.
SECTIONS: tuple[str, ...] = ("crypto", "transport", "latency", "ledger")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure and print throughput and latency figures")
    bench.add_argument(
        "--section", action="append", choices=SECTIONS, help="run only this section (repeat)"
    )
    bench.add_argument(
        "--scale",
        type=fraction,
        default=1.0,
        metavar="FRACTION",
        help="fraction of the full run, a decimal number above 0 up to 1, e.g. 0.1 (default 1)",
    )
    bench.add_argument("--json", action="store_true", help=JSON_HELP)
    bench.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="external Kafka (default: embedded broker)"
    )
    bench.set_defaults(handler=run)


async def run_sections(names: list[str], bootstrap: str | None, scale: float) -> list[Figure]:
    figures: list[Figure] = []
    async with contextlib.AsyncExitStack() as stack:
        if bootstrap is None:
            bootstrap = await stack.enter_async_context(EmbeddedBroker())
        data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mappa-bench-"))
        options = BenchOptions(bootstrap=bootstrap, scale=scale, data_dir=data_dir)
        with progress("benchmark sections run") as advance:
            for done, name in enumerate(names):
                advance(done, len(names))
                module = importlib.import_module(f"broker.bench.{name}")
                figures += await module.run(options)
    return figures


# A decimal fraction, digits only: no exponent, no "nan" or "inf" that float() takes.
_FRACTION = re.compile(r"(0|1)?(\.[0-9]{1,6})?")


def fraction(text: str) -> float:
    """An argparse ``type``: a decimal number above 0 and at most 1 (``0.1``, ``1``)."""
    if not text or _FRACTION.fullmatch(text) is None or not 0 < float(text) <= 1:
        raise argparse.ArgumentTypeError("expected a decimal number above 0 up to 1, e.g. 0.1")
    return float(text)


def value_cell(figure: Figure) -> str:
    """A figure's value as the table shows it: yes/no, or a number to a sensible width."""
    if figure.unit == "yes/no":
        return "yes" if figure.value else "no"
    return f"{figure.value:,.1f}" if figure.value >= 100 else f"{figure.value:,.3f}"


def render(figures: list[Figure]) -> str:
    """The figures in aligned columns: section, figure, value, unit, the ratio to plain
    aiokafka measured in the same run (where there is one) and the note."""
    return render_table(
        ("section", "figure", "value", "unit", "÷ plain", "note"),
        (
            (f.section, f.name, value_cell(f), f.unit,
             None if f.ratio is None else f"{f.ratio:.3f}", f.note or None)
            for f in figures
        ),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    names = args.section or list(SECTIONS)
    bootstrap = args.bootstrap or os.environ.get("MAPPA_KAFKA_BOOTSTRAP") or None
    figures = run_interruptible(run_sections(names, bootstrap, args.scale))
    if args.json:
        print_json([asdict(f) for f in figures])
    else:
        print(render(figures))
    return 0
