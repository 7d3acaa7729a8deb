"""Disclosure decision (police, meeting chair): a recorded decision, never a side effect."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import model_validator

from schemas.common import LongText, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity


class DisclosureScheme(enum.StrEnum):
    MAPPA_DISCLOSURE = "mappa-disclosure"
    CHILD_SEX_OFFENDER_DISCLOSURE = "child-sex-offender-disclosure-scheme"
    RIGHT_TO_KNOW = "right-to-know"


class DisclosureRecipient(enum.StrEnum):
    PARENT_OR_CARER = "parent-or-carer"
    PARTNER = "partner"
    EMPLOYER = "employer"
    EDUCATION_PROVIDER = "education-provider"
    VOLUNTARY_ORGANISATION = "voluntary-organisation"
    LANDLORD = "landlord"
    OTHER = "other"


class DisclosureDecision(MessageBody):
    message_type: Literal["disclosure-decision"] = "disclosure-decision"
    schema_version: VersionOne = 1
    scheme: Annotated[DisclosureScheme, InSummary()]
    decision: Annotated[Literal["disclose", "do-not-disclose"], InSummary()]
    decided_on: Annotated[RecordDate, InSummary()]
    decided_by: ShortText
    recipient_type: Annotated[DisclosureRecipient, InSummary()]
    rationale: LongText
    what_disclosed: LongText | None = None
    disclosed_on: RecordDate | None = None
    # The person told is often the one at risk: a partner, a parent.
    recipient_identity: Annotated[ShortText | None, Sensitive(Sensitivity.VICTIM)] = None

    @model_validator(mode="after")
    def _coherent(self) -> DisclosureDecision:
        if self.decision == "disclose" and not self.what_disclosed:
            raise ValueError("a decision to disclose says what is disclosed")
        if self.decision == "do-not-disclose" and (self.what_disclosed or self.disclosed_on):
            raise ValueError("nothing is disclosed under a decision not to disclose")
        return self
