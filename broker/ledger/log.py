"""The log's append path and its Merkle tree: blocks, leaves, nodes and checkpoints, with
the event ids, read offsets and refused records written beside them.

An append batch is one transaction: its entries' blocks, the tree nodes they complete,
their event ids, the batch's postings and index digest (``postings``), and how far the
service has read. The tree's right edge and the index's chain value are kept in memory
for the next append and checkpoint, and reloaded from the database when it is opened.
The tables are defined in ``schema``; ``verify``'s worker processes read blocks with
``read_blocks``, so this module imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from broker.ledger import merkle, search
from broker.ledger.alarms import AlarmLog, WatchStatus
from broker.ledger.cosignatures import CosignatureLog
from broker.ledger.database import Database
from broker.ledger.postings import PostingIndex
from broker.ledger.schema import (
    BLOCK,
    TILE_LEVEL,
    WINDOW,
    DialectSql,
    holds_rejected_bytes,
    node_id,
)

if TYPE_CHECKING:
    from schemas.audit import SignedAuditEvent

# A verified event, its bytes as received, and where it was read (topic, partition,
# offset; None when it was not read from Kafka).
Item = tuple["SignedAuditEvent", bytes, tuple[str, int, int] | None]
# SQLite allows 32,766 bound variables; stay well inside for look-ups by key.
_MAX_IN = 900


def split_block(ends: bytes, data: bytes) -> list[bytes]:
    """The signed bytes of each entry of a block, from its ``ends`` and ``data`` (each
    entry is stored as its leaf input, ``0x00 || signed``)."""
    out: list[bytes] = []
    start = 0
    for end in array("I", ends):
        out.append(data[start + 1 : end])
        start = end
    return out


def read_blocks(db: Database, start: int, end: int) -> list[tuple[Any, ...]]:
    """The stored blocks starting in ``[start, end)``, in order, as rows of (first seq,
    count, ends, recorded leaves, data) as the database returns them, for a reader with a
    connection of its own (``verify``'s workers)."""
    return db.execute(
        "SELECT first_seq, count, ends, leaves, data FROM blocks "
        "WHERE first_seq >= ? AND first_seq < ? ORDER BY first_seq",
        (start, end),
    )


class EntryLog:
    """The log on one open connection to a ledger database whose tables exist (see
    ``schema.create_tables``); ``LedgerStore`` is the front callers use. Every method lets
    the database's own errors (sqlite3 / psycopg) pass unchanged, and a failed append
    leaves both the database and this object as they were."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect = db.dialect
        self._sql = DialectSql.of(db.dialect)
        self.index = PostingIndex(db)  # the search index's tables, on the same connection
        self.alarms = AlarmLog(db)  # what the ledger's own watch and verify found
        self.cosignatures = CosignatureLog(db)  # what the witnesses cosigned (``witnessing``)
        # The running ledger's halt and scheduled verify, shared by its service, reader and
        # metrics through this one object (``self_watch``).
        self.status = WatchStatus()
        # Only where a reader could not rewrite an earlier ledger (``drop_rejected_bytes``).
        self._rejected_bytes = holds_rejected_bytes(db)
        self._tree = self._load_tree()
        self._index_digest = self.index.last_digest()

    def close(self) -> None:
        """Close the connection (and, on SQLite, stop its WAL checkpointer). Returns
        nothing."""
        self._db.close()

    @property
    def tamper_db(self) -> Database:
        """The connection itself, for tests that tamper with the ledger as someone with
        write access to its database would. The product never uses it."""
        return self._db

    def _load_tree(self) -> merkle.CompactRange:
        size = self.size()
        edge = merkle.CompactRange.edge_keys(size)
        nodes = self.nodes(edge)
        return merkle.CompactRange(size, [nodes[k] for k in edge])

    # -- offsets ----------------------------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of each (topic, partition) the service has read from."""
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(t, int(p)): int(o) for t, p, o in rows}

    def forget_offsets(self, partitions: Iterable[tuple[str, int]] | None = None) -> None:
        """Forget where reading got to in ``partitions`` (every one if None): their log
        was lost or replaced, and is read again from its beginning (what is held already
        is recognised by its event id)."""
        with self._db.transaction():
            if partitions is None:
                self._db.execute("DELETE FROM offsets")
            else:
                self._db.executemany(
                    "DELETE FROM offsets WHERE topic = ? AND partition = ?",
                    [(t, p) for t, p in partitions],
                )

    def broker_cluster(self) -> str | None:
        """The id of the Kafka cluster the offsets were read from; None before any."""
        rows = self._db.execute("SELECT value FROM meta WHERE name = 'kafka_cluster'")
        return str(rows[0][0]) if rows else None

    def set_broker_cluster(self, cluster_id: str) -> None:
        """Record the Kafka cluster the offsets are now read from."""
        with self._db.transaction():
            self._db.execute("DELETE FROM meta WHERE name = 'kafka_cluster'")
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES ('kafka_cluster', ?)", (cluster_id,)
            )

    def _advance(self, at: Iterable[tuple[str, int, int]]) -> None:
        highest: dict[tuple[str, int], int] = {}
        for topic, partition, offset in at:
            key = (topic, partition)
            highest[key] = max(highest.get(key, -1), offset + 1)
        self._db.executemany(
            "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "  # noqa: S608
            f"DO UPDATE SET next_offset = {self._sql.greatest}"
            "(offsets.next_offset, excluded.next_offset)",
            [(t, p, o) for (t, p), o in highest.items()],
        )

    # -- appending --------------------------------------------------------------------------
    def append_batch(self, items: Sequence[Item]) -> int:
        """Append verified events in the given (arrival) order, in one transaction, with
        their search index and the read offsets of ``items``. Events whose id is already
        in the ledger are skipped. Returns how many were added."""
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
        with self._db.transaction():
            self._advance(at for _, _, at in items if at is not None)
            if batch is not None:
                self._db.executemany(
                    "INSERT INTO blocks (first_seq, count, ends, leaves, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    list(_block_rows(first, inputs, leaves)),
                )
                self._db.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", nodes)
                self.index.write_postings(batch)
                self._db.execute(
                    f"INSERT INTO event_ids (event_id) SELECT value FROM {self._sql.elements}",  # noqa: S608
                    (json.dumps(added),),
                )
                self.index.write_batch(batch, digest)
        self._tree = tree
        self._index_digest = digest
        return len(events)

    def _present(self, event_ids: Sequence[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT event_id FROM event_ids "  # noqa: S608
            f"WHERE event_id IN (SELECT value FROM {self._sql.elements})",
            (json.dumps(event_ids),),
        )
        return {r[0] for r in rows}

    def reject(self, raw: bytes, *, at: tuple[str, int, int], code: str, reason: str) -> None:
        """Record that the ledger refused the record ``raw`` read at ``at`` (topic,
        partition, offset), with its reason code and reason (which name the rule, never
        a value), and move the read offset past it, in one transaction. Of ``raw`` only
        its SHA-256 and size are kept: a refused record may hold personal data in clear.
        Returns nothing."""
        with self._db.transaction():
            self._advance([at])
            self._db.execute(
                'INSERT INTO rejected (topic, partition, "offset", reason_code, reason, '
                "digest, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*at, code, reason, hashlib.sha256(raw).digest(), len(raw)),
            )

    def rejected(self) -> list[dict[str, Any]]:
        """Every refused record, oldest first: id, topic, partition, offset, reason_code,
        reason, digest (the record's SHA-256, hex) and size (its bytes)."""
        if self._rejected_bytes:
            return self._rejected_from_bytes()
        rows = self._db.execute(
            'SELECT id, topic, partition, "offset", reason_code, reason, digest, size '
            "FROM rejected ORDER BY id"
        )
        return [_rejected_row(row[:6], bytes(row[6]).hex(), int(row[7])) for row in rows]

    def _rejected_from_bytes(self) -> list[dict[str, Any]]:
        """``rejected`` of a ledger of the earlier layout opened read-only (which cannot
        rewrite it): each record's digest and size computed here, its bytes never
        handed on."""
        rows = self._db.execute(
            'SELECT id, topic, partition, "offset", reason_code, reason, raw '
            "FROM rejected ORDER BY id"
        )
        return [
            _rejected_row(row[:6], hashlib.sha256(bytes(row[6])).hexdigest(), len(row[6]))
            for row in rows
        ]

    def rejected_count(self) -> int:
        """How many refused records are kept."""
        return int(self._db.execute("SELECT count(*) FROM rejected")[0][0])

    def event_id_count(self) -> int:
        """How many event ids are recorded (one per entry appended)."""
        return int(self._db.execute("SELECT count(*) FROM event_ids")[0][0])

    # -- the tree ---------------------------------------------------------------------------
    @property
    def tree_size(self) -> int:
        """Entries appended through this store (the size the next checkpoint signs)."""
        return self._tree.size

    def tree_root(self) -> bytes:
        """The tree head at ``tree_size`` (the root the next checkpoint signs)."""
        return self._tree.root()

    @property
    def index_digest(self) -> bytes:
        """The search index's chain value at ``tree_size`` (the next checkpoint signs it)."""
        return self._index_digest

    def size(self) -> int:
        """How many entries are stored, read from the database: one past the last stored
        block's last entry (0 if none), whatever lies before it."""
        rows = self._db.execute(
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
            rows = self._db.execute(
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

    def blocks_with_leaves(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, int, bytes, bytes, bytes]]:
        """(first seq, count, ends, recorded leaves, data) of each stored block starting in
        ``[start, end)``: what the ledger's watch re-hashes (``watch``)."""
        yield from self._walk("first_seq, count, ends, leaves, data", start, end)

    def blocks(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, int, bytes, bytes]]:
        """(first seq, count, ends, data) of each stored block starting in ``[start, end)``."""
        yield from self._walk("first_seq, count, ends, data", start, end)

    def _walk(self, columns: str, start: int, end: int | None, batch: int = 512) -> Iterator[Any]:
        after = start - 1
        stop = (1 << 62) if end is None else end
        while True:
            rows = self._db.execute(
                f"SELECT {columns} FROM blocks WHERE first_seq > ? AND first_seq < ? "  # noqa: S608
                "ORDER BY first_seq LIMIT ?",
                (after, stop, batch),
            )
            for row in rows:
                yield (int(row[0]), int(row[1]), *(bytes(v) for v in row[2:]))
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

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

    # -- checkpoints ------------------------------------------------------------------------
    def add_checkpoint(self, size: int, time: str, note: str) -> None:
        """Store a signed tree head: its size, signing time and signed note. Returns
        nothing; a second checkpoint of the same size is refused by the database."""
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO checkpoints (size, time, note) VALUES (?, ?, ?)", (size, time, note)
            )

    def checkpoints(self) -> list[tuple[int, str, str]]:
        """Every stored checkpoint as (size, time, note), smallest first (none verified)."""
        rows = self._db.execute("SELECT size, time, note FROM checkpoints ORDER BY size")
        return [(int(s), t, n) for s, t, n in rows]

    def latest_checkpoint(self) -> tuple[int, str, str] | None:
        """The largest stored checkpoint as (size, time, note), or None if there is none."""
        rows = self._db.execute(
            "SELECT size, time, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        )
        return None if not rows else (int(rows[0][0]), rows[0][1], rows[0][2])

    def checkpoint_at(self, size: int) -> tuple[int, str, str] | None:
        """The stored checkpoint of ``size`` as (size, time, note), or None if there is none."""
        rows = self._db.execute("SELECT size, time, note FROM checkpoints WHERE size = ?", (size,))
        return None if not rows else (int(rows[0][0]), rows[0][1], rows[0][2])


def _rejected_row(where: Sequence[Any], digest: str, size: int) -> dict[str, Any]:
    """A refused record as ``EntryLog.rejected`` gives it, from its first six columns."""
    i, topic, partition, offset, code, reason = where
    return {
        "id": int(i),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "reason_code": code,
        "reason": reason,
        "digest": digest,
        "size": size,
    }


def _block_rows(
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
