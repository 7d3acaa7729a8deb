"""What a receiver refused, remembered: so a re-sent copy is answered the same way, and a
refusal whose cause can pass is kept to be processed again.

- ``refused``: per sender, message id and envelope digest, the refusal code and whether
  it can pass. A re-sent copy of an envelope refused for good gets the same receipt
  again without a second refusal; one refused for a reason that can pass (a clock
  running slow, a directory or agreement version not yet received) is judged afresh.
- ``deadletters``: the records refused for a reason that can pass, whole (no larger than
  the broker took them), for ``mappa deadletter list|retry`` once the cause is fixed.
  Records refused for good go to the dead-letter topic only.

What goes to the dead-letter topic (``dead_letter``) is bounded: the refused record's
first ``DEAD_LETTER_HEAD_BYTES`` bytes, with the SHA-256 and size of its whole value in
headers, never a copy (a copy of a record near the broker's limit, with the reason
headers added, is larger than the producer may send, and would jam the outbox).

Part of the agency's store (``AgencyStore.deadletters``): it shares the store's
connection and its transactions.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas.common import format_timestamp

# A dead letter on the topic carries this much of the refused record's value, with its
# digest and size: enough to recognise it, never more than the broker took.
DEAD_LETTER_HEAD_BYTES = 1024
# A key is the subject's reference (64 hex characters) or an agency id; anything longer
# is cut like the value.
DEAD_LETTER_KEY_BYTES = 256
# The reason header, in bytes: reasons are one line, and may be cut.
DEAD_LETTER_REASON_BYTES = 1000

TABLES = """
CREATE TABLE IF NOT EXISTS refused (
    sender TEXT NOT NULL, message_id TEXT NOT NULL, digest TEXT NOT NULL,
    reason_code TEXT NOT NULL, retriable INTEGER NOT NULL, refused_at TEXT NOT NULL,
    PRIMARY KEY (sender, message_id, digest)
);
CREATE TABLE IF NOT EXISTS deadletters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, key BLOB, value BLOB NOT NULL,
    reason_code TEXT NOT NULL, reason TEXT NOT NULL, refused_at TEXT NOT NULL,
    retried_at TEXT, outcome TEXT
);
CREATE INDEX IF NOT EXISTS deadletters_open ON deadletters (outcome, id);
CREATE UNIQUE INDEX IF NOT EXISTS deadletters_record ON deadletters (topic, partition, "offset");
"""


@dataclass(frozen=True)
class DeadLetterRecord:
    """A record for the dead-letter topic: never larger than a few KiB, whatever it
    reports on."""

    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    reason_code: str,
    reason: str,
    refused_by: str,
    refused_at: str,
) -> DeadLetterRecord:
    """The bounded dead letter of the record read at ``topic/partition@offset``: its first
    bytes, its digest and size, why and by whom it was refused, and when."""
    return DeadLetterRecord(
        value=value[:DEAD_LETTER_HEAD_BYTES],
        key=None if key is None else key[:DEAD_LETTER_KEY_BYTES],
        headers=[
            ("mappa-reason-code", reason_code.encode()),
            ("mappa-reason", reason.encode()[:DEAD_LETTER_REASON_BYTES]),
            ("mappa-refused-by", refused_by.encode()),
            ("mappa-refused-at", refused_at.encode()),
            ("mappa-origin", json.dumps([topic, partition, offset]).encode()),
            ("mappa-value-sha256", hashlib.sha256(value).hexdigest().encode()),
            ("mappa-value-bytes", str(len(value)).encode()),
        ],
    )


@dataclass(frozen=True)
class Remembered:
    reason_code: str
    retriable: bool


@dataclass(frozen=True)
class DeadLetter:
    """A refused record kept for another try: where it was read, what it was, why."""

    id: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    reason_code: str
    reason: str
    refused_at: str
    retried_at: str | None
    outcome: str | None


class DeadLetters:
    """The ``refused`` and ``deadletters`` tables; writes inside the store's transaction."""

    def __init__(self, db: sqlite3.Connection, require_transaction: Callable[[], None]) -> None:
        self._db = db
        self._require = require_transaction
        db.executescript(TABLES)

    def remember(
        self,
        sender: str,
        message_id: str,
        digest: str,
        reason_code: str,
        *,
        retriable: bool,
        now: datetime,
    ) -> None:
        """Remember (or update) how this envelope was refused."""
        self._require()
        self._db.execute(
            "INSERT OR REPLACE INTO refused VALUES (?, ?, ?, ?, ?, ?)",
            (sender, message_id, digest, reason_code, int(retriable), format_timestamp(now)),
        )

    def recall(self, sender: str, message_id: str, digest: str) -> Remembered | None:
        """How this exact envelope was refused before, if it was."""
        row = self._db.execute(
            "SELECT reason_code, retriable FROM refused "
            "WHERE sender = ? AND message_id = ? AND digest = ?",
            (sender, message_id, digest),
        ).fetchone()
        return None if row is None else Remembered(str(row[0]), bool(row[1]))

    def forget(self, sender: str, message_id: str, digest: str) -> None:
        """A refusal that passed: the envelope was delivered after all."""
        self._require()
        self._db.execute(
            "DELETE FROM refused WHERE sender = ? AND message_id = ? AND digest = ?",
            (sender, message_id, digest),
        )

    def keep(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes,
        reason_code: str,
        reason: str,
        now: datetime,
    ) -> int:
        """Keep a record refused for a reason that can pass; returns its id. The same
        record refused again (read anew, or retried) keeps its one row, open again with
        the latest reason."""
        self._require()
        self._db.execute(
            'INSERT INTO deadletters (topic, partition, "offset", timestamp_ms, key, value, '
            "reason_code, reason, refused_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            'ON CONFLICT (topic, partition, "offset") DO UPDATE SET '
            "reason_code = excluded.reason_code, reason = excluded.reason, "
            "refused_at = excluded.refused_at, outcome = NULL",
            (topic, partition, offset, timestamp_ms, key, value, reason_code, reason,
             format_timestamp(now)),
        )  # fmt: skip
        row = self._db.execute(
            'SELECT id FROM deadletters WHERE topic = ? AND partition = ? AND "offset" = ?',
            (topic, partition, offset),
        ).fetchone()
        return int(row[0])

    def pending(self, limit: int = 1000) -> list[DeadLetter]:
        """The kept records not yet settled by a retry, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM deadletters WHERE outcome IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [DeadLetter(*r) for r in rows]

    def all(self, limit: int = 1000) -> list[DeadLetter]:
        """Every kept record, settled or not, newest first."""
        rows = self._db.execute("SELECT * FROM deadletters ORDER BY id DESC LIMIT ?", (limit,))
        return [DeadLetter(*r) for r in rows]

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        """One kept record, or None."""
        row = self._db.execute(
            "SELECT * FROM deadletters WHERE id = ?", (dead_letter_id,)
        ).fetchone()
        return None if row is None else DeadLetter(*row)

    def settle(self, dead_letter_id: int, outcome: str, now: datetime) -> None:
        """Record what a retry made of a kept record (``delivered``, ``refused:<code>``...)."""
        self._require()
        self._db.execute(
            "UPDATE deadletters SET outcome = ?, retried_at = ? WHERE id = ?",
            (outcome, format_timestamp(now), dead_letter_id),
        )
