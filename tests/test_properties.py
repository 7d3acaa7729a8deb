"""Properties of the receive pipeline (Hypothesis): nothing altered is ever delivered.

These drive ``Receiver.handle`` directly with records as Kafka would hand them over; the
adapter's SQLite store and the crypto are real. No broker is needed for this layer.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.agreements import agreement_for_area
from broker.crypto.encoding import b64decode, b64encode, jcs, strict_json
from broker.crypto.envelope import DECRYPTION_FAILED, signed_bytes
from broker.deployment import Deployment
from broker.gateway.handled import Handling
from broker.gateway.receive import Receiver
from broker.kafka.transport import Record
from broker.settings import Settings
from broker.trust.provision import DataPaths, provision
from schemas.common import Role, ViewKind
from tests.support import AREA, HOUSING, PARTIES, POLICE, PROBATION, SPECS, risk_assessment

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Bench:
    """A provisioned deployment whose receivers are driven record by record."""

    def __init__(self, root: Path, suite: str) -> None:
        passphrase = secrets.token_urlsafe(18).encode()
        cfg = Settings(data_dir=root, topic_namespace="prop", suite=suite)
        directory = provision(
            DataPaths(root),
            SPECS,
            passphrase=passphrase,
            now=datetime.now(UTC) - timedelta(days=1),
            suites=(suite,),
        )
        self.deployment = Deployment(
            settings=cfg,
            passphrase=passphrase,
            agreements=[agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])],
        )
        self.police = self.deployment.context(POLICE)
        contexts = {a: self.deployment.context(a) for a in (PROBATION, HOUSING)}
        self.stores = {a: ctx.store for a, ctx in contexts.items()}
        self.receivers = {a: Receiver(ctx) for a, ctx in contexts.items()}
        self.offset = 0

    def publish(self) -> dict[str, bytes]:
        """Envelopes of one publication, by topic, taken from the sender's outbox."""
        from broker.gateway.publish import Publisher

        Publisher(self.police).publish(risk_assessment(), purpose="risk management")
        rows = self.police.store.unsent()
        self.police.store.mark_sent([r.seq for r in rows])
        return {r.topic: r.value for r in rows if ".audit" not in r.topic}

    def deliver(self, agency: str, topic: str, value: bytes) -> Any:
        self.offset += 1
        record = Record(topic, 0, self.offset, b"k", value, (), int(time.time() * 1000))
        return self.receivers[agency].handle(record)

    def ra_topic(self) -> str:
        return self.deployment.topics.for_role(AREA, Role.PROBATION)

    def resign(self, doc: dict[str, Any]) -> bytes:
        signers = self.police.keys.signers_for(self.police.suite.signature_keys)
        doc["signatures"] = [
            {
                "alg": k.alg.value,
                "key_id": k.key_id,
                "signature": b64encode(k.sign(signed_bytes(doc))),
            }
            for k in signers
        ]
        return jcs(doc)


@pytest.fixture(scope="module", params=["classic", "pq-hybrid"])
def bench(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bench]:
    b = Bench(tmp_path_factory.mktemp(f"prop-{request.param}"), request.param)
    yield b
    b.deployment.close()


@pytest.fixture(scope="module")
def envelope(bench: Bench) -> bytes:
    return bench.publish()[bench.ra_topic()]


def test_the_unaltered_envelope_is_delivered(bench: Bench) -> None:
    """The control for every property below: the same path delivers the original."""
    value = bench.publish()[bench.ra_topic()]
    assert bench.deliver(PROBATION, bench.ra_topic(), value).handling is Handling.DELIVERED
    assert bench.deliver(PROBATION, bench.ra_topic(), value).handling is Handling.DUPLICATE


