"""The benchmark runs every section and reports every figure, consistently. It asserts
no time and no ratio's size: speed is measured by `mappa bench`, never by a test."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pytest

from broker.bench import Figure
from broker.bench.deployments import provisioned
from broker.bench.fixtures import BENCH_AREA
from broker.bench.latency import RATES, Offered, percentile
from broker.bench.latency import SUITES as LATENCY_SUITES
from broker.bench.receiving import ReceiverFailed, receiver_process
from broker.bench.transport import CALLERS, SUITES
from broker.cli.bench import SECTIONS, render, run_sections
from tests.once import once

SCALE = 0.01


def parent_of(pid: int) -> int | None:
    """The parent of process ``pid``, None if there is no such process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next(line for line in status.splitlines() if line.startswith("PPid:"))
    return int(line.split()[1])


def receivers() -> set[int]:
    """This process's child processes that run the bench's receiver."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or parent_of(int(entry.name)) != os.getpid():
            continue
        try:
            if b"broker.bench.receiver" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return found


def left_over(pids: set[int]) -> set[int]:
    """Those of ``pids`` still this process's children: running, or ended and never
    waited for (a zombie is as much a leak as a process still running)."""
    return {pid for pid in pids if parent_of(pid) == os.getpid()}


async def watched(task: asyncio.Task[list[Figure]]) -> set[int]:
    """The receivers seen while ``task`` runs."""
    seen: set[int] = set()
    while not task.done():
        seen |= receivers()
        await asyncio.sleep(0.05)
    return seen


@dataclass(frozen=True)
class Run:
    figures: list[Figure]
    receivers_seen: set[int]

    def get(self, name: str, unit: str) -> Figure:
        matches = [f for f in self.figures if (f.name, f.unit) == (name, unit)]
        assert len(matches) == 1, (name, unit, len(matches))
        return matches[0]


@pytest.fixture(scope="session")
def bench_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every section at a tiny scale, watching for receiver processes meanwhile, with the
    product's settings (the suite's own, tests/conftest.py, put aside) and its default
    worker pool: run once in this test run (``tests.once``), whichever worker asks."""

    async def run() -> Run:
        task = asyncio.create_task(run_sections(list(SECTIONS), kafka_bootstrap, scale=SCALE))
        seen = await watched(task)
        return Run(await task, seen)

    def compute() -> Run:
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("MAPPA_FETCH_MAX_WAIT_MS", raising=False)
            patch.delenv("MAPPA_SEAL_WORKERS", raising=False)
            return asyncio.run(run())

    return once(tmp_path_factory, "bench", compute)


def test_every_section_reports_its_figures(bench_run: Run) -> None:
    names = {(f.section, f.name) for f in bench_run.figures}
    for suite in ("classic", "pq-hybrid"):
        for what in ("sign (all suite signatures)", "seal", "parse + verify", "open one view"):
            assert ("crypto", f"{suite}: {what}") in names
    for what in (
        "append (SQLite, batched, + checkpoint)",
        "inclusion proof (hashes)",
        "query by subject (page of 100)",
        "verify (whole log, all checks)",
    ):
        assert ("ledger", what) in names
    for suite in SUITES:
        for label in (f"mappa {suite}", f"mappa {suite} fan-out"):
            for unit_name in ("records per publication", "outbox rows per publication"):
                assert bench_run.get(f"{label}: {unit_name}", "records").value > 0
        for what in ("one caller", f"{CALLERS} callers"):
            for unit in ("publications/s", "records/s"):
                assert bench_run.get(f"mappa {suite}: publish, {what}", unit).value > 0
        for unit in ("messages/s", "records/s"):
            assert bench_run.get(f"mappa {suite}: receive and deliver", unit).value > 0
        fan_out = f"mappa {suite} fan-out: publish, {CALLERS} callers"
        assert bench_run.get(fan_out, "publications/s").value > 0
        assert bench_run.get(fan_out, "records/s").value > 0
    rates = [f for f in bench_run.figures if f.unit.endswith("/s")]
    assert rates
    assert all(f.value > 0 for f in rates if f.section != "latency")


def test_records_per_publication_are_what_the_outbox_wrote(bench_run: Run) -> None:
    for suite in SUITES:
        for label in (f"mappa {suite}", f"mappa {suite} fan-out"):
            on_kafka = bench_run.get(f"{label}: records per publication", "records")
            outbox = bench_run.get(f"{label}: outbox rows per publication", "records")
            assert on_kafka.value == outbox.value
            # At least one envelope and one audit event each: what was counted is there.
            assert "envelopes" in on_kafka.note
            assert on_kafka.value >= 2
        bench = bench_run.get(f"mappa {suite}: records per publication", "records")
        fan_out = bench_run.get(f"mappa {suite} fan-out: records per publication", "records")
        assert fan_out.value > bench.value  # a full area gets more envelopes
        receive = f"mappa {suite}: receive and deliver"
        assert (
            bench_run.get(receive, "messages/s").value <= bench_run.get(receive, "records/s").value
        )


