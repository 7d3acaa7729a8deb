"""The console in a real browser: the app as deployed (``broker.api.compose.application``)
under uvicorn on a free 127.0.0.1 port, and Playwright's Chromium, the system's at
``/usr/bin/chromium`` (``.ci/run`` installs Debian's ``chromium`` where it is missing),
headless. One server and one browser for the session, both on the session's loop, both
stopped at its end, also when a test fails. Where there is no browser the tests skip and
say why.

Each test gets a ``Visit``: a fresh browser context and page that record every request
the page makes and every console message and uncaught error it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import FastAPI

from broker.api.backend import ApiBackend, running
from broker.api.compose import application
from broker.api.credentials import CredentialStore, credentials_path

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
# Starting the app takes well under a second; this bounds a start that hangs.
START_SECONDS = 15


@dataclass
class Visit:
    """One page in its own browser context, and what it did."""

    page: Page
    requests: list[str] = field(default_factory=list)
    # "type: text" of each console message of type error or warning, and each page error.
    problems: list[str] = field(default_factory=list)
    # URLs whose failure is the point of the test (a 404 page's own address): the console
    # message saying that they failed to load is not a problem.
    expected_failures: set[str] = field(default_factory=set)

    def record_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def record_console(self, message: ConsoleMessage) -> None:
        if message.location.get("url") in self.expected_failures:
            return
        if message.type in {"error", "warning"}:
            self.problems.append(f"{message.type}: {message.text}")

    def record_error(self, error: Exception) -> None:
        self.problems.append(f"page error: {error}")


@dataclass(frozen=True)
class Console:
    """The served app's base URL, and the browser to visit it with."""

    url: str
    browser: Browser

    @contextlib.asynccontextmanager
    async def visit(self, *, javascript: bool = True) -> AsyncIterator[Visit]:
        """A new page, recording; its context is closed on exit."""
        context: BrowserContext = await self.browser.new_context(java_script_enabled=javascript)
        try:
            page = await context.new_page()
            visit = Visit(page)
            context.on("request", visit.record_request)
            page.on("console", visit.record_console)
            page.on("pageerror", visit.record_error)
            yield visit
        finally:
            await context.close()


@pytest.fixture(scope="session")
async def console_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The app as ``mappa serve`` builds it (with no agencies: the console needs none),
    served by uvicorn on a free 127.0.0.1 port until the session ends."""
    data_dir = tmp_path_factory.mktemp("console")
    store = CredentialStore(credentials_path(data_dir))
    app = application(running(ApiBackend(agencies={}, credentials=store, data_dir=data_dir)))
    try:
        async with serving(app) as url:
            yield url
    finally:
        store.close()


@contextlib.asynccontextmanager
async def serving(app: FastAPI, *, lifespan: bool = True) -> AsyncIterator[str]:
    """``app`` under uvicorn on a free 127.0.0.1 port until the block ends, also when it
    raises. ``lifespan=False`` for an app whose lifespan already runs (a test world's)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on" if lifespan else "off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started:
            assert not task.done(), "the console's server stopped while starting"
            assert time.monotonic() < deadline, "the console's server did not start"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system's Chromium; skips, saying why, where there is none."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is absent (Debian's chromium package installs it)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """``chromium`` driven by Playwright, headless, closed when the session ends; skips,
    saying why, where Playwright is not installed."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        pytest.skip(f"no browser driver: {exc} (pip install -e '.[dev]' installs playwright)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def console(browser: Browser, console_url: str) -> Console:
    return Console(console_url, browser)
