"""The transfer router in a tiny app of its own, on the session's broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI, Header, HTTPException

from broker.api.transfers import transfers_router
from broker.transport import KafkaTransport
from schemas.transfer import TransferState
from tests.transfer_world import COORD_A, COORD_B, PNC, PROBATION_A, TO, build_transfer_world


async def test_transfer_endpoints(tmp_path: Path, transport: KafkaTransport) -> None:
    w = await build_transfer_world(tmp_path, transport)

    def require_agency(x_agency: str = Header()) -> str:
        # Stands in for the app's bearer-token dependency.
        if x_agency not in w.desks:
            raise HTTPException(status_code=401, detail={"error": "auth.unknown"})
        return x_agency

    app = FastAPI()
    app.include_router(transfers_router(w.desk, require_agency))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    today = datetime.now(UTC).date().isoformat()
    try:
        as_lead = {"x-agency": PROBATION_A}
        made = await client.post(
            "/transfers",
            headers=as_lead,
            json={
                "pnc_id": PNC,
                "to_area": TO,
                "move_date": today,
                "reason": "moving",
                "user": "po.1",
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

        step = {"user": "c.1", "reason": "address approved"}
        wrong = await client.post(
            f"/transfers/{tid}/accept", headers={"x-agency": COORD_A}, json=step
        )
        assert wrong.status_code == 403
        assert wrong.json()["detail"]["error"] == "transfer.wrong-actor"
        missing = await client.post(
            f"/transfers/{uuid.uuid4()}/accept", headers={"x-agency": COORD_B}, json=step
        )
        assert missing.status_code == 404
        ok = await client.post(f"/transfers/{tid}/accept", headers={"x-agency": COORD_B}, json=step)
        assert ok.status_code == 200, ok.text
        assert ok.json()["transfer"]["state"] == "accepted"
        again = await client.post(
            f"/transfers/{tid}/accept", headers={"x-agency": COORD_B}, json=step
        )
        assert again.status_code == 409
        assert again.json()["detail"]["error"] == "transfer.invalid-transition"

        bad = await client.post("/transfers", headers=as_lead, json={"pnc_id": PNC})
        assert bad.status_code == 422
        nowhere = await client.post(
            "/transfers",
            headers=as_lead,
            json={
                "pnc_id": PNC,
                "to_area": "Atlantis",
                "move_date": today,
                "reason": "x",
                "user": "po.1",
            },
        )
        assert nowhere.status_code == 422
        assert nowhere.json()["detail"]["error"] == "transfer.invalid"
        assert (await client.get("/transfers", headers={"x-agency": "nobody.x"})).status_code == 401
        assert (await client.get("/transfers/not-a-uuid", headers=as_lead)).status_code == 422
        assert (await client.get(f"/transfers/{uuid.uuid4()}", headers=as_lead)).status_code == 404

        await w.pump(
            lambda: (
                (r := w.desk(PROBATION_A).registry.get(tid)) is not None
                and r.state is TransferState.ACCEPTED
            )
        )
        one = await client.get(f"/transfers/{tid}", headers=as_lead)
        assert one.json()["transfer"]["state"] == "accepted"
        listed = await client.get("/transfers", headers=as_lead)
        assert [t["transfer"]["transfer_id"] for t in listed.json()] == [tid]
        late = await client.get("/transfers/overdue", params={"on": "2099-01-05"}, headers=as_lead)
        assert {o["deadline"] for o in late.json()} == {
            "probation-transfer",
            "rso-address-notification",
        }
        assert (await client.get("/transfers/overdue", headers=as_lead)).json() == []

        done = await client.post(
            f"/transfers/{tid}/complete",
            headers={"x-agency": COORD_B},
            json={"user": "c.1", "address_notified_on": today, "case_team": [COORD_B]},
        )
        assert done.status_code == 200, done.text
        assert all(d["met_on"] == today for d in done.json()["deadlines"])
        # The sending co-ordinator's desk, running as a service's background loop.
        stop = asyncio.Event()
        loop = asyncio.create_task(w.desk(COORD_A).run(stop))
        for _ in range(200):
            rec = w.desk(COORD_A).registry.get(tid)
            if rec is not None and rec.state is TransferState.COMPLETED:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await loop
        assert rec is not None
        assert rec.state is TransferState.COMPLETED
        gone = await client.post(
            f"/transfers/{tid}/cancel",
            headers=as_lead,
            json={"user": "po.1", "reason": "changed mind"},
        )
        assert gone.status_code == 409
        refuse = await client.post(
            f"/transfers/{tid}/refuse", headers={"x-agency": COORD_B}, json=step
        )
        assert refuse.status_code == 409
    finally:
        await client.aclose()
        await w.close()
