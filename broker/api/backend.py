"""What the HTTP layer works with: the agencies served here, their record adapters and
the credential store, built once (by ``mappa serve`` or a test) and handed to the app.

The app never imports an agency adapter: it takes ``adapter_for``, a callable that
returns something shaped like ``RecordAdapter`` for a gateway. The composition (which
adapter for which agency) happens where the process is assembled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from broker.api.credentials import CredentialStore
from broker.errors import StoreUnavailable
from broker.gateway import AgencyGateway
from broker.gateway.agency import utc_now
from broker.identity.oidc import OidcConfig
from broker.kafka.transport import KafkaTransport, TransportError
from broker.ledger.reader import LedgerReader
from broker.transfer.desk import TransferDesk
from broker.witness.witness import Witness
from schemas.common import ViewKind
from schemas.messages import MessageBody


class RecordAdapter(Protocol):
    """The part of ``agency_adapters.base.AgencyAdapter`` the API uses."""

    @property
    def system(self) -> str:
        """The name of the agency system whose format the adapter reads (error messages
        name it)."""
        ...

    def to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        """Map one record in the agency system's own format to a canonical message. Must
        raise ``SchemaError`` for a record it cannot map (``operations.map_record`` turns
        a stray ``ValueError``, ``LookupError``, ``TypeError`` or ``AttributeError`` into
        one as well)."""
        ...

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """Map a received message, in the ``view`` this agency holds, to the agency
        system's format: a JSON-ready object."""
        ...


log = logging.getLogger(__name__)

AdapterFor = Callable[[AgencyGateway], RecordAdapter]


@dataclass(frozen=True)
class ServedAgency:
    """One agency this API serves: its gateway and its record adapter."""

    gateway: AgencyGateway
    adapter: RecordAdapter

    @property
    def agency_id(self) -> str:
        """The served agency's id."""
        return self.gateway.agency_id


@dataclass(frozen=True)
class ApiBackend:
    """What the routes work with, built once per running server (by
    ``runtime.deployment_backend`` or a test). ``agencies`` and ``desks`` are keyed by
    agency id."""

    agencies: Mapping[str, ServedAgency]
    credentials: CredentialStore
    clock: Callable[[], datetime] = utc_now
    # The audit ledger this server runs, for the governance endpoints (None: --no-ledger).
    ledger: LedgerReader | None = None
    # Each served agency's transfer desk, for the transfer endpoints.
    desks: Mapping[str, TransferDesk] = field(default_factory=dict)
    # For readiness (``health.py``): the broker connection, asked for the end of the audit
    # topic, which also tells how far ``ledger`` is behind. Without them readiness says
    # the broker is unavailable: a backend that cannot be checked is not ready.
    transport: KafkaTransport | None = None
    audit_topic: str | None = None
    # The data directory the server runs from: the console's users and sessions live
    # there (``users.sqlite``). None: no console sign-in (a backend built in a test).
    data_dir: Path | None = None
    # The console's sign-in with the force's identity provider; None: local accounts only.
    oidc: OidcConfig | None = None
    # The ledger's witnesses this server answers for over HTTP, by the agency that runs
    # each (``witness_routes``): the served agencies' that hold a witness key.
    witnesses: Mapping[str, Witness] = field(default_factory=dict)


BackendFactory = Callable[[], AbstractAsyncContextManager[ApiBackend]]


def serve_agencies(
    gateways: Mapping[str, AgencyGateway], adapter_for: AdapterFor
) -> dict[str, ServedAgency]:
    """Each gateway with the adapter ``adapter_for`` gives it, keyed by agency id. Raises
    nothing of its own."""
    return {agency: ServedAgency(gw, adapter_for(gw)) for agency, gw in gateways.items()}


def running(backend: ApiBackend) -> BackendFactory:
    """A factory for a backend whose parts someone else started and will stop."""

    @asynccontextmanager
    async def factory() -> AsyncIterator[ApiBackend]:
        yield backend

    return factory


async def flush(gateway: AgencyGateway) -> bool:
    """Send the outbox now if the broker answers. What stays queued is durable and goes
    with the next relay (every poll flushes), so an unreachable broker, or a store too
    busy to say what is unsent, is not an error for the caller: returns False then (and
    logs it), True once everything is sent."""
    try:
        await gateway.relay.flush()
    except (TransportError, StoreUnavailable) as exc:
        log.warning("%s: outbox not relayed yet: %s", gateway.agency_id, exc)
        return False
    return True
