"""Audit events: built and signed by the adapter that acted, sent through its outbox.

The event goes into the same store transaction as the act it records, so the act
and its audit record stand or fall together; the relay then publishes it to
``mappa.audit`` for the ledger.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from broker.crypto.keys import PrivateKey
from broker.crypto.signing import AUDIT_EVENT_PAYLOAD, sign_document, verify_document
from broker.errors import MappaError, VerificationError, invalid
from broker.gateway.store import AgencyStore
from broker.gateway.tracking import LEDGER
from broker.trust.directory import Directory, check_key_time, public_key_of
from schemas.audit import AuditAct, AuditEvent, Operation, Outcome, SignedAuditEvent
from schemas.common import format_timestamp, parse_timestamp
from schemas.directory import KeyAlg
from schemas.envelope import EnvelopeHeader

# An audit event's reason is LongText: a longer one is cut, never refused.
MAX_REASON_CHARS = 4000


def header_fields(header: EnvelopeHeader) -> dict[str, Any]:
    """What an audit event records of a verified envelope header: area, subject, message
    id and type, agreement and purpose (never anything an unverified header claims)."""
    return {
        "area": header.area,
        "subject_ref": header.subject_ref,
        "message_id": header.message_id,
        "message_type": header.message_type,
        "isa_id": header.isa_id,
        "isa_version": header.isa_version,
        "purpose": header.purpose,
    }


def time_ordered_id() -> str:
    """A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.
    Audit event ids from every adapter then arrive roughly in order, so the ledger's
    index of them grows at one end instead of being written all over."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def sign_event(event: AuditEvent, key: PrivateKey) -> SignedAuditEvent:
    """Sign ``event`` with ``key`` over its canonical JSON (``AUDIT_EVENT_PAYLOAD``); returns
    the signed event. Raises ``TypeError`` if ``key`` cannot sign (an encryption key)."""
    return SignedAuditEvent(
        event=event,
        key_id=key.key_id,
        signature=sign_document(AUDIT_EVENT_PAYLOAD, event.model_dump(mode="json"), key),
    )


def signed_event_value(event: AuditEvent, key: PrivateKey) -> bytes:
    """``event`` signed with ``key``, as the record value the audit topic carries."""
    return sign_event(event, key).model_dump_json().encode()


def append_time(timestamp_ms: int | None) -> datetime | None:
    """A broker record's timestamp as a time; None when there is none or it is no real
    time (a producer sets it, so it may be anything)."""
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def verify_event(
    raw: bytes, directory: Directory, *, received_ms: int | None = None
) -> SignedAuditEvent:
    """Parse and verify a signed audit event against the emitting agency's keys; returns
    it. The key must have been valid at the event's time and not revoked by the later of
    that time and the broker's append time ``received_ms`` (milliseconds since the
    epoch), so a stolen key cannot sign events "in the past". Raises ``SchemaError``
    (``audit.malformed``) or ``VerificationError`` (``directory.unknown-agency``;
    ``audit.wrong-signer``: the key named is not an Ed25519 key of that agency;
    ``directory.key-revoked``, ``directory.key-expired``;
    ``verification.signature-invalid``)."""
    try:
        signed = SignedAuditEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc, "signed audit event", code="audit.malformed") from None
    agency = directory.agency(signed.event.agency)
    entry = next((k for k in agency.keys if k.key_id == signed.key_id), None)
    if entry is None or entry.alg is not KeyAlg.ED25519:
        raise VerificationError(
            f"audit event signed with key {signed.key_id}, not an Ed25519 key of "
            f"{signed.event.agency}",
            code="audit.wrong-signer",
        )
    signed_at = parse_timestamp(signed.event.time)  # a real time: its type says so
    appended = append_time(received_ms)
    check_key_time(entry, signed_at, max(signed_at, appended) if appended else signed_at)
    verify_document(
        AUDIT_EVENT_PAYLOAD,
        signed.event.model_dump(mode="json"),
        signed.signature,
        public_key_of(entry),
    )
    return signed


class AuditEmitter:
    """Writes signed events into an agency store's outbox, inside the caller's transaction."""

    def __init__(
        self,
        *,
        agency_id: str,
        signing_key: PrivateKey,
        store: AgencyStore,
        clock: Callable[[], datetime],
        topic: str,
    ) -> None:
        if signing_key.alg is not KeyAlg.ED25519:
            raise TypeError("audit events are signed with the agency's Ed25519 key")
        self._agency_id = agency_id
        self._key = signing_key
        self._store = store
        self._clock = clock
        self._topic = topic

    @property
    def emitted(self) -> int:
        """Audit events this agency's outbox holds: one emitted in a unit of work that
        rolled back is not counted (it was never kept, so no ledger will hold it)."""
        return self._store.outbox_counts().get(self._topic, 0)

    def rekey(self, signing_key: PrivateKey) -> None:
        """Sign from now on with a rotated key."""
        if signing_key.alg is not KeyAlg.ED25519:
            raise TypeError("audit events are signed with the agency's Ed25519 key")
        self._key = signing_key

    def emit(
        self, act: AuditAct, operation: Operation, outcome: Outcome = Outcome.OK, **fields: Any
    ) -> AuditEvent:
        """Build an event of this agency (``event``), sign it and put it in the outbox
        (``queue_signed``); returns the event. Call inside the store's transaction:
        raises ``RuntimeError`` outside one, and pydantic's ``ValidationError`` for a
        field the event's model refuses (callers cut long text to fit)."""
        event = self.event(act, operation, outcome, **fields)
        self.queue_signed(event, signed_event_value(event, self._key))
        return event

    def event(
        self, act: AuditAct, operation: Operation, outcome: Outcome = Outcome.OK, **fields: Any
    ) -> AuditEvent:
        """A new event of this agency, not yet signed: a new time-ordered id, the clock's
        time. Raises pydantic's ``ValidationError`` for a field the model refuses."""
        return AuditEvent(
            event_id=time_ordered_id(),
            time=format_timestamp(self._clock()),
            act=act,
            operation=operation,
            agency=self._agency_id,
            outcome=outcome,
            **fields,
        )

    def queue_signed(self, event: AuditEvent, value: bytes) -> None:
        """Put ``event``, signed (``value``: ``signed_event_value`` with this agency's
        key, here or in a sealing worker), in the outbox, keyed by its subject (else the
        agency) so a subject's events keep their order. Call inside the store's
        transaction: raises ``RuntimeError`` outside one."""
        seq = self._store.enqueue(
            self._topic, value, key=(event.subject_ref or event.agency).encode()
        )
        # Kept, and sent again, until the ledger says it holds it.
        self._store.tracking.track(
            seq,
            event.event_id,
            [(LEDGER, None)],
            digest=hashlib.sha256(value).hexdigest(),
            now=self._clock(),
            about={"subject_ref": event.subject_ref} if event.subject_ref else None,
        )

    @property
    def signing_key(self) -> PrivateKey:
        """The Ed25519 key this agency signs with now (audit events and receipts)."""
        return self._key

    def refusal(
        self, operation: Operation, error: MappaError, *, reason: str | None = None, **fields: Any
    ) -> AuditEvent:
        """Record that ``operation`` was refused for ``error``: its code, and its reason
        (or ``reason``, which says it in context), cut to the field's bound. In its own
        transaction, or the caller's if one is open."""
        with self._store.transaction():
            return self.emit(
                AuditAct.REFUSAL,
                operation,
                Outcome.REFUSED,
                reason_code=error.code,
                reason=(reason or error.reason)[:MAX_REASON_CHARS],
                **fields,
            )
