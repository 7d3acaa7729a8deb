"""Receipts on ``<ns>.receipts``: made, signed, read and verified.

A recipient that took or refused an envelope (its sender verified) queues a signed
``DeliveryReceipt`` in the same transaction as the delivery or the refusal; the ledger
publishes a ``LedgerReceipt`` per agency after each batch, naming the events it holds.
Every gateway reads the receipts topic and applies, to its own sending state
(``broker.gateway.tracking``), the receipts meant for it; a receipt for another agency
is passed over unread. The byte layout is specified in docs/receipts.md.

Checks on a receipt meant for us, in order (the first failure decides):

1. size and shape                         receipt.too-large / receipt.malformed
2. the signer's key (the recipient's
   Ed25519 key in the directory; for the
   ledger, ``ledger.pub``)                 receipt.wrong-signer / directory.*
3. the signature                          verification.signature-invalid
4. a message we sent to that recipient,
   with that envelope digest              receipt.unknown-message / receipt.digest-mismatch

A receipt that fails is refused: dead-lettered and audited like any refused record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.signing import (
    DELIVERY_RECEIPT_PAYLOAD,
    LEDGER_RECEIPT_PAYLOAD,
    sign_document,
    verify_document,
)
from broker.errors import MappaError, SchemaError, VerificationError, invalid
from broker.gateway.agency import AgencyContext
from broker.gateway.handled import Handled, Handling
from broker.gateway.tracking import DELIVERED, LEDGER, REFUSED, SETTLED
from broker.kafka.transport import Record
from broker.trust.directory import Directory, public_key_of
from schemas.audit import AuditAct, Operation, Outcome
from schemas.directory import KeyAlg
from schemas.receipt import (
    DeliveryReceipt,
    LedgerReceipt,
    ReceiptOutcome,
    SignedDeliveryReceipt,
    SignedLedgerReceipt,
)

log = logging.getLogger(__name__)
Refuse = Callable[[Record, None, MappaError, datetime], Handled]

# A ledger receipt names up to 1,000 events (about 40 kB); nothing larger is a receipt.
MAX_RECEIPT_BYTES = 64 * 1024
DELIVERY_KIND = "mappa.delivery-receipt"
Signed = TypeVar("Signed", SignedDeliveryReceipt, SignedLedgerReceipt)
LEDGER_KIND = "mappa.ledger-receipt"


def delivery_receipt_record(receipt: DeliveryReceipt, key: PrivateKey) -> bytes:
    """The record value of ``receipt`` signed by the recipient's Ed25519 ``key``."""
    signed = SignedDeliveryReceipt(
        receipt=receipt,
        key_id=key.key_id,
        signature=sign_document(DELIVERY_RECEIPT_PAYLOAD, receipt.model_dump(mode="json"), key),
    )
    return signed.model_dump_json().encode()


def ledger_receipt_record(receipt: LedgerReceipt, key: PrivateKey) -> bytes:
    """The record value of ``receipt`` signed by the ledger's checkpoint ``key``."""
    signed = SignedLedgerReceipt(
        receipt=receipt,
        key_id=key.key_id,
        signature=sign_document(LEDGER_RECEIPT_PAYLOAD, receipt.model_dump(mode="json"), key),
    )
    return signed.model_dump_json().encode()


