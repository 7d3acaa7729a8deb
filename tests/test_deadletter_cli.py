"""`mappa deadletter list|retry`: a refusal whose cause has passed, processed again.

Probation's clock here runs ten minutes slow: it refuses the police's envelopes as
dated ahead of it (``envelope.clock-skew``), keeps the records and tells the police by
its receipts. Once its clock is right, a retry takes them: delivered, audited under
the person who asked, and receipted, so the police's sending state turns delivered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.deployment import Deployment, offset_clock
from broker.gateway.handled import Handling
from broker.gateway.tracking import DELIVERED, REFUSED
from tests.brokers import Broker
from tests.support import PARTIES, POLICE, PROBATION, SPECS, World, build_world, risk_assessment

# How far behind the receiver's clock runs: twice the tolerance for skew (300 s).
SLOW = 600


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@dataclass
class Skewed:
    """The world's agencies, but probation runs in a deployment of its own whose clock
    is ``SLOW`` seconds behind (the same data directory, broker and namespace)."""

    world: World
    probation: World

    async def pump(self, until: Callable[[], bool], *, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not until():
            assert time.monotonic() < deadline, {**self.world.handled, **self.probation.handled}
            await self.world.pump_quiet(1)
            await self.probation.pump_quiet(1)


@pytest.fixture
async def skewed(tmp_path: Path, world_broker: Broker) -> AsyncIterator[Skewed]:
    agencies = [s.agency_id for s in SPECS if s.agency_id != PROBATION]
    world = await build_world(tmp_path, world_broker, serving=agencies)
    d = world.deployment
    slow = Deployment(
        settings=d.settings,
        passphrase=world.passphrase,
        agreements=list({a.id: a for a in d.agreements.values()}.values()),
        clock=offset_clock(-SLOW),
    )
    stack = AsyncExitStack()
    running = await stack.enter_async_context(slow.running([PROBATION], ledger=False))
    probation = World(slow, running, world.passphrase, stack)
    for w in (world, probation):
        w.seed_case_team(PARTIES)
    try:
        yield Skewed(world, probation)
    finally:
        await probation.close()
        await world.close()


async def refused_for_skew(skewed: Skewed) -> str:
    """A risk assessment from the police, taken by prison and refused by probation as
    dated ahead of its (slow) clock; returns its message id once the police know."""
    police = skewed.world.gw(POLICE)
    result = await police.publish(risk_assessment(), purpose="risk management")
    tracking = police.ctx.store.tracking
    await skewed.pump(
        lambda: (
            (row := tracking.get(result.message_id, PROBATION)) is not None and row.state == REFUSED
        )
    )
    [refusal] = skewed.probation.of(PROBATION, Handling.REFUSED)
    assert refusal.reason_code == "envelope.clock-skew"
    return result.message_id


async def retries_logged(skewed: Skewed, count: int) -> list[dict[str, object]]:
    """The ledger's ``retry`` entries, once it holds ``count`` of them (the running
    gateway sends what the retry queued; the ledger is polled alongside)."""

    ledger = skewed.world.ledger

    def logged() -> list[dict[str, object]]:
        return ledger.store.entries(operation="retry")

    deadline = time.monotonic() + 20
    while len(logged()) < count:
        assert time.monotonic() < deadline, logged()
        await skewed.pump(lambda: True)
        await skewed.probation.pump_quiet(1)
        await ledger.poll_once(timeout_ms=30)
    return logged()


@pytest.fixture
def cli_env(skewed: Skewed, monkeypatch: pytest.MonkeyPatch) -> str:
    d = skewed.world.deployment
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", skewed.world.passphrase.decode())
    monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", d.topics.namespace)
    return str(d.settings.data_dir)


async def test_refused_for_skew_is_listed_then_delivered_by_a_retry(
    skewed: Skewed, cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = await refused_for_skew(skewed)
    store = skewed.probation.gw(PROBATION).ctx.store
    [kept] = store.deadletters.pending()
    assert kept.reason_code == "envelope.clock-skew"

    code, out, _ = await run(capsys, "deadletter", "--data-dir", cli_env, "list", "--as", PROBATION)
    assert code == 0
    head, row_line = out.splitlines()
    assert head.split() == ["id", "reason_code", "refused_at", "outcome", "record"]
    assert row_line.split()[:2] == [str(kept.id), "envelope.clock-skew"]
    assert row_line.split()[3] == "open"
    code, out, _ = await run(
        capsys, "deadletter", "--data-dir", cli_env, "list", "--as", PROBATION, "--json"
    )
    [row] = json.loads(out)
    assert (row["id"], row["reason_code"], row["outcome"]) == (
        kept.id, "envelope.clock-skew", "open"
    )  # fmt: skip

    # Its clock fixed (the command runs on the system's clock), the agency retries.
    code, out, err = await run(
        capsys,
        *("deadletter", "--data-dir", cli_env, "retry", "--as", PROBATION),
        *("--all", "--user", "igo.retry"),
    )
    assert code == 0, err
    assert out.strip() == f"dead letter {kept.id}: delivered"
    assert [i.message_id for i in store.inbox()] == [message_id]
    assert store.deadletters.pending() == []
    settled = store.deadletters.get(kept.id)
    assert settled is not None
    assert settled.outcome == "delivered"

    # The running gateway sends what the retry queued: its receipt turns the sender's
    # row delivered, and the ledger logs the retry under the person who asked.
    tracking = skewed.world.gw(POLICE).ctx.store.tracking
    await skewed.pump(
        lambda: (row := tracking.get(message_id, PROBATION)) is not None and row.state == DELIVERED
    )
    retries = await retries_logged(skewed, 1)
    assert [(e["act"], e["outcome"], e["user"], e["message_id"]) for e in retries] == [
        ("collection", "ok", "igo.retry", message_id)
    ]

    # A settled dead letter is not retried twice.
    code, _, err = await run(
        capsys,
        *("deadletter", "--data-dir", cli_env, "retry", "--as", PROBATION, str(kept.id)),
        *("--user", "igo.retry"),
    )
    assert code == 1
    assert err.strip() == (
        f"mappa: config.invalid: dead letter {kept.id} was settled already (delivered)"
    )
    assert len(store.inbox()) == 1


async def test_a_retry_whose_cause_holds_is_refused_again_and_stays_open(
    skewed: Skewed,
    cli_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await refused_for_skew(skewed)
    store = skewed.probation.gw(PROBATION).ctx.store
    [kept] = store.deadletters.pending()
    monkeypatch.setenv("MAPPA_CLOCK_OFFSET_SECONDS", str(-SLOW))  # still slow
    code, out, _ = await run(
        capsys,
        *("deadletter", "--data-dir", cli_env, "retry", "--as", PROBATION, str(kept.id)),
        *("--user", "igo.retry"),
    )
    assert code == 1
    assert out.strip() == f"dead letter {kept.id}: refused:envelope.clock-skew"
    assert [d.id for d in store.deadletters.pending()] == [kept.id]
    assert store.inbox() == []
    retries = await retries_logged(skewed, 1)
    assert [(e["act"], e["outcome"], e["reason_code"]) for e in retries] == [
        ("refusal", "refused", "envelope.clock-skew")
    ]


async def test_retry_of_an_unknown_dead_letter_is_one_line(
    skewed: Skewed, cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run(
        capsys,
        *("deadletter", "--data-dir", cli_env, "retry", "--as", PROBATION, "41"),
        *("--user", "igo.retry"),
    )
    assert code == 1
    assert err.strip() == f"mappa: config.invalid: {PROBATION} keeps no dead letter 41"
    code, out, _ = await run(capsys, "deadletter", "--data-dir", cli_env, "list", "--as", PROBATION)
    assert out.strip() == f"{PROBATION} keeps no open dead letters"