def test_every_pipeline_rate_carries_its_ratio_to_plain_aiokafka_of_the_same_run(
    bench_run: Run,
) -> None:
    with_ratio = [f for f in bench_run.figures if f.ratio is not None]
    for suite in SUITES:
        for name in (
            f"mappa {suite}: publish, one caller",
            f"mappa {suite}: publish, {CALLERS} callers",
            f"mappa {suite}: receive and deliver",
            f"mappa {suite} fan-out: publish, {CALLERS} callers",
        ):
            assert bench_run.get(name, "records/s") in with_ratio
        assert bench_run.get(f"mappa {suite}: receive and deliver", "messages/s") in with_ratio
    for figure in with_ratio:
        base = bench_run.get(figure.baseline, "records/s")
        assert base.name.startswith("plain aiokafka")
        assert figure.ratio == pytest.approx(figure.value / base.value)


def test_latency_reports_each_offered_rate_and_its_receiver_stopped(bench_run: Run) -> None:
    for suite in LATENCY_SUITES:
        for rate in RATES:
            label = f"mappa {suite} at {rate} msg/s"
            assert bench_run.get(f"{label}: offered", "messages/s").value == rate
            assert bench_run.get(f"{label}: published", "messages/s").value > 0
            assert bench_run.get(f"{label}: delivered", "messages/s").value >= 0
            p50 = bench_run.get(f"{label}: publish-to-deliver p50", "ms").value
            p99 = bench_run.get(f"{label}: publish-to-deliver p99", "ms").value
            assert 0 < p50 <= p99
            assert bench_run.get(f"{label}: backlog at the end", "messages").value >= 0
            assert bench_run.get(f"{label}: sustained", "yes/no").value in {0.0, 1.0}
    # A receiver ran in a process of its own, one per suite, and none is left.
    assert len(bench_run.receivers_seen) == len(LATENCY_SUITES)
    assert not left_over(bench_run.receivers_seen)


def test_the_table_and_the_json_carry_every_figure(bench_run: Run) -> None:
    table = render(bench_run.figures)
    assert table.count("\n") == len(bench_run.figures)
    assert "÷ plain" in table.splitlines()[0]
    document = json.loads(json.dumps([asdict(f) for f in bench_run.figures]))
    ratios = [d for d in document if d["ratio"] is not None]
    assert ratios
    assert all(d["baseline"] for d in ratios)


async def test_a_bench_cancelled_mid_run_leaves_no_receiver(kafka_bootstrap: str) -> None:
    task = asyncio.create_task(run_sections(["latency"], kafka_bootstrap, scale=SCALE))
    seen: set[int] = set()
    while not seen and not task.done():
        seen = receivers()
        await asyncio.sleep(0.02)
    assert seen, "the receiver never started"
    task.cancel()  # what Ctrl-C does to `mappa bench` (broker.cli.runner)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not left_over(seen)


async def test_a_receiver_that_cannot_start_is_reported_with_its_error(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    bench = provisioned(kafka_bootstrap, tmp_path, "classic", BENCH_AREA)
    with pytest.raises(ReceiverFailed, match="did not start") as err:
        async with receiver_process(bench, "nobody.bench"):
            pass
    assert "nobody.bench" in str(err.value)  # its own error line, quoted
    assert bench.passphrase.decode() not in str(err.value)
    assert not receivers()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


# An offer of 100 msg/s for 10 s that kept up.
KEPT = Offered(
    rate=100,
    seconds=10.0,
    published=1000,
    publishing_seconds=10.0,
    delivered_in_offer=998,
    latencies_ms=[5.0] * 1000,
    undelivered=0,
)


def test_an_offer_is_sustained_only_if_delivery_kept_up() -> None:
    assert KEPT.sustained
    # A backlog of more than a quarter second of the load at the end: the queue grew.
    grew = replace(KEPT, delivered_in_offer=1000 - 26)
    assert grew.backlog == 26
    assert not grew.sustained
    # One never delivered.
    assert not replace(KEPT, undelivered=1).sustained
    # Too short an offer to have delivered 90% of the rate within it.
    assert not replace(KEPT, seconds=0.1, published=10, delivered_in_offer=8).sustained
