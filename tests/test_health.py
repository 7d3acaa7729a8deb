"""Liveness and readiness on a real broker: alive whatever else is down; ready only while
the broker answers, every agency's store takes writes and the ledger keeps up, with
each part that is not named in the answer."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from broker.api import create_app, health
from broker.api.backend import ApiBackend, running
from broker.gateway.tracking import QUEUED, SETTLED
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from tests.support import HOUSING, PNC, POLICE, PRISON, PROBATION
from tests.test_api import Api, api, arms_record

__all__ = ["api"]


@asynccontextmanager
async def client_for(backend: ApiBackend) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over ``backend``, running."""
    app = create_app(running(backend))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def ready(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    r = await client.get("/readyz")
    return r.status_code, r.json()


async def ready_within_probes(
    client: httpx.AsyncClient, probes: int = 3
) -> tuple[int, dict[str, Any]]:
    """The readiness answer, asked again (as an orchestrator's probe is, before it gives
    up) only while the broker's 2-second probe timed out: on a loaded test machine a
    fresh connection can take longer. Any other answer is returned at once."""
    for _ in range(probes - 1):
        status, body = await ready(client)
        if body.get("broker", {}).get("reason_code") != "transport.failed":
            return status, body
    return await ready(client)


async def test_ready_with_each_part_named_and_no_token(api: Api) -> None:
    assert (await api.submit(arms_record())).status_code == 201
    status, body = await ready_within_probes(api.client)
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["broker"] == {"state": "ok", "reason_code": None}
    assert [a["agency"] for a in body["agencies"]] == [POLICE, PROBATION, PRISON, HOUSING]
    for agency in body["agencies"]:
        assert agency["state"] == "ok"
        assert agency["outbox_unsent"] == 0  # everything was relayed
        assert set(agency["tracked"]) <= {QUEUED, "sent", *SETTLED}
    police = next(a for a in body["agencies"] if a["agency"] == POLICE)
    assert sum(police["tracked"].values()) > 0
    ledger = body["ledger"]
    assert ledger["state"] == "ok"
    assert 0 <= ledger["lag"] <= ledger["bound"] == health.LEDGER_LAG_BOUND
    # No personal data, and no subject either.
    ref = api.world.deployment.subject_ref(PNC)
    text = (await api.client.get("/readyz")).text
    assert PNC not in text
    assert ref not in text


async def test_alive_even_when_nothing_runs(api: Api) -> None:
    # An app whose backend never started: alive, and not ready.
    app = create_app(running(api.app.state.backend))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        alive = await c.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
        status, body = await ready(c)
    assert status == 503
    assert body["status"] == "not-ready"
    assert body["broker"]["reason_code"] == "api.unavailable"


async def test_an_unreachable_broker_is_not_ready(api: Api) -> None:
    nowhere = KafkaTransport(Settings(), bootstrap="127.0.0.1:9")
    backend = dataclasses.replace(api.app.state.backend, transport=nowhere)
    async with client_for(backend) as client:
        status, body = await ready(client)
        assert (await client.get("/healthz")).status_code == 200
    assert status == 503, body
    assert body["status"] == "not-ready"
    assert body["broker"] == {"state": "unavailable", "reason_code": "transport.failed"}
    # The ledger's lag cannot be told without the broker.
    assert body["ledger"]["state"] == "unavailable"
    assert body["ledger"]["lag"] is None
    # A backend that says nothing of its broker cannot be called ready either.
    unknown = dataclasses.replace(api.app.state.backend, transport=None)
    async with client_for(unknown) as client:
        status, body = await ready(client)
    assert (status, body["broker"]["state"]) == (503, "unavailable")


async def test_a_store_that_cannot_take_writes_is_not_ready(api: Api) -> None:
    path = api.world.gw(HOUSING).ctx.store.path
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # an operator's shell left a write open
        status, body = await ready(api.client)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status == 503, body
    states = {a["agency"]: (a["state"], a["reason_code"]) for a in body["agencies"]}
    assert states.pop(HOUSING) == ("unavailable", "store.unavailable")
    assert set(states.values()) == {("ok", None)}
    assert body["broker"]["state"] == "ok"
    # Once the lock is let go, ready again.
    status, body = await ready(api.client)
    assert status == 200, body


async def test_a_ledger_behind_the_audit_topic_is_not_ready(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "LEDGER_LAG_BOUND", 0)
    # The ledger here reads only when the test says: the audit events wait on the topic.
    assert (await api.submit(arms_record())).status_code == 201
    status, body = await ready(api.client)
    assert status == 503, body
    ledger = body["ledger"]
    assert (ledger["state"], ledger["reason_code"]) == ("behind", "ledger.behind")
    assert ledger["lag"] > ledger["bound"] == 0
    await api.world.sync_ledger()
    status, body = await ready(api.client)
    assert status == 200, body
    assert body["ledger"]["lag"] == 0


async def test_a_server_without_a_ledger_is_ready_without_one(api: Api) -> None:
    backend = dataclasses.replace(api.app.state.backend, ledger=None)
    async with client_for(backend) as client:
        status, body = await ready(client)
    assert status == 200, body
    assert body["ledger"] == {
        "state": "not-run",
        "reason_code": None,
        "lag": None,
        "bound": health.LEDGER_LAG_BOUND,
    }
