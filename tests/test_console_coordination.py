"""The co-ordinators' console pages (``broker.console.coordination``) over a real
two-area world (``tests/two_areas.py``): a transfer requested through the form, listed
with its deadlines, accepted and completed by the receiving co-ordinator through the
pages; the CSRF and role checks; a step the state forbids answered with an error summary.

Each TOTP user signs in once per test: a code cannot be used twice in one 30-second step.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from broker.api.backend import ApiBackend, running
from broker.api.compose import application
from broker.api.credentials import CredentialStore, credentials_path
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.roles import Role
from broker.identity.users import UserStore
from broker.kafka.transport import KafkaTransport
from schemas.transfer import TransferState
from tests.brokers import tansu
from tests.console_world import PASSWORD, csrf_of, sign_in
from tests.support import World
from tests.two_areas import (
    COORD_A,
    COORD_B,
    PNC,
    POLICE_A,
    PROBATION_A,
    TO,
    build_transfer_world,
)

# name: (username, agency, role); the co-ordinators sign in with TOTP (asked for: the
# role does not require it).
USERS: dict[str, tuple[str, str, Role]] = {
    "sending": ("coord.staffs", COORD_A, Role.COORDINATOR),
    "receiving": ("coord.wm", COORD_B, Role.COORDINATOR),
    "probation": ("po.staffs", PROBATION_A, Role.AGENCY_USER),
}


@dataclass
class TwoAreaConsole:
    world: World
    app: FastAPI
    totp: dict[str, str] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def signed_in(self, name: str) -> AsyncIterator[httpx.AsyncClient]:
        """A browser signed in as ``USERS[name]`` (https: the cookies are ``Secure``)."""
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://mappa.test") as c:
            assert (name in self.totp) is (USERS[name][2] is Role.COORDINATOR)
            await sign_in(c, USERS[name][0], self.totp.get(name))
            yield c


@contextlib.asynccontextmanager
async def two_area_console(
    tmp_path: Path, transport: KafkaTransport
) -> AsyncIterator[TwoAreaConsole]:
    """The app as `mappa serve` builds it over both areas' desks, with ``USERS`` (its
    lifespan not yet started: a test or a server starts it)."""
    w = await build_transfer_world(tmp_path, tansu(transport.bootstrap))
    w.seed_case_team((POLICE_A, PROBATION_A, COORD_A))
    data_dir = w.deployment.settings.data_dir
    store = CredentialStore(credentials_path(data_dir))
    try:
        backend = ApiBackend(agencies={}, credentials=store, desks=w.desks, data_dir=data_dir)
        world = TwoAreaConsole(w, application(running(backend)))
        with IdentityDatabase(identity_path(data_dir)) as database:
            users = UserStore(database)
            for name, (username, agency, role) in USERS.items():
                enrolled = users.add(
                    username, agency=agency, role=role, password=PASSWORD, actor="test",
                    now=datetime.now(UTC), totp=role is Role.COORDINATOR,
                )  # fmt: skip
                if enrolled.totp_secret is not None:
                    world.totp[name] = enrolled.totp_secret
        yield world
    finally:
        store.close()
        await w.close()


@pytest.fixture
async def console(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[TwoAreaConsole]:
    async with two_area_console(tmp_path, transport) as world:
        app = world.app
        async with app.router.lifespan_context(app):
            yield world


def date_fields(name: str, day: date) -> dict[str, str]:
    """A GOV.UK date input's three fields, ``name``-day/-month/-year, holding ``day``."""
    parts = {"day": day.day, "month": day.month, "year": day.year}
    return {f"{name}-{part}": str(value) for part, value in parts.items()}


def request_form(token: str, **overrides: str) -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {
        "csrf_token": token,
        "pnc_id": PNC,
        "lead_agency": PROBATION_A,
        "to_area": TO,
        **date_fields("move-date", today),
        "reason": "Moving to live with family",
        "rso": "yes",
    } | overrides


def error_summary(page: str) -> str:
    assert 'class="govuk-error-summary"' in page, page
    return page.split('class="govuk-error-summary"', 1)[1].split("</div>\n</div>", 1)[0]


