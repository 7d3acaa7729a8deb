"""Ledger storage (SQLite or PostgreSQL): the audit log, its Merkle nodes, its checkpoints.

``entries``: one row per accepted audit event, in arrival order. ``seq`` is the
entry's leaf index (0-based) in the Merkle log; ``signed`` keeps the signed event
exactly as received, so anyone can re-verify the emitting adapter's signature,
and the leaf is ``SHA-256(0x00 || signed)``. The other columns are copies of the
fields officers filter on (``STORED``), kept for indexes; ``verify`` checks they
still agree. Rows are read back from ``signed``, the one authoritative copy.

``nodes``: the hash of every complete aligned subtree, keyed ``index * 64 + level``
(level 0 holds the leaf hashes as recorded at append time), so a proof is a
handful of point look-ups (see ``merkle``). ``checkpoints``: every signed tree head.
``rejected``: records the ledger refused (bad signature, unknown agency, malformed),
kept with the reason. Nothing here is ever updated or deleted by the product.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from broker.ledger import merkle
from broker.ledger.database import Database, connect
from schemas.audit import AuditEvent, SignedAuditEvent

COLUMNS = (
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
# The fields officers filter on: copied into columns (the rest is read from ``signed``).
STORED = ("event_id", "time", "act", "agency", "user", "subject_ref", "isa_id", "outcome")
_QUOTED = ", ".join(f'"{c}"' for c in STORED)
# Columns an officer filters on; each has an index ending in seq, so a page is an index walk.
INDEXED = ("subject_ref", "agency", "user", "isa_id", "time")
# Levels fit in 6 bits (a tree of 2**63 leaves has 63 levels).
_LEVEL_BITS = 6
_LEVEL_MASK = (1 << _LEVEL_BITS) - 1
# SQLite allows 32,766 bound variables; stay well inside for look-ups by key.
_MAX_IN = 900


def node_id(level: int, index: int) -> int:
    return (index << _LEVEL_BITS) | level


def _schema(dialect: str) -> str:
    blob, big = ("BYTEA", "BIGINT") if dialect == "postgresql" else ("BLOB", "INTEGER")
    serial = "BIGSERIAL" if dialect == "postgresql" else "INTEGER"
    no_rowid = "" if dialect == "postgresql" else " WITHOUT ROWID"
    indexes = "\n".join(
        f'CREATE INDEX IF NOT EXISTS entries_{c} ON entries ("{c}", seq);' for c in INDEXED
    )
    return f"""
