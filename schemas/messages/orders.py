"""Civil orders (police) and licence conditions (probation, prison)."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import Frozen, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import Address, Change, ClockTime


class CivilOrderKind(enum.StrEnum):
    SEXUAL_HARM_PREVENTION_ORDER = "shpo"
    SEXUAL_OFFENCES_PREVENTION_ORDER = "sopo"
    SEXUAL_RISK_ORDER = "sro"
    NOTIFICATION_ORDER = "notification-order"
    FOREIGN_TRAVEL_ORDER = "foreign-travel-order"


class CivilOrderMade(MessageBody):
    message_type: Literal["civil-order-made"] = "civil-order-made"
    schema_version: VersionOne = 1
    order: Annotated[CivilOrderKind, InSummary()]
    change: Annotated[Change, InSummary()]
    court: ShortText
    made_on: Annotated[RecordDate, InSummary()]
    # None: until further order (an SHPO may be indefinite).
    expires_on: Annotated[RecordDate | None, InSummary()] = None
    prohibitions: tuple[ShortText, ...] = Field(min_length=1, max_length=50)
    # Persons the order protects by name ("not to contact X").
    protected_persons: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )

    @model_validator(mode="after")
    def _coherent(self) -> CivilOrderMade:
        if self.expires_on is not None and self.expires_on <= self.made_on:
            raise ValueError("expires_on must be after made_on")
        return self


class ConditionKind(enum.StrEnum):
    STANDARD = "standard"
    ADDITIONAL = "additional"


class LicenceCondition(Frozen):
    kind: ConditionKind
    text: ShortText


class ExclusionZone(Frozen):
    name: ShortText
    description: ShortText


class Curfew(Frozen):
    start: ClockTime
    end: ClockTime
    address: Address


class LicenceConditionsSet(MessageBody):
    message_type: Literal["licence-conditions-set"] = "licence-conditions-set"
    schema_version: VersionOne = 1
    change: Annotated[Change, InSummary()]
    licence_start: Annotated[RecordDate, InSummary()]
    licence_end: Annotated[RecordDate, InSummary()]
    conditions: tuple[LicenceCondition, ...] = Field(min_length=1, max_length=60)
    exclusion_zones: tuple[ExclusionZone, ...] = Field(default=(), max_length=20)
    curfew: Curfew | None = None
    electronic_monitoring: Annotated[bool, InSummary()] = False
    approved_premises: Annotated[bool, InSummary()] = False
    # "No contact with <name>" and the zones drawn around a victim's home name them.
    victim_conditions: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )
    treatment_conditions: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.HEALTH)] = Field(
        default=(), max_length=20
    )

    @model_validator(mode="after")
    def _coherent(self) -> LicenceConditionsSet:
        if self.licence_end <= self.licence_start:
            raise ValueError("licence_end must be after licence_start")
        return self
