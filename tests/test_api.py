"""The agency HTTP API on a real broker: every endpoint, every credential mix-up, every
kind of bad input. Requests go in-process (httpx's ASGI transport) on the test's loop,
so the app uses the same gateways the test pumps."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agency_adapters.registry import adapter_for
from broker.agreements.policy import SharingPolicy
from broker.api import create_app
from broker.api.backend import ApiBackend, running, serve_agencies
from broker.api.compose import application
from broker.api.credentials import CredentialKind, CredentialStore, credentials_path
from broker.api.limits import FailureLimiter
from broker.api.models import ARMS_EXAMPLE
from broker.gateway.agency import utc_now
from broker.gateway.handled import Handling
from broker.kafka.polling import poll_forever
from broker.kafka.transport import KafkaTransport
from schemas.isa import Agreement
from tests.brokers import tansu
from tests.support import (
    EDUCATION,
    HOUSING,
    PARTIES,
    PNC,
    POLICE,
    PRISON,
    PROBATION,
    World,
    build_world,
)

NOW = "2026-11-23T12:00:00.000Z"
JUSTIFICATION = "tenancy allocation panel, case 17"


@dataclass
class Api:
    world: World
    app: FastAPI
    client: httpx.AsyncClient
    credentials: CredentialStore
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def service(self, who: str) -> str:
        """How the audit names ``who``'s service account: ``service:<credential id>``."""
        return f"service:{self.tokens[who].split('_')[1]}"

    async def submit(self, record: dict[str, Any], who: str = POLICE) -> httpx.Response:
        return await self.client.post(
            f"/v1/agencies/{who}/records",
            json={"record": record, "purpose": "risk management"},
            headers=self.auth(who),
        )

    async def published(self) -> str:
        """A risk assessment submitted by police and delivered to every recipient."""
        response = await self.submit(arms_record())
        assert response.status_code == 201, response.text
        message_id: str = response.json()["message_id"]
        await self.world.pump(
            lambda: all(
                self.world.gw(a).ctx.store.inbox_item(message_id) for a in (PROBATION, HOUSING)
            )
        )
        return message_id


def arms_record(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(ARMS_EXAMPLE)
    record["arms"]["victims"] = [
        {
            "name": "Jane Witness",
            "relationship": "former partner",
            "address": {"line1": "1 Example Road", "town": "Stafford", "postcode": "ST16 1AA"},
        }
    ]
    record["arms"]["healthConcerns"] = "Community mental health team."
    record.update(changes)
    return record


def issue_tokens(store: CredentialStore) -> dict[str, str]:
    tokens = {
        a: store.issue(CredentialKind.AGENCY, a, now=utc_now()).token
        for a in (POLICE, PROBATION, PRISON, HOUSING, EDUCATION)
    }
    tokens["officer"] = store.issue(CredentialKind.OFFICER, "igo.smith", now=utc_now()).token
    return tokens


@pytest.fixture
async def api(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[Api]:
    async with running_api(tmp_path, transport) as running_one:
        yield running_one


@pytest.fixture(scope="module")
async def module_api(
    tmp_path_factory: pytest.TempPathFactory, transport: KafkaTransport
) -> AsyncIterator[Api]:
    """One application for a module's many refusals: a refused request changes nothing
    but the audit trail, which such a test reads from where it stood before."""
    async with running_api(tmp_path_factory.mktemp("api"), transport) as running_one:
        yield running_one


@contextlib.asynccontextmanager
async def running_api(
    tmp_path: Path,
    transport: KafkaTransport,
    *,
    tailor: Callable[[Agreement], Agreement] | None = None,
) -> AsyncIterator[Api]:
    """The application as `mappa serve` builds it, over a world of its own in
    ``tmp_path`` (its agreement changed by ``tailor``, if given); a module-scoped
    fixture may share one among many refusals."""
    world = await build_world(tmp_path, tansu(transport.bootstrap), tailor=tailor)
    world.seed_case_team(PARTIES)
    store = CredentialStore(credentials_path(world.deployment.settings.data_dir))
    try:
        # Education is in the directory but not a party; it needs no system here.
        served = {a: gw for a, gw in world.gateways.items() if a != EDUCATION}
        desks = {a: world.desk(a) for a in served}
        backend = ApiBackend(
            agencies=serve_agencies(served, adapter_for),
            credentials=store,
            ledger=world.deployment.ledger_reader(world.ledger.store),
            desks=desks,
            transport=world.transport,
            audit_topic=world.deployment.topics.audit,
            data_dir=world.deployment.settings.data_dir,
        )
        # The application as `mappa serve` builds it: agency and governance endpoints.
        app = application(running(backend))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://mappa.test"
            ) as client,
        ):
            yield Api(world, app, client, store, issue_tokens(store))
    finally:
        store.close()
        await world.close()


