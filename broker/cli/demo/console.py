"""`mappa serve --demo`: the web console on a demo deployment, to look at and use.

A fresh data directory (temporary, unless ``--data-dir`` names an empty one) is
provisioned with the demo area's agencies under its signed agreement, as `mappa demo`
does. One named user per role is added, each with a new random password and, where the
role needs one, a TOTP secret. Once the server runs, the co-ordinator's case team and
police's risk assessment are published, so that inboxes, case teams and the audit ledger
hold something. The console's address and every sign-in are printed; Ctrl-C stops the
server, the gateways and the embedded broker, and removes a temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agency_adapters.registry import adapter_for
from broker.agreements import agreement_for_area
from broker.api import operations
from broker.api.backend import ApiBackend
from broker.api.models import SubmitRecord
from broker.api.runtime import ServeConfig
from broker.cli.demo.scenario import (
    AREA,
    ARMS_RECORD,
    CASE_TEAM,
    COORDINATOR,
    HOUSING,
    PARTIES,
    POLICE,
    SPECS,
    case_team_message,
    sign_and_load_agreement,
)
from broker.errors import ConfigurationError
from broker.gateway.agency import utc_now
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.errors import PasswordRefused
from broker.identity.passwords import check_password_policy
from broker.identity.roles import Role
from broker.identity.users import UserStore
from broker.settings import Settings
from broker.trust.provision import DataPaths, provision

# Who signs in to the demo: (username, agency, role, what they come to do).
DEMO_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("h.officer", HOUSING, Role.AGENCY_USER, "opens police's risk assessment, redacted"),
    ("ppu.officer", POLICE, Role.AGENCY_USER, "sees what police sent and to whom"),
    ("mappa.coord", COORDINATOR, Role.COORDINATOR, "case teams and transfers"),
    ("ig.officer", POLICE, Role.IG_OFFICER, "who saw what, when and why; proofs"),
    ("housing.admin", HOUSING, Role.AGENCY_ADMIN, "housing's users"),
)
# How long the published messages may take to arrive before the demo gives up.
ARRIVAL_SECONDS = 60.0


@dataclass(frozen=True)
class DemoSignIn:
    """One demo user's sign-in, printed once."""

    username: str
    role: Role
    purpose: str
    password: str
    totp_secret: str | None

    def __repr__(self) -> str:
        return f"DemoSignIn({self.username}, <secrets hidden>)"


def prepare(data_dir: Path, passphrase: bytes) -> tuple[ServeConfig, list[DemoSignIn]]:
    """Provision the demo deployment in the empty ``data_dir`` and add its users;
    returns what to serve it with and each user's sign-in."""
    settings = Settings(data_dir=data_dir, kafka_bootstrap=None)
    paths = DataPaths(data_dir)
    directory = provision(paths, SPECS, passphrase=passphrase, now=utc_now())
    agreement = sign_and_load_agreement(
        paths, passphrase, agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])
    )
    sign_ins = add_users(data_dir)
    config = ServeConfig(
        settings=settings,
        passphrase=passphrase,
        agreement=agreement,
        adapter_for=adapter_for,
        on_started=publish_examples,
    )
    return config, sign_ins


def add_users(data_dir: Path) -> list[DemoSignIn]:
    """Each of ``DEMO_USERS``, with a new random password (and TOTP secret, where the
    role needs one); returns their sign-ins."""
    sign_ins = []
    with IdentityDatabase(identity_path(data_dir)) as database:
        users = UserStore(database)
        for username, agency, role, purpose in DEMO_USERS:
            password = demo_password(username)
            enrolled = users.add(
                username, agency=agency, role=role, password=password,
                actor="mappa serve --demo", now=utc_now(),
            )  # fmt: skip
            sign_ins.append(DemoSignIn(username, role, purpose, password, enrolled.totp_secret))
    return sign_ins


def demo_password(username: str) -> str:
    """A random password the policy accepts for ``username`` (one that happens to hold a
    piece of the name is drawn again)."""
    while True:
        password = secrets.token_urlsafe(12)
        try:
            check_password_policy(password, username=username)
        except PasswordRefused:
            continue
        return password


async def publish_examples(backend: ApiBackend) -> None:
    """The co-ordinator's case team, then (once the team's agencies hold it) police's
    risk assessment, submitted as a police officer would; returns once housing holds
    it. Raises ``ConfigurationError`` if either does not arrive in time."""
    coordinator = backend.agencies[COORDINATOR].gateway
    team = case_team_message(coordinator.ctx.directory)
    await coordinator.publish(team, purpose="MAPPA case management", user="mappa.coord")
    members = [backend.agencies[a].gateway.ctx.store for a in CASE_TEAM]
    await _arrival(lambda: all(store.case_teams() for store in members), "the case team")
    record = SubmitRecord(record=ARMS_RECORD, purpose="MAPPA risk management")
    await operations.submit(backend.agencies[POLICE], record, user="ppu.officer")
    housing = backend.agencies[HOUSING].gateway.ctx.store
    await _arrival(lambda: bool(housing.inbox(limit=1)), "the risk assessment")


async def _arrival(arrived: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + ARRIVAL_SECONDS
    while not arrived():
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigurationError(f"the demo's {what} did not arrive in {ARRIVAL_SECONDS:.0f} s")
        await asyncio.sleep(0.1)


def banner(url: str, sign_ins: list[DemoSignIn], data_dir: Path, temporary: bool) -> str:
    """What ``mappa serve --demo`` prints once it listens: the console's address, each
    sign-in, and how to get a security code."""
    lines = [
        "",
        f"mappa console (demo) at {url}/console/",
        "",
        "Sign in as any of these (a new password each run; a security code where a TOTP",
        "secret is shown: add the secret to an authenticator app, or print a code with",
        "  .venv/bin/python -c 'import pyotp,sys; print(pyotp.TOTP(sys.argv[1]).now())' SECRET",
        "):",
    ]
    for s in sign_ins:
        lines.append(f"  {s.role.value:<13} {s.username:<14} password {s.password}")
        if s.totp_secret is not None:
            lines.append(f"  {'':<13} {'':<14} TOTP secret {s.totp_secret}")
        lines.append(f"  {'':<13} {'':<14} ({s.purpose})")
    gone = "removed" if temporary else "kept"
    lines += ["", f"Data in {data_dir} ({gone} on exit). Ctrl-C stops the server.", ""]
    return "\n".join(lines)


@contextlib.contextmanager
def demo_data_dir(data_dir: Path | None) -> Iterator[tuple[Path, bool]]:
    """``data_dir`` if given (it must be empty or absent), else a temporary directory
    removed when the block ends; yields it and whether it is temporary. Raises
    ``ConfigurationError`` for a directory that is not empty."""
    if data_dir is not None:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise ConfigurationError(f"{data_dir} is not empty; the demo needs a fresh directory")
        data_dir.mkdir(parents=True, exist_ok=True)
        yield data_dir, False
        return
    with tempfile.TemporaryDirectory(prefix="mappa-console-demo-") as temporary:
        yield Path(temporary), True
