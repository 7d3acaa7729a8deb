"""`mappa track`: a sender's view of each recipient's delivery, read from its own store
beside the running gateways, as a table or the API's JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from broker.cli.main import main
from tests.support import HOUSING, POLICE, PRISON, PROBATION, World, risk_assessment

RECIPIENTS = sorted((HOUSING, PRISON, PROBATION))


def track(world: World, *args: str) -> list[str]:
    return ["track", *args, "--data-dir", str(world.deployment.settings.data_dir)]


async def test_track_shows_each_recipient_as_it_goes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    # Sent, and awaiting receipts: each row says when it goes again.
    assert main(track(world, sent.message_id, "--as", POLICE)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == RECIPIENTS
    for line in lines:
        assert re.search(r"\bsent\s+attempts 0\s+queued \S+\s+updated \S+\s+due 20\S+\s+-$", line)
    # One column each, aligned: every line has its fields at the same places.
    assert len({line.index(" attempts ") for line in lines}) == 1
    assert len({line.index(" queued ") for line in lines}) == 1

    tracking = world.gw(POLICE).ctx.store.tracking
    await world.pump(
        lambda: all(r.state == "delivered" for r in tracking.of_message(sent.message_id))
    )
    assert main(track(world, sent.message_id, "--as", POLICE)) == 0
    for line in capsys.readouterr().out.splitlines():
        assert re.search(r"\bdelivered\s+attempts 0\s+.*\bdue -\s+-$", line)

    assert main(track(world, sent.message_id, "--as", POLICE, "--json")) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["message_id"] == sent.message_id
    assert [d["recipient"] for d in answer["recipients"]] == RECIPIENTS
    assert {d["state"] for d in answer["recipients"]} == {"delivered"}


async def test_track_refuses_what_the_agency_did_not_send(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sent = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    # A recipient did not send it; nor did anyone send a message nobody made.
    for who, message_id in ((PROBATION, sent.message_id), (POLICE, "no-such-message")):
        assert main(track(world, message_id, "--as", who)) == 1
        err = capsys.readouterr().err
        assert err.startswith("mappa: api.not-found:")
        assert err.count("\n") == 1
    elsewhere = str(tmp_path / "elsewhere")
    assert main(["track", sent.message_id, "--as", POLICE, "--data-dir", elsewhere]) == 1
    assert "no store for agency police.staffordshire" in capsys.readouterr().err


async def test_track_without_as_finds_the_sender(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    assert main(track(world, sent.message_id, "--json")) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [d["recipient"] for d in answer["recipients"]] == RECIPIENTS
    assert main(track(world, "no-such-message")) == 1
    err = capsys.readouterr().err
    assert err.startswith("mappa: api.not-found: no agency in ")
    assert err.count("\n") == 1
