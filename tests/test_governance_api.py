"""The governance router in a tiny app of our own: officers only, thin over the reader."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from broker.api.governance import governance_router
from broker.ledger.verify_proofs import leaf_hash, verify_checkpoint, verify_inclusion
from tests.ledger_world import LedgerWorld, build_ledger_world, rewrite_block
from tests.support import HOUSING, PNC
from tests.test_ledger import populate


def require_officer(x_role: Annotated[str | None, Header()] = None) -> str:
    if x_role != "governance-officer":
        raise HTTPException(status_code=403, detail="officers only")
    return x_role


@pytest.fixture
def world(tmp_path: Path) -> Iterator[LedgerWorld]:
    w = build_ledger_world(tmp_path / "data", None)
    populate(w)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def client(world: LedgerWorld) -> TestClient:
    app = FastAPI()
    app.include_router(governance_router(lambda: world.reader, require_officer))
    return TestClient(app, headers={"x-role": "governance-officer"})


def test_every_endpoint_requires_an_officer(client: TestClient) -> None:
    for path in ("query", "proof/1", "consistency?size1=4", "checkpoint", "export", "verify"):
        done = client.get(f"/governance/{path}", headers={"x-role": "housing.officer"})
        assert done.status_code == 403, path


def test_officer_queries_proves_exports_and_verifies(client: TestClient) -> None:
    page = client.get("/governance/query", params={"subject": PNC, "limit": 5}).json()
    assert [e["seq"] for e in page["entries"]] == [0, 1, 2, 4, 5]
    assert page["next_after"] == 5
    housing = client.get("/governance/query", params={"agency": HOUSING, "proofs": "true"})
    rows = housing.json()["entries"]
    assert [r["seq"] for r in rows] == [5, 6, 7]
    cp_doc = client.get("/governance/checkpoint").json()
    cp = verify_checkpoint(cp_doc["note"], cp_doc["verifier_key"])
    for r in rows:
        verify_inclusion(
            r["seq"],
            cp.size,
            base64.b64decode(r["proof"]["leaf_hash"]),
            [base64.b64decode(h) for h in r["proof"]["hashes"]],
            cp.root,
        )
    proof = client.get("/governance/proof/6").json()
    verify_inclusion(
        6,
        cp.size,
        leaf_hash(proof["entry"].encode()),
        [base64.b64decode(h) for h in proof["hashes"]],
        cp.root,
    )
    assert client.get("/governance/consistency", params={"size1": 4}).json()["size2"] == 12
    exported = client.get("/governance/export", params={"subject": PNC, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 11
    assert client.get("/governance/export", params={"act": "consultation"}).json()["count"] == 1
    assert client.get("/governance/verify").json()["intact"] is True
    assert client.get("/governance/rejected").json() == []


def test_bad_parameters_are_4xx_with_the_reason(client: TestClient, world: LedgerWorld) -> None:
    bad = client.get("/governance/query", params={"act": "gossip"})
    assert bad.status_code == 400
    assert bad.json()["detail"]["code"] == "audit.query-invalid"
    assert "'act'" in bad.json()["detail"]["reason"]
    assert client.get("/governance/query", params={"colour": "red"}).status_code == 400
    assert client.get("/governance/proof/99").status_code == 400
    assert client.get("/governance/checkpoint", params={"size": 5}).status_code == 400
    assert client.get("/governance/export", params={"format": "xml"}).status_code == 422
    rewrite_block(world.service.store, 0, lambda e: e[:3], recompute_leaves=True)
    report = client.get("/governance/verify").json()
    assert report["intact"] is False
    assert report["first_bad_entry"] == 3


def test_a_subject_can_be_asked_for_in_the_body_not_the_url(client: TestClient) -> None:
    # A PNC id is personal data: POSTed, it stays out of URLs, access logs and history.
    asked = client.get("/governance/query", params={"subject": PNC, "limit": 5}).json()
    posted = client.post("/governance/query", json={"subject": PNC, "limit": "5"})
    assert posted.status_code == 200, posted.text
    assert posted.json() == asked
    exported = client.post("/governance/export", json={"subject": PNC, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 11
    # Filters by name only; an unknown one is refused, as in the query string.
    assert client.post("/governance/query", json={"colour": "red"}).status_code == 422
    refused = client.post("/governance/query", json={"act": "gossip"})
    assert refused.status_code == 400
    assert refused.json()["detail"]["code"] == "audit.query-invalid"
    assert client.post("/governance/query", json={}, headers={"x-role": "x"}).status_code == 403
