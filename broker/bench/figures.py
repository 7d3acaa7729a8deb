"""The transport section's figures: records per publication, throughput beside its
plain aiokafka baseline, and that baseline."""

from __future__ import annotations

from collections.abc import Sequence

from broker.bench import Figure
from broker.bench.measure import Plain
from broker.kafka.topics import Topics
from broker.kafka.transport import Record

SECTION = "transport"


def sent_figures(
    label: str, n: int, records: Sequence[Record], topics: Topics, outbox: int
) -> list[Figure]:
    """Records per publication, counted on the broker (envelopes and audit events
    apart), and the sender's outbox rows per publication beside them."""
    audit = sum(r.topic == topics.audit for r in records)
    envelopes = len(records) - audit
    note = f"envelopes {envelopes / n:g} + audit events {audit / n:g}, counted on Kafka"
    return [
        Figure(SECTION, f"{label}: records per publication", (envelopes + audit) / n, "records",
               note),
        Figure(SECTION, f"{label}: outbox rows per publication", outbox / n, "records",
               "the sender's outbox"),
    ]  # fmt: skip


def baseline(name: str, rate: float, what: str, rates: Plain) -> Figure:
    """A plain aiokafka figure: ``rate`` records/s over copies of ``what``."""
    note = f"{rates.records:,} copies of {what}, mean {rates.mean_bytes:,.0f} B, acks=all"
    return Figure(SECTION, f"plain aiokafka {name}", rate, "records/s", note)


def against(name: str, value: float, unit: str, base: Figure, note: str = "") -> Figure:
    """A pipeline figure with its ratio to ``base``, plain aiokafka in the same run."""
    return Figure(SECTION, name, value, unit, note, ratio=value / base.value, baseline=base.name)


def throughput(
    name: str, *, publications: int, records: int, seconds: float, base: Figure
) -> list[Figure]:
    """Publications/s, and records/s with its ratio to ``base``."""
    return [
        Figure(SECTION, name, publications / seconds, "publications/s"),
        against(name, records / seconds, "records/s", base),
    ]
