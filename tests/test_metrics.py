"""``GET /metrics`` on the application as `mappa serve` builds it, over a real broker and
real stores: the counts move with publications, deliveries, refusals and dead letters;
a reader's lag shows while it is behind and is zero once it has caught up; a part that
does not answer is reported down, never waited for; and no label carries an id, a PNC
or a raw path.

One application for the module (``module_api``): each test reads the counts before
and after what it does, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from broker.api import create_app
from broker.api.backend import ApiBackend, running
from broker.api.metrics import install_metrics
from broker.gateway import gauges
from broker.gateway.gauges import AuditTally, Tally
from broker.gateway.handled import Handling
from broker.gateway.store import AgencyStore
from broker.kafka.transport import KafkaTransport
from broker.ledger.store import LedgerStore
from broker.observe import metrics as observed
from broker.observe.durations import Durations
from broker.observe.metrics import Metrics, ObservedGateway, ObservedParts
from broker.settings import Settings
from tests.support import HOUSING, PNC, POLICE, PROBATION
from tests.test_api import Api, arms_record, module_api

__all__ = ["module_api"]  # the fixture, shared with tests/test_api.py
RECORDS_ROUTE = "/v1/agencies/{agency_id}/records"


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition; the parser raises on text that is not one."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def present(text: str, name: str) -> bool:
    return any(s.name == name for s in samples(text))


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def lag(text: str, reader: str) -> float:
    return value(text, "mappa_reader_lag_records", reader=reader)


@pytest.fixture
def fresh_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ask the broker where partitions end at every scrape: lag is compared across
    scrapes a moment apart."""
    monkeypatch.setattr(observed, "END_OFFSETS_TTL_SECONDS", 0.0)


@pytest.mark.usefixtures("fresh_ends")
async def test_publication_and_delivery_move_the_counts_and_lag(module_api: Api) -> None:
    api, world = module_api, module_api.world
    before = await scrape(api.client)
    submitted = await api.submit(arms_record())
    assert submitted.status_code == 201, submitted.text
    message_id = submitted.json()["message_id"]

    # Relayed, not yet read: housing's reader is behind.
    sent = await scrape(api.client)
    assert lag(sent, HOUSING) >= 1
    assert value(sent, "mappa_publications_total", agency=POLICE) == 1 + value(
        before, "mappa_publications_total", agency=POLICE
    )
    assert value(sent, "mappa_submissions_total", agency=POLICE) == 1 + value(
        before, "mappa_submissions_total", agency=POLICE
    )
    assert value(sent, "mappa_envelopes_unreceipted", agency=POLICE) >= 1

    await world.pump(
        lambda: all(world.gw(a).ctx.store.inbox_item(message_id) for a in (PROBATION, HOUSING))
    )
    delivered = await scrape(api.client)
    for agency in (PROBATION, HOUSING):
        assert value(delivered, "mappa_deliveries_total", agency=agency) == 1 + value(
            before, "mappa_deliveries_total", agency=agency
        )
    assert value(
        delivered, "mappa_inbox_messages", agency=HOUSING, acknowledged="false"
    ) == 1 + value(before, "mappa_inbox_messages", agency=HOUSING, acknowledged="false")

    # Caught up: every reader has read to the end (receipts and the ledger's included).
    for _ in range(10):
        await world.pump_quiet(2)
        await world.sync_ledger()
        quiet = await scrape(api.client)
        if lag(quiet, HOUSING) == 0 and lag(quiet, "ledger") == 0:
            break
    else:
        raise AssertionError(f"readers still behind: {quiet}")
    assert value(quiet, "mappa_broker_up") == 1
    # Each recipient's receipt: delivered, and nothing left awaiting one.
    delivered_name = "mappa_envelope_outcomes_total"
    # (At least: an earlier test's receipts may have been read only now.)
    assert value(quiet, delivered_name, agency=POLICE, outcome="delivered") >= 3 + value(
        before, delivered_name, agency=POLICE, outcome="delivered"
    )
    assert value(quiet, "mappa_envelopes_unreceipted", agency=POLICE) == 0
    assert value(quiet, "mappa_outbox_unsent", agency=POLICE) == 0
    assert value(quiet, "mappa_outbox_oldest_unsent_age_seconds", agency=POLICE) == 0
    entries = value(quiet, "mappa_ledger_entries_total")
    assert entries > value(before, "mappa_ledger_entries_total")
    assert entries == world.ledger.store.size()
    assert value(quiet, "mappa_ledger_up") == 1
    assert (
        present(quiet, "mappa_ledger_checkpoint_age_seconds")
        or world.ledger.store.latest_checkpoint() is None
    )


