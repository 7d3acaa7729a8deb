"""Seal and open envelopes. The byte layout is specified in ``docs/envelope.md``.

In short, for an envelope with header H (canonical bytes ``jcs(H)``, digest
``h = SHA-256(jcs(H))``):

* each view i gets a fresh 32-byte data key K_i;
  ``enc_key = HKDF-SHA256(K_i, salt=h, info="mappa-envelope-v1 view-key")`` and
  ``commitment = HKDF-SHA256(K_i, salt=h, info="mappa-envelope-v1 key-commitment")``;
  the view is AES-256-GCM under ``enc_key`` with a random 12-byte nonce and
  associated data ``jcs({"context": "mappa-envelope-v1 view", "header_sha256": hex(h),
  "kind": kind, "view_id": i})``;
* K_i is wrapped for each recipient agency with HPKE base mode, ``info =
  jcs({"agency", "context": "mappa-envelope-v1 wrap", "header_sha256", "key_id", "view_id"})``;
* the sender signs ``PAE(PAYLOAD_TYPE, jcs({"header", "recipients", "views"}))``
  with each key the suite requires; or, for a publication of several envelopes
  (``seal_publication``), signs once the Merkle root of those bytes' leaves, and each
  envelope carries its inclusion path (``broker.crypto.publication``).

The commitment is inside the signed body, so a sender cannot wrap a different K
for different recipients of one view: only one key matches the commitment (AES-GCM
alone is not key-committing). The header digest salts every derivation, so
nothing can be moved to another message, sender, topic or recipient.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError

from broker.crypto.encoding import b64decode, b64encode, jcs, pae, strict_json
from broker.crypto.keys import PrivateKey, PublicKey, load_encryption_public, verify_signature
from broker.crypto.publication import (
    HASH_BYTES,
    ROOT_SIGNATURES,
    check_proof_shape,
    inclusion_path,
    leaf_hash,
    root_from_path,
    root_signed_bytes,
    tree_root,
    verification_digest,
)
from broker.crypto.suites import Suite
from broker.errors import DecryptionError, NotAddressed, SchemaError, VerificationError, invalid
from schemas.common import ViewKind
from schemas.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_PUBLICATION_ENVELOPES,
    MAX_SIGNATURE_BYTES,
    MAX_VIEW_PLAINTEXT_BYTES,
    MAX_WRAPPED_KEY_BYTES,
    Envelope,
    EnvelopeHeader,
    PublicationProof,
    SealedView,
    WrappedKey,
)

PAYLOAD_TYPE = "application/vnd.mappa.envelope+json; version=1"
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
COMMITMENT_BYTES = 32
VIEW_KEY_INFO = b"mappa-envelope-v1 view-key"
COMMITMENT_INFO = b"mappa-envelope-v1 key-commitment"
VIEW_CONTEXT = "mappa-envelope-v1 view"
WRAP_CONTEXT = "mappa-envelope-v1 wrap"
# The one message a failed decryption shows: which check failed is the attacker's oracle.
DECRYPTION_FAILED = "Decryption failed."


@dataclass(frozen=True)
class Recipient:
    agency: str
    key: PublicKey


@dataclass(frozen=True)
class ViewToSeal:
    kind: ViewKind
    plaintext: bytes
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True)
class UnverifiedEnvelope:
    """Parsed but not yet verified: read ``unverified_header`` only to find keys.
    ``signed`` is ``signed_bytes(document)``, what the signatures cover; ``digest`` and
    ``header_sha256`` are derived once, where it is parsed (in a worker, when one
    prepares it: ``broker.gateway.preparing``), for ``VerifiedEnvelope``."""

    document: dict[str, Any]
    envelope: Envelope
    signed: bytes
    digest: str
    header_sha256: bytes

    @property
    def unverified_header(self) -> EnvelopeHeader:
        return self.envelope.header


@dataclass(frozen=True)
class VerifiedEnvelope:
    header: EnvelopeHeader
    views: tuple[SealedView, ...]
    recipients: tuple[WrappedKey, ...]
    # SHA-256 of the signed bytes: the same message redelivered has the same digest.
    digest: str
    header_sha256: bytes

    def addressed_to(self, agency: str) -> bool:
        return any(r.agency == agency for r in self.recipients)


@dataclass(frozen=True)
class OpenedView:
    view_id: int
    kind: ViewKind
    plaintext: bytes


def envelope_digest(value: bytes) -> str:
    """The digest of a sealed envelope, as a receiver reports it in its receipt: SHA-256
    of the signed bytes, hex (``VerifiedEnvelope.digest``). For envelopes we sealed
    ourselves; raises ``SchemaError`` for bytes that are not an envelope document."""
    return hashlib.sha256(signed_bytes(strict_json(value))).hexdigest()


def header_digest(header: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(jcs(dict(header))).digest()


def derive_key(data_key: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 of a view's data key, salted with the header digest: the view key or
    the key commitment, by ``info`` (docs/envelope.md; the vectors show each value)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(data_key)


def view_aad(h: bytes, view_id: int, kind: ViewKind) -> bytes:
    """The associated data of a view's AES-GCM: binds it to its header, id and kind."""
    return jcs(
        {"context": VIEW_CONTEXT, "header_sha256": h.hex(), "kind": kind.value, "view_id": view_id}
    )


