"""Area transfer control messages and the transfer state machine.

A transfer moves one offender's case (one subject) from the area that manages it to
another. Each step is one control message, signed and sealed for the co-ordinators
and Responsible Authority agencies of both areas, on the cross-area transfer topic:

  step      from state            to state     who may send it
  request   (none open)           requested    sending area: an RA agency or the co-ordinator
  accept    requested             accepted     receiving area's co-ordinator
  refuse    requested             refused      receiving area's co-ordinator
  cancel    requested, accepted   cancelled    sending area's lead agency or co-ordinator,
                                               or the receiving area's co-ordinator
  complete  accepted              completed    receiving area's co-ordinator, on or after the
                                               move date: it attests the receiving area has
                                               taken the case over, so ownership moves then

Refused, cancelled and completed are final. At most one transfer per subject is open
(requested or accepted) at a time.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from schemas.common import (
    AgencyId,
    AreaCode,
    Frozen,
    IsoDate,
    LongText,
    Role,
    ShortText,
    SubjectRef,
    Uuid,
    VersionOne,
)


class TransferState(enum.StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"

    @property
    def is_open(self) -> bool:
        return self in (TransferState.REQUESTED, TransferState.ACCEPTED)


class TransferStep(enum.StrEnum):
    REQUEST = "request"
    ACCEPT = "accept"
    REFUSE = "refuse"
    CANCEL = "cancel"
    COMPLETE = "complete"

    @property
    def message_type(self) -> str:
        """The envelope header's message type for this step."""
        return f"transfer-{self.value}"


# (state before, step) -> state after. Anything not listed is refused.
TRANSITIONS: dict[tuple[TransferState | None, TransferStep], TransferState] = {
    (None, TransferStep.REQUEST): TransferState.REQUESTED,
    (TransferState.REQUESTED, TransferStep.ACCEPT): TransferState.ACCEPTED,
    (TransferState.REQUESTED, TransferStep.REFUSE): TransferState.REFUSED,
    (TransferState.REQUESTED, TransferStep.CANCEL): TransferState.CANCELLED,
    (TransferState.ACCEPTED, TransferStep.CANCEL): TransferState.CANCELLED,
    (TransferState.ACCEPTED, TransferStep.COMPLETE): TransferState.COMPLETED,
}


class Side(enum.StrEnum):
    SENDING = "sending"
    RECEIVING = "receiving"


# Who may send each step: (side, roles). "lead" (below) narrows the sending RA agencies
# for a cancel to the transfer's named lead agency.
RA_ROLES = (Role.POLICE, Role.PROBATION, Role.PRISON)
MAY_SEND: dict[TransferStep, tuple[tuple[Side, tuple[Role, ...]], ...]] = {
    TransferStep.REQUEST: ((Side.SENDING, (*RA_ROLES, Role.COORDINATOR)),),
    TransferStep.ACCEPT: ((Side.RECEIVING, (Role.COORDINATOR,)),),
    TransferStep.REFUSE: ((Side.RECEIVING, (Role.COORDINATOR,)),),
    TransferStep.CANCEL: (
        (Side.SENDING, (*RA_ROLES, Role.COORDINATOR)),
        (Side.RECEIVING, (Role.COORDINATOR,)),
    ),
    TransferStep.COMPLETE: ((Side.RECEIVING, (Role.COORDINATOR,)),),
}

CONTROL_MESSAGE_TYPES: frozenset[str] = frozenset(s.message_type for s in TransferStep)


class TransferControl(Frozen):
    """What every step carries. The subject appears only as its keyed reference."""

    kind: Literal["mappa.transfer"] = "mappa.transfer"
    schema_version: VersionOne = 1
    transfer_id: Uuid
    subject_ref: SubjectRef
    from_area: AreaCode
    to_area: AreaCode
    move_date: IsoDate
    reason: LongText
    open_actions: tuple[ShortText, ...] = Field(default=(), max_length=50)
    # The sending RA agency that leads the case and hands its history over on completion.
    lead_agency: AgencyId
    actor_agency: AgencyId
    actor_user: ShortText

    @model_validator(mode="after")
    def _two_areas(self) -> TransferControl:
        if self.from_area == self.to_area:
            raise ValueError("a transfer moves a case between two different areas")
        return self


class TransferRequest(TransferControl):
    step: Literal["request"] = "request"
    requested_on: IsoDate
    # Registered sexual offender: the 3-day new-address notification applies.
    registered_sex_offender: bool


class TransferAccept(TransferControl):
    step: Literal["accept"] = "accept"


class TransferRefuse(TransferControl):
    step: Literal["refuse"] = "refuse"


class TransferCancel(TransferControl):
    step: Literal["cancel"] = "cancel"


class TransferComplete(TransferControl):
    step: Literal["complete"] = "complete"
    completed_on: IsoDate
    # When the offender notified the new address to the receiving police, if yet.
    address_notified_on: IsoDate | None = None
    # The receiving area's agencies active on the case from now (its case team, named by
    # its co-ordinator): they decide who beyond the RA gets the handover and what follows.
    case_team: tuple[AgencyId, ...] = Field(default=(), max_length=128)


TransferMessage = Annotated[
    TransferRequest | TransferAccept | TransferRefuse | TransferCancel | TransferComplete,
    Field(discriminator="step"),
]
TRANSFER_MESSAGE: TypeAdapter[TransferMessage] = TypeAdapter(TransferMessage)


class TransferRecord(Frozen):
    """One transfer as an agency's case registry holds it (also the status report row)."""

    transfer_id: Uuid
    subject_ref: SubjectRef
    from_area: AreaCode
    to_area: AreaCode
    state: TransferState
    lead_agency: AgencyId
    registered_sex_offender: bool
    # None where the registry learnt of the transfer only from its completion notice.
    requested_on: IsoDate | None
    move_date: IsoDate
    reason: LongText
    open_actions: tuple[ShortText, ...] = ()
    requested_by: AgencyId
    updated_at: ShortText
    completed_on: IsoDate | None = None
    address_notified_on: IsoDate | None = None
    case_team: tuple[AgencyId, ...] = ()
    last_step_by: AgencyId
    last_reason: LongText | None = None
