"""An agency administrator's journey in Chromium, over a real world
(``tests.console_world``: housing's administrator, with TOTP, among named users), served
by uvicorn on a free 127.0.0.1 port: sign in with a code, find the agency's users through
the service navigation, be refused an empty add form (the GOV.UK error summary), add a
user and see their security code's secret once (``no-store``), disable another user
after the confirmation, and reset a third. axe-core finds no serious or critical
violation on each page; the list is saved as ``docs/console/users.png``. Adding a user
works with the keyboard alone and without JavaScript."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.totp import code_at
from broker.identity.users import UserState, UserStore
from broker.kafka.transport import KafkaTransport
from tests.browser.conftest import Console, Visit, serving
from tests.browser.test_agency_journey import accessible
from tests.browser.test_console_pages import SCREENSHOTS
from tests.console_world import PASSWORD, USERS, Served, console_world

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

NEW_PASSWORD = "plum tree harbour lantern"  # noqa: S105 - the test's
# A TOTP code is accepted once, for a step later than the last accepted, and for a step
# either side of now: each sign-in of this module uses the code of one step further on.
STEPS = itertools.count()


@pytest.fixture(scope="module")
async def served(
    chromium: Path, tmp_path_factory: pytest.TempPathFactory, transport: KafkaTransport
) -> AsyncIterator[Served]:
    """``console_world``'s app under uvicorn on a free 127.0.0.1 port, until the module
    ends; skips with ``chromium`` where there is none."""
    where = tmp_path_factory.mktemp("administration-journey")
    async with console_world(where, transport) as cw, serving(cw.api.app, lifespan=False) as url:
        yield Served(cw, url)


@pytest.fixture
def admin_console(browser: Browser, served: Served) -> Console:
    return Console(served.url, browser)


def user_state(served: Served, username: str) -> UserState:
    """``username``'s state, as the console's store holds it (the same file)."""
    data_dir = served.world.api.world.deployment.settings.data_dir
    with IdentityDatabase(identity_path(data_dir)) as database:
        return UserStore(database).get(username).state


async def sign_in(visit: Visit, served: Served) -> None:
    """Signs the administrator in, with the code of the next step in ``STEPS``."""
    page = visit.page
    await page.goto(served.url + "/console/sign-in")
    moment = datetime.now(UTC) + timedelta(seconds=30 * next(STEPS))
    await page.get_by_label("Username", exact=True).fill(USERS["admin"][0])
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Security code", exact=True).fill(
        code_at(served.world.totp["admin"], moment)
    )
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/home")


async def test_the_administrator_adds_disables_and_resets_users(
    admin_console: Console, served: Served
) -> None:
    async with admin_console.visit() as visit:
        page = visit.page
        await sign_in(visit, served)
        await page.click("a.govuk-service-navigation__link:has-text('Users')")
        await page.wait_for_url("**/console/users")
        assert await page.locator("tr", has_text="h.officer").count() == 1
        await accessible(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "users.png", full_page=True)

        await page.get_by_role("button", name="Add a user").click()
        await page.wait_for_url("**/console/users/new")
        await accessible(page)
        # Sent empty: refused (422, which the browser reports), each field in the summary.
        visit.expected_failures.add(page.url)
        await page.get_by_role("button", name="Add user").click()
        await page.wait_for_selector(".govuk-error-summary")
        summary = await page.inner_text(".govuk-error-summary")
        for said in ("Enter a username", "Select the user's role", "Enter a password"):
            assert said in summary
        await accessible(page)
        # The summary's links lead to their fields.
        await page.click(".govuk-error-summary a:has-text('Select the user')")
        await page.get_by_label("Username", exact=True).fill("j.smith")
        await page.get_by_label("Agency administrator", exact=True).check()
        await page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
        await page.get_by_label("Type the password again", exact=True).fill(NEW_PASSWORD)
        async with page.expect_response(lambda r: r.request.method == "POST") as posted:
            await page.get_by_role("button", name="Add user").click()
        answer = await posted.value
        assert answer.headers["cache-control"] == "no-store"
        await page.wait_for_selector("text=User added")
        text = await page.inner_text("main")
        assert "otpauth://totp/" in text
        assert "only time this secret is shown" in text
        await accessible(page)

        await page.get_by_role("link", name="Back to users").click()
        await page.get_by_role("link", name="h.officer", exact=True).click()
        await page.wait_for_url("**/console/user/h.officer")
        await accessible(page)
        await page.get_by_role("button", name="Disable user").click()
        await page.wait_for_url("**/console/user/h.officer/disable")
        await accessible(page)
        await page.get_by_role("button", name="Disable user").click()
        await page.wait_for_url("**/console/user/h.officer?done=disabled")
        assert "h.officer is disabled" in await page.inner_text(".govuk-notification-banner")
        assert "Disabled" in await page.inner_text("table")
        await accessible(page)

        await page.goto(served.url + "/console/user/j.smith/reset")
        await accessible(page)
        await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD + " two")
        await page.get_by_label("Type the password again", exact=True).fill(NEW_PASSWORD + " two")
        await page.get_by_role("button", name="Reset user").click()
        await page.wait_for_selector("text=User reset")
        assert "otpauth://totp/" in await page.inner_text("main")
        await accessible(page)

        assert visit.problems == []
        assert {urlsplit(u).hostname for u in visit.requests} == {"127.0.0.1"}
    assert user_state(served, "h.officer") is UserState.DISABLED


async def test_the_keyboard_alone_adds_a_user_without_javascript(
    admin_console: Console, served: Served
) -> None:
    async with admin_console.visit(javascript=False) as visit:
        page = visit.page
        await sign_in(visit, served)
        await page.goto(served.url + "/console/users/new")
        # From the username field, Tab reaches each field in order, and Enter sends it.
        await page.focus("#username")
        await page.keyboard.type("k.jones")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Space")  # the first role: an agency user
        # Past the other radios (arrow keys move within a group; Tab leaves it).
        await page.keyboard.press("Tab")
        await page.keyboard.type(NEW_PASSWORD)
        await page.keyboard.press("Tab")
        await page.keyboard.type(NEW_PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_selector("text=User added")
        assert "otpauth" not in await page.content()
        assert visit.problems == []
    assert user_state(served, "k.jones") is UserState.ACTIVE
