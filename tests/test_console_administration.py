"""The agency administrator's console pages (``broker/console/administration.py``),
in-process over the app with named users and no agencies
(``tests.console_world.people_world``): housing's administrator lists housing's users,
adds one (who then signs in), sees a new second factor's secret once (``no-store``),
resets a locked user, disables one (whose session ends and who can no longer sign in), and
reads each user's history, every act recorded with the administrator's username. Each
field of the add and reset forms is refused with its message; an administrator cannot
disable or reset themselves; another agency's user is "Page not found", as a user who does
not exist is; other roles get 403, and every form without the session's CSRF token is
refused."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from broker.console import administration
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.errors import SignInRefused
from broker.identity.roles import Role
from broker.identity.totp import code_at
from broker.identity.users import MAX_FAILED_ATTEMPTS, UserAct, UserState, UserStore
from tests.console_world import PASSWORD, USERS, PeopleWorld, csrf_of, people_world
from tests.support import HOUSING, POLICE
from tests.test_console_agency import error_summary

ADMIN = USERS["admin"][0]
NEW_PASSWORD = "plum tree harbour lantern"  # noqa: S105 - the test's
OTHER_AGENCYS = ("ppu.officer", "ig.smith", "mappa.coord", "po.officer")
GET_PAGES = ("/console/users", "/console/users/new", "/console/user/h.officer",
             "/console/user/h.officer/disable", "/console/user/h.officer/reset")  # fmt: skip
POST_PAGES = ("/console/users/new", "/console/user/h.officer/disable",
              "/console/user/h.officer/reset")  # fmt: skip


@pytest.fixture
async def cw(tmp_path: Path) -> AsyncIterator[PeopleWorld]:
    # People only: these pages need no agency, broker or ledger.
    async with people_world(tmp_path) as world:
        yield world


@contextlib.contextmanager
def user_store(cw: PeopleWorld) -> Iterator[UserStore]:
    """The world's users, as the console's store holds them (the same file)."""
    data_dir = cw.data_dir
    with IdentityDatabase(identity_path(data_dir)) as database:
        yield UserStore(database)


async def sign_in_as(
    c: httpx.AsyncClient, username: str, password: str, secret: str | None = None
) -> httpx.Response:
    """A sign-in attempt (with the current code, for a user with a TOTP secret)."""
    form = await c.get("/console/sign-in")
    code = code_at(secret, datetime.now(UTC)) if secret else ""
    fields = {"username": username, "password": password, "totp": code}
    return await c.post("/console/sign-in", data=fields | {"csrf_token": csrf_of(form.text)})


async def add(c: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """The add form, posted with ``fields`` and the session's token."""
    form = await c.get("/console/users/new")
    assert form.status_code == 200, form.text
    return await c.post("/console/users/new", data={"csrf_token": csrf_of(form.text), **fields})


def new_user(username: str, role: Role = Role.AGENCY_USER, **more: str) -> dict[str, str]:
    fields = {"username": username, "role": role.value}
    return fields | {"password": NEW_PASSWORD, "password-again": NEW_PASSWORD} | more


def typed_twice(password: str) -> dict[str, str]:
    return {"password": password, "password-again": password}


def shown_secret(page: str) -> str | None:
    """The TOTP secret an answer shows (in its otpauth URI), or None."""
    found = re.search(r"otpauth://totp/[^\s<\"]*secret=([A-Z2-7]{32})", page)
    return found.group(1) if found else None


