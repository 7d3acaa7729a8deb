"""Receiving with workers: what they prepare ahead (``broker.gateway.preparing``) saves the
loop work and decides nothing; every check still runs on the loop, on their results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.crypto.keys import PublicKey
from broker.gateway.handled import Handling
from broker.gateway.preparing import PREPARE_AT_LEAST, prepare
from broker.gateway.sealing_pool import SealHere, SealingPool
from broker.trust.directory import public_key_of
from schemas.common import Role
from schemas.directory import KeyAlg
from tests import brokers
from tests.support import AREA, PARTIES, POLICE, PROBATION, World, build_world, risk_assessment
from tests.vectors import generate

DATA: dict[str, Any] = json.loads(generate.FILE.read_text())
VALID = next(v for v in DATA["valid"] if v["suite"] == "classic" and "publication" not in v)
PURPOSE = "MAPPA risk management"
RECEIVER = next(r for r, e in VALID["expect"].items() if e in ("full", "redacted", "minimal"))


def signing_keys() -> dict[str, PublicKey]:
    document = generate.signed_directories()["default"].document
    return {k.key_id: public_key_of(k) for a in document.agencies for k in a.keys}


def receiver_key(key_id: str) -> Any:
    private = generate.key(RECEIVER, KeyAlg.X25519)
    return private if private.key_id == key_id else None


def test_a_valid_record_is_parsed_verified_and_opened_ahead() -> None:
    [prepared] = prepare(
        [VALID["envelope"].encode()],
        agency=RECEIVER,
        signing_keys=signing_keys(),
        decryption_key=receiver_key,
    )
    assert prepared is not None
    assert len(prepared.vouched) == len(prepared.unverified.envelope.signatures) == 1
    assert prepared.opened is not None
    assert prepared.opened.plaintext == generate.plaintexts()[prepared.opened.kind]


def test_a_bad_signature_is_vouched_for_by_nobody_and_nothing_is_opened() -> None:
    doc = json.loads(VALID["envelope"])
    doc["signatures"][0]["signature"] = generate.flip_b64(doc["signatures"][0]["signature"], 3)
    [prepared] = prepare(
        [json.dumps(doc).encode()],
        agency=RECEIVER,
        signing_keys=signing_keys(),
        decryption_key=receiver_key,
    )
    assert prepared is not None
    assert prepared.vouched == frozenset()
    assert prepared.opened is None


def test_a_key_the_directory_does_not_give_vouches_for_nothing() -> None:
    """The worker verifies only under the public key the directory gave for the id."""
    other = generate.key("someone-else", KeyAlg.ED25519).public
    keys = dict.fromkeys(signing_keys(), other)
    [prepared] = prepare(
        [VALID["envelope"].encode()],
        agency=RECEIVER,
        signing_keys=keys,
        decryption_key=receiver_key,
    )
    assert prepared is not None
    assert prepared.vouched == frozenset()
    assert prepared.opened is None


def test_what_does_not_parse_is_not_prepared() -> None:
    assert prepare(
        [b"{", b"[]", VALID["envelope"].encode()[:-1]],
        agency=RECEIVER,
        signing_keys=signing_keys(),
        decryption_key=receiver_key,
    ) == [None, None, None]


async def test_a_gateway_with_workers_delivers_what_they_prepared_and_refuses_the_rest(
    pooled: World,
) -> None:
    """A batch read by probation: the workers prepare it, the loop delivers the genuine
    messages and refuses a forged one with the code it always had."""
    police, probation = pooled.gw(POLICE), pooled.gw(PROBATION)
    assert isinstance(probation.sealer, SealingPool)
    sent = [
        await police.publish(risk_assessment(), purpose=PURPOSE)
        for _ in range(2 * PREPARE_AT_LEAST)
    ]
    topic = pooled.deployment.topics.for_role(AREA, Role.PROBATION)
    [original, *_] = await pooled.read(topic, len(sent))
    doc = json.loads(original.value)
    doc["signatures"][0]["signature"] = generate.flip_b64(doc["signatures"][0]["signature"], 5)
    for _ in range(PREPARE_AT_LEAST):
        await pooled.transport.send(topic, json.dumps(doc).encode(), key=b"forged")
    await pooled.pump(
        lambda: (
            len(pooled.of(PROBATION, Handling.REFUSED)) >= PREPARE_AT_LEAST
            and {h.message_id for h in pooled.delivered(PROBATION)} >= {r.message_id for r in sent}
        )
    )
    refused = {h.reason_code for h in pooled.of(PROBATION, Handling.REFUSED)}
    assert refused == {"verification.signature-invalid"}
    assert probation.receiver.prepared_ahead >= PREPARE_AT_LEAST


async def test_without_workers_nothing_is_prepared(
    tmp_path: Path, tansu_broker: brokers.Broker
) -> None:
    world = await build_world(tmp_path, tansu_broker)
    try:
        assert isinstance(world.gw(PROBATION).sealer, SealHere)
        world.seed_case_team(PARTIES)
        sent = [
            await world.gw(POLICE).publish(risk_assessment(), purpose=PURPOSE)
            for _ in range(2 * PREPARE_AT_LEAST)
        ]
        await world.pump(
            lambda: (
                {h.message_id for h in world.delivered(PROBATION)} >= {r.message_id for r in sent}
            )
        )
        assert world.gw(PROBATION).receiver.prepared_ahead == 0
    finally:
        await world.close()


@pytest.mark.parametrize("flipped", [0, 1])
def test_one_signature_vouched_for_does_not_carry_the_other(flipped: int) -> None:
    """pq-hybrid signs twice: with one signature flipped, the worker vouches for the
    other only, and the loop still refuses the envelope."""
    base = next(v for v in DATA["valid"] if v["name"] == "pq-hybrid-two-views")
    receiver = next(r for r, e in base["expect"].items() if e == "full")
    doc = json.loads(base["envelope"])
    sig = doc["signatures"][flipped]
    sig["signature"] = generate.flip_b64(sig["signature"], 7)
    value = json.dumps(doc, separators=(",", ":")).encode()
    [prepared] = prepare(
        [value], agency=receiver, signing_keys=signing_keys(), decryption_key=lambda _: None
    )
    assert prepared is not None
    assert len(prepared.vouched) == 1
    vector = {**base, "envelope": value.decode()}
    assert generate.evaluate(DATA, vector, receiver, ahead=True) == (
        "verification.signature-invalid"
    )
