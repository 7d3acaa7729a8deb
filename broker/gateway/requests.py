"""Submissions made with an idempotency key, remembered: so a retried request gets the
first answer again and nothing is published twice.

One row per agency and key: a fingerprint of the request (a hash, never its content),
the answer given, as JSON, and when. A key is written in the same transaction as the
publication it answers (``Publisher.publish``'s ``on_queued``), so a crash keeps both
or neither; a second request with the key, finding it inside its own transaction,
rolls its publication back (``KeyTaken``). Keys are forgotten after ``RETENTION``: a
lookup ignores an older row, and each new key prunes a few of them.

Part of the agency's store (``AgencyStore.requests``): it shares the store's connection
and its transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.common import format_timestamp

# The draft's example (draft-ietf-httpapi-idempotency-key-header, "expiry"): long enough
# for any client's retries, short enough that the table stays small.
RETENTION = timedelta(hours=24)
# Expired keys deleted per new key, oldest first by an index: pruning stays a bounded
# cost on the submission it rides with, and keeps pace as long as keys arrive.
PRUNE_BATCH = 100

TABLES = """
CREATE TABLE IF NOT EXISTS request_keys (
    agency TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    answer TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (agency, key)
);
CREATE INDEX IF NOT EXISTS request_keys_created ON request_keys (created_at);
"""


@dataclass(frozen=True)
class Answered:
    """What a request with a key was answered, and the fingerprint of that request."""

    fingerprint: str
    # The answer as JSON, exactly as it was given.
    answer: str
    created_at: str


class KeyTaken(Exception):
    """Another request with the same key was answered first; raised inside the caller's
    transaction so that its own work rolls back. ``answered`` is what it was answered."""

    def __init__(self, answered: Answered) -> None:
        super().__init__("the idempotency key was taken by another request")
        self.answered = answered


class Requests:
    """The ``request_keys`` table; writes inside the store's transaction."""

    def __init__(self, db: sqlite3.Connection, require_transaction: Callable[[], None]) -> None:
        self._db = db
        self._require = require_transaction
        db.executescript(TABLES)

    def find(self, agency: str, key: str, *, now: datetime) -> Answered | None:
        """The answer remembered for ``agency``'s ``key``; None if there is none, or it is
        older than ``RETENTION`` at ``now``."""
        row = self._db.execute(
            "SELECT fingerprint, answer, created_at FROM request_keys "
            "WHERE agency = ? AND key = ? AND created_at >= ?",
            (agency, key, format_timestamp(now - RETENTION)),
        ).fetchone()
        return None if row is None else Answered(*row)

    def remember(
        self, agency: str, key: str, *, fingerprint: str, answer: str, now: datetime
    ) -> None:
        """Remember ``answer`` to the request ``fingerprint`` under ``agency``'s ``key``, and
        prune up to ``PRUNE_BATCH`` keys past ``RETENTION``. Raises ``KeyTaken`` if the key
        is held (and not expired) already, and ``RuntimeError`` outside the store's
        transaction."""
        self._require()
        held = self.find(agency, key, now=now)
        if held is not None:
            raise KeyTaken(held)
        self._db.execute(
            "DELETE FROM request_keys WHERE rowid IN (SELECT rowid FROM request_keys "
            "WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            (format_timestamp(now - RETENTION), PRUNE_BATCH),
        )
        # REPLACE: this very key may be held past its retention, not yet pruned.
        self._db.execute(
            "INSERT OR REPLACE INTO request_keys VALUES (?, ?, ?, ?, ?)",
            (agency, key, fingerprint, answer, format_timestamp(now)),
        )

    def amend(self, agency: str, key: str, answer: str) -> None:
        """Replace the answer remembered under ``agency``'s ``key`` (what became known
        after the publication committed). Raises ``RuntimeError`` outside the store's
        transaction."""
        self._require()
        self._db.execute(
            "UPDATE request_keys SET answer = ? WHERE agency = ? AND key = ?",
            (answer, agency, key),
        )
