"""Ledger storage (SQLite): one row per accepted audit event, in arrival order.

The row keeps the signed event exactly as received, so anyone can re-verify the
emitting adapter's signature later; the other columns exist for queries.
Records the ledger could not accept are kept apart, with the reason.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from schemas.audit import SignedAuditEvent

_COLUMNS = (
    "event_id",
    "time",
    "act",
    "operation",
    "agency",
    "user",
    "area",
    "subject_ref",
    "message_id",
    "message_type",
    "isa_id",
    "isa_version",
    "purpose",
    "lawful_basis",
    "recipient",
    "view",
    "justification",
    "outcome",
    "reason_code",
    "reason",
)

_QUOTED = ", ".join(f'"{c}"' for c in _COLUMNS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    {", ".join(f'"{c}" TEXT' for c in _COLUMNS)},
    signed BLOB NOT NULL,
    UNIQUE (event_id)
);
CREATE INDEX IF NOT EXISTS entries_subject ON entries (subject_ref, seq);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, partition INTEGER, "offset" INTEGER,
    reason_code TEXT NOT NULL, reason TEXT NOT NULL, raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


class LedgerStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(t, p): o for t, p, o in rows}

    def _advance(self, topic: str, partition: int, offset: int) -> None:
        self._db.execute(
            "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            (topic, partition, offset + 1),
        )

    def append(self, signed: SignedAuditEvent, raw: bytes, *, at: tuple[str, int, int]) -> bool:
        """Append one verified event; False if its event id is already in the ledger."""
        event = signed.event.model_dump(mode="json")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._advance(*at)
            exists = self._db.execute(
                "SELECT 1 FROM entries WHERE event_id = ?", (signed.event.event_id,)
            ).fetchone()
            if exists is None:
                self._db.execute(
                    f"INSERT INTO entries ({_QUOTED}, signed) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in _COLUMNS)}, ?)",
                    (*(event[c] for c in _COLUMNS), raw),
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return exists is None

    def reject(self, raw: bytes, *, at: tuple[str, int, int], code: str, reason: str) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._advance(*at)
            self._db.execute(
                'INSERT INTO rejected (topic, partition, "offset", reason_code, reason, raw) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*at, code, reason, raw),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def entries(self, **where: Any) -> list[dict[str, Any]]:
        unknown = set(where) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        clause = " AND ".join(f'"{c}" = ?' for c in where) or "1"
        rows = self._db.execute(
            f"SELECT seq, {_QUOTED} FROM entries "  # noqa: S608
            f"WHERE {clause} ORDER BY seq",
            tuple(where.values()),
        )
        return [dict(zip(("seq", *_COLUMNS), row, strict=True)) for row in rows]

    def rejected(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT reason_code, reason FROM rejected ORDER BY id")
        return [{"reason_code": c, "reason": r} for c, r in rows]
