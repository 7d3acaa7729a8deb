"""``verify --all`` (``broker/ledger/integrity_all.py``): every problem in one pass, with a
cap, on SQLite and PostgreSQL; and its faces, ``mappa audit verify --all`` and
``GET /governance/verify?all=true``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from broker.api.governance import governance_router
from broker.cli.main import main
from broker.ledger.integrity_all import MAX_PROBLEMS, Problem
from broker.ledger.store import LedgerStore
from schemas.audit import AuditAct
from tests.ledger_world import LedgerWorld, build_ledger_world, ledger_url, rewrite_block
from tests.support import PRISON
from tests.test_ledger import TAMPERING, _forged, populate

__all__ = ["ledger_url"]


@pytest.fixture
def world(tmp_path: Path, ledger_url: str | None) -> Iterator[LedgerWorld]:
    w = build_ledger_world(tmp_path / "data", ledger_url)
    try:
        populate(w)  # checkpoints 4, 8, 12
        w.feed(*(w.event(PRISON, AuditAct.COLLECTION) for _ in range(4)))  # and 16
        yield w
    finally:
        w.close()


def _three_tamperings(store: LedgerStore, w: LedgerWorld) -> None:
    """An edited entry (5), a deleted block further on (8 to 11), a forged checkpoint (4)."""
    rewrite_block(store, 4, lambda e: [e[0], _forged(w), *e[2:]])
    store.tamper_db.execute("DELETE FROM blocks WHERE first_seq = 8")
    [(note,)] = store.tamper_db.execute("SELECT note FROM checkpoints WHERE size = 4")
    lines = note.split("\n")
    lines[2] = "A" * 43 + "="
    store.tamper_db.execute("UPDATE checkpoints SET note = ? WHERE size = 4", ("\n".join(lines),))


def test_an_intact_ledger_has_no_problems(world: LedgerWorld) -> None:
    report = world.reader.verify_all()
    assert report.intact
    assert report.problems == []
    assert (report.entries, report.checkpoints, report.latest_checkpoint_size) == (16, 4, 16)


def test_every_tampering_is_reported_in_one_pass(world: LedgerWorld) -> None:
    _three_tamperings(world.service.store, world)
    # The default verify names the first only.
    assert world.reader.verify().first_bad_entry is None  # the forged checkpoint
    report = world.reader.verify_all()
    assert not report.intact
    assert not report.truncated
    by_entry = {(p.entry, p.last): p.problem for p in report.problems}
    assert "checkpoint of size 4" in by_entry[(None, None)]
    assert "entry 5 is not the entry appended" in by_entry[(5, None)]
    assert by_entry[(8, 11)] == "entries from 8 to 11 are missing"
    # The gap also leaves the proofs that need its entries without their nodes.
    assert "a node their proof needs is not stored" in by_entry[(12, None)]
    assert [p.entry for p in report.problems] == [None, 5, 8, 8, 12]


def test_entries_rewritten_with_their_hashes_are_named_as_a_range(world: LedgerWorld) -> None:
    store = world.service.store
    rewrite_block(store, 4, lambda e: [e[0], _forged(world), *e[2:]], recompute_leaves=True)
    rewrite_block(store, 12, lambda e: [*e[:3], _forged(world)])
    report = world.reader.verify_all()
    problems = {(p.entry, p.last) for p in report.problems}
    # Entry 5 matches its (rewritten) recorded hash: only the checkpoint of size 8 says.
    assert (4, 7) in problems
    assert (15, None) in problems


def test_the_cap_is_honoured(world: LedgerWorld) -> None:
    store = world.service.store
    for first in (0, 4, 8, 12):  # an entry edited in every block: four problems
        rewrite_block(store, first, lambda e: [e[0], _forged(world), *e[2:]])
    whole = world.reader.verify_all()
    assert [p.entry for p in whole.problems] == [1, 5, 9, 13]
    assert not whole.truncated
    capped = world.reader.verify_all(max_problems=2)
    assert capped.truncated
    assert capped.problems == whole.problems[:2]
    assert capped.max_problems == 2
    with pytest.raises(ValueError, match="max problems"):
        world.reader.verify_all(max_problems=0)


def test_the_report_as_json(world: LedgerWorld) -> None:
    _three_tamperings(world.service.store, world)
    doc = world.reader.verify_all().to_json()
    assert doc["intact"] is False
    assert {"entry": 8, "last": 11, "problem": "entries from 8 to 11 are missing"} in doc[
        "problems"
    ]
    assert Problem(**doc["problems"][0]) == world.reader.verify_all().problems[0]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_mappa_audit_verify_all(
    world: LedgerWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    _three_tamperings(world.service.store, world)
    assert main(["audit", "--data-dir", data, "verify", "--all"]) == 3
    out = capsys.readouterr().out
    assert "LEDGER TAMPERED: 5 problems" in out
    assert "entry 8 to 11: entries from 8 to 11 are missing" in out
    assert (
        main(["audit", "--data-dir", data, "verify", "--all", "--max-problems", "1", "--json"]) == 3
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["truncated"] is True
    assert len(doc["problems"]) == 1
    assert doc["alarms"] == []
    # The default verify is as it was: the first problem only.
    assert main(["audit", "--data-dir", data, "verify"]) == 3
    assert "first bad entry None" in capsys.readouterr().out
    assert main(["audit", "--data-dir", data, "verify", "--all", "--max-problems", "0"]) == 2
    too_many = str(MAX_PROBLEMS + 1)
    assert main(["audit", "--data-dir", data, "verify", "--all", "--max-problems", too_many]) == 2


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_mappa_audit_shows_the_alarm(
    world: LedgerWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    rewrite_block(world.service.store, 4, lambda e: [e[0], _forged(world), *e[2:]])
    with pytest.raises(Exception, match="halted"):
        world.feed(world.event(PRISON, AuditAct.COLLECTION))
    assert main(["audit", "--data-dir", data, "verify"]) == 3
    out = capsys.readouterr().out
    assert "ALARM: the ledger halted itself" in out
    assert "first bad entry 5" in out
    assert main(["audit", "--data-dir", data, "alarms"]) == 0
    out = capsys.readouterr().out
    assert "1 alarms; the ledger is HALTED" in out
    assert main(["audit", "--data-dir", data, "proof", "5"]) != 0
    assert "ledger.unvouched" in capsys.readouterr().err


def require_officer(x_role: Annotated[str | None, Header()] = None) -> str:
    if x_role != "governance-officer":
        raise HTTPException(status_code=403, detail="officers only")
    return x_role


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_governance_verify_all_and_alarms(world: LedgerWorld) -> None:
    app = FastAPI()
    app.include_router(governance_router(lambda: world.reader, require_officer))
    client = TestClient(app, headers={"x-role": "governance-officer"})
    assert client.get("/governance/alarms").json() == []
    _three_tamperings(world.service.store, world)
    doc = client.get("/governance/verify", params={"all": "true", "max_problems": 2}).json()
    assert doc["truncated"] is True
    assert len(doc["problems"]) == 2
    assert "problems" not in client.get("/governance/verify").json()
    assert (
        client.get("/governance/verify", params={"all": "true", "max_problems": 0}).status_code
        == 422
    )
    assert client.get("/governance/alarms", headers={"x-role": "x"}).status_code == 403


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_every_kind_of_tampering_verify_finds_is_found_in_the_pass(
    tmp_path: Path, ledger_url: str | None, kind: str
) -> None:
    w = build_ledger_world(tmp_path / "data", ledger_url)
    try:
        populate(w)
        tamper, _, _ = TAMPERING[kind]
        tamper(w.service.store, w)
        first = w.reader.verify()
        report = w.reader.verify_all()
        assert not report.intact
        assert first.first_bad_entry in {p.entry for p in report.problems}, report.problems
    finally:
        w.close()
