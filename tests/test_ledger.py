"""The audit ledger on SQLite and PostgreSQL: append, checkpoints, queries, proofs, exports,
refused records, and `verify` catching every kind of tampering."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.crypto.keys import PrivateKey
from broker.errors import ConfigurationError, MappaError, StoreUnavailable
from broker.gateway.audit import sign_event, time_ordered_id
from broker.ledger import integrity, search
from broker.ledger.database import connect
from broker.ledger.integrity import IntegrityReport, hashing, verify_ledger
from broker.ledger.query import QueryError, parse_query
from broker.ledger.search import posting_key
from broker.ledger.store import LedgerStore
from broker.ledger.verify_proofs import (
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from broker.ledger.verify_worker import ChunkResult, Job, result_from_json, result_to_json
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import ViewKind
from schemas.directory import KeyAlg
from tests.ledger_world import (
    LedgerWorld,
    build_ledger_world,
    ledger_url,
    postgres_url,
    renumber_blocks,
    rewrite_block,
)
from tests.support import HOUSING, PNC, POLICE, PRISON, PROBATION

__all__ = ["ledger_url"]


@pytest.fixture
def world(tmp_path: Path, ledger_url: str | None) -> Iterator[LedgerWorld]:
    w = build_ledger_world(tmp_path / "data", ledger_url)
    try:
        yield w
    finally:
        w.close()


def populate(w: LedgerWorld) -> None:
    """Three batches (three checkpoints: sizes 4, 8, 12)."""
    other = w.deployment.subject_ref("2015/0000001X")
    w.feed(
        w.event(POLICE, AuditAct.COLLECTION, user="ppu.officer.1"),
        w.event(POLICE, AuditAct.DISCLOSURE, recipient=PROBATION, view=ViewKind.FULL),
        w.event(POLICE, AuditAct.DISCLOSURE, recipient=HOUSING, view=ViewKind.REDACTED),
        w.event(POLICE, AuditAct.COLLECTION, subject_ref=other),
    )
    w.feed(
        w.event(PROBATION, AuditAct.COLLECTION, operation=Operation.DELIVER),
        w.event(HOUSING, AuditAct.COLLECTION, operation=Operation.DELIVER),
        w.event(
            HOUSING,
            AuditAct.CONSULTATION,
            operation=Operation.CONSULT,
            user="housing.officer.207",
            justification="Allocating a tenancy for the applicant",
        ),
        w.event(
            HOUSING,
            AuditAct.REFUSAL,
            operation=Operation.CONSULT,
            outcome=Outcome.REFUSED,
            user="housing.officer.207",
            reason_code="consult.justification-missing",
            reason="a justification is required",
        ),
    )
    w.feed(*(w.event(PRISON, AuditAct.COLLECTION, operation=Operation.DELIVER) for _ in range(4)))


def test_append_checkpoints_queries_proofs_exports(world: LedgerWorld) -> None:
    populate(world)
    reader = world.reader
    assert [size for size, _, _ in world.service.store.checkpoints()] == [4, 8, 12]
    latest = verify_checkpoint(reader.checkpoint().note, reader.verifier_key, origin=reader.origin)
    assert latest.size == 12
    assert latest.extensions[0].startswith("time 2026-11-03T09:00")

    # Query by subject: the officer gives the PNC id, the keyed hash is computed for them.
    page = reader.query({"subject": PNC, "limit": 100})
    assert len(page["entries"]) == 11
    assert all(r["subject_ref"] == world.deployment.subject_ref(PNC) for r in page["entries"])
    assert PNC not in json.dumps(page)
    assert [r["seq"] for r in reader.query({"agency": HOUSING})["entries"]] == [5, 6, 7]
    assert len(reader.query({"user": "housing.officer.207"})["entries"]) == 2
    assert len(reader.query({"act": "disclosure"})["entries"]) == 2
    assert len(reader.query({"outcome": "refused"})["entries"]) == 1
    agreement = world.deployment.agreement.id
    assert len(reader.query({"agreement": agreement})["entries"]) == 12
    assert reader.query({"agreement": "no-such-isa"})["entries"] == []
    times = [e.time for e in world.emitted]
    window = reader.query({"since": times[4], "until": times[8]})["entries"]
    assert [r["seq"] for r in window] == [4, 5, 6, 7]

    # Paging walks every entry once.
    seen, after = [], -1
    while after is not None:
        page = reader.query({"limit": 5, "after": after})
        seen += [r["seq"] for r in page["entries"]]
        after = page["next_after"]
    assert seen == list(range(12))

    # Each row with its inclusion proof, checked by the standalone verifier.
    page = reader.query({"act": "consultation", "proofs": True})
    [row] = page["entries"]
    cp = verify_checkpoint(page["checkpoint"], reader.verifier_key)
    proof = row["proof"]
    verify_inclusion(
        row["seq"],
        cp.size,
        base64.b64decode(proof["leaf_hash"]),
        [base64.b64decode(h) for h in proof["hashes"]],
        cp.root,
    )
    one = reader.proof(6)
    assert leaf_hash(one["entry"].encode()) == base64.b64decode(one["leaf_hash"])
    consistency = reader.consistency(4)
    old = verify_checkpoint(consistency["checkpoint1"], reader.verifier_key)
    new = verify_checkpoint(consistency["checkpoint2"], reader.verifier_key)
    verify_consistency(
        old.size, new.size, old.root, new.root, [base64.b64decode(h) for h in consistency["hashes"]]
    )

    # Exports for a subject access request.
    rows = list(csv.DictReader(io.StringIO(reader.export({"subject": PNC}, "csv"))))
    assert len(rows) == 11
    assert rows[5]["seq"] == "6"
    assert rows[5]["justification"] == "Allocating a tenancy for the applicant"
    doc = json.loads(reader.export({"subject": PNC, "proofs": True}, "json"))
    assert doc["count"] == 11
    assert all("proof" in e for e in doc["entries"])
    assert PNC not in json.dumps(doc)
    with_proofs = list(csv.DictReader(io.StringIO(reader.export({"proofs": True}, "csv"))))
    assert all(r["inclusion_proof"] and r["tree_size"] == "12" for r in with_proofs)

    report = reader.verify()
    assert report.intact, report
    assert (report.entries, report.checkpoints, report.latest_checkpoint_size) == (12, 3, 12)


def test_duplicates_are_appended_once(world: LedgerWorld) -> None:
    event = world.event(POLICE)
    assert world.feed(event) == 1
    again = world.signed(event)
    assert world.service.handle_batch([world.record(again), world.record(again)]) == 0
    assert world.service.store.size() == 1
    # Restart: the tree edge is reloaded from the database and the log keeps growing.
    store = LedgerStore(world.deployment.settings.database_url or world.deployment.paths.ledger)
    try:
        assert store.tree_root() == world.service.store.tree_root()
        assert store.tree_size == 1
    finally:
        store.close()


def _kill_connection(world: LedgerWorld) -> None:
    """End the ledger's PostgreSQL connection from the server's side, as a restart or a
    failover would."""
    [(pid,)] = world.service.store.tamper_db.execute("SELECT pg_backend_pid()")
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _killed_mid_unit(world: LedgerWorld) -> None:
    """A unit that carries on after its connection was lost (as careless code would): a
    statement after the loss must not run on a new connection, outside the unit."""
    db = world.service.store.tamper_db
    with db.transaction():
        db.execute("INSERT INTO scratch VALUES (1)")
        _kill_connection(world)
        with contextlib.suppress(StoreUnavailable):
            db.execute("INSERT INTO scratch VALUES (2)")
        db.execute("INSERT INTO scratch VALUES (3)")


@pytest.mark.postgres
@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_the_postgres_ledger_reconnects_after_losing_its_connection(world: LedgerWorld) -> None:
    store = world.service.store
    assert world.feed(world.event(POLICE)) == 1
    # Lost between calls: the next call says so (retriable), and the one after reconnects.
    _kill_connection(world)
    with pytest.raises(StoreUnavailable) as lost:
        world.feed(world.event(POLICE))
    assert lost.value.retriable
    assert world.feed(world.event(PROBATION)) == 1
    assert [e["agency"] for e in store.entries()] == [POLICE, PROBATION]
    # Lost inside a transaction: the whole unit fails, nothing of it is kept, no reconnect
    # half-way; the next call works.
    store.tamper_db.execute("CREATE TABLE scratch (x integer)")
    with pytest.raises(StoreUnavailable):
        _killed_mid_unit(world)
    assert store.tamper_db.execute("SELECT count(*) FROM scratch") == [(0,)]
    assert world.feed(world.event(HOUSING)) == 1
    assert store.size() == 3
    assert world.reader.verify().intact


def test_refused_events_are_recorded_and_visible(world: LedgerWorld) -> None:
    populate(world)
    forged_by_other = world.signed(world.event(POLICE), key=world.keys[HOUSING])
    rogue = world.signed(world.event("rogue.unknown"), key=PrivateKey.generate(KeyAlg.ED25519))
    added = world.service.handle_batch(
        [world.record(forged_by_other), world.record(rogue), world.record(b"{not json")]
    )
    assert added == 0
    codes = [r["reason_code"] for r in world.reader.rejected()]
    assert codes == ["audit.wrong-signer", "directory.unknown-agency", "audit.malformed"]
    report = world.reader.verify()
    assert report.intact
    assert report.rejected == 3
    assert world.service.store.size() == 12


def test_bad_query_parameters_get_clear_errors(world: LedgerWorld) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "act": ({"act": "gossip"}, "'act'"),
        "limit": ({"limit": 0}, "'limit'"),
        "big": ({"limit": 5000}, "'limit'"),
        "since": ({"since": "yesterday"}, "'since'"),
        "naive": ({"since": "2026-11-01T10:00:00"}, "zone"),
        "unknown": ({"colour": "red"}, "unknown query parameter 'colour'"),
        "both": ({"subject": PNC, "subject_ref": "a" * 64}, "either"),
        "order": ({"since": "2026-11-02", "until": "2026-11-01"}, "earlier"),
        "ref": ({"subject_ref": "xyz"}, "'subject_ref'"),
    }
    for params, message in cases.values():
        with pytest.raises(QueryError, match=message):
            world.reader.query(params)
    populate(world)
    with pytest.raises(QueryError, match="not covered"):
        world.reader.proof(12)
    assert parse_query({"since": "2026-11-01"}).since == "2026-11-01T00:00:00.000Z"


def _forged(w: LedgerWorld) -> bytes:
    """A validly signed event that was never appended."""
    return w.signed(w.event(HOUSING, AuditAct.CONSULTATION, operation=Operation.CONSULT, user="x"))


def _tamper_entry(store: LedgerStore, w: LedgerWorld) -> None:
    rewrite_block(store, 4, lambda e: [e[0], _forged(w), *e[2:]])


def _tamper_reorder(store: LedgerStore, w: LedgerWorld) -> None:
    rewrite_block(store, 4, lambda e: [e[0], e[2], e[1], e[3]])


def _tamper_delete_entry(store: LedgerStore, w: LedgerWorld) -> None:
    """Entry 5 removed, its recorded leaf too, and the later entries moved up to close the
    gap: only the signed checkpoints still say what was there."""
    rewrite_block(store, 4, lambda e: [e[0], *e[2:]], recompute_leaves=True)
    renumber_blocks(store, 4, -1)


def _tamper_insert_entry(store: LedgerStore, w: LedgerWorld) -> None:
    rewrite_block(store, 4, lambda e: [e[0], _forged(w), *e[1:]], recompute_leaves=True)
    renumber_blocks(store, 4, 1)


def _tamper_delete_block(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute("DELETE FROM blocks WHERE first_seq = 4")


def _tamper_truncate(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute("DELETE FROM blocks WHERE first_seq >= 8")


def _tamper_rewrite_hashes(store: LedgerStore, w: LedgerWorld) -> None:
    """A thorough attacker: swaps an entry and rewrites its recorded leaf hash too."""
    rewrite_block(store, 4, lambda e: [e[0], _forged(w), *e[2:]], recompute_leaves=True)


def _tamper_checkpoint_row(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute(
        "UPDATE checkpoints SET time = '2000-01-01T00:00:00.000Z' WHERE size = 8"
    )


def _tamper_checkpoint_backdated(store: LedgerStore, w: LedgerWorld) -> None:
    """Re-signed with the ledger's own key (its operator, or a thief of the key) as if
    made before the checkpoint of size 4."""
    size, _, note = store.checkpoints()[1]
    lines = note.split("\n")
    root, index = base64.b64decode(lines[2]), base64.b64decode(lines[4].removeprefix("index "))
    signer = w.service.signer
    assert signer is not None
    earlier = "2000-01-01T00:00:00.000Z"
    store.tamper_db.execute(
        "UPDATE checkpoints SET time = ?, note = ? WHERE size = ?",
        (earlier, signer.sign(size, root, earlier, index), size),
    )


def _tamper_unsigned_tail(store: LedgerStore, w: LedgerWorld) -> None:
    """Entry 9 replaced where no checkpoint covers it yet (the last one, of size 12, is
    removed): only its leaf hash recorded at append time tells."""
    store.tamper_db.execute("DELETE FROM checkpoints WHERE size = 12")
    rewrite_block(store, 8, lambda e: [e[0], _forged(w), *e[2:]])


def _tamper_recorded_leaf(store: LedgerStore, w: LedgerWorld) -> None:
    """Entry 5's recorded leaf hash, which proofs are built from, rewritten; the entries
    are untouched, so every root recomputes: only the consistency proofs fail."""
    [(recorded,)] = store.tamper_db.execute("SELECT leaves FROM blocks WHERE first_seq = 4")
    forged = bytes(recorded[:32]) + bytes(32) + bytes(recorded[64:])
    store.tamper_db.execute("UPDATE blocks SET leaves = ? WHERE first_seq = 4", (forged,))


def _tamper_checkpoint(store: LedgerStore, w: LedgerWorld) -> None:
    note = store.checkpoints()[1][2]
    lines = note.split("\n")
    lines[1] = "7"
    store.tamper_db.execute("UPDATE checkpoints SET note = ? WHERE size = 8", ("\n".join(lines),))


def _housing_posting(store: LedgerStore) -> tuple[int, str]:
    key = posting_key("agency", HOUSING)
    [(k, offsets)] = store.tamper_db.execute(
        "SELECT key, offsets FROM postings WHERE key = ? AND first_seq = 4", (key,)
    )
    return int(k), offsets


def _tamper_posting_deleted(store: LedgerStore, w: LedgerWorld) -> None:
    """Housing's entries 5 to 7 hidden from a query by agency."""
    key, _ = _housing_posting(store)
    store.tamper_db.execute("DELETE FROM postings WHERE key = ? AND first_seq = 4", (key,))
    assert not w.reader.query({"agency": HOUSING})["entries"]