@PROPERTY
@given(data=st.data())
def test_any_single_byte_change_is_refused(
    bench: Bench, envelope: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(envelope) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor")
    altered = bytearray(envelope)
    altered[position] ^= mask
    handled = bench.deliver(PROBATION, bench.ra_topic(), bytes(altered))
    assert handled.handling is Handling.REFUSED, (position, mask, handled)
    assert handled.reason_code.split(".")[0] in {"schema", "envelope", "verification", "directory"}


@PROPERTY
@given(cut=st.integers(min_value=0))
def test_any_truncation_is_refused(bench: Bench, envelope: bytes, cut: int) -> None:
    handled = bench.deliver(PROBATION, bench.ra_topic(), envelope[: cut % len(envelope)])
    assert handled.handling is Handling.REFUSED


@PROPERTY
@given(data=st.data())
def test_any_flip_in_ciphertext_or_wrapped_key_fails_decryption(
    bench: Bench, envelope: bytes, data: st.DataObject
) -> None:
    """Even re-signed by the real sender (a compromised or buggy sender), an altered
    ciphertext or wrapped key never opens, and the error says nothing about why."""
    doc = strict_json(envelope)
    doc["header"]["message_id"] = str(uuid.uuid4())  # not a replay of anything seen
    where = data.draw(
        st.sampled_from(["ciphertext", "nonce", "key_commitment", "wrapped_key"]), label="field"
    )
    holder = (
        doc["views"][0]
        if where != "wrapped_key"
        else next(r for r in doc["recipients"] if r["agency"] == PROBATION)
    )
    raw = bytearray(b64decode(holder[where]))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
    raw[bit // 8] ^= 1 << (bit % 8)
    holder[where] = b64encode(bytes(raw))
    handled = bench.deliver(PROBATION, bench.ra_topic(), bench.resign(doc))
    assert handled.handling is Handling.REFUSED
    assert (handled.reason_code, handled.reason) == ("decryption.failed", DECRYPTION_FAILED)


@PROPERTY
@given(
    field=st.sampled_from(
        [
            "message_id",
            "created_at",
            "sender",
            "area",
            "topic",
            "message_type",
            "schema_version",
            "subject_ref",
            "isa_id",
            "isa_version",
            "purpose",
            "lawful_basis",
            "classification",
            "supersedes",
            "suite",
        ]
    )
)
def test_any_header_field_changed_is_refused(bench: Bench, envelope: bytes, field: str) -> None:
    doc = strict_json(envelope)
    replacement: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "created_at": "2026-01-01T00:00:00.000Z",
        "sender": HOUSING,
        "area": "derbyshire",
        "topic": "prop.derbyshire.ra",
        "message_type": "release-scheduled",
        "schema_version": 7,
        "subject_ref": "0" * 64,
        "isa_id": "another-agreement",
        "isa_version": 99,
        "purpose": "curiosity",
        "lawful_basis": "none",
        "classification": "OFFICIAL",
        "supersedes": str(uuid.uuid4()),
        "suite": "pq-hybrid" if doc["header"]["suite"] == "classic" else "classic",
    }
    doc["header"][field] = replacement[field]
    handled = bench.deliver(PROBATION, bench.ra_topic(), jcs(doc))
    assert handled.handling is Handling.REFUSED


@PROPERTY
@given(
    summary=st.text(min_size=1, max_size=400),
    factors=st.lists(st.text(min_size=1, max_size=60), max_size=5),
)
def test_round_trip_preserves_any_content(bench: Bench, summary: str, factors: list[str]) -> None:
    from broker.gateway.publish import Publisher

    message = risk_assessment(summary=summary, factors=factors)
    result = Publisher(bench.police).publish(message, purpose="risk management")
    rows = bench.police.store.unsent()
    bench.police.store.mark_sent([r.seq for r in rows])
    value = next(r.value for r in rows if r.topic == bench.ra_topic())
    assert bench.deliver(PROBATION, bench.ra_topic(), value).handling is Handling.DELIVERED
    receiver = bench.receivers[PROBATION]
    item = bench.stores[PROBATION].inbox_item(result.message_id)
    assert item is not None
    opened = receiver.reopen(item, now=datetime.now(UTC), at_consultation=False)
    assert opened.view is ViewKind.FULL
    assert opened.body == message
