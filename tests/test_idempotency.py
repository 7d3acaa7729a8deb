"""Idempotent submission: a retried request with its Idempotency-Key gets the first answer
and publishes nothing twice, on a real broker; a key reused for another request, or a
malformed one, is refused; the key table's retention and pruning, without a broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.api.backend import ApiBackend, RecordAdapter, ServedAgency, running
from broker.api.compose import application
from broker.api.credentials import CredentialKind
from broker.api.idempotency import MAX_KEY_CHARS, fingerprint, parse_key
from broker.api.models import SubmitRecord, Submitted
from broker.errors import SchemaError
from broker.gateway.handled import Handling
from broker.gateway.requests import PRUNE_BATCH, RETENTION, KeyTaken
from broker.gateway.store import AgencyStore
from schemas.common import ViewKind
from schemas.messages import MessageBody
from tests.support import POLICE, PROBATION
from tests.test_api import Api, api, arms_record

__all__ = ["api"]

URL = f"/v1/agencies/{POLICE}/records"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    return {"record": arms_record(), "purpose": "risk management"} | (changes)


async def post(api: Api, key: str | bytes | None, payload: Mapping[str, Any]) -> httpx.Response:
    headers = [(k.encode(), v.encode()) for k, v in api.auth(POLICE).items()]
    if key is not None:
        headers.append((b"Idempotency-Key", key if isinstance(key, bytes) else key.encode()))
    return await api.client.post(URL, json=payload, headers=headers)


def queued(api: Api) -> dict[str, int]:
    """Every record police's outbox holds, per topic: envelopes and audit events alike."""
    return api.world.gw(POLICE).ctx.store.outbox_counts()


async def test_a_retry_gets_the_first_answer_and_publishes_once(api: Api) -> None:
    key = str(uuid.uuid4())
    first = await post(api, key, body())
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = queued(api)
    # The draft's String form and the bare key are the same key.
    for sent_as in (key, f'"{key}"'):
        again = await post(api, sent_as, body())
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert first.json()["relayed"] is True
    assert queued(api) == after_first
    # Each recipient got it once.
    await api.world.pump(lambda: bool(api.world.delivered(PROBATION)))
    await api.world.pump_quiet()
    assert [h.message_id for h in api.world.delivered(PROBATION)] == [first.json()["message_id"]]
    # Without a key, the same request is another publication.
    other = await post(api, None, body())
    assert other.status_code == 201
    assert other.json()["message_id"] != first.json()["message_id"]


