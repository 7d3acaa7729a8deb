"""The audit ledger's store: the one object callers use over the ledger's database
(SQLite by path, PostgreSQL by URL).

Its parts, a module each: ``schema`` (the tables, the check for an earlier layout, the
SQL that differs between dialects), ``log`` (the append path and the Merkle tree:
blocks, leaves, nodes, checkpoints, with event ids, offsets and refused records) and
``postings`` (the search index's tables). ``LedgerStore`` is the log with queries over
the index added; ``Item`` and ``split_block`` are re-exported from ``log`` for callers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.errors import ConfigurationError
from broker.files.migrations import table_names
from broker.ledger import search
from broker.ledger.database import Database, connect
from broker.ledger.log import EntryLog, Item, split_block
from broker.ledger.schema import BLOCK, check_readable, create_tables

__all__ = ["COLUMNS", "Item", "LedgerStore", "event_fields", "split_block"]

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
# What a reader needs to find: a database without them is not a ledger (or not yet one).
_TABLES = frozenset({"blocks", "nodes", "checkpoints", "event_ids", "rejected"})


def event_fields(signed: bytes) -> dict[str, Any]:
    """Every event field of a stored entry (``COLUMNS``), read from its signed bytes; a
    field the event lacks is None. Raises ``ValueError`` (not JSON) or ``KeyError`` (no
    ``event``) for bytes that are not a signed event."""
    event = json.loads(signed)["event"]
    return {c: event.get(c) for c in COLUMNS}


def _require_tables(db: Database, target: Path | str) -> None:
    """Raise ``ConfigurationError`` unless ``db`` holds a ledger of this layout: a
    read-only reader cannot create what is missing, and must not fail on it later."""
    check_readable(db)
    if not table_names(db) >= _TABLES:
        where = "the ledger database URL" if db.dialect == "postgresql" else target
        raise ConfigurationError(f"{where} is not an audit ledger database")


class LedgerStore(EntryLog):
    """The ledger's database: the log and its tree (``EntryLog``), its search index
    (``index``), and queries that find entries through the index and read them back from
    their signed bytes. One connection, safe to share between threads."""

    def __init__(self, target: Path | str, *, read_only: bool = False) -> None:
        """Open the ledger at ``target`` (a PostgreSQL URL or a SQLite file path, created
        if missing), applying its pending schema steps (``schema.SCHEMA``: a new ledger
        gets its tables; an older one, say, drops refused records' bytes an earlier
        version kept) and reloading the tree's edge.
        ``read_only``: an existing ledger, opened so that nothing is written, its tables
        as they are (`mappa audit`, which may run where it cannot write; on PostgreSQL a
        session the server holds to read-only transactions: see ``connect``).

        Raises ``ConfigurationError`` (``config.invalid``) if ``target`` is an unsupported
        URL, a PostgreSQL server that does not answer, a database holding a log in the
        earlier layout (then closed and left as it is), or, ``read_only``, no ledger;
        ``UnknownLayout`` or ``NewerLayout`` (both ``ConfigurationError``) for another
        store's database or a newer release's ledger, closed and left as they are."""
        self.target = target
        db = connect(target, read_only=read_only)
        try:
            if read_only:
                _require_tables(db, target)
            else:
                create_tables(db)
        except ConfigurationError:
            db.close()
            raise
        super().__init__(db)

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
        """Entries after ``after_seq`` matching every filter in ``equals`` (fields of
        ``search.POSTED``) and the time range ``[since, until)``, in seq order, at most
        ``limit``: each a dict of ``seq`` and the ``COLUMNS`` (and ``signed``, the bytes,
        if ``with_signed``). Field names are checked before they reach SQL; values are
        always bound parameters. Raises ``ValueError`` for a field with no index."""
        unknown = set(equals) - set(search.POSTED)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        if equals:
            runs = self.index.candidates(equals, after_seq, self.size())
        else:
            runs = self.index.time_candidates(since, until, after_seq)
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
        are compared here), in seq order, as ``select`` returns them. Raises ``ValueError``
        for a name not in ``COLUMNS``."""
        unknown = set(where) - set(COLUMNS)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        indexed = {k: str(v) for k, v in where.items() if k in search.POSTED}
        rest = {k: v for k, v in where.items() if k not in search.POSTED}
        return [r for r in self.select(indexed) if all(r[k] == v for k, v in rest.items())]

    def entry(self, seq: int) -> dict[str, Any] | None:
        """Entry ``seq`` as ``seq``, its ``COLUMNS`` and ``signed`` (its bytes), or None if
        it is not stored."""
        raw = self.signed_at([seq]).get(seq)
        return None if raw is None else {"seq": seq, **event_fields(raw), "signed": raw}
