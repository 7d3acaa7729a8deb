"""Area transfer requested, accepted or completed (lead agency, co-ordinators).

``area`` is the area the case is leaving; the message is shared there, so the
old area's partners know when to stop and the new area's lead knows to start.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import AgencyId, AreaCode, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import Action, Address


class TransferStage(enum.StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    COMPLETED = "completed"


class AreaTransfer(MessageBody):
    message_type: Literal["area-transfer"] = "area-transfer"
    schema_version: VersionOne = 1
    stage: Annotated[TransferStage, InSummary()]
    to_area: Annotated[AreaCode, InSummary()]
    move_date: Annotated[RecordDate, InSummary()]
    # Probation must transfer the case within 20 working days.
    transfer_due_by: Annotated[RecordDate, InSummary()]
    receiving_lead: AgencyId | None = None
    new_address: Address | None = None
    reason: ShortText
    open_actions: tuple[Action, ...] = Field(default=(), max_length=100)
    # Moves are often made to get away from, or near to, a victim.
    victim_considerations: Annotated[ShortText | None, Sensitive(Sensitivity.VICTIM)] = None

    @model_validator(mode="after")
    def _coherent(self) -> AreaTransfer:
        if self.to_area == self.area:
            raise ValueError("to_area must differ from the area the case is leaving")
        if self.transfer_due_by < self.move_date:
            raise ValueError("transfer_due_by cannot be before move_date")
        if self.stage is not TransferStage.REQUESTED and self.receiving_lead is None:
            raise ValueError(f"an {self.stage.value} transfer names the receiving lead")
        return self
