"""The ledger's tables (SQLite or PostgreSQL): their definition, the layout check, and the
few pieces of SQL that differ between the two dialects.

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
(bad signature, unknown agency, malformed), kept as where they were read, the reason,
and the record's SHA-256 and size: never its bytes, which may be anyone's personal data
in clear (an unsigned event naming someone) and would sit in the ledger for good.
``offsets``: how far the service has read, committed with the entries.
``alarms``: what the ledger's own watch or its scheduled verify found wrong (``alarms``).
``schema_migrations``: the schema steps applied (``broker.files.migrations``). Nothing is
updated or deleted by the product, but for step 2 below.

The statements that read and write these tables are in ``log`` (the append path and
the tree), ``postings`` (the search index) and ``alarms``; nothing else runs SQL on the ledger but
the schema steps (``SCHEMA``, run by ``create_tables``): 1, the tables, where missing;
2, a ``rejected`` table of the earlier layout (the bytes as received, column ``raw``)
rewritten into digest and size, in one transaction; 3, the ``alarms`` table; 4, the
``cosignatures`` table (``cosignatures``: the witnesses' cosignature lines, by checkpoint
size and witness).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from broker.errors import ConfigurationError
from broker.files.migrations import Migration, Schema, run_script, status, upgrade
from broker.ledger import search
from broker.ledger.cosignatures import create_cosignatures
from broker.ledger.database import Database

BLOCK = 64
TILE_LEVEL = 4  # nodes below this level are recomputed from a window of 16 leaves
WINDOW = 1 << TILE_LEVEL
SEGMENT_BITS = search.SEGMENT_BITS
# Levels fit in 6 bits (a tree of 2**63 leaves has 63 levels).
_LEVEL_BITS = 6


def node_id(level: int, index: int) -> int:
    """The ``nodes`` key of the subtree ``(level, index)``: ``index * 64 + level``."""
    return (index << _LEVEL_BITS) | level


@dataclass(frozen=True)
class DialectSql:
    """The pieces of SQL that differ between SQLite and PostgreSQL (see ``of``)."""

    elements: str  # a JSON array parameter's elements as rows (column ``value``)
    big: str  # the 64-bit integer type
    before_space: str  # ``value`` up to its first space
    after_space: str  # ``value`` after its first space
    by_key: str  # what makes a look-up by key use ``postings_by_key``
    greatest: str  # the larger of two values

    @classmethod
    def of(cls, dialect: str) -> DialectSql:
        """The pieces for ``dialect``: PostgreSQL's for ``"postgresql"``, else SQLite's."""
        if dialect == "postgresql":
            return cls(
                elements="jsonb_array_elements_text(?::jsonb)",
                big="BIGINT",
                before_space="split_part(value, ' ', 1)",
                after_space="substr(value, strpos(value, ' ') + 1)",
                by_key="",
                greatest="GREATEST",
            )
        return cls(
            elements="json_each(?)",
            big="INTEGER",
            before_space="substr(value, 1, instr(value, ' ') - 1)",
            after_space="substr(value, instr(value, ' ') + 1)",
            # Without statistics SQLite would walk the segment in stored order instead.
            by_key=" INDEXED BY postings_by_key",
            greatest="max",
        )


def create_tables(db: Database) -> None:
    """Bring ``db`` to the ledger's latest layout by its numbered steps (``SCHEMA``,
    ``broker.files.migrations``): a new database gets every table, an older ledger the steps
    it lacks, each in a transaction of its own. Returns nothing.

    Raises ``ConfigurationError`` (``config.invalid``) if ``db`` holds an audit log in
    the earlier layout (table ``entries``), ``UnknownLayout`` (``store.unknown-layout``)
    for a database that is not a ledger, and ``NewerLayout`` (``store.newer-version``)
    for one written by a newer release: each leaving ``db`` open and unchanged."""
    check_layout(db)
    upgrade(SCHEMA, db, db)


def check_readable(db: Database) -> None:
    """Raise as ``create_tables`` does for a database this release cannot read (the
    earlier layout, another store's, a newer release's), writing nothing: a reader may
    read a ledger whose steps are pending, which change nothing it reads."""
    check_layout(db)
    status(SCHEMA, db)


def _create(db: Database) -> None:
    """Step 1: whichever of the ledger's tables and indexes ``db`` lacks, as every open
    made them before versions existed."""
    run_script(db.execute, _ddl(db.dialect))


def _drop_rejected_bytes_step(db: Database) -> None:
    """Step 2: ``drop_rejected_bytes`` inside the step's transaction."""
    if holds_rejected_bytes(db):
        _rewrite_rejected(db)


def check_layout(db: Database) -> None:
    """Raise ``ConfigurationError`` (``config.invalid``) if ``db`` holds an audit log in
    the earlier layout (table ``entries``); returns nothing. Writes nothing."""
    if _has_table(db, "entries"):
        # Opening it as if empty would start a second log beside the first.
        raise ConfigurationError(
            "the ledger database holds an audit log in the earlier layout (one row per "
            "entry, table 'entries'), which this version does not read; keep it as it "
            "is and give this version a new database (MAPPA_DATABASE_URL or data dir)"
        )


