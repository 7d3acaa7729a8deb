"""`mappa keys` and `mappa directory`, as an operator uses them (in-process, real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.trust.keystore import Keystore
from broker.trust.provision import GOVERNANCE, DataPaths

AGENCIES = Path(__file__).resolve().parent.parent / "deploy" / "agencies.example.yaml"
PASS = "an operator's passphrase"  # noqa: S105 - a test deployment's
POLICE = "police.staffordshire"


def mappa(data_dir: Path, group: str, *args: str) -> int:
    return main([group, "--data-dir", str(data_dir), *args])


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    d = tmp_path / "deployment"
    assert mappa(d, "keys", "init", "--agencies", str(AGENCIES)) == 0
    return d


def key_rows(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert mappa(data_dir, "keys", "show", "--agency", POLICE, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["keys"]
    return {str(r["key_id"]): r for r in rows}


def key_of(rows: dict[str, dict[str, object]], alg: str) -> str:
    return next(k for k, r in rows.items() if r["alg"] == alg and r["status"] == "current")


def test_rotate_revoke_prune_cycle(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = key_rows(data_dir, capsys)
    assert {r["status"] for r in before.values()} == {"current"}
    assert all(r["private_key_held"] for r in before.values())
    old_x = key_of(before, "x25519")

    assert mappa(data_dir, "keys", "rotate", "--agency", POLICE, "--alg", "x25519") == 0
    assert "version 2 signed and in force" in capsys.readouterr().out
    after = key_rows(data_dir, capsys)
    assert after[old_x]["status"] == "superseded"
    new_x = key_of(after, "x25519")

    # The current key cannot be pruned; the superseded one can.
    assert mappa(data_dir, "keys", "prune", "--agency", POLICE, "--key", new_x) == 1
    assert "still current" in capsys.readouterr().err
    assert mappa(data_dir, "keys", "prune", "--agency", POLICE, "--key", old_x) == 0
    assert not key_rows(data_dir, capsys)[old_x]["private_key_held"]

    ed = key_of(after, "ed25519")
    revoke = ("keys", "revoke", "--agency", POLICE, "--reason", "device lost", "--key")
    assert mappa(data_dir, *revoke, ed) == 0
    assert key_rows(data_dir, capsys)[ed]["status"] == "revoked"
    assert mappa(data_dir, *revoke, "0" * 32) == 1
    assert mappa(data_dir, *revoke, ed, "--at", "yesterday") == 1
    assert "--at must look like" in capsys.readouterr().err

    assert mappa(data_dir, "directory", "verify") == 0
    assert "valid: directory version 3" in capsys.readouterr().out


def test_without_the_governance_key_changes_wait_for_signature(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = DataPaths(data_dir)
    vault = data_dir.parent / "governance-vault"
    shutil.move(paths.keys / GOVERNANCE, vault)
    assert mappa(data_dir, "keys", "rotate", "--agency", "housing.stoke-on-trent") == 0
    assert "directory.pending.json" in capsys.readouterr().out
    assert paths.pending_directory.exists()
    assert mappa(data_dir, "directory", "sign") == 1
    assert "no governance key" in capsys.readouterr().err
    shutil.move(vault, paths.keys / GOVERNANCE)
    assert mappa(data_dir, "directory", "sign") == 0
    assert not paths.pending_directory.exists()
    assert mappa(data_dir, "directory", "show") == 0
    out = capsys.readouterr().out
    assert "directory version 2" in out
    assert "housing.stoke-on-trent" in out
    # Signing the same version again is refused: versions only go forward.
    document = json.loads(paths.directory.read_text())["document"]
    paths.pending_directory.write_text(json.dumps(document))
    assert mappa(data_dir, "directory", "sign") == 1
    assert "not newer" in capsys.readouterr().err


def test_tampered_directory_fails_verify(
    data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    forged = tmp_path / "forged.json"
    forged.write_text(DataPaths(data_dir).directory.read_text().replace("HMP Stafford", "HMP X"))
    assert mappa(data_dir, "directory", "verify", str(forged)) == 1
    assert "verification.signature-invalid" in capsys.readouterr().err
    assert mappa(data_dir, "directory", "show", "--json") == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1


def test_bad_agency_file_and_missing_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    bad = tmp_path / "agencies.yaml"
    bad.write_text("agencies:\n  - {agency_id: police.x, role: sheriff}\n")
    assert mappa(tmp_path / "d", "keys", "init", "--agencies", str(bad)) == 1
    assert "agency_id, name, role, areas" in capsys.readouterr().err
    monkeypatch.delenv("MAPPA_KEY_PASSPHRASE")
    assert mappa(tmp_path / "d", "keys", "init", "--agencies", str(AGENCIES)) == 1
    assert "MAPPA_KEY_PASSPHRASE" in capsys.readouterr().err


def test_no_private_key_material_in_output_or_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Keystore(DataPaths(data_dir).keys, PASS.encode())
    keys = [store.load(POLICE, kid) for kid in store.key_ids(POLICE)]
    secrets = [k._key.private_bytes_raw().hex() for k in keys]
    assert mappa(data_dir, "keys", "show") == 0
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", "the wrong passphrase")
    assert mappa(data_dir, "keys", "rotate", "--agency", POLICE) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err + "".join(repr(k) for k in keys)
    assert "wrong passphrase" in text
    assert not any(secret in text for secret in secrets)
    assert "PRIVATE KEY" not in text
    assert PASS not in text
    # The mistyped passphrase sealed nothing: every key still opens with the right one.
    assert [store.load(POLICE, kid).key_id for kid in store.key_ids(POLICE)] == [
        k.key_id for k in keys
    ]
