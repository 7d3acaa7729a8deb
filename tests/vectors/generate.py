"""Envelope test vectors: generate them, check them for drift, evaluate them; and, through
``tests.vectors.receipts``, the receipt vectors, which answer one of these envelopes.

    python -m tests.vectors.generate           check: recompute and compare (exit 1 on drift)
    python -m tests.vectors.generate --fresh   regenerate every vector and rewrite the files

Keys come from fixed seeds, so anyone can rebuild them. Sealing is randomised (data keys,
nonces, HPKE encapsulation, ML-DSA's hedged signatures), so a valid vector stores the
random parts it used: its data keys, and the envelope itself. Everything else in it is
derived and stored for a person checking by hand with ``docs/envelope.md``: canonical
header, header digest, AAD, HPKE info, derived keys, commitments, signed bytes. The drift
check recomputes all of that with the product's code, re-encrypts each view from its data
key and nonce, unwraps each wrapped key, and rebuilds every invalid vector from its base
(the mutations are deterministic; re-signatures use Ed25519, which is too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.agreements.policy import check_agreement
from broker.crypto.encoding import b64decode, b64encode, jcs, strict_json
from broker.crypto.envelope import (
    COMMITMENT_INFO,
    VIEW_KEY_INFO,
    Recipient,
    ViewToSeal,
    derive_key,
    header_digest,
    open_view,
    seal,
    seal_publication,
    signed_bytes,
    view_aad,
    wrap_info,
)
from broker.crypto.keys import PrivateKey
from broker.crypto.pseudonym import SUBJECT_KEY_BYTES, SubjectKey
from broker.crypto.publication import (
    leaf_hash,
    node_hash,
    root_from_path,
    root_signed_bytes,
    tree_root,
)
from broker.crypto.suites import SUITES, Suite, suite_named
from broker.errors import MappaError
from broker.gateway.preparing import prepare
from broker.gateway.verification import EnvelopeVerifier
from broker.kafka.topics import Topics
from broker.trust.directory import Directory, public_key_of, sign_directory
from schemas.common import Classification, Role, ViewKind, parse_timestamp
from schemas.directory import (
    AgencyEntry,
    AgencyStatus,
    DirectoryDocument,
    KeyAlg,
    PublicKeyEntry,
    SignedDirectory,
)
from schemas.envelope import MAX_ENVELOPE_BYTES, EnvelopeHeader
from schemas.messages import derive_view
from tests.support import risk_assessment

FILE = Path(__file__).with_name("envelope-vectors.json")
SEED_LABEL = "mappa-broker envelope test vector seed v1"
AREA = "staffordshire"
TOPICS = Topics("mappa")
TOPIC = TOPICS.for_role(AREA, Role.POLICE)
SENDER = "police.staffordshire"
FULL_TO = "probation.staffordshire"
REDACTED_TO = "prison.hmp-stafford"
OUTSIDER = "education.staffordshire"
AGENCIES = {
    SENDER: Role.POLICE,
    FULL_TO: Role.PROBATION,
    REDACTED_TO: Role.PRISON,
    OUTSIDER: Role.EDUCATION,
}
CREATED_AT = "2026-11-23T11:59:00.000Z"
RECEIVED_AT = "2026-11-23T11:59:01.000Z"
NOW = "2026-11-23T12:00:00.000Z"
REVOKED_AT = "2026-11-23T11:00:00.000Z"
# The sender's Ed25519 key in the "superseded" directory: cut by a rotation 30 s after the
# vectors' envelopes were created.
SUPERSEDED_AT = "2026-11-23T11:59:30.000Z"
DIRECTORY_ISSUED_AT = "2026-11-23T00:00:00.000Z"
DIRECTORY_VALID_UNTIL = "2027-01-01T00:00:00.000Z"
# The agreement the receivers hold, unless a vector says otherwise.
AGREEMENT = ("mappa-default.staffordshire", 1)
SKEW = timedelta(seconds=300)
WINDOW = timedelta(days=14)
PNC = "2011/0456789K"


# -- fixed trust material ------------------------------------------------------------------------


def seed(owner: str, alg: KeyAlg | str) -> bytes:
    name = alg.value if isinstance(alg, KeyAlg) else alg
    size = PrivateKey.SEED_BYTES[alg] if isinstance(alg, KeyAlg) else 32
    return hashlib.shake_256(f"{SEED_LABEL}|{owner}|{name}".encode()).digest(size)


def key(owner: str, alg: KeyAlg) -> PrivateKey:
    return PrivateKey.from_seed(alg, seed(owner, alg))


def subject_key() -> SubjectKey:
    return SubjectKey(seed("deployment", "subject-key"))


def directory_document(*, revoked: bool) -> DirectoryDocument:
    """The vectors' directory (version 1), or version 2, in which the sender's Ed25519 key
    is revoked at ``REVOKED_AT``. Every agency may send in both suites."""
    agencies = []
    for agency_id, role in AGENCIES.items():
        entries = []
        for alg in KeyAlg:
            k = key(agency_id, alg)
            entry = PublicKeyEntry(
                key_id=k.key_id,
                alg=alg,
                public_key=b64encode(k.public.raw),
                not_before="2026-01-01T00:00:00.000Z",
                not_after="2028-01-01T00:00:00.000Z",
                revoked_at=None,
                revocation_reason=None,
            )
            if revoked and agency_id == SENDER and alg is KeyAlg.ED25519:
                entry = entry.model_copy(
                    update={"revoked_at": REVOKED_AT, "revocation_reason": "test vector"}
                )
            entries.append(entry)
        agencies.append(
            AgencyEntry(
                agency_id=agency_id,
                name=agency_id,
                role=role,
                areas=(AREA,),
                kafka_principal=f"User:{agency_id}",
                status=AgencyStatus.ACTIVE,
                suites=tuple(SUITES),
                keys=tuple(entries),
            )
        )
    return DirectoryDocument(
        kind="mappa.directory",
        version=2 if revoked else 1,
        issued_at=DIRECTORY_ISSUED_AT,
        valid_until=DIRECTORY_VALID_UNTIL,
        agencies=tuple(agencies),
    )


def _sender_changed(
    document: DirectoryDocument, version: int, change: Callable[[AgencyEntry], AgencyEntry]
) -> DirectoryDocument:
    agencies = tuple(change(a) if a.agency_id == SENDER else a for a in document.agencies)
    return document.model_copy(update={"version": version, "agencies": agencies})


def _superseded(agency: AgencyEntry) -> AgencyEntry:
    keys = tuple(
        k.model_copy(update={"not_after": SUPERSEDED_AT}) if k.alg is KeyAlg.ED25519 else k
        for k in agency.keys
    )
    return agency.model_copy(update={"keys": keys})


def _not_yet_valid(agency: AgencyEntry) -> AgencyEntry:
    keys = tuple(
        k.model_copy(update={"not_before": "2026-11-23T11:59:00.001Z"})
        if k.alg is KeyAlg.ED25519
        else k
        for k in agency.keys
    )
    return agency.model_copy(update={"keys": keys})


def signed_directories() -> dict[str, SignedDirectory]:
    """Each directory a vector may be judged against (its "directory", else "default")."""
    governance = key("governance", KeyAlg.ED25519)
    default = directory_document(revoked=False)
    documents = {
        "default": default,
        "revoked": directory_document(revoked=True),
        # A rotation cut the sender's Ed25519 key at SUPERSEDED_AT (not revoked).
        "superseded": _sender_changed(default, 3, _superseded),
        # The sender may send in pq-hybrid only.
        "pq-hybrid-only": _sender_changed(
            default, 4, lambda a: a.model_copy(update={"suites": ("pq-hybrid",)})
        ),
        # Trusted until six hours after issue, long before any vector's record time.
        "expired": default.model_copy(
            update={"version": 5, "valid_until": "2026-11-23T06:00:00.000Z"}
        ),
        # The sender is suspended.
        "sender-suspended": _sender_changed(
            default, 6, lambda a: a.model_copy(update={"status": AgencyStatus.SUSPENDED})
        ),
        # The sender's Ed25519 key is valid from a millisecond after the vectors' created_at.
        "key-not-yet-valid": _sender_changed(default, 7, _not_yet_valid),
    }
    return {name: sign_directory(doc, governance) for name, doc in documents.items()}


def plaintexts() -> dict[ViewKind, bytes]:
    message = risk_assessment(PNC)
    return {kind: jcs(derive_view(message, kind)) for kind in (ViewKind.FULL, ViewKind.REDACTED)}


# -- valid vectors --------------------------------------------------------------------------------


def valid_header(
    name: str, suite: Suite, *, topic: str = TOPIC, supersedes: str | None = None
) -> EnvelopeHeader:
    """The header of a valid vector: its message id is made from ``name``."""
    return EnvelopeHeader(
        envelope_version=1,
        suite=suite.name,
        message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"mappa-vector:{name}")),
        created_at=CREATED_AT,
        sender=SENDER,
        sender_keys=tuple(key(SENDER, alg).key_id for alg in suite.signature_keys),
        area=AREA,
        topic=topic,
        message_type="risk-assessment",
        schema_version=1,
        subject_ref=subject_key().reference(PNC),
        isa_id="mappa-default.staffordshire",
        isa_version=1,
        purpose="MAPPA risk management",
        lawful_basis="DPA 2018 Part 3: CJA 2003 s325",
        classification=Classification.OFFICIAL_SENSITIVE,
        supersedes=supersedes,
    )


def valid_views(suite: Suite) -> list[ViewToSeal]:
    """The full view for probation, the redacted one for the prison."""
    texts = plaintexts()
    return [
        ViewToSeal(
            ViewKind.FULL,
            texts[ViewKind.FULL],
            (Recipient(FULL_TO, key(FULL_TO, suite.kem_key).public),),
        ),
        ViewToSeal(
            ViewKind.REDACTED,
            texts[ViewKind.REDACTED],
            (Recipient(REDACTED_TO, key(REDACTED_TO, suite.kem_key).public),),
        ),
    ]


def valid_vector(name: str, envelope: bytes) -> dict[str, Any]:
    """A valid vector around a sealed envelope: its random parts and derived values."""
    doc = strict_json(envelope)
    data_keys = {str(r["view_id"]): unwrap(doc, r["agency"]).hex() for r in doc["recipients"]}
    return {
        "name": name,
        "suite": doc["header"]["suite"],
        "topic": doc["header"]["topic"],
        "record_time": RECEIVED_AT,
        "now": NOW,
        "envelope": envelope.decode(),
        "data_keys": data_keys,
        "expect": {FULL_TO: "full", REDACTED_TO: "redacted", OUTSIDER: "not-addressed"},
        "derived": derive(doc, data_keys),
    }


def seal_valid(name: str, suite_name: str, *, supersedes: str | None = None) -> dict[str, Any]:
    suite = suite_named(suite_name)
    signers = [key(SENDER, alg) for alg in suite.signature_keys]
    header = valid_header(name, suite, supersedes=supersedes)
    envelope = seal(header=header, views=valid_views(suite), signers=signers, suite=suite)
    return valid_vector(name, envelope)


# The topics of a publication's envelopes, in order: the first is the vectors' own topic.
PUBLICATION_TOPICS = (TOPIC, TOPICS.for_role(AREA, Role.HOUSING), "mappa.staffordshire.coord")


def seal_publication_vectors(name: str, suite_name: str, size: int) -> list[dict[str, Any]]:
    """One publication of ``size`` envelopes (docs/envelope.md §3.6), one message on
    ``size`` topics, each a valid vector named ``<name>-<index>``."""
    suite = suite_named(suite_name)
    signers = [key(SENDER, alg) for alg in suite.signature_keys]
    items = [
        (valid_header(name, suite, topic=topic), valid_views(suite))
        for topic in PUBLICATION_TOPICS[:size]
    ]
    values = seal_publication(items, signers=signers, suite=suite)
    vectors = [valid_vector(f"{name}-{i}", v) for i, v in enumerate(values)]
    for vector in vectors:
        vector["publication"] = name
    return vectors


def publications(valid: list[dict[str, Any]]) -> dict[str, Any]:
    """Each publication's tree, from its envelopes in the valid vectors: leaf hashes,
    root and the bytes its keys sign (docs/envelope.md §3.6)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(v["publication"] for v in valid if "publication" in v):
        members = [v for v in valid if v.get("publication") == name]
        leaves = [leaf_hash(signed_bytes(strict_json(v["envelope"].encode()))) for v in members]
        root = tree_root(leaves)
        out[name] = {
            "envelopes": [v["name"] for v in members],
            "size": len(leaves),
            "leaf_hashes": [h.hex() for h in leaves],
            "root": root.hex(),
            "signed_root_bytes": root_signed_bytes(root, len(leaves)).decode(),
        }
    return out


