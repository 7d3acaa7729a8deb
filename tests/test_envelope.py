"""Seal and open, both suites, and the ways an envelope must be refused (unit level)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from broker.crypto.encoding import b64decode, b64encode, jcs, strict_json
from broker.crypto.envelope import (
    Recipient,
    ViewToSeal,
    header_digest,
    open_view,
    parse_envelope,
    seal,
    signed_bytes,
    verify_envelope,
    wrap_info,
)
from broker.crypto.keys import PrivateKey, load_encryption_public
from broker.crypto.suites import CLASSIC, PQ_HYBRID, Suite, suite_named
from broker.errors import DecryptionError, NotAddressed, SchemaError, VerificationError
from schemas.common import Classification, ViewKind, now_timestamp
from schemas.directory import MAX_PUBLIC_KEY_BYTES, B64PublicKey
from schemas.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_WRAPPED_KEY_BYTES,
    B64WrappedKey,
    EnvelopeHeader,
)


@dataclass
class Party:
    agency: str
    signers: list[PrivateKey]
    decrypt: PrivateKey


def party(agency: str, suite: Suite) -> Party:
    return Party(
        agency,
        [PrivateKey.generate(a) for a in suite.signature_keys],
        PrivateKey.generate(suite.kem_key),
    )


def header(sender: Party, suite: Suite, **over: Any) -> EnvelopeHeader:
    fields: dict[str, Any] = {
        "envelope_version": 1,
        "suite": suite.name,
        "message_id": str(uuid.uuid4()),
        "created_at": now_timestamp(),
        "sender": sender.agency,
        "sender_keys": tuple(k.key_id for k in sender.signers),
        "area": "staffordshire",
        "topic": "mappa.staffordshire.ra",
        "message_type": "risk-assessment",
        "schema_version": 1,
        "subject_ref": "ab" * 32,
        "isa_id": "mappa-default.staffordshire",
        "isa_version": 1,
        "purpose": "risk management",
        "lawful_basis": "DPA 2018 Part 3",
        "classification": Classification.OFFICIAL_SENSITIVE,
        "supersedes": None,
    }
    fields.update(over)
    return EnvelopeHeader(**fields)


@pytest.fixture(params=[CLASSIC, PQ_HYBRID], ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def parties(suite: Suite) -> dict[str, Party]:
    return {n: party(n, suite) for n in ("police.a", "probation.a", "housing.a", "other.a")}


def sealed(parties: dict[str, Party], suite: Suite) -> bytes:
    police = parties["police.a"]
    views = [
        ViewToSeal(
            ViewKind.FULL,
            b'{"secret":"victim"}',
            (Recipient("probation.a", parties["probation.a"].decrypt.public),),
        ),
        ViewToSeal(
            ViewKind.REDACTED,
            b'{"secret":null}',
            (Recipient("housing.a", parties["housing.a"].decrypt.public),),
        ),
    ]
    return seal(header=header(police, suite), views=views, signers=police.signers, suite=suite)


def verify(value: bytes, parties: dict[str, Party], suite: Suite) -> Any:
    return verify_envelope(
        parse_envelope(value), suite=suite, keys=[k.public for k in parties["police.a"].signers]
    )


def open_as(value: bytes, who: str, parties: dict[str, Party], suite: Suite) -> bytes:
    p = parties[who]
    opened = open_view(
        verify(value, parties, suite), agency=who, keys={p.decrypt.key_id: p.decrypt}, suite=suite
    )
    return opened.plaintext


def test_round_trip_each_recipient_gets_its_view(parties: dict[str, Party], suite: Suite) -> None:
    value = sealed(parties, suite)
    assert open_as(value, "probation.a", parties, suite) == b'{"secret":"victim"}'
    assert open_as(value, "housing.a", parties, suite) == b'{"secret":null}'
    with pytest.raises(NotAddressed):
        open_as(value, "other.a", parties, suite)


def test_wire_is_canonical_and_carries_no_plaintext(
    parties: dict[str, Party], suite: Suite
) -> None:
    value = sealed(parties, suite)
    assert jcs(strict_json(value)) == value
    assert b"victim" not in value


def test_other_agency_keys_cannot_open(parties: dict[str, Party], suite: Suite) -> None:
    value = sealed(parties, suite)
    verified = verify(value, parties, suite)
    other = parties["other.a"].decrypt
    with pytest.raises(DecryptionError) as err:
        open_view(verified, agency="housing.a", keys={other.key_id: other}, suite=suite)
    assert err.value.code == "envelope.unknown-recipient-key"


def resign(doc: dict[str, Any], signer: Party) -> bytes:
    doc["signatures"] = [
        {"alg": k.alg.value, "key_id": k.key_id, "signature": b64encode(k.sign(signed_bytes(doc)))}
        for k in signer.signers
    ]
    return jcs(doc)


def test_wrapped_key_moved_between_envelopes_is_refused(
    parties: dict[str, Party], suite: Suite
) -> None:
    """Even the sender cannot reuse one message's wrapped key in another: it is bound
    to its header digest, recipient and view."""
    first = strict_json(sealed(parties, suite))
    second = strict_json(sealed(parties, suite))
    second["recipients"][1]["wrapped_key"] = first["recipients"][1]["wrapped_key"]
    with pytest.raises(DecryptionError, match=r"^Decryption failed\.$"):
        open_as(resign(second, parties["police.a"]), "housing.a", parties, suite)


def test_wrapped_key_relabelled_for_another_view_is_refused(
    parties: dict[str, Party], suite: Suite
) -> None:
    doc = strict_json(sealed(parties, suite))
    doc["recipients"][1]["view_id"] = 0  # housing's key, now pointing at the full view
    with pytest.raises(DecryptionError, match=r"^Decryption failed\.$"):
        open_as(resign(doc, parties["police.a"]), "housing.a", parties, suite)


def test_key_commitment_stops_one_ciphertext_two_plaintexts(
    parties: dict[str, Party], suite: Suite
) -> None:
    """A malicious sender wraps a different data key for one recipient of a view.
    AES-GCM alone might then open to other bytes; the signed commitment refuses it."""
    police = parties["police.a"]
    value = seal(
        header=header(police, suite),
        views=[
            ViewToSeal(
                ViewKind.FULL,
                b"same view",
                (
                    Recipient("probation.a", parties["probation.a"].decrypt.public),
                    Recipient("housing.a", parties["housing.a"].decrypt.public),
                ),
            )
        ],
        signers=police.signers,
        suite=suite,
    )
    doc = strict_json(value)
    h_doc = doc["header"]
    rogue_key = b"\x07" * 32
    info = wrap_info(header_digest(h_doc), "housing.a", parties["housing.a"].decrypt.key_id, 0)
    doc["recipients"][1]["wrapped_key"] = b64encode(
        suite.hpke().encrypt(
            rogue_key, load_encryption_public(parties["housing.a"].decrypt.public), info=info
        )
    )
    doc["signatures"] = [
        {"alg": k.alg.value, "key_id": k.key_id, "signature": b64encode(k.sign(signed_bytes(doc)))}
        for k in police.signers
    ]
    forged = jcs(doc)
    assert open_as(forged, "probation.a", parties, suite) == b"same view"
    with pytest.raises(DecryptionError, match=r"^Decryption failed\.$"):
        open_as(forged, "housing.a", parties, suite)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_id", "00000000-0000-4000-8000-000000000000"),
        ("created_at", "2020-01-01T00:00:00.000Z"),
        ("sender", "police.b"),
        ("area", "derbyshire"),
        ("topic", "mappa.derbyshire.ra"),
        ("message_type", "release-scheduled"),
        ("schema_version", 2),
        ("subject_ref", "cd" * 32),
        ("isa_id", "another-isa"),
        ("isa_version", 9),
        ("purpose", "other"),
        ("lawful_basis", "UK GDPR"),
        ("classification", "OFFICIAL"),
    ],
)
def test_each_header_field_is_signed(
    parties: dict[str, Party], suite: Suite, field: str, value: Any
) -> None:
    doc = strict_json(sealed(parties, suite))
    doc["header"][field] = value
    with pytest.raises(VerificationError) as err:
        verify(jcs(doc), parties, suite)
    assert err.value.code == "verification.signature-invalid"


def test_signature_by_another_key_is_refused(parties: dict[str, Party], suite: Suite) -> None:
    value = sealed(parties, suite)
    with pytest.raises(VerificationError):
        verify_envelope(
            parse_envelope(value), suite=suite, keys=[k.public for k in parties["other.a"].signers]
        )


def test_missing_signature_is_refused(parties: dict[str, Party], suite: Suite) -> None:
    doc = strict_json(sealed(parties, suite))
    doc["signatures"] = doc["signatures"][:1] if suite is PQ_HYBRID else []
    if suite is CLASSIC:
        with pytest.raises(SchemaError):
            parse_envelope(jcs(doc))
    else:
        with pytest.raises(VerificationError) as err:
            verify(jcs(doc), parties, suite)
        assert err.value.code == "envelope.signature-missing"


def test_truncated_and_oversized_records_are_refused(
    parties: dict[str, Party], suite: Suite
) -> None:
    value = sealed(parties, suite)
    for cut in (1, len(value) // 2, len(value) - 1):
        with pytest.raises(SchemaError):
            parse_envelope(value[:cut])
    with pytest.raises(SchemaError) as err:
        parse_envelope(value + b" " * (MAX_ENVELOPE_BYTES + 1 - len(value)))
    assert err.value.code == "envelope.too-large"


def test_duplicate_json_keys_are_refused(parties: dict[str, Party], suite: Suite) -> None:
    value = sealed(parties, suite)
    dup = value[:-1] + b',"header":{}}'
    with pytest.raises(SchemaError) as err:
        parse_envelope(dup)
    assert err.value.code == "schema.duplicate-key"


def test_wrapped_key_of_wrong_length_fails_quietly(parties: dict[str, Party], suite: Suite) -> None:
    doc = strict_json(sealed(parties, suite))
    wrapped = b64decode(doc["recipients"][0]["wrapped_key"])
    doc["recipients"][0]["wrapped_key"] = b64encode(wrapped[:-1])
    police = parties["police.a"]
    doc["signatures"] = [
        {"alg": k.alg.value, "key_id": k.key_id, "signature": b64encode(k.sign(signed_bytes(doc)))}
        for k in police.signers
    ]
    with pytest.raises(DecryptionError, match=r"^Decryption failed\.$"):
        open_as(jcs(doc), "probation.a", parties, suite)


def test_unknown_and_disallowed_suites() -> None:
    with pytest.raises(VerificationError) as err:
        suite_named("rot13")
    assert err.value.code == "envelope.unknown-suite"
    with pytest.raises(VerificationError) as err:
        suite_named("pq-hybrid", allowed=frozenset({"classic"}))
    assert err.value.code == "envelope.suite-not-allowed"


def test_seal_refuses_inconsistent_input(parties: dict[str, Party], suite: Suite) -> None:
    police = parties["police.a"]
    recip = (Recipient("probation.a", parties["probation.a"].decrypt.public),)
    good = [ViewToSeal(ViewKind.FULL, b"x", recip)]
    with pytest.raises(ValueError, match="one view per kind"):
        seal(
            header=header(police, suite), views=[*good, *good], signers=police.signers, suite=suite
        )
    with pytest.raises(ValueError, match="only one view"):
        seal(
            header=header(police, suite),
            views=[*good, ViewToSeal(ViewKind.SUMMARY, b"y", recip)],
            signers=police.signers,
            suite=suite,
        )
    with pytest.raises(ValueError, match="sender_keys"):
        seal(
            header=header(police, suite, sender_keys=("0" * 32,)),
            views=good,
            signers=police.signers,
            suite=suite,
        )


@pytest.mark.parametrize(
    ("field", "most"),
    [(B64WrappedKey, MAX_WRAPPED_KEY_BYTES), (B64PublicKey, MAX_PUBLIC_KEY_BYTES)],
    ids=["wrapped-key", "public-key"],
)
def test_a_base64_bound_is_on_the_bytes(field: Any, most: int) -> None:
    # docs/envelope.md §2.2: the characters that spell the largest size (1,168 and 1,952
    # bytes are not multiples of 3) also spell a byte or two more, which are refused.
    adapter: TypeAdapter[str] = TypeAdapter(field)
    assert adapter.validate_python(b64encode(bytes(most)))
    over = b64encode(bytes(most + 1))
    assert len(over) == len(b64encode(bytes(most)))
    with pytest.raises(ValidationError, match=f"more than {most} bytes"):
        adapter.validate_python(over)
