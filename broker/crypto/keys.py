"""Agency key pairs: generation, key ids, public encodings and sealed storage.

Private keys live in ``PrivateKey`` objects that cannot be pickled, copied or
printed; the only way out is ``export_encrypted`` under a passphrase (PKCS #8 with
the best available encryption). Public keys travel as raw bytes:

  ed25519          32 bytes (RFC 8032)
  x25519           32 bytes (RFC 7748)
  ml-dsa-65        1952 bytes (FIPS 204)
  mlkem768-x25519  1216 bytes: ML-KEM-768 encapsulation key (1184, FIPS 203)
                   followed by the X25519 public key (32)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519

from broker.errors import KeyUnavailable, VerificationError
from schemas.directory import KeyAlg

MLKEM768_PUBLIC_BYTES = 1184
X25519_PUBLIC_BYTES = 32
PUBLIC_KEY_BYTES = {
    KeyAlg.ED25519: 32,
    KeyAlg.X25519: X25519_PUBLIC_BYTES,
    KeyAlg.ML_DSA_65: 1952,
    KeyAlg.MLKEM768_X25519: MLKEM768_PUBLIC_BYTES + X25519_PUBLIC_BYTES,
}

SigningPrivate = ed25519.Ed25519PrivateKey | mldsa.MLDSA65PrivateKey
DecryptionPrivate = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
EncryptionPublic = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
VerificationPublic = ed25519.Ed25519PublicKey | mldsa.MLDSA65PublicKey


def key_id(alg: KeyAlg, public: bytes) -> str:
    """Hex of the first 16 bytes of SHA-256(alg, 0x00, raw public key)."""
    return hashlib.sha256(alg.value.encode() + b"\x00" + public).hexdigest()[:32]


@dataclass(frozen=True)
class PublicKey:
    alg: KeyAlg
    raw: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.alg, self.raw)


class PrivateKey:
    """Holds one private key. Never printed, pickled or copied; exported only sealed."""

    __slots__ = ("_key", "_mlkem", "alg", "public")

    def __init__(self, alg: KeyAlg, key: Any, *, mlkem_part: Any = None) -> None:
        self.alg = alg
        self._key = key
        self._mlkem = mlkem_part
        self.public = PublicKey(alg, _public_raw(alg, key, mlkem_part))

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def __repr__(self) -> str:
        return f"<PrivateKey {self.alg.value} {self.key_id}>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("private keys cannot be pickled; use export_encrypted")

    def __copy__(self) -> NoReturn:
        raise TypeError("private keys cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("private keys cannot be copied")

    @classmethod
    def generate(cls, alg: KeyAlg) -> PrivateKey:
        if alg is KeyAlg.ED25519:
            return cls(alg, ed25519.Ed25519PrivateKey.generate())
        if alg is KeyAlg.ML_DSA_65:
            return cls(alg, mldsa.MLDSA65PrivateKey.generate())
        if alg is KeyAlg.X25519:
            return cls(alg, x25519.X25519PrivateKey.generate())
        return cls(
            alg,
            x25519.X25519PrivateKey.generate(),
            mlkem_part=mlkem.MLKEM768PrivateKey.generate(),
        )

    # Seed sizes for ``from_seed``: ML-KEM-768 takes d||z (64 bytes, FIPS 203), the
    # hybrid key that and an X25519 scalar after it.
    SEED_BYTES: ClassVar[dict[KeyAlg, int]] = {
        KeyAlg.ED25519: 32,
        KeyAlg.X25519: 32,
        KeyAlg.ML_DSA_65: 32,
        KeyAlg.MLKEM768_X25519: 64 + 32,
    }

    @classmethod
    def from_seed(cls, alg: KeyAlg, seed: bytes) -> PrivateKey:
        """Derive a key pair from a seed: for published test vectors and key escrow
        recovery, never for keys made in the ordinary way (use ``generate``)."""
        if len(seed) != cls.SEED_BYTES[alg]:
            raise KeyUnavailable(f"{alg.value} seeds are {cls.SEED_BYTES[alg]} bytes")
        if alg is KeyAlg.ED25519:
            return cls(alg, ed25519.Ed25519PrivateKey.from_private_bytes(seed))
        if alg is KeyAlg.ML_DSA_65:
            return cls(alg, mldsa.MLDSA65PrivateKey.from_seed_bytes(seed))
        if alg is KeyAlg.X25519:
            return cls(alg, x25519.X25519PrivateKey.from_private_bytes(seed))
        return cls(
            alg,
            x25519.X25519PrivateKey.from_private_bytes(seed[64:]),
            mlkem_part=mlkem.MLKEM768PrivateKey.from_seed_bytes(seed[:64]),
        )

    # -- use -------------------------------------------------------------------------
    def sign(self, message: bytes) -> bytes:
        if self.alg is KeyAlg.ED25519 or self.alg is KeyAlg.ML_DSA_65:
            return bytes(self._key.sign(message))
        raise TypeError(f"{self.alg.value} keys do not sign")

    def hpke_private(self) -> DecryptionPrivate:
        if self.alg is KeyAlg.X25519:
            key: DecryptionPrivate = self._key
            return key
        if self.alg is KeyAlg.MLKEM768_X25519:
            return hpke.MLKEM768X25519PrivateKey(self._mlkem, self._key)
        raise TypeError(f"{self.alg.value} keys do not decrypt")

    # -- storage ---------------------------------------------------------------------
    def export_encrypted(self, passphrase: bytes) -> str:
        """A JSON text holding PKCS #8 PEM blocks sealed under ``passphrase``."""
        if len(passphrase) < 12:
            raise KeyUnavailable("key passphrase must be at least 12 bytes")
        enc = serialization.BestAvailableEncryption(passphrase)
        parts = {"key": _pem(self._key, enc)}
        if self._mlkem is not None:
            parts["mlkem"] = _pem(self._mlkem, enc)
        return json.dumps({"alg": self.alg.value, "key_id": self.key_id, **parts})

    @classmethod
    def import_encrypted(cls, text: str, passphrase: bytes) -> PrivateKey:
        try:
            doc = json.loads(text)
            alg = KeyAlg(doc["alg"])
            key = serialization.load_pem_private_key(doc["key"].encode(), passphrase)
            part = (
                serialization.load_pem_private_key(doc["mlkem"].encode(), passphrase)
                if alg is KeyAlg.MLKEM768_X25519
                else None
            )
            loaded = cls(alg, key, mlkem_part=part)
        except (ValueError, KeyError, TypeError, UnsupportedAlgorithm) as exc:
            # ValueError covers a wrong passphrase; say only what the operator can fix.
            raise KeyUnavailable(
                "cannot unlock private key: wrong passphrase or damaged key file"
            ) from exc
        if loaded.key_id != doc.get("key_id"):
            raise KeyUnavailable("key file does not match its recorded key id")
        return loaded