def table_rows(page: str) -> list[str]:
    """The text of each body row of a page's (first) table."""
    body = page.split('<tbody class="govuk-table__body">', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r'<tr class="govuk-table__row">(.*?)</tr>', body, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


async def test_the_administrator_lists_their_agencys_users_only(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        home = await admin.get("/console/home")
        assert 'href="/console/users"' in home.text
        listed = await admin.get("/console/users")
        assert listed.status_code == 200, listed.text
        rows = table_rows(listed.text)
        assert rows[0].startswith("h.officer Agency user Active No")
        assert rows[1].startswith(f"{ADMIN} Agency administrator Active Yes")
        assert len(rows) == 2
        for other in OTHER_AGENCYS:
            assert other not in listed.text
        assert 'href="/console/users/new"' in listed.text
        # The active item of the service navigation is this page's.
        [active] = re.findall(r"__item--active.*?</li>", listed.text, re.S)
        assert 'href="/console/users"' in active


async def test_the_administrator_adds_a_user_who_then_signs_in(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        added = await add(admin, **new_user("j.smith"))
        assert added.status_code == 200, added.text
        assert added.headers["cache-control"] == "no-store"
        assert "User added" in added.text
        assert "j.smith" in added.text
        assert shown_secret(added.text) is None  # an agency user needs no second factor
        assert NEW_PASSWORD not in added.text
        listed = await admin.get("/console/users")
        assert any(r.startswith("j.smith Agency user Active No") for r in table_rows(listed.text))
        page = await admin.get("/console/user/j.smith")
        assert page.status_code == 200
        [row] = table_rows(page.text)
        assert row.endswith(f"Added Agency user {ADMIN}")
    with user_store(cw) as users:
        user = users.get("j.smith")
        assert (user.agency, user.role, user.state) == (HOUSING, Role.AGENCY_USER, UserState.ACTIVE)
        [event] = users.history(username="j.smith")
        assert (event.act, event.actor) == (UserAct.ADD, ADMIN)
    async with cw.browser() as c:
        signed = await sign_in_as(c, "j.smith", NEW_PASSWORD)
        assert signed.status_code == 303, signed.text
        home = await c.get("/console/home")
        assert "j.smith" in home.text
        assert HOUSING in home.text


async def test_a_second_factor_is_shown_once_and_never_stored(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        added = await add(admin, **new_user("k.jones", Role.AGENCY_ADMIN))
        assert added.status_code == 200, added.text
        assert added.headers["cache-control"] == "no-store"
        secret = shown_secret(added.text)
        assert secret is not None
        assert "otpauth://totp/" in added.text
        assert "only time this secret is shown" in added.text
        # Never again: not on the user's page, not in the list.
        for path in ("/console/user/k.jones", "/console/users", "/console/user/k.jones/reset"):
            again = await admin.get(path)
            assert secret not in again.text
            assert "otpauth" not in again.text
        # A role that does not need one gets one when asked.
        asked = await add(admin, **new_user("l.brown", totp="yes"))
        assert asked.headers["cache-control"] == "no-store"
        assert shown_secret(asked.text) is not None
        assert any(
            r.startswith("l.brown Agency user Active Yes")
            for r in table_rows((await admin.get("/console/users")).text)
        )
    async with cw.browser() as c:
        refused = await sign_in_as(c, "k.jones", NEW_PASSWORD)  # no code
        assert refused.status_code == 401
        signed = await sign_in_as(c, "k.jones", NEW_PASSWORD, secret)
        assert signed.status_code == 303, signed.text
        # The new administrator administers housing's users too.
        assert (await c.get("/console/users")).status_code == 200


# Each refused add form: its fields, and the error summary's links and texts (each
# text's start) in the order of the form.
REFUSED_ADDS: list[tuple[dict[str, str], dict[str, str]]] = [
    (
        {},
        {
            "#username": "Enter a username",
            "#role": "Select the user's role",
            "#password": "Enter a password",
        },
    ),
    (
        new_user("J Smith"),
        {
            "#username": "Enter a username of up to 100 lower-case letters, digits, full "
            "stops, hyphens or underscores, starting with a letter or digit"
        },
    ),
    (new_user("-j.smith"), {"#username": "Enter a username of up to 100 lower-case"}),
    (new_user("j" * 101), {"#username": "Enter a username of up to 100 lower-case"}),
    # Usernames are unique across the deployment: another agency's too.
    (new_user("ppu.officer"), {"#username": "There is a user with this username already"}),
    (new_user("h.officer"), {"#username": "There is a user with this username already"}),
    (new_user("j.smith") | {"role": "superuser"}, {"#role": "Select the user's role"}),
    # An administrator cannot make an IG officer (who reads the whole ledger).
    (new_user("j.smith", role=Role.IG_OFFICER), {"#role": "Select the user's role"}),
    (new_user("j.smith") | {"role": ""}, {"#role": "Select the user's role"}),
    (
        new_user("j.smith") | typed_twice("too short"),
        {"#password": "The password must be 12 characters or more"},
    ),
    (
        new_user("j.smith") | typed_twice("x" * 257),
        {"#password": "The password must be 256 characters or fewer"},
    ),
    (
        new_user("j.smith") | typed_twice("J.Smith is here"),
        {"#password": "The password must not contain the username"},
    ),
    (
        new_user("j.smith") | typed_twice("tab\there and more"),
        {"#password": "The password must not contain tabs, line breaks"},
    ),
    (
        new_user("j.smith") | {"password-again": NEW_PASSWORD + "!"},
        {"#password-again": "Enter the same password again"},
    ),
    (
        new_user("J Smith", role=Role.AGENCY_USER) | {"role": "", "password": ""},
        {
            "#username": "Enter a username of up to 100 lower-case",
            "#role": "Select the user's role",
            "#password": "Enter a password",
        },
    ),
]


async def test_the_add_form_refuses_each_wrong_field(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        for fields, expected in REFUSED_ADDS:
            refused = await add(admin, **fields)
            assert refused.status_code == 422, refused.text
            assert refused.text.count("govuk-error-message") == len(expected)
            summary = [html.unescape(t) for t in error_summary(refused.text)]
            assert len(summary) == len(expected), summary
            links = re.findall(r'govuk-error-summary__list">.*?</ul>', refused.text, re.S)[0]
            for (href, text), said in zip(expected.items(), summary, strict=True):
                assert said.startswith(text), said
                assert f'href="{href}"' in links
            assert "<title>Error: Add a user" in refused.text
            # What was typed stays, but never the password.
            if fields.get("username"):
                assert f'value="{html.escape(fields["username"])}"' in refused.text
            if fields.get("password"):
                assert fields["password"] not in refused.text
    with user_store(cw) as users:
        assert len(users.list()) == len(USERS)


async def test_a_locked_user_is_reset_and_signs_in_with_the_new_password(
    cw: PeopleWorld,
) -> None:
    with user_store(cw) as users:
        for _ in range(MAX_FAILED_ATTEMPTS):
            with pytest.raises(SignInRefused):
                users.authenticate("h.officer", "not the password", None, now=datetime.now(UTC))
        assert users.get("h.officer").state is UserState.LOCKED
    async with cw.signed_in("admin") as admin:
        listed = await admin.get("/console/users")
        assert table_rows(listed.text)[0].startswith("h.officer Agency user Locked")
        form = await admin.get("/console/user/h.officer/reset")
        assert form.status_code == 200
        assert 'name="password"' in form.text
        assert 'name="totp"' in form.text  # they have no second factor: it may be added
        token = csrf_of(form.text)
        short = {"csrf_token": token, "password": "short", "password-again": "short"}
        refused = await admin.post("/console/user/h.officer/reset", data=short)
        assert refused.status_code == 422
        assert error_summary(refused.text)[0].startswith("The password must be 12 characters")
        differ = short | {"password": NEW_PASSWORD, "password-again": PASSWORD}
        refused = await admin.post("/console/user/h.officer/reset", data=differ)
        assert error_summary(refused.text) == ["Enter the same password again"]
        with user_store(cw) as users:
            assert users.get("h.officer").state is UserState.LOCKED  # nothing done yet
        fields = short | {"password": NEW_PASSWORD, "password-again": NEW_PASSWORD}
        reset = await admin.post("/console/user/h.officer/reset", data=fields)
        assert reset.status_code == 200, reset.text
        assert reset.headers["cache-control"] == "no-store"
        assert "User reset" in reset.text
        assert shown_secret(reset.text) is None
        page = await admin.get("/console/user/h.officer")
        assert table_rows(page.text)[-1].endswith(f"Reset Agency user {ADMIN}")
        assert "Locked after failed sign-ins Agency user sign-in" in " ".join(table_rows(page.text))
    with user_store(cw) as users:
        assert users.get("h.officer").state is UserState.ACTIVE
        assert [(e.act, e.actor) for e in users.history(username="h.officer")][-1] == (
            UserAct.RESET, ADMIN,
        )  # fmt: skip
    async with cw.browser() as c:
        assert (await sign_in_as(c, "h.officer", PASSWORD)).status_code == 401
        assert (await sign_in_as(c, "h.officer", NEW_PASSWORD)).status_code == 303


async def test_a_reset_gives_a_new_second_factor_once(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        added = await add(admin, **new_user("k.jones", Role.AGENCY_ADMIN))
        first = shown_secret(added.text)
        form = await admin.get("/console/user/k.jones/reset")
        assert 'name="totp"' not in form.text  # an administrator always has one
        fields = {"password": NEW_PASSWORD, "password-again": NEW_PASSWORD}
        reset = await admin.post(
            "/console/user/k.jones/reset", data=fields | {"csrf_token": csrf_of(form.text)}
        )
        assert reset.status_code == 200, reset.text
        assert reset.headers["cache-control"] == "no-store"
        second = shown_secret(reset.text)
        assert second is not None
        assert second != first
        # An agency user given one at their reset.
        form = await admin.get("/console/user/h.officer/reset")
        given = await admin.post(
            "/console/user/h.officer/reset",
            data=fields | {"csrf_token": csrf_of(form.text), "totp": "yes"},
        )
        assert shown_secret(given.text) is not None
    async with cw.browser() as c:
        assert first is not None
        assert (await sign_in_as(c, "k.jones", NEW_PASSWORD, first)).status_code == 401
        assert (await sign_in_as(c, "k.jones", NEW_PASSWORD, second)).status_code == 303


async def test_a_disabled_user_is_signed_out_and_cannot_sign_in(cw: PeopleWorld) -> None:
    async with cw.signed_in("housing") as officer, cw.signed_in("admin") as admin:
        assert (await officer.get("/console/home")).status_code == 200
        page = await admin.get("/console/user/h.officer")
        assert 'href="/console/user/h.officer/disable"' in page.text
        confirm = await admin.get("/console/user/h.officer/disable")
        assert confirm.status_code == 200
        assert "Disable h.officer?" in confirm.text
        assert 'action="/console/user/h.officer/disable"' in confirm.text
        # A GET changes nothing.
        with user_store(cw) as users:
            assert users.get("h.officer").state is UserState.ACTIVE
        done = await admin.post(
            "/console/user/h.officer/disable", data={"csrf_token": csrf_of(confirm.text)}
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/console/user/h.officer?done=disabled"
        shown = await admin.get(done.headers["location"])
        assert "h.officer is disabled" in shown.text
        assert "govuk-notification-banner--success" in shown.text
        assert table_rows(shown.text)[-1].endswith(f"Disabled Agency user {ADMIN}")
        assert "/console/user/h.officer/disable" not in shown.text
        assert "/console/user/h.officer/reset" not in shown.text
        # Their session has ended.
        away = await officer.get("/console/home")
        assert away.status_code == 303
        assert away.headers["location"] == "/console/sign-in"
        # Neither can be done again.
        token = csrf_of(shown.text)
        again = await admin.post("/console/user/h.officer/disable", data={"csrf_token": token})
        assert again.status_code == 409
        assert "This user is disabled already" in again.text
        fields = {"csrf_token": token, "password": NEW_PASSWORD, "password-again": NEW_PASSWORD}
        reset = await admin.post("/console/user/h.officer/reset", data=fields)
        assert reset.status_code == 409
        assert "A disabled user cannot be reset" in reset.text
        assert (await admin.get("/console/user/h.officer/reset")).status_code == 409
    with user_store(cw) as users:
        assert users.get("h.officer").state is UserState.DISABLED
        acts = [(e.act, e.actor) for e in users.history(username="h.officer")]
        assert acts == [(UserAct.ADD, "test"), (UserAct.DISABLE, ADMIN)]
    async with cw.browser() as c:
        assert (await sign_in_as(c, "h.officer", PASSWORD)).status_code == 401


async def test_an_administrator_cannot_disable_or_reset_themselves(cw: PeopleWorld) -> None:
    own = f"/console/user/{ADMIN}"
    async with cw.signed_in("admin") as admin:
        page = await admin.get(own)
        assert page.status_code == 200
        assert "This is your own account" in page.text
        assert f"{own}/disable" not in page.text
        assert f"{own}/reset" not in page.text
        token = csrf_of(page.text)
        for act in ("disable", "reset"):
            shown = await admin.get(f"{own}/{act}")
            assert shown.status_code == 409
            assert f"You cannot {act} your own account" in shown.text
            assert f'action="{own}/{act}"' not in shown.text
            fields = {"csrf_token": token, "password": NEW_PASSWORD, "password-again": NEW_PASSWORD}
            refused = await admin.post(f"{own}/{act}", data=fields)
            assert refused.status_code == 409
            assert f"You cannot {act} your own account" in refused.text
            assert shown_secret(refused.text) is None
        # Still signed in, still active, nothing recorded.
        assert (await admin.get("/console/users")).status_code == 200
    with user_store(cw) as users:
        assert users.get(ADMIN).state is UserState.ACTIVE
        assert [e.act for e in users.history(username=ADMIN)] == [UserAct.ADD]


async def test_another_agencys_user_is_not_found_like_nobody(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        token = csrf_of((await admin.get("/console/users")).text)
        fields = {"csrf_token": token, "password": NEW_PASSWORD, "password-again": NEW_PASSWORD}
        for username in (*OTHER_AGENCYS, "nobody", "Not%20A%20Name", "x" * 101):
            for suffix in ("", "/disable", "/reset"):
                path = f"/console/user/{username}{suffix}"
                shown = await admin.get(path)
                assert shown.status_code == 404, path
                assert "Page not found" in shown.text
                assert username not in shown.text
                if suffix:
                    acted = await admin.post(path, data=fields)
                    assert acted.status_code == 404, path
                    assert "Page not found" in acted.text
    with user_store(cw) as users:
        for username in OTHER_AGENCYS:
            user = users.get(username)
            assert user.state is UserState.ACTIVE
            assert [e.actor for e in users.history(username=username)] == ["test"]
        assert users.get("ppu.officer").agency == POLICE


@pytest.mark.parametrize("name", ["housing", "coordinator", "ig"])
async def test_other_roles_get_403_on_every_page(cw: PeopleWorld, name: str) -> None:
    async with cw.signed_in(name) as c:
        home = await c.get("/console/home")
        assert "/console/users" not in home.text
        token = csrf_of(home.text)
        for path in GET_PAGES:
            assert (await c.get(path)).status_code == 403, path
        for path in POST_PAGES:
            fields = new_user("j.smith") | {"csrf_token": token}
            assert (await c.post(path, data=fields)).status_code == 403, path
    with user_store(cw) as users:
        assert users.find("j.smith") is None
        assert users.get("h.officer").state is UserState.ACTIVE
        assert len(users.history()) == len(USERS)


async def test_forms_without_the_sessions_csrf_token_are_refused(cw: PeopleWorld) -> None:
    async with cw.signed_in("admin") as admin:
        for path in POST_PAGES:
            for token in ({}, {"csrf_token": "x" * 43}):
                refused = await admin.post(path, data=new_user("j.smith") | token)
                assert refused.status_code == 403, path
                assert shown_secret(refused.text) is None
    with user_store(cw) as users:
        assert users.find("j.smith") is None
        assert users.get("h.officer").state is UserState.ACTIVE
        assert len(users.history()) == len(USERS)
    async with cw.browser() as nobody:
        for path in GET_PAGES:
            away = await nobody.get(path)
            assert away.status_code == 303
            assert away.headers["location"] == "/console/sign-in"


async def test_acts_that_lose_a_race_say_so(
    cw: PeopleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A username taken, or a user disabled, between the form's checks and the act."""
    async with cw.signed_in("admin") as admin:
        form = await admin.get("/console/users/new")
        token = csrf_of(form.text)
        with monkeypatch.context() as patched:
            patched.setattr(UserStore, "find", lambda _store, _name: None)
            taken = await admin.post(
                "/console/users/new", data=new_user("h.officer") | {"csrf_token": token}
            )
        assert taken.status_code == 422
        assert "There is a user with this username already" in html.unescape(taken.text)
        with user_store(cw) as users:
            users.disable("po.officer", actor="test", now=datetime.now(UTC))
            users.disable("h.officer", actor="test", now=datetime.now(UTC))
        # The first check (before the act) passes as if the user were still active.
        checks = iter([""])
        real = administration._refusal
        monkeypatch.setattr(
            administration, "_refusal", lambda *args: next(checks, None) or real(*args)
        )
        lost = await admin.post("/console/user/h.officer/disable", data={"csrf_token": token})
        assert lost.status_code == 409
        assert "This user is disabled already" in lost.text
        checks = iter([""])
        fields = {"csrf_token": token, "password": NEW_PASSWORD, "password-again": NEW_PASSWORD}
        lost = await admin.post("/console/user/h.officer/reset", data=fields)
        assert lost.status_code == 409
        assert "A disabled user cannot be reset" in lost.text
        assert shown_secret(lost.text) is None
    with user_store(cw) as users:
        assert [e.actor for e in users.history(username="h.officer")] == ["test", "test"]


def test_a_history_names_each_act() -> None:
    assert [administration.act_name(a.value) for a in UserAct][:4] == [
        "Added", "Disabled", "Reset", "Locked after failed sign-ins",
    ]  # fmt: skip
    # An act recorded by a later version reads as its value does.
    assert administration.act_name("sign-in-refused") == "Sign in refused"