async def test_not_before_the_move_date_and_cancelled_by_the_receiving_area(
    console: TwoAreaConsole,
) -> None:
    w = console.world
    later = datetime.now(UTC).date() + timedelta(days=30)
    async with console.signed_in("sending") as sending:
        token = csrf_of((await sending.get("/console/transfers/new")).text)
        form = request_form(
            token,
            pnc_id="2012/0000001A",
            rso="no",
            **date_fields("move-date", later),
        )
        made = await sending.post("/console/transfers/new", data=form)
        assert made.status_code == 303, made.text
    [record] = w.desk(COORD_A).registry.records()
    tid = record.transfer_id
    assert not record.registered_sex_offender
    await w.pump(lambda: w.desk(COORD_B).registry.get(tid) is not None)
    async with console.signed_in("receiving") as receiving:
        token = csrf_of((await receiving.get(f"/console/transfers/{tid}")).text)
        accepted = await receiving.post(
            f"/console/transfers/{tid}/accept", data={"csrf_token": token}
        )
        assert accepted.status_code == 303, accepted.text
        today = datetime.now(UTC).date()
        early = await receiving.post(
            f"/console/transfers/{tid}/complete",
            data={
                "csrf_token": token,
                **date_fields("complete-date", today),
            },
        )
        assert early.status_code == 409
        summary = error_summary(early.text)
        assert "cannot be completed before its move date" in summary
        assert 'href="#complete-date-day"' in summary
        # No RSO: no address date asked for, no such deadline.
        assert 'name="notified-date-day"' not in early.text
        assert early.text.count('<strong class="govuk-tag govuk-tag--blue">') == 1
        gone = await receiving.post(
            f"/console/transfers/{tid}/cancel",
            data={"csrf_token": token, "cancel-reason": "The address fell through"},
        )
        assert gone.status_code == 303, gone.text
        cancelled = w.desk(COORD_B).registry.get(tid)
        assert cancelled is not None
        assert cancelled.state is TransferState.CANCELLED
        page = (await receiving.get(f"/console/transfers/{tid}")).text
        assert "The address fell through" in page
        assert "None running" in page  # a cancelled transfer has no deadlines left


async def test_request_accept_complete_through_the_pages(console: TwoAreaConsole) -> None:
    w = console.world
    async with console.signed_in("sending") as sending:
        home = await sending.get("/console/home")
        assert 'href="/console/transfers"' in home.text
        assert 'href="/console/case-teams"' in home.text
        new = await sending.get("/console/transfers/new")
        assert new.status_code == 200
        page = new.text
        for name in ("pnc_id", "lead_agency", "to_area", "move-date-day", "reason", "rso"):
            assert f'name="{name}"' in page, name
        assert '<option value="west-mercia"' in page
        assert '<option value="staffordshire"' not in page  # not to its own area
        token = csrf_of(page)

        # Without the session's token: refused before anything is done.
        assert (
            await sending.post("/console/transfers/new", data=request_form(""))
        ).status_code == 403
        assert w.desk(COORD_A).registry.records() == []

        # A form with gaps: an error summary linking to each field, nothing sent.
        gaps = await sending.post(
            "/console/transfers/new",
            data=request_form(token, reason="", rso="", **{"move-date-month": "13"}),
        )
        assert gaps.status_code == 422
        summary = error_summary(gaps.text)
        for anchor in ("#reason", "#rso", "#move-date-day"):
            assert f'href="{anchor}"' in summary, anchor
        assert w.desk(COORD_A).registry.records() == []

        made = await sending.post("/console/transfers/new", data=request_form(token))
        assert made.status_code == 303, made.text
        [record] = w.desk(COORD_A).registry.records()
        assert made.headers["location"] == f"/console/transfers/{record.transfer_id}"
        assert record.lead_agency == PROBATION_A
        assert record.registered_sex_offender
        # The PNC id never goes in a URL, nor on a page: the desk keeps its reference.
        assert PNC not in made.headers["location"]

        listed = await sending.get("/console/transfers")
        assert listed.status_code == 200
        assert PNC not in listed.text
        assert record.subject_ref[:12] in listed.text
        assert '<strong class="govuk-tag govuk-tag--blue">' in listed.text
        assert "requested" in listed.text
        assert f'href="/console/transfers/{record.transfer_id}"' in listed.text

        one = await sending.get(f"/console/transfers/{record.transfer_id}")
        assert one.status_code == 200
        assert "govuk-summary-list" in one.text
        assert record.subject_ref in one.text
        # The sending co-ordinator may cancel it, not accept it.
        assert f"/transfers/{record.transfer_id}/cancel" in one.text
        assert f"/transfers/{record.transfer_id}/accept" not in one.text
        # Accepting is the receiving co-ordinator's: the desk refuses, the page says so.
        wrong = await sending.post(
            f"/console/transfers/{record.transfer_id}/accept",
            data={"csrf_token": token, "accept-reason": "fine"},
        )
        assert wrong.status_code == 403
        assert "Your agency cannot take this step" in error_summary(wrong.text)
        # A second request for the same case while one is open: refused by the desk.
        again = await sending.post("/console/transfers/new", data=request_form(token))
        assert again.status_code == 409
        assert "already has a transfer open" in error_summary(again.text)
        assert PNC in again.text  # only as typed, in the form's own field, never a URL

        cases = await sending.get("/console/case-teams")
        assert cases.status_code == 200
        assert record.subject_ref[:12] in cases.text
        assert POLICE_A in cases.text
        assert PNC not in cases.text

    tid = record.transfer_id
    await w.pump(lambda: w.desk(COORD_B).registry.get(tid) is not None)
    async with console.signed_in("receiving") as receiving:
        token = csrf_of((await receiving.get("/console/home")).text)
        seen = await receiving.get(f"/console/transfers/{tid}")
        assert seen.status_code == 200
        for step in ("accept", "refuse", "cancel"):
            assert f"/transfers/{tid}/{step}" in seen.text, step
        assert f"/transfers/{tid}/complete" not in seen.text

        # A refusal needs a reason.
        bare = await receiving.post(
            f"/console/transfers/{tid}/refuse", data={"csrf_token": token, "refuse-reason": ""}
        )
        assert bare.status_code == 422
        assert 'href="#refuse-reason"' in error_summary(bare.text)

        ok = await receiving.post(
            f"/console/transfers/{tid}/accept",
            data={"csrf_token": token, "accept-reason": "Address approved"},
        )
        assert ok.status_code == 303, ok.text
        accepted = w.desk(COORD_B).registry.get(tid)
        assert accepted is not None
        assert accepted.state is TransferState.ACCEPTED
        assert accepted.last_step_by == COORD_B

        # A step the state forbids: accepted twice.
        twice = await receiving.post(f"/console/transfers/{tid}/accept", data={"csrf_token": token})
        assert twice.status_code == 409
        assert "This transfer is accepted" in error_summary(twice.text)
        # Its link goes to what is on the page: the steps (no accept form any more).
        assert 'href="#steps"' in error_summary(twice.text)
        assert 'id="steps"' in twice.text
        assert 'name="complete-team"' in twice.text
        assert 'name="complete-date-day"' in twice.text

        today = datetime.now(UTC).date()
        done = await receiving.post(
            f"/console/transfers/{tid}/complete",
            data={
                "csrf_token": token,
                **date_fields("complete-date", today),
                **date_fields("notified-date", today),
                "complete-team": COORD_B,
            },
        )
        assert done.status_code == 303, done.text
        completed = w.desk(COORD_B).registry.get(tid)
        assert completed is not None
        assert completed.state is TransferState.COMPLETED
        assert completed.case_team == (COORD_B,)
        page = (await receiving.get(f"/console/transfers/{tid}")).text
        assert "What you can do" not in page
        assert page.count('<strong class="govuk-tag govuk-tag--green">') == 2
        assert "govuk-tag--red" not in page
        listed = await receiving.get("/console/transfers")
        assert "completed" in listed.text