def _tamper_posting_moved(store: LedgerStore, w: LedgerWorld) -> None:
    key, _ = _housing_posting(store)
    store.tamper_db.execute(
        "UPDATE postings SET key = ? WHERE key = ? AND first_seq = 4", (key + 1, key)
    )


def _tamper_posting_offsets(store: LedgerStore, w: LedgerWorld) -> None:
    key, offsets = _housing_posting(store)
    store.tamper_db.execute(
        "UPDATE postings SET offsets = ? WHERE key = ? AND first_seq = 4",
        (offsets.split(" ", 1)[1], key),
    )


def _tamper_batch_time(store: LedgerStore, w: LedgerWorld) -> None:
    """Batch 4 to 7 moved out of every time range an officer would ask for."""
    store.tamper_db.execute(
        "UPDATE batches SET max_time = '2000-01-01T00:00:00.000Z' WHERE first_seq = 4"
    )


def _tamper_index_and_digests(store: LedgerStore, w: LedgerWorld) -> None:
    """A thorough attacker: removes a posting and recomputes every recorded chain value."""
    _tamper_posting_deleted(store, w)
    value = search.GENESIS
    for first, count, low, high in store.tamper_db.execute(
        "SELECT first_seq, count, min_time, max_time FROM batches ORDER BY first_seq"
    ):
        rows = store.tamper_db.execute(
            "SELECT key, offsets FROM postings WHERE first_seq = ? ORDER BY key", (first,)
        )
        content = search.content_hash(
            first_seq=first,
            count=count,
            min_time=low,
            max_time=high,
            lines="\n".join(f"{k} {o}" for k, o in rows),
        )
        value = search.link(value, content)
        store.tamper_db.execute("UPDATE batches SET digest = ? WHERE first_seq = ?", (value, first))


