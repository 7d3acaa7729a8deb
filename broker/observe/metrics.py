"""Prometheus metrics of a running server, read at scrape time from what lasts: the agency
stores, the ledger's database and the broker. Counts then survive a restart, and no
module on the hot path counts anything for them; only HTTP request timings and the
ledger's verify durations (kept by ``LedgerReader``) are held in memory.

``Metrics(parts)`` is one server's metrics, with a registry of its own (never the
global default: a process may run several apps, as the tests do). ``parts`` says, at
each scrape, what the server runs (``ObservedParts``): agency gateways (none, for a
standalone ledger), a ledger (none, for one agency's gateway alone), the broker
connection. ``await metrics.scrape()`` reads them, each within a bound, and returns the
exposition text; the HTTP face (``broker.api.metrics``) serves it at ``GET /metrics``.

Every metric, its labels and its meaning: docs/operations.md, "Metrics". What a scrape
reads, and what it does when a part does not answer:

1. each agency store (``broker.gateway.gauges``), on a read-only connection of the
   scrape's own, on a worker thread, within ``STORE_SECONDS``; else its gauges are
   absent and ``mappa_store_up{agency}`` is 0;
2. the ledger's database, on a worker thread, within ``LEDGER_SECONDS``; else its gauges
   are absent and ``mappa_ledger_up`` is 0;
3. where each partition every reader reads ends, asked of the broker within
   ``BROKER_SECONDS`` and kept for ``END_OFFSETS_TTL_SECONDS`` (scrapes from several
   Prometheus replicas do not each ask it); else (or with no broker connection to ask,
   as readiness says it) the lag is absent and ``mappa_broker_up`` is 0. A reader's lag
   is the partition's end less the next offset the reader stored in its own database:
   the adapters and the ledger keep their offsets there, not in Kafka, so Kafka's own
   lag tools see nothing.

Label values are agency ids, topic names, partitions, reason codes, act, operation,
outcome and state names, route templates and status classes: never a message id, a
subject, a raw path or a query string. A value not of that shape (``LABEL``) is
exported as ``other``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from broker.errors import MappaError
from broker.gateway import AgencyGateway
from broker.gateway.agency import utc_now
from broker.gateway.gauges import (
    AuditTally,
    StoreGauges,
    Tally,
    read_gauges,
)
from broker.kafka.transport import KafkaTransport, TransportError
from broker.ledger.alarms import WatchStatus
from broker.ledger.reader import LedgerReader
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import parse_timestamp

log = logging.getLogger(__name__)

# Prometheus's default scrape timeout is 10 s; the parts are read at once, each bounded
# well inside it.
STORE_SECONDS = 3.0
LEDGER_SECONDS = 3.0
BROKER_SECONDS = 2.0
# Scrapes come every 15-60 s, from one or two Prometheus servers: ends of partitions a
# few seconds old are as good as new, and the broker is asked at most this often.
END_OFFSETS_TTL_SECONDS = 5.0
# Request durations: an API call takes milliseconds; a governance export or verify,
# seconds to minutes.
HTTP_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
# The one shape a label value may have: identifiers, codes and names of ours. A PNC id
# (with its "/") or a path never has it.
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
OTHER = "other"
# Route templates are the app's own ("/v1/agencies/{agency}/inbox/{message_id}").
ROUTE = re.compile(r"/[A-Za-z0-9._/{}:-]{0,199}")
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Offsets = Mapping[tuple[str, int], int]


def label(value: str) -> str:
    """``value`` if it has the shape of an identifier or code of ours (``LABEL``), else
    ``other``: nothing a caller wrote ever becomes a label."""
    return value if LABEL.fullmatch(value) else OTHER


def route_label(template: str | None) -> str:
    """A route template as a label: ``unmatched`` for none, ``other`` for one not of the
    shape of a template."""
    if template is None:
        return UNMATCHED
    return template if ROUTE.fullmatch(template) else OTHER


def method_label(method: str) -> str:
    """An HTTP method as a label: the standard ones as they are, any other ``other``."""
    return method if method in METHODS else OTHER


def status_class(status: int) -> str:
    """``2xx``, ``4xx``...: the class of an HTTP status."""
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


@dataclass(frozen=True)
class ObservedGateway:
    """What the metrics read of one agency's gateway: its store's file, its audit and
    dead-letter topics (whose outbox rows are its audit events and dead letters) and the
    topics its reader reads."""

    agency_id: str
    store_path: Path
    audit_topic: str
    deadletter_topic: str
    topics: tuple[str, ...]

    @classmethod
    def of(cls, gateway: AgencyGateway) -> ObservedGateway:
        """The observed parts of a running ``gateway``."""
        ctx = gateway.ctx
        return cls(
            gateway.agency_id,
            ctx.store.path,
            ctx.topics.audit,
            ctx.topics.deadletter,
            tuple(gateway.topics),
        )


@dataclass(frozen=True)
class ObservedParts:
    """What one server runs, for its metrics: any of agency gateways, a ledger (with the
    topic it reads) and the broker connection (for the readers' lag). A standalone
    ledger service gives no gateways; one agency's gateway alone gives no ledger."""

    gateways: Sequence[ObservedGateway] = ()
    ledger: LedgerReader | None = None
    ledger_topic: str | None = None
    transport: KafkaTransport | None = None
    clock: Callable[[], datetime] = utc_now


PartsSource = Callable[[], ObservedParts | None]


@dataclass(frozen=True)
class _Agency:
    agency_id: str
    topics: tuple[str, ...]
    gauges: StoreGauges | None
    tally: Tally | None


@dataclass(frozen=True)
class _Ledger:
    entries: int
    rejected: int
    checkpoint_size: int | None
    checkpoint_age_seconds: float | None
    offsets: dict[tuple[str, int], int]


@dataclass(frozen=True)
class Snapshot:
    """What one scrape read; None where a part did not answer (or is not run)."""

    agencies: list[_Agency] = field(default_factory=list)
    ledger: _Ledger | None = None
    ledger_run: bool = False
    ledger_topic: str | None = None
    ends: dict[tuple[str, int], int] | None = None
    broker_asked: bool = False
    verify: LedgerReader | None = None
    at: datetime = field(default_factory=utc_now)


def _read_agency(gateway: ObservedGateway, tally: AuditTally) -> _Agency:
    return _Agency(
        gateway.agency_id, gateway.topics, read_gauges(gateway.store_path), tally.advance()
    )


def _read_ledger(reader: LedgerReader, now: datetime) -> _Ledger:
    store = reader.store
    latest = store.latest_checkpoint()
    age = None
    if latest is not None:
        age = max(0.0, (now - parse_timestamp(latest[1])).total_seconds())
    return _Ledger(
        entries=store.size(),
        rejected=store.rejected_count(),
        checkpoint_size=None if latest is None else latest[0],
        checkpoint_age_seconds=age,
        offsets=store.offsets(),
    )


class Metrics:
    """One server's metrics (module docstring): its own ``registry``, the HTTP request
    histogram (``observe_request``), and ``scrape``."""

    def __init__(self, parts: PartsSource) -> None:
        self._parts = parts
        self.registry = CollectorRegistry(auto_describe=False)
        self._http = Histogram(
            "mappa_http_request_duration_seconds",
            "HTTP requests by route template, method and status class, and how long each "
            "took to answer.",
            ["route", "method", "status"],
            buckets=HTTP_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self._state = _SnapshotCollector()
        self.registry.register(self._state)
        self._tallies: dict[Path, AuditTally] = {}
        self._ends: tuple[float, tuple[str, ...], dict[tuple[str, int], int]] | None = None
        self._scraping = asyncio.Lock()

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request to ``route`` (its template; None: no route matched)."""
        self._http.labels(route_label(route), method_label(method), status_class(status)).observe(
            seconds
        )

    async def scrape(self) -> bytes:
        """Read every part (each within its bound) and return the exposition text, in
        Prometheus's text format. One scrape at a time; raises nothing of its own (a part
        that does not answer is reported as down)."""
        async with self._scraping:
            self._state.snapshot = await self._snapshot()
            return generate_latest(self.registry)

    async def _snapshot(self) -> Snapshot:
        parts = self._parts()
        if parts is None:  # the server is not running yet, or any more
            return Snapshot()
        now = parts.clock()
        agencies, ledger = await asyncio.gather(
            asyncio.gather(*(self._agency(g) for g in parts.gateways)),
            self._ledger(parts.ledger, now),
        )
        topics = {t for g in parts.gateways for t in g.topics}
        if parts.ledger is not None and parts.ledger_topic is not None:
            topics.add(parts.ledger_topic)
        ends = await self._end_offsets(parts.transport, tuple(sorted(topics)))
        return Snapshot(
            agencies=list(agencies),
            ledger=ledger,
            ledger_run=parts.ledger is not None,
            ledger_topic=parts.ledger_topic,
            ends=ends,
            broker_asked=bool(topics),
            verify=parts.ledger,
            at=now,
        )

    async def _agency(self, gateway: ObservedGateway) -> _Agency:
        tally = self._tallies.get(gateway.store_path)
        if tally is None:
            tally = self._tallies[gateway.store_path] = AuditTally(
                gateway.store_path,
                audit_topic=gateway.audit_topic,
                deadletter_topic=gateway.deadletter_topic,
            )
        try:
            async with asyncio.timeout(STORE_SECONDS):
                return await asyncio.to_thread(_read_agency, gateway, tally)
        except (MappaError, sqlite3.Error, TimeoutError) as exc:
            log.warning("metrics: %s's store did not answer: %s", gateway.agency_id, _why(exc))
            return _Agency(gateway.agency_id, gateway.topics, None, None)

    async def _ledger(self, reader: LedgerReader | None, now: datetime) -> _Ledger | None:
        if reader is None:
            return None
        try:
            async with asyncio.timeout(LEDGER_SECONDS):
                # On a thread: a PostgreSQL ledger is a network call, and a SQLite one waits
                # for an append batch to finish.
                return await asyncio.to_thread(_read_ledger, reader, now)
        except (MappaError, sqlite3.Error, TimeoutError) as exc:
            log.warning("metrics: the ledger's database did not answer: %s", _why(exc))
            return None

    async def _end_offsets(
        self, transport: KafkaTransport | None, topics: tuple[str, ...]
    ) -> dict[tuple[str, int], int] | None:
        if transport is None or not topics:
            return None
        cached = self._ends
        fresh = cached is not None and time.monotonic() - cached[0] < END_OFFSETS_TTL_SECONDS
        if cached is not None and fresh and cached[1] == topics:
            return cached[2]
        try:
            ends = await transport.end_offsets(list(topics), within=BROKER_SECONDS)
        except TransportError as exc:
            log.warning("metrics: the broker did not answer: %s", exc.code)
            self._ends = None
            return None
        self._ends = (time.monotonic(), topics, ends)
        return ends


def _why(exc: BaseException) -> str:
    """A failure's code, for the log: never its text, which may name a file."""
    if isinstance(exc, MappaError):
        return exc.code
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


class _SnapshotCollector(Collector):
    """The metric families of the latest ``Snapshot`` (module docstring)."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot
        yield from _agency_families(snapshot.agencies, snapshot.at)
        yield from _ledger_families(snapshot)
        yield from _lag_families(snapshot)


def _gauge(name: str, text: str, labels: Sequence[str] = ("agency",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=list(labels))


def _counter(name: str, text: str, labels: Sequence[str] = ("agency",)) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, labels=list(labels))


def _agency_families(agencies: Sequence[_Agency], now: datetime) -> Iterator[Metric]:
    up = _gauge("mappa_store_up", "1 if the agency's store answered this scrape, else 0.")
    unsent = _gauge("mappa_outbox_unsent", "Outbox records not yet sent to the broker.")
    aside = _gauge(
        "mappa_outbox_set_aside",
        "Outbox records the broker refused for good, kept and never sent again.",
    )
    oldest = _gauge(
        "mappa_outbox_oldest_unsent_age_seconds",
        "How long the envelope or audit event waiting longest for the relay has waited "
        "(0 when none waits).",
    )
    queued = _gauge(
        "mappa_envelopes_queued",
        "Envelopes (one per recipient) waiting for the relay to send them.",
    )
    awaiting = _gauge(
        "mappa_envelopes_unreceipted",
        "Envelopes (one per recipient) sent and still awaiting the recipient's receipt.",
    )
    audit = _gauge(
        "mappa_audit_events_unacknowledged", "Audit events the ledger has not yet receipted."
    )
    inbox = _gauge(
        "mappa_inbox_messages", "Messages held in the inbox.", ["agency", "acknowledged"]
    )
    kept = _gauge(
        "mappa_dead_letters_kept",
        "Records refused for a reason that can pass, kept for a retry: open (awaiting "
        "one) or settled (retried).",
        ["agency", "state"],
    )
    gauges = (up, unsent, aside, oldest, queued, awaiting, audit, inbox, kept)
    counters = _Counters()
    for a in agencies:
        agency = label(a.agency_id)
        up.add_metric([agency], 0 if a.gauges is None else 1)
        if a.gauges is not None:
            g = a.gauges
            unsent.add_metric([agency], g.outbox_unsent)
            aside.add_metric([agency], g.outbox_set_aside)
            age = 0.0
            if g.oldest_queued_at is not None:
                age = max(0.0, (now - parse_timestamp(g.oldest_queued_at)).total_seconds())
            oldest.add_metric([agency], age)
            queued.add_metric([agency], g.envelopes_queued)
            awaiting.add_metric([agency], g.envelopes_unreceipted)
            audit.add_metric([agency], g.audit_unacknowledged)
            inbox.add_metric([agency, "false"], g.inbox_unacknowledged)
            inbox.add_metric([agency, "true"], g.inbox_acknowledged)
            kept.add_metric([agency, "open"], g.dead_letters_open)
            kept.add_metric([agency, "settled"], g.dead_letters_settled)
        if a.tally is not None:
            counters.add(agency, a.tally)
    yield from gauges
    yield from counters.families()


class _Counters:
    """The counters agencies' tallies make (``add``): a submission is a publication or a
    refused publish; a publication the ``collection`` of the message published; an
    envelope's outcome a receipt (``disclosure``/``receipt``, ok or refused) or its
    being given up (``disclosure``/``publish``, undeliverable); a delivery the
    ``collection`` of a message received; a refusal any ``refusal``, by operation and
    code."""

    def __init__(self) -> None:
        self.submissions = _counter(
            "mappa_submissions", "Messages the agency asked to publish, published or refused."
        )
        self.publications = _counter("mappa_publications", "Messages the agency published.")
        self.outcomes = _counter(
            "mappa_envelope_outcomes",
            "Envelopes the agency sent, settled: delivered or refused (the recipient's "
            "receipt said so), or undeliverable (no receipt after every re-send).",
            ["agency", "outcome"],
        )
        self.deliveries = _counter(
            "mappa_deliveries", "Messages delivered into the agency's inbox."
        )
        self.refusals = _counter(
            "mappa_refusals",
            "Acts the agency's gateway refused, by operation and reason code.",
            ["agency", "operation", "reason_code"],
        )
        self.dead = _counter(
            "mappa_dead_letters", "Refused records the agency reported on the dead-letter topic."
        )

    def add(self, agency: str, tally: Tally) -> None:
        published = delivered = refused_publish = 0
        outcomes = dict.fromkeys(("delivered", "refused", "undeliverable"), 0)
        by_code: dict[tuple[str, str], int] = {}
        for (act, operation, outcome, code), n in tally.events.items():
            if act == AuditAct.COLLECTION and operation == Operation.PUBLISH:
                published += n
            elif act == AuditAct.COLLECTION and operation == Operation.DELIVER:
                delivered += n
            elif act == AuditAct.DISCLOSURE and operation == Operation.RECEIPT:
                outcomes["refused" if outcome == Outcome.REFUSED else "delivered"] += n
            elif act == AuditAct.DISCLOSURE and outcome == Outcome.UNDELIVERABLE:
                outcomes["undeliverable"] += n
            elif act == AuditAct.REFUSAL:
                key = (label(operation), label(code) if code else OTHER)
                by_code[key] = by_code.get(key, 0) + n
                refused_publish += n if operation == Operation.PUBLISH else 0
        self.submissions.add_metric([agency], published + refused_publish)
        self.publications.add_metric([agency], published)
        for outcome, n in outcomes.items():
            self.outcomes.add_metric([agency, outcome], n)
        self.deliveries.add_metric([agency], delivered)
        for (operation, code), n in sorted(by_code.items()):
            self.refusals.add_metric([agency, operation, code], n)
        self.dead.add_metric([agency], tally.dead_letters)

    def families(self) -> tuple[CounterMetricFamily, ...]:
        return (
            self.submissions,
            self.publications,
            self.outcomes,
            self.deliveries,
            self.refusals,
            self.dead,
        )


def _ledger_families(snapshot: Snapshot) -> Iterator[Metric]:
    if not snapshot.ledger_run:
        return
    up = GaugeMetricFamily("mappa_ledger_up", "1 if the ledger's database answered, else 0.")
    up.add_metric([], 0 if snapshot.ledger is None else 1)
    yield up
    ledger = snapshot.ledger
    if ledger is not None:
        entries = CounterMetricFamily(
            "mappa_ledger_entries",
            "Entries in the audit ledger (never removed: its rate is the append rate).",
        )
        entries.add_metric([], ledger.entries)
        rejected = GaugeMetricFamily(
            "mappa_ledger_rejected_records", "Audit records the ledger refused, kept with why."
        )
        rejected.add_metric([], ledger.rejected)
        uncheckpointed = GaugeMetricFamily(
            "mappa_ledger_uncheckpointed_entries",
            "Entries appended since the latest signed checkpoint.",
        )
        uncheckpointed.add_metric([], ledger.entries - (ledger.checkpoint_size or 0))
        yield from (entries, rejected, uncheckpointed)
        if ledger.checkpoint_age_seconds is not None:
            age = GaugeMetricFamily(
                "mappa_ledger_checkpoint_age_seconds",
                "How long ago the latest signed checkpoint was signed.",
            )
            age.add_metric([], ledger.checkpoint_age_seconds)
            yield age
    if snapshot.verify is not None:
        yield _verify_family(snapshot.verify)
        yield from _watch_families(snapshot.verify.store.status)


def _watch_families(status: WatchStatus) -> Iterator[Metric]:
    """The ledger's own watch: whether it halted, and its scheduled verify's progress."""
    halted = GaugeMetricFamily(
        "mappa_ledger_halted",
        "1 if the ledger halted itself (an alarm: it signs and appends nothing), else 0.",
    )
    halted.add_metric([], 0 if status.halted is None else 1)
    progress = status.verify
    running = GaugeMetricFamily(
        "mappa_ledger_scheduled_verify_running", "1 while a scheduled verify runs, else 0."
    )
    running.add_metric([], 1 if progress.running else 0)
    hashed = GaugeMetricFamily(
        "mappa_ledger_scheduled_verify_hashed_entries",
        "Entries hashed so far by the scheduled verify running (or the last one).",
    )
    hashed.add_metric([], progress.hashed)
    total = GaugeMetricFamily(
        "mappa_ledger_scheduled_verify_entries",
        "Entries the scheduled verify running (or the last one) has to hash.",
    )
    total.add_metric([], progress.total)
    runs = CounterMetricFamily(
        "mappa_ledger_scheduled_verifies",
        "Scheduled verifies completed since the server started, and how many found the "
        "ledger tampered (outcome).",
        labels=["outcome"],
    )
    runs.add_metric(["intact"], progress.completed - progress.tampered)
    runs.add_metric(["tampered"], progress.tampered)
    yield from (halted, running, hashed, total, runs)
    if progress.last_completed is not None:
        last = GaugeMetricFamily(
            "mappa_ledger_scheduled_verify_last_completed_timestamp_seconds",
            "When the last scheduled verify completed (Unix time).",
        )
        last.add_metric([], progress.last_completed)
        yield last


def _verify_family(reader: LedgerReader) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "mappa_ledger_verify_duration_seconds",
        "Whole-ledger verifications (API and console) since the server started, by "
        "outcome (intact, tampered, incomplete), and how long each took.",
        labels=["outcome"],
    )
    for outcome, h in sorted(reader.verify_durations.histograms().items()):
        buckets = [(str(b), n) for b, n in zip(h.bounds, h.cumulative, strict=True)]
        buckets.append(("+Inf", h.count))
        family.add_metric([label(outcome)], buckets, h.total_seconds)
    return family


def _lag_families(snapshot: Snapshot) -> Iterator[Metric]:
    if not snapshot.broker_asked:
        return
    up = GaugeMetricFamily(
        "mappa_broker_up", "1 if the broker said where its partitions end, else 0."
    )
    up.add_metric([], 0 if snapshot.ends is None else 1)
    yield up
    if snapshot.ends is None:
        return
    lag = GaugeMetricFamily(
        "mappa_reader_lag_records",
        "Records a reader has not read yet, per topic and partition: where the partition "
        "ends less the next offset the reader stored (readers keep their offsets in their "
        "own database, not in Kafka).",
        labels=["reader", "topic", "partition"],
    )
    readers: list[tuple[str, Sequence[str], Offsets]] = [
        (a.agency_id, a.topics, a.gauges.offsets) for a in snapshot.agencies if a.gauges
    ]
    if snapshot.ledger is not None and snapshot.ledger_topic is not None:
        readers.append(("ledger", (snapshot.ledger_topic,), snapshot.ledger.offsets))
    for reader, topics, stored in readers:
        for (topic, partition), end in sorted(snapshot.ends.items()):
            if topic in topics:
                # A partition read past its end (a broker that restarted empty) is not behind.
                behind = max(0, end - stored.get((topic, partition), 0))
                lag.add_metric([label(reader), label(topic), str(partition)], behind)
    yield lag
