"""Audit events: who did what with whose data, when, why and under which agreement.

No message content ever enters an event; subjects appear only as keyed hashes.
"""

from __future__ import annotations

import enum
from typing import Literal

from schemas.common import (
    AgencyId,
    AreaCode,
    Frozen,
    KeyId,
    LongText,
    ShortText,
    SubjectRef,
    Timestamp,
    Uuid,
    ViewKind,
)
from schemas.envelope import B64Signature, MessageType


class AuditAct(enum.StrEnum):
    """The DPA 2018 s62 acts, plus refusal (an act the product declined to perform)."""

    COLLECTION = "collection"
    ALTERATION = "alteration"
    CONSULTATION = "consultation"
    DISCLOSURE = "disclosure"
    COMBINATION = "combination"
    ERASURE = "erasure"
    REFUSAL = "refusal"


class Operation(enum.StrEnum):
    """What the product was doing when the act happened."""

    PUBLISH = "publish"
    DELIVER = "deliver"
    CONSULT = "consult"
    REFUSE = "refuse"
    CORRECT = "correct"
    RESHARE = "reshare"
    ERASE = "erase"
    # A recipient's receipt for a disclosure: it confirms (or refuses) what was sent.
    RECEIPT = "receipt"
    # A refused record processed again once its cause was fixed (`mappa deadletter retry`).
    RETRY = "retry"


class Outcome(enum.StrEnum):
    OK = "ok"
    REFUSED = "refused"
    # Sent again and again without a receipt, then given up: see docs/delivery.md.
    UNDELIVERABLE = "undeliverable"


class AuditEvent(Frozen):
    kind: Literal["mappa.audit-event"] = "mappa.audit-event"
    event_id: Uuid
    time: Timestamp
    act: AuditAct
    operation: Operation
    agency: AgencyId
    user: ShortText | None = None
    area: AreaCode | None = None
    subject_ref: SubjectRef | None = None
    message_id: Uuid | None = None
    message_type: MessageType | None = None
    isa_id: ShortText | None = None
    isa_version: int | None = None
    purpose: ShortText | None = None
    lawful_basis: ShortText | None = None
    recipient: AgencyId | None = None
    view: ViewKind | None = None
    justification: LongText | None = None
    outcome: Outcome
    reason_code: ShortText | None = None
    reason: LongText | None = None


class SignedAuditEvent(Frozen):
    event: AuditEvent
    key_id: KeyId
    signature: B64Signature