def _tamper_posting_filed_away(store: LedgerStore, w: LedgerWorld) -> None:
    """Housing's posting refiled under a segment no query of this log would look in."""
    key, _ = _housing_posting(store)
    store.tamper_db.execute(
        "UPDATE postings SET segment = 7 WHERE key = ? AND first_seq = 4", (key,)
    )


def _tamper_postings_merged(store: LedgerStore, w: LedgerWorld) -> None:
    """Two postings of a batch kept as one row, the second's line hidden in the first's
    offsets: joined, the lines read as before, but a look-up by the second key finds
    nothing."""
    (a, a_offsets), (b, b_offsets) = store.tamper_db.execute(
        "SELECT key, offsets FROM postings WHERE first_seq = 4 ORDER BY key LIMIT 2"
    )
    store.tamper_db.execute("DELETE FROM postings WHERE key = ? AND first_seq = 4", (b,))
    store.tamper_db.execute(
        "UPDATE postings SET offsets = ? WHERE key = ? AND first_seq = 4",
        (f"{a_offsets}\n{b} {b_offsets}", a),
    )


def _tamper_block_count(store: LedgerStore, w: LedgerWorld) -> None:
    """Entry 5 cut out, its recorded leaf left: the block no longer adds up."""
    rewrite_block(store, 4, lambda e: [e[0], *e[2:]])


