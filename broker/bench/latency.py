"""Publish-to-deliver latency under a steady offered load, the receiver in a process of
its own.

For each suite, a deployment of the bench area (``fixtures.BENCH_AREA``): police
publishes from this process; probation's gateway runs in ``broker.bench.receiver``, a
separate process, so that receiving does not share publishing's core. Default settings
throughout: the consumer's fetch wait is whatever the product ships with.

After a warm-up, each rate of ``RATES`` is offered for ``FULL_SECONDS`` (scaled by
``--scale``) on a fixed schedule: one publication due every 1/rate s, each started on
time as a task of its own whether or not the earlier ones have returned (an open loop,
as independent callers would be). A message's latency runs from when it was due to when
the receiver delivered it (durable in its inbox): a publisher that falls behind its
schedule counts against it. For each rate: offered, published/s, delivered/s (delivered
by the time the offer's last publication was due, over the offer's length), p50 and p99
publish-to-deliver, the backlog then (due but not yet delivered, published or not) and
whether the load was sustained.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.bench import BenchOptions, Figure
from broker.bench.deployments import provisioned
from broker.bench.fixtures import BENCH_AREA, POLICE, PROBATION, PURPOSE, pnc, sample_message
from broker.bench.measure import BenchStalled
from broker.bench.receiving import Deliveries, delivered, receiver_process
from broker.gateway import AgencyGateway

SECTION = "latency"
SUITES = ("classic", "pq-hybrid")
RATES = (100, 250, 500)
# Each rate is offered this long at --scale 1, and at least LEAST_SECONDS at any scale.
FULL_SECONDS = 10.0
LEAST_SECONDS = 0.1
# Publications sent and delivered one by one before any rate: connections made, caches
# filled, the receiver proved to deliver.
WARM_UP = 5
WARM_UP_SECONDS = 30.0
# Sustained means, at the end of the offer, at most this much of the load is still
# undelivered, and all of it arrives afterwards: a pipeline that keeps up holds about
# rate x latency (the 150 ms p99 target at 500 msg/s is 75 messages); one that does
# not holds seconds of it, growing.
BACKLOG_SECONDS = 0.25
# And delivered at least this share of the offered rate during the offer (which only a
# short offer, as at a tiny --scale, can fail once the backlog test passes).
KEPT_UP = 0.9
# How long undelivered messages are waited for after an offer: at least this, or as
# long as the offer lasted.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Offered:
    """What one rate's offer measured."""

    rate: int
    seconds: float
    published: int
    publishing_seconds: float
    delivered_in_offer: int
    # Milliseconds from due to delivered, of each delivered message, sorted.
    latencies_ms: Sequence[float]
    undelivered: int

    @property
    def backlog(self) -> int:
        """Due by the end of the offer but not delivered by then (published or not)."""
        return round(self.rate * self.seconds) - self.delivered_in_offer

    @property
    def delivered_per_second(self) -> float:
        return self.delivered_in_offer / self.seconds

    @property
    def sustained(self) -> bool:
        return (
            self.undelivered == 0
            and self.backlog <= self.rate * BACKLOG_SECONDS
            and self.delivered_per_second >= KEPT_UP * self.rate
        )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``sorted_values``."""
    if not sorted_values:
        raise ValueError("no values")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def warm_up(police: AgencyGateway, deliveries: Deliveries) -> None:
    """Publish ``WARM_UP`` messages one by one, each delivered before the next."""
    for i in range(WARM_UP):
        result = await police.publish(sample_message(pnc=pnc(30, i)), purpose=PURPOSE)
        if not await delivered(deliveries, {result.message_id}, within=WARM_UP_SECONDS):
            raise BenchStalled(f"the receiver did not deliver within {WARM_UP_SECONDS:g} s")


async def offer(
    police: AgencyGateway, deliveries: Deliveries, *, rate: int, seconds: float, series: int
) -> Offered:
    """Offer ``rate`` publications a second for ``seconds`` (module docstring)."""
    n = max(1, round(rate * seconds))
    loop = asyncio.get_running_loop()
    due_ns: dict[str, int] = {}
    returned: list[float] = []

    async def publish(i: int, due: int) -> None:
        result = await police.publish(sample_message(pnc=pnc(series, i)), purpose=PURPOSE)
        due_ns[result.message_id] = due
        returned.append(loop.time())

    start, start_ns = loop.time(), time.time_ns()
    # When the last publication of the offer was due: deliveries are counted up to
    # then, on the receiver's clock (the same system clock), however late this loop
    # runs when it is busy.
    end_ns = start_ns + n * 1_000_000_000 // rate
    async with asyncio.TaskGroup() as publications:
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            publications.create_task(publish(i, start_ns + i * 1_000_000_000 // rate))
    await delivered(deliveries, set(due_ns), within=max(DRAIN_SECONDS, seconds))
    got = {m: deliveries.at[m] for m in due_ns if m in deliveries.at}
    if not got:
        raise BenchStalled(f"nothing offered at {rate} msg/s was delivered")
    return Offered(
        rate=rate,
        seconds=n / rate,
        published=n,
        publishing_seconds=max(returned) - start,
        delivered_in_offer=sum(ns <= end_ns for ns in got.values()),
        latencies_ms=sorted((ns - due_ns[m]) / 1e6 for m, ns in got.items()),
        undelivered=n - len(got),
    )


def figures(suite: str, o: Offered) -> list[Figure]:
    """The figures of one rate's offer."""
    label = f"mappa {suite} at {o.rate} msg/s"
    p99_note = f"{len(o.latencies_ms):,} delivered, each timed from when it was due"
    if o.undelivered:
        p99_note += f"; {o.undelivered:,} not delivered when the wait after it ended"
    verdict = "kept up" if o.sustained else "fell behind"
    return [
        Figure(SECTION, f"{label}: offered", o.rate, "messages/s",
               f"{o.published:,} over {o.seconds:g} s, open loop"),
        Figure(SECTION, f"{label}: published", o.published / o.publishing_seconds, "messages/s"),
        Figure(SECTION, f"{label}: delivered", o.delivered_per_second, "messages/s",
               "delivered by the time the last was due, over the offer's length"),
        Figure(SECTION, f"{label}: publish-to-deliver p50", percentile(o.latencies_ms, 0.5),
               "ms"),
        Figure(SECTION, f"{label}: publish-to-deliver p99", percentile(o.latencies_ms, 0.99),
               "ms", p99_note),
        Figure(SECTION, f"{label}: backlog at the end", o.backlog, "messages",
               f"{1000 * o.backlog / o.rate:,.0f} ms of the load"),
        Figure(SECTION, f"{label}: sustained", float(o.sustained), "yes/no",
               f"{verdict} (needs {KEPT_UP:.0%} of the rate delivered during the offer, a "
               f"backlog of at most {BACKLOG_SECONDS:g} s of the load, all delivered)"),
    ]  # fmt: skip


async def suite_latency(bootstrap: str, root: Path, suite: str, seconds: float) -> list[Figure]:
    """Every rate, for one suite."""
    bench = provisioned(bootstrap, root, suite, BENCH_AREA)
    deployment = bench.deployment()
    out: list[Figure] = []
    async with (
        deployment.running([POLICE], ledger=False) as running,
        receiver_process(bench, PROBATION) as deliveries,
    ):
        police = running.gateways[POLICE]
        await warm_up(police, deliveries)
        for series, rate in enumerate(RATES, start=31):
            offered = await offer(police, deliveries, rate=rate, seconds=seconds, series=series)
            out += figures(suite, offered)
    return out


async def run(options: BenchOptions) -> list[Figure]:
    seconds = max(LEAST_SECONDS, FULL_SECONDS * options.scale)
    out: list[Figure] = []
    for suite in SUITES:
        out += await suite_latency(options.bootstrap, Path(options.data_dir), suite, seconds)
    return out
