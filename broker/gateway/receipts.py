"""Receipts on ``<ns>.receipts``: made, signed, read and verified.

A recipient that took or refused an envelope (its sender verified) queues a signed
``DeliveryReceipt`` in the same transaction as the delivery or the refusal; the ledger
publishes a ``LedgerReceipt`` per agency after each batch, naming the events it holds.
Every gateway reads the receipts topic and applies, to its own sending state
(``broker.gateway.tracking``), the receipts meant for it; a receipt for another agency
is passed over unread. The byte layout is specified in docs/receipts.md.

First, routing (``addressee``), on unverified bytes: a record that is not JSON naming
a receipt kind and an agency (a delivery receipt's ``sender``, a ledger receipt's
``agency``), or names another agency, is passed over with nothing recorded. Then the
checks on a receipt meant for us, in order (the first failure decides):

1. size: at most ``MAX_RECEIPT_BYTES``     receipt.too-large
2. strict JSON (``strict_json``)           schema.encoding / not-json / not-object /
                                           duplicate-key / float / constant / too-deep;
   an integer beyond +-(2^53-1), refused
   as the parser meets it, has check 3's
   code (no receipt field holds one)       receipt.malformed
3. shape: the model, every field present
   as its canonical form writes it, a
   real time                               receipt.malformed
4. the signer's key. Delivery: the
   recipient is in the directory, the key
   one of its Ed25519 keys, valid at the
   receipt's time, not revoked by the
   later of that and the record's time.    directory.unknown-agency / receipt.wrong-signer /
   Ledger: ``ledger.pub``'s key.           directory.key-revoked / directory.key-expired
5. the signature                           verification.signature-invalid
6. delivery: a message we sent to that
   recipient, with that envelope digest    receipt.unknown-message / receipt.digest-mismatch

A receipt that fails is refused: dead-lettered and audited like any refused record. A
record's Kafka timestamp that is no time at all is refused first
(``record.timestamp-invalid``). What a receipt wrote before a check failed is undone
(a savepoint); an exception that is not ours goes on to the receiving path's one
boundary (``Receiver.handle``), which refuses the record as ``record.unprocessable``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from broker.crypto.encoding import jcs, strict_json
from broker.crypto.json_scan import deeper_than
from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.signing import (
    DELIVERY_RECEIPT_PAYLOAD,
    LEDGER_RECEIPT_PAYLOAD,
    sign_document,
    verify_document,
)
from broker.errors import (
    INFRASTRUCTURE_FAILURES,
    MappaError,
    SchemaError,
    VerificationError,
    invalid,
)
from broker.gateway.agency import AgencyContext
from broker.gateway.handled import Handled, Handling
from broker.gateway.tracking import DELIVERED, LEDGER, REFUSED, Tracked, Tracking
from broker.kafka.topics import RECORD_LIMIT_BYTES
from broker.kafka.transport import Record
from broker.observe.logs import fields
from broker.trust.directory import Directory, check_key_time, public_key_of
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import parse_timestamp
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

# The largest receipt written compactly is a ledger receipt of MAX_RECEIPTED_EVENTS held
# ids (1,000 x 39 bytes) and as many refused events (1,000 x 133: id and a 64-character
# code), about 172 kB with its framing; nothing larger is a receipt.
MAX_RECEIPT_BYTES = 256 * 1024
# A record is parsed to find whom it claims to be for up to the size the topic takes;
# a larger one (a broker that does not enforce the topic's limit) is passed over unread.
MAX_ROUTED_BYTES = RECORD_LIMIT_BYTES
# Routing passes over arrays and objects nested deeper than this (docs/receipts.md §5): a
# receipt is 3 deep, and check 2 refuses beyond 12.
MAX_ROUTED_NESTING = 512
UTF8_BOM = b"\xef\xbb\xbf"
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
    for us is then checked, its size first (an oversize one is refused, not passed
    over)."""
    if len(raw) > MAX_ROUTED_BYTES:
        return None
    try:
        # UTF-8 only (json.loads would also guess UTF-16 and UTF-32), one byte-order mark
        # skipped, and a bound on nesting that is the spec's, not this stack's.
        text = raw.removeprefix(UTF8_BOM).decode("utf-8")
        if deeper_than(text, MAX_ROUTED_NESTING):
            return None
        doc: Any = json.loads(text, parse_int=_unread_integer)
        receipt = doc["receipt"]
        kind = receipt["kind"]
        who = receipt["sender" if kind == DELIVERY_KIND else "agency"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if kind not in (DELIVERY_KIND, LEDGER_KIND) or not isinstance(who, str):
        return None
    return kind, who


def _unread_integer(text: str) -> None:
    """Routing reads no number. Left to Python, an integer of more than 4,300 digits
    (which is JSON all the same) would fail the parse, and the record would be passed
    over, unrefused, instead of refused at check 2."""
    return None


def verify_delivery_receipt(
    raw: bytes, directory: Directory, *, record_time: datetime
) -> DeliveryReceipt:
    """Checks 1-5 of a delivery receipt (module docstring), ``record_time`` being when
    the broker took the record; returns it verified. Raises ``SchemaError``
    (``receipt.too-large``, ``schema.*``, ``receipt.malformed``) or ``VerificationError``
    (``directory.unknown-agency``, ``receipt.wrong-signer``, ``directory.key-revoked``,
    ``directory.key-expired``, ``verification.signature-invalid``)."""
    signed = _parse(raw, SignedDeliveryReceipt)
    agency = directory.agency(signed.receipt.recipient)
    entry = next((k for k in agency.keys if k.key_id == signed.key_id), None)
    if entry is None or entry.alg is not KeyAlg.ED25519:
        raise VerificationError(
            f"receipt signed with key {signed.key_id}, not an Ed25519 key of "
            f"{signed.receipt.recipient}",
            code="receipt.wrong-signer",
        )
    # Valid when it says it signed, and not revoked by then or by when the broker took
    # the record: a thief of a revoked key can backdate ``time``, not the broker's clock
    # (as an envelope's signing keys, docs/envelope.md step 3).
    signed_at = parse_timestamp(signed.receipt.time)
    check_key_time(entry, signed_at, max(signed_at, record_time))
    verify_document(
        DELIVERY_RECEIPT_PAYLOAD,
        signed.receipt.model_dump(mode="json"),
        signed.signature,
        public_key_of(entry),
    )
    return signed.receipt


def verify_ledger_receipt(raw: bytes, ledger_key: PublicKey | None) -> LedgerReceipt:
    """Checks 1-5 of a ledger receipt, against the ledger's public key (None where this
    deployment holds none: refused). Raises ``SchemaError`` (``receipt.too-large``,
    ``schema.*``, ``receipt.malformed``) or ``VerificationError``
    (``receipt.wrong-signer``, ``verification.signature-invalid``)."""
    signed = _parse(raw, SignedLedgerReceipt)
    if ledger_key is None:
        raise VerificationError(
            "a ledger receipt, but this deployment holds no ledger key to verify it",
            code="receipt.wrong-signer",
        )
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
    """Checks 1-3. The signature is checked over the canonical form of what this returns,
    so the document must be exactly that: no field left to a default, no value the
    model would take in another spelling (``true`` for ``1``)."""
    if len(raw) > MAX_RECEIPT_BYTES:
        raise SchemaError(
            f"a receipt of {len(raw)} bytes; at most {MAX_RECEIPT_BYTES}", code="receipt.too-large"
        )
    try:
        document = strict_json(raw)
    except SchemaError as exc:
        # No receipt field holds an integer beyond +-(2^53-1): refused as the parser
        # meets it, however many digits it has, with the code of a shape fault
        # (docs/receipts.md section 1, and its vectors).
        if exc.code != "schema.integer-range":
            raise
        raise SchemaError(
            "receipt holds an integer out of range", code="receipt.malformed"
        ) from None
    try:
        signed = model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc, "receipt", code="receipt.malformed") from None
    if jcs(document) != jcs(signed.model_dump(mode="json")):
        raise SchemaError(
            "receipt has a field missing, or a value spelt otherwise than its model writes it",
            code="receipt.malformed",
        )
    return signed


