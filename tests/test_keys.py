"""Private keys never leak by accident; sealed storage needs the passphrase."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from broker.crypto.keys import PrivateKey
from broker.crypto.pseudonym import SubjectKey
from broker.errors import KeyUnavailable
from broker.trust.keystore import Keystore, passphrase_from_env
from schemas.directory import KeyAlg

PASS = b"a long enough passphrase"


@pytest.mark.parametrize("alg", list(KeyAlg))
def test_private_key_is_not_printable_picklable_or_copyable(alg: KeyAlg) -> None:
    key = PrivateKey.generate(alg)
    secret = key.export_encrypted(PASS)
    assert key.key_id in repr(key)
    assert "PRIVATE" not in repr(key)
    assert repr(key) == str(key) == f"<PrivateKey {alg.value} {key.key_id}>"
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            attempt(key)
    assert "ENCRYPTED PRIVATE KEY" in secret
    assert PrivateKey.import_encrypted(secret, PASS).key_id == key.key_id


def test_wrong_passphrase_says_what_to_fix_and_nothing_more() -> None:
    key = PrivateKey.generate(KeyAlg.ED25519)
    with pytest.raises(KeyUnavailable) as err:
        PrivateKey.import_encrypted(key.export_encrypted(PASS), b"not the passphrase")
    assert str(err.value) == "cannot unlock private key: wrong passphrase or damaged key file"
    assert err.value.retriable


def test_short_passphrase_refused() -> None:
    with pytest.raises(KeyUnavailable, match="at least 12 bytes"):
        PrivateKey.generate(KeyAlg.X25519).export_encrypted(b"short")


def test_key_file_that_does_not_match_its_id_is_refused(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    a, b = PrivateKey.generate(KeyAlg.ED25519), PrivateKey.generate(KeyAlg.ED25519)
    path = store.save("police.x", a)
    path.write_text(b.export_encrypted(PASS).replace(b.key_id, a.key_id))
    with pytest.raises(KeyUnavailable, match="does not match"):
        store.load("police.x", a.key_id)


def test_keystore_files_are_private_and_sealed(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    key = PrivateKey.generate(KeyAlg.MLKEM768_X25519)
    path = store.save("housing.x", key)
    assert path.stat().st_mode & 0o777 == 0o600
    store.save_subject_key(SubjectKey(b"\x01" * 32))
    assert b"\x01" * 32 not in (tmp_path / "subject.key").read_bytes()
    assert Keystore(tmp_path, PASS).load_subject_key().reference("1/1A") == SubjectKey(
        b"\x01" * 32
    ).reference("1/1A")
    with pytest.raises(KeyUnavailable, match="wrong passphrase"):
        Keystore(tmp_path, b"the wrong passphrase").load_subject_key()
    with pytest.raises(KeyUnavailable, match="no private key"):
        store.load("housing.x", "0" * 32)


def test_subject_key_is_keyed_normalised_and_hidden() -> None:
    k1, k2 = SubjectKey(b"\x01" * 32), SubjectKey(b"\x02" * 32)
    assert k1.reference("2011/0456789K") == k1.reference(" 2011/0456789k ")
    assert k1.reference("2011/0456789K") != k2.reference("2011/0456789K")
    assert repr(k1) == "<SubjectKey>"
    with pytest.raises(TypeError):
        pickle.dumps(k1)
    with pytest.raises(KeyUnavailable):
        SubjectKey(b"short")


def test_passphrase_from_env(tmp_path: Path) -> None:
    assert passphrase_from_env({"MAPPA_KEY_PASSPHRASE": "abc"}) == b"abc"
    f = tmp_path / "pass"
    f.write_text("from-a-file\n")
    assert passphrase_from_env({"MAPPA_KEY_PASSPHRASE_FILE": str(f)}) == b"from-a-file"
    with pytest.raises(KeyUnavailable, match="MAPPA_KEY_PASSPHRASE"):
        passphrase_from_env({})
    with pytest.raises(KeyUnavailable, match="cannot read"):
        passphrase_from_env({"MAPPA_KEY_PASSPHRASE_FILE": str(tmp_path / "absent")})
