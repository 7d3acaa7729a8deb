"""Signing in to the console with the organisation's account (OpenID Connect), against a
real provider over HTTP (``tests.oidc_provider``, uvicorn on 127.0.0.1) and the app as
deployed over a data directory with real users (httpx over ASGI, https so that the
``Secure`` ``__Host-`` cookies travel).

The happy path, then every check that can refuse made to: the state (missing, forged,
another's, expired), a replayed code, a provider that says no, and ID tokens from
another issuer, for another audience, expired, with another nonce, signed by a key the
provider does not publish, unsigned (``alg: none``), HMAC-signed with the client
secret, without a username, naming nobody here, naming a disabled or a locked user.
Every refusal is the same page. Settings refuse an http issuer not on this machine, and
without a provider the routes are not there."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from argon2.profiles import CHEAPEST
from fastapi import FastAPI
from pydantic import ValidationError

from broker.console import oidc_sign_in
from broker.console.oidc_sign_in import OIDC_SIGN_IN_FAILED
from broker.crypto.mac import MacKey
from broker.errors import ConfigurationError
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.errors import OidcRefused, SignInRefused
from broker.identity.oidc import OIDC_ACTOR, OidcConfig, oidc_config, parse_metadata
from broker.identity.oidc_state import OIDC_COOKIE_NAME, OidcStateSigner
from broker.identity.passwords import Passwords
from broker.identity.roles import Role
from broker.identity.users import UserAct, UserStore
from broker.settings import Settings
from tests.console_world import empty_app
from tests.oidc_provider import Misbehaviour, TestProvider

AGENCY = "housing.staffordshire"
CLIENT_ID = "mappa-console"
CLIENT_SECRET = "a-client-secret-of-thirty-two-bytes-at-least"  # noqa: S105 - the test client's
PASSWORD = "correct horse battery staple"  # noqa: S105 - the test users'
# The browser's origin, and so the callback's.
CONSOLE = "https://mappa.test"


@pytest.fixture
async def provider() -> AsyncIterator[TestProvider]:
    test_provider = TestProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    async with test_provider.served():
        yield test_provider


def settings_for(tmp_path: Path, issuer: str) -> Settings:
    secret_file = tmp_path / "oidc-client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    return Settings(
        data_dir=tmp_path,
        oidc_issuer=issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret_file=secret_file,
    )


@pytest.fixture
def users(tmp_path: Path) -> None:
    """An active housing officer, a disabled one, and one locked by a failed sign-in."""
    with IdentityDatabase(identity_path(tmp_path)) as database:
        store = UserStore(database, passwords=Passwords(CHEAPEST), max_failed_attempts=1)
        now = datetime.now(UTC)
        for username in ("h.officer", "d.officer", "l.officer"):
            store.add(username, agency=AGENCY, role=Role.AGENCY_USER, password=PASSWORD,
                      actor="test", now=now)  # fmt: skip
        store.disable("d.officer", actor="test", now=now)
        with pytest.raises(SignInRefused, match="locked"):
            store.authenticate("l.officer", "wrong", None, now=now)


@pytest.fixture
async def app(tmp_path: Path, provider: TestProvider, users: None) -> AsyncIterator[FastAPI]:
    config = oidc_config(settings_for(tmp_path, provider.issuer))
    async with empty_app(tmp_path, oidc=config) as built:
        yield built


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE)


async def to_provider(c: httpx.AsyncClient) -> str:
    """Starts a sign-in in ``c``; returns where the provider sends the browser back
    (the callback's path and query)."""
    away = await c.get("/console/sign-in/oidc")
    assert away.status_code == 303, away.text
    async with httpx.AsyncClient() as idp:
        back = await idp.get(away.headers["location"])
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}" == CONSOLE
    return f"{callback.path}?{callback.query}"


async def sign_in(c: httpx.AsyncClient) -> httpx.Response:
    """The whole round: the console, the provider, back to the callback."""
    return await c.get(await to_provider(c))


