"""A running backend for the API, assembled from a data directory, through
``Deployment.running``: for ``mappa serve`` (``deployment_backend``) the served
agencies' gateways and transfer desks polling in the background, the audit ledger where
its private key is held here, and the credential store; for ``mappa ledger serve``
(``ledger_backend``) the audit ledger alone.

Each is an async context manager: on exit (shutdown, Ctrl-C, SIGTERM, a failed start)
every poller is stopped, every gateway and store closed and the embedded broker, if
any, stopped, in reverse order of starting. ``Startup`` runs one for a server so that a
start failing on one of our errors is said in one line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.agreements import default_agreements
from broker.api.backend import AdapterFor, ApiBackend, BackendFactory, serve_agencies
from broker.api.credentials import CredentialStore, credentials_path
from broker.deployment import Deployment
from broker.errors import ConfigurationError, KeyUnavailable, MappaError
from broker.identity.oidc import oidc_config
from broker.settings import Settings
from broker.trust.keystore import Keystore
from broker.trust.provision import DataPaths, load_directory
from broker.trust.service_dirs import holds_ledger_key, require_ledger_key
from schemas.isa import Agreement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    """What ``mappa serve`` runs the API with: settings, the keystore passphrase, the
    agreement, each agency's record adapter, which agencies, and whether to run the
    ledger."""

    settings: Settings
    passphrase: bytes
    agreement: Agreement
    adapter_for: AdapterFor
    # None: every agency in the directory whose private keys are held here.
    agencies: Sequence[str] | None = None
    run_ledger: bool = True
    # Run once the backend is up, before the first request is served (the console demo
    # publishes its example messages here).
    on_started: Callable[[ApiBackend], Awaitable[None]] | None = None


def choose_agencies(
    settings: Settings, passphrase: bytes, listed: Sequence[str], requested: Sequence[str] | None
) -> list[str]:
    """The agencies to serve: those asked for, else every listed agency whose keys this
    data directory holds (in production, just the one). Raises ``ConfigurationError``
    for an agency not in the directory, or when no agency's keys are held here;
    ``KeyUnavailable`` for a requested agency none of whose private keys are held here."""
    keystore = Keystore(DataPaths(settings.data_dir).keys, passphrase)
    if requested:
        unknown = sorted(set(requested) - set(listed))
        if unknown:
            raise ConfigurationError(f"not in the trust directory: {', '.join(unknown)}")
        missing = [a for a in requested if not keystore.key_ids(a)]
        if missing:
            raise KeyUnavailable(
                f"no private keys for {', '.join(missing)} in {settings.data_dir}: serve an "
                "agency where its keys are (`mappa deploy gateway-dir` makes such a directory)"
            )
        return list(requested)
    held = [a for a in listed if keystore.key_ids(a)]
    if not held:
        raise ConfigurationError(f"no agency's keys are held in {settings.data_dir}")
    return held


@asynccontextmanager
async def deployment_backend(config: ServeConfig) -> AsyncIterator[ApiBackend]:
    """The API's backend while the deployment runs with background pollers; yields it,
    and stops everything when the block ends. Raises, before it yields,
    ``ConfigurationError`` (from ``choose_agencies``, insecure Kafka settings, or an
    unreadable OpenID Connect client secret),
    ``KeyUnavailable`` for a requested agency whose keys are not held here, and
    ``TransportError`` if the broker does not answer."""
    settings = config.settings
    # Before anything starts: an unreadable client secret is a configuration error.
    oidc = oidc_config(settings)
    deployment = Deployment(
        settings=settings, passphrase=config.passphrase, agreements=[config.agreement]
    )
    listed = [a.agency_id for a in deployment.directory.agencies()]
    agencies = choose_agencies(settings, config.passphrase, listed, config.agencies)
    run_ledger = config.run_ledger and holds_ledger_key(deployment.paths, deployment.keystore)
    if config.run_ledger and not run_ledger:
        log.info(
            "the ledger's private key is not held in %s: the audit ledger does not run in "
            "this process (`mappa ledger serve` runs it)",
            settings.data_dir,
        )
    async with AsyncExitStack() as stack:
        running = await stack.enter_async_context(
            deployment.running(agencies, ledger=run_ledger, background=True)
        )
        credentials = CredentialStore(credentials_path(settings.data_dir))
        stack.callback(credentials.close)
        ledger = running.ledger
        backend = ApiBackend(
            agencies=serve_agencies(running.gateways, config.adapter_for),
            credentials=credentials,
            clock=deployment.clock,
            ledger=deployment.ledger_reader(ledger.store) if ledger else None,
            desks=running.desks,
            transport=running.transport,
            audit_topic=deployment.topics.audit,
            data_dir=settings.data_dir,
            oidc=oidc,
            witnesses=deployment.served_witnesses(agencies),
        )
        # The Kafka broker's address, not the HTTP API's: uvicorn's "running on" says that.
        log.info(
            'serving %s; Kafka broker: %s; HTTP address: uvicorn\'s "running on" line',
            ", ".join(agencies),
            running.broker,
        )
        if config.on_started is not None:
            await config.on_started(backend)
        yield backend


@asynccontextmanager
async def ledger_backend(settings: Settings, passphrase: bytes) -> AsyncIterator[ApiBackend]:
    """The audit ledger service alone (``mappa ledger serve``): the ledger reading the
    audit topic, appending, signing checkpoints and sending ledger receipts, with its
    background pollers; yields a backend serving no agency, whose ``ledger`` answers the
    governance routes and readiness. Stops everything when the block ends. Raises,
    before it yields, ``KeyUnavailable`` when the ledger's private key is not held in
    the data directory, ``ConfigurationError`` as ``Deployment`` does, and
    ``TransportError`` if the broker does not answer."""
    paths = DataPaths(settings.data_dir)
    keystore = Keystore(paths.keys, passphrase)
    require_ledger_key(paths, keystore)
    # The ledger applies no agreement; a deployment's parts are built under one, so the
    # default agreement of each area stands in.
    agreements = default_agreements(load_directory(paths))
    deployment = Deployment(settings=settings, passphrase=passphrase, agreements=agreements)
    async with AsyncExitStack() as stack:
        running = await stack.enter_async_context(
            deployment.running([], ledger=True, background=True)
        )
        assert running.ledger is not None  # noqa: S101 - asked for just above
        credentials = CredentialStore(credentials_path(settings.data_dir))
        stack.callback(credentials.close)
        backend = ApiBackend(
            agencies={},
            credentials=credentials,
            clock=deployment.clock,
            ledger=deployment.ledger_reader(running.ledger.store),
            transport=running.transport,
            audit_topic=deployment.topics.audit,
        )
        log.info("the audit ledger reads %s through %s", deployment.topics.audit, running.broker)
        yield backend


class Startup:
    """A backend (``deployment_backend``, ``ledger_backend``) for a server, remembering
    the error of a start that failed (``error``).

    Starlette reports a failed lifespan as a traceback, which uvicorn logs. For our own
    errors (``MappaError``: the deployment cannot start as configured, a database or
    broker that does not answer) the app wrapped by ``app`` fails its start-up without
    one, and its runner raises ``error`` afterwards, for ``mappa`` to say in one line.
    Any other exception keeps its traceback: it is a bug."""

    def __init__(self, open_backend: BackendFactory) -> None:
        self._open_backend = open_backend
        self.error: MappaError | None = None

    @asynccontextmanager
    async def backend(self) -> AsyncIterator[ApiBackend]:
        """The backend, remembering a ``MappaError`` raised while it starts (and raising
        it). Yields the backend."""
        async with AsyncExitStack() as stack:
            try:
                backend = await stack.enter_async_context(self._open_backend())
            except MappaError as exc:
                self.error = exc
                raise
            yield backend

    def app(self, inner: ASGIApp) -> ASGIApp:
        """``inner`` with its lifespan's start-up failure message (a traceback) left out
        when the failure is the remembered error. Returns the wrapped app."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            async def quiet(message: Message) -> None:
                if message["type"] == "lifespan.startup.failed" and self.error is not None:
                    message = {**message, "message": ""}
                await send(message)

            await inner(scope, receive, quiet if scope["type"] == "lifespan" else send)

        return app
