"""Receipt test vectors (docs/receipts.md): build them, check them for drift, evaluate them.

    python -m tests.vectors.generate           checks this file's vectors too
    python -m tests.vectors.generate --fresh   rewrites both vector files

Keys come from the envelope vectors' seeds (``tests.vectors.generate.key``), the ledger's
with owner ``ledger``. Ed25519 is deterministic, so every receipt here is rebuilt exactly
from the seeds; the one random input is the envelope the receipts answer, the envelope
vectors' ``classic-two-views``, copied here whole so this file stands alone (a fresh
envelope file means a fresh receipt file: the drift check says so).

The reader of every vector is the police, the envelope's sender: what it sent is that
envelope, to probation (full view) and to the prison (redacted view). Each vector says
what the reader makes of one record on the receipts topic: ``accepted``, ``not-addressed``
(passed over: routed to another agency, or not a receipt at all) or the refusal code.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from broker.crypto.encoding import b64decode, b64encode, jcs, pae, strict_json
from broker.crypto.envelope import envelope_digest
from broker.crypto.keys import PrivateKey
from broker.crypto.signing import DELIVERY_RECEIPT_PAYLOAD, LEDGER_RECEIPT_PAYLOAD
from broker.errors import MappaError
from broker.gateway.receipts import (
    DELIVERY_KIND,
    MAX_RECEIPT_BYTES,
    addressee,
    delivery_receipt_record,
    ledger_receipt_record,
    sent_row,
    verify_delivery_receipt,
    verify_ledger_receipt,
)
from broker.gateway.tracking import Tracking
from broker.trust.directory import Directory, sign_directory
from schemas.common import parse_timestamp
from schemas.directory import AgencyEntry, KeyAlg, SignedDirectory
from schemas.receipt import (
    MAX_RECEIPTED_EVENTS,
    MAX_SAFE_INTEGER,
    DeliveryReceipt,
    LedgerReceipt,
    ReceiptOutcome,
    RefusedEvent,
)
from tests.vectors import generate
from tests.vectors.generate import FULL_TO, OUTSIDER, REDACTED_TO, REVOKED_AT, SENDER, key

FILE = Path(__file__).with_name("receipt-vectors.json")
ENVELOPE_VECTOR = "classic-two-views"
READER = SENDER
LEDGER = "ledger"
RECEIPT_TIME = "2026-11-23T12:00:00.250Z"
RECORD_TIME = "2026-11-23T12:00:01.000Z"
# In the "recipient-key-revoked" directory probation's Ed25519 key is revoked at
# REVOKED_AT; a receipt it signed and the broker took before then still stands.
BEFORE_REVOCATION = "2026-11-23T10:30:00.000Z"
BEFORE_REVOCATION_RECORD = "2026-11-23T10:30:01.000Z"
AFTER_REVOCATION_RECORD = "2026-11-23T11:30:00.000Z"
# Audit event ids the ledger receipts name (UUID version 7, as adapters make them).
HELD = ("019ab1c0-0000-7000-8000-000000000001", "019ab1c0-0000-7000-8000-000000000002")
REFUSED_EVENT = "019ab1c0-0000-7000-8000-000000000003"
OTHER_MESSAGE = "0d6f3c1e-2b4a-4c8d-9e0f-1a2b3c4d5e6f"


# -- trust material -------------------------------------------------------------------------------


def ledger_key() -> PrivateKey:
    return key(LEDGER, KeyAlg.ED25519)


def directories() -> dict[str, SignedDirectory]:
    """The envelope vectors' directory, and a newer one in which probation's Ed25519 key
    is revoked."""
    default = generate.directory_document(revoked=False)
    agencies = tuple(
        _signing_key_revoked(a) if a.agency_id == FULL_TO else a for a in default.agencies
    )
    revoked = default.model_copy(update={"version": 2, "agencies": agencies})
    governance = key("governance", KeyAlg.ED25519)
    return {
        "default": sign_directory(default, governance),
        "recipient-key-revoked": sign_directory(revoked, governance),
    }


def _signing_key_revoked(agency: AgencyEntry) -> AgencyEntry:
    keys = tuple(
        k.model_copy(update={"revoked_at": REVOKED_AT, "revocation_reason": "test vector"})
        if k.alg is KeyAlg.ED25519
        else k
        for k in agency.keys
    )
    return agency.model_copy(update={"keys": keys})


def sent_envelope() -> str:
    """The envelope the receipts answer: the envelope vectors' ``classic-two-views``."""
    data = json.loads(generate.FILE.read_text())
    return str(next(v for v in data["valid"] if v["name"] == ENVELOPE_VECTOR)["envelope"])


