"""The audit ledger on SQLite and PostgreSQL: append, checkpoints, queries, proofs, exports,
refused records, and `verify` catching every kind of tampering."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.crypto.keys import PrivateKey
from broker.ledger.query import QueryError, parse_query
from broker.ledger.store import LedgerStore, event_row
from broker.ledger.verify_proofs import (
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import ViewKind
from schemas.directory import KeyAlg
from tests.ledger_world import LedgerWorld, build_ledger_world, ledger_url
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
    assert world.service.store.count() == 1
    # Restart: the tree edge is reloaded from the database and the log keeps growing.
    store = LedgerStore(world.deployment.settings.database_url or world.deployment.paths.ledger)
    try:
        assert store.tree_root() == world.service.store.tree_root()
        assert store.tree_size == 1
    finally:
        store.close()


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
    assert world.service.store.count() == 12


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


def _tamper_column(store: LedgerStore, w: LedgerWorld) -> None:
    store.db.execute("UPDATE entries SET agency = ? WHERE seq = 5", (POLICE,))


def _tamper_signed(store: LedgerStore, w: LedgerWorld) -> None:
    # A validly signed event, swapped in for the stored one, columns and all.
    event = w.event(HOUSING, AuditAct.COLLECTION, operation=Operation.DELIVER)
    cols = ", ".join(f'"{c}" = ?' for c in ("event_id", "time"))
    store.db.execute(
        f"UPDATE entries SET signed = ?, {cols} WHERE seq = 5",  # noqa: S608
        (w.signed(event), event_row(event)[0], event_row(event)[1]),
    )


def _tamper_delete(store: LedgerStore, w: LedgerWorld) -> None:
    store.db.execute("DELETE FROM entries WHERE seq = 5")


def _tamper_delete_renumber(store: LedgerStore, w: LedgerWorld) -> None:
    store.db.execute("DELETE FROM entries WHERE seq = 5")
    store.db.execute("UPDATE entries SET seq = seq + 1000 WHERE seq > 5")
    store.db.execute("UPDATE entries SET seq = seq - 1001 WHERE seq > 1000")


def _tamper_insert(store: LedgerStore, w: LedgerWorld) -> None:
    store.db.execute("UPDATE entries SET seq = seq + 1000 WHERE seq >= 5")
    store.db.execute("UPDATE entries SET seq = seq - 999 WHERE seq >= 1000")
    event = w.event(HOUSING, AuditAct.CONSULTATION, operation=Operation.CONSULT, user="x")
    marks = ", ".join("?" for _ in range(len(event_row(event)) + 2))
    store.db.execute(
        f"INSERT INTO entries VALUES ({marks})",  # noqa: S608
        (5, *event_row(event), w.signed(event)),
    )


def _tamper_reorder(store: LedgerStore, w: LedgerWorld) -> None:
    store.db.execute("UPDATE entries SET seq = -1 WHERE seq = 5")
    store.db.execute("UPDATE entries SET seq = 5 WHERE seq = 6")
    store.db.execute("UPDATE entries SET seq = 6 WHERE seq = -1")


def _tamper_truncate(store: LedgerStore, w: LedgerWorld) -> None:
    store.db.execute("DELETE FROM entries WHERE seq >= 10")


def _tamper_rewrite_hashes(store: LedgerStore, w: LedgerWorld) -> None:
    """A thorough attacker: swaps a row and rewrites its recorded leaf hash too."""
    _tamper_signed(store, w)
    raw = store.entry(5)
    assert raw is not None
    store.db.execute("UPDATE nodes SET hash = ? WHERE id = ?", (leaf_hash(raw["signed"]), 5 << 6))


def _tamper_checkpoint(store: LedgerStore, w: LedgerWorld) -> None:
    note = store.checkpoints()[1][2]
    lines = note.split("\n")
    lines[1] = "7"
    store.db.execute("UPDATE checkpoints SET note = ? WHERE size = 8", ("\n".join(lines),))


TAMPERING: dict[str, tuple[Callable[[LedgerStore, LedgerWorld], None], int | None, str]] = {
    "modified-column": (_tamper_column, 5, "column 'agency'"),
    "modified-row": (_tamper_signed, 5, "entry 5 is not the entry appended"),
    "deleted": (_tamper_delete, 5, "entry 5 is missing"),
    "deleted-renumbered": (_tamper_delete_renumber, 5, "entry 5 is not the entry appended"),
    "inserted": (_tamper_insert, 5, "entry 5 is not the entry appended"),
    "reordered": (_tamper_reorder, 5, "entry 5 is not the entry appended"),
    "truncated": (_tamper_truncate, 10, "entries from 10 are missing"),
    "hashes-rewritten": (_tamper_rewrite_hashes, 4, "signed checkpoint of size 8"),
    "checkpoint-forged": (_tamper_checkpoint, None, "checkpoint of size 8"),
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
