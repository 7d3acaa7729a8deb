"""The case registry: which transfers an agency knows of, and which area owns a case.

Kept in the agency's own store (``AgencyStore``'s transfer rows, so a registry change
joins the transaction that records the message and its audit event). It is built only from
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

_OPEN = tuple(s.value for s in TransferState if s.is_open)


def _record(stored: str | None) -> TransferRecord | None:
    return None if stored is None else TransferRecord.model_validate_json(stored)


class CaseRegistry:
    """Typed access to the transfers an agency knows of, over its store's rows."""

    def __init__(self, store: AgencyStore) -> None:
        self._store = store

    # -- reading ----------------------------------------------------------------------------
    def get(self, transfer_id: str) -> TransferRecord | None:
        """The transfer's record as this agency knows it; None if it knows of none."""
        return _record(self._store.transfer_json(transfer_id))

    def open_for(self, subject_ref: str) -> TransferRecord | None:
        """The subject's transfer in progress (requested or accepted), if any."""
        return _record(self._store.latest_transfer_json(subject_ref, _OPEN))

    def owner(self, subject_ref: str) -> str | None:
        """The area that owns the case after its latest completed transfer; None if this
        agency knows of no completed transfer (the case stays where its messages say)."""
        done = _record(
            self._store.latest_transfer_json(subject_ref, (TransferState.COMPLETED.value,))
        )
        return None if done is None else done.to_area

    def records(self, *, state: TransferState | None = None) -> list[TransferRecord]:
        """Every transfer known (or those in ``state``), in the order they last changed."""
        stored = self._store.transfers_json(state.value if state else None)
        return [TransferRecord.model_validate_json(r) for r in stored]

    # -- writing (inside the store's transaction) ------------------------------------------
    def apply(self, message: TransferControl, state: TransferState, *, at: str) -> TransferRecord:
        """Record a checked step. A completion seen without the earlier steps (a
        receiving-area agency told only of the outcome) creates the record from it.
        Returns the record as it now stands. Raises ``RuntimeError`` outside the store's
        transaction."""
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
        self._store.put_transfer(
            record.transfer_id, record.subject_ref, state.value, record.model_dump_json()
        )
        return record

    def reshared(self, transfer_id: str) -> set[tuple[str, str]]:
        """The held messages, as ``(sender, message_id)``, the handover of ``transfer_id``
        has already dealt with."""
        return self._store.reshared(transfer_id)

    def mark_reshared(
        self, transfer_id: str, sender: str, message_id: str, reshared_as: str
    ) -> None:
        """Remember that the handover dealt with ``sender``'s message ``message_id`` (a new
        message id, or why not). Inside the store's transaction."""
        self._store.mark_reshared(transfer_id, sender, message_id, reshared_as)
