"""Setting up a deployment's witnesses: a cosigning key per witness agency, its store,
and the governance-signed witness policy.

The default policy names the Responsible Authority agencies of the directory (police,
probation, prisons: ``RESPONSIBLE_AUTHORITY``) and needs a majority of them
(``default_threshold``: 2 of 3 in one area): a rewrite or rollback needs a majority of
agencies to collude with the ledger's operator before a checkpoint verifies, while one
agency's witness being down does not leave checkpoints unwitnessed.

Layout in the data directory:

  keys/witness.<agency>/<key_id>.key   the agency's witness key, sealed (Ed25519)
  witnesses/<agency>.sqlite            the agency's witness store (latest, alarms)
  witness-policy.json                  the signed policy (``policy``)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from broker.crypto.keys import PrivateKey, PublicKey
from broker.errors import KeyUnavailable, MappaError
from broker.files.private import private_dir
from broker.ledger.verify_proofs import parse_cosigner_key
from broker.trust.directory import Directory
from broker.trust.keystore import Keystore
from broker.trust.provision import GOVERNANCE, DataPaths, load_governance_public
from broker.witness.cosignature import Cosigner, cosigner_key
from broker.witness.policy import (
    INDEPENDENT,
    MAX_WITNESSES,
    Policy,
    WitnessEntry,
    WitnessPolicyDocument,
    sign_policy,
    write_policy,
)
from broker.witness.witness import Witness, WitnessAlarm, WitnessStore
from schemas.common import RESPONSIBLE_AUTHORITY
from schemas.directory import KeyAlg


def witness_name(namespace: str, agency_id: str) -> str:
    """A witness's name (its cosignature lines' key name): schema-less, as C2SP asks."""
    return f"mappa-broker/{namespace}/witness/{agency_id}"


def witness_owner(agency_id: str) -> str:
    """The keystore owner of ``agency_id``'s witness key (apart from its own keys)."""
    return f"witness.{agency_id}"


def witness_store_path(paths: DataPaths, agency_id: str) -> Path:
    return paths.root / "witnesses" / f"{agency_id}.sqlite"


def default_threshold(witnesses: int) -> int:
    """A majority of ``witnesses`` (see the module)."""
    return witnesses // 2 + 1


def create_witness_policy(
    paths: DataPaths,
    keystore: Keystore,
    directory: Directory,
    *,
    namespace: str,
    origin: str,
    log_key: str,
) -> Policy:
    """A key for each Responsible Authority agency's witness (sealed in ``keystore``),
    and the default policy over them, signed with the governance key and written to the
    data directory; returns it. Raises ``KeyUnavailable`` if the governance key is not
    held here, and ``VerificationError`` if the directory has no RA agency."""
    governance = keystore.load(GOVERNANCE, load_governance_public(paths).key_id)
    agencies = sorted(
        (a for a in directory.agencies() if a.role in RESPONSIBLE_AUTHORITY),
        key=lambda a: a.agency_id,
    )[:MAX_WITNESSES]
    entries = []
    for agency in agencies:
        key = PrivateKey.generate(KeyAlg.ED25519)
        keystore.save(witness_owner(agency.agency_id), key)
        name = witness_name(namespace, agency.agency_id)
        entries.append(
            WitnessEntry(
                name=name, verifier_key=cosigner_key(name, key.public), agency=agency.agency_id
            )
        )
    document = WitnessPolicyDocument(
        kind="mappa.witness-policy",
        version=1,
        origin=origin,
        log_verifier_key=log_key,
        witnesses=tuple(entries),
        threshold=default_threshold(len(entries)) if entries else 1,
    )
    signed = sign_policy(document, governance)
    write_policy(paths.root, signed)
    return Policy(signed.document)


def held_witnesses(
    policy: Policy,
    paths: DataPaths,
    keystore: Keystore,
    *,
    clock: Callable[[], datetime],
) -> dict[str, Witness]:
    """A ``Witness`` for every witness of ``policy`` whose key is held here, by name,
    each on its own store (opened here: the caller closes ``witness.store``)."""
    out: dict[str, Witness] = {}
    for entry in policy.witnesses:
        if entry.agency == INDEPENDENT:
            continue
        name, raw = parse_cosigner_key(entry.verifier_key)
        owner = witness_owner(entry.agency)
        try:
            key = keystore.load(owner, PublicKey(KeyAlg.ED25519, raw).key_id)
        except KeyUnavailable:
            continue  # another agency's witness, run elsewhere
        private_dir(paths.root / "witnesses")
        out[name] = Witness(
            cosigner=Cosigner(name=name, key=key),
            origin=policy.document.origin,
            log_key=policy.document.log_verifier_key,
            store=WitnessStore(witness_store_path(paths, entry.agency)),
            clock=clock,
        )
    return out


def alarm_error(alarm: WitnessAlarm) -> MappaError:
    """The alarm as the refusal an agency audits (its code; sizes only in the reason)."""
    return MappaError(
        f"witness {alarm.witness} refused checkpoint {alarm.size} of {alarm.origin} "
        f"(it cosigned size {alarm.own_size}): {alarm.reason}",
        code=alarm.code,
    )