async def test_submit_list_fetch_open_acknowledge(api: Api) -> None:
    response = await api.submit(arms_record())
    assert response.status_code == 201, response.text
    submitted = response.json()
    assert submitted["message_type"] == "risk-assessment"
    assert submitted["relayed"] is True
    assert {(d["agency"], d["view"]) for d in submitted["disclosures"]} == {
        (PROBATION, "full"),
        (PRISON, "full"),
        (HOUSING, "redacted"),
    }
    message_id = submitted["message_id"]
    await api.world.pump(lambda: bool(api.world.of(HOUSING, Handling.DELIVERED)))

    inbox = await api.client.get(f"/v1/agencies/{HOUSING}/inbox", headers=api.auth(HOUSING))
    assert inbox.status_code == 200
    [item] = inbox.json()["items"]
    assert item["message_id"] == message_id
    assert (item["sender"], item["view"], item["acknowledged_at"]) == (POLICE, "redacted", None)
    assert inbox.json()["next_cursor"] is None

    one = await api.client.get(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}", headers=api.auth(HOUSING)
    )
    assert one.json() == item
    assert "record" not in one.json()

    opened = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}/open",
        json={"justification": JUSTIFICATION},
        headers=api.auth(HOUSING),
    )
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert (body["view"], body["sender"]) == ("redacted", POLICE)
    # The housing system's own format, with nothing the redacted view leaves out.
    assert body["record"]["flag"] == "MAPPA"
    assert body["record"]["policeRef"] == ARMS_EXAMPLE["pnc"]
    assert "victims" not in body["record"]["notice"]
    assert "health_notes" not in body["record"]["notice"]
    assert "Jane Witness" not in opened.text

    ack = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}/ack", headers=api.auth(HOUSING)
    )
    assert ack.status_code == 200
    again = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}/ack", headers=api.auth(HOUSING)
    )
    assert again.json() == ack.json()  # idempotent: the first time stands
    pending = await api.client.get(
        f"/v1/agencies/{HOUSING}/inbox",
        params={"unacknowledged": "true"},
        headers=api.auth(HOUSING),
    )
    assert pending.json()["items"] == []

    await api.world.sync_ledger()
    [consulted] = api.world.ledger.store.entries(act="consultation")
    assert consulted["agency"] == HOUSING
    assert consulted["user"] == api.service(HOUSING)
    assert consulted["justification"] == JUSTIFICATION
    assert consulted["message_id"] == message_id
    [collected] = api.world.ledger.store.entries(act="collection", agency=POLICE)
    assert collected["user"] == api.service(POLICE)


