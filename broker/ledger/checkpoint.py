"""Signed checkpoints: the ledger's tree head as a C2SP signed note.

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64>\\n
    time <YYYY-MM-DDTHH:MM:SS.mmmZ>\\n       (extension line: when the head was signed)
    index <base64 search-index digest>\\n    (extension line: see ``search``)
    \\n
    \u2014 <key name> <base64(4-byte key id || Ed25519 signature over the text above)>\\n

The key id is the signed-note one: SHA-256(name || 0x0A || 0x01 || public key)[:4].
The public key is published as a signed-note verifier key,
``<name>+<hex key id>+<base64(0x01 || public key)>``, in ``ledger.pub`` in the data
directory. ``verify_proofs.verify_checkpoint`` checks all of this on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.crypto.encoding import b64decode, b64encode
from broker.crypto.keys import PrivateKey, PublicKey
from broker.errors import ConfigurationError, SchemaError, VerificationError
from broker.ledger.verify_proofs import (
    ED25519_ALG,
    Checkpoint,
    ProofError,
    note_key_id,
    verify_checkpoint,
)
from schemas.directory import KeyAlg

TIME_PREFIX = "time "
INDEX_PREFIX = "index "


def ledger_origin(namespace: str) -> str:
    """The origin of a deployment's log, ``mappa-broker/<namespace>/audit-ledger``: one
    log per deployment namespace, named in every checkpoint."""
    return f"mappa-broker/{namespace}/audit-ledger"


def verifier_key(name: str, public: PublicKey) -> str:
    """The signed-note verifier key of ``public`` under ``name``: ``<name>+<hex key
    id>+<base64(0x01 || public key)>``. Raises ``ConfigurationError`` (``config.invalid``)
    unless ``public`` is an Ed25519 key."""
    if public.alg is not KeyAlg.ED25519:
        raise ConfigurationError("the ledger signs checkpoints with an Ed25519 key")
    key_id = note_key_id(name, public.raw)
    return f"{name}+{key_id.hex()}+{b64encode(bytes([ED25519_ALG]) + public.raw)}"


def checkpoint_text(origin: str, size: int, root: bytes, time: str, index: bytes) -> str:
    """The text a checkpoint signs: origin, size, root hash, then the ``time`` and
    ``index`` extension lines, each ending in a newline."""
    return (
        f"{origin}\n{size}\n{b64encode(root)}\n"
        f"{TIME_PREFIX}{time}\n{INDEX_PREFIX}{b64encode(index)}\n"
    )


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose signature and origin have been checked (see ``open_checkpoint``):
    its note as stored or received, and its parsed body."""

    note: str
    checkpoint: Checkpoint

    @property
    def size(self) -> int:
        """The tree size it signs."""
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        """The tree head it signs."""
        return self.checkpoint.root

    def _extension(self, prefix: str) -> str | None:
        for line in self.checkpoint.extensions:
            if line.startswith(prefix):
                return line[len(prefix) :]
        return None

    @property
    def time(self) -> str | None:
        """When it was signed (its ``time`` line), or None if the line is missing."""
        return self._extension(TIME_PREFIX)

    @property
    def index(self) -> bytes | None:
        """The search index digest it seals, or None if the line is missing or is not
        32 bytes of base64."""
        value = self._extension(INDEX_PREFIX)
        try:
            return None if value is None else b64decode(value, expected_len=32)
        except SchemaError:
            return None


class CheckpointSigner:
    """Signs the ledger's checkpoints as ``origin`` with its Ed25519 ``key``. Raises
    ``ConfigurationError`` (``config.invalid``) for a key of another kind."""

    def __init__(self, *, origin: str, key: PrivateKey) -> None:
        if key.alg is not KeyAlg.ED25519:
            raise ConfigurationError("the ledger signs checkpoints with an Ed25519 key")
        self.origin = origin
        self._key = key
        self.verifier_key = verifier_key(origin, key.public)
        self._key_id = note_key_id(origin, key.public.raw)

    def sign(self, size: int, root: bytes, time: str, index: bytes) -> str:
        """The signed note over ``checkpoint_text`` of these values: the text, a blank
        line, and one signature line."""
        text = checkpoint_text(self.origin, size, root, time, index)
        signature = self._key.sign(text.encode())
        return f"{text}\n\u2014 {self.origin} {b64encode(self._key_id + signature)}\n"


def open_checkpoint(note: str, vkey: str, *, origin: str) -> VerifiedCheckpoint:
    """Verify a stored or received checkpoint against the verifier key ``vkey`` and
    ``origin``; returns it verified. Raises ``VerificationError``
    (``ledger.checkpoint-invalid``) if it does not check out."""
    try:
        return VerifiedCheckpoint(note, verify_checkpoint(note, vkey, origin=origin))
    except ProofError as exc:
        raise VerificationError(str(exc), code="ledger.checkpoint-invalid") from None
