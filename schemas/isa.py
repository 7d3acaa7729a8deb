"""Information-sharing agreements: who may publish, and who may see which view.

An agreement names its parties, purpose, lawful basis per party, validity,
retention and onward-sharing rule, and a table of rules: for each message type
and recipient role, the access (full / redacted / summary / none) and whether the
recipient must hold an active role on the offender's case.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.common import AgencyId, AreaCode, Frozen, IsoDate, LongText, Role, ShortText, ViewKind
from schemas.envelope import MessageType

IsaId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{2,80}$")]


class LawfulBasis(enum.StrEnum):
    DPA_2018_PART_3 = "DPA 2018 Part 3"
    UK_GDPR = "UK GDPR"


class Access(enum.StrEnum):
    FULL = "full"
    REDACTED = "redacted"
    SUMMARY = "summary"
    NONE = "none"

    @property
    def view(self) -> ViewKind | None:
        return None if self is Access.NONE else ViewKind(self.value)


class Party(Frozen):
    agency_id: AgencyId
    lawful_basis: LawfulBasis
    basis_detail: ShortText


class PublishRule(Frozen):
    message_type: MessageType
    roles: tuple[Role, ...] = Field(min_length=1)


class ShareRule(Frozen):
    message_type: MessageType
    role: Role
    access: Access
    active_role_required: bool = False


class Retention(Frozen):
    years: int = Field(ge=1, le=100)
    basis: ShortText


class Agreement(Frozen):
    kind: Literal["mappa.isa"]
    id: IsaId
    version: int = Field(ge=1)
    title: ShortText
    areas: tuple[AreaCode, ...] = Field(min_length=1)
    parties: tuple[Party, ...] = Field(min_length=2)
    purpose: LongText
    valid_from: IsoDate
    valid_until: IsoDate
    review_date: IsoDate
    retention: Retention
    onward_sharing: Literal["prohibited", "with-supplier-consent", "as-required-by-law"]
    publishers: tuple[PublishRule, ...] = Field(min_length=1)
    rules: tuple[ShareRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> Agreement:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be later than valid_from")
        party_ids = [p.agency_id for p in self.parties]
        if len(party_ids) != len(set(party_ids)):
            raise ValueError("each agency may be a party once")
        seen: set[tuple[str, Role]] = set()
        for rule in self.rules:
            key = (rule.message_type, rule.role)
            if key in seen:
                raise ValueError(f"two rules for {rule.message_type} to {rule.role.value}")
            seen.add(key)
        return self
