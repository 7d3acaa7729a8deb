"""Pseudonymous subject references: a keyed hash of the offender's PNC id.

Every adapter and the audit ledger hold the deployment's subject key, so one
offender has one reference across agencies (partition key, case team, audit
searches) while the plain identifier never leaves an encrypted view.
"""

from __future__ import annotations

from typing import NoReturn

from cryptography.hazmat.primitives import hashes, hmac

from broker.errors import KeyUnavailable

SUBJECT_KEY_BYTES = 32
_DOMAIN = b"mappa-subject-v1\x00"


class SubjectKey:
    """The deployment's pseudonymisation key. Not printable, not picklable."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != SUBJECT_KEY_BYTES:
            raise KeyUnavailable(f"subject key must be {SUBJECT_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "<SubjectKey>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("the subject key cannot be pickled")

    def reference(self, pnc_id: str) -> str:
        """Hex HMAC-SHA-256 under this key of ``"mappa-subject-v1" || 0x00 || id``, the id
        trimmed and upper-cased (a body's PNC id is already), as ASCII: docs/envelope.md
        §2.1 states it and the vectors publish one (``subject_ref``)."""
        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(_DOMAIN + pnc_id.strip().upper().encode("ascii"))
        return mac.finalize().hex()

    def export(self) -> bytes:
        """Raw bytes for sealed storage only (see ``broker.trust.keystore``)."""
        return self._key