def unwrap(doc: dict[str, Any], agency: str) -> bytes:
    suite = suite_named(doc["header"]["suite"])
    entry = next(r for r in doc["recipients"] if r["agency"] == agency)
    private = key(agency, suite.kem_key)
    info = wrap_info(header_digest(doc["header"]), agency, entry["key_id"], entry["view_id"])
    return suite.hpke().decrypt(b64decode(entry["wrapped_key"]), private.hpke_private(), info=info)


def derive(doc: dict[str, Any], data_keys: dict[str, str]) -> dict[str, Any]:
    """Every intermediate value a hand check needs, computed with the product's code."""
    h = header_digest(doc["header"])
    signed = signed_bytes(doc)
    views = {}
    for view in doc["views"]:
        k = bytes.fromhex(data_keys[str(view["view_id"])])
        views[str(view["view_id"])] = {
            "aad": view_aad(h, view["view_id"], ViewKind(view["kind"])).decode(),
            "view_key": derive_key(k, h, VIEW_KEY_INFO).hex(),
            "key_commitment": derive_key(k, h, COMMITMENT_INFO).hex(),
        }
    derived = {
        "header_jcs": jcs(doc["header"]).decode(),
        "header_sha256": h.hex(),
        "signed_bytes_prefix": signed[: signed.index(b"{")].decode(),
        "signed_bytes_sha256": hashlib.sha256(signed).hexdigest(),
        "views": views,
        "wrap_info": {
            r["agency"]: wrap_info(h, r["agency"], r["key_id"], r["view_id"]).decode()
            for r in doc["recipients"]
        },
    }
    if "publication" in doc:
        derived["publication"] = inclusion_steps(signed, doc["publication"])
    return derived