async def test_a_refused_record_counts_as_a_refusal_and_a_dead_letter(module_api: Api) -> None:
    api, world = module_api, module_api.world
    housing = world.gw(HOUSING)
    topic = next(t for t in housing.topics if t != housing.ctx.topics.receipts)
    before = await scrape(api.client)
    await world.transport.send(topic, b"not an envelope", key=b"x")
    await world.pump(lambda: bool(world.of(HOUSING, Handling.REFUSED)))
    # A refusal that can pass is kept for a retry as well (here through the store itself).
    with housing.ctx.store.transaction():
        housing.ctx.store.deadletters.keep(
            topic=topic,
            partition=0,
            offset=10**9,
            timestamp_ms=0,
            key=None,
            value=b"kept",
            reason_code="envelope.clock-skew",
            reason="dated ahead",
            now=world.deployment.clock(),
        )
    after = await scrape(api.client)
    assert value(after, "mappa_dead_letters_total", agency=HOUSING) == 1 + value(
        before, "mappa_dead_letters_total", agency=HOUSING
    )
    refusals = [
        s
        for s in samples(after)
        if s.name == "mappa_refusals_total" and s.labels["agency"] == HOUSING
    ]
    assert {s.labels["operation"] for s in refusals} == {"deliver"}
    assert sum(s.value for s in refusals) == 1 + value(
        before, "mappa_refusals_total", agency=HOUSING
    )
    assert value(after, "mappa_dead_letters_kept", agency=HOUSING, state="open") == 1 + value(
        before, "mappa_dead_letters_kept", agency=HOUSING, state="open"
    )
    # A refused publication is a submission and a refusal with its code, not a publication.
    refused = await api.submit(arms_record(mappaArea="cheshire"))
    assert refused.status_code == 403, refused.text
    again = await scrape(api.client)
    for name, more in (("mappa_submissions_total", 1), ("mappa_publications_total", 0)):
        assert value(again, name, agency=POLICE) == more + value(after, name, agency=POLICE)
    code = {"agency": POLICE, "operation": "publish", "reason_code": "policy.area-not-covered"}
    assert value(again, "mappa_refusals_total", **code) == 1 + value(
        after, "mappa_refusals_total", **code
    )


async def test_labels_carry_templates_and_codes_never_ids_or_paths(module_api: Api) -> None:
    api = module_api
    message_id = await api.published()
    one = await api.client.get(
        f"/v1/agencies/{HOUSING}/inbox/{message_id}", headers=api.auth(HOUSING)
    )
    assert one.status_code == 200, one.text
    stray = await api.client.get(f"/nowhere/{PNC}?subject={PNC}")
    assert stray.status_code == 404
    text = await scrape(api.client)
    ref = api.world.deployment.subject_ref(PNC)
    for secret in (PNC, message_id, ref, "nowhere", "subject="):
        assert secret not in text
    found = samples(text)
    routes = {s.labels["route"] for s in found if "route" in s.labels}
    assert {"/v1/agencies/{agency_id}/inbox/{message_id}", "unmatched"} <= routes
    assert (
        value(text, "mappa_http_request_duration_seconds_count", route="unmatched", status="4xx")
        >= 1
    )
    for s in found:
        for name, got in s.labels.items():
            if name == "le":  # a bucket's bound, Prometheus's own
                continue
            shape = observed.ROUTE if name == "route" else observed.LABEL
            assert got == "unmatched" or shape.fullmatch(got), (s.name, name, got)


async def test_each_verify_is_timed_by_outcome(module_api: Api) -> None:
    api = module_api
    before = await scrape(api.client)
    verified = await api.client.get("/governance/verify", headers=api.auth("officer"))
    assert verified.status_code == 200, verified.text
    assert verified.json()["intact"] is True
    after = await scrape(api.client)
    name = "mappa_ledger_verify_duration_seconds_count"
    assert value(after, name, outcome="intact") == 1 + value(before, name, outcome="intact")
    assert value(after, "mappa_ledger_verify_duration_seconds_sum", outcome="intact") > 0
    assert (
        value(after, "mappa_http_request_duration_seconds_count", route="/governance/verify") >= 1
    )