# -- valid vectors --------------------------------------------------------------------------------


def delivery(
    recipient: str, outcome: ReceiptOutcome, code: str | None, time: str = RECEIPT_TIME
) -> bytes:
    header = strict_json(sent_envelope().encode())["header"]
    receipt = DeliveryReceipt(
        message_id=header["message_id"],
        envelope_digest=envelope_digest(sent_envelope().encode()),
        sender=header["sender"],
        recipient=recipient,
        topic=header["topic"],
        outcome=outcome,
        reason_code=code,
        time=time,
    )
    return delivery_receipt_record(receipt, key(recipient, KeyAlg.ED25519))


def ledger() -> bytes:
    receipt = LedgerReceipt(
        agency=READER,
        held=HELD,
        refused=(RefusedEvent(event_id=REFUSED_EVENT, reason_code="audit.wrong-signer"),),
        tree_size=365,
        time=RECEIPT_TIME,
    )
    return ledger_receipt_record(receipt, ledger_key())


def valid_vectors() -> list[dict[str, Any]]:
    delivered = delivery(FULL_TO, ReceiptOutcome.DELIVERED, None)
    return [
        {"name": "delivered", "value": delivered.decode()},
        {
            "name": "refused",
            "value": delivery(
                REDACTED_TO, ReceiptOutcome.REFUSED, "policy.breach-view-too-rich"
            ).decode(),
        },
        {"name": "ledger", "value": ledger().decode()},
        # Key order and whitespace are not part of the format: the same receipt in JCS.
        {"name": "delivered-written-canonically", "value": jcs(strict_json(delivered)).decode()},
        {
            "name": "signed-before-revocation",
            "directory": "recipient-key-revoked",
            "record_time": BEFORE_REVOCATION_RECORD,
            "value": delivery(FULL_TO, ReceiptOutcome.DELIVERED, None, BEFORE_REVOCATION).decode(),
        },
    ]


def derived(value: str) -> dict[str, Any]:
    """What a hand check needs: the payload type, the canonical receipt, the signed bytes
    (``PAE``), and the signer's public key."""
    doc = strict_json(value.encode())
    kind = doc["receipt"]["kind"]
    payload = DELIVERY_RECEIPT_PAYLOAD if kind == DELIVERY_KIND else LEDGER_RECEIPT_PAYLOAD
    signer = _as_recipient(doc) if kind == DELIVERY_KIND else ledger_key()
    return {
        "payload_type": payload,
        "receipt_jcs": jcs(doc["receipt"]).decode(),
        "signed_bytes": pae(payload, jcs(doc["receipt"])).decode(),
        "signer_public_key": b64encode(signer.public.raw),
    }


# -- invalid vectors: deterministic mutations of the valid ones ----------------------------------

Mutate = Callable[[dict[str, Any]], bytes]


