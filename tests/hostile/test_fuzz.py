"""Fuzzing the input boundaries (issue 16): whatever comes in, only our own refusals come
out, and a record consumer always moves past the record.

Hypothesis generates hostile input, much of it mutated from genuine documents (a sealed
envelope, a signed audit event, the agreement template, each adapter's sample records)
so that it gets past the first checks and reaches the deep ones:

- ``Receiver.handle`` (an agency's one receiving boundary) on the area topics, the
  transfers topic (the transfer desk's rules) and the receipts topic: arbitrary bytes,
  JSON-ish values, timestamps and keys; it returns what became of the record, raises
  nothing, and its stored offset always moves past it;
- the ledger's batch path: the same, and never a batch dropped;
- ``strict_json``, ``jcs`` and ``parse_envelope``: only ``SchemaError``;
- the agreement loader (``read_agreement``) on YAML and JSON text: an agreement or a
  ``MappaError``;
- each adapter's record mapping (``to_canonical``): a message or a ``MappaError``.

``MAPPA_FUZZ_EXAMPLES`` examples per property: a few dozen in ``make test``, thousands in
``make fuzz``. Failing examples are printed as a reproduction blob.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agency_adapters.registry import ADAPTERS
from broker.agreements import agreement_for_area
from broker.agreements.template import read_agreement
from broker.crypto.encoding import jcs, strict_json
from broker.crypto.envelope import parse_envelope
from broker.deployment import Deployment
from broker.errors import MappaError, SchemaError
from broker.gateway import AgencyGateway
from broker.gateway.agency import AgencyContext
from broker.gateway.cases import CaseRegistry
from broker.gateway.handled import Handled, Handling
from broker.gateway.publish import Publisher
from broker.gateway.receive import Receiver
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.service import LedgerService
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.transfer.receiver import TransferRules
from broker.trust.provision import DataPaths, provision
from schemas.common import Role
from tests.agency_records import RECORDS
from tests.support import (
    AREA,
    PARTIES,
    POLICE,
    PROBATION,
    SPECS,
    resign,
    risk_assessment,
    signed_audit_event,
)

pytestmark = pytest.mark.fuzz
T = TypeVar("T")

EXAMPLES = int(os.environ.get("MAPPA_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
TEMPLATE = Path(__file__).resolve().parents[2] / "broker" / "data" / "isa-template.yaml"
# A partition no real record uses, so offsets set here are only the fuzzer's.
PARTITION = 7

# -- strategies --------------------------------------------------------------------------------
# Integers well past 2^53 and JSON's specials: what JCS implementations disagree on.
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53 - 1, 2**53, -(2**53), 2**60, 2**63, -(2**63) - 1]),
)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\ud800", "\udfff", "\ufeff", "\u202e", "\x00", "é" * 300, "x" * 5000]),
)
scalars = st.one_of(
    st.none(), st.booleans(), integers, st.floats(allow_nan=True, allow_infinity=True), texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Whole documents written as a careless or hostile producer might: not only valid JSON.
raw_documents = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=17, max_value=6000).map(lambda n: b'{"n": ' + b"9" * n + b"}"),
    st.integers(min_value=13, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.just(b"\xef\xbb\xbf{}"),
    st.just(b'{"a": 1, "a": 2}'),
)
timestamps = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([-1, 0, 253402300799999, 253402300800000, 2**63 - 1]),
)
keys = st.one_of(st.none(), st.binary(max_size=64))


def at_path(document: Any, path: list[int], value: Any) -> Any:
    """``document`` with the item reached by ``path`` (each step an index into the keys
    or items of a container, taken modulo its length) replaced by ``value``."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    step, rest = path[0], path[1:]
    if isinstance(document, dict):
        key = list(document)[step % len(document)]
        return {**document, key: at_path(document[key], rest, value)}
    i = step % len(document)
    return [*document[:i], at_path(document[i], rest, value), *document[i + 1 :]]


@st.composite
def mutated(draw: st.DrawFn, original: dict[str, Any]) -> Any:
    """``original`` with one part replaced, dropped or added to."""
    path = draw(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4))
    how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if how == "replace":
        return at_path(original, path, draw(json_values))
    if how == "drop":
        return at_path(original, path, None) if len(path) > 1 else {}
    return {**original, draw(st.text(max_size=10)): draw(json_values)}


def outcome(call: Callable[[], T]) -> T | MappaError:
    """What ``call`` returns, or the refusal it raises; any other exception propagates
    (and fails the property)."""
    try:
        return call()
    except MappaError as exc:
        return exc