def wrap_info(h: bytes, agency: str, key_id: str, view_id: int) -> bytes:
    """The HPKE ``info`` of a wrapped data key: binds it to its header, recipient, key and
    view."""
    return jcs(
        {
            "agency": agency,
            "context": WRAP_CONTEXT,
            "header_sha256": h.hex(),
            "key_id": key_id,
            "view_id": view_id,
        }
    )


def signed_bytes(document: Mapping[str, Any]) -> bytes:
    body = {k: document[k] for k in ("header", "views", "recipients")}
    return pae(PAYLOAD_TYPE, jcs(body))


# -- sealing ---------------------------------------------------------------------------------


def seal(
    *,
    header: EnvelopeHeader,
    views: Sequence[ViewToSeal],
    signers: Sequence[PrivateKey],
    suite: Suite,
) -> bytes:
    """Encrypt, wrap and sign; return the record value. Refuses inconsistent input."""
    [(value, _)] = seal_publication_digested([(header, views)], signers=signers, suite=suite)
    return value


def seal_publication(
    items: Sequence[tuple[EnvelopeHeader, Sequence[ViewToSeal]]],
    *,
    signers: Sequence[PrivateKey],
    suite: Suite,
) -> list[bytes]:
    """Seal one publication: an envelope per ``(header, views)`` item, signed once by each
    of ``signers`` over the Merkle root of their leaves (docs/envelope.md §3.6); return the
    record values in order. One item gives exactly what ``seal`` gives (no tree). A pure
    function of its arguments (safe in a worker process). Refuses inconsistent input as
    ``seal`` does (``ValueError``; ``SchemaError`` ``envelope.too-large``), and more than
    ``MAX_PUBLICATION_ENVELOPES`` items."""
    return [value for value, _ in seal_publication_digested(items, signers=signers, suite=suite)]


def seal_publication_digested(
    items: Sequence[tuple[EnvelopeHeader, Sequence[ViewToSeal]]],
    *,
    signers: Sequence[PrivateKey],
    suite: Suite,
) -> list[tuple[bytes, str]]:
    """``seal_publication``, each record value with its ``envelope_digest`` (what its
    receipts name), taken from the bytes that were signed rather than by parsing the
    value again. Raises as ``seal_publication`` does."""
    if not items:
        raise ValueError("a publication holds at least one envelope")
    if len(items) > MAX_PUBLICATION_ENVELOPES:
        raise ValueError(f"a publication holds at most {MAX_PUBLICATION_ENVELOPES} envelopes")
    for header, views in items:
        _check_seal_input(header, views, signers, suite)
    documents = [_sealed_body(header, views, suite) for header, views in items]
    messages = [signed_bytes(d) for d in documents]
    digests = [hashlib.sha256(m).hexdigest() for m in messages]
    if len(documents) == 1:
        documents[0]["signatures"] = _signatures(signers, messages[0])
        return [(_record_value(documents[0]), digests[0])]
    leaves = [leaf_hash(m) for m in messages]
    size = len(leaves)
    signatures = _signatures(signers, root_signed_bytes(tree_root(leaves), size))
    values = []
    for index, (document, digest) in enumerate(zip(documents, digests, strict=True)):
        document["signatures"] = signatures
        document["publication"] = {
            "index": index,
            "size": size,
            "path": [b64encode(h) for h in inclusion_path(index, leaves)],
        }
        values.append((_record_value(document), digest))
    return values


