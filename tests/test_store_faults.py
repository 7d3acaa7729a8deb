"""A database that cannot be used just now (locked past the busy timeout, full, read-only)
is our retriable ``StoreUnavailable`` at the store's edge, and the API answers it with
our JSON error, 503 and ``Retry-After``, never a plain-text 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.api.errors import RETRY_AFTER_SECONDS
from broker.errors import MappaError, StoreUnavailable
from broker.gateway import store as store_module
from broker.gateway.store import AgencyStore, StoreConnection
from tests.support import HOUSING, POLICE
from tests.test_api import Api, api, arms_record

__all__ = ["api"]

# Short enough for a test to wait out; the product's is BUSY_TIMEOUT_SECONDS.
SHORT_BUSY_SECONDS = 0.2


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store opened by a test here gives up on a lock quickly (before ``api``)."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_SECONDS", SHORT_BUSY_SECONDS)


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holds ``path``'s write lock, as a stuck process or an operator's
    shell would."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def connect(path: Path, *, uri: bool = False) -> StoreConnection:
    return sqlite3.connect(
        path, isolation_level=None, uri=uri, timeout=SHORT_BUSY_SECONDS, factory=StoreConnection
    )


def test_sqlite_faults_become_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    db = connect(path)
    db.execute("CREATE TABLE t (x BLOB)")
    with write_lock_held(path), pytest.raises(StoreUnavailable) as locked:
        db.execute("BEGIN IMMEDIATE")
    assert locked.value.retriable
    assert "SQLITE_BUSY" in str(locked.value)
    # Full: a database limited to the pages it has.
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(StoreUnavailable, match="SQLITE_FULL"):
        db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 8192,)] * 4)
    readonly = connect(Path(f"{path.as_uri()}?mode=ro"), uri=True)
    with pytest.raises(StoreUnavailable, match="SQLITE_READONLY"):
        readonly.executescript("INSERT INTO t VALUES (1);")
    # A wrong statement is a bug, not an outage: SQLite's own error.
    with pytest.raises(sqlite3.OperationalError) as wrong:
        db.execute("SELECT nothing FROM nowhere")
    assert not isinstance(wrong.value, MappaError)
    readonly.close()
    db.close()


def enqueue_in_one_unit(store: AgencyStore, *values: bytes) -> None:
    with store.transaction():
        for value in values:
            store.enqueue("topic", value)


def test_a_failed_unit_leaves_the_store_usable(tmp_path: Path) -> None:
    store = AgencyStore(tmp_path / "agency.sqlite")
    try:
        with write_lock_held(store.path), pytest.raises(StoreUnavailable):
            enqueue_in_one_unit(store, b"never")
        # A full disk mid-unit: the store's own connection limited to the pages it has (a
        # test reaches into the store, since a full disk cannot be had otherwise).
        db = store._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(StoreUnavailable, match="SQLITE_FULL"):
            enqueue_in_one_unit(store, *[b"x" * 8192] * 8)
        assert not db.in_transaction
        db.execute("PRAGMA max_page_count=1073741823")
        with store.transaction():
            store.enqueue("topic", b"kept")
        assert [r.value for r in store.unsent()] == [b"kept"]
    finally:
        store.close()


async def test_a_locked_store_is_a_503_with_retry_after(api: Api) -> None:
    message_id = await api.published()
    housing = api.world.gw(HOUSING).ctx.store
    police = api.world.gw(POLICE).ctx.store
    cases = [
        (housing.path, HOUSING, f"/v1/agencies/{HOUSING}/inbox/{message_id}/ack", None),
        (
            police.path,
            POLICE,
            f"/v1/agencies/{POLICE}/records",
            {"record": arms_record(), "purpose": "risk management"},
        ),
    ]
    for path, who, url, body in cases:
        before = police.outbox_counts()
        with write_lock_held(path):
            r = await api.client.post(url, json=body, headers=api.auth(who))
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"] == "store.unavailable"
        assert "retry later" in r.json()["detail"]
        assert police.outbox_counts() == before  # nothing half-written
    # The lock gone, the same requests succeed.
    assert housing.inbox_item(message_id).acknowledged_at is None  # type: ignore[union-attr]
    for _, who, url, body in cases:
        r = await api.client.post(url, json=body, headers=api.auth(who))
        assert r.status_code in (200, 201), r.text


async def test_a_ledger_database_away_is_a_503_for_the_officer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(*_: object, **__: object) -> None:
        raise StoreUnavailable("the ledger database does not answer; retry later")

    monkeypatch.setattr(api.app.state.backend.ledger, "query", away)
    r = await api.client.get("/governance/query", headers=api.auth("officer"))
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert r.json()["error"] == "store.unavailable"
