"""Witness drills (marker ``drill``), on a real ledger store (SQLite, and PostgreSQL where
there is one) with the deployment's own witnesses: the Responsible Authority agencies',
under the default governance-signed policy (2 of 3).

- ``rewrite``: an operator rewrites an entry and re-signs every later checkpoint with the
  ledger key (a thorough one: the cosignatures wiped too, so the ledger even asks from
  scratch); every witness refuses the next checkpoint and raises its alarm.
- ``rollback``: the ledger restored to an older, consistent log (a backup) goes on
  appending; every witness refuses its next checkpoint as a rollback.
- ``catch-up``: a witness down for several checkpoints is asked, when it is back, from
  its own size with one consistency proof, and cosigns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from broker.kafka.transport import KafkaTransport
from broker.ledger.service import LedgerService
from broker.ledger.verify_proofs import verify_witnessed
from broker.ledger.witnessing import WitnessClient
from broker.witness.protocol import InProcessClient
from broker.witness.witness import Witness
from schemas.audit import AuditEvent, Outcome
from tests.ledger_world import LedgerWorld, build_ledger_world, ledger_url
from tests.support import POLICE, PRISON, PROBATION

__all__ = ["ledger_url"]  # the fixture, used by name
pytestmark = pytest.mark.drill

# Tables an operator with write access empties to rebuild the log as they like it.
LOG_TABLES = ("blocks", "nodes", "batches", "postings", "event_ids", "checkpoints", "cosignatures")


@pytest.fixture
def world(tmp_path: Path, ledger_url: str | None) -> Iterator[LedgerWorld]:
    made = build_ledger_world(tmp_path / "data", ledger_url)
    yield made
    made.close()


def witnesses(world: LedgerWorld) -> dict[str, Witness]:
    assert len(world.deployment.witnesses) == 3
    return world.deployment.witnesses


def latest_witnessed(world: LedgerWorld) -> tuple[int, tuple[str, ...]]:
    """The latest checkpoint's size and who cosigned it, by the standalone verifier."""
    service = world.service
    assert service.witnessing is not None
    size, _, note = service.store.latest_checkpoint()  # type: ignore[misc]
    full = service.witnessing.witnessed_note(size, note)
    checkpoint, signers = verify_witnessed(full, service.witnessing.policy.rules)
    return checkpoint.size, signers


def batches(world: LedgerWorld, count: int) -> list[list[AuditEvent]]:
    fed = []
    for i in range(count):
        events = [world.event((POLICE, PROBATION, PRISON)[i % 3]) for _ in range(3)]
        assert world.feed(*events) == 3
        fed.append(events)
    return fed


def rebuild(world: LedgerWorld, fed: Sequence[Sequence[AuditEvent]]) -> LedgerService:
    """The operator's rebuild: every log table emptied, the batches appended again by a
    ledger service of their own (same key: each checkpoint of the same size re-signed),
    without asking the witnesses; returns the service, witnesses asked again from now."""
    db = world.service.store.tamper_db
    for table in LOG_TABLES:
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names
    service = world.deployment.ledger(
        KafkaTransport(world.deployment.settings, bootstrap="127.0.0.1:9")
    )
    gathering, service.witnessing = service.witnessing, None
    for events in fed:
        assert service.handle_batch([world.record(world.signed(e)) for e in events]) == len(events)
    service.witnessing = gathering
    world.service = service
    return service


def said(request: pytest.FixtureRequest, line: str) -> None:
    """Print the drill's line and hand it to the run's summary (as tests/test_drills.py)."""
    dialect = request.getfixturevalue("world").service.store.dialect
    line = line.replace(":", f" ({dialect}):", 1)
    print(line)
    request.node.user_properties.append(("drill", line))


def refusals(world: LedgerWorld) -> str:
    codes = sorted({a["code"] for w in witnesses(world).values() for a in w.store.alarms()})
    count = sum(1 for w in witnesses(world).values() if w.store.alarms())
    return f"{count} of {len(witnesses(world))} witnesses refused ({', '.join(codes)})"