def _sealed_body(
    header: EnvelopeHeader, views: Sequence[ViewToSeal], suite: Suite
) -> dict[str, Any]:
    """``{"header", "views", "recipients"}`` of one envelope: views encrypted, data keys
    wrapped; everything ``signed_bytes`` covers."""
    header_doc = header.model_dump(mode="json")
    h = header_digest(header_doc)
    hpke_suite = suite.hpke()
    sealed_views: list[dict[str, Any]] = []
    wrapped: list[dict[str, Any]] = []
    for view_id, view in enumerate(views):
        data_key = os.urandom(DATA_KEY_BYTES)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(derive_key(data_key, h, VIEW_KEY_INFO)).encrypt(
            nonce, view.plaintext, view_aad(h, view_id, view.kind)
        )
        sealed_views.append(
            {
                "view_id": view_id,
                "kind": view.kind.value,
                "nonce": b64encode(nonce),
                "key_commitment": b64encode(derive_key(data_key, h, COMMITMENT_INFO)),
                "ciphertext": b64encode(ciphertext),
            }
        )
        for recipient in view.recipients:
            info = wrap_info(h, recipient.agency, recipient.key.key_id, view_id)
            enc = hpke_suite.encrypt(data_key, load_encryption_public(recipient.key), info=info)
            wrapped.append(
                {
                    "agency": recipient.agency,
                    "key_id": recipient.key.key_id,
                    "view_id": view_id,
                    "wrapped_key": b64encode(enc),
                }
            )
    return {"header": header_doc, "views": sealed_views, "recipients": wrapped}


def _signatures(signers: Sequence[PrivateKey], message: bytes) -> list[dict[str, str]]:
    return [
        {"alg": k.alg.value, "key_id": k.key_id, "signature": b64encode(k.sign(message))}
        for k in signers
    ]


def _record_value(document: dict[str, Any]) -> bytes:
    value = jcs(document)
    if len(value) > MAX_ENVELOPE_BYTES:
        raise SchemaError(
            f"envelope of {len(value)} bytes exceeds the {MAX_ENVELOPE_BYTES}-byte limit",
            code="envelope.too-large",
        )
    return value


def _check_seal_input(
    header: EnvelopeHeader, views: Sequence[ViewToSeal], signers: Sequence[PrivateKey], suite: Suite
) -> None:
    if header.suite != suite.name:
        raise ValueError("header names another suite")
    if tuple(k.alg for k in signers) != suite.signature_keys:
        raise ValueError(f"suite {suite.name} signs with {suite.signature_keys}")
    if header.sender_keys != tuple(k.key_id for k in signers):
        raise ValueError("header.sender_keys must list the signing keys in order")
    if not views or len({v.kind for v in views}) != len(views):
        raise ValueError("one view per kind, at least one")
    agencies = [r.agency for v in views for r in v.recipients]
    if len(agencies) != len(set(agencies)):
        raise ValueError("an agency may receive only one view of a message")
    for view in views:
        if not view.recipients:
            raise ValueError("a view without recipients is never sent")
        if len(view.plaintext) > MAX_VIEW_PLAINTEXT_BYTES:
            raise SchemaError(
                f"view of {len(view.plaintext)} bytes exceeds {MAX_VIEW_PLAINTEXT_BYTES}",
                code="envelope.too-large",
            )
        for r in view.recipients:
            if r.key.alg is not suite.kem_key:
                raise ValueError(f"{r.agency}: suite {suite.name} wraps for {suite.kem_key} keys")


