"""Signatures over documents (directory, agreements, audit events, receipts).

The signed bytes are ``PAE(payload_type, jcs(document))``; the payload type names
the kind of document, so a signature can never be moved from one kind to another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.crypto.encoding import b64decode, b64encode, jcs, pae
from broker.crypto.keys import PrivateKey, PublicKey, verify_signature
from schemas.envelope import MAX_SIGNATURE_BYTES

DIRECTORY_PAYLOAD = "application/vnd.mappa.directory+json; version=1"
AGREEMENT_PAYLOAD = "application/vnd.mappa.isa+json; version=1"
AUDIT_EVENT_PAYLOAD = "application/vnd.mappa.audit-event+json; version=1"
DELIVERY_RECEIPT_PAYLOAD = "application/vnd.mappa.delivery-receipt+json; version=1"
LEDGER_RECEIPT_PAYLOAD = "application/vnd.mappa.ledger-receipt+json; version=1"


def sign_document(payload_type: str, document: Mapping[str, Any], key: PrivateKey) -> str:
    """Base64 signature by ``key`` over the canonical document."""
    return b64encode(key.sign(pae(payload_type, jcs(dict(document)))))


def verify_document(
    payload_type: str, document: Mapping[str, Any], signature: str, key: PublicKey
) -> None:
    """Raise ``VerificationError`` unless ``signature`` covers ``document``."""
    verify_signature(
        key,
        b64decode(signature, max_len=MAX_SIGNATURE_BYTES),
        pae(payload_type, jcs(dict(document))),
    )
