"""Witness cosignatures (C2SP tlog-cosignature), the witness policy, the tlog-witness
exchange and the witness's own checks: the round trips, and every way each refuses."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.crypto.keys import PrivateKey
from broker.errors import ConfigurationError, SchemaError, VerificationError
from broker.ledger.verify_proofs import (
    COSIGNATURE_BYTES,
    MAX_NOTE_BYTES,
    MAX_WITNESSES,
    ProofError,
    cosignature_key_id,
    cosigned_message,
    parse_cosigner_key,
    policy_from_json,
    verify_cosignature,
    verify_policy_signature,
    verify_witnessed,
    witness_policy,
)
from broker.witness.cosignature import Cosigner, check_cosignature, cosigner_key, with_cosignatures
from broker.witness.policy import (
    Policy,
    SignedWitnessPolicy,
    WitnessEntry,
    WitnessPolicyDocument,
    load_policy,
    sign_policy,
    write_policy,
)
from broker.witness.protocol import (
    MAX_REQUEST_BYTES,
    InProcessClient,
    handle,
    parse_answer,
    parse_request,
    request_body,
)
from broker.witness.witness import WitnessAlarm, WitnessConflict, WitnessRefusal, WitnessStore
from schemas.directory import KeyAlg
from tests.witness_helpers import ORIGIN, Log, new_log, new_witness

TIMESTAMP = 1_795_000_000


def cosigner(name: str = "witness.test/w1") -> Cosigner:
    return Cosigner(name=name, key=PrivateKey.generate(KeyAlg.ED25519))


@pytest.fixture
def log() -> Log:
    made = new_log()
    made.grow(5)
    return made


# -- cosignatures ----------------------------------------------------------------------
def test_cosignature_format_and_round_trip(log: Log) -> None:
    note = log.note()
    w = cosigner()
    line = w.cosign(note, TIMESTAMP)
    assert line.startswith("\u2014 witness.test/w1 ")
    assert line.endswith("\n")
    blob = base64.b64decode(line.split()[-1])
    name, public = parse_cosigner_key(w.vkey)
    assert len(blob) == COSIGNATURE_BYTES == 76
    assert blob[:4] == cosignature_key_id(name, public)
    assert int.from_bytes(blob[4:12], "big") == TIMESTAMP
    text = note.partition("\n\n")[0] + "\n"
    assert cosigned_message(text, TIMESTAMP).startswith(b"cosignature/v1\ntime 1795000000\n")
    assert verify_cosignature(note + line, w.vkey) == TIMESTAMP
    assert check_cosignature(note + line, w.vkey) == TIMESTAMP
    # The key id differs from the signed-note (0x01) one: the same key cannot be mistaken
    # for a log key.
    assert base64.b64decode(w.vkey.split("+", 2)[2])[0] == 0x04


def test_every_cosignature_refusal(log: Log) -> None:
    note = log.note()
    w, other = cosigner(), cosigner()
    line = w.cosign(note, TIMESTAMP)
    blob = bytearray(base64.b64decode(line.split()[-1]))
    flipped = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
    late = bytes(blob[:4]) + (2**63).to_bytes(8, "big") + bytes(blob[12:])
    refused = {
        "no line by it": (note, w.vkey, "no cosignature by"),
        "other key, same name": (note + line, other.vkey, "no cosignature by"),
        "signature bit flipped": (
            note + f"\u2014 witness.test/w1 {_b64(flipped)}\n",
            w.vkey,
            "invalid",
        ),
        "text changed": ((note + line).replace("\n5\n", "\n6\n", 1), w.vkey, "invalid"),
        "truncated": (
            note + f"\u2014 witness.test/w1 {_b64(bytes(blob[:40]))}\n",
            w.vkey,
            "76 bytes",
        ),
        "too long": (
            note + f"\u2014 witness.test/w1 {_b64(bytes(blob) + b'x')}\n",
            w.vkey,
            "76 bytes",
        ),
        "timestamp past 2**63-1": (
            note + f"\u2014 witness.test/w1 {_b64(late)}\n",
            w.vkey,
            "2\\*\\*63",
        ),
        "not base64": (note + "\u2014 witness.test/w1 !!!!\n", w.vkey, "not base64"),
        "oversize note": (note + line + "x" * MAX_NOTE_BYTES, w.vkey, "at most"),
    }
    for case, (text, vkey, message) in refused.items():
        with pytest.raises(ProofError, match=message):
            verify_cosignature(text, vkey)
        with pytest.raises(VerificationError) as caught:
            check_cosignature(text, vkey)
        assert caught.value.code == "witness.cosignature-invalid", case
    with pytest.raises(ValueError, match="2\\*\\*63"):
        w.cosign(note, 2**63)
    with pytest.raises(VerificationError, match="signed note"):
        w.cosign("not a note", TIMESTAMP)


def test_cosigner_keys_are_checked() -> None:
    w = cosigner()
    name, _, rest = w.vkey.partition("+")
    key_id, _, blob = rest.partition("+")
    log_style = base64.b64encode(b"\x01" + base64.b64decode(blob)[1:]).decode()
    for vkey, message in (
        ("no-plus-signs", "is <name>"),
        (f"{name}+zz+{blob}", "not well formed"),
        (f"{name}+{key_id}+{log_style}", "not an Ed25519 cosignature"),
        (f"other+{key_id}+{blob}", "does not match"),
    ):
        with pytest.raises(ProofError, match=message):
            parse_cosigner_key(vkey)
    with pytest.raises(ConfigurationError, match="Ed25519"):
        Cosigner(name="w", key=PrivateKey.generate(KeyAlg.X25519))
    with pytest.raises(ConfigurationError, match="Ed25519"):
        cosigner_key("w", PrivateKey.generate(KeyAlg.X25519).public)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- verifying against a policy ------------------------------------------------------------
def test_witnessed_needs_threshold_distinct_valid_witnesses(log: Log) -> None:
    note = log.note()
    ws = [cosigner(f"witness.test/w{i}") for i in range(3)]
    policy = witness_policy(ORIGIN, log.signer.verifier_key, [w.vkey for w in ws], 2)
    lines = [w.cosign(note, TIMESTAMP) for w in ws]
    body, names = verify_witnessed(with_cosignatures(note, lines[:2]), policy)
    assert body.size == 5
    assert names == ("witness.test/w0", "witness.test/w1")
    refusals = {
        "one of two": with_cosignatures(note, lines[:1]),
        # The same witness twice counts once.
        "one witness twice": note + lines[0] + lines[0],
        # A witness the policy does not name is ignored.
        "a stranger": with_cosignatures(
            note, [lines[0], cosigner("witness.test/w9").cosign(note, 1)]
        ),
        # A cosignature over another checkpoint does not count.
        "moved from another checkpoint": note + lines[0] + ws[1].cosign(log.note(4), TIMESTAMP),
    }
    for case, text in refusals.items():
        with pytest.raises(ProofError, match="cosigned by 1 of 3"):
            verify_witnessed(text, policy)
        assert case
    other_log = new_log()
    other_log.grow(5)
    with pytest.raises(ProofError, match="no signature by"):
        verify_witnessed(with_cosignatures(other_log.note(), lines), policy)


def test_policy_rules_are_checked(log: Log) -> None:
    ws = [cosigner(f"witness.test/w{i}") for i in range(3)]
    keys = [w.vkey for w in ws]
    for witnesses, threshold, message in (
        (keys, 0, "between 1 and 3"),
        (keys, 4, "between 1 and 3"),
        ([keys[0], keys[0]], 1, "named twice"),
        ([*keys, cosigner("witness.test/w0").vkey], 1, "named twice"),
        ([cosigner(f"w{i}").vkey for i in range(MAX_WITNESSES + 1)], 1, "at most"),
    ):
        with pytest.raises(ProofError, match=message):
            witness_policy(ORIGIN, log.signer.verifier_key, witnesses, threshold)
    with pytest.raises(ProofError, match="verifier key"):
        witness_policy(ORIGIN, keys[0], keys, 1)
    for document in ({}, {"kind": "mappa.witness-policy", "witnesses": "x"}, {"kind": "other"}):
        with pytest.raises(ProofError, match=r"not a mappa\.witness-policy"):
            policy_from_json(document)


def _document(log: Log, ws: list[Cosigner], threshold: int = 2) -> WitnessPolicyDocument:
    return WitnessPolicyDocument(
        kind="mappa.witness-policy",
        version=1,
        origin=ORIGIN,
        log_verifier_key=log.signer.verifier_key,
        witnesses=tuple(
            WitnessEntry(name=w.name, verifier_key=w.vkey, agency=agency)
            for w, agency in zip(
                ws, ("police.staffordshire", "probation.staffordshire", "independent"), strict=False
            )
        ),
        threshold=threshold,
    )


def test_signed_policy_round_trip_and_refusals(tmp_path: Path, log: Log) -> None:
    governance = PrivateKey.generate(KeyAlg.ED25519)
    ws = [cosigner(f"witness.test/w{i}") for i in range(3)]
    signed = sign_policy(_document(log, ws), governance)
    write_policy(tmp_path, signed)
    policy = load_policy(tmp_path, governance.public)
    assert policy is not None
    assert policy.threshold == 2
    assert [w.agency for w in policy.witnesses][-1] == "independent"
    # The standalone verifier checks the same signature with the stdlib's JSON.
    raw = json.loads((tmp_path / "witness-policy.json").read_text())
    standalone = verify_policy_signature(raw, governance.public.raw)
    assert standalone == policy.rules
    note = log.note()
    witnessed = policy.verify_witnessed(
        with_cosignatures(note, [w.cosign(note, 1) for w in ws[1:]])
    )
    assert witnessed.witnesses == ("witness.test/w1", "witness.test/w2")
    with pytest.raises(VerificationError) as caught:
        policy.verify_witnessed(note)
    assert caught.value.code == "witness.below-threshold"
    assert load_policy(tmp_path / "none", governance.public) is None
    # Refusals: another signer, a changed document, a malformed file, a bad document.
    other = PrivateKey.generate(KeyAlg.ED25519)
    with pytest.raises(VerificationError) as caught:
        Policy.verify(signed, governance_key=other.public)
    assert caught.value.code == "witness.policy-wrong-signer"
    changed = SignedWitnessPolicy(
        document=_document(log, ws, threshold=1), signature=signed.signature
    )
    with pytest.raises(VerificationError):
        Policy.verify(changed, governance_key=governance.public)
    raw["document"]["threshold"] = 1
    with pytest.raises(ProofError, match="not signed by the governance key"):
        verify_policy_signature(raw, governance.public.raw)
    with pytest.raises(ProofError, match="document, signature"):
        verify_policy_signature({"document": 1}, governance.public.raw)
    with pytest.raises(SchemaError) as malformed:
        Policy.verify(b'{"document": {}}', governance_key=governance.public)
    assert malformed.value.code == "witness.policy-malformed"
    with pytest.raises(VerificationError) as bad:
        sign_policy(_document(log, [ws[0], ws[0]], threshold=1), governance)
    assert bad.value.code == "witness.policy-invalid"
    with pytest.raises(VerificationError, match="name differs"):
        Policy(
            _document(log, ws).model_copy(
                update={
                    "witnesses": (
                        WitnessEntry(name="renamed", verifier_key=ws[0].vkey, agency="independent"),
                    ),
                    "threshold": 1,
                }
            )
        )
    with pytest.raises(VerificationError) as unknown:
        policy.entry("witness.test/nobody")
    assert unknown.value.code == "witness.unknown"
    with pytest.raises(ConfigurationError):
        sign_policy(_document(log, ws), PrivateKey.generate(KeyAlg.X25519))


# -- the witness's checks ----------------------------------------------------------------
def test_witness_cosigns_consistent_growth_and_remembers(tmp_path: Path, log: Log) -> None:
    witness = new_witness(tmp_path, log)
    line = witness.add_checkpoint(0, [], log.note())
    assert verify_cosignature(log.note() + line, witness.cosigner.vkey) > 0
    log.grow(6)
    witness.add_checkpoint(5, log.proof(5), log.note())
    # The same checkpoint again (same size, same root): cosigned again.
    witness.add_checkpoint(11, [], log.note())
    witness.store.close()
    reopened = WitnessStore(tmp_path / "witness.test_w1.sqlite")
    latest = reopened.latest(ORIGIN)
    assert latest is not None
    assert (latest.size, latest.root) == (11, log.root())
    assert reopened.alarms() == []
    reopened.close()


def test_every_witness_refusal(tmp_path: Path, log: Log) -> None:
    alarms: list[WitnessAlarm] = []
    witness = new_witness(tmp_path, log, alarms=alarms)
    witness.add_checkpoint(0, [], log.note())
    stranger = new_log()
    stranger.grow(7)
    other_origin = log.signer.__class__(
        origin="elsewhere/log", key=PrivateKey.generate(KeyAlg.ED25519)
    )
    log.grow(3)

    def refused(old: int, proof: list[bytes], note: str) -> WitnessRefusal:
        with pytest.raises(WitnessRefusal) as caught:
            witness.add_checkpoint(old, proof, note)
        return caught.value

    cases = {
        "too many proof lines": (
            refused(5, [bytes(32)] * 64, log.note()),
            "witness.malformed",
            400,
        ),
        "short proof hash": (refused(5, [bytes(31)], log.note()), "witness.malformed", 400),
        "not a note": (refused(5, [], "nothing"), "witness.malformed", 400),
        "unknown log": (
            refused(5, [], other_origin.sign(8, log.root(), "t", bytes(32))),
            "witness.unknown-log",
            404,
        ),
        "unknown key": (refused(5, log.proof(5), stranger.note()), "witness.unknown-key", 403),
        "old past size": (refused(9, [], log.note()), "witness.malformed", 400),
    }
    for case, (exc, code, status) in cases.items():
        assert (exc.code, exc.status, exc.alarm) == (code, status, False), case
    conflict = refused(3, log.proof(3), log.note())
    assert isinstance(conflict, WitnessConflict)
    assert conflict.size == 5
    assert conflict.status == 409
    assert alarms == []
    assert witness.store.alarms() == []
    # A proof that does not lead from the witness's tree: an alarm.
    wrong = refused(5, [bytes(32)] * len(log.proof(5)), log.note())
    assert (wrong.code, wrong.status, wrong.alarm) == ("witness.inconsistent", 422, True)
    # A fork at the size it holds: an alarm.
    fork = new_log()
    fork.signer = log.signer
    fork.grow(5, tag=b"forged")
    forked = refused(5, [], fork.note())
    assert (forked.code, forked.status, forked.alarm) == ("witness.inconsistent", 409, True)
    # A smaller checkpoint than the one it holds: a rollback, an alarm.
    rollback = refused(3, log.proof(3, 4), log.note(4))
    assert (rollback.code, rollback.alarm) == ("witness.rollback", True)
    assert [a.code for a in alarms] == [
        "witness.inconsistent",
        "witness.inconsistent",
        "witness.rollback",
    ]
    kept = witness.store.alarms()
    assert [(a["code"], a["size"], a["own_size"]) for a in kept] == [
        ("witness.inconsistent", 8, 5),
        ("witness.inconsistent", 5, 5),
        ("witness.rollback", 4, 5),
    ]
    assert witness.store.alarms(after=kept[-1]["id"]) == []
    latest = witness.latest()
    assert latest is not None
    assert latest.size == 5


def test_an_alarm_listener_that_fails_does_not_lift_the_refusal(tmp_path: Path, log: Log) -> None:
    witness = new_witness(tmp_path, log)
    witness.add_checkpoint(0, [], log.note())

    def broken(_: object) -> None:
        raise RuntimeError("audit down")

    witness.on_alarm = broken
    with pytest.raises(WitnessRefusal) as caught:
        witness.add_checkpoint(0, [], log.note(3))
    assert caught.value.code == "witness.rollback"
    assert len(witness.store.alarms()) == 1


def test_a_stale_state_loses_the_race(tmp_path: Path, log: Log) -> None:
    """Two requests checked against the same state: the second to record loses (the
    tlog-witness rollback race)."""
    witness = new_witness(tmp_path, log)
    witness.add_checkpoint(0, [], log.note())
    before = witness.latest()
    log.grow(2)
    witness.add_checkpoint(5, log.proof(5), log.note())
    assert before is not None
    assert not witness.store.advance(before, before, "t")
    assert not witness.store.advance(None, before, "t")


# -- the tlog-witness exchange -----------------------------------------------------------
def test_request_round_trip_and_answers(tmp_path: Path, log: Log) -> None:
    witness = new_witness(tmp_path, log)
    client = InProcessClient(witness)
    [line] = client.add_checkpoint(0, [], log.note())
    assert line.startswith("\u2014 witness.test/w1 ")
    log.grow(4)
    body = request_body(5, log.proof(5), log.note())
    assert body.startswith(b"old 5\n")
    assert parse_request(body) == (5, log.proof(5), log.note())
    with pytest.raises(WitnessConflict) as conflict:
        client.add_checkpoint(0, [], log.note())
    assert conflict.value.size == 5
    assert handle(witness, request_body(0, [], log.note()))[:2] == (409, "text/x.tlog.size")
    status, _, answer = handle(witness, request_body(5, [bytes(32)], log.note()))
    assert status == 422
    assert answer.startswith(b"witness.inconsistent: ")
    with pytest.raises(WitnessRefusal) as refused:
        parse_answer(status, answer)
    assert (refused.value.code, refused.value.alarm) == ("witness.inconsistent", True)
    assert client.add_checkpoint(5, log.proof(5), log.note())


def test_malformed_requests_and_answers_are_refused() -> None:
    good = request_body(0, [], "n\n")
    for body, message in (
        (b"x" * (MAX_REQUEST_BYTES + 1), "at most"),
        (b"\xff\xfe", "UTF-8"),
        (b"old 1\nAAAA", "empty line"),
        (b"old 01\n\nnote", "empty line"),
        (b"old -1\n\nnote", "empty line"),
        (b"old 1\n" + b"\n".join([base64.b64encode(bytes(32))] * 64) + b"\n\nnote", "at most 63"),
        (b"old 1\n!!!!\n\nnote", "one base64 hash"),
        (b"old 1\nAAAA\n\nnote", "32 bytes"),
    ):
        with pytest.raises(WitnessRefusal, match=message) as caught:
            parse_request(body)
        assert caught.value.code == "witness.malformed"
    assert parse_request(good) == (0, [], "n\n")
    for status, answer, code in (
        (200, b"", "witness.malformed"),
        (200, b"- w AAAA\n", "witness.malformed"),
        (200, b"\xe2\x80\x94 w !!!!\n", "witness.malformed"),
        (409, b"twelve\n", "witness.refused"),
        (500, b"Internal Server Error", "witness.refused"),
        (403, b"witness.unknown-key: no signature by the log\n", "witness.unknown-key"),
    ):
        with pytest.raises(WitnessRefusal) as caught:
            parse_answer(status, answer)
        assert caught.value.code == code


# One witnessed checkpoint for the property below (made once: Hypothesis reruns the body).
_LOG = new_log()
_LOG.grow(7)
_COSIGNER = cosigner()
_NOTE = _LOG.note()
_LINE = _COSIGNER.cosign(_NOTE, TIMESTAMP)


@given(st.data())
def test_any_single_byte_change_to_a_cosigned_note_is_refused(data: st.DataObject) -> None:
    """Any one byte of the note text or of the cosignature's blob changed: refused."""
    text = _NOTE.partition("\n\n")[0] + "\n"
    blob = bytearray(base64.b64decode(_LINE.split()[-1]))
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(text) - 1))
        changed = text[:i] + chr(ord(text[i]) ^ data.draw(st.integers(1, 31))) + text[i + 1 :]
        forged = _NOTE.replace(text, changed, 1) + _LINE
    else:
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
        forged = _NOTE + f"\u2014 witness.test/w1 {_b64(bytes(blob))}\n"
    with pytest.raises(ProofError):
        verify_cosignature(forged, _COSIGNER.vkey)
