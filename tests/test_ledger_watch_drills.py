"""Drill (marker ``drill``): an entry of a running ledger edited in its database. The ledger
reads the audit topic from the embedded broker as it does in a deployment; after the edit
its next batch signs no checkpoint, raises the alarm (recorded, and visible to officers
over the governance API), proofs of the altered entry are refused, and no record is
skipped: what arrives while it is halted stays on the topic, unread, and is appended once
the ledger verifies intact again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from broker.api.errors import install_error_handlers
from broker.api.governance import governance_router
from broker.errors import MappaError
from broker.ledger.service import LedgerService
from schemas.audit import AuditAct
from tests.ledger_world import LedgerWorld, build_ledger_world, rewrite_block
from tests.support import POLICE, PRISON
from tests.test_ledger import _forged

pytestmark = pytest.mark.drill
# How long the ledger may take to read what was sent (the embedded broker, one process).
CATCH_UP_SECONDS = 30.0


def require_officer(x_role: Annotated[str | None, Header()] = None) -> str:
    if x_role != "governance-officer":
        raise HTTPException(status_code=403, detail="officers only")
    return x_role


@pytest.fixture
def world(tmp_path: Path) -> Iterator[LedgerWorld]:
    w = build_ledger_world(tmp_path / "data", None)
    try:
        yield w
    finally:
        w.close()


async def _send(w: LedgerWorld, service: LedgerService, agency: str, n: int) -> None:
    values = [w.signed(w.event(agency, AuditAct.COLLECTION)) for _ in range(n)]
    topic = w.deployment.topics.audit
    failed = await service._transport.send_many([(topic, v, None, ()) for v in values])
    assert failed == [None] * n


async def _poll_until_it_fails(service: LedgerService) -> None:
    for _ in range(100):
        await service.poll_once(timeout_ms=200)


async def test_drill_an_entry_edited_under_a_running_ledger(world: LedgerWorld) -> None:
    async with world.deployment.running([], ledger=True) as running:
        service = running.ledger
        assert service is not None
        assert service.watch is not None
        store = service.store
        app = FastAPI()
        install_error_handlers(app)  # the served apps' one error table
        reader = world.deployment.ledger_reader(store)
        app.include_router(governance_router(lambda: reader, require_officer))
        officer = TestClient(app, headers={"x-role": "governance-officer"})

        for expected in (4, 8, 12):  # three batches, three checkpoints
            await _send(world, service, POLICE, 4)
            assert await service.catch_up(expected, within=CATCH_UP_SECONDS) == expected
        assert [size for size, _, _ in store.checkpoints()] == [4, 8, 12]
        assert officer.get("/governance/proof/5").status_code == 200

        # The fault: entry 5 edited in the database, as someone with write access would.
        [saved] = store.tamper_db.execute(
            "SELECT ends, leaves, data FROM blocks WHERE first_seq = 4"
        )
        rewrite_block(store, 4, lambda e: [e[0], _forged(world), *e[2:]])

        # The very next batch: appended, but no checkpoint signed over it, and halted.
        await _send(world, service, PRISON, 4)
        with pytest.raises(MappaError) as halted:
            await _poll_until_it_fails(service)
        assert halted.value.code == "ledger.halted"
        appended = store.size()
        assert 12 < appended <= 16
        assert [size for size, _, _ in store.checkpoints()] == [4, 8, 12]
        alarms = officer.get("/governance/alarms").json()
        assert [(a["kind"], a["first_bad_entry"]) for a in alarms] == [("watch", 5)]
        refused = officer.get("/governance/proof/5")
        assert refused.status_code == 409
        assert refused.json()["error"] == "ledger.unvouched"
        assert officer.get("/governance/proof/4").status_code == 200
        verified = officer.get("/governance/verify").json()
        assert verified["intact"] is False
        assert verified["first_bad_entry"] == 5

        # Halted, it reads nothing more: what comes stays on the topic, unread.
        offsets = store.offsets()
        await _send(world, service, PRISON, 3)
        for _ in range(3):
            assert await service.poll_once(timeout_ms=100) == 0
        assert store.size() == appended
        assert store.offsets() == offsets

        # Restored (the edit undone, as from a backup): a start verifies it and resumes,
        # and the held records are read and signed; nothing was skipped.
        store.tamper_db.execute(
            "UPDATE blocks SET ends = ?, leaves = ?, data = ? WHERE first_seq = 4", tuple(saved)
        )
        assert service.watch.resume_if_intact()
        assert await service.catch_up(19, within=CATCH_UP_SECONDS) == 19
        assert store.latest_checkpoint() is not None
        assert store.latest_checkpoint()[0] == 19  # type: ignore[index]
        assert [a["kind"] for a in officer.get("/governance/alarms").json()] == [
            "watch",
            "cleared",
        ]
