"""Hostile input to the HTTP API: every value a caller can send is bounded, and a value
out of bounds is a 4xx in the one error shape, never a 5xx (issue 16, findings 5 and 6).

Governance queries run on a real ledger (SQLite, and PostgreSQL where there is one);
transfers and consultations on real gateways and desks over the session's broker."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header
from fastapi.testclient import TestClient

from broker.api.credentials import AccessDenied
from broker.api.errors import install_error_handlers
from broker.api.governance import governance_router
from broker.api.transfers import transfers_router
from broker.calendar import is_working_day, working_days_between
from broker.gateway.justification import (
    JUSTIFICATION_INVALID,
    JUSTIFICATION_MISSING,
    justification_problem,
)
from broker.kafka.polling import polling
from broker.kafka.transport import KafkaTransport
from broker.transfer.desk import TransferDesk
from schemas.transfer import TransferState
from tests.brokers import tansu
from tests.ledger_world import LedgerWorld, build_ledger_world, ledger_url
from tests.support import HOUSING, PNC, World
from tests.test_api import Api, module_api
from tests.test_ledger import populate
from tests.two_areas import COORD_B, PROBATION_A, TO, build_transfer_world, stand_in_actor

# Fixtures from elsewhere: the app as `mappa serve` builds it (one per module), and each
# ledger database.
__all__ = ["ledger_url", "module_api"]

# -- governance queries -------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path, ledger_url: str | None) -> Iterator[LedgerWorld]:
    w = build_ledger_world(tmp_path / "data", ledger_url)
    populate(w)
    try:
        yield w
    finally:
        w.close()


def governance_client(ledger: LedgerWorld) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(governance_router(lambda: ledger.reader, lambda: None))
    # A 5xx must come back as a response the test can see, not as an exception.
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def officer(ledger: LedgerWorld) -> TestClient:
    return governance_client(ledger)


@pytest.fixture(scope="module")
def bounds_officer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One SQLite ledger for the parameter bounds, which are judged before any database
    is asked (the bounds a database sets, 64-bit sequence numbers, are tested on each)."""
    w = build_ledger_world(tmp_path_factory.mktemp("ledger") / "data", None)
    populate(w)
    try:
        yield governance_client(w)
    finally:
        w.close()