def inclusion_steps(signed: bytes, proof: dict[str, Any]) -> dict[str, Any]:
    """The leaf, each step of RFC 9162's inclusion check (which side the path hash goes
    on, and the hash so far), the root and the bytes the keys signed: computed here step
    by step as docs/envelope.md §3.6 says, and checked against the product's result."""
    index, size = proof["index"], proof["size"]
    path = [b64decode(p) for p in proof["path"]]
    leaf = leaf_hash(signed)
    fn, sn, r = index, size - 1, leaf
    steps = []
    for p in path:
        if fn & 1 or fn == sn:
            r, side = node_hash(p, r), "left"
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r, side = node_hash(r, p), "right"
        fn, sn = fn >> 1, sn >> 1
        steps.append({"sibling": p.hex(), "sibling_on": side, "hash": r.hex()})
    if r != root_from_path(leaf, index, size, path):
        raise AssertionError("the step-by-step root differs from the product's")
    return {
        "leaf_hash": leaf.hex(),
        "steps": steps,
        "root": r.hex(),
        "signed_root_bytes": root_signed_bytes(r, size).decode(),
    }


def check_valid(vector: dict[str, Any], texts: dict[ViewKind, bytes]) -> list[str]:
    """Recompute a valid vector from its random parts; return what differs."""
    problems = []
    doc = strict_json(vector["envelope"].encode())
    if jcs(doc).decode() != vector["envelope"]:
        problems.append("envelope is not in canonical form")
    if derive(doc, vector["data_keys"]) != vector["derived"]:
        problems.append("derived values differ from the code's")
    h = header_digest(doc["header"])
    for view in doc["views"]:
        k = bytes.fromhex(vector["data_keys"][str(view["view_id"])])
        kind = ViewKind(view["kind"])
        again = AESGCM(derive_key(k, h, VIEW_KEY_INFO)).encrypt(
            b64decode(view["nonce"]), texts[kind], view_aad(h, view["view_id"], kind)
        )
        if b64encode(again) != view["ciphertext"]:
            problems.append(f"view {view['view_id']}: ciphertext is not AES-GCM of its inputs")
    for r in doc["recipients"]:
        if unwrap(doc, r["agency"]).hex() != vector["data_keys"][str(r["view_id"])]:
            problems.append(f"{r['agency']}: wrapped key does not unwrap to the data key")
    return problems


# -- invalid vectors: deterministic mutations of the valid ones ----------------------------------


def resign_classic(doc: dict[str, Any], signer: str = SENDER) -> bytes:
    k = key(signer, KeyAlg.ED25519)
    doc["signatures"] = [
        {"alg": "ed25519", "key_id": k.key_id, "signature": b64encode(k.sign(signed_bytes(doc)))}
    ]
    return jcs(doc)


def flip_b64(text: str, byte: int) -> str:
    raw = bytearray(b64decode(text))
    raw[byte % len(raw)] ^= 0x01
    return b64encode(bytes(raw))


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], bytes]:
    def mutate(doc: dict[str, Any]) -> bytes:
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return jcs(doc)

    return mutate


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], bytes]:
    def mutate(doc: dict[str, Any]) -> bytes:
        target = doc
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
        return jcs(doc)

    return mutate


def _both(
    first: Callable[[dict[str, Any]], bytes], path: tuple[Any, ...], value: Any
) -> Callable[[dict[str, Any]], bytes]:
    """``first``, then ``path`` set to ``value`` too."""

    def mutate(doc: dict[str, Any]) -> bytes:
        return _set(path, value)(strict_json(first(doc)))

    return mutate


# Deeper than any recursive parser's default stack follows (Python's json stops near
# 1,000): a receiver must still find the first problem, as an iterative one does.
DEEP = 2000


def _deep(inner: bytes) -> bytes:
    return b"[" * DEEP + inner + b"]" * DEEP


def _bytes_of(build: Callable[[bytes], bytes]) -> Callable[[dict[str, Any]], bytes]:
    """The record ``build`` makes of the base's canonical bytes (built as bytes: a value
    this deep has no JSON serialisation in Python)."""
    return lambda doc: build(jcs(doc))


def _text_of(old: bytes, new: bytes) -> Callable[[dict[str, Any]], bytes]:
    def mutate(doc: dict[str, Any]) -> bytes:
        value = jcs(doc)
        assert old in value
        return value.replace(old, new, 1)

    return mutate


def _nested(arrays: int, inner: Any) -> Any:
    for _ in range(arrays):
        inner = [inner]
    return inner


def _flip(path: tuple[Any, ...], byte: int, *, resign: bool) -> Callable[[dict[str, Any]], bytes]:
    def mutate(doc: dict[str, Any]) -> bytes:
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = flip_b64(target[path[-1]], byte)
        return resign_classic(doc) if resign else jcs(doc)

    return mutate


def _fresh_id(mutate: Callable[[dict[str, Any]], bytes]) -> Callable[[dict[str, Any]], bytes]:
    def wrapped(doc: dict[str, Any]) -> bytes:
        doc["header"]["message_id"] = "00000000-0000-4000-8000-0000000000ff"
        return mutate(doc)

    return wrapped


def _unknown_signer(doc: dict[str, Any]) -> bytes:
    rogue = key("rogue", KeyAlg.ED25519)
    doc["header"]["sender_keys"] = [rogue.key_id]
    doc["signatures"] = [
        {
            "alg": "ed25519",
            "key_id": rogue.key_id,
            "signature": b64encode(rogue.sign(signed_bytes(doc))),
        }
    ]
    return jcs(doc)


def _unknown_sender(doc: dict[str, Any]) -> bytes:
    doc["header"]["sender"] = "police.nowhere"
    return _unknown_signer(doc)


def _wrong_agency(doc: dict[str, Any]) -> bytes:
    doc["header"]["sender_keys"] = [key(OUTSIDER, KeyAlg.ED25519).key_id]
    return resign_classic(doc, OUTSIDER)


def _drop_last_signature(doc: dict[str, Any]) -> bytes:
    doc["signatures"] = doc["signatures"][:1]
    return jcs(doc)


