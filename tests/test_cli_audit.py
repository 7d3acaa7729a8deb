"""`mappa audit` as an officer runs it against a deployment's ledger: in-process through
``main()`` for speed, and the console script once for the tamper exit code."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from broker.cli.main import main
from broker.errors import ConfigurationError, StoreUnavailable
from broker.ledger.reader import open_ledger_reader
from broker.ledger.store import LedgerStore
from broker.ledger.verify_proofs import verify_checkpoint
from broker.settings import Settings
from tests.ledger_world import build_ledger_world, ledger_url, postgres_url, rewrite_block
from tests.support import HOUSING, PNC
from tests.test_demo import MAPPA
from tests.test_ledger import populate

__all__ = ["ledger_url"]  # the fixture the PostgreSQL test takes


def test_audit_commands_and_tamper_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    world = build_ledger_world(data, None)
    populate(world)
    world.close()
    for name in [k for k in os.environ if k.startswith("MAPPA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", world.passphrase.decode())

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["audit", "--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    done = audit("verify")
    assert done.returncode == 0, done.stderr
    assert "ledger intact: 12 entries, 3 signed checkpoints" in done.stdout

    done = audit("query", "--subject", PNC, "--limit", "5", "--json")
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    assert [e["seq"] for e in page["entries"]] == [0, 1, 2, 4, 5]
    table = audit("query", "--agency", HOUSING)
    assert "3 entries" in table.stdout
    # Entry 0 is 0, not the empty cell; every column starts where its heading does.
    head, *rows, _ = audit("query", "--subject", PNC, "--limit", "5").stdout.splitlines()
    assert [r.split()[0] for r in rows] == ["0", "1", "2", "4", "5"]
    starts = [head.index(f" {c} ") + 1 for c in ("time", "act", "agency")]
    for row in rows:
        assert all(row[s - 1] == " " and row[s] != " " for s in starts), (head, row)

    proof = json.loads(audit("proof", "6", "--consistency-from", "4").stdout)
    assert proof["verified"] is True
    assert proof["consistency"]["size1"] == 4

    checkpoint = audit("checkpoint")
    note, _, key_line = checkpoint.stdout.rpartition("verifier key: ")
    assert verify_checkpoint(note, key_line.splitlines()[0]).size == 12

    exported = audit("export", "--subject", PNC, "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(exported.stdout)))) == 11
    out = tmp_path / "sar.json"
    assert audit("export", "--act", "consultation", "--output", str(out)).returncode == 0
    assert json.loads(out.read_text())["count"] == 1
    assert "0 refused records" in audit("rejected").stdout

    bad = audit("query", "--act", "gossip")
    assert bad.returncode == 1
    assert "audit.query-invalid" in bad.stderr

    from broker.ledger.store import LedgerStore

    store = LedgerStore(data / "ledger.sqlite")
    rewrite_block(store, 0, lambda e: [e[0], e[2], e[1], *e[3:]])
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPA_")}
    done = subprocess.run(  # noqa: S603 - our own console script
        [MAPPA, "audit", "--data-dir", str(data), "verify"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "first bad entry 1" in done.stdout
    report = json.loads(audit("verify", "--json").stdout)
    assert report["intact"] is False
    assert report["first_bad_entry"] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_audit_on_postgres_reads_through_a_read_only_session(
    tmp_path: Path, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mappa audit` on a PostgreSQL ledger: its session is read-only, so the server
    refuses any write through it, whatever the role may do; the commands still work."""
    # An empty database is no ledger to a reader, which creates nothing.
    with pytest.raises(ConfigurationError, match="not an audit ledger database"):
        LedgerStore(ledger_url, read_only=True)
    data = tmp_path / "data"
    world = build_ledger_world(data, ledger_url)
    populate(world)
    world.service.handle_batch([world.record(b"{not json")])
    world.close()

    def audit(*args: str) -> str:
        code = main(["audit", "--data-dir", str(data), "--database-url", ledger_url, *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    assert "ledger intact: 12 entries, 3 signed checkpoints" in audit("verify")
    assert "1 refused records" in audit("verify")
    assert "3 entries" in audit("query", "--agency", HOUSING)
    assert json.loads(audit("proof", "6"))["verified"] is True
    refused = audit("rejected")
    assert "audit.malformed" in refused
    [row] = [line.split() for line in refused.splitlines() if "audit.malformed" in line]
    assert hashlib.sha256(b"{not json").hexdigest() in row
    assert row[3] == "9"  # bytes
    assert json.loads(audit("export", "--act", "consultation"))["count"] == 1

    settings = Settings(data_dir=data, database_url=ledger_url)
    reader = open_ledger_reader(settings, lambda: world.passphrase)
    db = reader.store.tamper_db
    try:
        for statement in (
            "INSERT INTO meta (name, value) VALUES ('written', 'by a reader')",
            "DELETE FROM checkpoints",
            "CREATE TABLE scratch (x integer)",
        ):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                db.execute(statement)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), db.transaction():
            db.execute("UPDATE rejected SET reason = 'rewritten'")
        # A connection made again after the server dropped it is read-only too.
        [(pid,)] = db.execute("SELECT pg_backend_pid()")
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable):
            db.execute("SELECT 1")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.execute("DELETE FROM checkpoints")
        assert db.execute("SELECT count(*) FROM checkpoints") == [(3,)]
    finally:
        reader.store.close()
