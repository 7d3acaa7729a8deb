"""Making and checking C2SP cosignature/v1 lines (https://c2sp.org/tlog-cosignature).

A witness's cosignature is one signed-note signature line appended to a checkpoint:

    \u2014 <witness name> base64(key id (4) || timestamp (uint64 BE, 8) || Ed25519 sig (64))\\n

key id = SHA-256(name || 0x0A || 0x04 || public key)[:4]; the signature is over
``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint's note text. Its
cosigner key (vkey) is ``<name>+<hex key id>+<base64(0x04 || public key)>``. The
checks themselves are in the standalone verifier (``broker.ledger.verify_proofs``), so an
officer's copy of that one file checks exactly what the product checks.
"""

from __future__ import annotations

from broker.crypto.encoding import b64encode
from broker.crypto.keys import PrivateKey, PublicKey
from broker.errors import ConfigurationError, VerificationError
from broker.ledger.verify_proofs import (
    COSIGNATURE_ALG,
    MAX_TIMESTAMP,
    TIMESTAMP_BYTES,
    ProofError,
    cosignature_key_id,
    cosigned_message,
    split_note,
    verify_cosignature,
)
from schemas.directory import KeyAlg


def cosigner_key(name: str, public: PublicKey) -> str:
    """The cosigner key of ``public`` under ``name``: ``<name>+<hex key id>+<base64(0x04
    || public key)>``. Raises ``ConfigurationError`` unless ``public`` is Ed25519."""
    if public.alg is not KeyAlg.ED25519:
        raise ConfigurationError("a witness cosigns with an Ed25519 key")
    key_id = cosignature_key_id(name, public.raw)
    return f"{name}+{key_id.hex()}+{b64encode(bytes([COSIGNATURE_ALG]) + public.raw)}"


class Cosigner:
    """Cosigns checkpoints as ``name`` with the Ed25519 ``key``. It checks nothing about
    the checkpoint: ``Witness`` does that first. Raises ``ConfigurationError`` for a key
    of another kind (``cosigner_key``)."""

    def __init__(self, *, name: str, key: PrivateKey) -> None:
        self.name = name
        self._key = key
        self.vkey = cosigner_key(name, key.public)
        self._key_id = cosignature_key_id(name, key.public.raw)

    def __repr__(self) -> str:
        return f"Cosigner({self.name})"

    def cosign(self, note: str, timestamp: int) -> str:
        """The cosignature line over the note text of ``note`` (a signed note: its
        signatures are not covered) at POSIX time ``timestamp``. Raises
        ``VerificationError`` (``witness.malformed``) if ``note`` is not a signed note,
        ``ValueError`` for a timestamp outside 0..2**63 - 1."""
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise ValueError("a cosignature's timestamp is from 0 to 2**63 - 1")
        try:
            text, _ = split_note(note)
        except ProofError as exc:
            raise VerificationError(str(exc), code="witness.malformed") from None
        signature = self._key.sign(cosigned_message(text, timestamp))
        blob = self._key_id + timestamp.to_bytes(TIMESTAMP_BYTES, "big") + signature
        return f"\u2014 {self.name} {b64encode(blob)}\n"


def check_cosignature(note: str, vkey: str) -> int:
    """``verify_cosignature`` with our error: returns the cosignature's timestamp.
    Raises ``VerificationError`` (``witness.cosignature-invalid``) if it does not check."""
    try:
        return verify_cosignature(note, vkey)
    except ProofError as exc:
        raise VerificationError(str(exc), code="witness.cosignature-invalid") from None


def with_cosignatures(note: str, lines: list[str]) -> str:
    """``note`` with the cosignature ``lines`` appended after its own signature lines
    (C2SP: more signature lines on the same note), each once, in the order given."""
    out, seen = note, set(note.split("\n\n", 1)[-1].splitlines(keepends=True))
    for line in lines:
        if line not in seen:
            out += line
            seen.add(line)
    return out