def addressee(raw: bytes) -> tuple[str, str] | None:
    """Routing only, before any check: the kind of receipt and the agency it claims to be
    for (a delivery receipt's sender, a ledger receipt's agency); None if it does not
    even look like a receipt. Nothing read here is trusted: a receipt that claims to be
    for us is then parsed strictly and verified."""
    if len(raw) > MAX_RECEIPT_BYTES:
        return None
    try:
        doc: Any = json.loads(raw)
        receipt = doc["receipt"]
        kind = receipt["kind"]
        who = receipt["sender" if kind == DELIVERY_KIND else "agency"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if kind not in (DELIVERY_KIND, LEDGER_KIND) or not isinstance(who, str):
        return None
    return kind, who


def verify_delivery_receipt(raw: bytes, directory: Directory) -> DeliveryReceipt:
    """Checks 1-3 of a delivery receipt; returns it verified. Raises ``SchemaError``
    (``receipt.too-large``, ``receipt.malformed``) or ``VerificationError``
    (``receipt.wrong-signer``, ``directory.*``, ``verification.signature-invalid``)."""
    signed = _parse(raw, SignedDeliveryReceipt)
    agency = directory.agency(signed.receipt.recipient)
    entry = next((k for k in agency.keys if k.key_id == signed.key_id), None)
    if entry is None or entry.alg is not KeyAlg.ED25519:
        raise VerificationError(
            f"receipt signed with key {signed.key_id}, not an Ed25519 key of "
            f"{signed.receipt.recipient}",
            code="receipt.wrong-signer",
        )
    verify_document(
        DELIVERY_RECEIPT_PAYLOAD,
        signed.receipt.model_dump(mode="json"),
        signed.signature,
        public_key_of(entry),
    )
    return signed.receipt


def verify_ledger_receipt(raw: bytes, ledger_key: PublicKey) -> LedgerReceipt:
    """Checks 1-3 of a ledger receipt, against the ledger's public key. Raises as
    ``verify_delivery_receipt``."""
    signed = _parse(raw, SignedLedgerReceipt)
    if signed.key_id != ledger_key.key_id:
        raise VerificationError(
            f"ledger receipt signed with key {signed.key_id}, not the ledger's",
            code="receipt.wrong-signer",
        )
    verify_document(
        LEDGER_RECEIPT_PAYLOAD, signed.receipt.model_dump(mode="json"), signed.signature, ledger_key
    )
    return signed.receipt


def _parse(raw: bytes, model: type[Signed]) -> Signed:
    if len(raw) > MAX_RECEIPT_BYTES:
        raise SchemaError(
            f"a receipt of {len(raw)} bytes; at most {MAX_RECEIPT_BYTES}", code="receipt.too-large"
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc, "receipt", code="receipt.malformed") from None


class ReceiptReader:
    """Applies to this agency's sending state the receipts on ``<ns>.receipts`` that are
    meant for it; passes over the rest. ``refuse`` is the receiving path's refusal
    (dead letter, audited refusal, offset moved on), for a receipt that fails a check."""

    def __init__(self, ctx: AgencyContext, refuse: Refuse) -> None:
        self._ctx = ctx
        self._refuse = refuse

    def handle(self, record: Record, now: datetime) -> Handled:
        """Checks 1-4 (module docstring) on a receipt for us, then settle what it answers
        and move past it, in one transaction. Returns what became of it."""
        ctx = self._ctx
        routed = addressee(record.value)
        if routed is None or routed[1] != ctx.agency_id:
            with ctx.store.transaction():
                ctx.store.advance(record.topic, record.partition, record.offset)
            return Handled(Handling.NOT_ADDRESSED, record.topic)
        try:
            with ctx.store.transaction():
                if routed[0] == DELIVERY_KIND:
                    handled = self._delivery(record, now)
                else:
                    handled = self._ledger(record, now)
                ctx.store.advance(record.topic, record.partition, record.offset)
        except MappaError as exc:
            return self._refuse(record, None, exc, now)
        return handled

    def _delivery(self, record: Record, now: datetime) -> Handled:
        ctx = self._ctx
        receipt = verify_delivery_receipt(record.value, ctx.directory)
        if receipt.sender != ctx.agency_id:
            return Handled(Handling.NOT_ADDRESSED, record.topic)
        row = ctx.store.tracking.get(receipt.message_id, receipt.recipient)
        if row is None:
            # Someone sent a message in this agency's name: worth a refusal on record.
            raise VerificationError(
                f"a receipt from {receipt.recipient} for message {receipt.message_id}, which "
                f"{ctx.agency_id} never sent to it",
                code="receipt.unknown-message",
            )
        if row.digest != receipt.envelope_digest:
            raise VerificationError(
                f"{receipt.recipient}'s receipt for message {receipt.message_id} names another "
                "envelope than the one sent",
                code="receipt.digest-mismatch",
            )
        handled = Handled(
            Handling.RECEIPT,
            record.topic,
            receipt.message_id,
            receipt.recipient,
            row.message_type,
            reason_code=receipt.reason_code,
        )
        if row.state in SETTLED:
            return handled  # the answer to a copy sent again: settled already
        refused = receipt.outcome is ReceiptOutcome.REFUSED
        ctx.store.tracking.receipted(
            receipt.message_id,
            receipt.recipient,
            digest=receipt.envelope_digest,
            state=REFUSED if refused else DELIVERED,
            now=now,
            reason_code=receipt.reason_code,
        )
        ctx.audit.emit(
            AuditAct.DISCLOSURE,
            Operation.RECEIPT,
            Outcome.REFUSED if refused else Outcome.OK,
            **row.audit_fields(),
            message_id=receipt.message_id,
            recipient=receipt.recipient,
            reason_code=receipt.reason_code,
            reason=f"{receipt.recipient} receipted it as {receipt.outcome.value} at {receipt.time}",
        )
        return handled

    def _ledger(self, record: Record, now: datetime) -> Handled:
        ctx = self._ctx
        if ctx.ledger_key is None:
            raise VerificationError(
                "a ledger receipt, but this deployment holds no ledger key to verify it",
                code="receipt.wrong-signer",
            )
        receipt = verify_ledger_receipt(record.value, ctx.ledger_key)
        if receipt.agency != ctx.agency_id:
            return Handled(Handling.NOT_ADDRESSED, record.topic)
        for event_id in receipt.held:
            ctx.store.tracking.receipted(event_id, LEDGER, digest=None, state=DELIVERED, now=now)
        for refused in receipt.refused:
            # Our own signed event refused by the ledger: a fault to look into at once.
            log.error(
                "the ledger refused audit event %s of %s: %s",
                refused.event_id,
                ctx.agency_id,
                refused.reason_code,
            )
            ctx.store.tracking.receipted(
                refused.event_id,
                LEDGER,
                digest=None,
                state=REFUSED,
                now=now,
                reason_code=refused.reason_code,
            )
        return Handled(Handling.RECEIPT, record.topic, message_type=LEDGER_KIND)
