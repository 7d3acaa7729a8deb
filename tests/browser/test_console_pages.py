"""Each console page in Chromium: styled by GOV.UK Frontend served from the app itself,
without the GOV.UK brand (no GDS Transport, no crown, no GOV.UK logotype, no link to
GOV.UK), no serious or critical accessibility violation (axe-core, injected from the committed
``axe.min.js``), the skip link first on the keyboard, the Content-Security-Policy sent and
nothing refused under it, no request to any host but the app's, and usable without
JavaScript. Each page's screenshot is saved as ``docs/console/<page>.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Console

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

HERE = Path(__file__).resolve().parent
AXE = (HERE / "axe.min.js").read_text(encoding="utf-8")
SCREENSHOTS = HERE.parent.parent / "docs" / "console"
# The console's stylesheet's type (console/mappa.scss): GOV.UK Frontend's stack for a
# service not on GOV.UK, whose font, GDS Transport, is for GOV.UK alone.
CONSOLE_FONT = "arial, sans-serif"
# What axe-core must not find on any page.
BLOCKING = {"serious", "critical"}

PAGES = [
    pytest.param("start", "/console/", 200, id="start"),
    pytest.param("sign-in", "/console/sign-in", 200, id="sign-in"),
    pytest.param("not-found", "/console/no-such-page", 404, id="not-found"),
]


def blocking(results: dict[str, Any]) -> list[str]:
    """axe-core's serious and critical violations, one line each."""
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in results["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize(("name", "path", "status"), PAGES)
async def test_page_is_styled_accessible_and_self_contained(
    console: Console, name: str, path: str, status: int
) -> None:
    async with console.visit() as visit:
        page = visit.page
        if status >= 400:
            visit.expected_failures.add(console.url + path)
        response = await page.goto(console.url + path, wait_until="load")
        assert response is not None
        assert response.status == status
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy

        # GOV.UK Frontend's CSS is applied, with our font stack and no web font.
        await page.evaluate("document.fonts.ready.then(() => true)")
        assert await page.eval_on_selector("h1", "e => getComputedStyle(e).fontFamily") == (
            CONSOLE_FONT
        )
        assert await page.evaluate("document.fonts.size") == 0
        # Not the GOV.UK brand: no GOV.UK header, crown or logotype, and no link to GOV.UK;
        # the service navigation, in the page's banner, names the service.
        for brand in (".govuk-header", ".govuk-logo", ".govuk-footer__crown", "svg[class*=logo]"):
            assert await page.locator(brand).count() == 0, brand
        assert await page.locator(".govuk-footer__copyright-logo").count() == 0
        hrefs = await page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
        assert [h for h in hrefs if "gov.uk" in h] == []
        banner = page.get_by_role("banner")
        assert await banner.locator(".govuk-service-navigation__service-name").inner_text() == (
            "MAPPA information sharing"
        )
        assert "Crown" not in await page.locator("footer").inner_text()
        # console.js ran (a module script from this origin, allowed by the policy).
        assert await page.evaluate("document.body.classList.contains('govuk-frontend-supported')")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

        await page.evaluate(AXE + "\n;0")
        results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        assert blocking(results) == []

        # The keyboard's first stop is the skip link, to the main content.
        await page.keyboard.press("Tab")
        first = await page.evaluate(
            "[document.activeElement.className, document.activeElement.getAttribute('href')]"
        )
        assert first == ["govuk-skip-link", "#main-content"]
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main-content"

        assert visit.problems == []
        hosts = {urlsplit(url).hostname for url in visit.requests}
        assert hosts == {"127.0.0.1"}, visit.requests


async def test_signing_in_and_starting_need_no_javascript(console: Console) -> None:
    async with console.visit(javascript=False) as visit:
        page = visit.page
        await page.goto(console.url + "/console/")
        await page.get_by_role("button", name="Start now").click()
        await page.wait_for_url("**/console/sign-in")
        form = page.locator("form")
        assert await form.get_attribute("method") == "post"  # nothing typed goes in a URL
        for label in ("Username", "Password", "Security code"):
            await page.get_by_label(label, exact=True).fill("x")
        password = page.get_by_label("Password", exact=True)
        assert await password.get_attribute("type") == "password"
        assert await page.locator("input[name=csrf_token]").count() == 1
        assert await page.get_by_role("button", name="Sign in").is_visible()
        assert visit.problems == []
