"""docs/receipts.md is enough to make and check receipts, and the product agrees with it.

(a) Independent of the product's receipt code: the spec's appendix program (standard
library, cryptography and rfc8785 only) reads every vector as the vector says; each valid
vector's derived values and signature check out with cryptography alone; the envelope
digest the receipts name is the envelope vectors' own.
(b) The product: the vectors have not drifted from what its code makes; its reader
(``Receiver`` and its ``ReceiptReader``, on a real store) makes of each record what the
vector says, dead-letters and audits what it refuses, and settles only what it accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.agreements import agreement_for_area
from broker.agreements.policy import SharingPolicy
from broker.crypto.signing import DELIVERY_RECEIPT_PAYLOAD, LEDGER_RECEIPT_PAYLOAD
from broker.gateway.agency import AgencyContext
from broker.gateway.deadletters import DEAD_LETTER_HEAD_BYTES
from broker.gateway.handled import Handling
from broker.gateway.receipts import MAX_RECEIPT_BYTES, MAX_ROUTED_BYTES
from broker.gateway.receive import Receiver
from broker.gateway.store import AgencyStore
from broker.gateway.tracking import DELIVERED, LEDGER, REFUSED, SENT
from broker.kafka.transport import Record
from broker.settings import Settings
from broker.trust.directory import Directory
from broker.trust.keystore import AgencyKeys
from schemas.audit import AuditAct, Operation, SignedAuditEvent
from schemas.common import parse_timestamp
from schemas.directory import KeyAlg
from schemas.receipt import MAX_RECEIPTED_EVENTS, MAX_SAFE_INTEGER, ReasonCode
from tests.vectors import generate, receipts

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "receipts.md"
DATA: dict[str, Any] = json.loads(receipts.FILE.read_text())
VECTORS = DATA["valid"] + DATA["invalid"]
ENVELOPES: dict[str, Any] = json.loads(generate.FILE.read_text())


def appendix_program() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", SPEC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the spec has one program, in its appendix"
    return blocks[0]


def run_program(tmp_path: Path, vectors: Path) -> dict[str, str]:
    program = tmp_path / "read_receipts_by_hand.py"
    program.write_text(appendix_program())
    done = subprocess.run(  # noqa: S603 - the spec's own program, on our own vectors
        [sys.executable, str(program), str(vectors)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    named = [line.split("\t") for line in done.stdout.splitlines()]
    return {name: outcome for name, outcome in named}  # noqa: C416 - one pair a line


# -- (a) the spec alone ---------------------------------------------------------------------------


def test_the_program_uses_nothing_of_ours() -> None:
    imports = set(re.findall(r"^(?:from|import) (\w+)", appendix_program(), flags=re.MULTILINE))
    assert imports <= {
        "base64",
        "datetime",
        "hashlib",
        "json",
        "re",
        "sys",
        "rfc8785",
        "cryptography",
    }


def test_spec_program_reads_every_vector_as_the_vector_says(tmp_path: Path) -> None:
    got = run_program(tmp_path, receipts.FILE)
    assert got == {v["name"]: v["expect"] for v in VECTORS}


def test_spec_program_refuses_a_receipt_altered_after_signing(tmp_path: Path) -> None:
    data = json.loads(receipts.FILE.read_text())
    [delivered] = [v for v in data["valid"] if v["name"] == "delivered"]
    delivered["value"] = delivered["value"].replace('"delivered"', '"refused"', 1)
    delivered["value"] = delivered["value"].replace('"reason_code":null', '"reason_code":"x.y"')
    file = tmp_path / "tampered.json"
    file.write_text(json.dumps(data))
    assert run_program(tmp_path, file)["delivered"] == "verification.signature-invalid"


def test_every_refusal_code_of_the_vectors_is_in_the_spec() -> None:
    spec = SPEC.read_text()
    codes = {v["expect"] for v in DATA["invalid"]} - {"not-addressed"}
    assert codes >= {
        "receipt.too-large",
        "receipt.malformed",
        "receipt.wrong-signer",
        "receipt.unknown-message",
        "receipt.digest-mismatch",
        "verification.signature-invalid",
        "directory.unknown-agency",
        "directory.key-revoked",
        "directory.key-expired",
        "schema.duplicate-key",
        "schema.float",
        "schema.too-deep",
    }
    assert {c for c in codes if f"`{c}`" not in spec} == set()


@pytest.mark.parametrize("vector", DATA["valid"], ids=lambda v: v["name"])
def test_each_valid_vector_checks_out_with_cryptography_alone(vector: dict[str, Any]) -> None:
    document = json.loads(vector["value"])
    receipt = document["receipt"]
    derived = vector["derived"]
    payload = (
        "application/vnd.mappa.delivery-receipt+json; version=1"
        if receipt["kind"] == "mappa.delivery-receipt"
        else "application/vnd.mappa.ledger-receipt+json; version=1"
    )
    body = rfc8785.dumps(receipt)
    signed = b"DSSEv1 %d %b %d %b" % (len(payload), payload.encode(), len(body), body)
    assert derived["payload_type"] == payload
    assert derived["receipt_jcs"].encode() == body
    assert derived["signed_bytes"].encode() == signed
    public = base64.b64decode(derived["signer_public_key"])
    assert hashlib.sha256(b"ed25519\x00" + public).hexdigest()[:32] == document["key_id"]
    signature = base64.b64decode(document["signature"], validate=True)
    assert len(signature) == 64
    ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, signed)


def test_the_envelope_digest_is_the_envelope_vectors_digest() -> None:
    [envelope] = [v for v in ENVELOPES["valid"] if v["name"] == DATA["sent"]["vector"]]
    assert DATA["sent"]["envelope"] == envelope["envelope"]
    document = json.loads(envelope["envelope"])
    body = rfc8785.dumps({k: document[k] for k in ("header", "recipients", "views")})
    ptype = b"application/vnd.mappa.envelope+json; version=1"
    digest = hashlib.sha256(b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(body), body))
    assert digest.hexdigest() == envelope["derived"]["signed_bytes_sha256"]
    assert digest.hexdigest() == DATA["sent"]["envelope_digest"]
    # Not the SHA-256 of the record value, which also holds the signatures.
    assert hashlib.sha256(envelope["envelope"].encode()).hexdigest() != digest.hexdigest()
    named = {json.loads(v["value"])["receipt"].get("envelope_digest") for v in DATA["valid"]}
    assert named - {None} == {digest.hexdigest()}


def test_the_spec_states_the_products_limits() -> None:
    """The appendix's constants and the product's are the same numbers."""
    program = appendix_program()
    assert f"MAX_RECEIPT_BYTES, MAX_ROUTED_BYTES = {MAX_RECEIPT_BYTES:_}, {MAX_ROUTED_BYTES:_}" in (
        program
    )
    assert f"MAX_EVENTS, MAX_SAFE_INTEGER, MAX_DEPTH = {MAX_RECEIPTED_EVENTS}, 2**53 - 1" in program
    assert MAX_SAFE_INTEGER == 2**53 - 1
    assert DELIVERY_RECEIPT_PAYLOAD.encode() in program.encode()
    assert LEDGER_RECEIPT_PAYLOAD.encode() in program.encode()
    assert f"{MAX_RECEIPT_BYTES:,} bytes" in SPEC.read_text()


# -- (b) the product ------------------------------------------------------------------------------


def test_vectors_have_not_drifted() -> None:
    assert receipts.check(DATA) == []


def test_drift_is_detected() -> None:
    data = json.loads(receipts.FILE.read_text())
    data["invalid"][0]["expect"] = "receipt.malformed"
    data["valid"][1]["value"] = data["valid"][1]["value"].replace("prison", "prisom")
    problems = receipts.check(data)
    assert any(data["invalid"][0]["name"] in p for p in problems)
    assert any(data["valid"][1]["name"] in p for p in problems)


@pytest.fixture
def stores() -> Iterator[list[AgencyStore]]:
    """Stores a test opens, closed when it ends."""
    opened: list[AgencyStore] = []
    yield opened
    for store in opened:
        store.close()


def reader_of(
    tmp_path: Path, vector: dict[str, Any], stores: list[AgencyStore]
) -> tuple[AgencyContext, Receiver]:
    """The police's receiving path as the product builds it, with the vectors' keys and
    trust, on a store of its own that has sent the vectors' envelope."""
    governance = generate.key("governance", KeyAlg.ED25519).public
    signed = DATA["directories"][vector.get("directory", "default")]
    directory = Directory.verify(json.dumps(signed).encode(), governance_key=governance)
    keys = AgencyKeys(DATA["reader"])
    keys.add(generate.key(DATA["reader"], KeyAlg.ED25519))
    keys.add(generate.key(DATA["reader"], KeyAlg.X25519))
    agreement = agreement_for_area(generate.AREA, directory.agencies(area=generate.AREA))
    now = parse_timestamp(receipts.RECEIPT_TIME)
    store = AgencyStore(tmp_path / "police.db")
    stores.append(store)
    ctx = AgencyContext(
        entry=directory.agency(DATA["reader"]),
        keys=keys,
        directory=directory,
        policy=SharingPolicy(agreement, directory),
        subject_key=generate.subject_key(),
        store=store,
        settings=Settings(data_dir=tmp_path, topic_namespace="mappa"),
        clock=lambda: now,
        ledger_key=receipts.ledger_key().public if vector.get("ledger_key", True) else None,
    )
    envelope = DATA["sent"]["envelope"].encode()
    header = json.loads(envelope)["header"]
    with ctx.store.transaction():
        seq = ctx.store.enqueue(header["topic"], envelope, key=b"x")
        ctx.store.tracking.track(
            seq,
            header["message_id"],
            [(r["agency"], None) for r in json.loads(envelope)["recipients"]],
            digest=DATA["sent"]["envelope_digest"],
            now=now,
        )
        for event_id in (*receipts.HELD, receipts.REFUSED_EVENT):
            ctx.store.tracking.track(seq, event_id, [(LEDGER, None)], digest="0" * 64, now=now)
        ctx.store.mark_sent([seq])
        ctx.store.tracking.sent([seq], now, lambda _attempts: timedelta(minutes=1))
    return ctx, Receiver(ctx)


