"""Signed checkpoints (C2SP signed notes): round trip, and every way one is refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from broker.crypto.keys import PrivateKey
from broker.errors import ConfigurationError, VerificationError
from broker.ledger.checkpoint import CheckpointSigner, open_checkpoint, verifier_key
from broker.ledger.database import connect
from broker.ledger.verify_proofs import (
    MAX_NOTE_BYTES,
    ProofError,
    note_key_id,
    parse_checkpoint_text,
    parse_verifier_key,
    split_note,
    verify_checkpoint,
)
from schemas.directory import KeyAlg

ORIGIN = "mappa-broker/test/audit-ledger"
ROOT = bytes(range(32))
TIME = "2026-11-23T10:00:00.000Z"
INDEX = bytes(range(32, 64))


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(origin=ORIGIN, key=PrivateKey.generate(KeyAlg.ED25519))


def test_round_trip_and_format(signer: CheckpointSigner) -> None:
    note = signer.sign(12, ROOT, TIME, INDEX)
    text, _, sig = note.partition("\n\n")
    assert text.split("\n") == [
        ORIGIN,
        "12",
        base64.b64encode(ROOT).decode(),
        f"time {TIME}",
        f"index {base64.b64encode(INDEX).decode()}",
    ]
    assert sig.startswith(f"\u2014 {ORIGIN} ")
    name, public = parse_verifier_key(signer.verifier_key)
    assert name == ORIGIN
    assert base64.b64decode(sig.split()[-1])[:4] == note_key_id(ORIGIN, public)
    cp = open_checkpoint(note, signer.verifier_key, origin=ORIGIN)
    assert (cp.size, cp.root, cp.time, cp.index) == (12, ROOT, TIME, INDEX)


def test_every_refusal(signer: CheckpointSigner) -> None:
    note = signer.sign(12, ROOT, TIME, INDEX)
    other = CheckpointSigner(origin=ORIGIN, key=PrivateKey.generate(KeyAlg.ED25519))
    forged_text = note.replace("\n12\n", "\n13\n", 1)
    refused = {
        "other key": (note, other.verifier_key, "no signature by"),
        "text changed": (forged_text, signer.verifier_key, "invalid"),
        "no blank line": (note.replace("\n\n", "\n"), signer.verifier_key, "not a signed note"),
        "hyphen not em dash": (note.replace("\u2014", "-"), signer.verifier_key, "em dash"),
        "bad base64": (note[:-3] + "!!\n", signer.verifier_key, "not base64"),
        "non-ascii base64": (note[:-3] + "\u00e9\u00e9\n", signer.verifier_key, "not base64"),
        "too large": (note + "x" * MAX_NOTE_BYTES, signer.verifier_key, "at most"),
        "many signatures": (note + note.split("\n\n")[1] * 16, signer.verifier_key, "more than"),
    }
    for case, (text, vkey, message) in refused.items():
        with pytest.raises(ProofError, match=message):
            verify_checkpoint(text, vkey)
        with pytest.raises(VerificationError):
            open_checkpoint(text, vkey, origin=ORIGIN)
        assert case
    with pytest.raises(ProofError, match="not 'elsewhere'"):
        verify_checkpoint(note, signer.verifier_key, origin="elsewhere")
    with pytest.raises(ProofError, match="key name"):
        split_note("a\nb\nc\n\n\u2014  AAAA\n")


def test_bad_checkpoint_bodies_and_keys(signer: CheckpointSigner) -> None:
    root = base64.b64encode(ROOT).decode()
    for text, message in (
        ("origin\n12\n", "newline-terminated"),
        (f"origin\n012\n{root}\n", "decimal"),
        (f"origin\ntwelve\n{root}\n", "decimal"),
        # Digits of other scripts, superscripts, and past what int() reads: ASCII only.
        (f"origin\n\u0663\n{root}\n", "decimal"),
        (f"origin\n\u00b2\n{root}\n", "decimal"),
        (f"origin\n{'9' * 5000}\n{root}\n", "decimal"),
        ("origin\n12\n\u00e9AAA\n", "not base64"),
        ("origin\n12\n@@@@\n", "not base64"),
        ("origin\n12\nAAAA\n", "32 bytes"),
        (f"origin\n12\n{root}\n\nx\n", "must not be empty"),
    ):
        with pytest.raises(ProofError, match=message):
            parse_checkpoint_text(text)
    name, _, rest = signer.verifier_key.partition("+")
    key_id, _, blob = rest.partition("+")
    for vkey, message in (
        ("no-plus-signs", "is <name>"),
        (f"{name}+zz+{blob}", "not well formed"),
        (f"{name}+{key_id}+AAAA", "not an Ed25519"),
        (f"other+{key_id}+{blob}", "does not match"),
    ):
        with pytest.raises(ProofError, match=message):
            parse_verifier_key(vkey)
    with pytest.raises(ConfigurationError, match="Ed25519"):
        CheckpointSigner(origin=ORIGIN, key=PrivateKey.generate(KeyAlg.X25519))
    with pytest.raises(ConfigurationError, match="Ed25519"):
        verifier_key(ORIGIN, PrivateKey.generate(KeyAlg.X25519).public)


def test_database_targets_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unsupported ledger database URL scheme"):
        connect("mysql://root@localhost/test")
    with pytest.raises(ConfigurationError, match="cannot connect") as caught:
        connect("postgresql://officer:secret@127.0.0.1:9/none?connect_timeout=2")
    assert "secret" not in str(caught.value)
    db = connect(tmp_path / "x.sqlite")
    assert db.dialect == "sqlite"
    db.close()
