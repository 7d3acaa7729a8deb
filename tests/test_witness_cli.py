"""`mappa audit checkpoint` and `mappa audit proof` show who witnessed a checkpoint,
checked against the governance-signed witness policy; and the standalone verifier,
copied alone, checks a witnessed checkpoint against the policy file."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.crypto.keys import PrivateKey
from broker.ledger import verify_proofs
from broker.ledger.checkpoint import CheckpointSigner
from broker.trust.provision import DataPaths, load_governance_public, load_ledger_key
from broker.witness.cosignature import cosigner_key
from broker.witness.policy import load_policy, policy_path
from broker.witness.setup import held_witnesses
from broker.witness.witness import WitnessRefusal
from schemas.directory import KeyAlg
from tests.ledger_world import LedgerWorld, build_ledger_world
from tests.support import HOUSING, POLICE, PROBATION

Audit = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def populated(tmp_path: Path) -> LedgerWorld:
    world = build_ledger_world(tmp_path / "data", None)
    world.feed(world.event(POLICE), world.event(PROBATION))
    world.feed(world.event(HOUSING))
    world.close()
    return world


@pytest.fixture
def audit(
    populated: LedgerWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Audit:
    for name in [k for k in os.environ if k.startswith("MAPPA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", populated.passphrase.decode())
    data = populated.deployment.paths.root

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["audit", "--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def test_checkpoint_and_proof_show_the_witnesses(populated: LedgerWorld, audit: Audit) -> None:
    done = audit("checkpoint")
    assert done.returncode == 0, done.stderr
    assert "\u2014 mappa-broker/mappa/witness/police.staffordshire " in done.stdout
    assert (
        "witnesses: 3 of 3 cosigned (threshold 2), verified against the witness policy: "
        "mappa-broker/mappa/witness/police.staffordshire" in done.stdout
    )
    doc = json.loads(audit("checkpoint", "--json").stdout)
    assert doc["witnessed"] is True
    assert (doc["witness_count"], doc["threshold"], len(doc["witnesses"])) == (3, 2, 3)
    assert doc["witnessed_note"].startswith(doc["note"])
    proof = json.loads(audit("proof", "1").stdout)
    assert proof["witnessed"] is True
    assert proof["witnesses"] == doc["witnesses"]
    # One witness's line gone from the ledger: 2 of 3 still meets the policy; two gone
    # do not, and the command says so.
    db = populated.deployment.ledger_store()
    db.tamper_db.execute("DELETE FROM cosignatures WHERE witness LIKE '%police%'")
    assert "2 of 3 cosigned (threshold 2), verified" in audit("checkpoint").stdout
    db.tamper_db.execute("DELETE FROM cosignatures WHERE witness LIKE '%prison%'")
    assert "1 of 3 cosigned (threshold 2), NOT witnessed" in audit("checkpoint").stdout
    # A bad line under the remaining witness's name and key id (its signature altered),
    # kept before its good one: that witness no longer counts. Fail closed, as a
    # signed-note verifier does with a bad signature by a key it knows.
    good = doc["witnessed_note"].splitlines(keepends=True)[-1]
    name, blob = good[2:].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    db.tamper_db.execute(
        "INSERT INTO cosignatures (size, witness, line, time) VALUES (?, ?, ?, ?)",
        (doc["tree_size"], "a-forged", f"\u2014 {name} {base64.b64encode(raw).decode()}\n", "t"),
    )
    assert "0 of 3 cosigned" in audit("checkpoint").stdout
    db.close()
    policy_path(populated.deployment.paths.root).unlink()
    assert "witnesses: none (no witness policy" in audit("checkpoint").stdout


def test_a_policy_that_does_not_verify_is_refused(populated: LedgerWorld, audit: Audit) -> None:
    path = policy_path(populated.deployment.paths.root)
    signed = json.loads(path.read_text())
    signed["document"]["threshold"] = 1
    path.write_text(json.dumps(signed))
    done = audit("checkpoint")
    assert done.returncode != 0
    assert "signature" in done.stderr


def test_the_standalone_verifier_alone_checks_against_the_policy(
    populated: LedgerWorld, audit: Audit, tmp_path: Path
) -> None:
    """The one file, copied where nothing else of ours is, run by an isolated Python."""
    doc = json.loads(audit("checkpoint", "--json").stdout)
    alone = tmp_path / "officer"
    alone.mkdir()
    shutil.copy(verify_proofs.__file__, alone / "verify_proofs.py")
    shutil.copy(policy_path(populated.deployment.paths.root), alone / "policy.json")
    (alone / "checkpoint.txt").write_text(doc["witnessed_note"])
    governance = load_governance_public(DataPaths(populated.deployment.paths.root)).raw.hex()
    script = (
        "import json, sys; sys.path.insert(0, '.'); import verify_proofs as v\n"
        "key = bytes.fromhex(sys.argv[1])\n"
        "p = v.verify_policy_signature(json.load(open('policy.json')), key)\n"
        "cp, names = v.verify_witnessed(open('checkpoint.txt').read(), p)\n"
        "print(cp.size, len(names), p.threshold)\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-I", "-c", script, governance],
        cwd=alone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(doc["tree_size"]), "3", "2"]
    # With two of its cosignature lines cut, it refuses.
    lines = doc["witnessed_note"].splitlines(keepends=True)
    (alone / "checkpoint.txt").write_text("".join(lines[:-2]))
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-I", "-c", script, governance],
        cwd=alone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "cosigned by 1 of 3 witnesses; the policy needs 2" in done.stderr


def test_witness_alarms_lists_what_each_witness_refused(
    populated: LedgerWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = populated.deployment.paths.root

    def witness(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["witness", "alarms", "--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    done = witness()
    assert done.returncode == 0, done.stderr
    assert "3 witnesses here; 0 alarms" in done.stdout
    # The ledger, restored from an older backup, offers its police witness a smaller tree.
    deployment = populated.deployment
    policy = deployment.witness_policy()
    assert policy is not None
    held = held_witnesses(policy, deployment.paths, deployment.keystore, clock=deployment.clock)
    [police] = [w for n, w in held.items() if n.endswith(POLICE)]
    signer = CheckpointSigner(
        origin=deployment.ledger_origin, key=load_ledger_key(deployment.paths, deployment.keystore)
    )
    with pytest.raises(WitnessRefusal):
        police.add_checkpoint(
            0, [], signer.sign(2, bytes(32), "2026-11-23T10:00:00.000Z", bytes(32))
        )
    for w in held.values():
        w.store.close()
    done = witness("--json")
    assert done.returncode == 3
    report = {w["agency"]: w for w in json.loads(done.stdout)}
    assert report[POLICE]["latest_size"] == 3
    assert [(a["code"], a["size"], a["own_size"]) for a in report[POLICE]["alarms"]] == [
        ("witness.rollback", 2, 3)
    ]
    assert report[PROBATION]["alarms"] == []
    table = witness()
    assert table.returncode == 3
    assert "witness.rollback" in table.stdout
    policy_path(data).unlink()
    assert "no witness policy" in witness().stderr


def test_the_governance_officer_names_an_independent_witness_and_a_threshold(
    populated: LedgerWorld, audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mappa witness policy` shows the policy; a change is its next version, signed with
    the governance key and loaded as any policy is; changes nobody could meet are
    refused in one line, leaving the policy as it was."""
    data = populated.deployment.paths.root

    def witness(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["witness", "--data-dir", str(data), "policy", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    shown = witness()
    assert shown.returncode == 0, shown.stderr
    assert "version 1" in shown.stdout
    assert "threshold: 2 of 3 witnesses" in shown.stdout
    name = "ico.example/witness"

    vkey = cosigner_key(name, PrivateKey.generate(KeyAlg.ED25519).public)
    changed = witness("--add-independent", vkey, "--threshold", "3", "--json")
    assert changed.returncode == 0, changed.stderr
    document = json.loads(changed.stdout.split("\n", 1)[1])
    assert (document["version"], document["threshold"]) == (2, 3)
    assert document["witnesses"][-1] == {
        "name": name,
        "verifier_key": vkey,
        "agency": "independent",
    }
    paths = DataPaths(data)

    loaded = load_policy(data, load_governance_public(paths))
    assert loaded is not None
    assert loaded.document.version == 2
    before = policy_path(data).read_bytes()
    for args, says in [
        (("--threshold", "6"), "threshold 6 is not between 1 and 4"),
        (("--remove", "nobody"), "no witness named 'nobody'"),
        (("--add-independent", vkey), "is in the policy already"),
        (("--add-independent", "not-a-key"), "cosigner key"),
    ]:
        refused = witness(*args)
        assert refused.returncode != 0
        assert says in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert policy_path(data).read_bytes() == before
    removed = witness("--remove", name, "--threshold", "2")
    assert removed.returncode == 0, removed.stderr
    assert "version 3" in removed.stdout
    assert "threshold: 2 of 3 witnesses" in removed.stdout


def test_without_a_policy_or_the_governance_key_the_commands_say_what_to_do(
    populated: LedgerWorld, audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    data = populated.deployment.paths.root

    def witness(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["witness", "--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    # Where the governance key is not held, a change is refused and nothing is written.
    shutil.rmtree(data / "keys" / "governance")
    before = policy_path(data).read_bytes()
    refused = witness("policy", "--threshold", "3")
    assert refused.returncode != 0
    assert "no governance key" in refused.stderr
    assert "sign where it is held" in refused.stderr
    assert policy_path(data).read_bytes() == before
    policy_path(data).unlink()
    for args in (("policy",), ("alarms",)):
        refused = witness(*args)
        assert refused.returncode != 0
        assert "no witness policy in" in refused.stderr
        assert "the ledger makes the default one on its first start" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