async def test_inbox_pages_with_a_cursor(api: Api) -> None:
    ids = set()
    for n in range(3):
        response = await api.submit(arms_record(pnc=f"2011/000000{n}A"))
        assert response.status_code == 201, response.text
        ids.add(response.json()["message_id"])
    await api.world.pump(lambda: len(api.world.of(PROBATION, Handling.DELIVERED)) == 3)

    seen: list[str] = []
    cursor = None
    for _ in range(4):
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await api.client.get(
            f"/v1/agencies/{PROBATION}/inbox", params=params, headers=api.auth(PROBATION)
        )
        assert page.status_code == 200, page.text
        seen += [i["message_id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3
    assert set(seen) == ids

    for bad in ("not-a-cursor!", "W10", "x" * 500):
        refused = await api.client.get(
            f"/v1/agencies/{PROBATION}/inbox", params={"cursor": bad}, headers=api.auth(PROBATION)
        )
        assert refused.status_code == 422
        assert refused.json()["error"] in {"request.invalid-cursor", "request.invalid"}


def endpoints(agency: str, message_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/v1/agencies/{agency}"
    return [
        ("POST", f"{base}/records", {"record": arms_record(), "purpose": "risk management"}),
        ("GET", f"{base}/inbox", None),
        ("GET", f"{base}/inbox/{message_id}", None),
        ("POST", f"{base}/inbox/{message_id}/ack", None),
        (
            "POST",
            f"{base}/inbox/{message_id}/open",
            {"justification": JUSTIFICATION},
        ),
        ("GET", f"{base}/messages/{message_id}/deliveries", None),
    ]


async def test_no_credential_reaches_another_agency(api: Api) -> None:
    # Two dozen bad tokens from one address: past the failure ration, which
    # tests/hostile/test_limits.py tests; here every one must be judged.
    api.app.state.auth_failures = FailureLimiter(allowed=1000)
    message_id = await api.published()
    before = api.world.gw(PROBATION).ctx.store.inbox_item(message_id)
    refusals = 0
    for target in (PROBATION, "police.nowhere"):
        for method, url, body in endpoints(target, message_id):
            for who in (HOUSING, POLICE, "officer"):
                r = await api.client.request(method, url, json=body, headers=api.auth(who))
                assert r.status_code == 403, (who, method, url, r.text)
                # The same answer whether or not the agency exists.
                assert r.json() == {
                    "error": "auth.forbidden",
                    "detail": f"this credential does not give access to agency {target}",
                }
                refusals += target == PROBATION
            for headers in (
                {},
                {"Authorization": "Bearer mappa_0000000000000000_" + "A" * 43},
                {"Authorization": api.auth(PROBATION)["Authorization"] + "x"},
                {"Authorization": "Basic cHJvYmF0aW9uOnNlY3JldA=="},
            ):
                r = await api.client.request(method, url, json=body, headers=headers)
                assert r.status_code == 401, (headers, method, url, r.text)
                assert r.json()["error"] == "auth.invalid-credential"
                assert r.headers["www-authenticate"] == "Bearer"
    # Nothing changed in the target's inbox: no acknowledgement, no consultation.
    assert api.world.gw(PROBATION).ctx.store.inbox_item(message_id) == before
    # A message in someone else's inbox is simply not found in your own, nor one someone
    # else sent among your deliveries.
    for method, url, body in endpoints(POLICE, message_id):
        if "/inbox/" in url:
            r = await api.client.request(method, url, json=body, headers=api.auth(POLICE))
            assert r.status_code == 404, (method, url, r.text)
    r = await api.client.get(
        f"/v1/agencies/{PROBATION}/messages/{message_id}/deliveries", headers=api.auth(PROBATION)
    )
    assert (r.status_code, r.json()["error"]) == (404, "api.not-found"), r.text
    # The refused attempts on probation's inbox are in probation's own audit log.
    await api.world.sync_ledger()
    audited = api.world.ledger.store.entries(agency=PROBATION, reason_code="auth.forbidden")
    assert len(audited) == refusals
    assert not api.world.ledger.store.entries(act="consultation")


async def test_the_sender_tracks_each_recipients_delivery(api: Api) -> None:
    message_id = await api.published()
    url = f"/v1/agencies/{POLICE}/messages/{message_id}/deliveries"
    tracking = api.world.gw(POLICE).ctx.store.tracking
    # Receipts come back to the sender when its gateway polls.
    await api.world.pump(
        lambda: all(r.state == "delivered" for r in tracking.of_message(message_id))
    )
    r = await api.client.get(url, headers=api.auth(POLICE))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["message_id"] == message_id
    # Each recipient of the envelopes, and not the ledger (its rows are the audit events').
    assert [d["recipient"] for d in answer["recipients"]] == sorted((HOUSING, PRISON, PROBATION))
    for delivery in answer["recipients"]:
        assert delivery["state"] == "delivered"
        assert delivery["attempts"] == 0
        assert delivery["due_at"] is None
        assert delivery["reason_code"] is None
        assert delivery["queued_at"] <= delivery["updated_at"]
    # An audit event is tracked too, for the ledger only: it is not a message sent.
    await api.world.sync_ledger()
    [collected] = api.world.ledger.store.entries(agency=POLICE, act="collection")
    assert [t.recipient for t in tracking.of_message(collected["event_id"])] == ["ledger"]
    for other in (collected["event_id"], "00000000-0000-4000-8000-000000000000"):
        r = await api.client.get(
            f"/v1/agencies/{POLICE}/messages/{other}/deliveries", headers=api.auth(POLICE)
        )
        assert (r.status_code, r.json()["error"]) == (404, "api.not-found"), r.text


async def test_revoked_credential_is_refused_at_once(api: Api) -> None:
    url = f"/v1/agencies/{HOUSING}/inbox"
    assert (await api.client.get(url, headers=api.auth(HOUSING))).status_code == 200
    [info] = [c for c in api.credentials.list() if c.principal == HOUSING and c.revoked_at is None]
    assert api.credentials.revoke(info.credential_id, now=utc_now())
    assert not api.credentials.revoke(info.credential_id, now=utc_now())
    refused = await api.client.get(url, headers=api.auth(HOUSING))
    assert refused.status_code == 401


async def refusal_codes(api: Api, agency: str) -> list[str]:
    """Sorted: the ledger's order across partitions is not the order of the acts."""
    await api.world.sync_ledger()
    entries = api.world.ledger.store.entries(agency=agency, act="refusal")
    return sorted(str(e["reason_code"]) for e in entries)


async def test_bad_records_are_refused_named_and_audited(api: Api) -> None:
    store = api.world.gw(POLICE).ctx.store
    envelopes_before = sum(
        n for t, n in store.outbox_counts().items() if not t.endswith((".audit", ".deadletter"))
    )
    cases = [
        (arms_record(pnc=None) | {"pnc": None}, "adapter.record-invalid", None),
        ({k: v for k, v in arms_record().items() if k != "arms"}, "adapter.record-invalid", "arms"),
        (arms_record(mappaCategory="one"), "adapter.record-invalid", "mappaCategory"),
        (arms_record(dob="1980-03-14"), "schema.invalid", "dd/mm/yyyy"),
        (
            arms_record(arms={**ARMS_EXAMPLE["arms"], "rosh": "EXTREME"}),
            "adapter.record-invalid",
            "risk_of_serious_harm",
        ),
        (arms_record(mappaArea="cheshire"), "policy.area-not-covered", "cheshire"),
        # A kind of record (so a message type) the police adapter does not know.
        # Named by its field, never quoted: a value in the wrong field may be personal data.
        (arms_record(recordType="HOROSCOPE"), "adapter.record-type-unknown", "recordType"),
    ]
    for record, code, named in cases:
        r = await api.submit(record)
        assert r.status_code in (403, 422), r.text
        assert r.json()["error"] == code, r.text
        if named:
            assert named in r.json()["detail"]
    # A police ARMS export is not a housing record: the housing adapter names the problem.
    r = await api.submit(arms_record(), who=HOUSING)
    assert (r.status_code, r.json()["error"]) == (422, "adapter.record-invalid")
    # Nothing half-written: no envelope queued for any of them.
    envelopes_after = sum(
        n for t, n in store.outbox_counts().items() if not t.endswith((".audit", ".deadletter"))
    )
    assert envelopes_after == envelopes_before
    assert await refusal_codes(api, POLICE) == sorted(c for _, c, _ in cases)


async def test_expired_agreement_stops_submission(api: Api) -> None:
    ctx = api.world.gw(POLICE).ctx
    expired = ctx.policy.agreement.model_copy(
        update={"valid_from": "2024-01-01", "valid_until": "2025-12-31"}
    )
    ctx.policy = SharingPolicy(expired, ctx.directory)
    r = await api.submit(arms_record())
    assert r.status_code == 403
    assert r.json()["error"] == "policy.agreement-expired"
    assert "2025-12-31" in r.json()["detail"]
    assert await refusal_codes(api, POLICE) == ["policy.agreement-expired"]


async def test_opening_needs_a_justification_and_takes_no_named_user(api: Api) -> None:
    message_id = await api.published()
    url = f"/v1/agencies/{HOUSING}/inbox/{message_id}/open"
    for body in (
        {},
        {"justification": "because   "},
        # Blank as the API documents it (JSON Schema's \s), not only ASCII spaces.
        {"justification": "because\u00a0\u3000\u00a0"},
    ):
        r = await api.client.post(url, json=body, headers=api.auth(HOUSING))
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "consult.justification-missing"
    # Who opens it is the credential's (and a checked on-behalf-of user's), never a name
    # the caller writes in.
    for body in ({"user": "ho.7", "justification": JUSTIFICATION}, {"user": ""}):
        r = await api.client.post(url, json=body, headers=api.auth(HOUSING))
        assert (r.status_code, r.json()["error"]) == (422, "request.invalid"), r.text
        assert "user" in r.json()["detail"]
    missing = "00000000-0000-4000-8000-000000000000"
    r = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{missing}/open",
        json={"justification": JUSTIFICATION},
        headers=api.auth(HOUSING),
    )
    assert (r.status_code, r.json()["error"]) == (404, "consult.not-found")
    assert await refusal_codes(api, HOUSING) == [
        "consult.justification-missing",
        "consult.justification-missing",
        "consult.justification-missing",
        "consult.not-found",
    ]
    assert not api.world.ledger.store.entries(act="consultation")


async def test_malformed_requests_get_clear_errors(api: Api) -> None:
    url = f"/v1/agencies/{POLICE}/records"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
        ({"json": {"record": arms_record()}}, "purpose"),
        ({"json": {"record": [], "purpose": "x"}}, "record"),
        ({"json": {"record": {}, "purpose": "x", "extra": 1}}, "extra"),
        ({"json": {"record": {}, "purpose": "p" * 201}}, "purpose"),
    ]
    for kwargs, named in cases:
        headers = {**api.auth(POLICE), **kwargs.pop("headers", {})}
        r = await api.client.post(url, headers=headers, **kwargs)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "request.invalid"
        assert named in r.json()["detail"]
    r = await api.client.get(f"/v1/agencies/{POLICE}/inbox/not-a-uuid", headers=api.auth(POLICE))
    assert (r.status_code, r.json()["error"]) == (422, "request.invalid")
    r = await api.client.get("/v1/nothing-here")
    assert (r.status_code, r.json()["error"]) == (404, "http.404")


async def test_service_not_started_is_503(api: Api) -> None:
    app = create_app(running(api.app.state.backend))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://mappa.test"
    ) as client:
        r = await client.get(f"/v1/agencies/{POLICE}/inbox", headers=api.auth(POLICE))
    assert (r.status_code, r.json()["error"]) == (503, "api.unavailable")


