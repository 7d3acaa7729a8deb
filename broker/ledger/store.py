"""Ledger storage (SQLite or PostgreSQL): the audit log, its Merkle nodes, its search index.

The log is written a batch at a time (one poll of ``mappa.audit``), in arrival order;
entry ``seq`` is its leaf index (0-based) in the Merkle log. Tables:

``blocks``: the entries' signed bytes, exactly as received, up to ``BLOCK`` entries a
row and never across a ``BLOCK``-aligned boundary: ``data`` is the entries' Merkle leaf
inputs (``0x00 || signed``) end to end, ``ends`` where each ends (uint32 LE),
``leaves`` each leaf hash ``SHA-256(0x00 || signed)`` as recorded at append time.
One row per 64 entries rather than one per entry is what lets appends keep up: a row
per entry costs more than the entry.

``nodes``: the hash of every complete aligned subtree of ``2**TILE_LEVEL`` (16) leaves
or more, keyed ``index * 64 + level``. Lower subtrees are recomputed from the recorded
leaves of their 16-entry window when a proof needs them (at most 15 hashes).

``postings`` and ``batches``: the search index and its digest chain (see ``search``).
Postings are stored in the order they are written and hashed (segment, batch, key), so
an append adds rows at the end and verify reads each batch's postings in one pass;
``postings_by_key`` finds them by key.
``event_ids``: every event id, so a redelivered event is appended once.
``checkpoints``: every signed tree head. ``rejected``: records the ledger refused
(bad signature, unknown agency, malformed), kept with the reason. ``offsets``: how far
the service has read, committed with the entries. Nothing is updated or deleted by
the product.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from broker.errors import ConfigurationError
from broker.ledger import merkle, search
from broker.ledger.database import Database, connect
from schemas.audit import SignedAuditEvent

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
BLOCK = 64
TILE_LEVEL = 4  # nodes below this level are recomputed from a window of 16 leaves
WINDOW = 1 << TILE_LEVEL
SEGMENT_BITS = search.SEGMENT_BITS
# Levels fit in 6 bits (a tree of 2**63 leaves has 63 levels).
_LEVEL_BITS = 6
# SQLite allows 32,766 bound variables; stay well inside for look-ups by key.
_MAX_IN = 900


def node_id(level: int, index: int) -> int:
    return (index << _LEVEL_BITS) | level


def _schema(dialect: str) -> str:
    pg = dialect == "postgresql"
    blob, big = ("BYTEA", "BIGINT") if pg else ("BLOB", "INTEGER")
    serial = "BIGSERIAL" if pg else "INTEGER"
    no_rowid = "" if pg else " WITHOUT ROWID"
    return f"""
