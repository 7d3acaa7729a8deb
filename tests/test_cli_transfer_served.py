"""`mappa transfer` beside a running `mappa serve` that holds the same agencies' stores,
on a deployment made from deploy/agencies.two-areas.example.yaml: each step that takes
effect exits 0 and says so, whichever process applied it; a step repeated by a person is
refused, saying it was done already."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.cli.main import main
from tests.served import DataDir, serve

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "agencies.two-areas.example.yaml"
FROM, TO = "staffordshire", "west-mercia"
PROBATION_A, COORD_A, COORD_B = (
    "probation.staffordshire",
    "coord.staffordshire",
    "coord.west-mercia",
)
TEAM_B = ("police.west-mercia", "probation.west-mercia")
PNC = "2011/0456789K"


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_steps_beside_a_running_serve_exit_0(
    tmp_path: Path,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = DataDir(tmp_path / "data", secrets.token_urlsafe(18), f"t{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", data.passphrase)
    monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", data.namespace)
    code, out, err = await run(
        capsys, "keys", "--data-dir", str(data.path), "init", "--agencies", str(EXAMPLE)
    )
    assert (code, err) == (0, ""), err
    assert "10 agencies" in out
    base = ("transfer", "--data-dir", str(data.path), "--bootstrap", kafka_bootstrap)
    today = datetime.now(UTC).date().isoformat()
    # The serving process holds the stores of the agencies the steps are taken as.
    async with serve(
        tmp_path, "--bootstrap", kafka_bootstrap, "--area", FROM, "--no-ledger",
        "--agency", PROBATION_A, "--agency", COORD_A, "--agency", COORD_B,
        data=data, tokens_for=(),
    ):  # fmt: skip
        code, out, err = await run(
            capsys, *base, "request", "--as", PROBATION_A, "--user", "po.1", "--pnc", PNC,
            "--to", TO, "--move-date", today, "--reason", "moving to family", "--json",
        )  # fmt: skip
        assert (code, err) == (0, ""), err
        requested = json.loads(out)
        assert requested["state"] == "requested"
        tid = requested["transfer_id"]

        accept = (*base, "accept", "--as", COORD_B, "--user", "c.1", "--transfer", tid)
        code, out, err = await run(capsys, *accept)
        assert (code, err) == (0, ""), err
        assert f"transfer {tid}: {FROM} -> {TO}, accepted" in out

        # A person repeating the step is told it was done, and nothing is sent.
        code, out, err = await run(capsys, *accept)
        assert (code, out) == (1, "")
        assert err.startswith(f"mappa: transfer.already-done: transfer {tid} is already accepted")

        team = [arg for member in TEAM_B for arg in ("--team", member)]
        code, out, err = await run(
            capsys, *base, "complete", "--as", COORD_B, "--user", "c.1", "--transfer", tid, *team
        )
        assert (code, err) == (0, ""), err
        assert f"transfer {tid}: {FROM} -> {TO}, completed" in out
