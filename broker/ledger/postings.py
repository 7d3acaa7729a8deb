"""The search index's tables, ``postings`` and ``batches``: writing each append batch's
postings, finding entries by them, and reading them back for ``verify``.

What a posting is, and how the chain of batch digests seals the index, is in ``search``;
the tables themselves are defined in ``schema``. ``verify``'s worker processes read
through a ``PostingIndex`` on their own read-only connection, so this module imports
nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from broker.ledger import search
from broker.ledger.database import Database
from broker.ledger.schema import SEGMENT_BITS, DialectSql

# Batches read a page at a time when entries are found by time alone.
_TIME_PAGE = 64
# One posting as the text its batch's content hash covers (see ``search.content_hash``).
_LINE = "CAST(key AS TEXT) || ' ' || offsets"
_JOINED = {
    # The same text as ``_LINE`` (|| converts as CAST does), without its extra copy.
    "sqlite": "group_concat(key || ' ' || offsets, char(10))",
    "postgresql": f"string_agg({_LINE}, chr(10) ORDER BY key)",
}


class PostingIndex:
    """The search index on one connection. Writes join the caller's transaction; every
    method lets the database's own errors (sqlite3 / psycopg) pass unchanged."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = DialectSql.of(db.dialect)

    # -- appending --------------------------------------------------------------------------
    def last_digest(self) -> bytes:
        """The chain value after the last stored batch (``search.GENESIS`` if none)."""
        rows = self._db.execute("SELECT digest FROM batches ORDER BY first_seq DESC LIMIT 1")
        return bytes(rows[0][0]) if rows else search.GENESIS

    def write_postings(self, batch: search.BatchIndex) -> None:
        """Insert ``batch``'s postings, filed under its first entry's segment. Returns
        nothing."""
        first = batch.first_seq
        # Thousands of small rows a batch: handed over as one JSON document and
        # inserted by the database itself, not bound one row at a time.
        # Each "key offsets" line split by the database: the key up to the space.
        self._db.execute(
            "INSERT INTO postings (segment, key, first_seq, offsets) "  # noqa: S608
            f"SELECT ?, CAST({self._sql.before_space} AS {self._sql.big}), ?, "
            f"{self._sql.after_space} FROM {self._sql.elements}",
            # Lines are digits, minus signs and spaces: a JSON array as is.
            (first >> SEGMENT_BITS, first, '["' + '","'.join(batch.lines) + '"]'),
        )

    def write_batch(self, batch: search.BatchIndex, digest: bytes) -> None:
        """Insert ``batch``'s row: its range, time range and the chain value ``digest``
        after it. Returns nothing."""
        self._db.execute(
            "INSERT INTO batches (first_seq, count, min_time, max_time, digest) "
            "VALUES (?, ?, ?, ?, ?)",
            (batch.first_seq, batch.count, batch.min_time, batch.max_time, digest),
        )

    # -- finding entries --------------------------------------------------------------------
    def candidates(
        self, equals: Mapping[str, str], after_seq: int, size: int
    ) -> Iterator[list[int]]:
        """Entries after ``after_seq`` (of the first ``size``) whose postings match every
        filter in ``equals`` (fields of ``search.POSTED``), a segment at a time, in order.
        A candidate may still not match (keys can collide): callers re-check each."""
        fields = [f for f in search.POSTED if f in equals]
        for segment in range(max(0, after_seq + 1) >> SEGMENT_BITS, (size >> SEGMENT_BITS) + 1):
            matched: dict[int, set[int]] | None = None
            for field in fields:
                rows = self._db.execute(
                    f"SELECT first_seq, offsets FROM postings{self._sql.by_key} "  # noqa: S608
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

    def time_candidates(
        self, since: str | None, until: str | None, after_seq: int
    ) -> Iterator[list[int]]:
        """Entries after ``after_seq`` of every batch whose time range meets ``[since,
        until)`` (either end open if None), a batch at a time, in order. Callers re-check
        each entry's own time."""
        clauses, params = ["first_seq + count > ?"], [after_seq + 1]
        if since is not None:
            clauses.append("max_time >= ?")
            params.append(since)  # type: ignore[arg-type]
        if until is not None:
            clauses.append("min_time < ?")
            params.append(until)  # type: ignore[arg-type]
        after = -1
        while True:
            rows = self._db.execute(
                f"SELECT first_seq, count FROM batches WHERE {' AND '.join(clauses)} "  # noqa: S608
                f"AND first_seq > ? ORDER BY first_seq LIMIT {_TIME_PAGE}",
                [*params, after],
            )
            for first, count in rows:
                yield list(range(max(int(first), after_seq + 1), int(first) + int(count)))
            if len(rows) < _TIME_PAGE:
                return
            after = int(rows[-1][0])

    # -- reading back, for verify -----------------------------------------------------------
    def strays(self, last_segment: int, size: int) -> tuple[int | None, int]:
        """Postings for entries below ``size`` filed under a segment outside ``[0,
        last_segment]``: the lowest first seq among them (None if there are none) and how
        many there are."""
        first, count = self._db.execute(
            "SELECT min(first_seq), count(*) FROM postings "
            "WHERE (segment < 0 OR segment > ?) AND first_seq < ?",
            (last_segment, size),
        )[0]
        return (None if first is None else int(first)), int(count)

    def joined(self, segment: int, size: int) -> list[tuple[Any, ...]]:
        """Each batch's postings in ``segment`` (batches starting below ``size``), joined
        by the database: rows of (batch first seq, its "key offsets" lines joined by line
        breaks, how many postings, the largest key as stored). PostgreSQL joins them by
        key; SQLite (before 3.44) in the order it reads them, the stored order, so a
        caller whose text does not chain re-reads the batch with ``lines``."""
        return self._db.execute(
            f"SELECT first_seq, {_JOINED[self._db.dialect]}, count(*), max(key) "  # noqa: S608
            "FROM postings WHERE segment = ? AND first_seq < ? GROUP BY first_seq",
            (segment, size),
        )

    def lines(self, segment: int, first: int) -> str:
        """The postings of the batch starting at ``first`` in ``segment``, as the text its
        content hash covers: one "key offsets" line each, in key order."""
        ordered = self._db.execute(
            f"SELECT {_LINE} FROM postings WHERE segment = ? AND first_seq = ? "  # noqa: S608
            "ORDER BY key",
            (segment, first),
        )
        return "\n".join(line for (line,) in ordered)

    def digest_before(self, seq: int) -> bytes:
        """The chain value after the last batch starting below ``seq`` (``search.GENESIS``
        if none)."""
        before = self._db.execute(
            "SELECT digest FROM batches WHERE first_seq < ? ORDER BY first_seq DESC LIMIT 1",
            (seq,),
        )
        return bytes(before[0][0]) if before else search.GENESIS

    def batches(self, low: int, high: int) -> list[tuple[Any, ...]]:
        """The stored batches starting in ``[low, high)``, in order, as rows of (first seq,
        count, min time, max time, recorded chain value) as the database returns them."""
        return self._db.execute(
            "SELECT first_seq, count, min_time, max_time, digest FROM batches "
            "WHERE first_seq >= ? AND first_seq < ? ORDER BY first_seq",
            (low, high),
        )
