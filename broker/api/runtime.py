"""A running backend for the API, assembled from a data directory: the broker
connection (external, or the embedded one started here), each served agency's gateway
polling in the background, the audit ledger, the credential store.

``deployment_backend(...)`` is an async context manager: on exit (shutdown, Ctrl-C,
SIGTERM, a failed start) every poller is stopped, every gateway and store closed and
the embedded broker, if any, stopped, in reverse order of starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from broker.api.backend import AdapterFor, ApiBackend, serve_agencies
from broker.api.credentials import CredentialStore, credentials_path
from broker.deployment import Deployment
from broker.errors import ConfigurationError, MappaError
from broker.kafka.embedded import EmbeddedBroker
from broker.kafka.security import client_options
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from broker.trust.keystore import Keystore
from broker.trust.provision import DataPaths
from schemas.isa import Agreement

log = logging.getLogger(__name__)
# After a failed poll (broker away), wait this long before the next; doubles to the cap.
RETRY_FIRST_SECONDS = 0.5
RETRY_CAP_SECONDS = 10.0


@dataclass(frozen=True)
class ServeConfig:
    settings: Settings
    passphrase: bytes
    agreement: Agreement
    adapter_for: AdapterFor
    # None: every agency in the directory whose private keys are held here.
    agencies: Sequence[str] | None = None
    run_ledger: bool = True


def choose_agencies(
    settings: Settings, passphrase: bytes, listed: Sequence[str], requested: Sequence[str] | None
) -> list[str]:
    """The agencies to serve: those asked for, else every listed agency whose keys this
    data directory holds (in production, just the one)."""
    if requested:
        unknown = sorted(set(requested) - set(listed))
        if unknown:
            raise ConfigurationError(f"not in the trust directory: {', '.join(unknown)}")
        return list(requested)
    keystore = Keystore(DataPaths(settings.data_dir).keys, passphrase)
    held = [a for a in listed if keystore.key_ids(a)]
    if not held:
        raise ConfigurationError(f"no agency's keys are held in {settings.data_dir}")
    return held


async def poll_forever(
    name: str, poll: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Poll until ``stop``; a failure (broker away, a bug) is logged and retried with
    backoff, never allowed to end the loop silently."""
    delay = RETRY_FIRST_SECONDS
    while not stop.is_set():
        try:
            await poll()
        except (MappaError, OSError) as exc:
            log.warning("%s: poll failed, retrying in %.1fs: %s", name, delay, exc)
        except Exception:
            # A bug: keep the traceback, and keep this agency polled while it is looked at.
            log.exception("%s: poll failed unexpectedly, retrying in %.1fs", name, delay)
        else:
            delay = RETRY_FIRST_SECONDS
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, RETRY_CAP_SECONDS)


@asynccontextmanager
async def _pollers(polls: dict[str, Callable[[], Awaitable[object]]]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(poll_forever(n, p, stop), name=n) for n, p in polls.items()]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for name, result in zip(polls, results, strict=True):
            if isinstance(result, Exception):
                log.error("%s: poller ended with %r", name, result)


@asynccontextmanager
async def deployment_backend(config: ServeConfig) -> AsyncIterator[ApiBackend]:
    settings = config.settings
    async with AsyncExitStack() as stack:
        bootstrap = settings.kafka_bootstrap
        if bootstrap is None:
            embedded = EmbeddedBroker(log_path=settings.data_dir / "broker.log")
            bootstrap = await stack.enter_async_context(embedded)
        transport = await stack.enter_async_context(
            KafkaTransport(bootstrap, client_options=client_options(settings, bootstrap))
        )
        deployment = Deployment(
            settings=settings,
            passphrase=config.passphrase,
            transport=transport,
            agreement=config.agreement,
        )
        stack.callback(deployment.close)
        listed = [a.agency_id for a in deployment.directory.agencies()]
        agencies = choose_agencies(settings, config.passphrase, listed, config.agencies)
        areas = sorted({area for a in agencies for area in deployment.directory.agency(a).areas})
        await transport.ensure_topics(deployment.topics.all_topics(areas))
        gateways = {a: deployment.gateway(a) for a in agencies}
        for gateway in gateways.values():
            await gateway.start()
            stack.push_async_callback(gateway.stop)
        desks = {a: deployment.transfer_desk(gw) for a, gw in gateways.items()}
        for desk in desks.values():
            await desk.start()
            stack.push_async_callback(desk.stop)
        polls: dict[str, Callable[[], Awaitable[object]]] = {
            f"gateway {a}": gw.poll_once for a, gw in gateways.items()
        }
        polls.update({f"transfers {a}": desk.poll_once for a, desk in desks.items()})
        reader = None
        if config.run_ledger:
            ledger = deployment.ledger()
            await ledger.start()
            stack.push_async_callback(ledger.stop)
            polls["ledger"] = ledger.poll_once
            reader = deployment.ledger_reader(ledger.store)
        credentials = CredentialStore(credentials_path(settings.data_dir))
        stack.callback(credentials.close)
        backend = ApiBackend(
            agencies=serve_agencies(gateways, config.adapter_for),
            credentials=credentials,
            clock=deployment.clock,
            ledger=reader,
            desks=desks,
        )
        await stack.enter_async_context(_pollers(polls))
        log.info("serving %s on %s", ", ".join(agencies), bootstrap)
        yield backend