async def test_only_coordinators_and_only_with_the_token(console: TwoAreaConsole) -> None:
    async with console.signed_in("probation") as probation:
        home = await probation.get("/console/home")
        assert "/console/transfers" not in home.text
        for path in (
            "/console/transfers",
            "/console/transfers/new",
            "/console/case-teams",
            "/console/annual-report",
        ):
            refused = await probation.get(path)
            assert refused.status_code == 403, path
            assert "Sorry, there is a problem with the service" in refused.text
        token = csrf_of(home.text)
        posted = await probation.post("/console/transfers/new", data=request_form(token))
        assert posted.status_code == 403
    assert console.world.desk(PROBATION_A).registry.records() == []
    async with console.signed_in("sending") as sending:
        # Not a transfer id, or one the desk does not know: no page, never a traceback.
        assert (await sending.get("/console/transfers/nothing")).status_code == 404
        unknown = "00000000-0000-4000-8000-000000000000"
        assert (await sending.get(f"/console/transfers/{unknown}")).status_code == 404
        token = csrf_of((await sending.get("/console/home")).text)
        step = await sending.post(
            f"/console/transfers/{unknown}/accept", data={"csrf_token": token}
        )
        assert step.status_code == 404
        nostep = await sending.post(
            f"/console/transfers/{unknown}/ignore", data={"csrf_token": token}
        )
        assert nostep.status_code == 404
    # Signed out: sent to sign in.
    transport = httpx.ASGITransport(app=console.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mappa.test") as c:
        away = await c.get("/console/transfers")
        assert away.status_code == 303
        assert away.headers["location"].endswith("/console/sign-in")


def test_dates_in_the_forms() -> None:
    from starlette.datastructures import FormData

    from broker.console.coordination import _day

    def form(d: str, m: str, y: str) -> FormData:
        return FormData({"x-day": d, "x-month": m, "x-year": y})

    assert _day(form("27", "3", "2026"), "x") == date(2026, 3, 27)
    assert _day(form("31", "2", "2026"), "x") is None
    assert _day(form("", "3", "2026"), "x") is None
    assert _day(form("1", "1", "9999"), "x") is None


async def test_the_annual_report_page_computes_the_units_tables(console: TwoAreaConsole) -> None:
    """The same report as `mappa report annual` (tests/test_annual_report.py has its
    figures), on the co-ordinator's page: audited each time it runs."""
    unit = console.world.desk(COORD_A).ctx
    before = unit.audit.emitted
    async with console.signed_in("sending") as sending:
        home = await sending.get("/console/home")
        assert 'href="/console/annual-report"' in home.text
        page = await sending.get("/console/annual-report", params={"year": "2013-14"})
        assert page.status_code == 200
        assert "MAPPA-eligible offenders in the community on 31 March 2014" in page.text
        assert 'role="img"' in page.text
        assert unit.audit.emitted == before + 1
        bad = await sending.get("/console/annual-report", params={"year": "2013-15"})
        assert bad.status_code == 400
        assert "written like 2013-14" in error_summary(bad.text)
        assert unit.audit.emitted == before + 1