def _tamper_batch_gone(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute("DELETE FROM postings WHERE first_seq = 4")
    store.tamper_db.execute("DELETE FROM batches WHERE first_seq = 4")


def _tamper_index_truncated(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute("DELETE FROM postings WHERE first_seq >= 8")
    store.tamper_db.execute("DELETE FROM batches WHERE first_seq >= 8")


def _tamper_event_id_gone(store: LedgerStore, w: LedgerWorld) -> None:
    store.tamper_db.execute(
        "DELETE FROM event_ids WHERE event_id = (SELECT min(event_id) FROM event_ids)"
    )


def _tamper_checkpoint_unsealed(store: LedgerStore, w: LedgerWorld) -> None:
    """Signed with the ledger's own key, but without a readable index digest."""
    size, time, note = store.checkpoints()[1]
    root = base64.b64decode(note.split("\n")[2])
    signer = w.service.signer
    assert signer is not None
    store.tamper_db.execute(
        "UPDATE checkpoints SET note = ? WHERE size = ?",
        (signer.sign(size, root, time, b"not a digest"), size),
    )


def _tamper_event_ids(store: LedgerStore, w: LedgerWorld) -> None:
    """The last batch removed, its checkpoint too: only the event ids recall it."""
    store.tamper_db.execute("DELETE FROM blocks WHERE first_seq >= 8")
    store.tamper_db.execute("DELETE FROM postings WHERE first_seq >= 8")
    store.tamper_db.execute("DELETE FROM batches WHERE first_seq >= 8")
    store.tamper_db.execute("DELETE FROM checkpoints WHERE size > 8")


TAMPERING: dict[str, tuple[Callable[[LedgerStore, LedgerWorld], None], int | None, str]] = {
    "modified-entry": (_tamper_entry, 5, "entry 5 is not the entry appended"),
    "reordered": (_tamper_reorder, 5, "entry 5 is not the entry appended"),
    "deleted-entry": (_tamper_delete_entry, 4, "signed checkpoint of size 8 covers"),
    "inserted-entry": (_tamper_insert_entry, 4, "signed checkpoint of size 8 covers"),
    "deleted-block": (_tamper_delete_block, 4, "entry 4 is missing"),
    "truncated": (_tamper_truncate, 8, "entries from 8 are missing"),
    "hashes-rewritten": (_tamper_rewrite_hashes, 4, "signed checkpoint of size 8 covers"),
    "checkpoint-forged": (_tamper_checkpoint, None, "checkpoint of size 8"),
    "checkpoint-row": (_tamper_checkpoint_row, None, "its row disagrees with its note"),
    "checkpoint-backdated": (_tamper_checkpoint_backdated, None, "dated before an earlier one"),
    "unsigned-tail": (_tamper_unsigned_tail, 9, "entry 9 is not the entry appended"),
    "recorded-leaf": (_tamper_recorded_leaf, 4, "checkpoints of size 4 and 8 are not consistent"),
    "posting-deleted": (_tamper_posting_deleted, 4, "search index of entries 4 to 7 differs"),
    "posting-moved": (_tamper_posting_moved, 4, "search index of entries 4 to 7 differs"),
    "posting-offsets": (_tamper_posting_offsets, 4, "search index of entries 4 to 7 differs"),
    "batch-time": (_tamper_batch_time, 4, "search index of entries 4 to 7 differs"),
    "index-and-digests": (_tamper_index_and_digests, 4, "checkpoint of size 8 sealed"),
    "posting-filed-away": (_tamper_posting_filed_away, 4, "postings for entries from 4 that no"),
    "postings-merged": (_tamper_postings_merged, 4, "entries 4 to 7 has a malformed posting"),
    "event-ids": (_tamper_event_ids, 8, "entry 8 was recorded at append time"),
    "block-malformed": (_tamper_block_count, 4, "block of entries from 4 is malformed"),
    "batch-gone": (_tamper_batch_gone, 4, "search index has no batch for entry 4"),
    "index-truncated": (_tamper_index_truncated, 8, "search index covers 8 entries, the log 12"),
    "event-id-gone": (_tamper_event_id_gone, None, "11 event ids are recorded for 12 entries"),
    "checkpoint-unsealed": (_tamper_checkpoint_unsealed, None, "does not seal the search index"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_verify_names_the_first_bad_entry(world: LedgerWorld, kind: str) -> None:
    populate(world)
    assert world.reader.verify().intact
    tamper, first_bad, problem = TAMPERING[kind]
    tamper(world.service.store, world)
    report = world.reader.verify()
    assert not report.intact
    assert report.first_bad_entry == first_bad, report.problem
    assert report.problem is not None
    assert problem in report.problem
    # Reported, never repaired: a second run sees the same.
    assert world.reader.verify() == report


def test_verify_in_chunks_on_worker_processes(world: LedgerWorld) -> None:
    """The same answer whether the log is hashed here or a chunk per worker process, and
    the tampered entry named from whichever chunk holds it."""
    for _ in range(3):  # blocks cut at every 64th entry: 0-49, 50-63, 64-99, 100-127, 128-149
        world.feed(
            *(
                world.event(PRISON, AuditAct.COLLECTION, operation=Operation.DELIVER)
                for _ in range(50)
            )
        )
    store = world.service.store

    def verify(chunk: int = 64, workers: int = 1) -> IntegrityReport:
        return verify_ledger(
            store,
            verifier_key=world.reader.verifier_key,
            origin=world.reader.origin,
            chunk=chunk,
            workers=workers,
        )

    here = verify()
    assert here.intact
    assert (here.entries, here.checkpoints) == (150, 3)
    assert verify(workers=2) == here
    with pytest.raises(ValueError, match="power of two"):
        verify(chunk=100)

    rewrite_block(store, 128, lambda e: [e[0], e[1], e[3], e[2], *e[4:]])
    for workers in (1, 2):
        report = verify(workers=workers)
        assert (report.intact, report.first_bad_entry) == (False, 130), report.problem
    # The block that ends the first chunk deleted: that chunk stops short, though no
    # gap shows inside it, while the log goes on.
    store.tamper_db.execute("DELETE FROM blocks WHERE first_seq = 50")
    for workers in (1, 2):
        report = verify(workers=workers)
        assert (report.intact, report.first_bad_entry) == (False, 50), report.problem
        assert "entry 50 is missing (the log goes on to 149)" in (report.problem or "")


def test_verify_tells_its_progress_and_stops_when_asked(world: LedgerWorld) -> None:
    """``progress`` hears the entries hashed of the entries stored, from 0 up to all of
    them, whether hashed here or on workers; ``stopped`` stops it, workers and all, with
    nothing said of the ledger (the console's verify job, ``broker/console/verify_jobs``)."""
    world.feed(*(world.event(PRISON, AuditAct.COLLECTION) for _ in range(150)))
    store = world.service.store
    key, origin = world.reader.verifier_key, world.reader.origin
    for workers in (1, 2):
        heard: list[tuple[int, int]] = []

        def hear(checked: int, total: int, into: list[tuple[int, int]] = heard) -> None:
            into.append((checked, total))

        report = verify_ledger(
            store, verifier_key=key, origin=origin, chunk=64, workers=workers, progress=hear
        )
        assert report.intact
        assert heard[0] == (0, 150)
        assert heard[-1] == (150, 150)
        assert [c for c, _ in heard] == sorted(c for c, _ in heard)
        assert len(heard) == 1 + 3  # the start, then each chunk of 64 (64, 128, 150)
        # Stopped at the first chunk's end: no report, and no worker left behind.
        done = threading.Event()

        def first_chunk(checked: int, _total: int, at: threading.Event = done) -> None:
            if checked:
                at.set()

        with pytest.raises(integrity.VerifyIncomplete, match="stopped"):
            verify_ledger(
                store, verifier_key=key, origin=origin, chunk=64, workers=workers,
                progress=first_chunk, stopped=done.is_set,
            )  # fmt: skip
    # The reader's verify hears a stop while another run holds it.
    with world.reader.verifying, pytest.raises(integrity.VerifyIncomplete, match="before it began"):
        world.reader.verify(stopped=lambda: True)
    assert world.reader.verify().intact


def test_verify_reads_postings_in_whatever_order_they_are_stored(world: LedgerWorld) -> None:
    """SQLite joins a batch's postings in the order it reads them. Stored and indexed
    against key order, each batch is re-read in key order: the index verifies, and a
    deleted posting is still found."""
    populate(world)
    store = world.service.store
    rows = store.tamper_db.execute("SELECT segment, key, first_seq, offsets FROM postings")
    store.tamper_db.execute("DROP TABLE postings")
    store.tamper_db.execute(
        "CREATE TABLE postings (segment BIGINT NOT NULL, key BIGINT NOT NULL, "
        "first_seq BIGINT NOT NULL, offsets TEXT NOT NULL)"
    )
    store.tamper_db.executemany(
        "INSERT INTO postings VALUES (?, ?, ?, ?)", sorted(rows, key=lambda r: -r[1])
    )
    store.tamper_db.execute("CREATE INDEX postings_by_key ON postings (segment, key DESC)")
    report = world.reader.verify()
    assert report.intact, report.problem
    assert world.reader.query({"agency": HOUSING})["entries"]
    _tamper_posting_deleted(store, world)
    report = world.reader.verify()
    assert (report.intact, report.first_bad_entry) == (False, 4), report.problem


def test_a_posting_key_that_is_not_an_integer_is_malformed(world: LedgerWorld) -> None:
    """Housing's posting with its key as text that swallows the first offset: its line
    reads as before, but a look-up by housing's key finds nothing. SQLite lets a key
    column hold text; PostgreSQL refuses it."""
    populate(world)
    store = world.service.store
    key, offsets = _housing_posting(store)
    first, rest = offsets.split(" ", 1)
    hide = "UPDATE postings SET key = ?, offsets = ? WHERE key = ? AND first_seq = 4"
    if store.dialect == "postgresql":
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            store.tamper_db.execute(hide, (f"{key} {first}", rest, key))
        return
    store.tamper_db.execute(hide, (f"{key} {first}", rest, key))
    assert not world.reader.query({"agency": HOUSING})["entries"]
    report = world.reader.verify()
    assert (report.intact, report.first_bad_entry) == (False, 4)
    assert "entries 4 to 7 has a malformed posting" in (report.problem or "")


def _my_verify_workers() -> list[str]:
    """This process's verify workers still running (other tests' may run beside it)."""
    mine = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # not a process, or it ended meanwhile
            continue
        if b"broker.ledger.verify_worker" in cmdline and parent == os.getpid():
            mine.append(proc.name)
    return mine


def test_a_failed_worker_fails_verify_and_leaves_no_process(tmp_path: Path) -> None:
    """Here the workers cannot open the ledger: verify fails, naming the exit status,
    rather than reporting on the chunks it has; no worker is left running."""
    gone = Job(target=str(tmp_path / "gone.sqlite"), chunk=64, marks=[], compare_from=0, size=256)
    failing = pytest.raises(RuntimeError, match="a verify worker failed: exit 2")
    with failing as failed, hashing(gone, workers=2) as hashed:
        hashed()
    # Reported as an error the CLI and API show (not a traceback), and not as tampering.
    assert isinstance(failed.value, MappaError)
    assert failed.value.code == "audit.verify-incomplete"
    assert "says nothing about the ledger" in str(failed.value)
    assert not _my_verify_workers()
    assert not (tmp_path / "gone.sqlite").exists()
    missing = pytest.raises(ConfigurationError, match="no ledger database at")
    with missing, hashing(gone, workers=1) as hashed:
        hashed()


@pytest.mark.parametrize(
    ("worker", "why"),
    [
        # Reads its job and answers each chunk with something else.
        (
            "import sys\nsys.stdin.readline()\nfor line in sys.stdin: print('hello', flush=True)",
            "a worker answered 'hello\\n', which is not a chunk result",
        ),
        # Reads its job and ends, answering nothing.
        ("import sys; sys.stdin.readline()", "a worker ended without answering for"),
    ],
)
def test_a_worker_that_does_not_answer_fails_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str, why: str
) -> None:
    """Verify says it did not finish, and why, rather than report on what it has."""
    job = Job(target=str(tmp_path / "l.sqlite"), chunk=64, marks=[], compare_from=0, size=256)
    monkeypatch.setattr(integrity, "WORKER_COMMAND", [sys.executable, "-c", worker])
    failing = pytest.raises(integrity.VerifyIncomplete, match="a verify worker failed")
    with failing as failed, hashing(job, workers=2) as hashed:
        hashed()
    assert why in str(failed.value)


def test_concurrent_verifies_take_turns(world: LedgerWorld) -> None:
    """Each verify starts a worker process per core: a second request (the governance
    API answers from a pool of threads) waits for the first rather than start a second
    set."""
    populate(world)
    reports: list[IntegrityReport] = []
    second = threading.Thread(target=lambda: reports.append(world.reader.verify()))
    with world.reader.verifying:  # a verify under way
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive()
        assert not reports
    second.join(timeout=30)
    assert [r.intact for r in reports] == [True]


def test_a_chunk_result_survives_the_trip_from_a_worker() -> None:
    result = ChunkResult(
        start=64,
        end=100,
        edges={100: [bytes(32), bytes(range(32))]},
        problem=(70, "malformed"),
        moved=71,
        batches=[(64, 36, bytes(32), bytes(range(32)))],
        index_problem=(64, "stray"),
    )
    assert result_from_json(result_to_json(result)) == result


def test_a_ledger_in_the_earlier_layout_is_refused_not_shadowed(
    tmp_path: Path, ledger_url: str | None
) -> None:
    target = ledger_url or str(tmp_path / "old.sqlite")
    db = connect(target)
    db.script("CREATE TABLE entries (seq BIGINT PRIMARY KEY, signed TEXT NOT NULL);")
    db.close()
    with pytest.raises(ConfigurationError, match="earlier layout"):
        LedgerStore(target)


def test_verify_looks_at_the_log_as_it_began(
    world: LedgerWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends that land while verify runs are neither checked nor taken for tampering:
    here the log is read as 12 entries though a fourth batch is already stored."""
    populate(world)
    store = world.service.store
    store.append_batch(
        [
            (sign_event(e, world.keys[PRISON]), world.signed(e), None)
            for e in (world.event(PRISON, AuditAct.COLLECTION) for _ in range(4))
        ]
    )
    sizes = iter([12])
    real = LedgerStore.size
    monkeypatch.setattr(store, "size", lambda: next(sizes, None) or real(store))
    for workers in (1, 2):
        sizes = iter([12])
        report = verify_ledger(
            store,
            verifier_key=world.reader.verifier_key,
            origin=world.reader.origin,
            chunk=64,
            workers=workers,
        )
        assert (report.intact, report.entries) == (True, 12), report.problem


def test_audit_event_ids_are_time_ordered_uuids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 7 (RFC 9562): later milliseconds sort later, so the ledger's event-id index
    grows at one end; 74 random bits keep ids of the same millisecond apart."""
    clock = iter([1_795_000_000_000_000_000, 1_795_000_000_001_000_000])
    monkeypatch.setattr("broker.gateway.audit.time.time_ns", lambda: next(clock))
    first, second = time_ordered_id(), time_ordered_id()
    assert first < second
    for value in (first, second):
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert uuid.UUID(first).int >> 80 == 1_795_000_000_000
    monkeypatch.setattr("broker.gateway.audit.time.time_ns", lambda: 1_795_000_000_000_000_000)
    assert len({time_ordered_id() for _ in range(1000)}) == 1000  # all in one millisecond


def test_the_store_refuses_a_filter_it_has_no_index_for(world: LedgerWorld) -> None:
    store = world.service.store
    with pytest.raises(ValueError, match="cannot filter on"):
        store.select({"message_type": "risk-assessment"})
    with pytest.raises(ValueError, match="cannot filter on"):
        store.entries(colour="red")


# -- refused records: where, why, digest and size; never the bytes -----------------------------

# Personal data in clear, as a mistaken or hostile record on the audit topic might carry it.
PERSON = "Marple, Jane Elizabeth"
BORN = "1971-09-07"
# The ``rejected`` table as versions before digests kept it: the bytes as received.
EARLIER_REJECTED = {
    "sqlite": "CREATE TABLE rejected (id INTEGER PRIMARY KEY, topic TEXT, partition INTEGER, "
    '"offset" INTEGER, reason_code TEXT NOT NULL, reason TEXT NOT NULL, raw BLOB NOT NULL)',
    "postgresql": "CREATE TABLE rejected (id BIGSERIAL PRIMARY KEY, topic TEXT, partition "
    'BIGINT, "offset" BIGINT, reason_code TEXT NOT NULL, reason TEXT NOT NULL, '
    "raw BYTEA NOT NULL)",
}


def _personal_record(padding: int = 0) -> bytes:
    """An unsigned event naming a person and their date of birth; ``padding`` makes it
    long enough to spill over SQLite's pages."""
    event = {
        "event_id": str(uuid.uuid4()),
        "agency": POLICE,
        "name": PERSON,
        "date_of_birth": BORN,
        "notes": "x" * padding,
    }
    return json.dumps({"event": event, "key_id": "0" * 32, "signature": "AAAA"}).encode()


def _held_anywhere(w: LedgerWorld, store: LedgerStore, *values: str) -> list[str]:
    """Which of ``values`` the ledger's database holds anywhere: on SQLite, every byte of
    the file and of its write-ahead log; on PostgreSQL, every row of ``rejected`` (through
    ``store``) as text."""
    if store.dialect == "postgresql":
        rows = store.tamper_db.execute("SELECT CAST(r AS TEXT) FROM rejected r")
        text = " ".join(str(row[0]) for row in rows).lower()
        return [v for v in values if v.lower() in text or v.encode().hex() in text]
    ledger = w.deployment.paths.ledger
    files = [ledger, ledger.with_name(ledger.name + "-wal")]
    held = b"".join(f.read_bytes() for f in files if f.exists())
    return [v for v in values if v.encode() in held]


def test_a_refused_record_is_kept_as_its_digest_and_size_never_its_bytes(
    world: LedgerWorld,
) -> None:
    raw = _personal_record()
    assert world.service.handle_batch([world.record(raw)]) == 0
    [kept] = world.reader.rejected()
    assert kept["reason_code"] == "audit.malformed"
    assert kept["digest"] == hashlib.sha256(raw).hexdigest()
    assert kept["bytes"] == len(raw)
    assert (kept["topic"], kept["partition"], kept["offset"]) == ("mappa.audit", 0, world.offset)
    # The reason names the field and the rule, never what the record held.
    assert PERSON not in kept["reason"]
    assert BORN not in kept["reason"]
    assert "raw" not in kept
    assert _held_anywhere(world, world.service.store, PERSON, BORN) == []
    assert world.reader.verify().rejected == 1


def _earlier_ledger(store: LedgerStore, records: list[bytes]) -> None:
    """Put the ledger's ``rejected`` table back in the earlier layout, holding
    ``records`` as received."""
    db = store.tamper_db
    # A ledger of that layout is from before schema versions (``broker.files.migrations``).
    db.execute("DROP TABLE schema_migrations")
    db.execute("DROP TABLE rejected")
    db.execute(EARLIER_REJECTED[db.dialect])
    db.executemany(
        'INSERT INTO rejected (topic, partition, "offset", reason_code, reason, raw) '
        "VALUES (?, ?, ?, ?, ?, ?)",
        [("mappa.audit", 0, n, "audit.malformed", "a reason", r) for n, r in enumerate(records)],
    )


def test_an_earlier_ledger_drops_the_bytes_it_kept_when_opened(world: LedgerWorld) -> None:
    populate(world)
    # One record of several pages, so that SQLite keeps it on overflow pages too.
    records = [_personal_record(), _personal_record(padding=100_000)]
    _earlier_ledger(world.service.store, records)
    assert _held_anywhere(world, world.service.store, PERSON) == [PERSON], "proves nothing"
    world.service.store.close()
    target = world.deployment.settings.database_url or world.deployment.paths.ledger
    expected = [(hashlib.sha256(r).hexdigest(), len(r)) for r in records]

    # A reader cannot rewrite it, and need not: digest and size, never the bytes.
    reader = LedgerStore(target, read_only=True)
    try:
        assert [(r["digest"], r["size"]) for r in reader.rejected()] == expected
    finally:
        reader.close()

    store = world.deployment.ledger_store()  # the ledger service starting
    assert [(r["id"], r["digest"], r["size"]) for r in store.rejected()] == [
        (i + 1, digest, size) for i, (digest, size) in enumerate(expected)
    ]
    if store.dialect == "sqlite":
        store.close()  # the write-ahead log folded into the file, as at a shutdown
        assert not world.deployment.paths.ledger.with_name("ledger.sqlite-wal").exists()
        store = world.deployment.ledger_store()
    assert _held_anywhere(world, store, PERSON, BORN) == []
    # Refused records go on being numbered after those kept.
    store.reject(b"{not json", at=("mappa.audit", 0, 99), code="audit.malformed", reason="r")
    assert [r["id"] for r in store.rejected()] == [1, 2, 3]
    report = world.deployment.ledger_reader(store).verify()
    assert report.intact, report.problem
    assert (report.entries, report.rejected) == (12, 3)