def _truncate(doc: dict[str, Any]) -> bytes:
    value = jcs(doc)
    return value[: len(value) // 2]


def _duplicate_key(doc: dict[str, Any]) -> bytes:
    return jcs(doc)[:-1] + b',"signatures":[]}'


def _float(doc: dict[str, Any]) -> bytes:
    return jcs(doc).replace(b'"schema_version":1', b'"schema_version":1.0')


def _duplicate_then_float(doc: dict[str, Any]) -> bytes:
    # The header (closed first) repeats a key; a view, later, holds a float.
    value = jcs(doc).replace(b'"envelope_version":1', b'"envelope_version":1,"envelope_version":1')
    return value.replace(b'"view_id":0', b'"view_id":0.0', 1)


def _float_where_a_key_repeats(doc: dict[str, Any]) -> bytes:
    # One object repeats a key and, before it closes, holds a float.
    return jcs(doc).replace(b'"schema_version":1', b'"schema_version":1,"schema_version":1.0')


def _oversized(doc: dict[str, Any]) -> bytes:
    value = jcs(doc)
    return value + b" " * (MAX_ENVELOPE_BYTES + 1 - len(value))


# name, base vector, mutation, receiver, expected outcome, evaluation overrides
Mutation = tuple[str, str, Callable[[dict[str, Any]], bytes], str, str, dict[str, Any]]
MUTATIONS: list[Mutation] = [
    *(
        (
            f"header-{field}-altered",
            "classic-two-views",
            _set(("header", field), value),
            FULL_TO,
            "verification.signature-invalid",
            {},
        )
        for field, value in [
            ("message_id", "00000000-0000-4000-8000-000000000001"),
            ("created_at", "2026-11-23T11:58:00.000Z"),
            ("area", "derbyshire"),
            ("message_type", "release-scheduled"),
            ("subject_ref", "0" * 64),
            ("isa_version", 2),
            ("purpose", "curiosity"),
            ("lawful_basis", "none"),
            ("classification", "OFFICIAL"),
        ]
    ),
    (
        "header-topic-altered",
        "classic-two-views",
        _set(("header", "topic"), "mappa.staffordshire.dtc.housing"),
        FULL_TO,
        "verification.signature-invalid",
        {},
    ),
    (
        "ciphertext-flipped-in-transit",
        "classic-two-views",
        _flip(("views", 0, "ciphertext"), 7, resign=False),
        FULL_TO,
        "verification.signature-invalid",
        {},
    ),
    (
        "ciphertext-flipped-and-resigned",
        "classic-two-views",
        _fresh_id(_flip(("views", 0, "ciphertext"), 7, resign=True)),
        FULL_TO,
        "decryption.failed",
        {},
    ),
    (
        "tag-flipped-and-resigned",
        "classic-two-views",
        _fresh_id(_flip(("views", 0, "ciphertext"), -1, resign=True)),
        FULL_TO,
        "decryption.failed",
        {},
    ),
    (
        "nonce-flipped-and-resigned",
        "classic-two-views",
        _fresh_id(_flip(("views", 0, "nonce"), 0, resign=True)),
        FULL_TO,
        "decryption.failed",
        {},
    ),
    (
        "commitment-flipped-and-resigned",
        "classic-two-views",
        _fresh_id(_flip(("views", 0, "key_commitment"), 0, resign=True)),
        FULL_TO,
        "decryption.failed",
        {},
    ),
    (
        "wrapped-key-flipped-and-resigned",
        "classic-two-views",
        _fresh_id(_flip(("recipients", 0, "wrapped_key"), 40, resign=True)),
        FULL_TO,
        "decryption.failed",
        {},
    ),
    (
        "wrapped-key-truncated-and-resigned",
        "classic-two-views",
        _fresh_id(_set(("recipients", 0, "wrapped_key"), b64encode(b"\x00" * 79))),
        FULL_TO,
        "decryption.failed",
        {"resign": True},
    ),
    (
        "signature-flipped",
        "classic-two-views",
        _flip(("signatures", 0, "signature"), 3, resign=False),
        FULL_TO,
        "verification.signature-invalid",
        {},
    ),
    (
        "unknown-suite",
        "classic-two-views",
        _set(("header", "suite"), "rot13"),
        FULL_TO,
        "envelope.unknown-suite",
        {},
    ),
    (
        "unknown-signing-key",
        "classic-two-views",
        _unknown_signer,
        FULL_TO,
        "directory.unknown-key",
        {},
    ),
    (
        "unknown-sender",
        "classic-two-views",
        _unknown_sender,
        FULL_TO,
        "directory.unknown-agency",
        {},
    ),
    (
        "signed-by-another-agency",
        "classic-two-views",
        _wrong_agency,
        FULL_TO,
        "envelope.sender-key-mismatch",
        {},
    ),
    (
        "revoked-signing-key",
        "classic-two-views",
        jcs,
        FULL_TO,
        "directory.key-revoked",
        {"directory": "revoked"},
    ),
    (
        "wrong-topic",
        "classic-two-views",
        jcs,
        FULL_TO,
        "envelope.topic-mismatch",
        {"topic": "mappa.staffordshire.dtc.housing"},
    ),
    (
        "from-the-future",
        "classic-two-views",
        jcs,
        FULL_TO,
        "envelope.clock-skew",
        {"now": "2026-11-23T11:50:00.000Z"},
    ),
    (
        "older-than-replay-window",
        "classic-two-views",
        jcs,
        FULL_TO,
        "envelope.stale",
        {"now": "2026-12-08T12:00:00.000Z"},
    ),
    ("not-for-this-agency", "classic-two-views", jcs, OUTSIDER, "not-addressed", {}),
    (
        "stale-and-not-for-this-agency",
        "classic-two-views",
        jcs,
        OUTSIDER,
        "not-addressed",
        {"now": "2026-12-08T12:00:00.000Z"},
    ),
    ("redelivered", "classic-two-views", jcs, FULL_TO, "duplicate", {"seen": "same"}),
    (
        "same-id-other-content",
        "classic-two-views",
        _set(("header", "purpose"), "changed"),
        FULL_TO,
        "envelope.replay-conflict",
        {"seen": "base", "resign": True},
    ),
    ("truncated", "classic-two-views", _truncate, FULL_TO, "schema.not-json", {}),
    ("oversized", "classic-two-views", _oversized, FULL_TO, "envelope.too-large", {}),
    (
        "duplicate-json-key",
        "classic-two-views",
        _duplicate_key,
        FULL_TO,
        "schema.duplicate-key",
        {},
    ),
    ("float-number", "classic-two-views", _float, FULL_TO, "schema.float", {}),
    (
        "pq-missing-ml-dsa-signature",
        "pq-hybrid-two-views",
        _drop_last_signature,
        FULL_TO,
        "envelope.signature-missing",
        {},
    ),
    (
        "pq-header-altered",
        "pq-hybrid-two-views",
        _set(("header", "purpose"), "curiosity"),
        REDACTED_TO,
        "verification.signature-invalid",
        {},
    ),
    (
        "pq-suite-downgraded",
        "pq-hybrid-two-views",
        _set(("header", "suite"), "classic"),
        FULL_TO,
        "envelope.signature-missing",
        {},
    ),
    # -- the order among schema.* codes (docs/envelope.md §2) --
    ("duplicate-key-in-an-earlier-object", "classic-two-views", _duplicate_then_float, FULL_TO,
     "schema.duplicate-key", {}),
    ("float-before-its-object-closes", "classic-two-views", _float_where_a_key_repeats,
     FULL_TO, "schema.float", {}),
    # -- the header's area has its pattern --
    (
        "area-not-matching-its-pattern",
        "classic-two-views",
        _set(("header", "area"), "Staffordshire"),
        FULL_TO,
        "envelope.malformed",
        {"resign": True},
    ),
    # -- the claimed time against the broker's append time --
    (
        "signed-by-a-superseded-key-appended-late",
        "classic-two-views",
        jcs,
        FULL_TO,
        "envelope.backdated",
        {
            "directory": "superseded",
            "record_time": "2026-11-23T12:04:30.000Z",
            "now": "2026-11-23T12:05:00.000Z",
        },
    ),
    (
        "signed-by-a-superseded-key-appended-in-time",
        "classic-two-views",
        jcs,
        FULL_TO,
        "full",
        {
            "directory": "superseded",
            "record_time": "2026-11-23T12:04:29.999Z",
            "now": "2026-11-23T12:05:00.000Z",
        },
    ),
    (
        "created-after-its-append-time",
        "classic-two-views",
        jcs,
        FULL_TO,
        "envelope.clock-skew",
        {"record_time": "2026-11-23T11:53:59.999Z"},
    ),
    (
        "appended-longer-than-the-window-after-creation",
        "classic-two-views",
        jcs,
        FULL_TO,
        "envelope.stale",
        {"record_time": "2026-12-07T11:59:00.001Z"},
    ),
    # -- replay memory is per sender --
    (
        "same-id-taken-from-another-sender",
        "classic-two-views",
        jcs,
        FULL_TO,
        "full",
        {"seen": "other-sender"},
    ),
    # -- the agreement the header names against the receiver's copy --
    (
        "agreement-version-not-held-yet",
        "classic-two-views",
        _set(("header", "isa_version"), 999),
        FULL_TO,
        "policy.agreement-version",
        {"resign": True},
    ),
    (
        "agreement-version-superseded",
        "classic-two-views",
        jcs,
        FULL_TO,
        "policy.agreement-superseded",
        {"agreement_version": 2},
    ),
    (
        "agreement-not-held",
        "classic-two-views",
        _set(("header", "isa_id"), "mappa-default.derbyshire"),
        FULL_TO,
        "policy.no-agreement",
        {"resign": True},
    ),
    # -- the directory binds suites and expires --
    (
        "suite-not-allowed-for-the-sender",
        "classic-two-views",
        jcs,
        FULL_TO,
        "directory.suite-not-allowed",
        {"directory": "pq-hybrid-only"},
    ),
    ("directory-expired", "classic-two-views", jcs, FULL_TO, "directory.expired",
     {"directory": "expired"}),
    # -- bounds across fields and exact sizes are shape: step 1, before any signature --
    ("view-id-twice", "classic-two-views", _set(("views", 1, "view_id"), 0), FULL_TO,
     "envelope.malformed", {}),
    ("view-kind-twice", "classic-two-views", _set(("views", 1, "kind"), "full"), FULL_TO,
     "envelope.malformed", {}),
    ("agency-addressed-twice", "classic-two-views",
     _set(("recipients", 1, "agency"), FULL_TO), FULL_TO, "envelope.malformed", {}),
    ("wrapped-key-for-a-missing-view", "classic-two-views",
     _set(("recipients", 1, "view_id"), 2), FULL_TO, "envelope.malformed", {}),
    ("nonce-of-11-bytes", "classic-two-views",
     _set(("views", 0, "nonce"), b64encode(bytes(11))), FULL_TO, "envelope.malformed", {}),
    ("key-commitment-of-31-bytes", "classic-two-views",
     _set(("views", 0, "key_commitment"), b64encode(bytes(31))), FULL_TO,
     "envelope.malformed", {}),
    ("supersedes-missing", "classic-two-views", _drop(("header", "supersedes")), FULL_TO,
     "envelope.malformed", {"resign": True}),
    # -- an area topic's scope is one some role has; the transfer topic is no area's --
    ("topic-of-a-scope-no-role-has", "classic-two-views",
     _set(("header", "topic"), "mappa.staffordshire.dtc.police"), FULL_TO,
     "envelope.topic-mismatch", {"resign": True, "topic": "mappa.staffordshire.dtc.police"}),
    # -- the directory's other refusals, the receiver's own suites and keys --
    ("sender-suspended", "classic-two-views", jcs, FULL_TO, "directory.agency-inactive",
     {"directory": "sender-suspended"}),
    ("signing-key-not-yet-valid", "classic-two-views", jcs, FULL_TO, "directory.key-expired",
     {"directory": "key-not-yet-valid"}),
    ("suite-not-allowed-by-the-receiver", "classic-two-views", jcs, FULL_TO,
     "envelope.suite-not-allowed", {"allowed_suites": ["pq-hybrid"]}),
    ("wrapped-for-a-key-the-receiver-does-not-hold", "classic-two-views",
     _set(("recipients", 0, "key_id"), "0" * 32), FULL_TO, "envelope.unknown-recipient-key",
     {"resign": True}),
    # -- the strict parse's other refusals (§2), in its order --
    ("byte-order-mark", "classic-two-views", lambda doc: b"\xef\xbb\xbf" + jcs(doc), FULL_TO,
     "schema.encoding", {}),
    ("lone-surrogate", "classic-two-views",
     _text_of(b'"purpose":"MAPPA risk management"', b'"purpose":"\\ud800"'), FULL_TO,
     "schema.encoding", {}),
    ("not-an-object", "classic-two-views", lambda doc: b"[" + jcs(doc) + b"]", FULL_TO,
     "schema.not-object", {}),
    ("not-a-number", "classic-two-views",
     _text_of(b'"schema_version":1', b'"schema_version":NaN'), FULL_TO, "schema.constant", {}),
    ("integer-beyond-2^53", "classic-two-views",
     _text_of(b'"schema_version":1', b'"schema_version":9007199254740992'), FULL_TO,
     "schema.integer-range", {}),
    ("integer-of-5000-digits", "classic-two-views",
     _text_of(b'"schema_version":1', b'"schema_version":' + b"9" * 5000), FULL_TO,
     "schema.integer-range", {}),
    ("integer-out-of-range-before-a-float", "classic-two-views",
     _text_of(b'"schema_version":1', b'"schema_version":-9007199254740992,"x":1.5'), FULL_TO,
     "schema.integer-range", {}),
    ("depth-13-counting-the-string", "classic-two-views",
     _set(("header", "purpose"), _nested(10, "x")), FULL_TO, "schema.too-deep", {}),
    ("depth-12-counting-the-string", "classic-two-views",
     _set(("header", "purpose"), _nested(9, "x")), FULL_TO, "envelope.malformed", {}),
    ("created-at-not-a-real-time", "classic-two-views",
     _set(("header", "created_at"), "2026-02-30T11:59:00.000Z"), FULL_TO, "envelope.malformed",
     {"resign": True}),
    ("created-at-not-a-real-time-in-an-unknown-suite", "classic-two-views",
     _both(_set(("header", "created_at"), "2026-02-30T11:59:00.000Z"),
           ("header", "suite"), "classic-2"), FULL_TO, "envelope.malformed", {"resign": True}),
    # -- nesting deeper than a recursive parser follows: the first problem still decides --
    ("deep-arrays-2000", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + _deep(b"1") + b"," + v[1:]), FULL_TO, "schema.too-deep",
     {}),
    ("deep-objects-2000", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"," + v[1:]),
     FULL_TO, "schema.too-deep", {}),
    ("float-at-the-bottom-of-deep-nesting", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + _deep(b"1.5") + b"," + v[1:]), FULL_TO, "schema.float",
     {}),
    ("constant-at-the-bottom-of-deep-nesting", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + _deep(b"-Infinity") + b"," + v[1:]), FULL_TO,
     "schema.constant", {}),
    ("integer-out-of-range-at-the-bottom-of-deep-nesting", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + _deep(b"9007199254740992") + b"," + v[1:]), FULL_TO,
     "schema.integer-range", {}),
    ("duplicate-key-at-the-bottom-of-deep-nesting", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + _deep(b'{"a":1,"a":2}') + b"," + v[1:]), FULL_TO,
     "schema.duplicate-key", {}),
    ("lone-surrogate-at-the-bottom-of-deep-nesting", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + _deep(b'"\\ud800"') + b"," + v[1:]), FULL_TO,
     "schema.too-deep", {}),
    ("syntax-error-after-deep-nesting", "classic-two-views",
     _bytes_of(lambda v: v[:-1] + b',"deep":' + _deep(b"1") + b"}]"), FULL_TO,
     "schema.not-json", {}),
    ("deep-nesting-never-closed", "classic-two-views",
     _bytes_of(lambda v: b'{"deep":' + b"[" * DEEP), FULL_TO, "schema.not-json", {}),
    ("float-before-deep-nesting-never-closed", "classic-two-views",
     _bytes_of(lambda v: b'{"f":1.5,"deep":' + b"[" * DEEP), FULL_TO, "schema.float", {}),
    ("deep-float-in-the-object-holding-a-duplicate", "classic-two-views",
     _bytes_of(lambda v: v[:-1] + b',"deep":' + _deep(b"1.5") + b',"deep":1}'), FULL_TO,
     "schema.float", {}),
    ("deep-array-not-an-object", "classic-two-views", _bytes_of(lambda v: _deep(b"1")),
     FULL_TO, "schema.not-object", {}),
    ("created-at-hour-24", "classic-two-views",
     _set(("header", "created_at"), "2026-11-22T24:00:00.000Z"), FULL_TO, "envelope.malformed",
     {"resign": True}),
    ("envelope-version-true", "classic-two-views", _set(("header", "envelope_version"), True),
     FULL_TO, "envelope.malformed", {"resign": True}),
    ("wrapped-key-of-1169-bytes", "classic-two-views",
     _set(("recipients", 1, "wrapped_key"), b64encode(bytes(1169))), FULL_TO,
     "envelope.malformed", {"resign": True}),
    ("wrapped-key-of-1168-bytes-in-classic", "classic-two-views",
     _set(("recipients", 0, "wrapped_key"), b64encode(bytes(1168))), FULL_TO,
     "decryption.failed", {"resign": True}),
    ("topic-of-the-transfer-desk", "classic-two-views",
     _set(("header", "topic"), "mappa.transfers"), FULL_TO, "envelope.topic-mismatch",
     {"resign": True, "topic": "mappa.transfers"}),
]  # fmt: skip