# -- opening ---------------------------------------------------------------------------------


def parse_envelope(value: bytes) -> UnverifiedEnvelope:
    """Bound, parse and shape-check a record value, a ``publication`` member included
    (bounds, ``index < size``, the path's exact length; docs/envelope.md §2.3). Nothing
    here is trusted yet. Raises ``SchemaError`` (``envelope.too-large``, ``schema.*``,
    ``envelope.malformed``)."""
    if len(value) > MAX_ENVELOPE_BYTES:
        raise SchemaError(
            f"record of {len(value)} bytes exceeds the {MAX_ENVELOPE_BYTES}-byte envelope limit",
            code="envelope.too-large",
        )
    document = strict_json(value)
    try:
        envelope = Envelope.model_validate_json(value)
    except ValidationError as exc:
        raise invalid(exc, "envelope", code="envelope.malformed") from None
    _check_structure(envelope)
    if "publication" in document and envelope.publication is None:
        raise SchemaError("publication is an object when present", code="envelope.malformed")
    if envelope.publication is not None:
        proof = envelope.publication
        try:
            check_proof_shape(proof.index, proof.size, _path_hashes(proof))
        except ValueError as exc:
            raise SchemaError(str(exc), code="envelope.malformed") from None
    signed = signed_bytes(document)
    return UnverifiedEnvelope(
        document=document,
        envelope=envelope,
        signed=signed,
        digest=hashlib.sha256(signed).hexdigest(),
        header_sha256=header_digest(document["header"]),
    )


def _path_hashes(proof: PublicationProof) -> list[bytes]:
    # The schema's pattern admits only canonical base64 of 32 bytes.
    return [b64decode(h, expected_len=HASH_BYTES) for h in proof.path]


def verify_envelope(
    unverified: UnverifiedEnvelope,
    *,
    suite: Suite,
    keys: Sequence[PublicKey],
    vouched: Collection[bytes] = (),
) -> VerifiedEnvelope:
    """Check every signature the suite requires with ``keys`` (resolved by the caller
    from the trust directory, in ``sender_keys`` order). Returns the verified parts.

    In order: the suite (``envelope.unknown-suite``); the signatures name the suite's
    algorithms and the header's keys (``envelope.signature-missing``); each verifies
    (``verification.signature-invalid``): over ``signed_bytes`` for a lone envelope, or,
    with ``publication``, over the root its inclusion path leads to (a root signature
    verified before is remembered: ``ROOT_SIGNATURES``). A verification whose
    ``verification_digest`` is in ``vouched`` was done already, by this code in a
    worker process of ours (``broker.gateway.preparing``), and is not done again: the
    digest covers the exact key, message and signature. ``digest`` is SHA-256 of
    ``signed_bytes`` in both forms."""
    env = unverified.envelope
    header = env.header
    if header.suite != suite.name:
        raise VerificationError("suite mismatch", code="envelope.unknown-suite")
    expected = [(k.alg.value, k.key_id) for k in keys]
    named = [(s.alg, s.key_id) for s in env.signatures]
    if (
        tuple(k.alg for k in keys) != suite.signature_keys
        or named != expected
        or list(header.sender_keys) != [k.key_id for k in keys]
    ):
        raise VerificationError(
            f"suite {suite.name} needs signatures by {[a.value for a in suite.signature_keys]} "
            "keys named in the header",
            code="envelope.signature-missing",
        )
    target = signature_target(unverified)
    for key, sig in zip(keys, env.signatures, strict=True):
        signature = b64decode(sig.signature, max_len=MAX_SIGNATURE_BYTES)
        if vouched and verification_digest(key, signature, target) in vouched:
            continue
        if env.publication is None:
            verify_signature(key, signature, target)
        else:
            ROOT_SIGNATURES.verify(key, signature, target)
    return verified_parts(unverified)