def test_drill_rewrite_and_resign_is_caught_by_every_witness(
    world: LedgerWorld, request: pytest.FixtureRequest
) -> None:
    fed = batches(world, 4)
    assert latest_witnessed(world) == (12, tuple(sorted(witnesses(world))))
    # Entry 4 rewritten (its outcome changed, signed again with the agency's key as a
    # whole forged event would be), every later checkpoint re-signed with the ledger key.
    forged = [list(b) for b in fed]
    forged[1][1] = forged[1][1].model_copy(update={"outcome": Outcome.REFUSED})
    service = rebuild(world, forged)
    assert service.store.latest_checkpoint()[0] == 12  # type: ignore[index]
    world.service = service
    assert world.feed(world.event(POLICE)) == 1
    assert service.store.cosignatures.at(13) == {}
    for witness in witnesses(world).values():
        alarms = witness.store.alarms()
        assert [(a["code"], a["size"], a["own_size"]) for a in alarms] == [
            ("witness.inconsistent", 13, 12)
        ]
        latest = witness.latest()
        assert latest is not None
        assert latest.size == 12  # still the honest checkpoint it cosigned
    said(request, f"drill witness-rewrite: {refusals(world)}; checkpoint 13 not witnessed")


def test_drill_rollback_to_an_older_consistent_log_is_refused(
    world: LedgerWorld, request: pytest.FixtureRequest
) -> None:
    fed = batches(world, 4)
    # A backup taken at 6 entries restored: the same first two batches, consistent.
    service = rebuild(world, fed[:2])
    assert service.store.latest_checkpoint()[0] == 6  # type: ignore[index]
    assert world.feed(world.event(PROBATION)) == 1
    assert service.store.cosignatures.at(7) == {}
    for witness in witnesses(world).values():
        assert [(a["code"], a["size"], a["own_size"]) for a in witness.store.alarms()] == [
            ("witness.rollback", 7, 12)
        ]
    said(request, f"drill witness-rollback: {refusals(world)}; checkpoint 7 not witnessed")


class Flaky:
    """A witness that can be down (unreachable), counting the requests that reach it."""

    def __init__(self, witness: Witness) -> None:
        self.client = InProcessClient(witness)
        self.down = False
        self.reached: list[tuple[int, int]] = []

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        if self.down:
            raise ConnectionError("witness down")
        self.reached.append((old_size, len(proof)))
        return self.client.add_checkpoint(old_size, proof, note)


def test_drill_a_witness_down_catches_up_with_one_proof(
    world: LedgerWorld, request: pytest.FixtureRequest
) -> None:
    named = witnesses(world)
    police = next(n for n in named if n.endswith(POLICE))
    flaky = Flaky(named[police])
    clients: dict[str, WitnessClient] = {n: InProcessClient(w) for n, w in named.items()}
    clients[police] = flaky
    service = world.service
    assert service.witnessing is not None
    service.witnessing = type(service.witnessing)(
        log_=service.store, policy=service.witnessing.policy, clients=clients
    )
    batches(world, 1)
    flaky.down = True
    batches(world, 4)  # four checkpoints while it is down: still 2 of 3, witnessed
    size, signers = latest_witnessed(world)
    assert size == 15
    assert police not in signers
    assert len(signers) == 2
    flaky.down = False
    batches(world, 1)
    assert flaky.reached[-1][0] == 3  # asked from its own size, in one request
    assert len(flaky.reached) == 2
    assert flaky.reached[-1][1] > 0
    assert latest_witnessed(world) == (18, tuple(sorted(named)))
    assert named[police].store.alarms() == []
    said(
        request,
        f"drill witness-catch-up: down for 4 checkpoints, back from size 3 to 18 in one "
        f"request of {flaky.reached[-1][1]} proof hashes; 3 of 3 cosigned",
    )