CREATE TABLE IF NOT EXISTS blocks (
    first_seq {big} PRIMARY KEY, count {big} NOT NULL,
    ends {blob} NOT NULL, leaves {blob} NOT NULL, data {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (id {big} PRIMARY KEY, hash {blob} NOT NULL){no_rowid};
CREATE TABLE IF NOT EXISTS batches (
    first_seq {big} PRIMARY KEY, count {big} NOT NULL,
    min_time TEXT NOT NULL, max_time TEXT NOT NULL, digest {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS postings (
    segment {big} NOT NULL, key {big} NOT NULL, first_seq {big} NOT NULL,
    offsets TEXT NOT NULL, PRIMARY KEY (segment, first_seq, key)
){no_rowid};
CREATE INDEX IF NOT EXISTS postings_by_key ON postings (segment, key);
CREATE TABLE IF NOT EXISTS event_ids (event_id TEXT PRIMARY KEY){no_rowid};
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


def event_fields(signed: bytes) -> dict[str, Any]:
    """Every event field of a stored entry, read from its signed bytes."""
    event = json.loads(signed)["event"]
    return {c: event.get(c) for c in COLUMNS}


def split_block(ends: bytes, data: bytes) -> list[bytes]:
    """The signed bytes of each entry of a block, from its ``ends`` and ``data`` (each
    entry is stored as its leaf input, ``0x00 || signed``)."""
    out: list[bytes] = []
    start = 0
    for end in array("I", ends):
        out.append(data[start + 1 : end])
        start = end
    return out


Item = tuple[SignedAuditEvent, bytes, tuple[str, int, int] | None]


class LedgerStore:
    def __init__(self, target: Path | str) -> None:
        self.target = target
        self.db: Database = connect(target)
        self.dialect = self.db.dialect
        # A JSON array's elements as rows, and splitting text, in each dialect.
        if self.dialect == "postgresql":
            self._elements = "jsonb_array_elements_text(?::jsonb)"
            self._big = "BIGINT"
            self._before_space = "split_part(value, ' ', 1)"
            self._after_space = "substr(value, strpos(value, ' ') + 1)"
            self._by_key = ""
        else:
            self._elements = "json_each(?)"
            self._big = "INTEGER"
            self._before_space = "substr(value, 1, instr(value, ' ') - 1)"
            self._after_space = "substr(value, instr(value, ' ') + 1)"
            # Without statistics SQLite would walk the segment in stored order instead.
            self._by_key = " INDEXED BY postings_by_key"
        if self._has_table("entries"):
            # Opening it as if empty would start a second log beside the first.
            self.db.close()
            raise ConfigurationError(
                "the ledger database holds an audit log in the earlier layout (one row per "
                "entry, table 'entries'), which this version does not read; keep it as it "
                "is and give this version a new database (MAPPA_DATABASE_URL or data dir)"
            )
        self.db.script(_schema(self.dialect))
        self._tree = self._load_tree()
        rows = self.db.execute("SELECT digest FROM batches ORDER BY first_seq DESC LIMIT 1")
        self._index_digest = bytes(rows[0][0]) if rows else search.GENESIS

    def close(self) -> None:
        self.db.close()

    def _has_table(self, name: str) -> bool:
        if self.dialect == "postgresql":
            return self.db.execute("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0] is True
        rows = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return bool(rows)

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
    def append_batch(self, items: Sequence[Item]) -> int:
        """Append verified events in the given (arrival) order, in one transaction.
        Events whose id is already in the ledger are skipped; returns how many were added."""
        ids = [s.event.event_id for s, _, _ in items]
        present = self._present(ids) if ids else set()
        tree = self._tree.copy()
        first = tree.size
        events = []
        raws: list[bytes] = []
        added: list[str] = []
        for (signed, raw, _), event_id in zip(items, ids, strict=True):
            if event_id in present:
                continue
            present.add(event_id)
            added.append(event_id)
            events.append(signed.event)
            raws.append(raw)
        sha256 = hashlib.sha256
        # Stored as leaf inputs, so verify hashes slices of a block without copying them.
        inputs = [b"\x00" + raw for raw in raws]
        leaves = [sha256(i).digest() for i in inputs]
        nodes = [(node_id(lv, i), h) for lv, i, h in tree.extend(leaves, TILE_LEVEL)]
        digest = self._index_digest
        batch = None
        if events:
            batch = search.build(first, events)
            digest = search.chain(digest, batch)
        with self.db.transaction():
            self._advance(at for _, _, at in items if at is not None)
            if batch is not None:
                self.db.executemany(
                    "INSERT INTO blocks (first_seq, count, ends, leaves, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    list(_blocks(first, inputs, leaves)),
                )
                self.db.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", nodes)
                # Thousands of small rows a batch: handed over as one JSON document and
                # inserted by the database itself, not bound one row at a time.
                # Each "key offsets" line split by the database: the key up to the space.
                self.db.execute(
                    "INSERT INTO postings (segment, key, first_seq, offsets) "  # noqa: S608
                    f"SELECT ?, CAST({self._before_space} AS {self._big}), ?, "
                    f"{self._after_space} FROM {self._elements}",
                    # Lines are digits, minus signs and spaces: a JSON array as is.
                    (first >> SEGMENT_BITS, first, '["' + '","'.join(batch.lines) + '"]'),
                )
                self.db.execute(
                    f"INSERT INTO event_ids (event_id) SELECT value FROM {self._elements}",  # noqa: S608
                    (json.dumps(added),),
                )
                self.db.execute(
                    "INSERT INTO batches (first_seq, count, min_time, max_time, digest) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (first, batch.count, batch.min_time, batch.max_time, digest),
                )
        self._tree = tree
        self._index_digest = digest
        return len(events)

    def _present(self, event_ids: Sequence[str]) -> set[str]:
        rows = self.db.execute(
            "SELECT event_id FROM event_ids "  # noqa: S608
            f"WHERE event_id IN (SELECT value FROM {self._elements})",
            (json.dumps(event_ids),),
        )
        return {r[0] for r in rows}

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

    @property
    def index_digest(self) -> bytes:
        """The search index's chain value at ``tree_size`` (the next checkpoint signs it)."""
        return self._index_digest

    def size(self) -> int:
        rows = self.db.execute(
            "SELECT first_seq + count FROM blocks ORDER BY first_seq DESC LIMIT 1"
        )
        return int(rows[0][0]) if rows else 0

    def nodes(self, keys: Iterable[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        """Subtree hashes by (level, index): stored ones looked up, lower ones recomputed
        from the recorded leaves of their window. A missing one is simply absent."""
        stored: dict[int, merkle.NodeKey] = {}
        windows: dict[int, list[merkle.NodeKey]] = {}
        for level, index in keys:
            if level >= TILE_LEVEL:
                stored[node_id(level, index)] = (level, index)
            else:
                windows.setdefault((index << level) >> TILE_LEVEL, []).append((level, index))
        found: dict[merkle.NodeKey, bytes] = {}
        ids = list(stored)
        for i in range(0, len(ids), _MAX_IN):
            chunk = ids[i : i + _MAX_IN]
            rows = self.db.execute(
                f"SELECT id, hash FROM nodes WHERE id IN ({', '.join('?' for _ in chunk)})",  # noqa: S608
                chunk,
            )
            found.update((stored[int(k)], bytes(h)) for k, h in rows)
        for window, wanted in windows.items():
            start = window << TILE_LEVEL
            leaves = dict(self.recorded_leaves(start, start + WINDOW))
            for level, index in wanted:
                first = index << level
                run = [leaves.get(i) for i in range(first, first + (1 << level))]
                if all(h is not None for h in run):
                    found[(level, index)] = merkle.perfect_root(run)  # type: ignore[arg-type]
        return found

    def recorded_leaves(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """(leaf index, leaf hash as recorded at append time) for ``[start, end)``, in order."""
        stop = (1 << 62) if end is None else end
        for first, count, leaves in self._walk("first_seq, count, leaves", start - BLOCK + 1, stop):
            for i in range(count):
                seq = first + i
                if start <= seq < stop and 32 * i + 32 <= len(leaves):
                    yield seq, leaves[32 * i : 32 * i + 32]

    def blocks(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, int, bytes, bytes]]:
        """(first seq, count, ends, data) of each stored block starting in ``[start, end)``."""
        yield from self._walk("first_seq, count, ends, data", start, end)

    def _walk(self, columns: str, start: int, end: int | None, batch: int = 512) -> Iterator[Any]:
        after = start - 1
        stop = (1 << 62) if end is None else end
        while True:
            rows = self.db.execute(
                f"SELECT {columns} FROM blocks WHERE first_seq > ? AND first_seq < ? "  # noqa: S608
                "ORDER BY first_seq LIMIT ?",
                (after, stop, batch),
            )
            for row in rows:
                yield (int(row[0]), int(row[1]), *(bytes(v) for v in row[2:]))
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
    def signed_at(self, seqs: Sequence[int]) -> dict[int, bytes]:
        """The signed bytes of the entries ``seqs`` that are stored (one read per block)."""
        wanted = sorted(set(seqs))
        out: dict[int, bytes] = {}
        i = 0
        while i < len(wanted):
            # Blocks never cross a BLOCK boundary: every wanted entry in this aligned
            # stretch is in a block that starts inside it.
            base = wanted[i] - wanted[i] % BLOCK
            for first, _, ends, data in self.blocks(base, base + BLOCK):
                for offset, raw in enumerate(split_block(ends, data)):
                    out[first + offset] = raw
            while i < len(wanted) and wanted[i] < base + BLOCK:
                i += 1
        return {s: out[s] for s in wanted if s in out}

    def _candidates(self, equals: Mapping[str, str], after_seq: int) -> Iterator[list[int]]:
        """Entries after ``after_seq`` whose postings match every filter, a segment at a
        time, in order."""
        size = self.size()
        fields = [f for f in search.POSTED if f in equals]
        for segment in range(max(0, after_seq + 1) >> SEGMENT_BITS, (size >> SEGMENT_BITS) + 1):
            matched: dict[int, set[int]] | None = None
            for field in fields:
                rows = self.db.execute(
                    f"SELECT first_seq, offsets FROM postings{self._by_key} "  # noqa: S608
                    "WHERE segment = ? AND key = ?",
                    (segment, search.posting_key(field, equals[field])),
                )
                these = {
                    int(first): {int(first) + o for o in search.decode_offsets(offsets)}
                    for first, offsets in rows
                }
                if matched is None:
                    matched = these
                else:
                    matched = {b: s & these[b] for b, s in matched.items() if b in these}
                if not matched:
                    break
            if matched:
                yield sorted(s for seqs in matched.values() for s in seqs if s > after_seq)

    def _time_candidates(
        self, since: str | None, until: str | None, after_seq: int
    ) -> Iterator[list[int]]:
        clauses, params = ["first_seq + count > ?"], [after_seq + 1]
        if since is not None:
            clauses.append("max_time >= ?")
            params.append(since)  # type: ignore[arg-type]
        if until is not None:
            clauses.append("min_time < ?")
            params.append(until)  # type: ignore[arg-type]
        after = -1
        while True:
            rows = self.db.execute(
                f"SELECT first_seq, count FROM batches WHERE {' AND '.join(clauses)} "  # noqa: S608
                "AND first_seq > ? ORDER BY first_seq LIMIT 64",
                [*params, after],
            )
            for first, count in rows:
                yield list(range(max(int(first), after_seq + 1), int(first) + int(count)))
            if len(rows) < 64:
                return
            after = int(rows[-1][0])

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
        """Entries matching every filter, in seq order. Field names are checked against the
        search index's before they reach SQL; values are always bound parameters."""
        unknown = set(equals) - set(search.POSTED)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        if equals:
            runs = self._candidates(equals, after_seq)
        else:
            runs = self._time_candidates(since, until, after_seq)
        out: list[dict[str, Any]] = []
        for run in runs:
            for i in range(0, len(run), 4 * BLOCK):
                chunk = run[i : i + 4 * BLOCK]
                signed = self.signed_at(chunk)
                for seq in chunk:
                    raw = signed.get(seq)
                    if raw is None:
                        continue  # a posting for an entry no longer stored: verify says so
                    fields = event_fields(raw)
                    if any(fields[k] != v for k, v in equals.items()):
                        continue
                    if since is not None and fields["time"] < since:
                        continue
                    if until is not None and fields["time"] >= until:
                        continue
                    row: dict[str, Any] = {"seq": seq, **fields}
                    if with_signed:
                        row["signed"] = raw
                    out.append(row)
                    if limit is not None and len(out) >= limit:
                        return out
        return out

    def entries(self, **where: Any) -> list[dict[str, Any]]:
        """Every entry whose fields equal ``where`` (indexed fields are looked up, others
        are compared here)."""
        unknown = set(where) - set(COLUMNS)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        indexed = {k: str(v) for k, v in where.items() if k in search.POSTED}
        rest = {k: v for k, v in where.items() if k not in search.POSTED}
        return [r for r in self.select(indexed) if all(r[k] == v for k, v in rest.items())]

    def entry(self, seq: int) -> dict[str, Any] | None:
        raw = self.signed_at([seq]).get(seq)
        return None if raw is None else {"seq": seq, **event_fields(raw), "signed": raw}

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


def _blocks(
    first: int, raws: Sequence[bytes], leaves: Sequence[bytes]
) -> Iterator[tuple[int, int, bytes, bytes, bytes]]:
    """Rows for ``blocks``: the entries from ``first`` cut at every BLOCK-aligned boundary."""
    i = 0
    while i < len(raws):
        seq = first + i
        n = min(BLOCK - seq % BLOCK, len(raws) - i)
        chunk = raws[i : i + n]
        ends = array("I", itertools.accumulate(map(len, chunk)))
        yield seq, n, ends.tobytes(), b"".join(leaves[i : i + n]), b"".join(chunk)
        i += n