@pytest.mark.parametrize(
    "params",
    [
        # A zone offset that takes the time off the calendar once in UTC.
        {"since": "9999-12-31T23:59:59-23:59"},
        {"until": "0001-01-01T00:00:00+23:59"},
        # Dates no audit event has or will have.
        {"since": "9999-12-31"},
        {"until": "0001-01-01"},
        # A subject is a PNC id: ASCII, and no bidirectional override.
        {"subject": "é"},
        {"subject": "2011/0456789K\u202e"},
        {"subject": "not a pnc id"},
        {"agency": "probation\u202e"},
        {"agreement": "isa\x00"},
        {"user": "officer\x00"},
        {"user": "\u200b"},
    ],
)
@pytest.mark.parametrize("route", ["query", "export"])
def test_a_governance_parameter_out_of_bounds_is_a_422(
    bounds_officer: TestClient, route: str, params: dict[str, str]
) -> None:
    answer = bounds_officer.get(f"/governance/{route}", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "audit.query-invalid"
    assert next(iter(params)) in answer.json()["detail"] or "time" in answer.json()["detail"]


@pytest.mark.parametrize("after", [str(2**63 - 1), str(2**64)])
def test_a_sequence_number_past_64_bits_is_a_422(officer: TestClient, after: str) -> None:
    # Past what SQLite and PostgreSQL hold in a 64-bit integer (an export is never paged).
    answer = officer.get("/governance/query", params={"after": after})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "audit.query-invalid"
    assert "after" in answer.json()["detail"]


def test_governance_bounds_leave_good_queries_alone(officer: TestClient) -> None:
    page = officer.get(
        "/governance/query",
        params={"subject": PNC.lower(), "since": "2026-01-01", "after": str(2**63 - 2)},
    )
    assert page.status_code == 200, page.text
    assert page.json()["entries"] == []
    named = officer.get("/governance/query", params={"user": "ppu.officer.1", "after": "-1"})
    assert [e["user"] for e in named.json()["entries"]] == ["ppu.officer.1"]


# -- transfers ------------------------------------------------------------------------------


@pytest.fixture
async def transfers(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[World]:
    w = await build_transfer_world(tmp_path, tansu(transport.bootstrap))
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture(scope="module")
async def refusing_transfers(
    tmp_path_factory: pytest.TempPathFactory, transport: KafkaTransport
) -> AsyncIterator[World]:
    """One two-area world for requests refused before any desk records them (each test
    checks that none did)."""
    w = await build_transfer_world(tmp_path_factory.mktemp("areas"), tansu(transport.bootstrap))
    try:
        yield w
    finally:
        await w.close()


def _client(w: World) -> httpx.AsyncClient:
    def require_desk(agency_id: str, x_agency: str = Header()) -> TransferDesk:
        # Stands in for the bearer-token dependency, as in tests/test_transfer_api.py.
        if x_agency != agency_id or agency_id not in w.desks:
            raise AccessDenied(f"no access to {agency_id}")
        return w.desk(agency_id)

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(transfers_router(require_desk, stand_in_actor))
    # raise_app_exceptions off: a 5xx is an answer the test asserts on.
    asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=asgi, base_url="http://t", timeout=60)


async def _call(
    client: httpx.AsyncClient, method: str, agency: str, path: str = "", **kw: Any
) -> httpx.Response:
    url = f"/v1/agencies/{agency}/transfers{path}"
    return await client.request(method, url, headers={"x-agency": agency}, **kw)


TODAY = datetime.now(UTC).date().isoformat()


def _request(move_date: str, **changes: Any) -> dict[str, Any]:
    return {
        "pnc_id": PNC,
        "to_area": TO,
        "move_date": move_date,
        "reason": "moving",
        "registered_sex_offender": True,
    } | changes


@pytest.mark.parametrize(
    "body",
    [
        _request("9999-12-30"),
        _request("0001-01-01"),
        _request(TODAY, to_area="west\u202emercia"),
        # No free-text user at all: who acts is the credential's.
        _request(TODAY, user="po.1"),
        _request(TODAY, reason="moving\u2066 to a new address"),
        _request(TODAY, open_actions=["visit\x01"]),
        _request(TODAY, lead_agency="probation.é"),
        _request(TODAY, open_actions=["x" * 5000]),
    ],
)
async def test_a_transfer_request_out_of_bounds_is_a_422(
    refusing_transfers: World, body: dict[str, Any]
) -> None:
    transfers = refusing_transfers
    async with _client(transfers) as client:
        answer = await _call(client, "POST", PROBATION_A, json=body)
    assert answer.status_code == 422, answer.text
    # Bounded here (request.invalid), or a name the desk refuses and audits.
    assert answer.json()["error"] in ("request.invalid", "transfer.invalid")
    assert transfers.desk(PROBATION_A).registry.records() == []


async def test_far_dates_asked_about_are_a_422(transfers: World) -> None:
    async with _client(transfers) as client:
        for on in ("9999-12-31", "0001-01-01", "1899-12-31"):
            answer = await _call(client, "GET", PROBATION_A, "/overdue", params={"on": on})
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] == "request.invalid"
        step = {"completed_on": "9999-12-31"}
        done = await _call(client, "POST", COORD_B, f"/{uuid.uuid4()}/complete", json=step)
        assert done.status_code == 422, done.text


async def test_a_stored_far_move_date_never_breaks_the_listings(transfers: World) -> None:
    # A transfer known to the desk with a date at the calendar's end (a peer that does not
    # bound its dates, or one stored before the API did): the listings still answer.
    desk = transfers.desk(PROBATION_A)
    record = await desk.request(
        pnc_id=PNC,
        to_area=TO,
        move_date=date(9999, 12, 30),
        reason="moving",
        user="po.1",
        registered_sex_offender=True,
    )
    async with _client(transfers) as client:
        listed = await _call(client, "GET", PROBATION_A)
        assert listed.status_code == 200, listed.text
        [only] = listed.json()
        assert only["transfer"]["transfer_id"] == record.transfer_id
        # The notification deadline is past the calendar: there is none to show.
        assert {d["kind"] for d in only["deadlines"]} == {"probation-transfer"}
        one = await _call(client, "GET", PROBATION_A, f"/{record.transfer_id}")
        assert one.status_code == 200, one.text
        late = await _call(client, "GET", PROBATION_A, "/overdue", params={"on": "2200-12-31"})
        assert late.status_code == 200, late.text
        [overdue] = late.json()
        assert overdue["deadline"] == "probation-transfer"
        assert overdue["days_over"] == working_days_between(
            date.fromisoformat(overdue["due"]), date(2200, 12, 31)
        )


@pytest.mark.parametrize("error", [OverflowError("date value out of range"), ValueError("x")])
def test_a_value_no_check_caught_is_a_422_not_a_500(error: Exception) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/unchecked")
    def unchecked() -> None:
        raise error

    answer = TestClient(app, raise_server_exceptions=False).get("/unchecked")
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "request.invalid",
        "detail": "a value in the request is out of range",
    }