def states(ctx: AgencyContext) -> dict[tuple[str, str], str]:
    """The state of each row the vectors' receipts could settle."""
    message_id = json.loads(DATA["sent"]["envelope"])["header"]["message_id"]
    ids = (message_id, *receipts.HELD, receipts.REFUSED_EVENT)
    tracking = ctx.store.tracking
    return {(r.message_id, r.recipient): r.state for i in ids for r in tracking.of_message(i)}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_product_reader_agrees_with_each_vector(
    tmp_path: Path, vector: dict[str, Any], stores: list[AgencyStore]
) -> None:
    ctx, receiver = reader_of(tmp_path, vector, stores)
    before = states(ctx)
    assert list(before.values()) == [SENT] * 5
    record_time = parse_timestamp(vector.get("record_time", DATA["record_time"]))
    record = Record(
        topic=ctx.topics.receipts,
        partition=0,
        offset=7,
        key=None,
        value=receipts.record_value(vector),
        headers=(),
        timestamp_ms=int(record_time.timestamp() * 1000),
    )
    with ctx.store.transaction():
        handled = receiver.handle(record)
    outcome = {
        Handling.RECEIPT: "accepted",
        Handling.NOT_ADDRESSED: "not-addressed",
        Handling.REFUSED: handled.reason_code,
    }[handled.handling]
    assert outcome == vector["expect"]
    # Moved past it, whatever became of it.
    assert ctx.store.offsets() == {(ctx.topics.receipts, 0): 8}
    outbox = {r.topic: r for r in ctx.store.unsent()}
    if handled.handling is Handling.REFUSED:
        # Dead-lettered with its code, audited as a refusal; the sending state untouched.
        dead = outbox[ctx.topics.deadletter]
        assert dict(dead.headers)["mappa-reason-code"] == vector["expect"].encode()
        # Bounded (issue 16): the record's first bytes, with the digest of the whole.
        assert dead.value == record.value[:DEAD_LETTER_HEAD_BYTES]
        assert (
            dict(dead.headers)["mappa-value-sha256"]
            == hashlib.sha256(record.value).hexdigest().encode()
        )
        events = [SignedAuditEvent.model_validate_json(r.value).event for r in ctx.store.unsent()
                  if r.topic == ctx.topics.audit]  # fmt: skip
        assert [(e.act, e.reason_code) for e in events] == [(AuditAct.REFUSAL, vector["expect"])]
        assert states(ctx) == before
    elif handled.handling is Handling.NOT_ADDRESSED:
        assert ctx.store.unsent() == []
        assert states(ctx) == before
    else:
        assert ctx.topics.deadletter not in outbox
        assert states(ctx) != before


