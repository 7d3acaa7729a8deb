"""The ledger watching itself (``broker/ledger/watch.py``, ``self_watch.py``): before each
checkpoint it proves the new head from its stored data, and on a failure refuses to sign,
raises a durable alarm and halts; proofs and queries it cannot vouch for are refused; the
scheduled verify raises the same alarm. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.api.backend import ApiBackend
from broker.api.credentials import CredentialStore
from broker.api.health import readiness
from broker.errors import MappaError
from broker.gateway.audit import sign_event
from broker.ledger.alarms import Alarm
from broker.ledger.self_watch import SelfWatch
from broker.ledger.service import LedgerService
from broker.ledger.store import Item, LedgerStore
from broker.ledger.watch import LedgerWatch
from broker.observe.metrics import Metrics, ObservedParts
from schemas.audit import AuditAct
from tests.ledger_world import LedgerWorld, build_ledger_world, ledger_url, rewrite_block
from tests.support import HOUSING, POLICE, PRISON
from tests.test_ledger import _forged, populate

__all__ = ["ledger_url"]


@pytest.fixture
def world(tmp_path: Path, ledger_url: str | None) -> Iterator[LedgerWorld]:
    w = build_ledger_world(tmp_path / "data", ledger_url)
    try:
        yield w
    finally:
        w.close()


def _next_batch(w: LedgerWorld, n: int = 2) -> int:
    return w.feed(*(w.event(PRISON, AuditAct.COLLECTION) for _ in range(n)))


def _sizes(store: LedgerStore) -> list[int]:
    return [size for size, _, _ in store.checkpoints()]


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(MappaError) as caught:
        call()
    return caught.value.code


def _edit_entry(store: LedgerStore, w: LedgerWorld) -> None:
    rewrite_block(store, 4, lambda e: [e[0], _forged(w), *e[2:]])


def _edit_entry_and_hash(store: LedgerStore, w: LedgerWorld) -> None:
    rewrite_block(store, 4, lambda e: [e[0], _forged(w), *e[2:]], recompute_leaves=True)


def _delete_block(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute("DELETE FROM blocks WHERE first_seq = 4")


def _edit_recorded_leaf(store: LedgerStore, w: LedgerWorld) -> None:
    [(recorded,)] = store.tamper_db.execute("SELECT leaves FROM blocks WHERE first_seq = 8")
    forged = bytes(recorded)[:32] + bytes(32) + bytes(recorded)[64:]
    store.tamper_db.execute("UPDATE blocks SET leaves = ? WHERE first_seq = 8", (forged,))


def _forge_latest_checkpoint(store: LedgerStore, w: LedgerWorld) -> None:
    [(note,)] = store.tamper_db.execute("SELECT note FROM checkpoints WHERE size = 12")
    lines = note.split("\n")
    lines[2] = "A" * 43 + "="
    store.tamper_db.execute("UPDATE checkpoints SET note = ? WHERE size = 12", ("\n".join(lines),))


# How the stored data was changed, the first entry the alarm names, and what it says.
TAMPERING = {
    "entry-edited": (_edit_entry, 5, "entry 5 is not the entry appended"),
    "entry-and-hash-rewritten": (_edit_entry_and_hash, None, "the stored tree at size 12 is"),
    "block-deleted": (_delete_block, 4, "entry 4 is missing or altered"),
    "recorded-leaf-edited": (_edit_recorded_leaf, 9, "entry 9 is missing or altered"),
    "latest-checkpoint-forged": (_forge_latest_checkpoint, None, "the latest checkpoint"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_a_tampered_ledger_signs_nothing_more_and_halts(world: LedgerWorld, kind: str) -> None:
    populate(world)
    tamper, first_bad, problem = TAMPERING[kind]
    tamper(world.service.store, world)
    store = world.service.store

    assert _code(lambda: _next_batch(world)) == "ledger.halted"
    assert _sizes(store) == [4, 8, 12]  # no checkpoint over the altered log
    [alarm] = store.alarms.all()
    assert (alarm.kind, alarm.first_bad_entry) == ("watch", first_bad)
    assert problem in alarm.problem
    assert world.service.watch is not None
    assert world.service.watch.halted == alarm
    # Halted: the next batch is refused before anything is read into the ledger.
    size = store.size()
    assert _code(lambda: _next_batch(world)) == "ledger.halted"
    assert store.size() == size
    assert world.reader.alarms() == [alarm.to_json()]


def test_the_halt_outlives_a_restart_and_refuses_what_it_cannot_vouch_for(
    world: LedgerWorld,
) -> None:
    populate(world)
    _edit_entry(world.service.store, world)
    with pytest.raises(MappaError):
        _next_batch(world)
    store = world.service.store
    # A new service on the same database (a restart) starts halted.
    again = world.deployment.ledger(world.service._transport)
    assert again.watch is not None
    assert again.watch.halted is not None
    assert _code(lambda: again.handle_batch([])) == "ledger.halted"
    assert _code(lambda: again.handle(world.record(b"{}"))) == "ledger.halted"
    assert store.rejected_count() == 0  # not even refused: nothing was touched

    reader = world.reader
    assert reader.proof(4)["seq"] == 4  # before the first bad entry: vouched for
    assert _code(lambda: reader.proof(5)) == "ledger.unvouched"
    assert _code(lambda: reader.proof(11)) == "ledger.unvouched"
    assert [r["seq"] for r in reader.query({"agency": POLICE})["entries"]] == [0, 1, 2, 3]
    assert _code(lambda: reader.query({"agency": HOUSING})) == "ledger.unvouched"
    assert _code(lambda: reader.export({"agency": HOUSING}, "json")) == "ledger.unvouched"
    assert store.alarms.open() is not None


def test_a_proof_of_an_edited_entry_is_refused_before_any_alarm(world: LedgerWorld) -> None:
    populate(world)
    _edit_entry(world.service.store, world)
    assert world.service.store.alarms.all() == []
    assert _code(lambda: world.reader.proof(5)) == "ledger.unvouched"
    assert world.reader.proof(6)["seq"] == 6


def test_an_entry_changed_before_its_first_checkpoint_is_caught(world: LedgerWorld) -> None:
    populate(world)
    store = world.service.store
    # Appended, not yet signed; then rewritten with its recorded hash, as someone with
    # write access between the append and the checkpoint would.
    events = [world.event(PRISON, AuditAct.COLLECTION) for _ in range(3)]
    signed = [sign_event(e, world.keys[e.agency]) for e in events]
    items: list[Item] = [(s, s.model_dump_json().encode(), None) for s in signed]
    assert store.append_batch(items) == 3
    rewrite_block(store, 12, lambda e: [e[0], _forged(world), e[2]], recompute_leaves=True)
    assert _code(world.service.checkpoint) == "ledger.halted"
    assert _sizes(store) == [4, 8, 12]
    [alarm] = store.alarms.all()
    assert alarm.first_bad_entry == 12
    assert "the tree head the ledger holds at size 15" in alarm.problem


def test_an_older_entry_is_caught_within_a_bounded_number_of_checkpoints(
    world: LedgerWorld,
) -> None:
    service = world.service
    assert service.watch is not None
    service.watch.watch = LedgerWatch(service.store, slice=16)
    for _ in range(5):
        _next_batch(world, 16)  # checkpoints 16, 32, ..., 80
    # Entry 3 and its recorded hash rewritten: only its slice's stored node still says.
    rewrite_block(
        service.store, 0, lambda e: [*e[:3], _forged(world), *e[4:]], recompute_leaves=True
    )
    batches = 0
    while service.watch.halted is None:
        assert batches <= 80 // 16, "the slices went round without finding it"
        with contextlib.suppress(MappaError):
            _next_batch(world, 1)
        batches += 1
    assert service.watch.halted.first_bad_entry == 0
    assert "entries 0 to 15" in service.watch.halted.problem


def test_a_watch_slice_must_be_a_power_of_two_of_a_window(world: LedgerWorld) -> None:
    for bad in (8, 24, 0):
        with pytest.raises(ValueError, match="power of two"):
            LedgerWatch(world.service.store, slice=bad)


def test_the_scheduled_verify_raises_the_alarm_and_tells_its_progress(world: LedgerWorld) -> None:
    populate(world)
    watch = world.service.watch
    assert watch is not None
    assert watch.verify(workers=1).intact
    assert watch.status.verify.completed == 1
    assert watch.status.verify.hashed == watch.status.verify.total == 12
    assert watch.halted is None
    # What the watch does not look at (the search index) the scheduled verify finds.
    world.service.store.tamper_db.execute("DELETE FROM postings WHERE first_seq = 4")
    report = watch.verify(workers=1)
    assert not report.intact
    assert watch.status.verify.tampered == 1
    assert watch.halted is not None
    assert (watch.halted.kind, watch.halted.first_bad_entry) == ("verify", 4)
    assert _code(lambda: _next_batch(world)) == "ledger.halted"


def test_a_start_lifts_the_halt_only_once_the_ledger_verifies_intact(world: LedgerWorld) -> None:
    populate(world)
    store = world.service.store
    [saved] = store.tamper_db.execute("SELECT ends, leaves, data FROM blocks WHERE first_seq = 4")
    _edit_entry(store, world)
    with pytest.raises(MappaError):
        _next_batch(world)
    watch = world.service.watch
    assert watch is not None
    assert not watch.resume_if_intact()  # still tampered: still halted
    assert watch.halted is not None
    # Restored (from a backup, say): the next start verifies it and runs again.
    store.tamper_db.execute(
        "UPDATE blocks SET ends = ?, leaves = ?, data = ? WHERE first_seq = 4", tuple(saved)
    )
    assert watch.resume_if_intact()
    assert watch.halted is None
    assert [a.kind for a in store.alarms.all()] == ["watch", "cleared"]
    assert store.alarms.open() is None
    assert world.reader.proof(5)["seq"] == 5
    assert _next_batch(world) == 2
    assert _sizes(store)[-1] == store.size()


async def test_a_halted_service_reads_nothing(world: LedgerWorld) -> None:
    populate(world)
    _edit_entry(world.service.store, world)
    with pytest.raises(MappaError):
        _next_batch(world)
    service: LedgerService = world.service
    offsets = service.store.offsets()
    # Halted, a poll reads no record (not even before start) and moves no offset.
    assert await service.poll_once(timeout_ms=10) == 0
    assert service.store.offsets() == offsets


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
async def test_the_halt_and_the_scheduled_verify_in_metrics_and_readiness(
    world: LedgerWorld,
) -> None:
    populate(world)
    watch = world.service.watch
    assert watch is not None
    metrics = Metrics(lambda: ObservedParts(ledger=world.reader))
    backend = ApiBackend(agencies={}, credentials=cast(CredentialStore, None), ledger=world.reader)

    def figure(text: str, name: str, **labels: str) -> float:
        return next(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == name and s.labels == labels
        )

    text = (await metrics.scrape()).decode()
    assert figure(text, "mappa_ledger_halted") == 0
    assert figure(text, "mappa_ledger_scheduled_verifies_total", outcome="intact") == 0
    assert (await readiness(backend)).ledger.state == "unavailable"  # no broker here

    assert watch.verify(workers=1).intact
    text = (await metrics.scrape()).decode()
    assert figure(text, "mappa_ledger_scheduled_verifies_total", outcome="intact") == 1
    assert figure(text, "mappa_ledger_scheduled_verify_hashed_entries") == 12
    assert figure(text, "mappa_ledger_scheduled_verify_entries") == 12
    assert figure(text, "mappa_ledger_scheduled_verify_running") == 0
    assert figure(text, "mappa_ledger_scheduled_verify_last_completed_timestamp_seconds") > 0

    _edit_entry(world.service.store, world)
    with pytest.raises(MappaError):
        _next_batch(world)
    text = (await metrics.scrape()).decode()
    assert figure(text, "mappa_ledger_halted") == 1
    health = (await readiness(backend)).ledger
    assert (health.state, health.reason_code) == ("halted", "ledger.halted")


async def _until(condition: Callable[[], bool], within: float = 60.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
async def test_the_verify_runs_on_its_schedule_and_halts_a_tampered_ledger(
    world: LedgerWorld,
) -> None:
    populate(world)
    service = world.service
    watch = service.watch
    assert watch is not None
    service._verify_every = 0.05
    task = asyncio.create_task(service._verify_on_schedule(watch))
    try:
        await _until(lambda: watch.status.verify.completed >= 1)
        assert watch.halted is None
        world.service.store.tamper_db.execute("DELETE FROM postings WHERE first_seq = 8")
        await _until(lambda: watch.halted is not None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    alarm = store_alarm(watch)
    assert (alarm.kind, alarm.first_bad_entry) == ("verify", 8)


def store_alarm(watch: SelfWatch) -> Alarm:
    assert watch.halted is not None
    return watch.halted


def test_a_malformed_block_before_its_first_checkpoint_is_caught(world: LedgerWorld) -> None:
    populate(world)
    store = world.service.store
    events = [world.event(PRISON, AuditAct.COLLECTION) for _ in range(3)]
    signed = [sign_event(e, world.keys[e.agency]) for e in events]
    assert store.append_batch([(s, s.model_dump_json().encode(), None) for s in signed]) == 3
    rewrite_block(store, 12, lambda e: [e[0], e[2]])  # one cut out, its recorded hash kept
    assert _code(world.service.checkpoint) == "ledger.halted"
    [alarm] = store.alarms.all()
    assert alarm.first_bad_entry == 12
    assert "malformed" in alarm.problem
