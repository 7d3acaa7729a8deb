"""Receipts: a recipient's signed word that it took (or refused) an envelope, and the
ledger's signed word that it holds an agency's audit events.

A sender keeps each envelope until every entitled recipient has receipted it, and each
audit event until the ledger has; a missing receipt makes it send again. The wire format
is specified byte for byte in docs/receipts.md.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.common import AgencyId, Frozen, KeyId, Timestamp, Uuid, VersionOne
from schemas.envelope import B64Signature, TopicName

# A ledger receipt names at most this many events (held, and as many refused): one
# fetched batch of the audit topic (500 records) fits, and so does the receipt in
# MAX_RECEIPT_BYTES (broker/gateway/receipts.py).
MAX_RECEIPTED_EVENTS = 1000
# SHA-256, lower-case hex: the envelope's digest (docs/envelope.md, "digest").
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A refusal code such as "envelope.clock-skew": ASCII and short, so that a receipt of
# MAX_RECEIPTED_EVENTS refusals has a size known in advance (docs/receipts.md).
ReasonCode = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*$", max_length=64)
]
# The largest integer RFC 8785 (JCS) writes exactly: it formats numbers as IEEE doubles,
# so a larger one has no canonical form to sign.
MAX_SAFE_INTEGER = 2**53 - 1


class ReceiptOutcome(enum.StrEnum):
    DELIVERED = "delivered"
    REFUSED = "refused"


class DeliveryReceipt(Frozen):
    """What a recipient made of one envelope, for its sender."""

    kind: Literal["mappa.delivery-receipt"] = "mappa.delivery-receipt"
    receipt_version: VersionOne = 1
    message_id: Uuid
    # SHA-256 of the envelope's signed bytes: ties the receipt to this exact envelope.
    envelope_digest: Sha256Hex
    sender: AgencyId
    recipient: AgencyId
    topic: TopicName
    outcome: ReceiptOutcome
    # The refusal code when refused (the reason stays with the recipient: it may name
    # what the recipient holds); null when delivered.
    reason_code: ReasonCode | None = None
    time: Timestamp

    @model_validator(mode="after")
    def _code_if_refused(self) -> DeliveryReceipt:
        if (self.outcome is ReceiptOutcome.REFUSED) != (self.reason_code is not None):
            raise ValueError("a refused receipt has a reason_code, a delivered one null")
        return self


class RefusedEvent(Frozen):
    event_id: Uuid
    reason_code: ReasonCode


class LedgerReceipt(Frozen):
    """The audit events of one agency that the ledger holds (appended now or before),
    and those it refused, after one batch."""

    kind: Literal["mappa.ledger-receipt"] = "mappa.ledger-receipt"
    receipt_version: VersionOne = 1
    agency: AgencyId
    held: tuple[Uuid, ...] = Field(default=(), max_length=MAX_RECEIPTED_EVENTS)
    refused: tuple[RefusedEvent, ...] = Field(default=(), max_length=MAX_RECEIPTED_EVENTS)
    tree_size: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    time: Timestamp


class SignedDeliveryReceipt(Frozen):
    """Signed by the recipient's current Ed25519 key."""

    receipt: DeliveryReceipt
    key_id: KeyId
    signature: B64Signature


class SignedLedgerReceipt(Frozen):
    """Signed by the ledger's checkpoint key (the ``ledger.pub`` every agency holds)."""

    receipt: LedgerReceipt
    key_id: KeyId
    signature: B64Signature