def test_product_settles_what_each_valid_receipt_says(
    tmp_path: Path, stores: list[AgencyStore]
) -> None:
    by_name = {v["name"]: v for v in DATA["valid"]}
    message_id = json.loads(DATA["sent"]["envelope"])["header"]["message_id"]
    settled = {}
    for name in ("delivered", "refused", "ledger"):
        ctx, receiver = reader_of(tmp_path / name, by_name[name], stores)
        value = receipts.record_value(by_name[name])
        record = Record(ctx.topics.receipts, 0, 0, None, value, (), 0)
        with ctx.store.transaction():
            receiver.handle(record)
        tracking = ctx.store.tracking
        settled[name] = {
            (row.recipient, row.state, row.reason_code)
            for event in (message_id, *receipts.HELD, receipts.REFUSED_EVENT)
            for row in tracking.of_message(event)
            if row.state != SENT
        }
        if name != "ledger":
            [event] = [SignedAuditEvent.model_validate_json(r.value).event
                       for r in ctx.store.unsent() if r.topic == ctx.topics.audit]  # fmt: skip
            assert (event.act, event.operation, event.message_id) == (
                AuditAct.DISCLOSURE,
                Operation.RECEIPT,
                message_id,
            )
    assert settled == {
        "delivered": {(generate.FULL_TO, DELIVERED, None)},
        "refused": {(generate.REDACTED_TO, REFUSED, "policy.breach-view-too-rich")},
        "ledger": {
            (LEDGER, DELIVERED, None),
            (LEDGER, REFUSED, "audit.wrong-signer"),
        },
    }


def test_every_reason_code_the_product_raises_fits_a_receipt() -> None:
    """A refused receipt carries the refusal's code: each code in the code base must be
    a ``ReasonCode``, or making the receipt would fail the very transaction it belongs to."""
    from pydantic import TypeAdapter

    fits = TypeAdapter(ReasonCode)
    sources = [
        p for d in ("broker", "schemas", "agency_adapters") for p in (ROOT / d).rglob("*.py")
    ]
    codes = {
        code
        for path in sources
        for code in re.findall(r"""\bcode\s*=\s*["']([^"']+)["']""", path.read_text())
    }
    assert len(codes) > 50
    assert [c for c in sorted(codes) if not _fits(fits, c)] == []


def _fits(adapter: Any, code: str) -> bool:
    try:
        adapter.validate_python(code)
    except ValueError:
        return False
    return True
