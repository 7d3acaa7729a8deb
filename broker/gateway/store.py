"""An agency adapter's own database (SQLite): what it has read, holds and must send.

Everything a step changes is written in one transaction: the inbox row, the
message id remembered against replays, the next offset to read, and the outbox
rows (audit events, dead letters, envelopes) that the relay then sends to Kafka.
A crash at any point leaves either all of it or none of it, so a record is
processed once and no audit event is lost or doubled.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from broker.errors import MappaError, sqlite_unavailable
from broker.files.migrations import Migration, Schema, SqliteTarget, run_script, upgrade
from broker.files.private import private_file
from broker.gateway import deadletters, requests, tracking
from broker.gateway.deadletters import DeadLetters
from broker.gateway.requests import Requests
from broker.gateway.tracking import Tracking
from schemas.envelope import EnvelopeHeader

# How long a statement waits for another connection's write lock before it gives up
# (SQLite's busy timeout). Writers hold the lock for one transaction, milliseconds
# normally; a lock held longer than this is a stuck process or an operator's shell, and
# the caller is better told to retry (``StoreUnavailable``, a 503) than left hanging.
BUSY_TIMEOUT_SECONDS = 5.0
# A message is its sender's message id: another agency may use the same id, and its
# message is another message (docs/envelope.md, replay). Shared by the schema and the
# step that rebuilds an older inbox (``_migrate_inbox``), in the column order of ``InboxItem``.
_INBOX_COLUMNS = """
    message_id TEXT NOT NULL, topic TEXT NOT NULL, sender TEXT NOT NULL,
    message_type TEXT NOT NULL, subject_ref TEXT NOT NULL, view TEXT NOT NULL,
    isa_id TEXT NOT NULL, isa_version INTEGER NOT NULL, created_at TEXT NOT NULL,
    received_at TEXT NOT NULL, acknowledged_at TEXT, envelope BLOB NOT NULL,
    acknowledged_by TEXT,
    PRIMARY KEY (sender, message_id)
"""
_RESHARED_COLUMNS = """
    transfer_id TEXT NOT NULL, sender TEXT NOT NULL, message_id TEXT NOT NULL,
    reshared_as TEXT NOT NULL, PRIMARY KEY (transfer_id, sender, message_id)
"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS seen (
    sender TEXT NOT NULL, message_id TEXT NOT NULL, digest TEXT NOT NULL,
    topic TEXT NOT NULL, created_at TEXT NOT NULL, seen_at TEXT NOT NULL,
    PRIMARY KEY (sender, message_id)
);
CREATE TABLE IF NOT EXISTS inbox ({_INBOX_COLUMNS});
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB,
    value BLOB NOT NULL, headers TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent, seq);