# -- invalid publications: the new ways an envelope of a publication is invalid (§3.6) --------

Valid = dict[str, dict[str, Any]]
PublicationMutate = Callable[[dict[str, Any], Valid], bytes]


def _proof(change: Callable[[dict[str, Any]], None]) -> PublicationMutate:
    """Change the ``publication`` member, nothing else (it is outside the signed bytes)."""

    def mutate(doc: dict[str, Any], valid: Valid) -> bytes:
        change(doc["publication"])
        return jcs(doc)

    return mutate


def _flip_path(step: int) -> Callable[[dict[str, Any]], None]:
    def change(proof: dict[str, Any]) -> None:
        proof["path"][step] = flip_b64(proof["path"][step], 0)

    return change


def _put(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(proof: dict[str, Any]) -> None:
        proof[field] = value

    return change


def _drop_publication(doc: dict[str, Any], valid: Valid) -> bytes:
    # A root signature, presented as a lone envelope's.
    del doc["publication"]
    return jcs(doc)


def _lone_into_a_tree(doc: dict[str, Any], valid: Valid) -> bytes:
    # A lone envelope's own signature, presented as a root's: a real two-leaf tree with
    # another lone envelope, whose root nobody signed.
    other = strict_json(valid["classic-correction"]["envelope"].encode())
    doc["publication"] = {
        "index": 0,
        "size": 2,
        "path": [b64encode(leaf_hash(signed_bytes(other)))],
    }
    return jcs(doc)


def _moved_from_another_publication(doc: dict[str, Any], valid: Valid) -> bytes:
    # An envelope of the two-envelope publication, with the proof and root signature of
    # the three-envelope one (same sender, same keys, same position and path length).
    donor = strict_json(valid["classic-publication-0"]["envelope"].encode())
    doc["publication"], doc["signatures"] = donor["publication"], donor["signatures"]
    return jcs(doc)


def _root_signed_by_another_key(doc: dict[str, Any], valid: Valid) -> bytes:
    # The right root, signed by another agency's key under the sender's key id.
    proof = doc["publication"]
    path = [b64decode(p) for p in proof["path"]]
    root = root_from_path(leaf_hash(signed_bytes(doc)), proof["index"], proof["size"], path)
    rogue = key(OUTSIDER, KeyAlg.ED25519)
    doc["signatures"][0]["signature"] = b64encode(
        rogue.sign(root_signed_bytes(root, proof["size"]))
    )
    return jcs(doc)


def _text(old: bytes, new: bytes) -> PublicationMutate:
    def mutate(doc: dict[str, Any], valid: Valid) -> bytes:
        value = jcs(doc)
        if old not in value:
            raise AssertionError(f"{old!r} is not in the base vector")
        return value.replace(old, new, 1)

    return mutate


def _non_canonical_hash(proof: dict[str, Any]) -> None:
    # The same 32 bytes, spelt with a padding bit set: base64 decoders accept it.
    text = proof["path"][0]
    proof["path"][0] = text[:42] + chr(ord(text[42]) + 1) + "="


HASH_31 = b64encode(b"\x00" * 31)
HASH_33 = b64encode(b"\x00" * 33)

# name, base vector, mutation, receiver, expected outcome
PublicationMutation = tuple[str, str, PublicationMutate, str, str]
PUBLICATION_MUTATIONS: list[PublicationMutation] = [
    ("publication-path-hash-altered", "classic-publication-0", _proof(_flip_path(0)), FULL_TO,
     "verification.signature-invalid"),
    ("pq-publication-path-hash-altered", "pq-hybrid-publication-1", _proof(_flip_path(1)),
     REDACTED_TO, "verification.signature-invalid"),
    ("publication-path-too-short", "classic-publication-0",
     _proof(lambda p: p.update(path=p["path"][:1])), FULL_TO, "envelope.malformed"),
    ("publication-path-too-long", "classic-publication-2",
     _proof(lambda p: p.update(path=p["path"] * 2)), FULL_TO, "envelope.malformed"),
    ("publication-path-empty", "classic-publication-2", _proof(_put("path", [])), FULL_TO,
     "envelope.malformed"),
    ("publication-path-hash-of-31-bytes", "classic-publication-2",
     _proof(_put("path", [HASH_31])), FULL_TO, "envelope.malformed"),
    ("publication-path-hash-of-33-bytes", "classic-publication-2",
     _proof(_put("path", [HASH_33])), FULL_TO, "envelope.malformed"),
    ("publication-path-hash-not-canonical-base64", "classic-publication-2",
     _proof(_non_canonical_hash), FULL_TO, "envelope.malformed"),
    ("publication-index-out-of-range", "classic-publication-2", _proof(_put("index", 3)),
     FULL_TO, "envelope.malformed"),
    ("publication-index-negative", "classic-publication-0", _proof(_put("index", -1)),
     FULL_TO, "envelope.malformed"),
    ("publication-index-of-another-envelope", "classic-publication-0",
     _proof(_put("index", 1)), FULL_TO, "verification.signature-invalid"),
    ("publication-size-one", "classic-publication-of-two-0", _proof(_put("size", 1)),
     FULL_TO, "envelope.malformed"),
    ("publication-size-over-the-cap", "classic-publication-0", _proof(_put("size", 257)),
     FULL_TO, "envelope.malformed"),
    ("publication-size-not-the-signed-one", "classic-publication-0", _proof(_put("size", 4)),
     FULL_TO, "verification.signature-invalid"),
    ("publication-size-a-string", "classic-publication-0", _proof(_put("size", "3")),
     FULL_TO, "envelope.malformed"),
    ("publication-root-signed-by-another-key", "classic-publication-0",
     _root_signed_by_another_key, FULL_TO, "verification.signature-invalid"),
    ("root-signature-presented-as-a-lone-envelope", "classic-publication-0",
     _drop_publication, FULL_TO, "verification.signature-invalid"),
    ("pq-root-signature-presented-as-a-lone-envelope", "pq-hybrid-publication-0",
     _drop_publication, FULL_TO, "verification.signature-invalid"),
    ("lone-signature-presented-as-a-root", "classic-two-views", _lone_into_a_tree, FULL_TO,
     "verification.signature-invalid"),
    ("publication-envelope-moved-from-another-publication", "classic-publication-of-two-0",
     _moved_from_another_publication, FULL_TO, "verification.signature-invalid"),
    ("publication-unknown-member", "classic-publication-0", _proof(_put("root", "00" * 32)),
     FULL_TO, "envelope.malformed"),
    ("publication-null", "classic-publication-0",
     lambda doc, valid: jcs({**doc, "publication": None}), FULL_TO, "envelope.malformed"),
    ("publication-member-twice", "classic-publication-0",
     _text(b',"recipients":', b',"publication":{"index":0},"recipients":'), FULL_TO,
     "schema.duplicate-key"),
    ("publication-index-twice", "classic-publication-0",
     _text(b'{"index":0,', b'{"index":0,"index":0,'), FULL_TO, "schema.duplicate-key"),
]  # fmt: skip


def build_invalid(valid: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name, base, mutate, receiver, expect, context in MUTATIONS:
        doc = strict_json(valid[base]["envelope"].encode())
        value = mutate(doc)
        if context.get("resign"):
            value = resign_classic(strict_json(value))
        vector: dict[str, Any] = {
            "name": name,
            "base": base,
            "receiver": receiver,
            "expect": expect,
        }
        vector.update({k: v for k, v in context.items() if k != "resign"})
        out.append(_with_envelope(vector, value))
    for name, base, change, receiver, expect in PUBLICATION_MUTATIONS:
        value = change(strict_json(valid[base]["envelope"].encode()), valid)
        vector = {"name": name, "base": base, "receiver": receiver, "expect": expect}
        if valid[base]["topic"] != TOPIC:
            vector["topic"] = valid[base]["topic"]
        out.append(_with_envelope(vector, value))
    return out


def _with_envelope(vector: dict[str, Any], value: bytes) -> dict[str, Any]:
    if len(value) > MAX_ENVELOPE_BYTES:
        # A megabyte of spaces is a recipe, not data: the envelope, then this many.
        vector["envelope"] = value.rstrip(b" ").decode()
        vector["append_spaces"] = len(value) - len(value.rstrip(b" "))
    else:
        vector["envelope"] = value.decode()
    return vector


# -- evaluation -----------------------------------------------------------------------------------


def evaluate(
    data: dict[str, Any], vector: dict[str, Any], receiver: str, *, ahead: bool = False
) -> str:
    """What a receiver does with the vector: a view kind, a handling, or an error code.
    ``ahead``: as a gateway with workers does, with the record parsed, verified and
    opened ahead (``broker.gateway.preparing``) and the checks run on those results."""
    governance = key("governance", KeyAlg.ED25519).public
    directories = {
        name: Directory.verify(json.dumps(d).encode(), governance_key=governance)
        for name, d in data["directories"].items()
    }
    directory = directories[vector.get("directory", "default")]
    verifier = EnvelopeVerifier(
        directory=directory,
        allowed_suites=frozenset(vector.get("allowed_suites", SUITES)),
        clock_skew=SKEW,
        replay_window=WINDOW,
        topic_in_area=TOPICS.in_area,
    )
    value = vector["envelope"].encode() + b" " * vector.get("append_spaces", 0)
    base = {v["name"]: v for v in data["valid"]}.get(vector.get("base", ""))
    # Replay memory, keyed by sender and message id (docs/envelope.md step 8).
    seen: dict[tuple[str, str], str] = {}
    if "seen" in vector and base is not None:
        earlier = verifier.verify(
            base["envelope"].encode(),
            topic=base["topic"],
            record_time=parse_timestamp(base["record_time"]),
        )
        sender = OUTSIDER if vector["seen"] == "other-sender" else earlier.header.sender
        digest = "0" * 64 if vector["seen"] == "other-sender" else earlier.digest
        seen[(sender, earlier.header.message_id)] = digest
    private_keys = {k.key_id: k for k in (key(receiver, suite_named(n).kem_key) for n in SUITES)}
    prepared = (
        prepare(
            [value],
            agency=receiver,
            signing_keys={
                k.key_id: public_key_of(k) for a in directory.document.agencies for k in a.keys
            },
            decryption_key=private_keys.get,
        )[0]
        if ahead
        else None
    )
    try:
        verified = verifier.verify(
            value,
            topic=vector.get("topic", TOPIC),
            record_time=parse_timestamp(vector.get("record_time", RECEIVED_AT)),
            prepared=prepared,
        )
        # Step 7 before step 6: freshness judges only what is addressed to the receiver.
        if not verified.addressed_to(receiver):
            return "not-addressed"
        verifier.check_fresh(verified, parse_timestamp(vector.get("now", NOW)))
        h = verified.header
        previous = seen.get((h.sender, h.message_id))
        if previous is not None:
            return "duplicate" if previous == verified.digest else "envelope.replay-conflict"
        held = (AGREEMENT[0], vector.get("agreement_version", AGREEMENT[1]))
        check_agreement(held, isa_id=h.isa_id, isa_version=h.isa_version)
        suite = suite_named(verified.header.suite)
        private = key(receiver, suite.kem_key)
        opened = open_view(
            verified,
            agency=receiver,
            keys={private.key_id: private},
            suite=suite,
            opened=prepared.opened if prepared is not None else None,
        )
    except MappaError as exc:
        return exc.code
    if opened.plaintext != plaintexts()[opened.kind]:
        return "wrong-plaintext"
    return opened.kind.value


# -- the file -------------------------------------------------------------------------------------


def about() -> dict[str, Any]:
    return {
        "_about": (
            "mappa-broker envelope test vectors. Keys: PrivateKey.from_seed(alg, "
            "SHAKE256('" + SEED_LABEL + "|' + owner + '|' + alg), its first seed_bytes[alg] "
            "bytes); the subject key likewise with owner 'deployment' and alg 'subject-key'. "
            "The directories are signed by the governance key (governance_public_key); the "
            "receivers hold the agreement named in 'agreement' unless a vector names another "
            "'agreement_version'. "
            "Valid vectors keep the random parts of sealing (data keys; the envelope) and every "
            "derived value for a hand check against docs/envelope.md. Valid vectors with a "
            "'publication' are the envelopes of one publication, in index order (§3.6): its "
            "tree is under 'publications', each envelope's inclusion steps under "
            "derived.publication. Invalid vectors are "
            "deterministic mutations of a valid one; 'expect' is the receiver's outcome: a view "
            "kind, 'not-addressed', 'duplicate', or the refusal code. A vector's 'record_time' "
            "is the broker's append time; 'seen': 'other-sender' means another agency's "
            "message with the same id was taken first. Regenerate with `make "
            "vectors`; check with `python -m tests.vectors.generate`."
        ),
        "now": NOW,
        "subject_pnc": PNC,
        "plaintexts": {k.value: v.decode() for k, v in plaintexts().items()},
    }


def receiver_settings() -> dict[str, Any]:
    """How every vector's receiver is set, so that another implementation need not guess:
    what a vector that names no topic, append time, clock or directory is judged with, the
    deployment's settings that steps 2, 5 and 6 read, and what a vector's 'seen' means."""
    return {
        "_about": (
            "A vector without 'topic', 'record_time' (the broker's append time), 'now' (the "
            "receiver's clock) or 'directory' (a key of 'directories') takes the value here. "
            "Step 2 allows 'allowed_suites'; step 5 binds a topic to an area as "
            "'<topic_namespace>.<area>.<scope>'; step 6 allows 'clock_skew_seconds' ahead and "
            "'replay_window_seconds' back; a vector's 'allowed_suites' replaces the receiver's "
            "for that vector. 'seen' names the receiver's replay memory (step 8) "
            "before the vector arrives: 'same' and 'base' mean the vector's base was taken "
            "first (verified with the base's own topic and record_time, remembered under its "
            "sender and message id with its digest); 'other-sender' means agency "
            "'other_sender' took a message with the base's id first (with another digest), "
            "which does not make the vector a replay."
        ),
        "topic": TOPIC,
        "record_time": RECEIVED_AT,
        "now": NOW,
        "directory": "default",
        "allowed_suites": sorted(SUITES),
        "topic_namespace": TOPICS.namespace,
        "clock_skew_seconds": int(SKEW.total_seconds()),
        "replay_window_seconds": int(WINDOW.total_seconds()),
        "other_sender": OUTSIDER,
    }


def trust_material() -> dict[str, Any]:
    """What a reader needs besides the envelopes, to check them without our code: the
    seed sizes, the governance key that signs the directories, the agreement the receivers
    hold, and the subject key with one reference it gives (docs/envelope.md §2.1)."""
    governance = key("governance", KeyAlg.ED25519)
    sk = subject_key()
    return {
        "seed_bytes": {
            **{alg.value: PrivateKey.SEED_BYTES[alg] for alg in KeyAlg},
            "subject-key": SUBJECT_KEY_BYTES,
        },
        "governance_key_id": governance.key_id,
        "governance_public_key": b64encode(governance.public.raw),
        "agreement": {"isa_id": AGREEMENT[0], "isa_version": AGREEMENT[1]},
        "receiver": receiver_settings(),
        "subject_ref": {
            "subject_key": sk.export().hex(),
            "pnc_id": PNC,
            "hmac_message": (b"mappa-subject-v1\x00" + PNC.encode("ascii")).hex(),
            "subject_ref": sk.reference(PNC),
        },
    }


def fresh() -> dict[str, Any]:
    valid = [
        seal_valid("classic-two-views", "classic"),
        seal_valid("pq-hybrid-two-views", "pq-hybrid"),
        seal_valid(
            "classic-correction", "classic", supersedes="0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
        ),
        *seal_publication_vectors("classic-publication", "classic", 3),
        *seal_publication_vectors("pq-hybrid-publication", "pq-hybrid", 3),
        *seal_publication_vectors("classic-publication-of-two", "classic", 2),
    ]
    data: dict[str, Any] = about()
    data["directories"] = {n: d.model_dump(mode="json") for n, d in signed_directories().items()}
    data.update(trust_material())
    data["valid"] = valid
    data["publications"] = publications(valid)
    data["invalid"] = build_invalid({v["name"]: v for v in valid})
    return data


def check(data: dict[str, Any]) -> list[str]:
    problems = []
    if {k: data[k] for k in ("_about", "now", "subject_pnc", "plaintexts")} != about():
        problems.append("header fields differ (seed label, clock, subject or plaintexts changed)")
    material = trust_material()
    if {k: data.get(k) for k in material} != material:
        problems.append("trust material differs (seed sizes, governance key, agreement, subject)")
    expected_dirs = {n: d.model_dump(mode="json") for n, d in signed_directories().items()}
    if data["directories"] != expected_dirs:
        problems.append("directories differ from those the seeds produce")
    if data.get("publications") != publications(data["valid"]):
        problems.append("publications differ from their envelopes' tree (leaves, root, bytes)")
    texts = plaintexts()
    for vector in data["valid"]:
        problems += [f"{vector['name']}: {p}" for p in check_valid(vector, texts)]
        for receiver, expect in vector["expect"].items():
            got = evaluate(data, vector, receiver)
            if got != expect:
                problems.append(f"{vector['name']}: {receiver} got {got}, vector says {expect}")
    rebuilt = build_invalid({v["name"]: v for v in data["valid"]})
    if [v["name"] for v in rebuilt] != [v["name"] for v in data["invalid"]]:
        problems.append("the list of invalid vectors changed")
    for stored, again in zip(data["invalid"], rebuilt, strict=False):
        if stored != again:
            problems.append(f"{stored['name']}: mutation no longer reproduces the stored vector")
        got = evaluate(data, stored, stored["receiver"])
        if got != stored["expect"]:
            problems.append(f"{stored['name']}: receiver got {got}, vector says {stored['expect']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="regenerate and rewrite the file")
    args = parser.parse_args(argv)
    from tests.vectors import receipts  # it builds on this module

    if args.fresh:
        FILE.write_text(json.dumps(fresh(), indent=1, ensure_ascii=False) + "\n")
        data = json.loads(FILE.read_text())
        problems = check(data)
        print(f"wrote {FILE} ({len(data['valid'])} valid, {len(data['invalid'])} invalid)")
        # The receipts answer an envelope of this file: new envelopes, new receipts.
        answers = receipts.write()
        problems += receipts.check(answers)
        print(f"wrote {receipts.FILE} ({len(answers['valid'])} valid, "
              f"{len(answers['invalid'])} invalid)")  # fmt: skip
    else:
        problems = check(json.loads(FILE.read_text()))
        problems += [
            f"receipts: {p}" for p in receipts.check(json.loads(receipts.FILE.read_text()))
        ]
    for p in problems:
        print(f"drift: {p}", file=sys.stderr)
    if not problems and not args.fresh:
        print(f"{FILE.name}, {receipts.FILE.name}: no drift")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
