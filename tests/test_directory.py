"""The trust directory: signed by governance, versions only forward, keys checked in time."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.crypto.keys import PrivateKey
from broker.crypto.suites import CLASSIC, PQ_HYBRID
from broker.errors import ConfigurationError, VerificationError
from broker.files.strict import FileRefused
from broker.trust.directory import Directory, sign_directory
from broker.trust.keystore import Keystore
from broker.trust.provision import GOVERNANCE, DataPaths, load_directory, provision, write_directory
from schemas.common import format_timestamp
from schemas.directory import KeyAlg
from tests.ledger_world import build_ledger_world
from tests.support import HOUSING, POLICE, SPECS

PASS = b"directory test passphrase"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def paths(tmp_path: Path) -> DataPaths:
    paths = DataPaths(tmp_path)
    # Every agency may send in both suites: the checks below look up keys for each.
    provision(paths, SPECS, passphrase=PASS, now=NOW, suites=("classic", "pq-hybrid"))
    return paths


def governance(paths: DataPaths) -> PrivateKey:
    store = Keystore(paths.keys, PASS)
    [kid] = store.key_ids(GOVERNANCE)
    return store.load(GOVERNANCE, kid)


def test_provisioned_directory_verifies(paths: DataPaths) -> None:
    d = load_directory(paths)
    assert d.version == 1
    assert {a.agency_id for a in d.agencies(area="staffordshire")} == {s.agency_id for s in SPECS}
    with pytest.raises(ConfigurationError, match="already holds"):
        provision(paths, SPECS, passphrase=PASS, now=NOW)


def test_tampered_directory_is_refused(paths: DataPaths) -> None:
    text = paths.directory.read_text().replace("Stoke-on-Trent Housing", "Stoke-on-Trent Housinh")
    paths.directory.write_text(text)
    with pytest.raises(VerificationError) as err:
        load_directory(paths)
    assert err.value.code == "verification.signature-invalid"


def test_directory_signed_by_another_key_is_refused(paths: DataPaths) -> None:
    d = load_directory(paths)
    write_directory(paths, sign_directory(d.document, PrivateKey.generate(KeyAlg.ED25519)))
    with pytest.raises(VerificationError) as err:
        load_directory(paths)
    assert err.value.code == "directory.wrong-signer"


def test_older_directory_is_refused(paths: DataPaths) -> None:
    d = load_directory(paths)
    gov = governance(paths)
    v1 = paths.directory.read_bytes()
    write_directory(paths, sign_directory(d.document.model_copy(update={"version": 2}), gov))
    assert load_directory(paths).version == 2
    paths.directory.write_bytes(v1)
    with pytest.raises(VerificationError) as err:
        load_directory(paths)
    assert err.value.code == "directory.rollback"


def test_directory_bytes_must_be_a_signed_directory(paths: DataPaths) -> None:
    with pytest.raises(Exception, match="signed directory invalid"):
        Directory.verify(b"{}", governance_key=governance(paths).public)


def test_signing_key_checks(paths: DataPaths) -> None:
    d = load_directory(paths)
    police = d.agency(POLICE)
    ed = next(k for k in police.keys if k.alg is KeyAlg.ED25519)
    mldsa = next(k for k in police.keys if k.alg is KeyAlg.ML_DSA_65)
    assert d.signing_keys(POLICE, [ed.key_id], suite=CLASSIC, signed_at=NOW)
    assert d.signing_keys(POLICE, [ed.key_id, mldsa.key_id], suite=PQ_HYBRID, signed_at=NOW)
    cases: dict[str, Callable[[], object]] = {
        "directory.unknown-agency": lambda: d.signing_keys(
            "police.nobody", [ed.key_id], suite=CLASSIC, signed_at=NOW
        ),
        "directory.unknown-key": lambda: d.signing_keys(
            POLICE, ["0" * 32], suite=CLASSIC, signed_at=NOW
        ),
        "envelope.sender-key-mismatch": lambda: d.signing_keys(
            HOUSING, [ed.key_id], suite=CLASSIC, signed_at=NOW
        ),
        "envelope.signature-missing": lambda: d.signing_keys(
            POLICE, [mldsa.key_id], suite=CLASSIC, signed_at=NOW
        ),
        "directory.key-expired": lambda: d.signing_keys(
            POLICE, [ed.key_id], suite=CLASSIC, signed_at=NOW - timedelta(days=1)
        ),
    }
    for code, call in cases.items():
        with pytest.raises(VerificationError) as err:
            call()
        assert err.value.code == code


def test_revoked_key_refused_for_anything_signed_after(paths: DataPaths) -> None:
    d = load_directory(paths)
    police = d.agency(POLICE)
    revoked_at = NOW + timedelta(days=10)
    keys = tuple(
        k.model_copy(update={"revoked_at": format_timestamp(revoked_at)})
        if k.alg is KeyAlg.ED25519
        else k
        for k in police.keys
    )
    doc = d.document.model_copy(
        update={
            "version": 2,
            "agencies": tuple(
                a.model_copy(update={"keys": keys}) if a.agency_id == POLICE else a
                for a in d.document.agencies
            ),
        }
    )
    d2 = Directory(doc)
    ed = next(k for k in keys if k.alg is KeyAlg.ED25519)
    assert d2.signing_keys(
        POLICE, [ed.key_id], suite=CLASSIC, signed_at=revoked_at - timedelta(seconds=1)
    )
    with pytest.raises(VerificationError) as err:
        d2.signing_keys(POLICE, [ed.key_id], suite=CLASSIC, signed_at=revoked_at)
    assert err.value.code == "directory.key-revoked"
    # A backdated claim does not help if the broker saw the record after revocation.
    with pytest.raises(VerificationError):
        d2.signing_keys(
            POLICE,
            [ed.key_id],
            suite=CLASSIC,
            signed_at=NOW,
            revocation_check_at=revoked_at + timedelta(hours=1),
        )


def test_encryption_key_for_each_suite(paths: DataPaths) -> None:
    d = load_directory(paths)
    assert d.encryption_key(HOUSING, suite=CLASSIC, at=NOW).alg is KeyAlg.X25519
    assert d.encryption_key(HOUSING, suite=PQ_HYBRID, at=NOW).alg is KeyAlg.MLKEM768_X25519
    with pytest.raises(VerificationError) as err:
        d.encryption_key(HOUSING, suite=CLASSIC, at=NOW + timedelta(days=3 * 365))
    assert err.value.code == "directory.no-encryption-key"


def test_a_running_deployment_reads_its_directory_file_strictly(tmp_path: Path) -> None:
    """The directory a running deployment reloads is held to the strict reader's rules,
    as at start-up: two ``document`` keys (a parser that takes the first would trust an
    unsigned one) are refused, and the version in force stays."""
    world = build_ledger_world(tmp_path / "data", None)
    try:
        deployment = world.deployment
        good = deployment.paths.directory.read_text()
        forged = json.loads(good)["document"] | {"agencies": []}
        deployment.paths.directory.write_text(
            '{"document": ' + json.dumps(forged) + ", " + good[1:]
        )
        with pytest.raises(FileRefused, match="duplicate JSON key 'document'") as refused:
            deployment.refresh_trust()
        assert refused.value.code == "file.invalid-json"
        assert deployment.directory.version == 1
        assert len(deployment.directory.document.agencies) == len(SPECS)
    finally:
        world.close()
