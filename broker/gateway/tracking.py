"""What became of everything an agency sent that needs an answer: per envelope and
entitled recipient, and per audit event and the ledger.

States, in order: ``queued`` (in the outbox), ``sent`` (the broker acknowledged it; a
receipt is awaited until ``due_at``), then one of ``delivered`` (receipted as taken; for
an audit event, held by the ledger), ``refused`` (receipted as refused, with the code) or
``undeliverable`` (no receipt after every re-send). A record the broker refuses for
good is never sent (the relay sets it aside): its rows are ``refused`` at once, with the
broker's code (``transport.record-rejected``). A row past its ``due_at`` is sent
again (its outbox row is marked unsent) with a doubling wait; the outbox keeps the record
until every row of it is settled. One table, for envelopes and audit events alike: the
ledger is one more recipient (``LEDGER``), an event's id its message id.

Part of the agency's store (``AgencyStore.tracking``): it shares the store's connection
and its transactions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.common import ViewKind, format_timestamp, parse_timestamp

# The ledger as a recipient of audit events (an agency id never has no dot).
LEDGER = "ledger"

TABLES = """
CREATE TABLE IF NOT EXISTS tracked (
    message_id TEXT NOT NULL, recipient TEXT NOT NULL, outbox_seq INTEGER NOT NULL,
    digest TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    queued_at TEXT NOT NULL, updated_at TEXT NOT NULL, due_at TEXT, reason_code TEXT,
    subject_ref TEXT, message_type TEXT, view TEXT, about TEXT,
    PRIMARY KEY (message_id, recipient)
);
CREATE INDEX IF NOT EXISTS tracked_due ON tracked (state, due_at);
CREATE INDEX IF NOT EXISTS tracked_seq ON tracked (outbox_seq);
"""

QUEUED, SENT, DELIVERED, REFUSED, UNDELIVERABLE = (
    "queued",
    "sent",
    "delivered",
    "refused",
    "undeliverable",
)
SETTLED = (DELIVERED, REFUSED, UNDELIVERABLE)
# The most sent messages one page of ``Tracking.sent_page`` may hold, and the largest
# outbox position there can be (SQLite's largest integer).
MAX_SENT_PAGE = 100
MAX_POSITION = (1 << 63) - 1
# A settled row a later receipt may still change (``receipted``).
_LATE_ANSWERS = frozenset(
    {(REFUSED, DELIVERED), (UNDELIVERABLE, DELIVERED), (UNDELIVERABLE, REFUSED)}
)


@dataclass(frozen=True)
class Tracked:
    """One envelope's (or audit event's) fate at one recipient."""

    message_id: str
    recipient: str
    outbox_seq: int
    digest: str
    state: str
    attempts: int
    queued_at: str
    updated_at: str
    due_at: str | None
    reason_code: str | None
    # For the audit event a receipt makes: whose data, what kind (never the content),
    # the view disclosed, and the disclosure's other audit fields as JSON.
    subject_ref: str | None
    message_type: str | None
    view: str | None
    about: str | None

    def audit_fields(self) -> dict[str, Any]:
        """The fields of the disclosure this row tracks, for the receipt's audit event."""
        fields: dict[str, Any] = json.loads(self.about) if self.about else {}
        return fields | {"view": ViewKind(self.view)} if self.view else fields


@dataclass(frozen=True)
class SentMessage:
    """One message an agency sent to other agencies, and its fate at each of them."""

    message_id: str
    message_type: str | None
    queued_at: str
    # The outbox position of its last envelope: the sent list's order, and its cursor.
    position: int
    recipients: tuple[Tracked, ...]  # by recipient; never the ledger


@dataclass(frozen=True)
class SentPage:
    """A page of sent messages, newest first; ``next_before`` is the ``before`` of the
    page after it, None when it is the last."""

    messages: list[SentMessage]
    next_before: int | None


# Outbox rows named in one statement: well under SQLite's bound on variables.
SEQS_PER_STATEMENT = 500


