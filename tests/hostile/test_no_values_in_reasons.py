"""A refusal's reason names the field and the rule, never the value.

Reasons go into API answers, audit events (kept for years in the ledger), dead letters
and logs. A PNC id or a date of birth sent in the wrong field must reach none of
them: the finding had both stored in clear in the audit ledger. Checked on the two
ways a record comes in: an agency system's record through the API, and a sealed
message on a topic.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, ValidationError

from agency_adapters.base import MAX_RECORD_REASON
from broker.api.models import ARMS_EXAMPLE
from broker.crypto.encoding import jcs
from broker.errors import MAX_REASON_CHARS, SchemaError, invalid, rule_of
from broker.gateway import AgencyGateway
from broker.gateway.handled import Handling
from schemas.common import Frozen, Role, ViewKind
from schemas.messages import derive_view
from tests.agency_records import RECORDS
from tests.hostile.test_adapter_inputs import FIELDS, record_with
from tests.support import PNC, POLICE, PROBATION, World, risk_assessment, seal_as
from tests.test_adapter_formats import adapter, gateways
from tests.test_api import Api, api

__all__ = ["api", "gateways"]  # fixtures the tests here take

# Personal data, sent where it does not belong: another person's PNC id, a date of birth.
PNC_VALUE = "2001/0123456A"
DOB_VALUE = "07/09/1971"
LONG = "Q" * 5000
SECRETS = (PNC_VALUE, DOB_VALUE, "Q" * 20, "0123456A", "07/09")


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


# -- the formatter ----------------------------------------------------------------------------


def _quotes_its_input(value: str) -> str:
    raise ValueError(f"{value} is not acceptable here")


class Probe(Frozen):
    name: Annotated[str, AfterValidator(_quotes_its_input)] = "x"
    code: Annotated[str, AfterValidator(lambda v: v)] = "x"


@pytest.mark.parametrize(
    "data",
    [
        {"name": PNC_VALUE},
        {PNC_VALUE: DOB_VALUE},
        {"code": 7, "name": DOB_VALUE},
        {"name": LONG},
    ],
)
def test_invalid_names_field_and_rule_never_the_value(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        Probe.model_validate_json(json.dumps(data))
    # pydantic's own report quotes the input: the reason we make of it must not.
    assert leaked(str(caught.value))
    error = invalid(caught.value, "probe")
    assert isinstance(error, SchemaError)
    assert not leaked(error.reason), error.reason
    assert error.reason.startswith("probe invalid at ")
    for detail in caught.value.errors():
        assert not leaked(rule_of(detail))


def test_every_reason_is_bounded() -> None:
    assert len(SchemaError("z" * 100_000).reason) <= MAX_REASON_CHARS
    assert MAX_RECORD_REASON <= MAX_REASON_CHARS


# -- adapters ---------------------------------------------------------------------------------


def adapter_cases() -> list[Any]:
    out = []
    for kind, (_, fields) in FIELDS.items():
        for field, (path, _) in fields.items():
            for value in (PNC_VALUE, DOB_VALUE, LONG):
                out.append(pytest.param(kind, path, value, id=f"{kind}-{field}-{value[:4]}"))
    return out


@pytest.mark.parametrize(("kind", "path", "value"), adapter_cases())
def test_an_adapter_refusal_never_quotes_the_value(
    gateways: dict[str, AgencyGateway], kind: str, path: tuple[str | int, ...], value: str
) -> None:
    record = record_with(kind, path, value)
    reason = reason_of(gateways, kind, record)
    # A value some field takes as it is (a PNC id is a name's letters and digits) is
    # no refusal; every refusal is checked.
    assert not leaked(reason), reason


def reason_of(gateways: dict[str, AgencyGateway], kind: str, record: dict[str, Any]) -> str:
    try:
        adapter(gateways, kind).to_canonical(record)
    except SchemaError as exc:
        return f"{exc.reason} {exc}"
    return ""


@pytest.mark.parametrize("kind", sorted(FIELDS))
def test_an_unknown_record_type_is_not_quoted(
    gateways: dict[str, AgencyGateway], kind: str
) -> None:
    a = adapter(gateways, kind)
    for value in (PNC_VALUE, LONG):
        record = copy.deepcopy(RECORDS[(kind, FIELDS[kind][0])]) | {a.record_type_field: value}
        with pytest.raises(SchemaError) as caught:
            a.to_canonical(record)
        assert not leaked(caught.value.reason), caught.value.reason
        assert a.record_type_field in caught.value.reason


def test_a_key_sent_in_a_nested_object_is_not_quoted(gateways: dict[str, AgencyGateway]) -> None:
    record = copy.deepcopy(RECORDS[("police", "ARMS")])
    record["arms"]["victims"][0][PNC_VALUE] = DOB_VALUE
    with pytest.raises(SchemaError) as caught:
        adapter(gateways, "police").to_canonical(record)
    assert not leaked(caught.value.reason), caught.value.reason
    assert "victims" in caught.value.reason
    # A code looked up in the export's own table: a value where a code belongs.
    notification = copy.deepcopy(RECORDS[("police", "NOTIFICATION")])
    notification["notification"]["type"] = PNC_VALUE
    with pytest.raises(SchemaError) as caught:
        adapter(gateways, "police").to_canonical(notification)
    assert not leaked(caught.value.reason), caught.value.reason
    assert "notification.type" in caught.value.reason


# -- through the API, into the ledger and the logs -------------------------------------------


def arms(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(ARMS_EXAMPLE)
    for path, value in changes.items():
        target = record
        *steps, last = path.split("__")
        for step in steps:
            target = target[step]
        target[last] = value
    return record


API_CASES = [
    arms(mappaCategory=PNC_VALUE),
    arms(mappaLevel=DOB_VALUE),
    arms(dob=PNC_VALUE),
    arms(dob=LONG),
    arms(surname=DOB_VALUE + "\x00"),
    arms(arms__rosh=PNC_VALUE),
    arms(arms__completed=PNC_VALUE),
    arms(recordType=PNC_VALUE),
    arms(recordType=LONG),
    arms(arms__victims=[{"name": "Jane", "relationship": "partner", PNC_VALUE: DOB_VALUE}]),
]


async def test_api_answers_ledger_and_logs_never_hold_the_values(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for record in API_CASES:
        answer = await api.submit(record)
        assert answer.status_code == 422, answer.text
        assert not leaked(answer.text), answer.text
    await api.world.sync_ledger()
    refusals = api.world.ledger.store.entries(agency=POLICE, act="refusal")
    assert len(refusals) == len(API_CASES)
    assert not leaked(json.dumps(refusals, default=str))
    assert not leaked(caplog.text)


async def test_a_message_on_a_topic_refused_without_quoting_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    body = derive_view(risk_assessment(), ViewKind.FULL)
    body["subject"][PNC_VALUE] = DOB_VALUE
    doc = seal_as(world, POLICE, (PROBATION,), topic, body=body)
    await world.transport.send(topic, jcs(doc), key=b"x")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    [refusal] = world.of(PROBATION, Handling.REFUSED)
    assert refusal.reason_code == "schema.invalid-body"
    assert not leaked(refusal.reason or ""), refusal.reason
    assert "subject" in (refusal.reason or "")
    await world.sync_ledger()
    entries = world.ledger.store.entries(agency=PROBATION, act="refusal")
    assert entries
    assert not leaked(json.dumps(entries, default=str))
    dead = await world.read(world.deployment.topics.deadletter, 1)
    assert dead
    for record in dead:
        assert not leaked(repr(record.headers))
    assert not leaked(caplog.text)
    assert PNC not in (refusal.reason or "")
