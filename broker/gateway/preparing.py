"""Receiving off the event loop: the pure, CPU-heavy part of each record, done ahead.

A record's checks run in order on the event loop (``broker.gateway.receive``), most of
them against state: the directory in force, the replay memory, the agreements. Three
steps cost most and depend on nothing but the record's bytes and keys: parsing it
(strict JSON, the schema, the canonical signed bytes), verifying its signatures, and
decrypting its view. ``prepare`` runs those three for a batch in a worker process
(``SealingPool.prepare``, one chunk per worker), before the batch's transaction, and
hands back per record a ``Prepared``:

* the parsed envelope, so the loop does not parse again;
* ``vouched``: the ``verification_digest`` of each signature that verified under the
  public key the directory gave for its key id. The loop still resolves the keys itself
  (suite, directory, revocation, append time: check 3) and passes over only a
  verification of exactly that key, message and signature (``verify_envelope``);
* ``opened``: the view wrapped for this agency, decrypted with the worker's own copy of
  its key, only once every signature verified. The loop still runs checks 5 to 9 first
  and the recipient and key checks of ``open_view``.

Nothing here decides: a record that fails any step is prepared as far as it got, or not
at all (``None``), and the loop runs that step itself, reaching the refusal it always
did with its code. Preparation is speculative and never required: without workers, or
if the pool fails, every record is handled as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from broker.crypto.encoding import b64decode
from broker.crypto.envelope import (
    OpenedView,
    UnverifiedEnvelope,
    open_view,
    parse_envelope,
    signature_target,
    verified_parts,
)
from broker.crypto.keys import PrivateKey, PublicKey, verify_signature
from broker.crypto.publication import verification_digest
from broker.crypto.suites import suite_named
from broker.errors import MappaError
from schemas.envelope import MAX_SIGNATURE_BYTES

# Fewer records than this are handled on the loop alone: the round trip to a worker
# would cost more than it saves, and a quiet system's latency is one record's.
PREPARE_AT_LEAST = 4


@dataclass(frozen=True)
class Prepared:
    """What a worker did ahead for one record (module docstring)."""

    unverified: UnverifiedEnvelope
    vouched: frozenset[bytes]
    opened: OpenedView | None


def prepare(
    values: Sequence[bytes],
    *,
    agency: str,
    signing_keys: Mapping[str, PublicKey],
    decryption_key: Callable[[str], PrivateKey | None],
) -> list[Prepared | None]:
    """Parse, verify and open each of ``values`` as far as it goes (module docstring).
    ``signing_keys`` maps key ids to the directory's public signing keys;
    ``decryption_key`` gives ``agency``'s private key of an id, or None. Never raises on
    a record: what fails is left to the loop."""
    return [_prepared(v, agency, signing_keys, decryption_key) for v in values]


def _prepared(
    value: bytes,
    agency: str,
    signing_keys: Mapping[str, PublicKey],
    decryption_key: Callable[[str], PrivateKey | None],
) -> Prepared | None:
    try:
        unverified = parse_envelope(value)
    except MappaError:
        return None
    try:
        target = signature_target(unverified)
    except MappaError:
        return Prepared(unverified, frozenset(), None)
    vouched: set[bytes] = set()
    signatures = unverified.envelope.signatures
    for sig in signatures:
        key = signing_keys.get(sig.key_id)
        if key is None or key.alg.value != sig.alg:
            continue
        try:
            signature = b64decode(sig.signature, max_len=MAX_SIGNATURE_BYTES)
            verify_signature(key, signature, target)
        except MappaError:
            continue
        vouched.add(verification_digest(key, signature, target))
    opened = None
    if len(vouched) == len(signatures):
        opened = _opened(unverified, agency, decryption_key)
    return Prepared(unverified, frozenset(vouched), opened)


def _opened(
    unverified: UnverifiedEnvelope,
    agency: str,
    decryption_key: Callable[[str], PrivateKey | None],
) -> OpenedView | None:
    """This agency's view, decrypted; None if it holds none or it does not open."""
    entry = next((r for r in unverified.envelope.recipients if r.agency == agency), None)
    if entry is None:
        return None
    key = decryption_key(entry.key_id)
    if key is None:
        return None
    try:
        return open_view(
            verified_parts(unverified),
            agency=agency,
            keys={entry.key_id: key},
            suite=suite_named(unverified.envelope.header.suite),
        )
    except MappaError:
        return None