def compact(doc: dict[str, Any]) -> bytes:
    """A record value as the product writes one: compact, fields in the document's order."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def sign(doc: dict[str, Any], signer: PrivateKey, payload: str | None = None) -> bytes:
    """``doc`` signed again over its receipt as it now is, by ``signer`` (named as the
    signer), with ``payload`` (else the payload type of the receipt's kind)."""
    delivery_kind = doc["receipt"].get("kind") == DELIVERY_KIND
    payload = payload or (DELIVERY_RECEIPT_PAYLOAD if delivery_kind else LEDGER_RECEIPT_PAYLOAD)
    doc["key_id"] = signer.key_id
    doc["signature"] = b64encode(signer.sign(pae(payload, jcs(doc["receipt"]))))
    return compact(doc)


def _as_recipient(doc: dict[str, Any]) -> PrivateKey:
    return key(doc["receipt"]["recipient"], KeyAlg.ED25519)


def _set(*changes: tuple[str, Any], signer: str | None = "recipient") -> Mutate:
    """Set receipt fields, then sign again as the recipient (``signer`` "recipient"), as
    the ledger (``LEDGER``) or with an agency's Ed25519 key; or, ``signer`` None, not."""

    def mutate(doc: dict[str, Any]) -> bytes:
        for name, value in changes:
            doc["receipt"][name] = value
        if signer is None:
            return compact(doc)
        if signer == "recipient":
            return sign(doc, _as_recipient(doc))
        if signer == LEDGER:
            return sign(doc, ledger_key())
        return sign(doc, key(signer, KeyAlg.ED25519))

    return mutate


def _drop(name: str, signer: str = "recipient") -> Mutate:
    def mutate(doc: dict[str, Any]) -> bytes:
        del doc["receipt"][name]
        return sign(doc, ledger_key() if signer == LEDGER else _as_recipient(doc))

    return mutate


def _flip_signature(doc: dict[str, Any]) -> bytes:
    raw = bytearray(b64decode(doc["signature"]))
    raw[5] ^= 0x01
    doc["signature"] = b64encode(bytes(raw))
    return compact(doc)


def _signed_by(agency: str) -> Mutate:
    return lambda doc: sign(doc, key(agency, KeyAlg.ED25519))


def _named_key(named: str, alg: KeyAlg, signer: PrivateKey) -> Mutate:
    """Names ``named``'s ``alg`` key as the signer, signs with ``signer``."""

    def mutate(doc: dict[str, Any]) -> bytes:
        sign(doc, signer)
        doc["key_id"] = key(named, alg).key_id
        return compact(doc)

    return mutate


def _payload(payload: str, signer: Callable[[dict[str, Any]], PrivateKey]) -> Mutate:
    return lambda doc: sign(doc, signer(doc), payload)


def _unknown_recipient(doc: dict[str, Any]) -> bytes:
    doc["receipt"]["recipient"] = "health.nowhere"
    return sign(doc, key("rogue", KeyAlg.ED25519))


def _text(old: str, new: str) -> Mutate:
    """Edit the record's text (for what a JSON value cannot hold: a duplicate key, a
    float written as such)."""

    def mutate(doc: dict[str, Any]) -> bytes:
        text = compact(doc).decode()
        assert text.count(old) == 1, old
        return text.replace(old, new).encode()

    return mutate


def _upper_digest(doc: dict[str, Any]) -> bytes:
    doc["receipt"]["envelope_digest"] = doc["receipt"]["envelope_digest"].upper()
    return sign(doc, _as_recipient(doc))


def _newline_in_id(doc: dict[str, Any]) -> bytes:
    # A pattern's "$" matches before a final newline in some regex engines; not here.
    doc["receipt"]["message_id"] += "\n"
    return sign(doc, _as_recipient(doc))


def _too_deep(doc: dict[str, Any]) -> bytes:
    nested: list[Any] = []
    for _ in range(11):
        nested = [nested]
    doc["receipt"]["note"] = nested
    return compact(doc)


def _truncate(doc: dict[str, Any]) -> bytes:
    text = compact(doc)
    return text[: len(text) // 2]


def _oversized(doc: dict[str, Any]) -> bytes:
    text = compact(doc)
    return text + b" " * (MAX_RECEIPT_BYTES + 1 - len(text))


def _unsafe_tree_size(doc: dict[str, Any]) -> bytes:
    # No signature can be made: JCS has no form for this number. Refused before that.
    doc["receipt"]["tree_size"] = MAX_SAFE_INTEGER + 1
    return compact(doc)


def _digits_tree_size(doc: dict[str, Any]) -> bytes:
    # JSON all the same: routed, then refused, never passed over for want of a parser
    # that holds it (Python's refuses more than 4,300 digits).
    text = compact(doc).decode()
    assert text.count('"tree_size":365') == 1
    return text.replace('"tree_size":365', '"tree_size":' + "9" * 5000).encode()


def _in_range_then(doc: dict[str, Any], first: str, then: str) -> bytes:
    """The receipt's version as ``first``, and a member ``note`` after the receipt as
    ``then``: which of two faults the one pass over the text meets first."""
    text = compact(doc).decode()
    assert text.count('"receipt_version":1,') == 1
    text = text.replace('"receipt_version":1,', f'"receipt_version":{first},')
    return (text[:-1] + f',"note":{then}}}').encode()


def _nested_note(arrays: int) -> Callable[[dict[str, Any]], bytes]:
    """The receipt with a member ``note`` of ``arrays`` nested arrays: the deepest is
    ``arrays + 1`` deep, the record's object being 1."""

    def mutate(doc: dict[str, Any]) -> bytes:
        return compact(doc)[:-1] + b',"note":' + b"[" * arrays + b"]" * arrays + b"}"

    return mutate


def _byte_order_mark(doc: dict[str, Any]) -> bytes:
    return codecs.BOM_UTF8 + compact(doc)


def _lone_surrogate(doc: dict[str, Any]) -> bytes:
    # Only an escape can spell one; it has no UTF-8 form, so no canonical one.
    text = compact(doc).decode()
    assert text.count('"topic":"') == 1
    return text.replace('"topic":"', '"topic":"\\ud800', 1).encode()


def _many_held(doc: dict[str, Any]) -> bytes:
    doc["receipt"]["held"] = [
        f"019ab1c0-0000-7000-8000-{n:012x}" for n in range(MAX_RECEIPTED_EVENTS + 1)
    ]
    return sign(doc, ledger_key())


# name, base vector, mutation, expected outcome, context (directory, record_time, ledger_key)
MUTATIONS: list[tuple[str, str, Mutate, str, dict[str, Any]]] = [
    ("signature-flipped", "delivered", _flip_signature, "verification.signature-invalid", {}),
    (
        "outcome-altered-in-transit",
        "delivered",
        _set(("outcome", "refused"), ("reason_code", "policy.no-agreement"), signer=None),
        "verification.signature-invalid",
        {},
    ),
    ("signed-by-another-agency", "delivered", _signed_by(OUTSIDER), "receipt.wrong-signer", {}),
    ("signed-by-the-sender", "delivered", _signed_by(SENDER), "receipt.wrong-signer", {}),
    (
        "names-the-recipients-encryption-key",
        "delivered",
        _named_key(FULL_TO, KeyAlg.X25519, key(FULL_TO, KeyAlg.ED25519)),
        "receipt.wrong-signer",
        {},
    ),
    (
        "names-the-recipients-key-signed-by-another",
        "delivered",
        _named_key(FULL_TO, KeyAlg.ED25519, key(OUTSIDER, KeyAlg.ED25519)),
        "verification.signature-invalid",
        {},
    ),
    (
        "signed-as-a-ledger-receipt",
        "delivered",
        _payload(LEDGER_RECEIPT_PAYLOAD, _as_recipient),
        "verification.signature-invalid",
        {},
    ),
    ("unknown-recipient", "delivered", _unknown_recipient, "directory.unknown-agency", {}),
    (
        "revoked-key",
        "delivered",
        compact,
        "directory.key-revoked",
        {"directory": "recipient-key-revoked"},
    ),
    (
        "revoked-key-backdated",
        "signed-before-revocation",
        compact,
        "directory.key-revoked",
        {"directory": "recipient-key-revoked", "record_time": AFTER_REVOCATION_RECORD},
    ),
    (
        "before-the-key-was-valid",
        "delivered",
        _set(("time", "2025-12-31T23:59:59.999Z")),
        "directory.key-expired",
        {},
    ),
    (
        "message-never-sent",
        "delivered",
        _set(("message_id", OTHER_MESSAGE)),
        "receipt.unknown-message",
        {},
    ),
    (
        "from-an-agency-it-was-not-sent-to",
        "delivered",
        _set(("recipient", OUTSIDER)),
        "receipt.unknown-message",
        {},
    ),
    (
        "another-envelope-under-that-id",
        "delivered",
        _set(("envelope_digest", hashlib.sha256(b"another envelope").hexdigest())),
        "receipt.digest-mismatch",
        {},
    ),
    ("for-another-sender", "delivered", _set(("sender", REDACTED_TO)), "not-addressed", {}),
    ("not-a-receipt-kind", "delivered", _set(("kind", "mappa.audit-event")), "not-addressed", {}),
    ("truncated", "delivered", _truncate, "not-addressed", {}),
    ("oversized", "delivered", _oversized, "receipt.too-large", {}),
    (
        "duplicate-key",
        "delivered",
        _text('"outcome":"delivered"', '"outcome":"refused","outcome":"delivered"'),
        "schema.duplicate-key",
        {},
    ),
    (
        "float-number",
        "delivered",
        _text('"receipt_version":1', '"receipt_version":1.0'),
        "schema.float",
        {},
    ),
    ("nested-too-deep", "delivered", _too_deep, "schema.too-deep", {}),
    ("reason-code-left-out", "delivered", _drop("reason_code"), "receipt.malformed", {}),
    ("version-as-true", "delivered", _set(("receipt_version", True)), "receipt.malformed", {}),
    ("unknown-field", "delivered", _set(("note", "x")), "receipt.malformed", {}),
    ("refused-without-a-code", "refused", _set(("reason_code", None)), "receipt.malformed", {}),
    (
        "delivered-with-a-code",
        "delivered",
        _set(("reason_code", "policy.no-agreement")),
        "receipt.malformed",
        {},
    ),
    (
        "reason-code-not-a-code",
        "refused",
        _set(("reason_code", "Policy breach")),
        "receipt.malformed",
        {},
    ),
    (
        "not-a-real-time",
        "delivered",
        _set(("time", "2026-02-30T12:00:00.000Z")),
        "receipt.malformed",
        {},
    ),
    (
        "time-without-milliseconds",
        "delivered",
        _set(("time", "2026-11-23T12:00:00Z")),
        "receipt.malformed",
        {},
    ),
    ("digest-in-upper-case", "delivered", _upper_digest, "receipt.malformed", {}),
    ("message-id-with-a-newline", "delivered", _newline_in_id, "receipt.malformed", {}),
    ("ledger-signature-flipped", "ledger", _flip_signature, "verification.signature-invalid", {}),
    ("ledger-signed-by-an-agency", "ledger", _signed_by(SENDER), "receipt.wrong-signer", {}),
    (
        "ledger-key-named-agency-signed",
        "ledger",
        _named_key(LEDGER, KeyAlg.ED25519, key(SENDER, KeyAlg.ED25519)),
        "verification.signature-invalid",
        {},
    ),
    (
        "ledger-signed-as-a-delivery-receipt",
        "ledger",
        _payload(DELIVERY_RECEIPT_PAYLOAD, lambda _doc: ledger_key()),
        "verification.signature-invalid",
        {},
    ),
    ("ledger-key-not-held", "ledger", compact, "receipt.wrong-signer", {"ledger_key": False}),
    ("ledger-tree-size-beyond-2^53", "ledger", _unsafe_tree_size, "receipt.malformed", {}),
    ("ledger-tree-size-of-5000-digits", "ledger", _digits_tree_size, "receipt.malformed", {}),
    (
        "integer-out-of-range-before-a-float",
        "delivered",
        lambda doc: _in_range_then(doc, str(MAX_SAFE_INTEGER + 1), "0.5"),
        "receipt.malformed",
        {},
    ),
    (
        "float-before-an-integer-out-of-range",
        "delivered",
        lambda doc: _in_range_then(doc, "1.0", str(MAX_SAFE_INTEGER + 1)),
        "schema.float",
        {},
    ),
    ("byte-order-mark", "delivered", _byte_order_mark, "schema.encoding", {}),
    ("lone-surrogate", "delivered", _lone_surrogate, "schema.encoding", {}),
    # Routing passes over arrays and objects nested more than 512 deep (§5), however its
    # parser's stack would have fared; 512 deep is routed, and refused at check 2.
    ("nested-512-deep", "delivered", _nested_note(511), "schema.too-deep", {}),
    ("nested-513-deep", "delivered", _nested_note(512), "not-addressed", {}),
    ("ledger-too-many-held", "ledger", _many_held, "receipt.malformed", {}),
    ("ledger-held-left-out", "ledger", _drop("held", LEDGER), "receipt.malformed", {}),
    (
        "ledger-refused-code-not-a-code",
        "ledger",
        _set(("refused", [{"event_id": REFUSED_EVENT, "reason_code": "x" * 65}]), signer=LEDGER),
        "receipt.malformed",
        {},
    ),
    (
        "ledger-for-another-agency",
        "ledger",
        _set(("agency", FULL_TO), signer=LEDGER),
        "not-addressed",
        {},
    ),
]


def build_invalid(valid: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name, base, mutate, expect, context in MUTATIONS:
        start = valid[base]
        value = mutate(strict_json(start["value"].encode()))
        vector: dict[str, Any] = {"name": name, "base": base, "expect": expect}
        inherited = {k: start[k] for k in ("directory", "record_time") if k in start}
        vector.update(inherited | context)
        if len(value) > MAX_RECEIPT_BYTES // 2:
            # Spaces are a recipe, not data: the receipt, then this many.
            vector["value"] = value.rstrip(b" ").decode()
            vector["append_spaces"] = len(value) - len(value.rstrip(b" "))
        else:
            vector["value"] = value.decode()
        out.append(vector)
    return out


# -- evaluation by the product's code -------------------------------------------------------------


def record_value(vector: dict[str, Any]) -> bytes:
    return str(vector["value"]).encode() + b" " * int(vector.get("append_spaces", 0))


def sent_tracking(data: dict[str, Any], db: sqlite3.Connection) -> Tracking:
    """The reader's sending state (a table in ``db``): the envelope it sent, awaited from
    each of its recipients."""
    tracking = Tracking(db, lambda: None)
    envelope = strict_json(data["sent"]["envelope"].encode())
    tracking.track(
        1,
        envelope["header"]["message_id"],
        [(r["agency"], None) for r in envelope["recipients"]],
        digest=envelope_digest(data["sent"]["envelope"].encode()),
        now=parse_timestamp(RECORD_TIME),
    )
    return tracking


def evaluate(data: dict[str, Any], vector: dict[str, Any]) -> str:
    """What the reader makes of the vector's record, by the product's functions in the
    order ``ReceiptReader.handle`` calls them: ``accepted``, ``not-addressed`` or the
    refusal code."""
    governance = key("governance", KeyAlg.ED25519).public
    signed = data["directories"][vector.get("directory", "default")]
    directory = Directory.verify(json.dumps(signed).encode(), governance_key=governance)
    value = record_value(vector)
    routed = addressee(value)
    if routed is None or routed[1] != data["reader"]:
        return "not-addressed"
    try:
        if routed[0] == DELIVERY_KIND:
            record_time = parse_timestamp(vector.get("record_time", RECORD_TIME))
            receipt = verify_delivery_receipt(value, directory, record_time=record_time)
            if receipt.sender != data["reader"]:
                return "not-addressed"
            with closing(sqlite3.connect(":memory:")) as db:
                sent_row(receipt, sent_tracking(data, db))
        else:
            held = vector.get("ledger_key", True)
            ledger = verify_ledger_receipt(value, ledger_key().public if held else None)
            if ledger.agency != data["reader"]:
                return "not-addressed"
    except MappaError as exc:
        return exc.code
    return "accepted"


# -- the file -------------------------------------------------------------------------------------


def about() -> dict[str, Any]:
    return {
        "_about": (
            "mappa-broker receipt test vectors (docs/receipts.md). Keys: as the envelope "
            "vectors' (PrivateKey.from_seed(alg, SHAKE256('" + generate.SEED_LABEL + "|' + owner "
            "+ '|' + alg))), the ledger's with owner 'ledger'. Ed25519 is deterministic, so "
            "each vector is exactly reproducible. 'reader' is the agency reading every record; "
            "'sent' the one envelope it sent (envelope-vectors.json's '" + ENVELOPE_VECTOR + "')"
            ", awaiting a receipt from each of its recipients. Each vector: 'value' (the record "
            "value; then 'append_spaces' spaces if given), 'record_time' (the broker's time of "
            "the record; default the top-level one), 'directory' (default 'default'), "
            "'ledger_key' (false: the reader holds no ledger.pub), and 'expect': 'accepted', "
            "'not-addressed' or the refusal code. Regenerate with `make vectors`."
        ),
        "reader": READER,
        "record_time": RECORD_TIME,
    }


def fresh() -> dict[str, Any]:
    data: dict[str, Any] = about()
    data["directories"] = {n: d.model_dump(mode="json") for n, d in directories().items()}
    data["governance_key_id"] = key("governance", KeyAlg.ED25519).key_id
    lk = ledger_key()
    data["ledger_public"] = {
        "alg": "ed25519",
        "key_id": lk.key_id,
        "public_key": b64encode(lk.public.raw),
    }
    envelope = sent_envelope()
    data["sent"] = {
        "vector": ENVELOPE_VECTOR,
        "envelope": envelope,
        "envelope_digest": envelope_digest(envelope.encode()),
    }
    valid = valid_vectors()
    for vector in valid:
        vector["expect"] = "accepted"
        vector["derived"] = derived(vector["value"])
    data["valid"] = valid
    data["invalid"] = build_invalid({v["name"]: v for v in valid})
    return data


def check(data: dict[str, Any]) -> list[str]:
    """Rebuild every vector from the seeds and compare; evaluate each with the product's
    code against its ``expect``. Returns what differs."""
    problems = []
    expected = fresh()
    for name in ("_about", "reader", "record_time", "directories", "ledger_public", "sent"):
        if data.get(name) != expected[name]:
            problems.append(f"{name} differs from what the seeds and envelope vectors give")
    for kind in ("valid", "invalid"):
        stored = {v["name"]: v for v in data[kind]}
        if list(stored) != [v["name"] for v in expected[kind]]:
            problems.append(f"the list of {kind} vectors changed")
        for again in expected[kind]:
            if stored.get(again["name"], again) != again:
                problems.append(f"{again['name']}: no longer reproduces the stored vector")
        for vector in data[kind]:
            got = evaluate(data, vector)
            if got != vector["expect"]:
                problems.append(f"{vector['name']}: got {got}, vector says {vector['expect']}")
    return problems


def write() -> dict[str, Any]:
    """Regenerate the file; returns what it holds."""
    data = fresh()
    FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    loaded: dict[str, Any] = json.loads(FILE.read_text())
    return loaded
