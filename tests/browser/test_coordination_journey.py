"""A co-ordinator's journey in Chromium, over a real two-area world served by uvicorn:
sign in with a TOTP code, request a transfer through the form, see it listed with its
deadlines, open it; compute the annual report. Each page: no serious or critical
axe-core violation, nothing refused under the Content-Security-Policy. The list's
screenshot is ``docs/console/transfers.png``, the report's ``annual-report.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from broker.identity.totp import code_at
from broker.kafka.transport import KafkaTransport
from tests.browser.conftest import Visit, serving
from tests.browser.test_console_pages import AXE, SCREENSHOTS, blocking
from tests.console_world import PASSWORD
from tests.test_console_coordination import USERS, two_area_console
from tests.two_areas import COORD_A, PNC, PROBATION_A, TO

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


async def accessible(page: Page) -> None:
    await page.evaluate(AXE + "\n;0")
    results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    assert blocking(results) == [], page.url


async def test_a_coordinator_requests_a_transfer_and_sees_it_listed(
    browser: Browser, tmp_path: Path, transport: KafkaTransport
) -> None:
    async with two_area_console(tmp_path, transport) as world, serving(world.app) as url:
        context = await browser.new_context()
        try:
            visit = Visit(await context.new_page())
            page = visit.page
            page.on("console", visit.record_console)
            page.on("pageerror", visit.record_error)

            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.goto(f"{url}/console/sign-in")
            await page.fill("#username", USERS["sending"][0])
            await page.fill("#password", PASSWORD)
            await page.fill("#totp", code_at(world.totp["sending"], datetime.now(UTC)))
            await page.click("button:has-text('Sign in')")
            await page.wait_for_url("**/console/home")

            await page.click("a:has-text('Transfers')")
            await page.click("text=Request a transfer")
            await page.wait_for_url("**/console/transfers/new")
            await accessible(page)
            # Sent with gaps first: the error summary (a 422), accessible too.
            visit.expected_failures.add(f"{url}/console/transfers/new")
            await page.click("button:has-text('Request the transfer')")
            assert await page.is_visible(".govuk-error-summary")
            await accessible(page)

            today = datetime.now(UTC).date()
            await page.fill("#pnc_id", PNC)
            await page.select_option("#lead_agency", PROBATION_A)
            await page.select_option("#to_area", TO)
            await page.fill("#move-date-day", str(today.day))
            await page.fill("#move-date-month", str(today.month))
            await page.fill("#move-date-year", str(today.year))
            await page.fill("#reason", "Moving to live with family")
            await page.check("#rso")
            await page.click("button:has-text('Request the transfer')")
            [record] = world.world.desk(COORD_A).registry.records()
            await page.wait_for_url(f"**/console/transfers/{record.transfer_id}")
            assert PNC not in page.url
            await accessible(page)
            await page.screenshot(path=SCREENSHOTS / "transfer.png", full_page=True)

            await page.click("a:has-text('Back to transfers')")
            await page.wait_for_url("**/console/transfers")
            assert await page.is_visible(".govuk-tag--blue")
            assert PNC not in await page.content()
            await accessible(page)
            await page.screenshot(path=SCREENSHOTS / "transfers.png", full_page=True)

            await page.click("a:has-text('Case teams')")
            await page.wait_for_url("**/console/case-teams")
            await accessible(page)

            # The annual report: the tables and the level chart, as `mappa report annual`.
            await page.click("a:has-text('Annual report')")
            await page.wait_for_url("**/console/annual-report")
            await page.fill("#year", "2013-14")
            await page.click("button:has-text('Compute')")
            await page.wait_for_url("**/console/annual-report?year=2013-14")
            assert await page.is_visible("svg[role=img]")
            assert await page.locator("table caption").count() >= 6
            await accessible(page)
            await page.screenshot(path=SCREENSHOTS / "annual-report.png", full_page=True)
            assert visit.problems == []
        finally:
            await context.close()
