"""The transfer router in a tiny app of its own, on the session's broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Header

from broker.api.credentials import AccessDenied
from broker.api.errors import install_error_handlers
from broker.api.transfers import transfers_router
from broker.kafka.polling import polling
from broker.kafka.transport import KafkaTransport
from broker.transfer.desk import TransferDesk
from schemas.transfer import TransferState
from tests.brokers import tansu
from tests.two_areas import (
    COORD_A,
    COORD_B,
    PNC,
    PROBATION_A,
    TO,
    build_transfer_world,
    stand_in_actor,
)


async def test_transfer_endpoints(tmp_path: Path, transport: KafkaTransport) -> None:
    w = await build_transfer_world(tmp_path, tansu(transport.bootstrap))

    def require_desk(agency_id: str, x_agency: str = Header()) -> TransferDesk:
        # Stands in for the app's bearer-token dependency (tests/test_api*.py test that).
        if x_agency != agency_id or agency_id not in w.desks:
            raise AccessDenied(f"no access to {agency_id}")
        return w.desk(agency_id)

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(transfers_router(require_desk, stand_in_actor))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    today = datetime.now(UTC).date().isoformat()

    async def call(method: str, agency: str, path: str = "", **kw: Any) -> httpx.Response:
        url = f"/v1/agencies/{agency}/transfers{path}"
        return await client.request(method, url, headers={"x-agency": agency}, **kw)

    try:
        made = await call(
            "POST",
            PROBATION_A,
            json={
                "pnc_id": PNC,
                "to_area": TO,
                "move_date": today,
                "reason": "moving",
                "registered_sex_offender": True,
            },
        )
        assert made.status_code == 201, made.text
        tid = made.json()["transfer"]["transfer_id"]
        assert {d["kind"] for d in made.json()["deadlines"]} == {
            "probation-transfer",
            "rso-address-notification",
        }
        await w.pump(lambda: w.desk(COORD_B).registry.get(tid) is not None)

        step = {"reason": "address approved"}
        wrong = await call("POST", COORD_A, f"/{tid}/accept", json=step)
        assert wrong.status_code == 403
        assert wrong.json()["error"] == "transfer.wrong-actor"
        missing = await call("POST", COORD_B, f"/{uuid.uuid4()}/accept", json=step)
        assert missing.status_code == 404
        assert missing.json()["error"] == "transfer.unknown"
        ok = await call("POST", COORD_B, f"/{tid}/accept", json=step)
        assert ok.status_code == 200, ok.text
        assert ok.json()["transfer"]["state"] == "accepted"
        again = await call("POST", COORD_B, f"/{tid}/accept", json=step)
        assert again.status_code == 409
        assert again.json()["error"] == "transfer.invalid-transition"

        bad = await call("POST", PROBATION_A, json={"pnc_id": PNC})
        assert bad.status_code == 422
        nowhere = await call(
            "POST",
            PROBATION_A,
            json={
                "pnc_id": PNC,
                "to_area": "Atlantis",
                "move_date": today,
                "reason": "x",
            },
        )
        assert nowhere.status_code == 422
        assert nowhere.json()["error"] == "transfer.invalid"
        # Digits from another script match the shape but are no PNC id; never hashed.
        odd = {
            "pnc_id": "\u0661\u0661/1A",
            "to_area": TO,
            "move_date": today,
            "reason": "x",
        }
        refused = await call("POST", PROBATION_A, json=odd)
        assert refused.status_code == 422
        other = await client.get(
            f"/v1/agencies/{COORD_A}/transfers", headers={"x-agency": PROBATION_A}
        )
        assert other.status_code == 403
        assert (await call("GET", PROBATION_A, "/not-a-uuid")).status_code == 422
        assert (await call("GET", PROBATION_A, f"/{uuid.uuid4()}")).status_code == 404

        await w.pump(
            lambda: (
                (r := w.desk(PROBATION_A).registry.get(tid)) is not None
                and r.state is TransferState.ACCEPTED
            )
        )
        one = await call("GET", PROBATION_A, f"/{tid}")
        assert one.json()["transfer"]["state"] == "accepted"
        listed = await call("GET", PROBATION_A)
        assert [t["transfer"]["transfer_id"] for t in listed.json()] == [tid]
        late = await call("GET", PROBATION_A, "/overdue", params={"on": "2099-01-05"})
        assert {o["deadline"] for o in late.json()} == {
            "probation-transfer",
            "rso-address-notification",
        }
        assert (await call("GET", PROBATION_A, "/overdue")).json() == []
        # A date is YYYY-MM-DD: a number is not taken as seconds since 1970.
        epoch = await call("GET", PROBATION_A, "/overdue", params={"on": "0.0"})
        assert epoch.status_code == 422, epoch.text
        numeric = await call(
            "POST",
            PROBATION_A,
            json={
                "pnc_id": PNC,
                "to_area": "west-mercia",
                "move_date": 0,
                "reason": "x",
            },
        )
        assert numeric.status_code == 422, numeric.text

        done = await call(
            "POST",
            COORD_B,
            f"/{tid}/complete",
            json={"address_notified_on": today, "case_team": [COORD_B]},
        )
        assert done.status_code == 200, done.text
        assert all(d["met_on"] == today for d in done.json()["deadlines"])
        # The sending co-ordinator's gateway, polled by a service's background loop.
        async with polling({"coordinator": w.gw(COORD_A).poll_once}):
            for _ in range(200):
                rec = w.desk(COORD_A).registry.get(tid)
                if rec is not None and rec.state is TransferState.COMPLETED:
                    break
                await asyncio.sleep(0.05)
        assert rec is not None
        assert rec.state is TransferState.COMPLETED
        gone = await call("POST", PROBATION_A, f"/{tid}/cancel", json={"reason": "changed"})
        assert gone.status_code == 409
        refuse = await call("POST", COORD_B, f"/{tid}/refuse", json=step)
        assert refuse.status_code == 409
    finally:
        await client.aclose()
        await w.close()