CREATE TABLE IF NOT EXISTS case_teams (
    subject_ref TEXT PRIMARY KEY, members TEXT NOT NULL, lead_agency TEXT NOT NULL,
    set_at TEXT NOT NULL, message_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transfers (
    transfer_id TEXT PRIMARY KEY, subject_ref TEXT NOT NULL, state TEXT NOT NULL,
    seq INTEGER NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_subject ON transfers (subject_ref, seq);
CREATE TABLE IF NOT EXISTS transfer_reshared ({_RESHARED_COLUMNS});
"""
# After the tables are keyed by sender (step 2): an index of a table a step rebuilds goes
# with it. The inbox's own index serves a lookup by message id alone (the API's, when
# only one sender's message has that id).
_INDEXES = """
CREATE INDEX IF NOT EXISTS seen_created ON seen (created_at);
CREATE INDEX IF NOT EXISTS inbox_message ON inbox (message_id);
"""
# A remembered message id whose sender was not recorded (a store from before it was):
# it stops a replay by any sender, as it did, until it leaves the replay window.
UNKNOWN_SENDER = ""
# The tables of messages an agency holds: what it received, and its own record of what
# it published (the co-ordination unit's; broker.gateway.publish.KEEPS_OWN_RECORD).
HeldTable = Literal["inbox", "own_records"]
HELD_TABLES: tuple[HeldTable, ...] = ("inbox", "own_records")


class AmbiguousMessage(MappaError):
    """A message id alone names more than one held message (another agency used the
    same id): the caller must say whose (409 in the API)."""

    code = "inbox.ambiguous"


def _key_of(db: sqlite3.Connection, table: str) -> set[str]:
    """The columns of ``table``'s primary key."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})") if row[5]}


def _create_tables(db: sqlite3.Connection) -> None:
    """Step 1: whichever of the store's tables (its own, tracking's, dead letters',
    request keys') the database lacks, as every open made them before versions existed.
    A table there already is left as it is, whatever its layout (steps 2 and 3)."""
    run_script(db.execute, _SCHEMA + tracking.TABLES + deadletters.TABLES + requests.TABLES)


def _key_by_sender(db: sqlite3.Connection) -> None:
    """Step 2: bring a store from before the sender was part of a message's key up to
    date (each table keyed by message id alone is rebuilt; one keyed by sender already
    is left alone), then the indexes of those tables."""
    # The replay memory first: it takes each sender from the inbox, as it was.
    if "sender" not in _key_of(db, "seen"):
        _migrate_seen(db)
    if "sender" not in _key_of(db, "inbox"):
        _migrate_inbox(db)
    if "sender" not in _key_of(db, "transfer_reshared"):
        _migrate_reshared(db)
    run_script(db.execute, _INDEXES)


def _add_acknowledged_by(db: sqlite3.Connection) -> None:
    """Step 3: who acknowledged a message came later than the inbox: an older inbox gets
    the column (empty for what was acknowledged before: nobody was recorded then)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(inbox)")}
    if "acknowledged_by" not in columns:
        db.execute("ALTER TABLE inbox ADD COLUMN acknowledged_by TEXT")


def _add_own_records(db: sqlite3.Connection) -> None:
    """Step 4: the co-ordination unit's own record of what it published, sealed to
    itself and never sent (docs/statistics.md §1), in the inbox's layout."""
    db.execute(f"CREATE TABLE IF NOT EXISTS own_records ({_INBOX_COLUMNS})")


# The agency store's layout, step by step (``broker.files.migrations``). Steps 1-3 are what
# every open did before versions existed (commit 2fda6ad and earlier), so they leave
# alone what they find done.
SCHEMA: Schema[sqlite3.Connection] = Schema(
    store="agency store",
    # Any of these: a store of an earlier layout may lack the others (tests build such).
    markers=frozenset({"outbox", "inbox", "seen"}),
    migrations=(
        Migration(1, "the tables before versions, where missing", _create_tables),
        Migration(2, "messages keyed by their sender", _key_by_sender),
        Migration(3, "inbox: who acknowledged each message", _add_acknowledged_by),
        Migration(4, "the unit's own record of what it published", _add_own_records),
    ),
)


def _migrate_seen(db: sqlite3.Connection) -> None:
    """Replay memory was keyed by message id alone, so one agency could claim another's
    id first. Rebuild an older ``seen`` table keyed by (sender, message id): the sender of
    a message in the inbox is known from it; any other row keeps ``UNKNOWN_SENDER``."""
    db.execute("ALTER TABLE seen RENAME TO seen_by_id")
    db.execute("DROP INDEX IF EXISTS seen_created")
    db.execute(
        "CREATE TABLE seen (sender TEXT NOT NULL, message_id TEXT NOT NULL, "
        "digest TEXT NOT NULL, topic TEXT NOT NULL, created_at TEXT NOT NULL, "
        "seen_at TEXT NOT NULL, PRIMARY KEY (sender, message_id))"
    )
    db.execute(
        "INSERT INTO seen SELECT coalesce((SELECT i.sender FROM inbox i WHERE "
        "i.message_id = s.message_id), ?), s.message_id, s.digest, s.topic, "
        "s.created_at, s.seen_at FROM seen_by_id s",
        (UNKNOWN_SENDER,),
    )
    db.execute("DROP TABLE seen_by_id")


def _migrate_inbox(db: sqlite3.Connection) -> None:
    """The inbox was keyed by message id alone, so a message of one agency's that used
    another's id first could not be held beside it. Every row names its sender already:
    the rows are copied as they are under the key (sender, message id)."""
    db.execute("ALTER TABLE inbox RENAME TO inbox_by_id")
    db.execute(f"CREATE TABLE inbox ({_INBOX_COLUMNS})")
    names = (
        "message_id, topic, sender, message_type, subject_ref, view, isa_id, isa_version, "
        "created_at, received_at, acknowledged_at, envelope"
    )
    db.execute(f"INSERT INTO inbox ({names}) SELECT {names} FROM inbox_by_id")  # noqa: S608
    db.execute("DROP TABLE inbox_by_id")


def _migrate_reshared(db: sqlite3.Connection) -> None:
    """What a handover re-shared was keyed by message id alone. The sender of each item
    still held is known from the inbox (one item per id until now); an item erased since keeps
    ``UNKNOWN_SENDER``, which matches nothing held: it cannot come back, since its id is
    refused as stale long before a retention period ends."""
    db.execute("ALTER TABLE transfer_reshared RENAME TO reshared_by_id")
    db.execute(f"CREATE TABLE transfer_reshared ({_RESHARED_COLUMNS})")
    db.execute(
        "INSERT INTO transfer_reshared SELECT r.transfer_id, coalesce((SELECT i.sender "
        "FROM inbox i WHERE i.message_id = r.message_id), ?), r.message_id, r.reshared_as "
        "FROM reshared_by_id r",
        (UNKNOWN_SENDER,),
    )
    db.execute("DROP TABLE reshared_by_id")


# Delivery order, and the order of one message id's senders within it.
_DELIVERY_ORDER = "received_at, message_id, sender"
# Where an inbox page ends: an item's (received_at, message_id, sender); a cursor from
# before the sender was part of an item's key names no sender.
InboxPosition = tuple[str, str] | tuple[str, str, str]


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row: a Kafka record waiting for the relay, in ``seq`` order."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class InboxItem:
    """One message held in the inbox, with the envelope exactly as received."""

    message_id: str
    topic: str
    sender: str
    message_type: str
    subject_ref: str
    # A ``ViewKind`` value: the view this agency holds.
    view: str
    isa_id: str
    isa_version: int
    created_at: str
    received_at: str
    acknowledged_at: str | None
    # Verified again whenever it is opened: the database is not trusted either.
    envelope: bytes
    # Who acknowledged it (as the audit names people), when it was acknowledged.
    acknowledged_by: str | None = None

    @classmethod
    def taken(
        cls,
        header: EnvelopeHeader,
        *,
        topic: str,
        view: str,
        envelope: bytes,
        received_at: str,
        acknowledged_by: str | None = None,
    ) -> InboxItem:
        """The item of a message with ``header``, taken ``received_at`` (acknowledged then
        too, by ``acknowledged_by``, if one is named: the agency's own record)."""
        return cls(
            message_id=header.message_id,
            topic=topic,
            sender=header.sender,
            message_type=header.message_type,
            subject_ref=header.subject_ref,
            view=view,
            isa_id=header.isa_id,
            isa_version=header.isa_version,
            created_at=header.created_at,
            received_at=received_at,
            acknowledged_at=received_at if acknowledged_by else None,
            envelope=envelope,
            acknowledged_by=acknowledged_by,
        )


@dataclass(frozen=True)
class CaseTeamHeld:
    """A case team as an adapter holds it: the subject (by reference), its members, its
    lead agency and when it was set."""

    subject_ref: str
    members: tuple[str, ...]
    lead_agency: str
    set_at: str


class StoreConnection(sqlite3.Connection):
    """A SQLite connection whose statements raise ``StoreUnavailable`` where SQLite says
    the database cannot be used just now (``sqlite_unavailable``). Made by
    ``sqlite3.connect(..., factory=StoreConnection)``, so every part sharing a store's
    connection (tracking, dead letters, request keys) is covered without a wrapper of
    its own."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        with sqlite_unavailable():
            return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        with sqlite_unavailable():
            return super().executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        with sqlite_unavailable():
            return super().executescript(sql_script)


def shared_database(path: Path) -> StoreConnection:
    """A private (0600) SQLite database in WAL mode that a server reads on every request
    while a command-line tool writes it from another process (API credentials, users):
    a writer's lock is waited out as the agency stores do, then said as
    ``StoreUnavailable`` rather than SQLite's own error. Usable from several threads;
    the caller serialises its transactions."""
    # Before SQLite opens it, so that its WAL is private too (``broker.files.private``).
    private_file(path)
    db = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_SECONDS,
        factory=StoreConnection,
    )
    assert isinstance(db, StoreConnection)  # noqa: S101 - the factory made it
    db.execute("PRAGMA journal_mode=WAL")
    return db


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.hex()] for k, v in headers])


def _decode_headers(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes.fromhex(v)) for k, v in json.loads(text))


class AgencyStore:
    """The agency's SQLite database; every write happens inside ``transaction()``.

    The case registry's rows (``broker.gateway.cases``) live here too, as JSON records
    this module stores and finds without reading them. Two parts own tables of their
    own on the same connection, and so join the same transactions: ``tracking`` (what
    the agency sent and who has receipted it, ``broker.gateway.tracking``) and
    ``deadletters`` (what it refused, ``broker.gateway.deadletters``). No other module
    reaches the connection.
    """

    def __init__(self, path: Path) -> None:
        # Personal data: the service user's alone (``broker.files.private``).
        private_file(path)
        self.path = path
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS, factory=StoreConnection
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a transaction reported committed survives power loss. The audit trail
            # of a public-protection system is worth the fsync.
            self._db.execute("PRAGMA synchronous=FULL")
            upgrade(SCHEMA, self._db, SqliteTarget(self._db))
        except BaseException:
            # A store that cannot be opened (a migration that failed) holds no connection.
            self._db.close()
            raise
        self._in_txn = False
        self.tracking = Tracking(self._db, self._require_txn)
        self.deadletters = DeadLetters(self._db, self._require_txn)
        self.requests = Requests(self._db, self._require_txn)

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit. Inside another transaction it joins the outer one (a poll
        batch commits once), and an exception anywhere rolls back the whole unit. Raises
        ``StoreUnavailable`` if the database is locked past ``BUSY_TIMEOUT_SECONDS``,
        full, read-only or failing: nothing of the unit is kept."""
        if self._in_txn:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_txn = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) can leave the transaction open, and SQLite may
            # have rolled back already: end it either way, or the next BEGIN would fail.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._in_txn = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``transaction()``: a part of the unit that an exception undoes on its own
        (what the unit did before it stands), the exception propagating. One record of a
        batch that fails half-way leaves nothing of itself behind. Raises
        ``RuntimeError`` outside ``transaction()``."""
        self._require_txn()
        self._db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO part")
            self._db.execute("RELEASE part")
            raise
        self._db.execute("RELEASE part")

    def _require_txn(self) -> None:
        if not self._in_txn:
            raise RuntimeError("call inside store.transaction()")

    def require_transaction(self) -> None:
        """Raise ``RuntimeError`` unless called inside ``transaction()``: for a caller
        whose several writes must be one unit."""
        self._require_txn()

    # -- offsets ----------------------------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of each ``(topic, partition)`` processed so far."""
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(t, p): o for t, p, o in rows}

    def advance(self, topic: str, partition: int, offset: int) -> None:
        """Record ``offset`` as processed, so reading resumes after it (never moving back).
        Raises ``RuntimeError`` outside ``transaction()``."""
        self._require_txn()
        self._db.execute(
            "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            (topic, partition, offset + 1),
        )

    def forget_offsets(self, partitions: Sequence[tuple[str, int]] | None = None) -> None:
        """Forget where reading got to in ``partitions`` (every one if None): their log
        was lost or replaced, and is read again from its beginning (replay memory
        recognises what was taken already)."""
        with self.transaction():
            if partitions is None:
                self._db.execute("DELETE FROM offsets")
            else:
                self._db.executemany(
                    "DELETE FROM offsets WHERE topic = ? AND partition = ?", list(partitions)
                )

    def broker_cluster(self) -> str | None:
        """The id of the Kafka cluster the offsets were read from; None before any."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'kafka_cluster'").fetchone()
        return None if row is None else str(row[0])

    def set_broker_cluster(self, cluster_id: str) -> None:
        """Record the Kafka cluster the offsets are now read from."""
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('kafka_cluster', ?)", (cluster_id,)
            )

    # -- replay memory ----------------------------------------------------------------------
    def seen_digest(self, sender: str, message_id: str) -> str | None:
        """The digest ``sender``'s ``message_id`` was taken with; None if it was never
        taken (or has been forgotten). Another sender's message with the same id is
        another message; an id remembered without its sender (``UNKNOWN_SENDER``)
        matches any."""
        row = self._db.execute(
            "SELECT digest FROM seen WHERE message_id = ? AND sender IN (?, ?) "
            "ORDER BY sender DESC LIMIT 1",
            (message_id, sender, UNKNOWN_SENDER),
        )
        found = row.fetchone()
        return None if found is None else str(found[0])

    def remember(
        self,
        sender: str,
        message_id: str,
        digest: str,
        *,
        topic: str,
        created_at: str,
        seen_at: str,
    ) -> None:
        """Remember ``sender``'s ``message_id`` and its digest against replays. Raises
        ``RuntimeError`` outside ``transaction()`` and ``sqlite3.IntegrityError`` if it
        is remembered already."""
        self._require_txn()
        self._db.execute(
            "INSERT INTO seen VALUES (?, ?, ?, ?, ?, ?)",
            (sender, message_id, digest, topic, created_at, seen_at),
        )

    def forget_seen_before(self, created_before: str) -> int:
        """Drop replay memory older than the window; such messages are refused as stale."""
        with self.transaction():
            cur = self._db.execute("DELETE FROM seen WHERE created_at < ?", (created_before,))
        return cur.rowcount

    # -- inbox ------------------------------------------------------------------------------
    def add_to_inbox(self, item: InboxItem) -> None:
        """Hold ``item`` in the inbox. Raises ``RuntimeError`` outside ``transaction()`` and
        ``sqlite3.IntegrityError`` if its sender's message with its id is held already
        (another sender's message with that id is another message)."""
        self._insert_item("inbox", item)

    def _insert_item(self, table: HeldTable, item: InboxItem) -> None:
        """``item`` as a row of ``table`` (the inbox's layout)."""
        self._require_txn()
        self._db.execute(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                item.message_id,
                item.topic,
                item.sender,
                item.message_type,
                item.subject_ref,
                item.view,
                item.isa_id,
                item.isa_version,
                item.created_at,
                item.received_at,
                item.acknowledged_at,
                item.envelope,
                item.acknowledged_by,
            ),
        )

    def keep_own(self, item: InboxItem) -> None:
        """Keep ``item``, a message this agency published sealed to itself, in its own
        record (``own_records``). Raises ``RuntimeError`` outside ``transaction()``."""
        self._insert_item("own_records", item)

    def held_of_types(self, message_types: Sequence[str]) -> Iterator[InboxItem]:
        """Every message of ``message_types`` this agency holds: its inbox, then its own
        record of what it published, each in the order it was taken."""
        marks = ", ".join("?" * len(message_types))
        for table in HELD_TABLES:
            rows = self._db.execute(
                f"SELECT * FROM {table} WHERE message_type IN ({marks}) "  # noqa: S608
                f"ORDER BY {_DELIVERY_ORDER}",
                tuple(message_types),
            )
            for row in rows.fetchall():
                yield InboxItem(*row)

    def inbox_size(self) -> int:
        """How many messages the inbox holds."""
        row = self._db.execute("SELECT count(*) FROM inbox").fetchone()
        return int(row[0])

    def inbox(self, *, unacknowledged_only: bool = False, limit: int = 100) -> list[InboxItem]:
        """The first ``limit`` items held, in delivery order (only those not acknowledged,
        if asked)."""
        where = "WHERE acknowledged_at IS NULL" if unacknowledged_only else ""
        rows = self._db.execute(
            f"SELECT * FROM inbox {where} ORDER BY {_DELIVERY_ORDER} LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [InboxItem(*row) for row in rows]

    def inbox_page(
        self,
        *,
        after: InboxPosition | None = None,
        unacknowledged_only: bool = False,
        limit: int = 100,
    ) -> list[InboxItem]:
        """Keyset paging in delivery order: the items after ``after``, an item's
        ``(received_at, message_id, sender)``, or ``(received_at, message_id)`` for after
        every sender's message with that id. Stable while new messages arrive, unlike an
        offset."""
        clauses, params = [], []
        if unacknowledged_only:
            clauses.append("acknowledged_at IS NULL")
        if after is not None:
            columns = _DELIVERY_ORDER if len(after) == 3 else "received_at, message_id"
            clauses.append(f"({columns}) > ({', '.join('?' * len(after))})")
            params += list(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT * FROM inbox {where} ORDER BY {_DELIVERY_ORDER} LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [InboxItem(*row) for row in rows]

    def inbox_item(self, message_id: str, *, sender: str | None = None) -> InboxItem | None:
        """The item ``sender`` sent as ``message_id``; None if there is none. Without a
        sender, the one item held with that id. Raises ``AmbiguousMessage``
        (``inbox.ambiguous``) if no sender is given and several senders' messages have
        that id: which one is meant is for the caller to say."""
        if sender is not None:
            row = self._db.execute(
                "SELECT * FROM inbox WHERE sender = ? AND message_id = ?", (sender, message_id)
            ).fetchone()
            return None if row is None else InboxItem(*row)
        found = [
            InboxItem(*row)
            for row in self._db.execute(
                "SELECT * FROM inbox WHERE message_id = ? ORDER BY sender", (message_id,)
            )
        ]
        if len(found) > 1:
            # Agency ids only: whose messages they are, never what they say.
            raise AmbiguousMessage(
                f"message_id {message_id} is held from {len(found)} senders "
                f"({', '.join(i.sender for i in found)}): the sender must be given"
            )
        return found[0] if found else None

    def acknowledge(self, message_id: str, at: str, *, by: str, sender: str | None = None) -> bool:
        """Mark ``sender``'s item ``message_id`` (without a sender: the one item held with
        that id) acknowledged at ``at`` by ``by``; returns False, changing nothing, if no such item
        is held or it was acknowledged before (the first time is kept). Raises
        ``AmbiguousMessage`` as ``inbox_item`` does."""
        with self.transaction():
            item = self.inbox_item(message_id, sender=sender)
            if item is None:
                return False
            cur = self._db.execute(
                "UPDATE inbox SET acknowledged_at = ?, acknowledged_by = ? "
                "WHERE sender = ? AND message_id = ? AND acknowledged_at IS NULL",
                (at, by, item.sender, message_id),
            )
        return cur.rowcount == 1

    def inbox_about(self, subject_ref: str) -> list[InboxItem]:
        """Every inbox item about the subject, in delivery order."""
        rows = self._db.execute(
            f"SELECT * FROM inbox WHERE subject_ref = ? ORDER BY {_DELIVERY_ORDER}",  # noqa: S608
            (subject_ref,),
        )
        return [InboxItem(*row) for row in rows]

    def inbox_received_before(
        self, received_before: str, *, table: HeldTable = "inbox"
    ) -> list[InboxItem]:
        """Every item received (or, in ``own_records``, kept) before the timestamp
        ``received_before``, oldest first."""
        rows = self._db.execute(
            f"SELECT * FROM {table} WHERE received_at < ? ORDER BY {_DELIVERY_ORDER}",  # noqa: S608
            (received_before,),
        )
        return [InboxItem(*row) for row in rows]

    def delete_inbox_item(
        self, message_id: str, *, sender: str, table: HeldTable = "inbox"
    ) -> None:
        """Retention erasure only, of ``sender``'s item ``message_id`` (from the inbox, or
        the agency's own record); the caller records it (see ``broker.gateway.lifecycle``)."""
        self._require_txn()
        self._db.execute(
            f"DELETE FROM {table} WHERE sender = ? AND message_id = ?",  # noqa: S608
            (sender, message_id),
        )

    # -- outbox -----------------------------------------------------------------------------
    def enqueue(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> int:
        """Queue a record for ``topic`` in the outbox, for the relay to send; returns its
        sequence number. Raises ``RuntimeError`` outside ``transaction()``."""
        self._require_txn()
        cur = self._db.execute(
            "INSERT INTO outbox (topic, key, value, headers) VALUES (?, ?, ?, ?)",
            (topic, key, value, _encode_headers(headers)),
        )
        return int(cur.lastrowid or 0)

    def unsent(self, limit: int = 500) -> list[OutboxRow]:
        """The first ``limit`` rows not yet sent, oldest first."""
        rows = self._db.execute(
            "SELECT seq, topic, key, value, headers FROM outbox WHERE sent = 0 "
            "ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [OutboxRow(s, t, k, v, _decode_headers(h)) for s, t, k, v, h in rows]

    def mark_sent(self, seqs: Sequence[int]) -> None:
        """Mark the rows numbered ``seqs`` sent."""
        with self.transaction():
            self._db.executemany("UPDATE outbox SET sent = 1 WHERE seq = ?", [(s,) for s in seqs])

    def set_aside(self, seq: int) -> None:
        """The broker refuses the row numbered ``seq`` for good (too large): keep it, but
        never send it again, so the rows behind it go (``set_aside_rows`` lists them)."""
        self._require_txn()
        self._db.execute("UPDATE outbox SET sent = 2 WHERE seq = ?", (seq,))

    def set_aside_rows(self) -> list[int]:
        """The rows set aside as refused for good by the broker, oldest first."""
        rows = self._db.execute("SELECT seq FROM outbox WHERE sent = 2 ORDER BY seq")
        return [int(r[0]) for r in rows]

    def mark_unsent(self, seq: int) -> None:
        """Send the row numbered ``seq`` again (nobody receipted it in time)."""
        self._require_txn()
        self._db.execute("UPDATE outbox SET sent = 0 WHERE seq = ?", (seq,))

    def outbox_counts(self) -> dict[str, int]:
        """How many rows the outbox holds for each topic, sent or not."""
        rows = self._db.execute("SELECT topic, count(*) FROM outbox GROUP BY topic")
        return dict(rows)

    # -- case teams -------------------------------------------------------------------------
    def case_team(self, subject_ref: str) -> frozenset[str] | None:
        """The members of the latest case team this adapter knows for the subject."""
        row = self._db.execute(
            "SELECT members FROM case_teams WHERE subject_ref = ?", (subject_ref,)
        ).fetchone()
        return None if row is None else frozenset(json.loads(row[0]))

    def case_teams(self) -> list[CaseTeamHeld]:
        """Every case team this adapter holds, the latest set first."""
        rows = self._db.execute(
            "SELECT subject_ref, members, lead_agency, set_at FROM case_teams "
            "ORDER BY set_at DESC, subject_ref"
        )
        return [
            CaseTeamHeld(ref, tuple(json.loads(members)), lead, set_at)
            for ref, members, lead, set_at in rows
        ]

    def record_case_team(
        self,
        subject_ref: str,
        members: Sequence[str],
        *,
        lead_agency: str,
        set_at: str,
        message_id: str,
    ) -> bool:
        """Keep the team if it is newer than the one held (by the time it was set, then
        message id); False if an older team arrived late and was ignored."""
        self._require_txn()
        cur = self._db.execute(
            "INSERT INTO case_teams VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_ref) DO UPDATE "
            "SET members = excluded.members, lead_agency = excluded.lead_agency, "
            "set_at = excluded.set_at, message_id = excluded.message_id "
            "WHERE (excluded.set_at, excluded.message_id) > (case_teams.set_at, "
            "case_teams.message_id)",
            (subject_ref, json.dumps(sorted(members)), lead_agency, set_at, message_id),
        )
        return cur.rowcount == 1

    # -- the case registry's rows (see broker.gateway.cases) -------------------------------
    def transfer_json(self, transfer_id: str) -> str | None:
        """The stored record of one transfer, as JSON; None if unknown."""
        row = self._db.execute(
            "SELECT record FROM transfers WHERE transfer_id = ?", (transfer_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def latest_transfer_json(self, subject_ref: str, states: Sequence[str]) -> str | None:
        """The subject's most recently changed transfer in one of ``states``, as JSON."""
        marks = ", ".join("?" * len(states))
        row = self._db.execute(
            f"SELECT record FROM transfers WHERE subject_ref = ? AND state IN ({marks}) "  # noqa: S608
            "ORDER BY seq DESC LIMIT 1",
            (subject_ref, *states),
        ).fetchone()
        return None if row is None else str(row[0])

    def transfers_json(self, state: str | None = None) -> list[str]:
        """Every transfer record (or those in ``state``), oldest change first, as JSON."""
        if state is None:
            rows = self._db.execute("SELECT record FROM transfers ORDER BY seq")
        else:
            rows = self._db.execute(
                "SELECT record FROM transfers WHERE state = ? ORDER BY seq", (state,)
            )
        return [str(r[0]) for r in rows]

    def put_transfer(self, transfer_id: str, subject_ref: str, state: str, record: str) -> None:
        """Insert or replace a transfer's record; it becomes the latest change."""
        self._require_txn()
        self._db.execute(
            "INSERT INTO transfers VALUES (?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 "
            "FROM transfers), ?) ON CONFLICT (transfer_id) DO UPDATE SET state = excluded.state, "
            "seq = excluded.seq, record = excluded.record",
            (transfer_id, subject_ref, state, record),
        )

    def reshared(self, transfer_id: str) -> set[tuple[str, str]]:
        """The held messages, as ``(sender, message_id)``, already handled by the handover
        of ``transfer_id``."""
        rows = self._db.execute(
            "SELECT sender, message_id FROM transfer_reshared WHERE transfer_id = ?",
            (transfer_id,),
        )
        return {(str(r[0]), str(r[1])) for r in rows}

    def mark_reshared(
        self, transfer_id: str, sender: str, message_id: str, reshared_as: str
    ) -> None:
        """Remember how the handover of ``transfer_id`` dealt with ``sender``'s message
        ``message_id``."""
        self._require_txn()
        self._db.execute(
            "INSERT INTO transfer_reshared VALUES (?, ?, ?, ?)",
            (transfer_id, sender, message_id, reshared_as),
        )
