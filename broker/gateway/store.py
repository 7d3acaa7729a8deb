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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS seen (
    message_id TEXT PRIMARY KEY, digest TEXT NOT NULL, topic TEXT NOT NULL,
    created_at TEXT NOT NULL, seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_created ON seen (created_at);
CREATE TABLE IF NOT EXISTS inbox (
    message_id TEXT PRIMARY KEY, topic TEXT NOT NULL, sender TEXT NOT NULL,
    message_type TEXT NOT NULL, subject_ref TEXT NOT NULL, view TEXT NOT NULL,
    isa_id TEXT NOT NULL, isa_version INTEGER NOT NULL, created_at TEXT NOT NULL,
    received_at TEXT NOT NULL, acknowledged_at TEXT, envelope BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB,
    value BLOB NOT NULL, headers TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent, seq);
CREATE TABLE IF NOT EXISTS case_teams (
    subject_ref TEXT PRIMARY KEY, members TEXT NOT NULL, lead_agency TEXT NOT NULL,
    set_at TEXT NOT NULL, message_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class InboxItem:
    message_id: str
    topic: str
    sender: str
    message_type: str
    subject_ref: str
    view: str
    isa_id: str
    isa_version: int
    created_at: str
    received_at: str
    acknowledged_at: str | None
    envelope: bytes


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.hex()] for k, v in headers])


def _decode_headers(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes.fromhex(v)) for k, v in json.loads(text))


class AgencyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a transaction reported committed survives power loss. The audit trail
        # of a public-protection system is worth the fsync.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._in_txn = False

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit. Inside another transaction it joins the outer one (a poll
        batch commits once), and an exception anywhere rolls back the whole unit."""
        if self._in_txn:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_txn = True
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_txn = False

    def _require_txn(self) -> None:
        if not self._in_txn:
            raise RuntimeError("call inside store.transaction()")

    # -- for modules that keep their own tables here (the transfer case registry) ---------
    @property
    def db(self) -> sqlite3.Connection:
        """The same connection, so another module's writes join ``transaction()``."""
        return self._db

    def require_transaction(self) -> None:
        self._require_txn()

    # -- offsets ----------------------------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(t, p): o for t, p, o in rows}

    def advance(self, topic: str, partition: int, offset: int) -> None:
        self._require_txn()
        self._db.execute(
            "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            (topic, partition, offset + 1),
        )

    # -- replay memory ----------------------------------------------------------------------
    def seen_digest(self, message_id: str) -> str | None:
        row = self._db.execute("SELECT digest FROM seen WHERE message_id = ?", (message_id,))
        found = row.fetchone()
        return None if found is None else str(found[0])

    def remember(
        self, message_id: str, digest: str, topic: str, created_at: str, seen_at: str
    ) -> None:
        self._require_txn()
        self._db.execute(
            "INSERT INTO seen VALUES (?, ?, ?, ?, ?)",
            (message_id, digest, topic, created_at, seen_at),
        )

    def forget_seen_before(self, created_before: str) -> int:
        """Drop replay memory older than the window; such messages are refused as stale."""
        with self.transaction():
            cur = self._db.execute("DELETE FROM seen WHERE created_at < ?", (created_before,))
        return cur.rowcount

    # -- inbox ------------------------------------------------------------------------------
    def add_to_inbox(self, item: InboxItem) -> None:
        self._require_txn()
        self._db.execute(
            "INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )

    def inbox(self, *, unacknowledged_only: bool = False, limit: int = 100) -> list[InboxItem]:
        where = "WHERE acknowledged_at IS NULL" if unacknowledged_only else ""
        rows = self._db.execute(
            f"SELECT * FROM inbox {where} ORDER BY received_at, message_id LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [InboxItem(*row) for row in rows]

    def inbox_page(
        self,
        *,
        after: tuple[str, str] | None = None,
        unacknowledged_only: bool = False,
        limit: int = 100,
    ) -> list[InboxItem]:
        """Keyset paging in delivery order: the items after ``(received_at, message_id)``.
        Stable while new messages arrive, unlike an offset."""
        clauses, params = [], []
        if unacknowledged_only:
            clauses.append("acknowledged_at IS NULL")
        if after is not None:
            clauses.append("(received_at, message_id) > (?, ?)")
            params += list(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT * FROM inbox {where} ORDER BY received_at, message_id LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [InboxItem(*row) for row in rows]

    def inbox_item(self, message_id: str) -> InboxItem | None:
        row = self._db.execute("SELECT * FROM inbox WHERE message_id = ?", (message_id,))
        found = row.fetchone()
        return None if found is None else InboxItem(*found)

    def acknowledge(self, message_id: str, at: str) -> bool:
        with self.transaction():
            cur = self._db.execute(
                "UPDATE inbox SET acknowledged_at = ? WHERE message_id = ? "
                "AND acknowledged_at IS NULL",
                (at, message_id),
            )
        return cur.rowcount == 1

    def inbox_received_before(self, received_before: str) -> list[InboxItem]:
        rows = self._db.execute(
            "SELECT * FROM inbox WHERE received_at < ? ORDER BY received_at, message_id",
            (received_before,),
        )
        return [InboxItem(*row) for row in rows]

    def delete_inbox_item(self, message_id: str) -> None:
        """Retention erasure only; the caller records it (see ``broker.gateway.lifecycle``)."""
        self._require_txn()
        self._db.execute("DELETE FROM inbox WHERE message_id = ?", (message_id,))

    # -- outbox -----------------------------------------------------------------------------
    def enqueue(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._require_txn()
        self._db.execute(
            "INSERT INTO outbox (topic, key, value, headers) VALUES (?, ?, ?, ?)",
            (topic, key, value, _encode_headers(headers)),
        )

    def unsent(self, limit: int = 500) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT seq, topic, key, value, headers FROM outbox WHERE sent = 0 "
            "ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [OutboxRow(s, t, k, v, _decode_headers(h)) for s, t, k, v, h in rows]

    def mark_sent(self, seqs: Sequence[int]) -> None:
        with self.transaction():
            self._db.executemany("UPDATE outbox SET sent = 1 WHERE seq = ?", [(s,) for s in seqs])

    def outbox_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT topic, count(*) FROM outbox GROUP BY topic")
        return dict(rows)

    # -- case teams -------------------------------------------------------------------------
    def case_team(self, subject_ref: str) -> frozenset[str] | None:
        """The members of the latest case team this adapter knows for the subject."""
        row = self._db.execute(
            "SELECT members FROM case_teams WHERE subject_ref = ?", (subject_ref,)
        ).fetchone()
        return None if row is None else frozenset(json.loads(row[0]))

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
