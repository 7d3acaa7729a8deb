"""Schema migrations (``broker.files.migrations``): the databases of the previous release
(``tests/data/previous_release``, made by its ``make.py`` at commit 2fda6ad) upgraded by
this release's numbered steps, their data intact and the ledger still verifying; a
newer release's database and someone else's refused; a failing step rolled back."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.api.credentials import SCHEMA as CREDENTIALS_SCHEMA
from broker.api.credentials import CredentialStore
from broker.cli.main import main
from broker.files.migrations import (
    VERSION_TABLE,
    Migration,
    NewerLayout,
    Schema,
    SqliteTarget,
    UnknownLayout,
    recorded_version,
    status,
    upgrade,
)
from broker.gateway.store import SCHEMA as AGENCY_SCHEMA
from broker.gateway.store import AgencyStore
from broker.identity.database import SCHEMA as IDENTITY_SCHEMA
from broker.identity.database import IdentityDatabase
from broker.identity.users import UserState, UserStore
from broker.ledger.database import connect
from broker.ledger.reader import open_ledger_reader
from broker.ledger.schema import SCHEMA as LEDGER_SCHEMA
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.trust.keystore import passphrase_from_env
from tests.ledger_world import ledger_url

__all__ = ["ledger_url"]

FIXTURES = Path(__file__).parent / "data" / "previous_release"
MANIFEST = json.loads((FIXTURES / "counts.json").read_text())
AGENCY = MANIFEST["agency"]
# What the previous release's ledger held (the demo's): every entry, every checkpoint.
LEDGER_ENTRIES = MANIFEST["rows"]["ledger.sqlite.gz"]["event_ids"]
LEDGER_CHECKPOINTS = MANIFEST["rows"]["ledger.sqlite.gz"]["checkpoints"]
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def unpack(name: str, target: Path) -> Path:
    """The fixture ``name`` (gzipped SQLite) written to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.decompress((FIXTURES / name).read_bytes()))
    return target


def previous_data_dir(root: Path) -> Path:
    """A data directory holding every database of the previous release, as it left them."""
    unpack("agency.sqlite.gz", root / "agencies" / f"{AGENCY}.sqlite")
    unpack("ledger.sqlite.gz", root / "ledger.sqlite")
    unpack("api-credentials.sqlite.gz", root / "api-credentials.sqlite")
    unpack("users.sqlite.gz", root / "users.sqlite")
    (root / "ledger.pub").write_bytes((FIXTURES / "ledger.pub").read_bytes())
    return root


def row_counts(path: Path) -> dict[str, int]:
    """The rows of each table of the SQLite file ``path`` but the version table's."""
    db = sqlite3.connect(path)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]  # noqa: S608
            for n in names
            if n not in {"sqlite_sequence", VERSION_TABLE}
        }
    finally:
        db.close()


def versions_recorded(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute(f"SELECT version FROM {VERSION_TABLE} ORDER BY version")]  # noqa: S608
    finally:
        db.close()


def first_tracked(path: Path) -> str:
    """The message id of a row of ``tracked``, read past the store's own calls."""
    db = sqlite3.connect(path)
    try:
        return str(db.execute("SELECT message_id FROM tracked LIMIT 1").fetchone()[0])
    finally:
        db.close()


