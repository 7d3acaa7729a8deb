"""The case registry: which transfers an agency knows of, and which area owns a case.

Kept in the agency's own store (same SQLite connection, so a registry change joins the
transaction that records the message and its audit event). It is built only from
verified transfer messages: what this agency sent, and what it received and accepted.
"""

from __future__ import annotations

from broker.gateway.store import AgencyStore
from schemas.transfer import (
    TransferComplete,
    TransferControl,
    TransferRecord,
    TransferRequest,
    TransferState,
)

_TABLES = (
    """CREATE TABLE IF NOT EXISTS transfers (
        transfer_id TEXT PRIMARY KEY, subject_ref TEXT NOT NULL, state TEXT NOT NULL,
        seq INTEGER NOT NULL, record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS transfers_subject ON transfers (subject_ref, seq)",
    """CREATE TABLE IF NOT EXISTS transfer_reshared (
        transfer_id TEXT NOT NULL, message_id TEXT NOT NULL, reshared_as TEXT NOT NULL,
        PRIMARY KEY (transfer_id, message_id)
    )""",
)

_OPEN = tuple(s.value for s in TransferState if s.is_open)


class CaseRegistry:
    def __init__(self, store: AgencyStore) -> None:
        self._store = store
        self._db = store.db
        for statement in _TABLES:
            self._db.execute(statement)

    # -- reading ----------------------------------------------------------------------------
    def _one(self, sql: str, *args: object) -> TransferRecord | None:
        row = self._db.execute(sql, args).fetchone()
        return None if row is None else TransferRecord.model_validate_json(row[0])

    def get(self, transfer_id: str) -> TransferRecord | None:
        return self._one("SELECT record FROM transfers WHERE transfer_id = ?", transfer_id)

    def open_for(self, subject_ref: str) -> TransferRecord | None:
        """The subject's transfer in progress (requested or accepted), if any."""
        return self._one(
            "SELECT record FROM transfers WHERE subject_ref = ? AND state IN (?, ?) "
            "ORDER BY seq DESC LIMIT 1",
            subject_ref,
            *_OPEN,
        )

    def owner(self, subject_ref: str) -> str | None:
        """The area that owns the case after its latest completed transfer; None if this
        agency knows of no completed transfer (the case stays where its messages say)."""
        done = self._one(
            "SELECT record FROM transfers WHERE subject_ref = ? AND state = ? "
            "ORDER BY seq DESC LIMIT 1",
            subject_ref,
            TransferState.COMPLETED.value,
        )
        return None if done is None else done.to_area

    def records(self, *, state: TransferState | None = None) -> list[TransferRecord]:
        if state is None:
            rows = self._db.execute("SELECT record FROM transfers ORDER BY seq")
        else:
            rows = self._db.execute(
                "SELECT record FROM transfers WHERE state = ? ORDER BY seq", (state.value,)
            )
        return [TransferRecord.model_validate_json(r[0]) for r in rows]

    # -- writing (inside the store's transaction) ------------------------------------------
    def apply(self, message: TransferControl, state: TransferState, *, at: str) -> TransferRecord:
        """Record a checked step. A completion seen without the earlier steps (a
        receiving-area agency told only of the outcome) creates the record from it."""
        self._store.require_transaction()
        current = self.get(message.transfer_id)
        changes: dict[str, object] = {
            "state": state,
            "updated_at": at,
            "last_step_by": message.actor_agency,
            "last_reason": message.reason,
        }
        if isinstance(message, TransferComplete):
            changes["completed_on"] = message.completed_on
            changes["address_notified_on"] = message.address_notified_on
            changes["case_team"] = message.case_team
        if current is None:
            request = message if isinstance(message, TransferRequest) else None
            record = TransferRecord(
                transfer_id=message.transfer_id,
                subject_ref=message.subject_ref,
                from_area=message.from_area,
                to_area=message.to_area,
                state=state,
                lead_agency=message.lead_agency,
                registered_sex_offender=request.registered_sex_offender if request else False,
                requested_on=request.requested_on if request else None,
                move_date=message.move_date,
                reason=message.reason,
                open_actions=message.open_actions,
                requested_by=message.actor_agency,
                updated_at=at,
                last_step_by=message.actor_agency,
            )
            record = record.model_copy(update=changes)
        else:
            record = current.model_copy(update=changes)
        self._db.execute(
            "INSERT INTO transfers VALUES (?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 "
            "FROM transfers), ?) ON CONFLICT (transfer_id) DO UPDATE SET state = excluded.state, "
            "seq = excluded.seq, record = excluded.record",
            (record.transfer_id, record.subject_ref, state.value, record.model_dump_json()),
        )
        return record

    def reshared(self, transfer_id: str) -> set[str]:
        rows = self._db.execute(
            "SELECT message_id FROM transfer_reshared WHERE transfer_id = ?", (transfer_id,)
        )
        return {r[0] for r in rows}

    def mark_reshared(self, transfer_id: str, message_id: str, reshared_as: str) -> None:
        self._store.require_transaction()
        self._db.execute(
            "INSERT INTO transfer_reshared VALUES (?, ?, ?)", (transfer_id, message_id, reshared_as)
        )
