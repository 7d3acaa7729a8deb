"""Signed agreements: sign, verify, and keep on disk with versions only going forward.

An agreement is signed by the governance key (the trust anchor that also signs the
directory) over ``PAE(AGREEMENT_PAYLOAD, jcs(document))``: RFC 8785 canonical JSON of
the document, under a payload type that no other kind of document uses, so a
directory signature can never pass as an agreement signature or the reverse.

On disk (``DataPaths.agreements``): ``<id>.json`` is the signed agreement in force;
``accepted.json`` maps each id to the highest version ever accepted. A lower version
is refused (rollback would bring back rules that were withdrawn); the same version
with other content is refused as a conflict.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.signing import AGREEMENT_PAYLOAD, sign_document, verify_document
from broker.errors import ConfigurationError, VerificationError, invalid
from broker.files.strict import read_json
from broker.trust.provision import DataPaths
from schemas.directory import DocumentSignature, KeyAlg
from schemas.isa import Agreement, SignedAgreement

ACCEPTED_FILE = "accepted.json"


def sign_agreement(agreement: Agreement, governance_key: PrivateKey) -> SignedAgreement:
    if governance_key.alg is not KeyAlg.ED25519:
        raise TypeError("the governance key is an Ed25519 private key")
    signature = sign_document(AGREEMENT_PAYLOAD, agreement.model_dump(mode="json"), governance_key)
    return SignedAgreement(
        document=agreement,
        signature=DocumentSignature(
            alg="ed25519", key_id=governance_key.key_id, signature=signature
        ),
    )


def parse_signed(data: bytes) -> SignedAgreement:
    try:
        return SignedAgreement.model_validate_json(data)
    except ValidationError as exc:
        raise invalid(exc, "signed agreement", code="isa.malformed") from None


def verify_agreement(
    signed: SignedAgreement | bytes, *, governance_key: PublicKey, min_version: int = 1
) -> Agreement:
    """The agreement, once its signature and version check out; raise otherwise."""
    if isinstance(signed, bytes):
        signed = parse_signed(signed)
    if signed.signature.key_id != governance_key.key_id:
        raise VerificationError(
            "agreement is not signed by the governance key", code="isa.wrong-signer"
        )
    verify_document(
        AGREEMENT_PAYLOAD,
        signed.document.model_dump(mode="json"),
        signed.signature.signature,
        governance_key,
    )
    if signed.document.version < min_version:
        raise VerificationError(
            f"agreement {signed.document.id} version {signed.document.version} is older "
            f"than version {min_version} already accepted",
            code="isa.rollback",
        )
    return signed.document


def _accepted_path(paths: DataPaths) -> Path:
    return paths.agreements / ACCEPTED_FILE


def accepted_versions(paths: DataPaths) -> dict[str, int]:
    path = _accepted_path(paths)
    if not path.exists():
        return {}
    data = json.loads(read_json(path))
    versions = {str(k): v for k, v in data.items() if type(v) is int}
    if len(versions) != len(data):
        raise ConfigurationError(f"{path} is not a mapping of agreement id to version")
    return versions


def agreement_path(paths: DataPaths, agreement_id: str) -> Path:
    return paths.agreements / f"{agreement_id}.json"


def save_agreement(paths: DataPaths, signed: SignedAgreement, governance_key: PublicKey) -> None:
    """Put a signed agreement in force: only a newer version of an id replaces the old."""
    doc = verify_agreement(signed, governance_key=governance_key)
    accepted = accepted_versions(paths)
    current = accepted.get(doc.id, 0)
    target = agreement_path(paths, doc.id)
    if doc.version < current:
        raise VerificationError(
            f"agreement {doc.id} version {doc.version} is older than version {current} "
            "in force: versions only go forward",
            code="isa.rollback",
        )
    if doc.version == current and target.exists():
        in_force = parse_signed(target.read_bytes()).document
        if in_force != doc:
            raise VerificationError(
                f"a different agreement {doc.id} already holds version {current}: "
                "give the change a new version",
                code="isa.version-conflict",
            )
    paths.agreements.mkdir(parents=True, exist_ok=True)
    target.write_text(signed.model_dump_json(indent=1))
    accepted[doc.id] = doc.version
    _accepted_path(paths).write_text(json.dumps(accepted, indent=1, sort_keys=True))


def load_agreement(paths: DataPaths, agreement_id: str, governance_key: PublicKey) -> Agreement:
    """The agreement in force for ``agreement_id``, verified and not rolled back."""
    target = agreement_path(paths, agreement_id)
    if not target.exists():
        raise ConfigurationError(
            f"no agreement {agreement_id} in {paths.agreements}: sign one with `mappa isa sign`"
        )
    return verify_agreement(
        target.read_bytes(),
        governance_key=governance_key,
        min_version=accepted_versions(paths).get(agreement_id, 1),
    )
