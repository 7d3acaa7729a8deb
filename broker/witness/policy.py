"""The governance-signed witness policy: which witnesses vouch for the ledger, and how
many must.

A ``mappa.witness-policy`` document names the log (its origin and the ledger's verifier
key), its witnesses (name, cosigner key, and the agency that runs each, or
``independent``) and a threshold; the governance key signs it as it signs the trust
directory (Ed25519 over DSSE's PAE of ``WITNESS_POLICY_PAYLOAD`` and the document's
canonical JSON). It lives in ``witness-policy.json`` in the data directory.

A checkpoint is *witnessed* when the ledger signed it and at least ``threshold`` distinct
witnesses of the policy cosigned it (``verify_witnessed``). The standalone verifier
checks the same with ``verify_proofs.verify_policy_signature`` and
``verify_proofs.verify_witnessed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationError

from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.signing import sign_document, verify_document
from broker.errors import ConfigurationError, VerificationError, invalid
from broker.files.strict import read_json
from broker.ledger.verify_proofs import (
    MAX_WITNESSES,
    WITNESS_POLICY_PAYLOAD,
    Checkpoint,
    ProofError,
    WitnessPolicy,
    parse_cosigner_key,
    verify_checkpoint,
    verify_cosignature,
    verify_witnessed,
    witness_policy,
)
from schemas.common import AGENCY_ID_PATTERN, Frozen
from schemas.directory import DocumentSignature, KeyAlg

POLICY_FILE = "witness-policy.json"
INDEPENDENT = "independent"
# A policy is a few hundred bytes a witness: a file far larger is not one.
MAX_POLICY_BYTES = 64 * 1024
# Names and keys are signed-note names: printable, no spaces or plus signs, bounded.
NoteName = Annotated[str, StringConstraints(pattern=r"^[!-*,-~]{1,200}$")]
NoteKey = Annotated[str, StringConstraints(min_length=1, max_length=400)]
Runner = Annotated[str, StringConstraints(pattern=f"({AGENCY_ID_PATTERN})|^{INDEPENDENT}$")]


class WitnessEntry(Frozen):
    """One witness: its name (the cosignature lines' key name), its cosigner key, and
    the agency that runs it, or ``independent`` for a party the governance officer
    named who is not an agency."""

    name: NoteName
    verifier_key: NoteKey
    agency: Runner


class WitnessPolicyDocument(Frozen):
    kind: Literal["mappa.witness-policy"]
    version: Annotated[int, Field(ge=1)]
    origin: NoteName
    log_verifier_key: NoteKey
    witnesses: tuple[WitnessEntry, ...]
    threshold: Annotated[int, Field(ge=1, le=MAX_WITNESSES)]


class SignedWitnessPolicy(Frozen):
    document: WitnessPolicyDocument
    signature: DocumentSignature


def policy_path(data_dir: Path) -> Path:
    """Where a deployment keeps its signed witness policy."""
    return data_dir / POLICY_FILE


def sign_policy(document: WitnessPolicyDocument, governance_key: PrivateKey) -> SignedWitnessPolicy:
    """The document signed by the governance key. Raises ``VerificationError``
    (``witness.policy-invalid``) for a document ``Policy`` would refuse, and
    ``ConfigurationError`` unless the key is Ed25519."""
    if governance_key.alg is not KeyAlg.ED25519:
        raise ConfigurationError("the governance key is an Ed25519 private key")
    Policy(document)  # refuse to sign what nobody could load
    signature = sign_document(
        WITNESS_POLICY_PAYLOAD, document.model_dump(mode="json"), governance_key
    )
    return SignedWitnessPolicy(
        document=document,
        signature=DocumentSignature(
            alg="ed25519", key_id=governance_key.key_id, signature=signature
        ),
    )


@dataclass(frozen=True)
class Witnessed:
    """A checkpoint verified against the policy: its body and who cosigned it."""

    checkpoint: Checkpoint
    witnesses: tuple[str, ...]


class Policy:
    """A witness policy whose signature checked out (``Policy.verify``; the constructor
    trusts its argument but still checks its shape). Raises ``VerificationError``
    (``witness.policy-invalid``) if a key is malformed, a witness is named twice, there
    are more than ``MAX_WITNESSES``, or the threshold is out of range."""

    def __init__(self, document: WitnessPolicyDocument) -> None:
        try:
            self.rules: WitnessPolicy = witness_policy(
                document.origin,
                document.log_verifier_key,
                [w.verifier_key for w in document.witnesses],
                document.threshold,
            )
            names = [parse_cosigner_key(w.verifier_key)[0] for w in document.witnesses]
        except ProofError as exc:
            raise VerificationError(str(exc), code="witness.policy-invalid") from None
        if names != [w.name for w in document.witnesses]:
            raise VerificationError(
                "a witness's name differs from its key's name", code="witness.policy-invalid"
            )
        self.document = document

    @classmethod
    def verify(cls, signed: SignedWitnessPolicy | bytes, *, governance_key: PublicKey) -> Policy:
        """Check ``signed`` against the governance key. Raises ``SchemaError``
        (``witness.policy-malformed``) for a file that is not a signed policy, and
        ``VerificationError`` (``witness.policy-wrong-signer``, or ``verification.*``
        from the signature check, or ``witness.policy-invalid``)."""
        if isinstance(signed, bytes):
            try:
                signed = SignedWitnessPolicy.model_validate_json(signed)
            except ValidationError as exc:
                raise invalid(exc, "witness policy", code="witness.policy-malformed") from None
        if signed.signature.key_id != governance_key.key_id:
            raise VerificationError(
                "the witness policy is not signed by the governance key",
                code="witness.policy-wrong-signer",
            )
        verify_document(
            WITNESS_POLICY_PAYLOAD,
            signed.document.model_dump(mode="json"),
            signed.signature.signature,
            governance_key,
        )
        return cls(signed.document)

    @property
    def witnesses(self) -> tuple[WitnessEntry, ...]:
        return self.document.witnesses

    @property
    def threshold(self) -> int:
        return self.document.threshold

    def entry(self, name: str) -> WitnessEntry:
        """The witness called ``name``. Raises ``VerificationError``
        (``witness.unknown``) if the policy names none."""
        for w in self.document.witnesses:
            if w.name == name:
                return w
        raise VerificationError(
            f"the witness policy names no witness {name}", code="witness.unknown"
        )

    def cosigners(self, note: str) -> tuple[str, ...]:
        """The witnesses of the policy whose cosignature on ``note`` verifies, in the
        policy's order (none if the ledger's own signature does not). Raises nothing."""
        try:
            verify_checkpoint(note, self.rules.log_key, origin=self.rules.origin)
        except ProofError:
            return ()
        names = []
        for w in self.document.witnesses:
            try:
                verify_cosignature(note, w.verifier_key)
            except ProofError:
                continue
            names.append(w.name)
        return tuple(names)

    def verify_witnessed(self, note: str) -> Witnessed:
        """Check ``note`` (a checkpoint with cosignature lines) against the policy:
        signed by the ledger for the policy's origin, cosigned by at least ``threshold``
        distinct witnesses of the policy. Raises ``VerificationError``
        (``witness.below-threshold``) if not."""
        try:
            checkpoint, names = verify_witnessed(note, self.rules)
        except ProofError as exc:
            raise VerificationError(str(exc), code="witness.below-threshold") from None
        return Witnessed(checkpoint, names)


def load_policy(data_dir: Path, governance_key: PublicKey) -> Policy | None:
    """The deployment's witness policy, verified; None if it has none. Raises as
    ``Policy.verify`` does, and ``FileRefused`` for a file the strict reader refuses."""
    path = policy_path(data_dir)
    if not path.exists():
        return None
    return Policy.verify(read_json(path, max_bytes=MAX_POLICY_BYTES), governance_key=governance_key)


def write_policy(data_dir: Path, signed: SignedWitnessPolicy) -> None:
    """Write the signed policy where ``load_policy`` finds it."""
    policy_path(data_dir).write_text(signed.model_dump_json(indent=1))


__all__ = ["MAX_WITNESSES", "Policy", "SignedWitnessPolicy", "WitnessEntry", "Witnessed"]
