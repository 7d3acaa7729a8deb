"""One signature per publication (docs/envelope.md §3.6): the tree, sealing and verifying
both forms, the root-signature memo and the parsed public-key cache. The ways a
publication envelope is invalid are the vectors' (tests/test_vectors.py)."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto.encoding import b64decode, b64encode, jcs, strict_json
from broker.crypto.envelope import (
    Recipient,
    ViewToSeal,
    envelope_digest,
    parse_envelope,
    seal,
    seal_publication,
    seal_publication_digested,
    signed_bytes,
    verify_envelope,
)
from broker.crypto.keys import PrivateKey, PublicKey, load_encryption_public, verify_signature
from broker.crypto.publication import (
    RootSignatureMemo,
    check_proof_shape,
    inclusion_path,
    leaf_hash,
    node_hash,
    path_length,
    root_from_path,
    root_signed_bytes,
    tree_root,
)
from broker.crypto.suites import CLASSIC, PQ_HYBRID, Suite
from broker.errors import MappaError, SchemaError, VerificationError
from schemas.common import ViewKind
from schemas.directory import KeyAlg
from schemas.envelope import MAX_PUBLICATION_ENVELOPES, EnvelopeHeader
from tests.test_envelope import Party, header, party

LEAVES = [leaf_hash(bytes([i])) for i in range(33)]


# -- the tree -------------------------------------------------------------------------------


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_tree_shape_is_rfc_9162s() -> None:
    a, b, c, d, e = LEAVES[:5]
    assert tree_root([a, b]) == node_hash(a, b)
    assert tree_root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert tree_root([a, b, c, d, e]) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)), e)
    assert inclusion_path(2, [a, b, c]) == [node_hash(a, b)]
    assert inclusion_path(0, [a, b, c]) == [b, c]
    assert inclusion_path(4, [a, b, c, d, e]) == [node_hash(node_hash(a, b), node_hash(c, d))]


@pytest.mark.parametrize("size", range(2, 34))
def test_every_path_leads_to_the_root(size: int) -> None:
    leaves = LEAVES[:size]
    root = tree_root(leaves)
    for index in range(size):
        path = inclusion_path(index, leaves)
        assert len(path) == path_length(index, size)
        assert root_from_path(leaves[index], index, size, path) == root
        if index:  # the same path from another position leads elsewhere
            other = index - 1
            if path_length(other, size) == len(path):
                assert root_from_path(leaves[index], other, size, path) != root


def test_an_exact_path_always_ends_at_the_root_rfc_9162_step_5() -> None:
    """The verifier skips RFC 9162's last check (sn == 0) because the path's length is
    exact: shown here for every index of every size up to the cap."""
    for size in range(2, MAX_PUBLICATION_ENVELOPES + 1):
        for index in range(size):
            fn, sn = index, size - 1
            for _ in range(path_length(index, size)):
                assert sn != 0
                if fn & 1 or fn == sn:
                    while not fn & 1 and fn != 0:
                        fn, sn = fn >> 1, sn >> 1
                fn, sn = fn >> 1, sn >> 1
            assert sn == 0, (index, size)


@pytest.mark.parametrize(
    ("index", "size", "path", "reason"),
    [
        (0, 1, [], "size"),
        (0, MAX_PUBLICATION_ENVELOPES + 1, [b"\x00" * 32] * 9, "size"),
        (3, 3, [b"\x00" * 32], "index"),
        (-1, 3, [b"\x00" * 32] * 2, "index"),
        (0, 3, [b"\x00" * 32], "holds 2"),
        (2, 3, [b"\x00" * 32] * 2, "holds 1"),
        (0, 2, [b"\x00" * 31], "32 bytes"),
        (0, 2, [b"\x00" * 33], "32 bytes"),
    ],
)
def test_proof_shape_is_bounded(index: int, size: int, path: list[bytes], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_proof_shape(index, size, path)


def test_root_payload_is_not_an_envelope_payload() -> None:
    signed = root_signed_bytes(b"\xab" * 32, 3)
    body = jcs({"root": "ab" * 32, "size": 3})
    ptype = b"application/vnd.mappa.publication+json; version=1"
    assert signed == b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(body), body)


# -- sealing and verifying ------------------------------------------------------------------


@pytest.fixture(scope="module", params=[CLASSIC, PQ_HYBRID], ids=lambda s: s.name)
def world(request: pytest.FixtureRequest) -> tuple[Suite, Party, Party]:
    suite: Suite = request.param
    return suite, party("police.a", suite), party("probation.a", suite)


def items(
    world: tuple[Suite, Party, Party], count: int
) -> list[tuple[EnvelopeHeader, list[ViewToSeal]]]:
    suite, sender, receiver = world
    view = ViewToSeal(
        ViewKind.FULL, b'{"n":1}', (Recipient("probation.a", receiver.decrypt.public),)
    )
    return [
        (header(sender, suite, topic=f"mappa.staffordshire.t{i}"), [view]) for i in range(count)
    ]


def verify(value: bytes, world: tuple[Suite, Party, Party]) -> Any:
    suite, sender, _ = world
    return verify_envelope(
        parse_envelope(value), suite=suite, keys=[k.public for k in sender.signers]
    )


def test_a_publication_verifies_envelope_by_envelope(world: tuple[Suite, Party, Party]) -> None:
    suite, sender, _ = world
    values = seal_publication(items(world, 3), signers=sender.signers, suite=suite)
    docs = [strict_json(v) for v in values]
    # One signature per key for the whole publication, and each names its place.
    assert len({jcs({"s": d["signatures"]}) for d in docs}) == 1
    assert [(d["publication"]["index"], d["publication"]["size"]) for d in docs] == [
        (0, 3), (1, 3), (2, 3)
    ]  # fmt: skip
    for value, doc in zip(values, docs, strict=True):
        assert jcs(doc) == value
        verified = verify(value, world)
        # The digest receipts name is SHA-256 of the signed bytes, as for a lone envelope.
        assert verified.digest == hashlib.sha256(signed_bytes(doc)).hexdigest()
        assert verified.digest == envelope_digest(value)


def test_one_item_is_exactly_a_lone_envelope(world: tuple[Suite, Party, Party]) -> None:
    suite, sender, _ = world
    (value,) = seal_publication(items(world, 1), signers=sender.signers, suite=suite)
    doc = strict_json(value)
    assert set(doc) == {"header", "views", "recipients", "signatures"}
    verify(value, world)
    # The same form seal gives: signatures over signed_bytes itself.
    (hdr, views) = items(world, 1)[0]
    assert set(
        strict_json(seal(header=hdr, views=views, signers=sender.signers, suite=suite))
    ) == set(doc)


@pytest.mark.parametrize("count", [1, 3])
def test_the_digests_sealing_gives_are_those_receipts_name(
    world: tuple[Suite, Party, Party], count: int
) -> None:
    suite, sender, _ = world
    sealed = seal_publication_digested(items(world, count), signers=sender.signers, suite=suite)
    for value, digest in sealed:
        assert digest == envelope_digest(value) == verify(value, world).digest


def test_seal_publication_refuses_inconsistent_input(world: tuple[Suite, Party, Party]) -> None:
    suite, sender, _ = world
    with pytest.raises(ValueError, match="at least one"):
        seal_publication([], signers=sender.signers, suite=suite)
    too_many = items(world, 1) * (MAX_PUBLICATION_ENVELOPES + 1)
    with pytest.raises(ValueError, match="at most"):
        seal_publication(too_many, signers=sender.signers, suite=suite)
    stranger = party("other.a", suite)
    mixed = [*items(world, 1), (header(stranger, suite), items(world, 1)[0][1])]
    with pytest.raises(ValueError, match="sender_keys"):
        seal_publication(mixed, signers=sender.signers, suite=suite)


def test_a_root_signature_verifies_once_and_a_failure_is_not_remembered(
    world: tuple[Suite, Party, Party],
) -> None:
    suite, sender, _ = world
    signer = sender.signers[-1]
    message = root_signed_bytes(b"\x01" * 32, 2)
    signature = signer.sign(message)
    memo = RootSignatureMemo(entries=2)
    memo.verify(signer.public, signature, message)
    memo.verify(signer.public, signature, message)
    assert len(memo) == 1
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    for _ in range(2):  # refused each time, never remembered
        with pytest.raises(VerificationError) as err:
            memo.verify(signer.public, forged, message)
        assert err.value.code == "verification.signature-invalid"
    assert len(memo) == 1
    # Another key, or another message, is another entry: it is verified, and refused.
    with pytest.raises(VerificationError):
        memo.verify(party("other.a", suite).signers[-1].public, signature, message)
    with pytest.raises(VerificationError):
        memo.verify(signer.public, signature, root_signed_bytes(b"\x01" * 32, 3))
    for size in (3, 4):  # bounded: the oldest goes
        other = root_signed_bytes(b"\x01" * 32, size)
        memo.verify(signer.public, signer.sign(other), other)
    assert len(memo) == 2
    with pytest.raises(ValueError, match="at least one"):
        RootSignatureMemo(entries=0)


def test_parsed_public_keys_are_cached_by_algorithm_and_bytes() -> None:
    for alg in (KeyAlg.X25519, KeyAlg.MLKEM768_X25519):
        public = PrivateKey.generate(alg).public
        again = PublicKey(alg, bytes(bytearray(public.raw)))
        assert load_encryption_public(again) is load_encryption_public(public)
    signing = PrivateKey.generate(KeyAlg.ED25519).public
    with pytest.raises(VerificationError, match="not an encryption key"):
        load_encryption_public(signing)
    with pytest.raises(VerificationError, match="not a signing key"):
        verify_signature(PrivateKey.generate(KeyAlg.X25519).public, b"s" * 64, b"m")
    with pytest.raises(VerificationError) as err:
        load_encryption_public(PublicKey(KeyAlg.X25519, b"\x00" * 31))
    assert err.value.code == "verification.bad-public-key"


def test_a_publication_member_that_is_null_is_malformed(world: tuple[Suite, Party, Party]) -> None:
    suite, sender, _ = world
    (value,) = seal_publication(items(world, 1), signers=sender.signers, suite=suite)
    doc = strict_json(value)
    doc["publication"] = None
    with pytest.raises(SchemaError) as err:
        parse_envelope(jcs(doc))
    assert err.value.code == "envelope.malformed"
    doc["publication"] = {"index": 0, "size": 2, "path": [b64encode(b"\x00" * 32)]}
    # Shape is fine, but the signature is over the envelope, not a root.
    with pytest.raises(VerificationError) as verr:
        verify(jcs(doc), world)
    assert verr.value.code == "verification.signature-invalid"


# -- property: nothing in an envelope of a publication can change unnoticed ---------------------


@functools.cache
def classic_publication() -> tuple[list[bytes], list[PublicKey]]:
    world = (CLASSIC, party("police.a", CLASSIC), party("probation.a", CLASSIC))
    values = seal_publication(items(world, 3), signers=world[1].signers, suite=CLASSIC)
    return values, [k.public for k in world[1].signers]


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 2), where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_any_single_byte_change_is_refused_or_only_respells_a_signature(
    which: int, where: float, xor: int
) -> None:
    values, keys = classic_publication()
    value = bytearray(values[which])
    # Half the draws land from the proof on (JCS puts it before recipients, signatures, views).
    start = value.index(b'"publication":') if where < 0.5 else 0
    position = start + int((where % 0.5) * 2 * (len(value) - start))
    value[position] ^= xor
    try:
        changed = parse_envelope(bytes(value))
        verified = verify_envelope(changed, suite=CLASSIC, keys=keys)
    except MappaError:
        return
    # What passes is only another spelling of the same signature: the unused bits of its
    # base64's last character (docs/envelope.md §2), outside the signed bytes and the
    # digest. The envelope it verifies as is the original, byte for byte of what is signed.
    original = parse_envelope(values[which])
    assert verified == verify_envelope(original, suite=CLASSIC, keys=keys)
    spelt = [s.signature for s in changed.envelope.signatures]
    assert spelt != [s.signature for s in original.envelope.signatures]
    assert [b64decode(s) for s in spelt] == [
        b64decode(s.signature) for s in original.envelope.signatures
    ]


def test_a_signature_spelt_another_way_is_the_same_envelope() -> None:
    """The one change the property above lets through, made on purpose: the last base64
    character of a signature with a padding bit set reads as the same 64 bytes."""
    values, keys = classic_publication()
    value = bytearray(values[0])
    start = value.index(b'"signature":"') + len(b'"signature":"')
    at = value.index(b'"', start) - 3  # its last character before the padding "=="
    assert value[at + 1 : at + 3] == b"=="
    value[at] = ord(_SPELLING[(_SPELLING.index(chr(value[at])) ^ 1)])
    verified = verify_envelope(parse_envelope(bytes(value)), suite=CLASSIC, keys=keys)
    assert bytes(value) != values[0]
    assert verified == verify_envelope(parse_envelope(values[0]), suite=CLASSIC, keys=keys)


_SPELLING = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