def signature_target(unverified: UnverifiedEnvelope) -> bytes:
    """What the envelope's signatures sign: its signed bytes, or, with ``publication``,
    the root its inclusion path leads to, as signed. A path that leads anywhere but the
    signed root makes another root, whose signature then fails
    (``verification.signature-invalid``)."""
    proof = unverified.envelope.publication
    if proof is None:
        return unverified.signed
    root = root_from_path(
        leaf_hash(unverified.signed), proof.index, proof.size, _path_hashes(proof)
    )
    return root_signed_bytes(root, proof.size)


def verified_parts(unverified: UnverifiedEnvelope) -> VerifiedEnvelope:
    """The parts of ``unverified`` a receiver reads, once its signatures are verified
    (``verify_envelope``; or, in a worker preparing a batch, only to decrypt)."""
    env = unverified.envelope
    return VerifiedEnvelope(
        header=env.header,
        views=env.views,
        recipients=env.recipients,
        digest=unverified.digest,
        header_sha256=unverified.header_sha256,
    )


def _check_structure(env: Envelope) -> None:
    """Step 1's bounds across fields: view ids and kinds unique, each agency addressed
    once, each wrapped key for a view the envelope has (``envelope.malformed``)."""
    view_ids = [v.view_id for v in env.views]
    if len(set(view_ids)) != len(view_ids) or len({v.kind for v in env.views}) != len(view_ids):
        raise SchemaError("duplicate view", code="envelope.malformed")
    agencies = [r.agency for r in env.recipients]
    if len(set(agencies)) != len(agencies):
        raise SchemaError("agency addressed twice", code="envelope.malformed")
    if any(r.view_id not in view_ids for r in env.recipients):
        raise SchemaError("wrapped key for a missing view", code="envelope.malformed")


def open_view(
    verified: VerifiedEnvelope,
    *,
    agency: str,
    keys: Mapping[str, PrivateKey],
    suite: Suite,
    opened: OpenedView | None = None,
) -> OpenedView:
    """Unwrap this agency's data key, check the commitment, decrypt its view. ``opened``
    is this view of this very envelope as a worker process of ours opened it, with the
    same key (``broker.gateway.preparing``): the checks on the recipient and its key run
    here all the same, the decryption is not done twice."""
    entry = next((r for r in verified.recipients if r.agency == agency), None)
    if entry is None:
        raise NotAddressed(f"message {verified.header.message_id} carries nothing for {agency}")
    private = keys.get(entry.key_id)
    if private is None or private.alg is not suite.kem_key:
        raise DecryptionError(
            f"wrapped for key {entry.key_id}, which {agency} does not hold",
            code="envelope.unknown-recipient-key",
        )
    view = next(v for v in verified.views if v.view_id == entry.view_id)
    if opened is not None and (opened.view_id, opened.kind) == (view.view_id, view.kind):
        return opened
    h = verified.header_sha256
    expected_len = suite.hpke_kem.enc_length() + DATA_KEY_BYTES + 16
    wrapped = b64decode(entry.wrapped_key, max_len=MAX_WRAPPED_KEY_BYTES)
    try:
        if len(wrapped) != expected_len:
            raise DecryptionError(DECRYPTION_FAILED)
        data_key = suite.hpke().decrypt(
            wrapped,
            private.hpke_private(),
            info=wrap_info(h, agency, entry.key_id, entry.view_id),
        )
        commitment = b64decode(view.key_commitment, expected_len=COMMITMENT_BYTES)
        if len(data_key) != DATA_KEY_BYTES or not hmac.compare_digest(
            derive_key(data_key, h, COMMITMENT_INFO), commitment
        ):
            raise DecryptionError(DECRYPTION_FAILED)
        plaintext = AESGCM(derive_key(data_key, h, VIEW_KEY_INFO)).decrypt(
            b64decode(view.nonce, expected_len=NONCE_BYTES),
            b64decode(view.ciphertext, max_len=MAX_VIEW_PLAINTEXT_BYTES + 16),
            view_aad(h, view.view_id, view.kind),
        )
    except (InvalidTag, ValueError, SchemaError) as exc:
        # HPKE raises InvalidTag or ValueError; one message for every cause.
        raise DecryptionError(DECRYPTION_FAILED) from exc
    return OpenedView(view_id=view.view_id, kind=view.kind, plaintext=plaintext)
