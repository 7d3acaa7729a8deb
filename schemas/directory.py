"""The trust directory: every agency, its role, areas and public keys.

One document, signed by the governance key. Versions only go forward; key
rotation and revocation are new versions of this document. Each version is trusted until
its ``valid_until`` only, so a receiver cut off from new versions stops trusting keys that
may have been revoked since; and each agency names the suites it may send in.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.common import AgencyId, AreaCode, Frozen, KeyId, Role, ShortText, Timestamp
from schemas.envelope import B64Signature, at_most_bytes, b64_field

# The largest public key we carry: ML-DSA-65 (1952 bytes).
MAX_PUBLIC_KEY_BYTES = 1952
B64PublicKey = Annotated[str, b64_field(MAX_PUBLIC_KEY_BYTES), at_most_bytes(MAX_PUBLIC_KEY_BYTES)]
KafkaPrincipal = Annotated[str, StringConstraints(pattern=r"^User:[A-Za-z0-9._-]{1,64}$")]


class KeyUse(enum.StrEnum):
    SIGN = "sign"
    ENCRYPT = "encrypt"


class KeyAlg(enum.StrEnum):
    ED25519 = "ed25519"
    ML_DSA_65 = "ml-dsa-65"
    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"

    @property
    def use(self) -> KeyUse:
        if self in (KeyAlg.ED25519, KeyAlg.ML_DSA_65):
            return KeyUse.SIGN
        return KeyUse.ENCRYPT


class PublicKeyEntry(Frozen):
    key_id: KeyId
    alg: KeyAlg
    public_key: B64PublicKey
    not_before: Timestamp
    not_after: Timestamp
    # Anything this key signed after this moment is refused. Both present in every entry,
    # null until a revocation: the signature covers the document as written (JCS), and a
    # default would let one entry be written two ways (docs/envelope.md §5).
    revoked_at: Timestamp | None
    revocation_reason: ShortText | None

    @model_validator(mode="after")
    def _ordered(self) -> PublicKeyEntry:
        if self.not_after <= self.not_before:
            raise ValueError(f"key {self.key_id}: not_after must be later than not_before")
        return self


class AgencyStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


SuiteName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]


class AgencyEntry(Frozen):
    agency_id: AgencyId
    name: ShortText
    role: Role
    areas: tuple[AreaCode, ...] = Field(min_length=1, max_length=50)
    kafka_principal: KafkaPrincipal
    status: AgencyStatus
    # The cipher suites its envelopes may name. Bound here, under the governance
    # signature, because the suites share the Ed25519 key: without it, breaking Ed25519
    # alone would forge a classic envelope for an agency that sends pq-hybrid.
    suites: tuple[SuiteName, ...] = Field(min_length=1, max_length=8)
    keys: tuple[PublicKeyEntry, ...] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _distinct_suites(self) -> AgencyEntry:
        if len(set(self.suites)) != len(self.suites):
            raise ValueError(f"agency {self.agency_id}: a suite is named twice")
        return self


class DirectoryDocument(Frozen):
    kind: Literal["mappa.directory"]
    version: int = Field(ge=1)
    issued_at: Timestamp
    # Past this moment nobody trusts this version: a new one (``mappa directory
    # refresh``, or any key change) must have reached them.
    valid_until: Timestamp
    agencies: tuple[AgencyEntry, ...] = Field(max_length=5000)

    @model_validator(mode="after")
    def _unique(self) -> DirectoryDocument:
        if self.valid_until <= self.issued_at:
            raise ValueError("valid_until must be later than issued_at")
        ids = [a.agency_id for a in self.agencies]
        if len(ids) != len(set(ids)):
            raise ValueError("agency ids must be unique")
        key_ids = [k.key_id for a in self.agencies for k in a.keys]
        if len(key_ids) != len(set(key_ids)):
            raise ValueError("key ids must be unique across the directory")
        return self


class DocumentSignature(Frozen):
    alg: Literal["ed25519"]
    key_id: KeyId
    signature: B64Signature


class SignedDirectory(Frozen):
    document: DirectoryDocument
    signature: DocumentSignature
