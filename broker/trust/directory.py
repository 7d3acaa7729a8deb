"""The verified trust directory: who each agency is and which keys it may use when.

A ``Directory`` exists only after its governance signature checked out and its
version was not older than the last one accepted. Every adapter of a process holds the
same instance, and ``update`` replaces its document in place by a strictly newer signed
version, so a rotation or revocation takes effect for the next message everywhere; an
older version is refused, since rollback would resurrect revoked keys, and so is another
document claiming the version in force. A version is trusted until its ``valid_until``
(``check_current``): past it, the holder may have missed a revocation. Lookups raise
``VerificationError`` with a reason code a dead-letter reader can act on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import ValidationError

from broker.crypto.encoding import b64decode, jcs
from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.signing import DIRECTORY_PAYLOAD, sign_document, verify_document
from broker.crypto.suites import Suite
from broker.errors import VerificationError, invalid
from schemas.common import Role, parse_timestamp
from schemas.directory import (
    AgencyEntry,
    AgencyStatus,
    DirectoryDocument,
    DocumentSignature,
    KeyAlg,
    PublicKeyEntry,
    SignedDirectory,
)


def sign_directory(document: DirectoryDocument, governance_key: PrivateKey) -> SignedDirectory:
    if governance_key.alg is not KeyAlg.ED25519:
        raise TypeError("the governance key is an Ed25519 private key")
    signature = sign_document(DIRECTORY_PAYLOAD, document.model_dump(mode="json"), governance_key)
    return SignedDirectory(
        document=document,
        signature=DocumentSignature(
            alg="ed25519", key_id=governance_key.key_id, signature=signature
        ),
    )


def public_key_of(entry: PublicKeyEntry) -> PublicKey:
    return PublicKey(entry.alg, b64decode(entry.public_key))


def document_digest(document: DirectoryDocument) -> str:
    """SHA-256 (hex) of the document's canonical JSON: the bytes its signature covers, so
    two documents with one digest are one document."""
    return hashlib.sha256(jcs(document.model_dump(mode="json"))).hexdigest()


class Directory:
    """A verified directory document and the questions the broker asks of it."""

    def __init__(
        self, document: DirectoryDocument, *, governance_key: PublicKey | None = None
    ) -> None:
        # Use ``Directory.verify``; this constructor trusts its argument.
        self._governance_key = governance_key
        self._install(document)

    def _install(self, document: DirectoryDocument) -> None:
        self.document = document
        self._by_id = {a.agency_id: a for a in document.agencies}
        self._key_owner = {k.key_id: (a, k) for a in document.agencies for k in a.keys}

    @classmethod
    def verify(
        cls,
        signed: SignedDirectory | bytes,
        *,
        governance_key: PublicKey,
        min_version: int = 1,
    ) -> Directory:
        if isinstance(signed, bytes):
            try:
                signed = SignedDirectory.model_validate_json(signed)
            except ValidationError as exc:
                raise invalid(exc, "signed directory", code="directory.malformed") from None
        if signed.signature.key_id != governance_key.key_id:
            raise VerificationError(
                "directory is not signed by the governance key", code="directory.wrong-signer"
            )
        verify_document(
            DIRECTORY_PAYLOAD,
            signed.document.model_dump(mode="json"),
            signed.signature.signature,
            governance_key,
        )
        if signed.document.version < min_version:
            raise VerificationError(
                f"directory version {signed.document.version} is older than the "
                f"version {min_version} already accepted",
                code="directory.rollback",
            )
        return cls(signed.document, governance_key=governance_key)

    def update(self, signed: SignedDirectory | bytes) -> None:
        """Put a strictly newer signed version in force; refuse anything else."""
        if self._governance_key is None:
            raise VerificationError(
                "this directory was not loaded from a signed document", code="directory.unsigned"
            )
        candidate = Directory.verify(
            signed, governance_key=self._governance_key, min_version=self.version
        )
        if candidate.version == self.version:
            if candidate.document == self.document:
                return
            raise VerificationError(
                f"a different directory claims version {candidate.version}, already in force",
                code="directory.version-conflict",
            )
        self._install(candidate.document)

    @property
    def version(self) -> int:
        return self.document.version

    @property
    def digest(self) -> str:
        """``document_digest`` of the version in force."""
        return document_digest(self.document)

    def expired(self, at: datetime) -> bool:
        """Whether the version in force is past its ``valid_until`` at ``at``."""
        return at >= parse_timestamp(self.document.valid_until)

    def check_current(self, at: datetime) -> None:
        """Raise ``VerificationError`` (``directory.expired``) if the version in force is
        past its ``valid_until`` at ``at``: whoever holds it may have missed a
        revocation, so nothing is judged by it until a newer version arrives."""
        if self.expired(at):
            raise VerificationError(
                f"trust directory version {self.version} expired at "
                f"{self.document.valid_until}: a newer signed version is needed "
                "(`mappa directory refresh` where the governance key is held)",
                code="directory.expired",
            )

    def agency(self, agency_id: str) -> AgencyEntry:
        entry = self._by_id.get(agency_id)
        if entry is None:
            raise VerificationError(
                f"agency {agency_id!r} is not in the trust directory (version {self.version})",
                code="directory.unknown-agency",
            )
        return entry

    def active_agency(self, agency_id: str) -> AgencyEntry:
        entry = self.agency(agency_id)
        if entry.status is not AgencyStatus.ACTIVE:
            raise VerificationError(
                f"agency {agency_id} is {entry.status.value}", code="directory.agency-inactive"
            )
        return entry

    def agencies(
        self, *, area: str | None = None, roles: Iterable[Role] | None = None
    ) -> list[AgencyEntry]:
        wanted = set(roles) if roles is not None else None
        return [
            a
            for a in self.document.agencies
            if a.status is AgencyStatus.ACTIVE
            and (area is None or area in a.areas)
            and (wanted is None or a.role in wanted)
        ]

    def signing_keys(
        self,
        sender: str,
        key_ids: Sequence[str],
        *,
        suite: Suite,
        signed_at: datetime,
        revocation_check_at: datetime | None = None,
    ) -> list[PublicKey]:
        """The sender's keys named in a header, each checked for owner, kind and time, after
        the suite is checked against the sender's (``directory.suite-not-allowed``).

        A key must have been valid at ``signed_at`` (so a rotated-out key still
        verifies what it signed while current) and not revoked by
        ``revocation_check_at`` (defaults to ``signed_at``)."""
        agency = self.active_agency(sender)
        check_suite(agency, suite)
        if len(key_ids) != len(suite.signature_keys):
            raise VerificationError(
                f"suite {suite.name} needs {len(suite.signature_keys)} signing keys",
                code="envelope.signature-missing",
            )
        keys = []
        for kid, alg in zip(key_ids, suite.signature_keys, strict=True):
            owner_and_key = self._key_owner.get(kid)
            if owner_and_key is None:
                raise VerificationError(
                    f"signing key {kid} is not in the trust directory", code="directory.unknown-key"
                )
            owner, entry = owner_and_key
            if owner.agency_id != agency.agency_id:
                raise VerificationError(
                    f"message claims sender {sender} but is signed with a key of {owner.agency_id}",
                    code="envelope.sender-key-mismatch",
                )
            if entry.alg is not alg:
                raise VerificationError(
                    f"key {kid} is {entry.alg.value}, suite needs {alg.value}",
                    code="envelope.signature-missing",
                )
            check_key_time(entry, signed_at, revocation_check_at or signed_at)
            keys.append(public_key_of(entry))
        return keys

    def encryption_key(self, agency_id: str, *, suite: Suite, at: datetime) -> PublicKey:
        """The newest valid, unrevoked encryption key of ``agency_id`` for ``suite``."""
        agency = self.active_agency(agency_id)
        usable = [
            k
            for k in agency.keys
            if k.alg is suite.kem_key
            and parse_timestamp(k.not_before) <= at < parse_timestamp(k.not_after)
            and (k.revoked_at is None or at < parse_timestamp(k.revoked_at))
        ]
        if not usable:
            raise VerificationError(
                f"{agency_id} has no valid {suite.kem_key.value} encryption key",
                code="directory.no-encryption-key",
            )
        return public_key_of(max(usable, key=lambda k: k.not_before))


def check_suite(agency: AgencyEntry, suite: Suite) -> None:
    """Raise ``VerificationError`` (``directory.suite-not-allowed``) unless the directory
    lets ``agency`` send in ``suite``."""
    if suite.name not in agency.suites:
        raise VerificationError(
            f"{agency.agency_id} may send in {', '.join(agency.suites)} only, not {suite.name}",
            code="directory.suite-not-allowed",
        )


def check_key_time(entry: PublicKeyEntry, signed_at: datetime, revocation_at: datetime) -> None:
    """Raise ``VerificationError`` unless ``entry`` was valid at ``signed_at``
    (``directory.key-expired``) and not revoked by ``revocation_at``
    (``directory.key-revoked``)."""
    if entry.revoked_at is not None and revocation_at >= parse_timestamp(entry.revoked_at):
        raise VerificationError(
            f"signing key {entry.key_id} was revoked at {entry.revoked_at}",
            code="directory.key-revoked",
        )
    if not parse_timestamp(entry.not_before) <= signed_at < parse_timestamp(entry.not_after):
        raise VerificationError(
            f"signing key {entry.key_id} was not valid at {signed_at.isoformat()}",
            code="directory.key-expired",
        )
