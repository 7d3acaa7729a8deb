"""The console and the headers in-process (httpx's ASGI transport, no browser): what each
page holds, the GOV.UK "Page not found" under /console while the API keeps its JSON, the
security headers on every answer (HSTS only over TLS), and no /docs or /redoc (their
pages would load from a CDN and run inline script)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from broker.api.headers import CONTENT_SECURITY_POLICY, STRICT_TRANSPORT_SECURITY
from tests.console_world import empty_app

PATHS = ["/console/", "/console/sign-in", "/console/static/console.js", "/healthz"]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The app as deployed, over a backend with no agencies (the console needs none)."""
    async with empty_app(tmp_path) as built:
        yield built


def client(app: FastAPI, scheme: str = "http") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://t")


@pytest.mark.parametrize("path", [*PATHS, "/console/nowhere", "/v1/nowhere"])
async def test_every_answer_carries_the_security_headers(app: FastAPI, path: str) -> None:
    async with client(app) as c:
        r = await c.get(path)
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in r.headers  # plain HTTP: never


@pytest.mark.parametrize("path", PATHS)
async def test_hsts_only_over_tls(app: FastAPI, path: str) -> None:
    async with client(app, "https") as c:
        r = await c.get(path)
    assert r.headers["strict-transport-security"] == STRICT_TRANSPORT_SECURITY


async def test_no_cdn_documentation_pages(app: FastAPI) -> None:
    async with client(app) as c:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert (await c.get(path)).status_code == 404, path
        assert (await c.get("/openapi.json")).status_code == 200
    # The console is no part of the API's contract.
    assert not [p for p in app.openapi()["paths"] if p.startswith("/console")]


async def test_start_page_explains_and_leads_to_sign_in(app: FastAPI) -> None:
    async with client(app) as c:
        assert (await c.get("/console")).headers["location"].endswith("/console/")
        r = await c.get("/console/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    title = "Share information about MAPPA cases \N{EN DASH} MAPPA information sharing"
    assert f"<title>{title}</title>" in page
    assert 'href="/console/sign-in"' in page
    assert "govuk-button--start" in page
    assert 'class="govuk-skip-link"' in page
    assert "govuk-phase-banner" in page
    assert "MAPPA information sharing" in page
    # No inline script or style: only files from this app.
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="module" src="/console/static/console.js">'
    ]
    assert "<style" not in page
    assert " style=" not in page
    # Nothing loaded from elsewhere: no other origin in the head, no src= off this origin.
    head = page.split("<body", 1)[0]
    assert not re.search(r'(src|href)="(https?:)?//', head)
    assert not re.search(r'src="(https?:)?//', page)


async def test_sign_in_form_posts_three_fields_and_the_csrf_token(app: FastAPI) -> None:
    async with client(app) as c:
        r = await c.get("/console/sign-in")
    assert r.status_code == 200
    page = r.text
    assert '<form method="post" action="/console/sign-in" novalidate>' in page
    for name, kind in (("username", "text"), ("password", "password"), ("totp", "text")):
        assert re.search(rf'<input[^>]*name="{name}"[^>]*type="{kind}"', page), name
    assert 'autocomplete="one-time-code"' in page
    assert 'autocomplete="current-password"' in page
    # The form's token is the sign-in cookie's (broker.identity.csrf.SignInCsrf).
    [token] = re.findall(r'<input type="hidden" name="csrf_token" value="([^"]+)">', page)
    assert f"__Host-mappa-sign-in={token};" in r.headers["set-cookie"]


async def test_not_found_under_the_console_is_a_govuk_page(app: FastAPI) -> None:
    async with client(app) as c:
        for path in ("/console/nowhere", "/console/static/nowhere.css"):
            r = await c.get(path)
            assert r.status_code == 404
            assert r.headers["content-type"].startswith("text/html")
            assert '<h1 class="govuk-heading-l">Page not found</h1>' in r.text
        # Other errors under the console are pages too; the API's stay JSON.
        refused = await c.put("/console/sign-in")
        assert refused.status_code == 405
        assert "Sorry, there is a problem with the service" in refused.text
        api = await c.get("/v1/nowhere")
    assert api.status_code == 404
    assert api.json()["error"] == "http.404"


async def test_static_files_are_served_with_their_types(app: FastAPI) -> None:
    async with client(app) as c:
        for path, kind in (
            ("/console/static/govuk/govuk-frontend.min.css", "text/css"),
            ("/console/static/govuk/govuk-frontend.min.js", "text/javascript"),
            ("/console/static/console.js", "text/javascript"),
            ("/console/static/favicon.svg", "image/svg+xml"),
        ):
            r = await c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith(kind), (path, r.headers)
