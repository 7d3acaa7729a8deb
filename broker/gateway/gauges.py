"""What an agency's store holds, counted for the metrics (``broker.observe.metrics``) on a
read-only connection of the caller's own: the store's own connection belongs to the
event loop's thread and its transactions, and is never touched here.

Two reads, both called on a worker thread:

- ``read_gauges(path)``: the state now, in one read transaction (a consistent picture;
  a reader never waits for a writer in WAL mode): the outbox (unsent, set aside, when
  the oldest queued record was queued), the envelopes queued and awaiting a receipt,
  the audit events the ledger has not receipted, the inbox, the dead letters kept for
  retry and the offsets the gateway's reader has stored. Each count is over an index,
  or over a table that stays small (the inbox is emptied by retention; the dead letters
  are few): never over what grows for ever (the outbox, the tracked rows), which the
  tally counts instead.
- ``AuditTally.advance()``: every audit event this agency emitted, counted by act,
  operation, outcome and reason code, and every dead letter it sent to the dead-letter
  topic. They are read from the outbox, which keeps each record it sent and never
  changes or deletes a row, so the counts are durable (a restart reads them again) and
  each scrape reads only the rows added since the last (by outbox ``seq``), at most
  ``TALLY_ROWS_PER_SCRAPE``.

Nothing here reads a message's content or a subject: the audit events' act, operation,
outcome and reason code only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from broker.errors import sqlite_unavailable
from broker.gateway.tracking import LEDGER, QUEUED, SENT

# A scrape is answered in seconds: a store whose file is busy being checkpointed, or on
# a slow disk, is reported unavailable rather than waited for.
READ_TIMEOUT_SECONDS = 0.5
# Audit events read in one statement, and in one scrape: a store that has kept millions
# of events (a first scrape after a restart) is counted over several scrapes, its tally
# absent until it is complete, never under-counted.
TALLY_BATCH_ROWS = 5_000
TALLY_ROWS_PER_SCRAPE = 200_000

# An audit event's tally key: (act, operation, outcome, reason code or "").
TallyKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class Tally:
    """An agency's audit events by ``TallyKey``, and its dead letters, since its store
    began."""

    events: dict[TallyKey, int]
    dead_letters: int


@dataclass(frozen=True)
class StoreGauges:
    """One agency store's state at one moment (module docstring)."""

    outbox_unsent: int
    outbox_set_aside: int
    # When the record waiting longest for the relay was queued (or queued again for a
    # re-send), as the store spells times; None when nothing tracked is waiting.
    oldest_queued_at: str | None
    # Envelopes (one per recipient) waiting for the relay, and sent awaiting a receipt.
    envelopes_queued: int
    envelopes_unreceipted: int
    # Audit events the ledger has not yet said it holds.
    audit_unacknowledged: int
    inbox_unacknowledged: int
    inbox_acknowledged: int
    dead_letters_open: int
    dead_letters_settled: int
    # The next offset the gateway's reader will read, by (topic, partition).
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store at ``path``, closed on exit. Raises
    ``StoreUnavailable`` if the file is missing, unreadable or busy past
    ``READ_TIMEOUT_SECONDS``."""
    with sqlite_unavailable():
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=READ_TIMEOUT_SECONDS,
        )
    try:
        with sqlite_unavailable():
            db.execute("PRAGMA query_only=1")
            yield db
    finally:
        db.close()


def _count(db: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


def read_gauges(path: Path) -> StoreGauges:
    """The state of the store at ``path`` now, read in one transaction. Raises
    ``StoreUnavailable`` as ``read_only`` does, or if a statement fails."""
    with read_only(path) as db:
        db.execute("BEGIN")
        try:
            unsent, aside = (
                _count(db, "SELECT count(*) FROM outbox WHERE sent = ?", (sent,)) for sent in (0, 2)
            )
            # A queued row's ``updated_at`` is when it was queued, or queued again.
            (oldest,) = db.execute(
                "SELECT min(updated_at) FROM tracked WHERE state = ?", (QUEUED,)
            ).fetchone()
            queued, waiting = (
                _count(
                    db,
                    "SELECT count(*) FROM tracked WHERE state = ? AND recipient != ?",
                    (state, LEDGER),
                )
                for state in (QUEUED, SENT)
            )
            audit = _count(
                db,
                "SELECT count(*) FROM tracked WHERE state IN (?, ?) AND recipient = ?",
                (QUEUED, SENT, LEDGER),
            )
            inbox = dict(
                db.execute(
                    "SELECT acknowledged_at IS NOT NULL, count(*) FROM inbox GROUP BY 1"
                ).fetchall()
            )
            dead = dict(
                db.execute(
                    "SELECT outcome IS NOT NULL, count(*) FROM deadletters GROUP BY 1"
                ).fetchall()
            )
            offsets = {
                (str(t), int(p)): int(o)
                for t, p, o in db.execute("SELECT topic, partition, next_offset FROM offsets")
            }
        finally:
            db.execute("ROLLBACK")
    return StoreGauges(
        outbox_unsent=unsent,
        outbox_set_aside=aside,
        oldest_queued_at=None if oldest is None else str(oldest),
        envelopes_queued=queued,
        envelopes_unreceipted=waiting,
        audit_unacknowledged=audit,
        inbox_unacknowledged=int(inbox.get(0, 0)),
        inbox_acknowledged=int(inbox.get(1, 0)),
        dead_letters_open=int(dead.get(0, 0)),
        dead_letters_settled=int(dead.get(1, 0)),
        offsets=offsets,
    )


class AuditTally:
    """The audit events of one agency's store, counted by ``TallyKey`` (module docstring):
    and its dead letters: the counts so far and the outbox ``seq`` they reach. Safe to
    call from several threads: one advances at a time, another finds it busy."""

    def __init__(self, path: Path, *, audit_topic: str, deadletter_topic: str) -> None:
        self.path = path
        self._audit = audit_topic
        self._deadletter = deadletter_topic
        self._counts: Counter[TallyKey] = Counter()
        self._dead = 0
        self._after = 0
        self._lock = threading.Lock()

    def advance(self) -> Tally | None:
        """Count the events added since the last call; returns every count so far, or
        None when they are not all counted yet (more than ``TALLY_ROWS_PER_SCRAPE`` rows
        to go, or another thread counting now). Raises ``StoreUnavailable`` as
        ``read_only`` does."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            with read_only(self.path) as db:
                return self._advance(db)
        finally:
            self._lock.release()

    def _advance(self, db: sqlite3.Connection) -> Tally | None:
        (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()
        if int(last) < self._after:
            # Another file at this path (a store made anew): count it from its start.
            self._counts.clear()
            self._dead = self._after = 0
        read = 0
        while read < TALLY_ROWS_PER_SCRAPE:
            # The signed event is JSON text (``AuditEmitter.emit``); CAST, because SQLite
            # reads a BLOB given to its JSON functions as its binary JSON.
            # A dead letter's value is the head of a refused record, JSON or not: never
            # given to the JSON functions.
            rows = db.execute(
                "SELECT seq, dead, json_extract(v, '$.event.act'), "
                "json_extract(v, '$.event.operation'), json_extract(v, '$.event.outcome'), "
                "json_extract(v, '$.event.reason_code') FROM (SELECT seq, topic = ? AS dead, "
                "CASE WHEN topic = ? THEN CAST(value AS TEXT) ELSE '{}' END AS v FROM outbox "
                "WHERE seq > ? AND topic IN (?, ?) ORDER BY seq LIMIT ?) ORDER BY seq",
                (
                    self._deadletter,
                    self._audit,
                    self._after,
                    self._audit,
                    self._deadletter,
                    TALLY_BATCH_ROWS,
                ),
            ).fetchall()
            for seq, dead, act, operation, outcome, code in rows:
                if dead:
                    self._dead += 1
                else:
                    key = (str(act), str(operation), str(outcome), str(code or ""))
                    self._counts[key] += 1
                self._after = int(seq)
            read += len(rows)
            if len(rows) < TALLY_BATCH_ROWS:
                # Every row up to ``last`` was committed before it was read (AUTOINCREMENT
                # never reuses a number): the rows of other topics are not walked again.
                self._after = max(self._after, int(last))
                return Tally(dict(self._counts), self._dead)
        return None
