"""`mappa transfer` as an officer uses it, against the session's broker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.kafka.transport import KafkaTransport
from schemas.transfer import TransferState
from tests.brokers import tansu
from tests.two_areas import COORD_A, COORD_B, PNC, PROBATION_A, TO, build_transfer_world


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_cli_requests_accepts_and_reports(
    tmp_path: Path,
    transport: KafkaTransport,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = await build_transfer_world(tmp_path, tansu(transport.bootstrap))
    try:
        monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", w.passphrase.decode())
        monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", w.deployment.topics.namespace)
        data = str(w.deployment.settings.data_dir)
        today = datetime.now(UTC).date().isoformat()
        base = ("transfer", "--data-dir", data, "--bootstrap", kafka_bootstrap)

        code, out, _ = await run(
            capsys,
            *base,
            "request",
            "--as",
            PROBATION_A,
            "--user",
            "po.1",
            "--pnc",
            PNC,
            "--to",
            TO,
            "--move-date",
            today,
            "--reason",
            "moving to family",
            "--rso",
            "--json",
        )
        assert code == 0
        tid = json.loads(out)["transfer_id"]
        # The receiving co-ordinator's run reads the topic up to date, then accepts.
        code, out, _ = await run(
            capsys, *base, "accept", "--as", COORD_B, "--user", "c.1", "--transfer", tid
        )
        assert code == 0
        assert f"transfer {tid}: staffordshire -> west-mercia, accepted" in out

        desk = w.desk(COORD_A)  # the sending co-ordinator's adapter, running meanwhile
        for _ in range(100):
            await w.gw(COORD_A).poll_once(timeout_ms=50)
            rec = desk.registry.get(tid)
            if rec is not None and rec.state is TransferState.ACCEPTED:
                break
        code, out, _ = await run(
            capsys, "transfer", "--data-dir", data, "status", "--as", COORD_A, "--json"
        )
        [status] = json.loads(out)
        assert (status["state"], status["last_step_by"]) == ("accepted", COORD_B)

        # Far in the future both deadlines have passed: both co-ordinators see them.
        code, out, _ = await run(
            capsys, "transfer", "--data-dir", data, "overdue", "--today", "2099-01-05", "--json"
        )
        report = json.loads(out)
        for coordinator in (COORD_A, COORD_B):
            kinds = {(o["transfer_id"], o["deadline"]) for o in report[coordinator]}
            assert kinds == {(tid, "probation-transfer"), (tid, "rso-address-notification")}
        code, out, _ = await run(
            capsys, "transfer", "--data-dir", data, "overdue", "--today", today
        )
        assert out.count("0 overdue") == 2

        # Errors a person can act on.
        code, _, err = await run(
            capsys, "transfer", "--data-dir", data, "status", "--as", COORD_A, "--transfer", "x"
        )
        assert code == 1
        assert "transfer.unknown" in err
        monkeypatch.delenv("MAPPA_KAFKA_BOOTSTRAP", raising=False)
        code, _, err = await run(
            capsys,
            "transfer",
            "--data-dir",
            data,
            "cancel",
            "--as",
            PROBATION_A,
            "--user",
            "po.1",
            "--transfer",
            tid,
            "--reason",
            "no longer moving",
        )
        assert code == 1
        assert "--bootstrap" in err
    finally:
        await w.close()