def layout(path: Path) -> set[tuple[str, str]]:
    """Every table, index and trigger of ``path`` with its SQL, whitespace aside."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    finally:
        db.close()
    return {(name, " ".join(sql.split())) for name, sql in rows}


def verify(data_dir: Path) -> Any:
    reader = open_ledger_reader(
        Settings.with_flags(data_dir=data_dir, database_url=None), passphrase_from_env
    )
    try:
        return reader.verify()
    finally:
        reader.store.close()


def test_the_fixtures_are_of_the_previous_release() -> None:
    """The fixtures hold data and no schema version: else the upgrades below prove
    nothing."""
    assert MANIFEST["commit"] == "2fda6ad"
    for name in ("agency.sqlite.gz", "ledger.sqlite.gz", "api-credentials.sqlite.gz"):
        assert sum(MANIFEST["rows"][name].values()) > 0
    total = sum(p.stat().st_size for p in FIXTURES.iterdir())
    assert total < 512 * 1024


def test_the_previous_release_agency_store_upgrades_with_its_data(tmp_path: Path) -> None:
    path = unpack("agency.sqlite.gz", tmp_path / "agency.sqlite")
    before = row_counts(path)
    assert before == MANIFEST["rows"]["agency.sqlite.gz"]
    assert VERSION_TABLE not in {n for n, _ in layout(path)}

    store = AgencyStore(path)
    try:
        # Read through this release's own calls.
        inbox = store.inbox(limit=1000)
        assert len(inbox) == before["inbox"]
        assert all(item.envelope and item.sender for item in inbox)
        assert len(store.deadletters.all()) == before["deadletters"] == 1
        assert len(store.case_teams()) == before["case_teams"]
        assert store.offsets()
        assert store.requests.find(AGENCY, "fixture-key-1", now=NOW) is not None
        first = inbox[0]
        assert store.seen_digest(first.sender, first.message_id) is not None
        assert sum(store.outbox_counts().values()) == before["outbox"]
        assert store.tracking.of_message(first_tracked(path))
    finally:
        store.close()
    # Every table it had keeps its rows; step 4 adds the unit's own record, empty.
    assert row_counts(path) == before | {"own_records": 0}
    assert versions_recorded(path) == [1, 2, 3, 4]

    # Upgraded, it has exactly the layout a new store gets.
    fresh = tmp_path / "fresh.sqlite"
    AgencyStore(fresh).close()
    assert layout(path) == layout(fresh)
    assert versions_recorded(fresh) == [1, 2, 3, 4]


def test_the_previous_release_credentials_and_users_upgrade_with_their_data(
    tmp_path: Path,
) -> None:
    path = unpack("api-credentials.sqlite.gz", tmp_path / "api-credentials.sqlite")
    store = CredentialStore(path)
    try:
        listed = store.list()
    finally:
        store.close()
    assert len(listed) == MANIFEST["rows"]["api-credentials.sqlite.gz"]["credentials"]
    assert sorted(c.state(NOW) for c in listed) == ["active", "active", "revoked"]
    assert any(c.replaces for c in listed)
    assert versions_recorded(path) == [1, 2]

    path = unpack("users.sqlite.gz", tmp_path / "users.sqlite")
    with IdentityDatabase(path) as database:
        users = UserStore(database)
        states = {u.username: u.state for u in users.list()}
        assert states == {"j.smith": UserState.ACTIVE, "a.jones": UserState.DISABLED}
        assert len(users.history()) == MANIFEST["rows"]["users.sqlite.gz"]["user_events"]
    assert versions_recorded(path) == [1]
    assert row_counts(path) == MANIFEST["rows"]["users.sqlite.gz"]


def test_the_previous_release_ledger_upgrades_and_still_verifies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    ledger = unpack("ledger.sqlite.gz", data / "ledger.sqlite")
    (data / "ledger.pub").write_bytes((FIXTURES / "ledger.pub").read_bytes())
    # Read-only, before the upgrade: the officer's `mappa audit` reads it as it is.
    assert verify(data).intact
    assert VERSION_TABLE not in {n for n, _ in layout(ledger)}

    with caplog.at_level(logging.INFO, logger="broker.files.migrations"):
        store = LedgerStore(ledger)
    try:
        assert store.size() == LEDGER_ENTRIES
    finally:
        store.close()
    assert versions_recorded(ledger) == list(range(1, LEDGER_SCHEMA.latest + 1))
    # Each step applied is logged, as an event with its fields.
    logged = [(r.__dict__["store"], r.__dict__["version"]) for r in caplog.records]
    assert logged == [("audit ledger", v) for v in range(1, LEDGER_SCHEMA.latest + 1)]
    report = verify(data)
    assert report.intact, report.problem
    assert (report.entries, report.checkpoints) == (LEDGER_ENTRIES, LEDGER_CHECKPOINTS)


def test_mappa_migrate_shows_and_applies_what_is_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = previous_data_dir(tmp_path / "data")
    assert main(["migrate", "status", "--data-dir", str(data), "--json"]) == 0
    before = {r["database"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(before) == {
        f"agency store {AGENCY}",
        "credential store",
        "identity database",
        "audit ledger",
    }
    assert {r["state"] for r in before.values()} == {"unversioned"}
    assert before["audit ledger"]["pending"][0][0] == 1
    # Status writes nothing.
    assert VERSION_TABLE not in {n for n, _ in layout(data / "ledger.sqlite")}

    assert main(["migrate", "up", "--data-dir", str(data), "--json"]) == 0
    after = {r["database"]: r for r in json.loads(capsys.readouterr().out)}
    assert after["audit ledger"]["applied"] == list(range(1, LEDGER_SCHEMA.latest + 1))
    assert after[f"agency store {AGENCY}"]["applied"] == [1, 2, 3, 4]
    assert {r["state"] for r in after.values()} == {"current"}

    assert main(["migrate", "up", "--data-dir", str(data), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["applied"] for r in again] == [[], [], [], []]
    assert main(["audit", "verify", "--data-dir", str(data)]) == 0
    assert f"{LEDGER_ENTRIES} entries" in capsys.readouterr().out


# Each store: how this release opens it, and its schema.
OPENERS: dict[str, tuple[Callable[[Path], Callable[[], None]], Schema[Any]]] = {
    "agency": (lambda p: AgencyStore(p).close, AGENCY_SCHEMA),
    "credentials": (lambda p: CredentialStore(p).close, CREDENTIALS_SCHEMA),
    "identity": (lambda p: IdentityDatabase(p).close, IDENTITY_SCHEMA),
    "ledger": (lambda p: LedgerStore(p).close, LEDGER_SCHEMA),
}


@pytest.mark.parametrize("store", sorted(OPENERS))
def test_a_database_of_a_newer_release_is_refused_and_left_alone(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    opener, schema = OPENERS[store]
    path = tmp_path / "db.sqlite"
    opener(path)()
    db = sqlite3.connect(path)
    db.execute(
        f"INSERT INTO {VERSION_TABLE} VALUES (?, 'from the future', '2099-01-01')",  # noqa: S608
        (schema.latest + 1,),
    )
    db.commit()
    db.close()
    before = layout(path)
    with pytest.raises(NewerLayout) as refused:
        opener(path)
    assert refused.value.code == "store.newer-version"
    assert layout(path) == before
    assert versions_recorded(path)[-1] == schema.latest + 1


def test_mappa_migrate_reports_a_refused_database_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    LedgerStore(data / "ledger.sqlite").close()
    db = sqlite3.connect(data / "ledger.sqlite")
    db.execute(f"INSERT INTO {VERSION_TABLE} VALUES (99, 'from the future', '2099-01-01')")  # noqa: S608
    db.commit()
    db.close()
    for command in ("status", "up"):
        assert main(["migrate", command, "--data-dir", str(data), "--json"]) == 1
        [row] = json.loads(capsys.readouterr().out)
        assert (row["state"], row["code"]) == ("refused", "store.newer-version")


@pytest.mark.parametrize("store", ["agency", "credentials", "identity"])
def test_another_stores_database_is_refused_as_an_unknown_layout(
    tmp_path: Path, store: str
) -> None:
    """Someone else's database without a version (here the ledger's) is not taken for
    an old layout of this store: refused, nothing written."""
    opener, _ = OPENERS[store]
    path = unpack("ledger.sqlite.gz", tmp_path / "ledger.sqlite")
    before = layout(path)
    with pytest.raises(UnknownLayout) as refused:
        opener(path)
    assert refused.value.code == "store.unknown-layout"
    assert layout(path) == before


def test_an_agency_store_opened_as_the_ledger_is_refused(tmp_path: Path) -> None:
    path = unpack("agency.sqlite.gz", tmp_path / "agency.sqlite")
    with pytest.raises(UnknownLayout):
        LedgerStore(path)
    with pytest.raises(UnknownLayout):
        LedgerStore(path, read_only=True)


def test_a_failing_step_leaves_the_database_at_the_version_before_it(tmp_path: Path) -> None:
    path = unpack("agency.sqlite.gz", tmp_path / "agency.sqlite")
    before = layout(path)
    counts = row_counts(path)
    real = AGENCY_SCHEMA.migrations[1]

    def half_then_fail(db: sqlite3.Connection) -> None:
        real.apply(db)  # its work done, then the disk fills, say
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise sqlite3.OperationalError("database or disk is full")

    broken = dataclasses.replace(
        AGENCY_SCHEMA,
        migrations=(
            AGENCY_SCHEMA.migrations[0],
            dataclasses.replace(real, apply=half_then_fail),
            *AGENCY_SCHEMA.migrations[2:],
        ),
    )
    db = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            upgrade(broken, db, SqliteTarget(db))
        # Step 1 committed; step 2 rolled back whole, step 3 never tried.
        assert recorded_version(SqliteTarget(db)) == 1
        assert status(AGENCY_SCHEMA, SqliteTarget(db)).pending[0][0] == 2
    finally:
        db.close()
    assert "half_done" not in {n for n, _ in layout(path)}
    assert layout(path) - {(n, s) for n, s in layout(path) if n == VERSION_TABLE} == before
    assert row_counts(path) == counts
    # The next open tries again, and gets there.
    AgencyStore(path).close()
    assert versions_recorded(path) == [1, 2, 3, 4]
    assert row_counts(path) == counts | {"own_records": 0}


def test_a_step_another_process_applied_first_is_not_applied_again(tmp_path: Path) -> None:
    """Two processes opening one store at once: the second finds the step recorded once
    it holds the write lock, and skips it."""
    path = tmp_path / "db.sqlite"
    applied_on: list[sqlite3.Connection] = []

    def create(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE t (x INTEGER)")
        applied_on.append(db)

    plain = Schema(
        store="test store",
        markers=frozenset({"t"}),
        migrations=(Migration(1, "t", create),),
    )
    other = sqlite3.connect(path, isolation_level=None)
    mine = sqlite3.connect(path, isolation_level=None)

    @contextmanager
    def other_process_first(db: sqlite3.Connection) -> Iterator[None]:
        # Between this process reading the version and taking the lock.
        upgrade(plain, other, SqliteTarget(other))
        yield

    racing = dataclasses.replace(
        plain, migrations=(Migration(1, "t", create, around=other_process_first),)
    )
    try:
        assert upgrade(racing, mine, SqliteTarget(mine)) == []
    finally:
        other.close()
        mine.close()
    assert applied_on == [other]
    assert versions_recorded(path) == [1]


def test_a_schema_numbers_its_steps_1_to_n() -> None:
    def step(db: object) -> None:
        return None

    with pytest.raises(ValueError, match=r"1\.\.n"):
        Schema(
            store="s",
            markers=frozenset({"t"}),
            migrations=(Migration(2, "two", step),),
        )


@pytest.mark.postgres
@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_the_previous_release_ledger_on_postgresql_upgrades_and_verifies(
    tmp_path: Path, ledger_url: str
) -> None:
    """The previous release's ledger as it stood on PostgreSQL (its tables, no version),
    its rows copied from the SQLite fixture, upgraded by opening, then verified."""
    source = connect(unpack("ledger.sqlite.gz", tmp_path / "ledger.sqlite"), read_only=True)
    target = connect(ledger_url)
    try:
        # Step 1 is the layout every open made before versions existed.
        LEDGER_SCHEMA.migrations[0].apply(target)
        for table in ("blocks", "nodes", "batches", "postings", "event_ids", "checkpoints"):
            rows = source.execute(f"SELECT * FROM {table}")  # noqa: S608
            marks = ", ".join("?" * len(rows[0]))
            target.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608
        target.executemany(
            "INSERT INTO offsets VALUES (?, ?, ?)", source.execute("SELECT * FROM offsets")
        )
        target.executemany("INSERT INTO meta VALUES (?, ?)", source.execute("SELECT * FROM meta"))
        assert status(LEDGER_SCHEMA, target).state == "unversioned"
    finally:
        source.close()
        target.close()

    data = tmp_path / "data"
    data.mkdir()
    (data / "ledger.pub").write_bytes((FIXTURES / "ledger.pub").read_bytes())
    store = LedgerStore(ledger_url)
    try:
        assert store.size() == LEDGER_ENTRIES
        assert recorded_version(store.tamper_db) == LEDGER_SCHEMA.latest
    finally:
        store.close()
    reader = open_ledger_reader(
        Settings.with_flags(data_dir=data, database_url=ledger_url), passphrase_from_env
    )
    try:
        report = reader.verify()
    finally:
        reader.store.close()
    assert report.intact, report.problem
    assert report.entries == LEDGER_ENTRIES
