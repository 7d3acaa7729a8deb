"""Release scheduled / address approved, and breach, recall, return to custody."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import LongText, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import Address


class ReleaseScheduled(MessageBody):
    message_type: Literal["release-scheduled"] = "release-scheduled"
    schema_version: VersionOne = 1
    release_date: Annotated[RecordDate, InSummary()]
    establishment: Annotated[ShortText, InSummary()]
    release_address: Address | None = None
    address_approved: bool
    licence_end: RecordDate | None = None
    notes: LongText | None = None
    # Conditions asked for by victims (exclusion zones, no contact) name them.
    victim_requested_conditions: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.VICTIM)] = (
        Field(default=(), max_length=20)
    )
    health_notes: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None


class CustodyEvent(enum.StrEnum):
    BREACH = "breach"
    RECALL = "recall"
    RETURNED_TO_CUSTODY = "returned-to-custody"


class RecallType(enum.StrEnum):
    FIXED_TERM = "fixed-term"
    STANDARD = "standard"


class BreachRecall(MessageBody):
    """A breach of licence or order, a recall, or the return to custody that follows.

    ``level`` is the MAPPA level at the time of the event (at return, for a return).
    """

    message_type: Literal["breach-recall"] = "breach-recall"
    schema_version: VersionOne = 1
    event: Annotated[CustodyEvent, InSummary()]
    event_date: Annotated[RecordDate, InSummary()]
    breach_of: Annotated[Literal["licence", "order"], InSummary()]
    recall_type: Annotated[RecallType | None, InSummary()] = None
    reason: LongText
    establishment: ShortText | None = None
    intelligence_source: Annotated[ShortText | None, Sensitive(Sensitivity.INTELLIGENCE)] = None

    @model_validator(mode="after")
    def _coherent(self) -> BreachRecall:
        if self.event is not CustodyEvent.BREACH and self.recall_type is None:
            raise ValueError(f"a {self.event.value} names the recall type")
        if self.event is CustodyEvent.RECALL and self.breach_of == "order":
            raise ValueError("recall is for breach of licence; an order breach is prosecuted")
        if self.event is CustodyEvent.RETURNED_TO_CUSTODY and not self.establishment:
            raise ValueError("a return to custody names the establishment")
        return self
