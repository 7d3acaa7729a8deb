"""Information-sharing agreements: who may publish, and who may see which view.

An agreement names its parties, purpose, lawful basis per party, validity,
retention and onward-sharing rule, and a table of rules: for each message type
and recipient role, the access (full / redacted / summary / none) and whether the
recipient must hold an active role on the offender's case.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from schemas.common import AgencyId, AreaCode, Frozen, IsoDate, LongText, Role, ShortText, ViewKind
from schemas.directory import DocumentSignature
from schemas.envelope import MessageType
from schemas.messages.base import REDACTION_SETS, STANDARD_REDACTION

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
    # The party's MAPPA role, as the trust directory lists it: rules are per role.
    role: Role
    lawful_basis: LawfulBasis
    basis_detail: ShortText
    # Whether the party's API service accounts may act for its named users (the audit
    # then names both). Off unless the agreement says so.
    service_accounts_act_for_users: bool = False

    @model_serializer(mode="wrap")
    def _omit_default_permission(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Left out while off, so that an agreement signed before the field existed is
        # still the document its signature covers.
        data = handler(self)
        if isinstance(data, dict) and not self.service_accounts_act_for_users:
            data.pop("service_accounts_act_for_users", None)
        return data


class PublishRule(Frozen):
    message_type: MessageType
    roles: tuple[Role, ...] = Field(min_length=1)
    # Most messages are about a case the sender works on; those that bring a case to
    # MAPPA (eligibility, referral) or set up its team come before any case team exists.
    case_load_required: bool = True


class ShareRule(Frozen):
    message_type: MessageType
    role: Role
    access: Access
    # Which named field set a redacted view removes (schemas.messages.base.REDACTION_SETS);
    # only for access "redacted", where it defaults to "standard".
    redaction: str | None = None
    active_role_required: bool = False

    @model_validator(mode="after")
    def _redaction_only_when_redacted(self) -> ShareRule:
        if self.redaction is not None:
            if self.access is not Access.REDACTED:
                raise ValueError(
                    f"a redaction set applies only to access 'redacted', not {self.access.value!r}"
                )
            if self.redaction not in REDACTION_SETS:
                known = ", ".join(sorted(REDACTION_SETS))
                raise ValueError(f"unknown redaction set {self.redaction!r}; known: {known}")
        return self

    @property
    def redaction_set(self) -> str:
        """The named field set a redacted view under this rule removes."""
        return self.redaction or STANDARD_REDACTION


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
    def _coherent(self, info: ValidationInfo) -> Agreement:
        # ``isa check`` defers these so it can report every one with its location.
        if isinstance(info.context, dict) and info.context.get(DEFER_COHERENCE):
            return self
        problems = coherence_problems(self)
        if problems:
            raise ValueError(problems[0][1])
        return self


# Validation context key: build the document even if it is incoherent (for reporting).
DEFER_COHERENCE = "defer_coherence"
Location = tuple[str | int, ...]


def coherence_problems(agreement: Agreement) -> list[tuple[Location, str]]:
    """What makes a well-typed agreement self-contradictory, each with where it is."""
    a = agreement
    out: list[tuple[Location, str]] = []
    if a.valid_until <= a.valid_from:
        out.append((("valid_until",), "valid_until must be later than valid_from"))
    seen_parties: set[str] = set()
    for i, p in enumerate(a.parties):
        if p.agency_id in seen_parties:
            out.append((("parties", i, "agency_id"), f"{p.agency_id} is a party twice"))
        seen_parties.add(p.agency_id)
    seen_rules: dict[tuple[str, Role], int] = {}
    for i, rule in enumerate(a.rules):
        key = (rule.message_type, rule.role)
        if key in seen_rules:
            out.append(
                (
                    ("rules", i),
                    f"two rules for {rule.message_type} to {rule.role.value} "
                    f"(rules[{seen_rules[key]}] and rules[{i}])",
                )
            )
        else:
            seen_rules[key] = i
    seen_types: dict[str, int] = {}
    for i, pub in enumerate(a.publishers):
        if pub.message_type in seen_types:
            out.append(
                (
                    ("publishers", i, "message_type"),
                    f"{pub.message_type} has two publishers entries "
                    f"(publishers[{seen_types[pub.message_type]}] and publishers[{i}])",
                )
            )
        else:
            seen_types[pub.message_type] = i
    return out


class SignedAgreement(Frozen):
    """An agreement and the governance signature over its RFC 8785 canonical JSON."""

    document: Agreement
    signature: DocumentSignature
