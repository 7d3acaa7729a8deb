"""Liveness and readiness, for whatever runs the service (a load balancer, Kubernetes).

- ``GET /healthz``: 200 ``{"status": "alive"}`` whenever the process answers. Nothing
  else is checked, so an outage of a dependency never gets the process restarted.
- ``GET /readyz``: 200 when the service can do its job, 503 when it cannot; the body
  names each part's state either way. The parts, checked at once:

  1. ``broker``: it answers, within ``BROKER_PROBE_SECONDS``, a request for where each
     partition of the audit topic ends (``KafkaTransport.end_offsets``); else
     ``unavailable`` (``transport.failed``).
  2. ``agencies``, each served agency: its store grants the write lock within
     ``STORE_PROBE_SECONDS`` (``BEGIN IMMEDIATE; ROLLBACK``, on a connection of the
     probe's own so the event loop never waits for it); else ``unavailable``
     (``store.unavailable``). With the outbox backlog (records not yet sent) and the
     tracked deliveries by state, for the operator; neither counts against readiness.
  3. ``ledger``: its lag, the records on the audit topic it has not appended yet (the
     topic's end offsets less the ledger's stored offsets, summed over partitions), is
     at most ``LEDGER_LAG_BOUND``; else ``behind`` (``ledger.behind``); ``halted``
     (``ledger.halted``) whenever the ledger halted itself (its watch or scheduled verify
     raised an alarm: docs/audit-ledger.md), whatever its lag. ``unavailable``
     when its database does not answer (``store.unavailable``) or the broker does not
     (``transport.failed``); ``not-run`` on a server started with ``--no-ledger``, which
     does not count against readiness.

Neither needs a token, and neither says anything about a person: agency ids, counts and
reason codes only (no addresses, no exception text).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, Request, Response

from broker.api.backend import ApiBackend, ServedAgency
from broker.api.models import AgencyHealth, Alive, BrokerHealth, LedgerHealth, Readiness
from broker.errors import MappaError, StoreUnavailable, sqlite_unavailable
from broker.gateway.store import StoreConnection
from broker.kafka.transport import TransportError
from broker.ledger.self_watch import HALTED

log = logging.getLogger(__name__)
# A readiness probe is asked every few seconds and must answer within its own timeout
# (give it at least 3 s): the broker gets most of that, a fresh connection included.
BROKER_PROBE_SECONDS = 2.0
# A writer holds a store's lock for one transaction, milliseconds; a quarter of a second
# without it is a store that requests would wait for too.
STORE_PROBE_SECONDS = 0.25
# The ledger appends batches of up to 500 records a poll, several polls a second: a few
# seconds of a busy area's audit events. More than this behind, it is not keeping up.
LEDGER_LAG_BOUND = 5000
UNAVAILABLE = "api.unavailable"


def health_router() -> APIRouter:
    """``/healthz`` and ``/readyz`` (module docstring), without authentication. Returns
    the router; raises nothing of its own. The route functions carry comments, not
    docstrings: FastAPI would put a docstring in docs/openapi.json."""
    router = APIRouter(tags=["health"])

    # Liveness: answers while the process does, whatever else is down.
    @router.get(
        "/healthz",
        response_model=Alive,
        summary="Liveness: the process answers (no dependency is checked)",
    )
    async def healthz() -> Alive:
        return Alive()

    # Readiness: ``readiness``, 503 unless every part can do its job.
    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "A part cannot do its job"}},
        summary="Readiness: the broker, each agency's store and the ledger, with their states",
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        answer = await readiness(getattr(request.app.state, "backend", None))
        if answer.status != "ready":
            response.status_code = 503
        return answer

    return router


async def readiness(backend: ApiBackend | None) -> Readiness:
    """Each part's state (module docstring) and whether all can do their job; a backend
    not running (None) is not ready. Raises nothing: a part that fails is reported."""
    if backend is None:
        return Readiness(
            status="not-ready",
            broker=BrokerHealth(state="unavailable", reason_code=UNAVAILABLE),
            agencies=[],
            ledger=LedgerHealth(
                state="unavailable", reason_code=UNAVAILABLE, lag=None, bound=LEDGER_LAG_BOUND
            ),
        )
    (broker, ends), agencies = await asyncio.gather(
        _broker(backend),
        asyncio.gather(*(_agency(served) for served in backend.agencies.values())),
    )
    ledger = await _ledger(backend, ends)
    ready = (
        broker.state == "ok"
        and all(a.state == "ok" for a in agencies)
        and ledger.state in ("ok", "not-run")
    )
    return Readiness(
        status="ready" if ready else "not-ready",
        broker=broker,
        agencies=list(agencies),
        ledger=ledger,
    )


Offsets = Mapping[tuple[str, int], int]


async def _broker(backend: ApiBackend) -> tuple[BrokerHealth, Offsets | None]:
    """The broker's state, and where the audit topic's partitions end if it answered."""
    if backend.transport is None or backend.audit_topic is None:
        return BrokerHealth(state="unavailable", reason_code=TransportError.code), None
    try:
        ends = await backend.transport.end_offsets(
            [backend.audit_topic], within=BROKER_PROBE_SECONDS
        )
    except TransportError as exc:
        log.warning("readiness: the broker did not answer: %s", exc)
        return BrokerHealth(state="unavailable", reason_code=exc.code), None
    return BrokerHealth(state="ok"), ends


def _probe_store(path: Path) -> int:
    """Take and give back ``path``'s write lock on a connection of its own, waiting at most
    ``STORE_PROBE_SECONDS``; returns how many outbox records are not yet sent (counted by
    the outbox's ``(sent, seq)`` index). Raises ``StoreUnavailable`` if the lock is not
    granted in time, or the file is missing, read-only or failing."""
    with sqlite_unavailable():
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            timeout=STORE_PROBE_SECONDS,
            factory=StoreConnection,
        )
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            (unsent,) = db.execute("SELECT count(*) FROM outbox WHERE sent = 0").fetchone()
        finally:
            db.execute("ROLLBACK")
    finally:
        db.close()
    return int(unsent)


async def _agency(served: ServedAgency) -> AgencyHealth:
    store = served.gateway.ctx.store
    try:
        # On a thread: the probe may wait for the lock, and the event loop must not.
        unsent = await asyncio.to_thread(_probe_store, store.path)
        tracked = store.tracking.counts()
    except StoreUnavailable as exc:
        log.warning("readiness: %s's store: %s", served.agency_id, exc)
        return AgencyHealth(
            agency=served.agency_id,
            state="unavailable",
            reason_code=exc.code,
            outbox_unsent=None,
            tracked={},
        )
    # A revoked signing key not yet rotated, or a trust directory past its valid_until:
    # the agency runs, but cannot do its work until an operator acts.
    problem = served.gateway.ctx.unready()
    if problem is not None:
        return AgencyHealth(
            agency=served.agency_id,
            state="unavailable",
            reason_code=problem.code,
            outbox_unsent=unsent,
            tracked=tracked,
        )
    return AgencyHealth(agency=served.agency_id, state="ok", outbox_unsent=unsent, tracked=tracked)


async def _ledger(backend: ApiBackend, ends: Offsets | None) -> LedgerHealth:
    """The ledger's state, from where the audit topic ends (None: the broker did not say)
    and where the ledger has read to."""
    bound = LEDGER_LAG_BOUND
    if backend.ledger is None:
        return LedgerHealth(state="not-run", lag=None, bound=bound)
    try:
        # On a thread: a PostgreSQL ledger is a network call.
        stored = await asyncio.to_thread(backend.ledger.store.offsets)
    except (MappaError, sqlite3.Error) as exc:
        log.warning("readiness: the ledger's database: %s", exc)
        code = exc.code if isinstance(exc, MappaError) else StoreUnavailable.code
        return LedgerHealth(state="unavailable", reason_code=code, lag=None, bound=bound)
    # A partition read past its end (a broker that restarted empty) is not behind.
    lag = None if ends is None else sum(max(0, end - stored.get(tp, 0)) for tp, end in ends.items())
    if backend.ledger.store.status.halted is not None:
        return LedgerHealth(state="halted", reason_code=HALTED, lag=lag, bound=bound)
    if lag is None:
        return LedgerHealth(
            state="unavailable", reason_code=TransportError.code, lag=None, bound=bound
        )
    if lag > bound:
        return LedgerHealth(state="behind", reason_code="ledger.behind", lag=lag, bound=bound)
    return LedgerHealth(state="ok", lag=lag, bound=bound)