@asynccontextmanager
async def metrics_client(backend: ApiBackend) -> AsyncIterator[httpx.AsyncClient]:
    """A running app over ``backend`` with its metrics."""
    app = create_app(running(backend))
    install_metrics(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def test_a_broker_that_does_not_answer_is_down_not_waited_for(module_api: Api) -> None:
    nowhere = KafkaTransport(Settings(), bootstrap="127.0.0.1:9")
    backend = dataclasses.replace(module_api.app.state.backend, transport=nowhere)
    async with metrics_client(backend) as client:
        text = await scrape(client)
    assert value(text, "mappa_broker_up") == 0
    assert not present(text, "mappa_reader_lag_records")
    # The stores and the ledger answer all the same.
    assert value(text, "mappa_store_up", agency=POLICE) == 1
    assert value(text, "mappa_ledger_up") == 1


async def test_a_server_without_gateways_shows_the_ledger_alone(module_api: Api) -> None:
    # As `mappa ledger serve` runs: a backend that serves no agency.
    ledger_only = dataclasses.replace(module_api.app.state.backend, agencies={})
    async with metrics_client(ledger_only) as client:
        text = await scrape(client)
    assert value(text, "mappa_ledger_up") == 1
    assert present(text, "mappa_ledger_entries_total")
    lagging = {s.labels["reader"] for s in samples(text) if s.name == "mappa_reader_lag_records"}
    assert lagging == {"ledger"}
    assert not present(text, "mappa_store_up")


async def test_a_store_or_ledger_that_does_not_answer_is_down(
    module_api: Api, tmp_path: Path
) -> None:
    missing = ObservedGateway(POLICE, tmp_path / "missing.sqlite", "audit", "dead", ("area",))
    closed = LedgerStore(tmp_path / "ledger.sqlite")
    reader = module_api.world.deployment.ledger_reader(closed)
    closed.close()
    parts = ObservedParts(gateways=[missing], ledger=reader, ledger_topic="audit")
    text = (await Metrics(lambda: parts).scrape()).decode()
    assert value(text, "mappa_store_up", agency=POLICE) == 0
    assert not present(text, "mappa_outbox_unsent")
    assert value(text, "mappa_ledger_up") == 0
    assert not present(text, "mappa_ledger_entries_total")
    # No broker connection to ask, as readiness says it: down.
    assert value(text, "mappa_broker_up") == 0
    assert not present(text, "mappa_reader_lag_records")


def test_a_tally_is_absent_until_every_event_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gauges, "TALLY_BATCH_ROWS", 2)
    monkeypatch.setattr(gauges, "TALLY_ROWS_PER_SCRAPE", 2)
    store = AgencyStore(tmp_path / "agency.sqlite")
    refusal = {"act": "refusal", "operation": "publish", "outcome": "refused"}
    event = json.dumps({"event": refusal | {"reason_code": "policy.denied"}}).encode()
    try:
        with store.transaction():
            for _ in range(2):
                store.enqueue("audit", event)
            store.enqueue("dead", b"\xff the head of a record that is not JSON")
            store.enqueue("envelopes", b"{}")
        tally = AuditTally(store.path, audit_topic="audit", deadletter_topic="dead")
        assert tally.advance() is None  # two rows of three read: not a count yet
        counted = Tally({("refusal", "publish", "refused", "policy.denied"): 2}, dead_letters=1)
        assert tally.advance() == counted
        assert tally.advance() == counted  # nothing new: nothing counted twice
    finally:
        store.close()


def test_durations_accumulate_by_outcome() -> None:
    with pytest.raises(ValueError, match="increasing"):
        Durations((1.0, 0.5))
    durations = Durations((1.0, 10.0))
    for seconds in (0.5, 2.0, 20.0):
        durations.add(seconds, "intact")
    durations.add(0.1, "incomplete")
    intact = durations.histograms()["intact"]
    assert (intact.cumulative, intact.count, intact.total_seconds) == ((1, 2), 3, 22.5)
    assert durations.histograms()["incomplete"].count == 1


def test_label_values_of_another_shape_are_other() -> None:
    assert observed.label(PNC) == "other"
    assert observed.label("policy.denied") == "policy.denied"
    assert observed.route_label(None) == "unmatched"
    assert observed.route_label("/a b") == "other"
    assert observed.method_label("BREW") == "other"
    assert observed.status_class(503) == "5xx"
