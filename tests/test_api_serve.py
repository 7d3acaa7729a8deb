"""`mappa serve` as a user runs it: a child process that starts, answers over real HTTP,
delivers in the background, and stops cleanly on SIGTERM or Ctrl-C with no child left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from broker.api.models import ARMS_EXAMPLE
from tests.served import SERVED, DataDir, alive_after, serve, stop
from tests.support import HOUSING, POLICE, PROBATION

JUSTIFICATION = "supervision planning, case review"


async def test_serve_answers_delivers_and_stops_on_sigterm(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    async with (
        serve(tmp_path, "--bootstrap", kafka_bootstrap, *SERVED) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        submitted = await client.post(
            f"/v1/agencies/{POLICE}/records",
            json={"record": ARMS_EXAMPLE, "purpose": "risk management"},
            headers=served.auth(POLICE),
        )
        assert submitted.status_code == 201, submitted.text
        message_id = submitted.json()["message_id"]
        # Nobody polls but the server's own background gateways.
        url = f"/v1/agencies/{PROBATION}/inbox/{message_id}"
        deadline = time.monotonic() + 20
        while (got := await client.get(url, headers=served.auth(PROBATION))).status_code == 404:
            assert time.monotonic() < deadline, served.log.decode()
            await asyncio.sleep(0.1)
        assert got.status_code == 200
        assert got.json()["view"] == "full"
        opened = await client.post(
            f"{url}/open",
            json={"justification": JUSTIFICATION},
            headers=served.auth(PROBATION),
        )
        assert opened.status_code == 200, opened.text
        assert opened.json()["record"]["contactType"] == "MAPPA_RISK"
        spec = await client.get("/openapi.json")
        assert spec.json()["info"]["title"] == "mappa-broker"
        # The web console is served beside the API (docs/console.md), with the same headers.
        console = await client.get("/console/")
        assert console.status_code == 200
        assert "MAPPA information sharing" in console.text
        assert "frame-ancestors 'none'" in console.headers["content-security-policy"]
        assert served.children() == []  # an external broker: nothing of ours to start
        assert await stop(served, signal.SIGTERM) == 0
    text = served.log.decode()
    assert "Application shutdown complete" in text
    assert "Traceback" not in text


async def test_serve_with_the_embedded_broker_stops_it_on_ctrl_c(tmp_path: Path) -> None:
    async with (
        serve(tmp_path) as served,  # every agency whose keys are held and that has an adapter
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        inbox = await client.get(f"/v1/agencies/{PROBATION}/inbox", headers=served.auth(PROBATION))
        assert inbox.status_code == 200
        assert inbox.json() == {"items": [], "next_cursor": None}
        assert re.search(rf"serving .*{POLICE}.*{HOUSING}", served.log.decode())
        [broker] = served.children()  # tansu, started by the server
        assert await stop(served, signal.SIGINT) == 0
    # The broker went with the server: no process left behind.
    assert not await alive_after(broker, seconds=5)
    assert "Traceback" not in served.log.decode()


async def test_serve_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as failed:
        async with serve(tmp_path, "--agency", "nobody.here"):
            pass  # pragma: no cover - it must not start
    assert "config.invalid: not in the trust directory: nobody.here" in str(failed.value)
    assert "Traceback" not in str(failed.value)


async def test_serve_with_a_ledger_database_that_does_not_answer_says_so_in_one_line(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """The broker and the gateways start, then the ledger's database does not answer:
    everything started is stopped, and the reason is one line, not a traceback."""
    unreachable = {"MAPPA_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/x"}
    with pytest.raises(AssertionError) as failed:
        async with serve(tmp_path, "--bootstrap", kafka_bootstrap, *SERVED, env=unreachable):
            pass  # pragma: no cover - it must not start
    log = str(failed.value)
    assert "mappa: config.invalid: cannot connect to the ledger database at 127.0.0.1:9/x" in log
    assert "Traceback" not in log
    assert "nobody@" not in log


async def test_serve_without_a_deployment_says_so_in_one_line(tmp_path: Path) -> None:
    missing = DataDir(tmp_path / "nothing-here", "pass phrase", "tmissing")
    with pytest.raises(AssertionError) as failed:
        async with serve(tmp_path, data=missing):
            pass  # pragma: no cover - it must not start
    assert "mappa: config.invalid: no trust directory at" in str(failed.value)
    assert "Traceback" not in str(failed.value)


# Issue 15: a SIGTERM to `serve` while its broker is down finishes within this.
STOP_WITHIN_SECONDS = 5.0


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
async def test_serve_stops_promptly_while_its_broker_is_down(
    tmp_path: Path, fault: signal.Signals
) -> None:
    """The embedded broker killed (the supervisor has not brought it back yet) or hung
    (it takes connections and answers nothing): a SIGTERM still stops `serve`, bounded,
    exit 0, and leaves no broker behind."""
    async with serve(tmp_path) as served:
        [broker] = served.children()
        try:
            os.kill(broker, fault)
            served.proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = await asyncio.wait_for(served.proc.wait(), timeout=STOP_WITHIN_SECONDS)
            print(
                f"serve stopped {time.monotonic() - began:.2f} s after SIGTERM, broker {fault.name}"
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker, signal.SIGKILL)
    assert code == 0, served.log.decode()
    assert not await alive_after(broker, seconds=5)
    assert "Traceback" not in served.log.decode(), served.log.decode()