CREATE TABLE IF NOT EXISTS entries (
    seq {big} PRIMARY KEY,
    {", ".join(f'"{c}" TEXT' for c in STORED)},
    signed {blob} NOT NULL,
    UNIQUE (event_id)
);
{indexes}
CREATE TABLE IF NOT EXISTS nodes (id {big} PRIMARY KEY, hash {blob} NOT NULL){no_rowid};
CREATE TABLE IF NOT EXISTS checkpoints (
    size {big} PRIMARY KEY, time TEXT NOT NULL, note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    id {serial} PRIMARY KEY, topic TEXT, partition {big}, "offset" {big},
    reason_code TEXT NOT NULL, reason TEXT NOT NULL, raw {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition {big} NOT NULL, next_offset {big} NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


_ENUM_AT = tuple(STORED.index(c) for c in ("act", "outcome"))


def event_row(event: AuditEvent) -> list[Any]:
    """The stored columns of an event, as text (enum values).
    On the append path of every event, so it reads the model's fields directly."""
    row: list[Any] = list(map(event.__dict__.__getitem__, STORED))
    for i in _ENUM_AT:
        row[i] = row[i].value
    return row


def event_fields(signed: bytes) -> dict[str, Any]:
    """Every event field of a stored row, read from its signed bytes."""
    event = json.loads(signed)["event"]
    return {c: event.get(c) for c in COLUMNS}


Item = tuple[SignedAuditEvent, bytes, tuple[str, int, int] | None]


class LedgerStore:
    def __init__(self, target: Path | str) -> None:
        self.target = target
        self.db: Database = connect(target)
        self.dialect = self.db.dialect
        self.db.script(_schema(self.dialect))
        self._tree = self._load_tree()

    def close(self) -> None:
        self.db.close()

    def _load_tree(self) -> merkle.CompactRange:
        size = self.size()
        edge = merkle.CompactRange.edge_keys(size)
        nodes = self.nodes(edge)
        return merkle.CompactRange(size, [nodes[k] for k in edge])

    # -- offsets ----------------------------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self.db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(t, int(p)): int(o) for t, p, o in rows}

    def _advance(self, at: Iterable[tuple[str, int, int]]) -> None:
        highest: dict[tuple[str, int], int] = {}
        for topic, partition, offset in at:
            key = (topic, partition)
            highest[key] = max(highest.get(key, -1), offset + 1)
        biggest = "GREATEST" if self.dialect == "postgresql" else "max"
        self.db.executemany(
            "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "  # noqa: S608
            f"DO UPDATE SET next_offset = {biggest}(offsets.next_offset, excluded.next_offset)",
            [(t, p, o) for (t, p), o in highest.items()],
        )

    # -- appending --------------------------------------------------------------------------
    def append(self, signed: SignedAuditEvent, raw: bytes, *, at: tuple[str, int, int]) -> bool:
        """Append one verified event; False if its event id is already in the ledger."""
        return self.append_batch([(signed, raw, at)]) == 1

    def append_batch(self, items: Sequence[Item]) -> int:
        """Append verified events in the given (arrival) order, in one transaction.
        Events whose id is already in the ledger are skipped; returns how many were added."""
        ids = [s.event.event_id for s, _, _ in items]
        present = self._present(ids)
        tree = self._tree.copy()
        entries: list[list[Any]] = []
        nodes: list[tuple[int, bytes]] = []
        for signed, raw, _ in items:
            event_id = signed.event.event_id
            if event_id in present:
                continue
            present.add(event_id)
            seq = tree.size
            for level, index, h in tree.append(merkle.leaf_hash(raw)):
                nodes.append((node_id(level, index), h))
            entries.append([seq, *event_row(signed.event), raw])
        with self.db.transaction():
            self._advance(at for _, _, at in items if at is not None)
            if entries:
                self.db.executemany(
                    f"INSERT INTO entries (seq, {_QUOTED}, signed) "  # noqa: S608
                    f"VALUES (?, {', '.join('?' for _ in STORED)}, ?)",
                    entries,
                )
                self.db.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", nodes)
        self._tree = tree
        return len(entries)

    def _present(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(event_ids), _MAX_IN):
            chunk = event_ids[i : i + _MAX_IN]
            rows = self.db.execute(
                f"SELECT event_id FROM entries WHERE event_id IN "  # noqa: S608
                f"({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update(r[0] for r in rows)
        return found

    def reject(self, raw: bytes, *, at: tuple[str, int, int], code: str, reason: str) -> None:
        with self.db.transaction():
            self._advance([at])
            self.db.execute(
                'INSERT INTO rejected (topic, partition, "offset", reason_code, reason, raw) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*at, code, reason, raw),
            )

    # -- the tree ---------------------------------------------------------------------------
    @property
    def tree_size(self) -> int:
        """Entries appended through this store (the size the next checkpoint signs)."""
        return self._tree.size

    def tree_root(self) -> bytes:
        return self._tree.root()

    def size(self) -> int:
        row = self.db.execute("SELECT max(seq) FROM entries")
        return 0 if row[0][0] is None else int(row[0][0]) + 1

    def nodes(self, keys: Iterable[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        wanted = {node_id(level, index): (level, index) for level, index in keys}
        ids = list(wanted)
        found: dict[merkle.NodeKey, bytes] = {}
        for i in range(0, len(ids), _MAX_IN):
            chunk = ids[i : i + _MAX_IN]
            rows = self.db.execute(
                f"SELECT id, hash FROM nodes WHERE id IN ({', '.join('?' for _ in chunk)})",  # noqa: S608
                chunk,
            )
            found.update((wanted[int(k)], bytes(h)) for k, h in rows)
        return found

    def recorded_leaves(
        self, start: int = 0, end: int | None = None, batch: int = 20_000
    ) -> Iterator[tuple[int, bytes]]:
        """(leaf index, leaf hash as recorded at append time) for ``[start, end)``, in order."""
        after = (start << _LEVEL_BITS) - 1
        stop = (1 << 62) if end is None else end << _LEVEL_BITS
        while True:
            rows = self.db.execute(
                "SELECT id, hash FROM nodes WHERE id > ? AND id < ? "  # noqa: S608
                f"AND (id & {_LEVEL_MASK}) = 0 ORDER BY id LIMIT ?",
                (after, stop, batch),
            )
            for k, h in rows:
                yield int(k) >> _LEVEL_BITS, bytes(h)
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def has_leaf(self, index: int) -> bool:
        return bool(self.db.execute("SELECT 1 FROM nodes WHERE id = ?", (node_id(0, index),)))

    def signed_entries(self, batch: int = 20_000) -> Iterator[tuple[int, bytes]]:
        """(seq, signed bytes) of every stored row, in seq order."""
        after = -1
        while True:
            rows = self.db.execute(
                "SELECT seq, signed FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, batch),
            )
            for seq, raw in rows:
                yield int(seq), bytes(raw)
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    # -- checkpoints ------------------------------------------------------------------------
    def add_checkpoint(self, size: int, time: str, note: str) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO checkpoints (size, time, note) VALUES (?, ?, ?)", (size, time, note)
            )

    def checkpoints(self) -> list[tuple[int, str, str]]:
        rows = self.db.execute("SELECT size, time, note FROM checkpoints ORDER BY size")
        return [(int(s), t, n) for s, t, n in rows]

    def latest_checkpoint(self) -> tuple[int, str, str] | None:
        rows = self.db.execute(
            "SELECT size, time, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        )
        return None if not rows else (int(rows[0][0]), rows[0][1], rows[0][2])

    def checkpoint_at(self, size: int) -> tuple[int, str, str] | None:
        rows = self.db.execute("SELECT size, time, note FROM checkpoints WHERE size = ?", (size,))
        return None if not rows else (int(rows[0][0]), rows[0][1], rows[0][2])

    # -- reading ----------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM entries")[0][0])

    def select(
        self,
        equals: Mapping[str, str],
        *,
        since: str | None = None,
        until: str | None = None,
        after_seq: int = -1,
        limit: int | None = None,
        with_signed: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows matching every filter, in seq order. Column names are checked against
        ``STORED`` before they reach SQL; values are always bound parameters."""
        unknown = set(equals) - set(STORED)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        clauses = [f'"{c}" = ?' for c in equals] + ["seq > ?"]
        params: list[Any] = [*equals.values(), after_seq]
        if since is not None:
            clauses.append('"time" >= ?')
            params.append(since)
        if until is not None:
            clauses.append('"time" < ?')
            params.append(until)
        tail = ""
        if limit is not None:
            tail = " LIMIT ?"
            params.append(limit)
        rows = self.db.execute(
            f"SELECT seq, signed FROM entries "  # noqa: S608
            f"WHERE {' AND '.join(clauses)} ORDER BY seq{tail}",
            params,
        )
        out = []
        for seq, raw in rows:
            d: dict[str, Any] = {"seq": int(seq), **event_fields(bytes(raw))}
            if with_signed:
                d["signed"] = bytes(raw)
            out.append(d)
        return out

    def entries(self, **where: Any) -> list[dict[str, Any]]:
        """Every row whose fields equal ``where`` (stored fields filter in SQL, others here)."""
        unknown = set(where) - set(COLUMNS)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        indexed = {k: str(v) for k, v in where.items() if k in STORED}
        rest = {k: v for k, v in where.items() if k not in STORED}
        return [r for r in self.select(indexed) if all(r[k] == v for k, v in rest.items())]

    def entry(self, seq: int) -> dict[str, Any] | None:
        rows = self.select({}, after_seq=seq - 1, limit=1, with_signed=True)
        return rows[0] if rows and rows[0]["seq"] == seq else None

    def rejected(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            'SELECT id, topic, partition, "offset", reason_code, reason, raw '
            "FROM rejected ORDER BY id"
        )
        return [
            {
                "id": int(i),
                "topic": t,
                "partition": p,
                "offset": o,
                "reason_code": c,
                "reason": r,
                "raw": bytes(raw),
            }
            for i, t, p, o, c, r, raw in rows
        ]

    def column_mismatch(self) -> tuple[int, str] | None:
        return column_mismatch(self.db)


def column_mismatch(db: Database) -> tuple[int, str] | None:
    """The first row whose query columns disagree with its signed event, if any.
    Done inside the database (its JSON functions) so verify stays one pass in Python."""
    if db.dialect == "postgresql":
        doc = "(convert_from(signed, 'UTF8')::jsonb -> 'event')"
        field = [f"{doc} ->> '{c}'" for c in STORED]
        differs = [f'"{c}" IS DISTINCT FROM {f}' for c, f in zip(STORED, field, strict=True)]
    else:
        field = [f"json_extract(CAST(signed AS TEXT), '$.event.{c}')" for c in STORED]
        pairs = zip(STORED, field, strict=True)
        differs = [f'"{c}" IS NOT {f}' for c, f in pairs]
    cases = " ".join(f"WHEN {d} THEN '{c}'" for c, d in zip(STORED, differs, strict=True))
    rows = db.execute(
        f"SELECT seq, CASE {cases} END FROM entries "  # noqa: S608
        f"WHERE {' OR '.join(differs)} ORDER BY seq LIMIT 1"
    )
    return None if not rows else (int(rows[0][0]), str(rows[0][1]))