def dumped(document: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity spelt out, surrogates escaped."""
    return json.dumps(document).encode()


# -- a deployment driven record by record, without a broker -----------------------------------
@dataclass
class Bench:
    deployment: Deployment
    police: AgencyContext
    probation: AgencyContext
    receiver: Receiver
    ledger: LedgerService
    envelope: dict[str, Any]
    event: dict[str, Any]

    def __post_init__(self) -> None:
        self._offsets = itertools.count(1)

    def record(self, topic: str, value: bytes, *, key: bytes | None, timestamp_ms: int) -> Record:
        return Record(topic, PARTITION, next(self._offsets), key, value, (), timestamp_ms)

    def area_topic(self) -> str:
        return self.deployment.topics.for_role(AREA, Role.PROBATION)


def sealed_envelope(police: AgencyContext, topic: str) -> dict[str, Any]:
    Publisher(police).publish(risk_assessment(), purpose="risk management")
    rows = police.store.unsent()
    police.store.mark_sent([r.seq for r in rows])
    value = next(r.value for r in rows if r.topic == topic)
    return strict_json(value)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("fuzz")
    passphrase = secrets.token_urlsafe(18).encode()
    directory = provision(
        DataPaths(root), SPECS, passphrase=passphrase, now=datetime.now(UTC) - timedelta(days=1)
    )
    deployment = Deployment(
        settings=Settings(data_dir=root, topic_namespace="fuzz"),
        passphrase=passphrase,
        agreements=[agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])],
    )
    police = deployment.context(POLICE)
    probation = deployment.context(PROBATION)
    receiver = Receiver(probation)
    receiver.add_rules(
        deployment.topics.transfers,
        TransferRules(probation, receiver, CaseRegistry(probation.store)),
    )
    ledger = LedgerService(
        store=LedgerStore(root / "ledger.sqlite"),
        directory=deployment.directory,
        # Never used: handle_batch reads nothing from Kafka.
        transport=cast(KafkaTransport, None),
        topic=deployment.topics.audit,
    )
    topic = deployment.topics.for_role(AREA, Role.PROBATION)
    yield Bench(
        deployment,
        police,
        probation,
        receiver,
        ledger,
        sealed_envelope(police, topic),
        signed_audit_event(police),
    )
    ledger.store.close()
    deployment.close()


def handled_and_moved_past(bench: Bench, record: Record) -> Handled:
    """The boundary's promise: an answer, no exception, the offset past the record."""
    store = bench.probation.store
    with store.transaction():
        handled = bench.receiver.handle(record)
    assert isinstance(handled, Handled)
    if handled.handling is Handling.REFUSED:
        assert handled.reason_code
    assert store.offsets()[(record.topic, PARTITION)] == record.offset + 1
    return handled


def test_the_genuine_envelope_is_delivered(bench: Bench) -> None:
    """The control: the fuzzed path delivers what it is mutated from."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    record = bench.record(bench.area_topic(), jcs(bench.envelope), key=b"k", timestamp_ms=now_ms)
    assert handled_and_moved_past(bench, record).handling is Handling.DELIVERED


def dead_letters_queued(bench: Bench) -> int:
    return bench.probation.store.outbox_counts().get(bench.deployment.topics.deadletter, 0)


def test_a_refusal_that_fails_is_made_again_plainly(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boundary's last resort: a refusal that itself fails is undone and made again
    as ``record.unprocessable``, with nothing the record claims."""
    real = bench.probation.audit.refusal
    calls: list[int] = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("2011/0456789K")
        return real(*args, **kwargs)

    monkeypatch.setattr(bench.probation.audit, "refusal", failing_once)
    before = dead_letters_queued(bench)
    record = bench.record(bench.area_topic(), b"{}", key=None, timestamp_ms=0)
    handled = handled_and_moved_past(bench, record)
    assert (handled.handling, handled.reason_code) == (Handling.REFUSED, "record.unprocessable")
    assert handled.reason == "the record could not be processed (ValueError)"
    assert len(calls) == 2
    # One dead letter: the failed refusal's was undone with it.
    assert dead_letters_queued(bench) == before + 1


def test_a_record_nothing_can_refuse_is_passed_over(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If even the plain refusal fails, the record is passed over with a log line: read
    again and again, it would stop every record behind it."""

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise ValueError

    monkeypatch.setattr(bench.probation.audit, "refusal", failing)
    before = dead_letters_queued(bench)
    record = bench.record(bench.area_topic(), b"{}", key=None, timestamp_ms=0)
    handled = handled_and_moved_past(bench, record)
    assert (handled.handling, handled.reason_code) == (Handling.REFUSED, "record.unprocessable")
    assert dead_letters_queued(bench) == before


@FUZZ
@given(data=st.data())
def test_any_record_on_any_topic_is_handled_and_passed(bench: Bench, data: st.DataObject) -> None:
    topics = bench.deployment.topics
    topic = data.draw(st.sampled_from([bench.area_topic(), topics.transfers, topics.receipts]))
    value = data.draw(
        st.one_of(
            raw_documents,
            mutated(bench.envelope).map(dumped),
            mutated(bench.envelope).map(lambda d: resigned(bench, d)),
            st.binary(min_size=1, max_size=64).map(lambda b: jcs(bench.envelope)[: len(b) * 40]),
        )
    )
    record = bench.record(topic, value, key=data.draw(keys), timestamp_ms=data.draw(timestamps))
    handled_and_moved_past(bench, record)


def resigned(bench: Bench, document: Any) -> bytes:
    """Signed again by the police's real key, as a compromised sender would; what JCS
    cannot canonicalise (and so nobody can sign) goes unsigned."""
    if not isinstance(document, dict) or not {"header", "views", "recipients"} <= set(document):
        return dumped(document)
    try:
        return resign_as_police(bench, document)
    except MappaError:
        return dumped(document)


def resign_as_police(bench: Bench, document: dict[str, Any]) -> bytes:
    world_like = _WorldKeys(bench.police)
    return resign(world_like, dict(document), POLICE)  # type: ignore[arg-type]


class _WorldKeys:
    """Just enough of ``World`` for ``tests.support.resign``: the police's keys."""

    def __init__(self, police: AgencyContext) -> None:
        self._police = police

    def gw(self, agency: str) -> Any:
        return _Gateway(self._police)


@dataclass
class _Gateway:
    ctx: AgencyContext


@FUZZ
@given(data=st.data())
def test_the_ledger_moves_past_any_record(bench: Bench, data: st.DataObject) -> None:
    values = data.draw(
        st.lists(st.one_of(raw_documents, mutated(bench.event).map(dumped)), min_size=1, max_size=3)
    )
    # A genuine event behind the hostile ones: never dropped with them.
    genuine = signed_audit_event(bench.police)
    topic = bench.deployment.topics.audit
    records = [
        bench.record(topic, v, key=None, timestamp_ms=data.draw(timestamps))
        for v in [*values, dumped(genuine)]
    ]
    bench.ledger.handle_batch(records)
    assert bench.ledger.store.offsets()[(topic, PARTITION)] == records[-1].offset + 1
    assert bench.ledger.store.entries(event_id=genuine["event"]["event_id"])


@FUZZ
@given(value=raw_documents)
def test_strict_json_refuses_with_schema_errors_only(value: bytes) -> None:
    document = outcome(lambda: strict_json(value))
    if isinstance(document, MappaError):
        assert isinstance(document, SchemaError)
        assert document.code.startswith("schema.")
    else:
        # What it takes, JCS can canonicalise.
        jcs(document)


@FUZZ
@given(document=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_jcs_refuses_with_schema_errors_only(document: dict[str, Any]) -> None:
    result = outcome(lambda: jcs(document))
    if isinstance(result, MappaError):
        assert isinstance(result, SchemaError)
        assert result.code.startswith("schema.")


@FUZZ
@given(data=st.data())
def test_the_envelope_parser_refuses_with_our_errors_only(
    bench: Bench, data: st.DataObject
) -> None:
    value = data.draw(st.one_of(raw_documents, mutated(bench.envelope).map(dumped)))
    result = outcome(lambda: parse_envelope(value))
    assert not isinstance(result, MappaError) or result.code


def template_lines() -> list[str]:
    return TEMPLATE.read_text().splitlines()


@FUZZ
@given(data=st.data())
def test_the_agreement_loader_refuses_with_our_errors_only(
    tmp_path: Path, data: st.DataObject
) -> None:
    lines = template_lines()
    where = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
    text = data.draw(
        st.one_of(
            st.text(max_size=200),
            json_values.map(json.dumps),
            st.text(max_size=60).map(lambda t: "\n".join([*lines[:where], t, *lines[where + 1 :]])),
            st.sampled_from(["a: 1\na: 2\n", "&a [*a]", "{" * 5000, "date: 2026-13-45\n"]).map(
                lambda t: "\n".join([*lines[:where], t, *lines[where + 1 :]])
            ),
        )
    )
    path = tmp_path / "agreement.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = outcome(lambda: read_agreement(path))
    assert not isinstance(result, MappaError) or result.code


@FUZZ
@given(data=st.data())
def test_every_adapter_maps_or_refuses_with_our_errors_only(data: st.DataObject) -> None:
    kind, record_type = data.draw(st.sampled_from(sorted(RECORDS)))
    sample = RECORDS[(kind, record_type)]
    record = data.draw(st.one_of(mutated(sample), json_values))
    adapter_class = ADAPTERS[kind]
    # The mapping reads only the record: the gateway is never reached.
    adapter = adapter_class(cast(AgencyGateway, _RoleOnly(adapter_class.role)))
    result = outcome(lambda: adapter.to_canonical(record))
    assert not isinstance(result, MappaError) or result.code


@dataclass
class _Entry:
    role: Role


class _RoleOnly:
    """Just enough of a gateway for an adapter's constructor: its agency's role."""

    def __init__(self, role: Role) -> None:
        self.ctx = _Ctx(_Entry(role))


@dataclass
class _Ctx:
    entry: _Entry
