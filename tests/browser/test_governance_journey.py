"""An information-governance officer's journey in Chromium, over a real world
(``tests.console_world``: a risk assessment published by police and opened by housing
with a justification) served by uvicorn on a free 127.0.0.1 port: signing in with a
TOTP code, searching the audit ledger by PNC id, seeing the consultation on the
person's timeline with every proof checked in the browser (``static/proof.js``), with
no serious or critical accessibility violation (axe-core) on the search and results
pages, and no PNC id in any URL the browser requests. The results page is saved as
``docs/console/audit-timeline.png``. The same search without JavaScript still works:
its proofs say they need it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from broker.identity.totp import code_at
from broker.kafka.transport import KafkaTransport
from tests.browser.conftest import Console, Visit, serving
from tests.browser.test_console_pages import AXE, SCREENSHOTS, blocking
from tests.console_world import PASSWORD, USERS, Served, console_world
from tests.support import HOUSING, PNC
from tests.test_api import JUSTIFICATION

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CONSULTING_USER = "housing.officer.207"
# How long proof.js may take to check a page of proofs.
CHECK_MS = 15_000
# A TOTP code is accepted once, for a step later than the last accepted, and for a step
# either side of now: each sign-in of this module uses the code of one step further on,
# whichever order the tests run in.
STEPS = itertools.count()


@pytest.fixture(scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory, transport: KafkaTransport
) -> AsyncIterator[Served]:
    """The console over a world where housing has opened a risk assessment, served by
    uvicorn on a free 127.0.0.1 port until the module's tests end."""
    async with console_world(tmp_path_factory.mktemp("governance"), transport) as cw:
        message_id = await cw.api.published()
        opened = await cw.api.client.post(
            f"/v1/agencies/{HOUSING}/inbox/{message_id}/open",
            json={"user": CONSULTING_USER, "justification": JUSTIFICATION},
            headers=cw.api.auth(HOUSING),
        )
        assert opened.status_code == 200, opened.text
        await cw.api.world.sync_ledger()
        # The app is already started (its lifespan runs in console_world).
        async with serving(cw.api.app, lifespan=False) as url:
            yield Served(cw, url)


async def sign_in_and_search(visit: Visit, served: Served) -> None:
    """Signs the IG officer in (with the code of the next step in ``STEPS``) and goes to
    the audit search form through the service navigation."""
    page = visit.page
    await page.goto(served.url + "/console/sign-in")
    username, _agency, _role = USERS["ig"]
    moment = datetime.now(UTC) + timedelta(seconds=30 * next(STEPS))
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.fill("#totp", code_at(served.world.totp["ig"], moment))
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url("**/console/home")
    await page.click("a.govuk-service-navigation__link:has-text('Audit ledger')")
    await page.wait_for_url("**/console/audit")


async def test_the_officer_searches_and_sees_proofs_checked(
    console: Console, served: Served
) -> None:
    async with console.visit() as visit:
        page = visit.page
        await sign_in_and_search(visit, served)
        await page.evaluate(AXE + "\n;0")
        results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        assert blocking(results) == []

        await page.fill("#subject", PNC)
        await page.click("button:has-text('Search the audit ledger')")
        await page.wait_for_url("**/console/audit/search")
        consulted = page.locator("tr.govuk-table__row", has_text=JUSTIFICATION)
        assert await consulted.count() == 1
        assert CONSULTING_USER in await consulted.inner_text()
        # proof.js checks each entry's inclusion proof against the signed checkpoint.
        await page.wait_for_function(
            "() => document.querySelectorAll('[data-proof-url]').length > 0 && "
            "[...document.querySelectorAll('[data-proof-url]')].every(e => e.dataset.proofState)",
            timeout=CHECK_MS,
        )
        states = await page.eval_on_selector_all(
            "[data-proof-url]", "es => es.map(e => [e.dataset.proofState, e.textContent.trim()])"
        )
        assert states
        assert all(s == ["checked", "Proof checked in your browser"] for s in states), states
        proof_tag = consulted.locator("[data-proof-url]")
        assert "govuk-tag--green" in (await proof_tag.get_attribute("class") or "")

        await page.evaluate(AXE + "\n;0")
        results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        assert blocking(results) == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "audit-timeline.png", full_page=True)

        assert visit.problems == []
        assert all(r.startswith(served.url) for r in visit.requests), visit.requests
        assert not [r for r in visit.requests if PNC in r or "0456789" in r]
        assert PNC not in await page.content()


async def test_without_javascript_the_timeline_shows_and_proofs_say_why_unchecked(
    console: Console, served: Served
) -> None:
    async with console.visit(javascript=False) as visit:
        page = visit.page
        await sign_in_and_search(visit, served)
        await page.fill("#subject", PNC)
        await page.click("button:has-text('Search the audit ledger')")
        await page.wait_for_url("**/console/audit/search")
        consulted = page.locator("tr.govuk-table__row", has_text=JUSTIFICATION)
        assert await consulted.count() == 1
        tag = consulted.locator("[data-proof-url]")
        assert (await tag.inner_text()).strip() == "Not checked (needs JavaScript)"
        assert not [r for r in visit.requests if PNC in r]
