"""`mappa bench`: benchmarks that print figures. Tests never assert a time.

Each section is a module here with ``async def run(options) -> list[Figure]``;
sections that touch Kafka get the same broker, so figures compare like with like, and a
pipeline figure carries its ratio to plain aiokafka measured in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure. ``ratio`` is ``value`` divided by the figure named
    ``baseline`` (plain aiokafka, measured in the same run), where there is one."""

    section: str
    name: str
    value: float
    unit: str
    note: str = ""
    ratio: float | None = None
    baseline: str = ""


@dataclass(frozen=True)
class BenchOptions:
    bootstrap: str
    # Scale factor: 1.0 is the full run; tests use a small fraction to prove it works.
    scale: float = 1.0
    data_dir: str = ""