class Tracking:
    """The ``tracked`` table; writes inside the store's transaction."""

    def __init__(self, db: sqlite3.Connection, require_transaction: Callable[[], None]) -> None:
        self._db = db
        self._require = require_transaction
        db.executescript(TABLES)

    def track(
        self,
        outbox_seq: int,
        message_id: str,
        recipients: Sequence[tuple[str, str | None]],
        *,
        digest: str,
        now: datetime,
        about: Mapping[str, Any] | None = None,
    ) -> None:
        """Await a receipt from each of ``recipients`` (an agency and the view it was
        given) for the record at ``outbox_seq``; ``about`` holds the disclosure's audit
        fields (subject, type, agreement, purpose...)."""
        self._require()
        at = format_timestamp(now)
        # The disclosure's reason is its own; the receipt's event says why it was made.
        fields = {k: v for k, v in (about or {}).items() if k != "reason"}
        subject_ref, message_type = fields.get("subject_ref"), fields.get("message_type")
        text = json.dumps(fields, sort_keys=True) if fields else None
        self._db.executemany(
            "INSERT OR IGNORE INTO tracked (message_id, recipient, outbox_seq, digest, state, "
            "queued_at, updated_at, subject_ref, message_type, view, about) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (message_id, r, outbox_seq, digest, QUEUED, at, at, subject_ref, message_type,
                 view, text)
                for r, view in recipients
            ],
        )  # fmt: skip

    def sent(
        self, outbox_seqs: Sequence[int], now: datetime, wait: Callable[[int], timedelta]
    ) -> None:
        """The broker acknowledged these outbox rows: await receipts until
        ``now + wait(attempts)``."""
        self._require()
        rows: list[tuple[str, str, int]] = []
        # A few statements for a flush of any size (SQLite bounds a statement's variables).
        for start in range(0, len(outbox_seqs), SEQS_PER_STATEMENT):
            chunk = outbox_seqs[start : start + SEQS_PER_STATEMENT]
            marks = ", ".join("?" * len(chunk))
            rows += self._db.execute(
                "SELECT message_id, recipient, attempts FROM tracked "  # noqa: S608
                f"WHERE outbox_seq IN ({marks}) AND state = ?",
                (*chunk, QUEUED),
            ).fetchall()
        at = format_timestamp(now)
        self._db.executemany(
            "UPDATE tracked SET state = ?, due_at = ?, updated_at = ? "
            "WHERE message_id = ? AND recipient = ?",
            [(SENT, format_timestamp(now + wait(attempts)), at, m, r) for m, r, attempts in rows],
        )

    def receipted(
        self,
        message_id: str,
        recipient: str,
        *,
        digest: str | None,
        state: str,
        now: datetime,
        reason_code: str | None = None,
    ) -> Tracked | None:
        """Settle a row by a verified receipt. Returns the row as it was, or None if there
        is no such row, the digest differs (``digest`` None: not compared) or it was
        settled already (a receipt for a re-sent copy). Settled rows may still change
        where a receipt says more than the row: refused, then delivered (a refusal whose
        cause passed, retried by the recipient); undeliverable, then delivered or refused
        (a recipient back after the sender gave up, reading the topic's log)."""
        self._require()
        row = self.get(message_id, recipient)
        if row is None or (digest is not None and row.digest != digest):
            return None
        if (row.state, state) not in _LATE_ANSWERS and row.state in SETTLED:
            return None
        self._db.execute(
            "UPDATE tracked SET state = ?, reason_code = ?, updated_at = ?, due_at = NULL "
            "WHERE message_id = ? AND recipient = ?",
            (state, reason_code, format_timestamp(now), message_id, recipient),
        )
        return row

    def get(self, message_id: str, recipient: str) -> Tracked | None:
        """One row, or None."""
        row = self._db.execute(
            "SELECT * FROM tracked WHERE message_id = ? AND recipient = ?", (message_id, recipient)
        ).fetchone()
        return None if row is None else Tracked(*row)

    def of_message(self, message_id: str) -> list[Tracked]:
        """Every recipient's row for one message, by recipient."""
        rows = self._db.execute(
            "SELECT * FROM tracked WHERE message_id = ? ORDER BY recipient", (message_id,)
        )
        return [Tracked(*r) for r in rows]

    def sent_page(self, *, before: int | None = None, limit: int = 25) -> SentPage:
        """The messages sent to other agencies (audit events, tracked for the ``LEDGER``,
        are not among them), newest first by the outbox position of their last envelope
        (``SentMessage.position``), those below ``before`` only (None: from the newest).
        Keyset paging: a page stays the same while new messages are sent. Raises
        ``ValueError`` unless ``1 <= limit <= MAX_SENT_PAGE`` and ``before`` is None or
        from 1 to ``MAX_POSITION``."""
        if not 1 <= limit <= MAX_SENT_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_SENT_PAGE}")
        if before is not None and not 1 <= before <= MAX_POSITION:
            raise ValueError(f"before must be an outbox position from 1 to {MAX_POSITION}")
        # One message may be several envelopes (a topic each), each its own outbox row,
        # and audit events' rows lie between messages'. So the rows are walked down the
        # outbox index, newest first, and stop at the message after the page's last:
        # a page reads about as many rows as it shows, however long the history.
        rows = self._db.execute(
            "SELECT message_id FROM tracked WHERE recipient != ? AND outbox_seq < ? "
            "ORDER BY outbox_seq DESC",
            (LEDGER, MAX_POSITION if before is None else before),
        )
        found: list[str] = []
        walked: set[str] = set()
        for (message_id,) in rows:
            if message_id in walked:
                continue
            walked.add(message_id)
            # A message whose last envelope is at or above ``before`` was on a page
            # before this one (its rows below ``before`` are its earlier envelopes).
            if before is not None and self._last_position(message_id) >= before:
                continue
            found.append(message_id)
            if len(found) > limit:
                break
        rows.close()
        messages = [self._sent(m) for m in found[:limit]]
        more = len(found) > limit
        return SentPage(messages, messages[-1].position if more and messages else None)

    def _last_position(self, message_id: str) -> int:
        row = self._db.execute(
            "SELECT max(outbox_seq) FROM tracked WHERE message_id = ? AND recipient != ?",
            (message_id, LEDGER),
        ).fetchone()
        return int(row[0])

    def _sent(self, message_id: str) -> SentMessage:
        recipients = tuple(r for r in self.of_message(message_id) if r.recipient != LEDGER)
        return SentMessage(
            message_id=message_id,
            message_type=recipients[0].message_type,
            queued_at=min(r.queued_at for r in recipients),
            position=max(r.outbox_seq for r in recipients),
            recipients=recipients,
        )

    def overdue(self, now: datetime, limit: int = 500) -> list[Tracked]:
        """Rows sent and not receipted by now, oldest due first."""
        rows = self._db.execute(
            "SELECT * FROM tracked WHERE state = ? AND due_at <= ? ORDER BY due_at LIMIT ?",
            (SENT, format_timestamp(now), limit),
        )
        return [Tracked(*r) for r in rows]

    def awaiting(self) -> list[int]:
        """The outbox rows sent and still awaiting a receipt from someone."""
        rows = self._db.execute(
            "SELECT DISTINCT outbox_seq FROM tracked WHERE state = ? ORDER BY outbox_seq",
            (SENT,),
        )
        return [int(r[0]) for r in rows]

    def requeue(self, outbox_seq: int, now: datetime) -> None:
        """Send the record again: its pending rows go back to ``queued`` with one more
        attempt (the caller marks the outbox row unsent in the same transaction)."""
        self._require()
        self._db.execute(
            "UPDATE tracked SET state = ?, attempts = attempts + 1, due_at = NULL, "
            "updated_at = ? WHERE outbox_seq = ? AND state = ?",
            (QUEUED, format_timestamp(now), outbox_seq, SENT),
        )

    def refused_by_broker(self, outbox_seq: int, reason_code: str, now: datetime) -> None:
        """The broker refuses the record at ``outbox_seq`` for good (the relay set it
        aside): its unsettled rows are ``refused`` with ``reason_code``. No receipt can
        come for a record never sent, so without this the sender would be told for ever
        that it is still on its way."""
        self._require()
        self._db.execute(
            "UPDATE tracked SET state = ?, reason_code = ?, due_at = NULL, updated_at = ? "
            "WHERE outbox_seq = ? AND state NOT IN (?, ?, ?)",
            (REFUSED, reason_code, format_timestamp(now), outbox_seq, *SETTLED),
        )

    def give_up(self, message_id: str, recipient: str, now: datetime) -> None:
        """No receipt came after every re-send: the row is ``undeliverable``."""
        self._require()
        self._db.execute(
            "UPDATE tracked SET state = ?, due_at = NULL, updated_at = ? "
            "WHERE message_id = ? AND recipient = ?",
            (UNDELIVERABLE, format_timestamp(now), message_id, recipient),
        )

    def unsettled(self, outbox_seq: int) -> int:
        """How many rows of this outbox record still await an answer."""
        row = self._db.execute(
            "SELECT count(*) FROM tracked WHERE outbox_seq = ? AND state NOT IN (?, ?, ?)",
            (outbox_seq, *SETTLED),
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        """How many rows are in each state (for readiness and the operator)."""
        return dict(self._db.execute("SELECT state, count(*) FROM tracked GROUP BY state"))


def age(row: Tracked, now: datetime) -> timedelta:
    """How long since the row was first queued."""
    return now - parse_timestamp(row.queued_at)
