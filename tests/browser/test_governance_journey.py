"""An information-governance officer's journey in Chromium, over a real world
(``tests.console_world``: a risk assessment published by police and opened by housing
with a justification) served by uvicorn on a free 127.0.0.1 port: signing in with a
TOTP code, searching the audit ledger by PNC id, seeing the consultation on the
person's timeline with every proof checked in the browser (``static/proof.js``), with
no serious or critical accessibility violation (axe-core) on the search and results
pages, and no PNC id in any URL the browser requests. The results page is saved as
``docs/console/audit-timeline.png``. The whole-ledger check runs as a job whose page
shows its progress, loaded again by its button until it shows the result
(``verify.png``). The
same search without JavaScript still works: its proofs say they need it."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.identity.totp import code_at
from broker.kafka.transport import KafkaTransport
from broker.ledger.integrity import IntegrityReport
from broker.ledger.reader import LedgerReader
from tests.browser.conftest import Console, Visit, serving
from tests.browser.test_console_pages import AXE, SCREENSHOTS, blocking
from tests.console_world import PASSWORD, USERS, Served, console_world
from tests.support import PNC
from tests.test_api import JUSTIFICATION

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CONSULTING_USER = USERS["housing"][0]
# How long proof.js may take to check a page of proofs.
CHECK_MS = 15_000
# How long the whole-ledger check's page may take to show the check done.
VERIFY_MS = 20_000
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
        await cw.consulted(JUSTIFICATION)
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
    console: Console, served: Served, monkeypatch: pytest.MonkeyPatch
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
        await check_the_whole_ledger(visit, monkeypatch)

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


async def check_the_whole_ledger(visit: Visit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole-ledger check from the checkpoints page, by an officer signed in: its
    job's page shows progress, and its "Refresh progress" button loads it again until it
    shows the ledger intact. The job is held at its start until the running page has
    been checked by axe-core; the finished page is saved as ``docs/console/verify.png``.
    (Part of the signed-in journey: a third sign-in in this module would need a TOTP
    code two steps ahead, which is refused.)"""
    release = threading.Event()
    real = LedgerReader.verify

    def held(self: LedgerReader, **kwargs: Any) -> IntegrityReport:
        progress = kwargs["progress"]

        def waiting(checked: int, total: int) -> None:
            progress(checked, total)
            release.wait(VERIFY_MS / 1000)

        return real(self, **(kwargs | {"progress": waiting}))

    monkeypatch.setattr(LedgerReader, "verify", held)
    page = visit.page
    try:
        await page.click("a.govuk-service-navigation__link:has-text('Checkpoints')")
        await page.wait_for_url("**/console/audit/checkpoints")
        await page.click("button:has-text('Check the whole ledger')")
        await page.wait_for_url("**/console/audit/verify/*")
        assert "In progress" in await page.inner_text("main")
        await page.evaluate(AXE + "\n;0")
        results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        assert blocking(results) == []
    finally:
        release.set()
    # Loaded again by its button until the job is done.
    deadline = asyncio.get_running_loop().time() + VERIFY_MS / 1000
    while await page.get_by_role("button", name="Refresh progress").count():
        assert asyncio.get_running_loop().time() < deadline, "the check did not finish"
        await page.wait_for_timeout(100)
        await page.get_by_role("button", name="Refresh progress").click()
        await page.wait_for_load_state()
    assert "The ledger is intact" in await page.inner_text("main")
    await page.evaluate(AXE + "\n;0")
    results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    assert blocking(results) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "verify.png", full_page=True)