async def test_text_that_cannot_be_utf8_is_refused_not_a_500(api: Api) -> None:
    """JSON may escape a lone surrogate; such text cannot be signed or stored as UTF-8."""
    message_id = await api.published()
    raw = '{"justification": "tenancy panel \\ud800 review"}'
    r = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}/open",
        content=raw.encode(),
        headers={**api.auth(HOUSING), "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    raw = '{"record": {"pnc": "\\udfff"}, "purpose": "risk \\ud800 management"}'
    r = await api.client.post(
        f"/v1/agencies/{POLICE}/records",
        content=raw.encode(),
        headers={**api.auth(POLICE), "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text


async def test_governance_endpoints_for_the_officer_only(api: Api) -> None:
    response = await api.submit(arms_record())
    message_id = response.json()["message_id"]
    await api.world.pump(lambda: bool(api.world.of(HOUSING, Handling.DELIVERED)))
    opened = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}/open",
        headers=api.auth(HOUSING),
        json={"justification": JUSTIFICATION},
    )
    assert opened.status_code == 200, opened.text
    await api.world.sync_ledger()

    # An agency's credential never reaches the audit trail.
    for who in (HOUSING, POLICE):
        denied = await api.client.get("/governance/query", headers=api.auth(who))
        assert denied.status_code == 403, who
    officer = api.auth("officer")
    # The officer names the offender by PNC id; the keyed hash is computed for them.
    page = await api.client.get(
        "/governance/query",
        headers=officer,
        params={"subject": PNC, "act": "consultation", "proofs": "true"},
    )
    assert page.status_code == 200, page.text
    [entry] = page.json()["entries"]
    assert (entry["agency"], entry["user"]) == (HOUSING, api.service(HOUSING))
    assert entry["justification"] == JUSTIFICATION
    assert entry["subject_ref"] == api.world.deployment.subject_ref(PNC)
    assert entry["proof"]["hashes"] is not None
    verified = await api.client.get("/governance/verify", headers=officer)
    assert verified.status_code == 200
    assert verified.json()["intact"] is True
    bad = await api.client.get("/governance/query", headers=officer, params={"act": "gossip"})
    assert bad.status_code == 422


async def test_an_agency_this_broker_does_not_serve_is_not_found(api: Api) -> None:
    """A valid credential for an agency whose adapter does not run here."""
    r = await api.client.get(f"/v1/agencies/{EDUCATION}/inbox", headers=api.auth(EDUCATION))
    assert (r.status_code, r.json()["error"]) == (404, "api.not-found")
    assert "not served by this broker" in r.json()["detail"]


async def test_a_server_without_a_ledger_says_so(api: Api) -> None:
    backend = ApiBackend(agencies=api.app.state.backend.agencies, credentials=api.credentials)
    bare = application(running(backend))
    async with (
        bare.router.lifespan_context(bare),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://t") as c,
    ):
        r = await c.get("/governance/verify", headers=api.auth("officer"))
    assert (r.status_code, r.json()["error"]) == (404, "api.not-found")


async def test_transfer_routes_are_the_calling_agencys(api: Api) -> None:
    url = f"/v1/agencies/{POLICE}/transfers"
    listed = await api.client.get(url, headers=api.auth(POLICE))
    assert (listed.status_code, listed.json()) == (200, [])
    refused = await api.client.post(
        f"/v1/agencies/{HOUSING}/transfers",
        json={
            "pnc_id": PNC,
            "to_area": "atlantis",
            "move_date": "2026-12-01",
            "reason": "moving to live with family",
        },
        headers=api.auth(HOUSING),
    )
    assert 400 <= refused.status_code < 500, refused.text
    assert set(refused.json()) == {"error", "detail"}
    for who in ("officer", HOUSING):
        r = await api.client.get(url, headers=api.auth(who))
        assert (r.status_code, r.json()["error"]) == (403, "auth.forbidden")
    r = await api.client.get(url)
    assert (r.status_code, r.json()["error"]) == (401, "auth.invalid-credential")


async def test_a_poller_outlives_a_bug_in_one_poll() -> None:
    """An unexpected exception is logged and retried, not left to end the agency's polling."""
    stop = asyncio.Event()
    calls = 0

    async def poll() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        stop.set()

    await asyncio.wait_for(poll_forever("police.x", poll, stop), timeout=10)
    assert calls == 2