def test_working_days_between_agrees_with_counting_day_by_day() -> None:
    rng = random.Random(16)
    spans = [(date(2026, 12, 20), date(2027, 1, 5)), (date(1900, 1, 1), date(1903, 3, 1))]
    for _ in range(200):
        start = date(1900, 1, 1) + timedelta(days=rng.randrange(110_000))
        spans.append((start, start + timedelta(days=rng.randrange(2_000))))
    for start, end in spans:
        counted = sum(
            is_working_day(start + timedelta(days=n)) for n in range(1, (end - start).days + 1)
        )
        assert working_days_between(start, end) == counted, (start, end)
        assert working_days_between(end, start) == -counted


async def test_a_step_the_background_poller_applies_is_answered_not_pending(
    transfers: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in `mappa serve`: every gateway is polled in the background while the desk waits
    # for its own step to come back. Under load the desk's own relay returns after the
    # poller has already read the step back and applied it; here it always does.
    polls = {a: gw.poll_once for a, gw in transfers.gateways.items()}
    gateway = transfers.gw(PROBATION_A)
    topic = transfers.deployment.topics.transfers
    applied = asyncio.Event()
    stop = gateway.on_handled(lambda h: applied.set() if h.topic == topic else None)
    flush = gateway.relay.flush

    async def late_flush() -> int:
        sent = await flush()
        task = asyncio.current_task()
        if task is not None and task.get_name() not in polls:
            await asyncio.wait_for(applied.wait(), timeout=30)
        return sent

    monkeypatch.setattr(gateway.relay, "flush", late_flush)
    try:
        async with _client(transfers) as client, polling(polls):
            # A reason may run over lines.
            body = _request(TODAY, reason="moving\r\nto a new address\tnext month")
            made = await _call(client, "POST", PROBATION_A, json=body)
    finally:
        stop()
    assert made.status_code == 201, made.text
    assert made.json()["transfer"]["state"] == TransferState.REQUESTED.value


# -- justification --------------------------------------------------------------------------

INVISIBLE = [
    "\u200b" * 10,
    "\x00" * 10,
    "\x01" * 12,
    "\u2060" * 10,
    "\u200b\x00\x01\u2060" * 3,
    # Letters, but a control character hidden among them.
    "tenancy allocation\x00panel review",
    # A bidirectional override turns what an auditor reads around.
    "tenancy allocation \u202epanel review",
    # Enough characters, no words.
    "..........",
    "1234567890 1234",
    "aaaaaaaaaaaaaaa",
    "x" * 4001,
]


@pytest.mark.parametrize("text", INVISIBLE)
def test_what_is_not_a_justification(text: str) -> None:
    assert justification_problem(text) is not None


@pytest.mark.parametrize("text", ["\x00", "\u200b\u200b", "ab\ud800"])
def test_short_invisible_text_is_invalid_not_missing(text: str) -> None:
    # A refusal for want of length keeps the text in the audit log; this must not be.
    problem = justification_problem(text)
    assert problem is not None
    assert problem.code == JUSTIFICATION_INVALID


def test_blank_or_short_visible_text_is_missing() -> None:
    for text in ("", "   ", "because\u00a0\u3000", "short one"):
        problem = justification_problem(text)
        assert problem is not None
        assert problem.code == JUSTIFICATION_MISSING


@pytest.mark.parametrize(
    "text",
    [
        "tenancy allocation panel, case 17",
        "Risk review: café access",
        "supervision planning, case review",
        # Decomposed accents are normalised (NFC) before they are counted.
        "re\u0301vision du dossier MAPPA",
    ],
)
def test_what_is_a_justification(text: str) -> None:
    assert justification_problem(text) is None


@pytest.mark.parametrize("text", INVISIBLE[:5] + INVISIBLE[6:7])
async def test_an_invisible_justification_opens_nothing_and_is_audited_as_refused(
    module_api: Api,
    text: str,
) -> None:
    api = module_api
    message_id = await api.published()
    opened = await api.client.post(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}/open",
        json={"justification": text},
        headers=api.auth(HOUSING),
    )
    assert opened.status_code == 422, opened.text
    assert opened.json()["error"] == JUSTIFICATION_INVALID
    await api.world.sync_ledger()
    assert api.world.ledger.store.entries(act="consultation") == []
    [refused] = [
        e
        for e in api.world.ledger.store.entries(act="refusal", agency=HOUSING)
        if e["reason_code"] == JUSTIFICATION_INVALID and e["message_id"] == message_id
    ]
    # What was given is not audited as if it were a reason.
    assert refused["justification"] is None
