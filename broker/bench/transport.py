"""Kafka throughput: the mappa pipeline beside plain aiokafka, same broker, same run.

For each suite, three scenarios on two deployments of their own:

bench publish    police publishes risk assessments in an area of police, probation,
                 prison and housing, housing on no case team: each publication is one
                 envelope (the RA topic: probation and prison) and its audit events.
                 Authorise, derive views, seal, outbox and audit in one SQLite
                 transaction, relay to Kafka; timed until its records are on the broker.
                 One caller, then 32 concurrent callers, after a few untimed ones.
receive          probation reads what both publish runs sent: verify, replay check,
                 agreement, open, validate, inbox, offset and audit in one transaction,
                 then its receipts and audit events relayed.
fan-out          ``broker.bench.fanout``: a risk assessment to a full area.

Records per publication are counted on the broker, read back (``broker.bench.measure``).
Plain aiokafka then produces copies of exactly those records (the same values, keys and
headers) with the relay's own producer (acks=all), and consumes copies of the records
the receiver read (timed from an open reader, as a running gateway's receiving is):
every pipeline figure in records/s is printed with its ratio to that, measured in the
same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from broker.bench import BenchOptions, Figure
from broker.bench.deployments import provisioned
from broker.bench.fanout import fan_out
from broker.bench.figures import against, baseline, sent_figures, throughput
from broker.bench.fixtures import AREA, BENCH_AREA, POLICE, PROBATION, PURPOSE, pnc, sample_message
from broker.bench.measure import (
    added,
    on_broker,
    outbox_rows,
    plain,
    publish_all,
    receive_all,
)
from schemas.common import Role
from schemas.messages import RiskAssessment

SUITES = ("classic", "pq-hybrid")
# Publications per publish run at --scale 1, and the fewest at any scale.
FULL_PUBLICATIONS = 2000
LEAST_PUBLICATIONS = 10
CALLERS = 32
# Publications (and deliveries) before any timing, so that no figure carries the cost of
# a first time: connections, worker processes, caches.
WARM_UP = 5


def assessments(series: int, n: int) -> Iterator[RiskAssessment]:
    """``n`` risk assessments, each about its own subject."""
    return (sample_message(pnc=pnc(series, i)) for i in range(n))


async def bench_publish(bootstrap: str, root: Path, suite: str, n: int) -> list[Figure]:
    """The bench publish and receive scenarios of one suite (module docstring)."""
    bench = provisioned(bootstrap, root, suite, BENCH_AREA)
    deployment = bench.deployment()
    label = f"mappa {suite}"
    topics = deployment.topics
    names = topics.all_topics([AREA])
    async with deployment.running([POLICE, PROBATION], ledger=False) as running:
        police, probation = running.gateways[POLICE], running.gateways[PROBATION]
        transport = running.transport
        # Untimed: each end's first publication or delivery starts what it starts once.
        await publish_all(police, assessments(10, WARM_UP), callers=1, purpose=PURPOSE)
        await receive_all(probation, WARM_UP)
        warm = await on_broker(transport, names)
        rows = outbox_rows(police)
        one = await publish_all(police, assessments(11, n), callers=1, purpose=PURPOSE)
        first = added(warm, await on_broker(transport, names))
        many = await publish_all(police, assessments(12, n), callers=CALLERS, purpose=PURPOSE)
        records = added(warm, await on_broker(transport, names))
        second = added(first, records)
        rows = outbox_rows(police) - rows
        handled, receiving = await receive_all(probation, 2 * n)
        read = topics.for_role(AREA, Role.PROBATION)
        copies = await plain(transport, records, len(records))
        produced = baseline(
            f"{suite}: produce", copies.produce, "the publications' records", copies
        )
        # As many copies as the publications made, not only as many as the receiver
        # read: a longer read makes a reader's start and first fetch a smaller part.
        mine = [r for r in records if r.topic == read]
        copies = await plain(transport, mine, len(records))
        consumed = baseline(
            f"{suite}: consume", copies.consume, "the envelopes the receiver reads", copies
        )
    return [
        *sent_figures(label, 2 * n, records, topics, rows),
        produced,
        *throughput(f"{label}: publish, one caller", publications=n, records=len(first),
                    seconds=one, base=produced),
        *throughput(f"{label}: publish, {CALLERS} callers", publications=n, records=len(second),
                    seconds=many, base=produced),
        consumed,
        against(f"{label}: receive and deliver", 2 * n / receiving, "messages/s", consumed),
        against(f"{label}: receive and deliver", handled / receiving, "records/s", consumed,
                f"{handled:,} records handled, its own receipts read back among them"),
    ]  # fmt: skip


def publications(scale: float, full: int = FULL_PUBLICATIONS) -> int:
    """Publications per run at ``scale``."""
    return max(LEAST_PUBLICATIONS, int(full * scale))


async def run(options: BenchOptions) -> list[Figure]:
    figures: list[Figure] = []
    root = Path(options.data_dir)
    for suite in SUITES:
        figures += await bench_publish(options.bootstrap, root, suite, publications(options.scale))
        figures += await fan_out(options.bootstrap, root, suite, publications(options.scale, 1000))
    return figures
