"""Cipher suites an envelope may name. Only these exist; anything else is refused.

  classic    HPKE base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM
             (RFC 9180 suite 0x0020/0x0001/0x0002); signature Ed25519.
  pq-hybrid  HPKE base mode: ML-KEM-768+X25519 hybrid KEM, HKDF-SHA256, AES-256-GCM;
             signatures Ed25519 *and* ML-DSA-65, both required. Records kept for
             decades must survive a future quantum adversary who stores traffic now.

Both encrypt each view with AES-256-GCM under a fresh 32-byte data key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke

from broker.errors import VerificationError
from schemas.directory import KeyAlg


@dataclass(frozen=True)
class Suite:
    name: str
    kem_key: KeyAlg
    signature_keys: tuple[KeyAlg, ...]
    hpke_kem: hpke.KEM

    def hpke(self) -> hpke.Suite:
        return hpke.Suite(self.hpke_kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


CLASSIC = Suite("classic", KeyAlg.X25519, (KeyAlg.ED25519,), hpke.KEM.X25519)
PQ_HYBRID = Suite(
    "pq-hybrid",
    KeyAlg.MLKEM768_X25519,
    (KeyAlg.ED25519, KeyAlg.ML_DSA_65),
    hpke.KEM.MLKEM768_X25519,
)
SUITES = {s.name: s for s in (CLASSIC, PQ_HYBRID)}


def suite_named(name: str, *, allowed: frozenset[str] | None = None) -> Suite:
    suite = SUITES.get(name)
    if suite is None:
        raise VerificationError(f"unknown cipher suite {name!r}", code="envelope.unknown-suite")
    if allowed is not None and name not in allowed:
        raise VerificationError(
            f"cipher suite {name!r} is not allowed by this deployment",
            code="envelope.suite-not-allowed",
        )
    return suite
