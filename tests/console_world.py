"""The console over a real world (``tests.test_api.running_api``: agencies on the
embedded broker, the ledger, transfer desks), with a named user for each role, and
browsers (httpx over ASGI, https so that the ``Secure`` cookies travel) signed in as them.

    async with console_world(tmp_path, transport) as cw:
        async with cw.signed_in("housing") as housing:
            page = await housing.get("/console/home")
        await cw.api.published()   # a risk assessment from police, delivered
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI

from broker.api.backend import ApiBackend, running
from broker.api.compose import application
from broker.api.credentials import CredentialStore, credentials_path
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.oidc import OidcConfig
from broker.identity.roles import Role
from broker.identity.totp import code_at
from broker.identity.users import UserStore
from broker.kafka.transport import KafkaTransport
from tests.support import HOUSING, POLICE, PROBATION
from tests.test_api import Api, running_api

PASSWORD = "correct horse battery staple"  # noqa: S105 - the test users'

# name: (username, agency, role). The IG officer and the housing administrator sign in
# with TOTP.
USERS: dict[str, tuple[str, str, Role]] = {
    "housing": ("h.officer", HOUSING, Role.AGENCY_USER),
    "police": ("ppu.officer", POLICE, Role.AGENCY_USER),
    "probation": ("po.officer", PROBATION, Role.AGENCY_USER),
    "coordinator": ("mappa.coord", POLICE, Role.COORDINATOR),
    "ig": ("ig.smith", POLICE, Role.IG_OFFICER),
    "admin": ("housing.admin", HOUSING, Role.AGENCY_ADMIN),
}


@dataclass
class PeopleWorld:
    """The app as deployed, running, with a named user for each role of ``USERS`` (their
    TOTP secrets in ``totp``), and browsers signed in as them."""

    app: FastAPI
    data_dir: Path
    totp: dict[str, str] = field(default_factory=dict)

    def browser(self) -> httpx.AsyncClient:
        """A browser with no session."""
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="https://mappa.test")

    @contextlib.asynccontextmanager
    async def signed_in(self, name: str) -> AsyncIterator[httpx.AsyncClient]:
        """A browser signed in as ``USERS[name]``, closed when the block ends."""
        async with self.browser() as c:
            await sign_in(c, USERS[name][0], self.totp.get(name))
            yield c


@dataclass
class ConsoleWorld(PeopleWorld):
    """``PeopleWorld`` over ``running_api``'s agencies, broker and ledger."""

    api: Api = field(kw_only=True)

    async def consulted(self, justification: str) -> str:
        """Police's risk assessment, published, delivered and opened by the housing
        officer through the console with ``justification``; returns its message id.
        The audit names ``USERS["housing"]``'s username."""
        message_id = await self.api.published()
        async with self.signed_in("housing") as housing:
            page = await housing.get(f"/console/inbox/{POLICE}/{message_id}")
            fields = {"csrf_token": csrf_of(page.text), "justification": justification}
            opened = await housing.post(f"/console/inbox/{POLICE}/{message_id}/open", data=fields)
            assert opened.status_code == 200, opened.text
        await self.api.world.sync_ledger()
        return message_id


async def sign_in(
    c: httpx.AsyncClient, username: str, totp_secret: str | None, password: str = PASSWORD
) -> None:
    """Signs ``c`` in as ``username`` (``password``; a code when it has a TOTP secret)."""
    form = await c.get("/console/sign-in")
    [token] = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)
    code = code_at(totp_secret, datetime.now(UTC)) if totp_secret is not None else ""
    fields = {"csrf_token": token, "username": username, "password": password}
    done = await c.post("/console/sign-in", data=fields | {"totp": code})
    assert done.status_code == 303, done.text


@contextlib.asynccontextmanager
async def empty_app(data_dir: Path, *, oidc: OidcConfig | None = None) -> AsyncIterator[FastAPI]:
    """The app as deployed, running, over a backend with no agencies (for pages that
    need none), signing in at ``oidc``'s provider too where given."""
    store = CredentialStore(credentials_path(data_dir))
    backend = ApiBackend(agencies={}, credentials=store, data_dir=data_dir, oidc=oidc)
    built = application(running(backend))
    async with built.router.lifespan_context(built):
        yield built
    store.close()


@dataclass(frozen=True)
class Served:
    """A console world served over HTTP (by a browser test's uvicorn) at ``url``."""

    world: ConsoleWorld
    url: str


def csrf_of(page: str) -> str:
    """The CSRF token in a page's forms (the session's)."""
    [token, *_] = re.findall(r'name="csrf_token" value="([^"]+)"', page)
    return str(token)


@contextlib.asynccontextmanager
async def console_world(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[ConsoleWorld]:
    async with running_api(tmp_path, transport) as api:
        data_dir = api.world.deployment.settings.data_dir
        world = ConsoleWorld(api.app, data_dir, add_users(data_dir), api=api)
        yield world


@contextlib.asynccontextmanager
async def people_world(tmp_path: Path) -> AsyncIterator[PeopleWorld]:
    """``USERS`` over the app with no agencies (``empty_app``): for pages that need only
    people, such as the administrator's."""
    async with empty_app(tmp_path) as app:
        yield PeopleWorld(app, tmp_path, add_users(tmp_path))


def add_users(data_dir: Path) -> dict[str, str]:
    """Adds ``USERS`` (``PASSWORD``) to ``data_dir``'s users; returns the TOTP secret of
    each that has one, by name."""
    secrets = {}
    with IdentityDatabase(identity_path(data_dir)) as database:
        users = UserStore(database)
        for name, (username, agency, role) in USERS.items():
            enrolled = users.add(
                username, agency=agency, role=role, password=PASSWORD, actor="test",
                now=datetime.now(UTC),
            )  # fmt: skip
            if enrolled.totp_secret is not None:
                secrets[name] = enrolled.totp_secret
    return secrets