def _pem(key: Any, enc: serialization.KeySerializationEncryption) -> str:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    ).decode("ascii")


def _public_raw(alg: KeyAlg, key: Any, mlkem_part: Any) -> bytes:
    expected: dict[KeyAlg, type[Any]] = {
        KeyAlg.ED25519: ed25519.Ed25519PrivateKey,
        KeyAlg.ML_DSA_65: mldsa.MLDSA65PrivateKey,
        KeyAlg.X25519: x25519.X25519PrivateKey,
        KeyAlg.MLKEM768_X25519: x25519.X25519PrivateKey,
    }
    if not isinstance(key, expected[alg]):
        raise KeyUnavailable(f"key material is not an {alg.value} key")
    raw = bytes(key.public_key().public_bytes_raw())
    if alg is KeyAlg.MLKEM768_X25519:
        if not isinstance(mlkem_part, mlkem.MLKEM768PrivateKey):
            raise KeyUnavailable("hybrid key lacks its ML-KEM-768 part")
        raw = bytes(mlkem_part.public_key().public_bytes_raw()) + raw
    return raw


# Parsed public keys kept per process, keyed by algorithm and raw bytes (public material
# only): parsing an ML-KEM-768 key costs about 30 us of each 150 us wrap. A deployment's
# directory holds a few hundred keys; 1024 covers it and one rotation's worth more.
PARSED_PUBLIC_KEYS = 1024


def load_encryption_public(public: PublicKey) -> EncryptionPublic:
    """The parsed encryption key (cached per algorithm and bytes). Raises
    ``VerificationError`` for a key of the wrong length or kind."""
    _check_length(public)
    return _parsed_encryption(public.alg, public.raw)


@functools.lru_cache(maxsize=PARSED_PUBLIC_KEYS)
def _parsed_encryption(alg: KeyAlg, raw: bytes) -> EncryptionPublic:
    if alg is KeyAlg.X25519:
        return x25519.X25519PublicKey.from_public_bytes(raw)
    if alg is KeyAlg.MLKEM768_X25519:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_BYTES]),
            x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_BYTES:]),
        )
    raise VerificationError(f"{alg.value} is not an encryption key")


@functools.lru_cache(maxsize=PARSED_PUBLIC_KEYS)
def _parsed_verification(alg: KeyAlg, raw: bytes) -> VerificationPublic:
    if alg is KeyAlg.ED25519:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if alg is KeyAlg.ML_DSA_65:
        return mldsa.MLDSA65PublicKey.from_public_bytes(raw)
    raise VerificationError(f"{alg.value} is not a signing key")


def verify_signature(public: PublicKey, signature: bytes, message: bytes) -> None:
    """Raise ``VerificationError`` unless ``signature`` is valid for ``message``."""
    _check_length(public)
    verifier = _parsed_verification(public.alg, public.raw)
    try:
        verifier.verify(signature, message)
    except InvalidSignature as exc:
        raise VerificationError(
            f"signature by key {public.key_id} does not verify",
            code="verification.signature-invalid",
        ) from exc


def _check_length(public: PublicKey) -> None:
    if len(public.raw) != PUBLIC_KEY_BYTES[public.alg]:
        raise VerificationError(
            f"{public.alg.value} public key must be {PUBLIC_KEY_BYTES[public.alg]} bytes",
            code="verification.bad-public-key",
        )


# Scrypt at n=2**15 costs about 50 ms and 32 MiB: cheap at start-up, dear to guess.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1


def seal_secret(secret: bytes, passphrase: bytes, *, label: str) -> str:
    """Seal a symmetric secret under a passphrase (scrypt, then AES-256-GCM)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if len(passphrase) < 12:
        raise KeyUnavailable("key passphrase must be at least 12 bytes")
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(passphrase)
    sealed = AESGCM(kek).encrypt(nonce, secret, label.encode())
    return json.dumps(
        {"label": label, "salt": salt.hex(), "nonce": nonce.hex(), "sealed": sealed.hex()}
    )


def open_secret(text: str, passphrase: bytes, *, label: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    try:
        doc = json.loads(text)
        kdf = Scrypt(
            salt=bytes.fromhex(doc["salt"]), length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P
        )
        return AESGCM(kdf.derive(passphrase)).decrypt(
            bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["sealed"]), label.encode()
        )
    except (InvalidTag, ValueError, KeyError, TypeError) as exc:
        raise KeyUnavailable(f"cannot unlock {label}: wrong passphrase or damaged file") from exc
