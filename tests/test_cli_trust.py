"""`mappa keys` and `mappa directory`, as an operator uses them (in-process, real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.keystore import Keystore
from broker.provision import GOVERNANCE, DataPaths

AGENCIES = Path(__file__).resolve().parent.parent / "deploy" / "agencies.example.yaml"
PASS = "an operator's passphrase"  # noqa: S105 - a test deployment's


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    d = tmp_path / "deployment"
    assert main(["keys", "--data-dir", str(d), "init", "--agencies", str(AGENCIES)]) == 0
    return d


def mappa(data_dir: Path, *args: str) -> int:
    group, *rest = args
    return main([group, "--data-dir", str(data_dir), *rest])


def keys_json(
    data_dir: Path, capsys: pytest.CaptureFixture[str], agency: str
) -> list[dict[str, object]]:
    capsys.readouterr()
    assert mappa(data_dir, "keys", "show", "--agency", agency, "--json") == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)["keys"]
    return rows


def test_rotate_revoke_prune_cycle(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    police = "police.staffordshire"
    before = keys_json(data_dir, capsys, police)
    assert {r["status"] for r in before} == {"current"}
    assert all(r["private_key_held"] for r in before)
    old_x = next(r["key_id"] for r in before if r["alg"] == "x25519")

    assert mappa(data_dir, "keys", "rotate", "--agency", police, "--alg", "x25519") == 0
    assert "version 2 signed and in force" in capsys.readouterr().out
    rows = keys_json(data_dir, capsys, police)
    x = [r for r in rows if r["alg"] == "x25519"]
    assert {r["key_id"]: r["status"] for r in x}[old_x] == "superseded"
    new_x = next(r["key_id"] for r in x if r["key_id"] != old_x)

    # The current key cannot be pruned; the superseded one can, once.
    assert (
        main(
            ["keys", "--data-dir", str(data_dir), "prune", "--agency", police, "--key", str(new_x)]
        )
        == 1
    )
    assert "still current" in capsys.readouterr().err
    assert (
        main(
            ["keys", "--data-dir", str(data_dir), "prune", "--agency", police, "--key", str(old_x)]
        )
        == 0
    )
    assert not next(r for r in keys_json(data_dir, capsys, police) if r["key_id"] == old_x)[
        "private_key_held"
    ]

    ed = next(r["key_id"] for r in rows if r["alg"] == "ed25519")
    assert (
        main(
            [
                "keys",
                "--data-dir",
                str(data_dir),
                "revoke",
                "--agency",
                police,
                "--key",
                str(ed),
                "--reason",
                "device lost",
            ]
        )
        == 0
    )
    assert (
        next(r for r in keys_json(data_dir, capsys, police) if r["key_id"] == ed)["status"]
        == "revoked"
    )
    assert (
        main(
            [
                "keys",
                "--data-dir",
                str(data_dir),
                "revoke",
                "--agency",
                police,
                "--key",
                "0" * 32,
                "--reason",
                "x",
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "keys",
                "--data-dir",
                str(data_dir),
                "revoke",
                "--agency",
                police,
                "--key",
                str(ed),
                "--reason",
                "x",
                "--at",
                "yesterday",
            ]
        )
        == 1
    )
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
    paths.pending_directory.write_text(
        json.dumps(json.loads(paths.directory.read_text())["document"])
    )
    assert mappa(data_dir, "directory", "sign") == 1
    assert "not newer" in capsys.readouterr().err


def test_tampered_or_foreign_directory_fails_verify(
    data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paths = DataPaths(data_dir)
    forged = tmp_path / "forged.json"
    forged.write_text(paths.directory.read_text().replace("HMP Stafford", "HMP Nowhere"))
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
    assert main(["keys", "--data-dir", str(tmp_path / "d"), "init", "--agencies", str(bad)]) == 1
    assert "agency_id, name, role, areas" in capsys.readouterr().err
    monkeypatch.delenv("MAPPA_KEY_PASSPHRASE")
    assert (
        main(["keys", "--data-dir", str(tmp_path / "d"), "init", "--agencies", str(AGENCIES)]) == 1
    )
    assert "MAPPA_KEY_PASSPHRASE" in capsys.readouterr().err


def test_no_private_key_material_in_output_or_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Keystore(DataPaths(data_dir).keys, PASS.encode())
    secrets = []
    for kid in store.key_ids("police.staffordshire"):
        key = store.load("police.staffordshire", kid)
        secrets.append(key._key.private_bytes_raw())
    assert mappa(data_dir, "keys", "show") == 0
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", "the wrong passphrase")
    assert mappa(data_dir, "keys", "rotate", "--agency", "police.staffordshire") == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "wrong passphrase" in text
    for secret in secrets:
        assert secret.hex() not in text
        assert secret.hex() not in repr(
            store.load("police.staffordshire", store.key_ids("police.staffordshire")[0])
        )
    assert "PRIVATE KEY" not in text
    assert PASS not in text