async def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    key = "order-17"
    assert (await post(api, key, body())).status_code == 201
    before = queued(api)
    for changed in (
        body(purpose="public protection"),
        body(record=arms_record(mappaLevel=3)),
    ):
        r = await post(api, key, changed)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "request.idempotency-key-reused"
    # A system that rotated its token and retries makes the same request.
    api.tokens["police-2"] = api.credentials.issue(
        CredentialKind.AGENCY, POLICE, now=datetime.now(UTC)
    ).token
    headers = api.auth("police-2") | {"Idempotency-Key": key}
    again = await api.client.post(URL, json=body(), headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert queued(api) == before


async def test_a_malformed_key_is_a_400_before_anything_is_done(api: Api) -> None:
    before = queued(api)
    for bad in ("", "two words", '"unterminated', '"bad \\n escape"', "k" * 256, b"cl\xc3\xa9"):
        r = await post(api, bad, body())
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"] == "request.idempotency-key-invalid"
    twice = await api.client.post(
        URL,
        json=body(),
        headers=[*api.auth(POLICE).items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    )
    assert (twice.status_code, twice.json()["error"]) == (400, "request.idempotency-key-invalid")
    assert queued(api) == before
    # A credential is checked first: a stranger learns nothing about keys.
    r = await api.client.post(URL, json=body(), headers={"Idempotency-Key": ""})
    assert r.status_code == 401


async def test_a_refused_submission_does_not_take_its_key(api: Api) -> None:
    key = "retry-after-fixing-the-record"
    refused = await post(api, key, body(record=arms_record(mappaCategory="one")))
    assert (refused.status_code, refused.json()["error"]) == (422, "adapter.record-invalid")
    fixed = await post(api, key, body())
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers


class Racing:
    """The police adapter, except that another request with the same key (from a second
    server on the same store) commits its answer while this one maps its record."""

    def __init__(self, inner: RecordAdapter, race: Callable[[], None]) -> None:
        self._inner = inner
        self._race = race

    @property
    def system(self) -> str:
        return self._inner.system

    def to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        self._race()
        return self._inner.to_canonical(record)

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return self._inner.from_canonical(body, view)


@pytest.mark.parametrize("same_request", [True, False])
async def test_two_requests_with_one_key_never_both_publish(api: Api, same_request: bool) -> None:
    key = f"raced-{same_request}"
    served = api.app.state.backend.agencies[POLICE]
    store = served.gateway.ctx.store
    theirs = body() if same_request else body(purpose="another purpose")
    answer = Submitted(
        message_id=str(uuid.uuid4()),
        message_type="risk-assessment",
        subject_ref="ab" * 32,
        disclosures=[],
        topics=[],
        relayed=True,
    )

    def race() -> None:
        other = AgencyStore(store.path)
        try:
            with other.transaction():
                other.requests.remember(
                    POLICE,
                    key,
                    fingerprint=fingerprint(SubmitRecord.model_validate(theirs), None),
                    answer=answer.model_dump_json(),
                    now=datetime.now(UTC),
                )
        finally:
            other.close()

    backend = ApiBackend(
        agencies={POLICE: ServedAgency(served.gateway, Racing(served.adapter, race))},
        credentials=api.credentials,
    )
    app = application(running(backend))
    before = queued(api)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        r = await client.post(
            URL, json=body(), headers={**api.auth(POLICE), "Idempotency-Key": key}
        )
    if same_request:
        assert r.status_code == 201, r.text
        assert r.headers["idempotent-replayed"] == "true"
        assert r.json() == answer.model_dump(mode="json")
    else:
        assert (r.status_code, r.json()["error"]) == (422, "request.idempotency-key-reused")
    # This request's envelopes and audit events rolled back with its publication.
    assert queued(api) == before
    await api.world.pump_quiet()
    assert not api.world.of(PROBATION, Handling.DELIVERED)


def test_a_key_is_the_header_value_bare_or_as_a_quoted_string() -> None:
    assert parse_key("8e03978e-40d5-43e8-bc93-6894a57f9324") == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key('"a key with spaces"') == "a key with spaces"
    assert parse_key(r'"a \"quoted\" \\ key"') == 'a "quoted" \\ key'
    assert parse_key("k" * MAX_KEY_CHARS) == "k" * MAX_KEY_CHARS
    assert parse_key(f'"{"k" * MAX_KEY_CHARS}"') == "k" * MAX_KEY_CHARS
    for bad in (
        "",
        '"',
        '""',
        "k" * (MAX_KEY_CHARS + 1),
        f'"{"k" * (MAX_KEY_CHARS + 1)}"',
        "a b",
        '"abc',
        'ab"',
        'a"b',
        '"a"b"',
        r'"a\nb"',
        "clé",
        "tab\there",
        "nul\x00",
        "line\n",
    ):
        with pytest.raises(SchemaError) as caught:
            parse_key(bad)
        assert caught.value.code == "request.idempotency-key-invalid", bad


def test_the_fingerprint_is_of_the_request_not_its_spelling() -> None:
    one = SubmitRecord.model_validate({"purpose": "p", "record": {"a": 1, "b": [1, 2]}})
    same = SubmitRecord.model_validate({"record": {"b": [1, 2], "a": 1}, "purpose": "p"})
    assert fingerprint(one, None) == fingerprint(same, None)
    for other in (
        {"purpose": "p", "record": {"a": 1, "b": [2, 1]}},
        {"purpose": "q", "record": {"a": 1, "b": [1, 2]}},
    ):
        assert fingerprint(SubmitRecord.model_validate(other), None) != fingerprint(one, None)
    # The same body for another person, or for none, is another request.
    assert (
        len({fingerprint(one, None), fingerprint(one, "h.officer"), fingerprint(one, "h.other")})
        == 3
    )
    # What RFC 8785 would refuse still has a fingerprint: the adapter judges the record.
    odd = SubmitRecord.model_validate({"purpose": "p", "record": {"n": 2**64, "s": "\ud800"}})
    assert len(fingerprint(odd, None)) == 64


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = AgencyStore(tmp_path / "agency.sqlite")
    yield s
    s.close()


def remember(store: AgencyStore, key: str, at: datetime, agency: str = POLICE) -> None:
    with store.transaction():
        store.requests.remember(agency, key, fingerprint="f", answer=f'"{key}"', now=at)


def test_keys_are_kept_for_the_retention_then_forgotten(store: AgencyStore) -> None:
    requests = store.requests
    remember(store, "k", T0)
    found = requests.find(POLICE, "k", now=T0 + RETENTION)
    assert found is not None
    assert (found.fingerprint, found.answer) == ("f", '"k"')
    with pytest.raises(KeyTaken) as taken:
        remember(store, "k", T0 + timedelta(hours=1))
    assert taken.value.answered == found
    # Keys are per agency.
    assert requests.find(PROBATION, "k", now=T0) is None
    remember(store, "k", T0, agency=PROBATION)
    # Past the retention the key is free again.
    later = T0 + RETENTION + timedelta(seconds=1)
    assert requests.find(POLICE, "k", now=later) is None
    remember(store, "k", later)
    assert requests.find(POLICE, "k", now=later) is not None
    with pytest.raises(RuntimeError):
        requests.remember(POLICE, "x", fingerprint="f", answer="{}", now=T0)


def test_each_new_key_prunes_a_bounded_batch_of_expired_ones(store: AgencyStore) -> None:
    old = [f"old-{n}" for n in range(PRUNE_BATCH + PRUNE_BATCH // 2)]
    for key in old:
        remember(store, key, T0)
    later = T0 + RETENTION + timedelta(minutes=1)

    def kept() -> int:
        return sum(store.requests.find(POLICE, k, now=T0) is not None for k in old)

    remember(store, "new-1", later)
    assert kept() == PRUNE_BATCH // 2
    remember(store, "new-2", later)
    assert kept() == 0
    assert store.requests.find(POLICE, "new-1", now=later) is not None