def history(tmp_path: Path, username: str) -> list[tuple[UserAct, str]]:
    with IdentityDatabase(identity_path(tmp_path)) as database:
        return [(e.act, e.actor) for e in UserStore(database).history(username=username)]


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The codes of the refusals the console logs (the page says none of them)."""
    caplog.set_level(logging.INFO, logger=oidc_sign_in.__name__)
    codes: list[str] = []

    class Codes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            codes.append(str(record.args[0]) if isinstance(record.args, tuple) else "")

    handler = Codes()
    logging.getLogger(oidc_sign_in.__name__).addHandler(handler)
    yield codes
    logging.getLogger(oidc_sign_in.__name__).removeHandler(handler)


def assert_refused(page: httpx.Response) -> None:
    """The one refusal: the sign-in page, its one message, no session."""
    assert page.status_code == 401, page.text
    assert OIDC_SIGN_IN_FAILED.replace("'", "&#39;") in page.text
    assert "There is a problem" in page.text
    assert "__Host-mappa-session=" not in page.headers.get("set-cookie", "")


async def assert_not_signed_in(c: httpx.AsyncClient) -> None:
    home = await c.get("/console/home")
    assert home.status_code == 303
    assert home.headers["location"] == "/console/sign-in"


async def test_a_user_signs_in_with_their_organisations_account(
    app: FastAPI, provider: TestProvider, tmp_path: Path
) -> None:
    async with browser(app) as c:
        form = await c.get("/console/sign-in")
        assert "Sign in with your organisation&#39;s account" in form.text
        assert 'href="/console/sign-in/oidc"' in form.text
        away = await c.get("/console/sign-in/oidc")
        assert away.status_code == 303
        # The pending sign-in's cookie: ours only, no script's, back on the provider's
        # redirect (Lax), short-lived.
        cookie = away.headers["set-cookie"]
        assert cookie.startswith(f"{OIDC_COOKIE_NAME}=")
        for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"):
            assert attribute in cookie
        where = urlsplit(away.headers["location"])
        assert f"{where.scheme}://{where.netloc}/authorize" == f"{provider.issuer}/authorize"
        asked = {k: v[0] for k, v in parse_qs(where.query).items()}
        assert asked["response_type"] == "code"
        assert asked["client_id"] == CLIENT_ID
        assert asked["redirect_uri"] == f"{CONSOLE}/console/sign-in/oidc/callback"
        assert asked["code_challenge_method"] == "S256"
        assert set(asked["scope"].split()) == {"openid", "profile"}
        assert {"state", "nonce", "code_challenge"} <= asked.keys()
        assert CLIENT_SECRET not in away.headers["location"]

        # Round again (the first pending sign-in is simply replaced), to the callback.
        done = await sign_in(c)
        assert done.status_code == 200, done.text
        assert done.headers["cache-control"] == "no-store"
        # Not a redirect: the browser arrived from another site; the page sends it home.
        assert '<meta http-equiv="refresh" content="0; url=/console/home">' in done.text
        cookies = done.headers.get_list("set-cookie")
        assert any(v.startswith("__Host-mappa-session=") for v in cookies)
        assert any(v.startswith(f"{OIDC_COOKIE_NAME}=;") for v in cookies)  # used: gone
        home = await c.get("/console/home")
        assert home.status_code == 200
        assert "h.officer" in home.text
        assert AGENCY in home.text  # the local account's agency and role, not the provider's
    assert provider.token_requests == ["ok"]
    assert history(tmp_path, "h.officer")[-1] == (UserAct.SIGN_IN, OIDC_ACTOR)


async def test_without_a_provider_there_is_no_such_sign_in(tmp_path: Path) -> None:
    async with empty_app(tmp_path) as built, browser(built) as c:
        form = await c.get("/console/sign-in")
        assert form.status_code == 200
        assert "organisation" not in form.text
        for path in ("/console/sign-in/oidc", "/console/sign-in/oidc/callback?code=x&state=y"):
            missing = await c.get(path)
            assert missing.status_code == 404
            assert "Page not found" in missing.text


async def test_a_provider_that_does_not_answer_is_refused(
    tmp_path: Path, users: None, refusals: list[str]
) -> None:
    # Nothing listens on port 1: discovery fails, and the browser stays here.
    config = oidc_config(settings_for(tmp_path, "http://127.0.0.1:1"))
    async with empty_app(tmp_path, oidc=config) as built, browser(built) as c:
        page = await c.get("/console/sign-in/oidc")
        assert_refused(page)
        assert OIDC_COOKIE_NAME + "=;" in page.headers["set-cookie"]
    assert refusals == ["oidc.provider"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda q: q.replace("state=", "state=x"), id="state-altered"),
        pytest.param(
            lambda q: "&".join(p for p in q.split("&") if "state=" not in p), id="state-missing"
        ),
    ],
)
async def test_a_callback_whose_state_is_not_the_browsers_is_refused(
    app: FastAPI, provider: TestProvider, tamper: Callable[[str], str], refusals: list[str]
) -> None:
    async with browser(app) as c:
        callback = await to_provider(c)
        assert_refused(await c.get(tamper(callback)))
        await assert_not_signed_in(c)
    assert provider.token_requests == []  # refused before the code was used
    assert refusals == ["oidc.state"]


async def test_a_callback_in_another_browser_is_refused(
    app: FastAPI, provider: TestProvider, refusals: list[str]
) -> None:
    # Login CSRF: an attacker's own callback, fed to a victim's browser, which holds no
    # pending sign-in (or another one).
    async with browser(app) as attacker:
        callback = await to_provider(attacker)
    async with browser(app) as victim:
        assert_refused(await victim.get(callback))
        await to_provider(victim)  # the victim's own pending sign-in is no help either
        assert_refused(await victim.get(callback))
        await assert_not_signed_in(victim)
    assert provider.token_requests == []
    assert refusals == ["oidc.state", "oidc.state"]


async def test_a_forged_pending_cookie_is_refused(
    app: FastAPI, provider: TestProvider, refusals: list[str]
) -> None:
    async with browser(app) as c:
        callback = await to_provider(c)
        value = c.cookies[OIDC_COOKIE_NAME]
        c.cookies.set(OIDC_COOKIE_NAME, value[:-2] + ("AA" if value[-2:] != "AA" else "AB"))
        assert_refused(await c.get(callback))
    assert provider.token_requests == []
    assert refusals == ["oidc.state"]


async def test_a_replayed_code_is_refused(
    app: FastAPI, provider: TestProvider, refusals: list[str]
) -> None:
    async with browser(app) as c:
        callback = await to_provider(c)
        pending = c.cookies[OIDC_COOKIE_NAME]
        assert (await c.get(callback)).status_code == 200
    # The same callback and the very cookie it went with, again: the code is spent.
    async with browser(app) as replay:
        replay.cookies.set(OIDC_COOKIE_NAME, pending)
        assert_refused(await replay.get(callback))
        await assert_not_signed_in(replay)
    assert provider.token_requests == ["ok", "invalid_grant"]
    assert refusals == ["oidc.provider"]


async def test_a_provider_that_says_no_is_refused(
    app: FastAPI, provider: TestProvider, refusals: list[str]
) -> None:
    async with browser(app) as c:
        callback = await to_provider(c)
        state = parse_qs(urlsplit(callback).query)["state"][0]
        denied = f"/console/sign-in/oidc/callback?error=access_denied&state={state}"
        assert_refused(await c.get(denied))
    assert provider.token_requests == []
    assert refusals == ["oidc.provider"]


@pytest.mark.parametrize(
    "misbehaviour",
    [
        pytest.param(Misbehaviour(issuer="https://impostor.example"), id="wrong-issuer"),
        pytest.param(Misbehaviour(audience="another-client"), id="wrong-audience"),
        pytest.param(Misbehaviour(expired=True), id="expired"),
        pytest.param(Misbehaviour(nonce="a-nonce-of-another-sign-in"), id="wrong-nonce"),
        pytest.param(Misbehaviour(foreign_key=True), id="bad-signature"),
        pytest.param(Misbehaviour(alg_none=True), id="alg-none"),
        pytest.param(Misbehaviour(symmetric=True), id="hmac-with-client-secret"),
        pytest.param(Misbehaviour(no_username=True), id="no-username-claim"),
    ],
)
async def test_an_id_token_that_does_not_check_is_refused(
    app: FastAPI,
    provider: TestProvider,
    misbehaviour: Misbehaviour,
    tmp_path: Path,
    refusals: list[str],
) -> None:
    provider.misbehave = misbehaviour
    async with browser(app) as c:
        assert_refused(await sign_in(c))
        await assert_not_signed_in(c)
    assert provider.token_requests == ["ok"]  # the code was exchanged; its token refused
    assert UserAct.SIGN_IN not in dict(history(tmp_path, "h.officer"))
    assert refusals == ["oidc.token"]


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(("nobody.here", "auth.failed"), id="unknown"),
        pytest.param(("H.Officer", "auth.failed"), id="another-spelling"),
        pytest.param(("d.officer", "auth.disabled"), id="disabled"),
        pytest.param(("l.officer", "auth.locked"), id="locked"),
    ],
)
async def test_a_user_who_cannot_sign_in_here_is_refused(
    app: FastAPI,
    provider: TestProvider,
    tmp_path: Path,
    who: tuple[str, str],
    refusals: list[str],
) -> None:
    username, code = who
    provider.username = username
    async with browser(app) as c:
        assert_refused(await sign_in(c))
        await assert_not_signed_in(c)
    assert refusals == [code]
    if code != "auth.failed":  # a user to record it against
        assert history(tmp_path, username)[-1] == (UserAct.SIGN_IN_REFUSED, OIDC_ACTOR)


def test_settings_take_only_a_secure_issuer(tmp_path: Path) -> None:
    for issuer in ("http://idp.example", "http://10.0.0.1", "ftp://idp.example",
                   "https://idp.example/?tenant=x", "https://user@idp.example"):  # fmt: skip
        with pytest.raises(ValidationError, match="https"):
            settings_for(tmp_path, issuer)
    for issuer in ("https://idp.example/realms/force", "http://127.0.0.1:8080",
                   "http://localhost:9000"):  # fmt: skip
        assert settings_for(tmp_path, issuer).oidc_issuer == issuer
    with pytest.raises(ValidationError, match="MAPPA_OIDC_CLIENT_ID"):
        Settings(oidc_issuer="https://idp.example")
    with pytest.raises(ValidationError, match="openid"):
        Settings(oidc_scopes="profile email")
    assert oidc_config(Settings()) is None  # local accounts only: the embedded default


def test_a_client_secret_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "https://idp.example")
    config = oidc_config(settings)
    assert config is not None
    assert CLIENT_SECRET not in repr(config)
    (tmp_path / "oidc-client-secret").write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        oidc_config(settings)
    (tmp_path / "oidc-client-secret").unlink()
    with pytest.raises(ConfigurationError, match="cannot read"):
        oidc_config(settings)


def test_a_client_secret_file_that_is_not_a_secret_stops_the_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "https://idp.example")
    secret_file = tmp_path / "oidc-client-secret"
    for content, problem in (
        (b"\xff\xfe" + CLIENT_SECRET.encode("utf-16-le"), "byte-order mark"),
        (b"secret\x00", "NUL"),
        (b"x" * 5000, "larger than"),
    ):
        secret_file.write_bytes(content)
        with pytest.raises(ConfigurationError, match=problem) as refused:
            oidc_config(settings)
        assert refused.value.code == "oidc.config-incomplete"
    secret_file.unlink()
    secret_file.mkdir()
    with pytest.raises(ConfigurationError, match="cannot read it"):
        oidc_config(settings)


def test_discovery_must_be_the_issuers_own_and_secure() -> None:
    issuer = "https://idp.example"
    good = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
    }
    assert parse_metadata(good, issuer=issuer).algorithms == {"RS256"}
    for bad in (
        good | {"issuer": "https://impostor.example"},
        good | {"token_endpoint": "http://idp.example/token"},
        good | {"id_token_signing_alg_values_supported": ["HS256", "none"]},
        {k: v for k, v in good.items() if k != "jwks_uri"},
        [good],
    ):
        with pytest.raises(OidcRefused) as refused:
            parse_metadata(bad, issuer=issuer)
        assert refused.value.code == "oidc.provider"


def test_a_pending_sign_in_is_good_for_ten_minutes_and_for_its_state_only() -> None:
    signer = OidcStateSigner(MacKey.generate())
    now = datetime.now(UTC)
    pending = signer.issue(now=now)
    value = signer.cookie_value(pending)
    assert signer.check(value, pending.state, now=now + timedelta(minutes=9)) == pending
    refusals = [
        (value, pending.state, now + timedelta(minutes=10)),  # expired
        (value, pending.state, now - timedelta(minutes=2)),  # from the future
        (value, pending.nonce, now),  # another state
        (value, None, now),
        (None, pending.state, now),
        (value + "A", pending.state, now),
        (OidcStateSigner(MacKey.generate()).cookie_value(pending), pending.state, now),
    ]
    for cookie, state, at in refusals:
        with pytest.raises(OidcRefused) as refused:
            signer.check(cookie, state, now=at)
        assert refused.value.code == "oidc.state"
    assert pending.verifier not in repr(pending)


def test_a_redirect_url_may_be_fixed_for_a_proxy(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "https://idp.example").model_copy(
        update={"oidc_redirect_url": "https://console.example/console/sign-in/oidc/callback"}
    )
    config = oidc_config(settings)
    assert isinstance(config, OidcConfig)
    assert config.redirect_url == "https://console.example/console/sign-in/oidc/callback"
    with pytest.raises(ValidationError, match="https"):
        Settings(oidc_redirect_url="http://console.example/callback")