def _has_table(db: Database, name: str) -> bool:
    if db.dialect == "postgresql":
        return db.execute("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0] is True
    rows = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return bool(rows)


def holds_rejected_bytes(db: Database) -> bool:
    """True if ``rejected`` is of the earlier layout, each refused record's bytes in
    column ``raw``. Writes nothing."""
    if db.dialect == "postgresql":
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'rejected'"
        )
    else:
        rows = db.execute("SELECT name FROM pragma_table_info('rejected')")
    return "raw" in {str(row[0]) for row in rows}


def drop_rejected_bytes(db: Database) -> None:
    """Rewrite a ``rejected`` table of the earlier layout, in one transaction: each row
    kept with the SHA-256 and size of the bytes it held, the bytes themselves gone. A
    table already rewritten is left alone. Returns nothing.

    Rows are copied into a new table and the old one dropped (``_erasing``): a column
    dropped in place would stay in every row on disk until a full vacuum."""
    if not holds_rejected_bytes(db):
        return
    with _erasing(db), db.transaction():
        _rewrite_rejected(db)


def _rewrite_rejected(db: Database) -> None:
    """``drop_rejected_bytes``'s work, inside the caller's transaction."""
    db.execute("ALTER TABLE rejected RENAME TO rejected_with_bytes")
    # One statement, not ``script``: SQLite's commits the open transaction first.
    db.execute(_rejected_ddl(db.dialect))
    _copy_digests(db)
    db.execute("DROP TABLE rejected_with_bytes")
    if db.dialect == "postgresql":
        # The new table's id sequence starts after the ids kept.
        db.execute(
            "SELECT setval(pg_get_serial_sequence('rejected', 'id'), max(id)) "
            "FROM rejected HAVING count(*) > 0"
        )


@contextmanager
def _erasing(db: Database) -> Iterator[None]:
    """What is dropped inside leaves no copy in the database's files: on SQLite, freed
    pages are zeroed (``secure_delete``, off in most builds) and the write-ahead log is
    cut back afterwards; PostgreSQL removes a dropped table's files at commit."""
    if db.dialect != "sqlite":
        yield
        return
    before = int(db.execute("PRAGMA secure_delete")[0][0])
    db.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        db.execute(f"PRAGMA secure_delete={before}")
    # The log's frames of the freed pages hold zeros; frames written before, holding the
    # same pages as they were, may lie beyond them until the file is cut back.
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _copy_digests(db: Database, page: int = 256) -> None:
    """Copy every row of ``rejected_with_bytes`` into ``rejected``, its bytes as their
    SHA-256 and size; a page of rows at a time (a refused record may be a megabyte)."""
    after = -1
    while True:
        rows = db.execute(
            'SELECT id, topic, partition, "offset", reason_code, reason, raw '
            "FROM rejected_with_bytes WHERE id > ? ORDER BY id LIMIT ?",
            (after, page),
        )
        if not rows:
            return
        db.executemany(
            'INSERT INTO rejected (id, topic, partition, "offset", reason_code, reason, '
            "digest, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (*row[:6], hashlib.sha256(bytes(row[6])).digest(), len(bytes(row[6])))
                for row in rows
            ],
        )
        after = int(rows[-1][0])


def _ddl(dialect: str) -> str:
    pg = dialect == "postgresql"
    blob, big = ("BYTEA", "BIGINT") if pg else ("BLOB", "INTEGER")
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
{_rejected_ddl(dialect)};
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition {big} NOT NULL, next_offset {big} NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _alarms_ddl(dialect: str) -> str:
    """``alarms``: what the ledger's own watch or scheduled verify found (``alarms``)."""
    pg = dialect == "postgresql"
    big, serial = ("BIGINT", "BIGSERIAL") if pg else ("INTEGER", "INTEGER")
    return f"""CREATE TABLE IF NOT EXISTS alarms (
    id {serial} PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL,
    first_bad_entry {big}, problem TEXT NOT NULL
)"""


def _create_alarms(db: Database) -> None:
    """Step 3: the ``alarms`` table, where missing."""
    db.execute(_alarms_ddl(db.dialect))


def _rejected_ddl(dialect: str) -> str:
    """``rejected``: where a refused record was read, why, and its SHA-256 and size."""
    pg = dialect == "postgresql"
    blob, big = ("BYTEA", "BIGINT") if pg else ("BLOB", "INTEGER")
    serial = "BIGSERIAL" if pg else "INTEGER"
    return f"""CREATE TABLE IF NOT EXISTS rejected (
    id {serial} PRIMARY KEY, topic TEXT, partition {big}, "offset" {big},
    reason_code TEXT NOT NULL, reason TEXT NOT NULL, digest {blob} NOT NULL, size {big} NOT NULL
)"""


# The ledger's layout, step by step (``broker.files.migrations``). Steps 1 and 2 are what
# every open did before versions existed (commit 2fda6ad and earlier), so they leave
# alone what they find done. The same steps on SQLite and PostgreSQL.
SCHEMA: Schema[Database] = Schema(
    store="audit ledger",
    markers=frozenset({"blocks", "nodes", "checkpoints", "event_ids"}),
    migrations=(
        Migration(1, "the ledger's tables, where missing", _create),
        Migration(
            2,
            "refused records kept as digest and size, their bytes dropped",
            _drop_rejected_bytes_step,
            around=_erasing,
        ),
        Migration(3, "the ledger's alarms", _create_alarms),
        Migration(4, "the witnesses' cosignatures", create_cosignatures),
    ),
)
