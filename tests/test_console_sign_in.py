"""Signing in to the console, in-process (httpx over ASGI, https so that the ``Secure``
``__Host-`` cookies travel): the app as deployed over a data directory with real users
(``broker.identity``, production Argon2id parameters). Every check that can refuse is
made to: a sign-in form without its token, a wrong password, a wrong code, a locked
account with the right password, too many failures from one address, a page without a
session, a sign-out without the session's CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.roles import Role
from broker.identity.totp import code_at
from broker.identity.users import UserStore
from tests.console_world import empty_app

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test user's
AGENCY = "housing.staffordshire"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with empty_app(tmp_path) as built:
        yield built


@pytest.fixture
def totp_secret(tmp_path: Path) -> str:
    """An IG officer (password and TOTP) and a housing officer (password only)."""
    with IdentityDatabase(identity_path(tmp_path)) as database:
        users = UserStore(database)
        now = datetime.now(UTC)
        users.add("h.officer", agency=AGENCY, role=Role.AGENCY_USER, password=PASSWORD,
                  actor="test", now=now)  # fmt: skip
        enrolled = users.add("ig.smith", agency="police.staffordshire", role=Role.IG_OFFICER,
                             password=PASSWORD, actor="test", now=now)  # fmt: skip
    assert enrolled.totp_secret is not None
    return enrolled.totp_secret


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t")


async def form_token(c: httpx.AsyncClient) -> str:
    page = await c.get("/console/sign-in")
    [token] = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)
    return str(token)


async def sign_in(
    c: httpx.AsyncClient, username: str, password: str = PASSWORD, totp: str = ""
) -> httpx.Response:
    fields = {"csrf_token": await form_token(c), "username": username, "password": password}
    return await c.post("/console/sign-in", data=fields | {"totp": totp})


async def test_a_user_signs_in_sees_their_home_and_signs_out(
    app: FastAPI, totp_secret: str
) -> None:
    async with browser(app) as c:
        assert (await c.get("/console/home")).headers["location"] == "/console/sign-in"
        done = await sign_in(c, "h.officer")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/console/home"
        assert "__Host-mappa-session=" in done.headers["set-cookie"]
        home = await c.get("/console/home")
        assert home.status_code == 200
        assert "h.officer" in home.text
        assert AGENCY in home.text
        # Signing out is a form with the session's token; without it, nothing happens.
        assert (await c.post("/console/sign-out", data={})).status_code == 403
        assert (await c.get("/console/home")).status_code == 200
        [token] = re.findall(r'name="csrf_token" value="([^"]+)"', home.text)
        out = await c.post("/console/sign-out", data={"csrf_token": token})
        assert out.status_code == 303
        assert (await c.get("/console/home")).status_code == 303


async def test_a_sign_in_without_the_forms_token_is_refused(app: FastAPI, totp_secret: str) -> None:
    async with browser(app) as c:
        fields = {"username": "h.officer", "password": PASSWORD, "totp": ""}
        refused = await c.post("/console/sign-in", data=fields)
        assert refused.status_code == 403
        assert "The sign-in page had expired" in refused.text
        forged = await c.post("/console/sign-in", data=fields | {"csrf_token": "x" * 60})
        assert forged.status_code == 403
        assert "__Host-mappa-session=" not in forged.headers.get("set-cookie", "")


async def test_the_second_factor_is_required_where_the_role_needs_it(
    app: FastAPI, totp_secret: str
) -> None:
    async with browser(app) as c:
        for code in ("", "000000" if code_at(totp_secret, datetime.now(UTC)) != "000000" else "1"):
            refused = await sign_in(c, "ig.smith", totp=code)
            assert refused.status_code == 401
            assert "Enter a correct username, password and security code" in refused.text
        ok = await sign_in(c, "ig.smith", totp=code_at(totp_secret, datetime.now(UTC)))
        assert ok.status_code == 303, ok.text


async def test_a_refusal_never_says_which_part_was_wrong(app: FastAPI, totp_secret: str) -> None:
    async with browser(app) as c:
        unknown = await sign_in(c, "nobody.here")
        wrong = await sign_in(c, "h.officer", password="not the password at all")  # noqa: S106
    assert unknown.status_code == wrong.status_code == 401
    said = [re.findall(r'govuk-error-summary__list">\s*<li>\s*<a[^>]*>([^<]+)', r.text)
            for r in (unknown, wrong)]  # fmt: skip
    assert said[0] == said[1] != []


async def test_a_locked_account_stays_locked_with_the_right_password(
    app: FastAPI, totp_secret: str, tmp_path: Path
) -> None:
    async with browser(app) as c:
        for _ in range(5):
            await sign_in(c, "h.officer", password="a wrong password, again")  # noqa: S106
        locked = await sign_in(c, "h.officer")
    # Five failures for one username is also the limiter's allowance: either says no.
    assert locked.status_code in (401, 429)
    assert "__Host-mappa-session=" not in locked.headers.get("set-cookie", "")
    with IdentityDatabase(identity_path(tmp_path)) as database:
        [user] = [u for u in UserStore(database).list() if u.username == "h.officer"]
    assert user.locked_at is not None


async def test_failed_sign_ins_from_one_address_are_rationed(
    app: FastAPI, totp_secret: str
) -> None:
    async with browser(app) as c:
        answers = [
            (await sign_in(c, f"guess.{n}", password="guessing the password")).status_code  # noqa: S106
            for n in range(12)
        ]
    assert answers[0] == 401
    assert 429 in answers