def sent_row(receipt: DeliveryReceipt, tracking: Tracking) -> Tracked:
    """Check 6 of a verified delivery receipt: the sender's tracked row of that message
    and recipient, whose envelope has the digest the receipt names; returns the row.
    Raises ``VerificationError`` (``receipt.unknown-message``: never sent to that
    recipient; ``receipt.digest-mismatch``: another envelope under that id)."""
    row = tracking.get(receipt.message_id, receipt.recipient)
    if row is None:
        # Someone sent a message in this agency's name: worth a refusal on record.
        raise VerificationError(
            f"a receipt from {receipt.recipient} for message {receipt.message_id}, which "
            f"{receipt.sender} never sent to it",
            code="receipt.unknown-message",
        )
    if row.digest != receipt.envelope_digest:
        raise VerificationError(
            f"{receipt.recipient}'s receipt for message {receipt.message_id} names another "
            "envelope than the one sent",
            code="receipt.digest-mismatch",
        )
    return row


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
            with ctx.store.transaction(), ctx.store.savepoint():
                if routed[0] == DELIVERY_KIND:
                    handled = self._delivery(record, now)
                else:
                    handled = self._ledger(record, now)
                ctx.store.advance(record.topic, record.partition, record.offset)
        except INFRASTRUCTURE_FAILURES:
            raise
        except MappaError as exc:
            return self._refuse(record, None, exc, now)
        return handled

    def _delivery(self, record: Record, now: datetime) -> Handled:
        ctx = self._ctx
        receipt = verify_delivery_receipt(
            record.value, ctx.directory, record_time=record.appended_at()
        )
        if receipt.sender != ctx.agency_id:
            return Handled(Handling.NOT_ADDRESSED, record.topic)
        row = sent_row(receipt, ctx.store.tracking)
        handled = Handled(
            Handling.RECEIPT,
            record.topic,
            receipt.message_id,
            receipt.recipient,
            row.message_type,
            reason_code=receipt.reason_code,
        )
        refused = receipt.outcome is ReceiptOutcome.REFUSED
        changed = ctx.store.tracking.receipted(
            receipt.message_id,
            receipt.recipient,
            digest=receipt.envelope_digest,
            state=REFUSED if refused else DELIVERED,
            now=now,
            reason_code=receipt.reason_code,
        )
        if changed is None:
            return handled  # the answer to a copy sent again: settled already
        known = ctx.correlation.of_message(receipt.message_id)
        log.info(
            "receipt.received",
            extra=fields(
                agency=ctx.agency_id,
                message_id=receipt.message_id,
                request_id=known.request_id if known else None,
            )
            | {"recipient": receipt.recipient, "outcome": receipt.outcome.value},
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
