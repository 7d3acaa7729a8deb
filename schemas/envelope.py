"""The envelope on the wire: what a Kafka record value holds.

Byte-level rules (canonical encoding, associated data, HPKE info, signature input)
live in ``docs/envelope.md`` and ``broker/crypto/envelope.py``; this module fixes
the JSON shape and bounds every field before any cryptography runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from schemas.common import (
    AgencyId,
    AreaCode,
    Classification,
    Frozen,
    KeyId,
    ShortText,
    SubjectRef,
    Timestamp,
    Uuid,
    VersionOne,
    ViewKind,
)

# Kafka's default max.message.bytes is 1 MiB; an envelope must fit one record.
MAX_ENVELOPE_BYTES = 1_048_576
# A view's plaintext is one canonical message; 512 KiB leaves room for its
# base64 expansion (4/3) and the wrapped keys inside the 1 MiB record.
MAX_VIEW_PLAINTEXT_BYTES = 524_288
# One view per kind at most (full, redacted, summary).
MAX_VIEWS = 3
# Every agency in one area plus the co-ordination unit fits with a wide margin.
MAX_RECIPIENTS = 128
# Largest wrapped key: ML-KEM-768+X25519 encapsulation (1120) + 32-byte key + 16-byte tag.
MAX_WRAPPED_KEY_BYTES = 1168
# Largest signature: ML-DSA-65 (FIPS 204) is 3309 bytes.
MAX_SIGNATURE_BYTES = 3309
# Envelopes of one publication (one signature over their Merkle root, docs/envelope.md
# §3.6): one per recipient topic, and an area has far fewer topics than this. 2^8, so an
# inclusion path holds at most 8 hashes.
MAX_PUBLICATION_ENVELOPES = 256
MAX_INCLUSION_PATH = 8


def decoded_size(text: str) -> int:
    """How many bytes standard, padded base64 ``text`` (already matched) decodes to."""
    return len(text) // 4 * 3 - text.count("=")


def b64_field(max_bytes: int) -> object:
    """Standard base64 with padding, in as many characters as ``max_bytes`` may take (with
    ``at_most_bytes``, which bounds the bytes themselves)."""
    max_chars = 4 * ((max_bytes + 2) // 3)
    return StringConstraints(
        pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        max_length=max_chars,
    )


def at_most_bytes(max_bytes: int) -> object:
    """The bound of a base64 field is on the bytes it carries (docs/envelope.md §2.2): the
    characters that can spell ``max_bytes`` spell up to two bytes more."""

    def within(text: str) -> str:
        if decoded_size(text) > max_bytes:
            raise ValueError(f"more than {max_bytes} bytes")
        return text

    return AfterValidator(within)


def b64_exact(size: int) -> object:
    """Standard base64 with padding of exactly ``size`` bytes (docs/envelope.md §2.2): a
    wrong size is a wrong shape, refused at step 1 like any other bound."""
    padding = (3 - size % 3) % 3
    chars = 4 * ((size + 2) // 3) - padding
    return StringConstraints(pattern=rf"^[A-Za-z0-9+/]{{{chars}}}={{{padding}}}$")


B64Nonce = Annotated[str, b64_exact(12)]
B64Commitment = Annotated[str, b64_exact(32)]
B64Ciphertext = Annotated[
    str, b64_field(MAX_VIEW_PLAINTEXT_BYTES + 16), at_most_bytes(MAX_VIEW_PLAINTEXT_BYTES + 16)
]
B64WrappedKey = Annotated[
    str, b64_field(MAX_WRAPPED_KEY_BYTES), at_most_bytes(MAX_WRAPPED_KEY_BYTES)
]
B64Signature = Annotated[str, b64_field(MAX_SIGNATURE_BYTES), at_most_bytes(MAX_SIGNATURE_BYTES)]
# A SHA-256 hash in base64: exactly 32 bytes, canonically spelt (44 characters; the last
# one before "=" carries 2 bits of padding, which must be zero).
B64Hash = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
SuiteName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
TopicName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}\.[a-z0-9.-]{1,120}$")]
MessageType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z-]{1,48}[a-z]$")]
SignatureAlg = Literal["ed25519", "ml-dsa-65"]


class EnvelopeHeader(Frozen):
    envelope_version: VersionOne
    suite: SuiteName
    message_id: Uuid
    created_at: Timestamp
    sender: AgencyId
    # The signing keys, in signature order; named here so the signature covers them.
    sender_keys: tuple[KeyId, ...] = Field(min_length=1, max_length=2)
    area: AreaCode
    topic: TopicName
    message_type: MessageType
    schema_version: int = Field(ge=1, le=1000)
    subject_ref: SubjectRef
    isa_id: ShortText
    isa_version: int = Field(ge=1)
    purpose: ShortText
    lawful_basis: ShortText
    classification: Classification
    # A correction names the message it replaces; recipients treat it as an alteration.
    # Present in every header, null when nothing is replaced (docs/envelope.md §2.1): a
    # default would sign one header in two spellings.
    supersedes: Uuid | None


class SealedView(Frozen):
    view_id: int = Field(ge=0, lt=MAX_VIEWS)
    kind: ViewKind
    nonce: B64Nonce
    key_commitment: B64Commitment
    ciphertext: B64Ciphertext


class WrappedKey(Frozen):
    agency: AgencyId
    key_id: KeyId
    view_id: int = Field(ge=0, lt=MAX_VIEWS)
    wrapped_key: B64WrappedKey


class EnvelopeSignature(Frozen):
    alg: SignatureAlg
    key_id: KeyId
    signature: B64Signature


class PublicationProof(Frozen):
    """Where an envelope sits in its publication's Merkle tree (docs/envelope.md §3.6).
    Present only when the publication has two envelopes or more; ``index < size`` and the
    path's exact length are checked by ``broker.crypto.envelope.parse_envelope``."""

    index: int = Field(ge=0, lt=MAX_PUBLICATION_ENVELOPES)
    size: int = Field(ge=2, le=MAX_PUBLICATION_ENVELOPES)
    path: tuple[B64Hash, ...] = Field(min_length=1, max_length=MAX_INCLUSION_PATH)


class Envelope(Frozen):
    """The whole record value. ``signatures`` cover everything else (see docs), directly
    or, with ``publication``, through the publication's Merkle root."""

    header: EnvelopeHeader
    views: tuple[SealedView, ...] = Field(min_length=1, max_length=MAX_VIEWS)
    recipients: tuple[WrappedKey, ...] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    signatures: tuple[EnvelopeSignature, ...] = Field(min_length=1, max_length=2)
    publication: PublicationProof | None = None
