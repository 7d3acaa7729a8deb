"""Every adapter kind: its agency's records to canonical messages and back (no broker).

The adapters run on real gateways of a provisioned deployment whose transport is
never started: mapping needs the agency's identity, not Kafka.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agency_adapters.base import (
    AgencyAdapter,
    detail,
    items,
    parse_csv,
    to_csv,
    uk_date,
    yes,
)
from agency_adapters.registry import ADAPTERS, DEFAULT_KIND, adapter_for, kind_of
from broker.agreements import agreement_for_area, template_data
from broker.deployment import Deployment
from broker.errors import SchemaError
from broker.files.spreadsheet import neutral_cell
from broker.gateway import AgencyGateway
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from broker.trust.provision import DEMO_AREA, DEMO_PARTIES, DEMO_ROSTER, DataPaths, provision
from schemas.common import Role, ViewKind, from_data
from schemas.messages import CATALOGUE, MessageBody, derive_view, view_model
from schemas.messages.base import sensitivity_of
from schemas.messages.examples import example, example_data
from tests.agency_records import RECORDS
from tests.record_formats import DOC, render

KINDS = sorted(ADAPTERS)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AgencyGateway]]:
    root: Path = tmp_path_factory.mktemp("formats")
    passphrase = secrets.token_urlsafe(18).encode()
    directory = provision(
        DataPaths(root),
        DEMO_ROSTER,
        passphrase=passphrase,
        now=datetime.now(UTC) - timedelta(days=1),
    )
    deployment = Deployment(
        settings=Settings(data_dir=root, topic_namespace="formats"),
        passphrase=passphrase,
        agreements=[agreement_for_area(DEMO_AREA, [directory.agency(a) for a in DEMO_PARTIES])],
    )
    # Never started: these tests only translate records.
    idle = KafkaTransport(deployment.settings, bootstrap="127.0.0.1:9")
    by_kind: dict[str, AgencyGateway] = {}
    for spec in DEMO_ROSTER:
        kind = kind_of(spec.agency_id, spec.role)
        if kind not in by_kind:
            by_kind[kind] = AgencyGateway(deployment.context(spec.agency_id), idle)
    yield by_kind
    deployment.close()


def adapter(gateways: dict[str, AgencyGateway], kind: str) -> AgencyAdapter:
    return adapter_for(gateways[kind])


def test_every_kind_is_in_the_roster_and_has_sample_records(
    gateways: dict[str, AgencyGateway],
) -> None:
    assert set(gateways) == set(ADAPTERS)
    for kind, cls in ADAPTERS.items():
        assert cls.record_types, f"{kind} publishes nothing"
        for code in cls.record_types:
            assert (kind, code) in RECORDS, f"no sample record for {kind} {code}"


def test_every_record_type_maps_to_a_type_its_role_may_publish() -> None:
    publishers = {p["message_type"]: set(p["roles"]) for p in template_data()["publishers"]}
    for kind, cls in ADAPTERS.items():
        for code, message_type in cls.publishes().items():
            assert cls.role.value in publishers[message_type], f"{kind} {code}"


@pytest.mark.parametrize(("kind", "code"), sorted(RECORDS))
def test_each_record_maps_to_its_message_and_back(
    gateways: dict[str, AgencyGateway], kind: str, code: str
) -> None:
    a = adapter(gateways, kind)
    record = RECORDS[(kind, code)]
    body = a.to_canonical(record)
    assert body.message_type == a.publishes()[code]
    assert body.area == DEMO_AREA
    pnc = body.subject.pnc_id
    assert pnc in json.dumps(record)
    back = json.dumps(a.from_canonical(body, ViewKind.FULL))
    assert pnc in back
    # Everything the message says reaches the agency's own format.
    missing = [v for v in leaves(detail(body)) if v not in back]
    assert not missing


def leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]


CHECKS: dict[tuple[str, str], dict[str, Any]] = {
    ("police", "ARMS"): {"risk_of_serious_harm": "high", "risk_to": ("children", "known-adult")},
    ("police", "NOTIFICATION"): {"notification": "foreign-travel", "no_fixed_abode": False},
    ("police", "BREACH_OUTCOME"): {"outcome": "conviction", "outcome_date": "2027-02-14"},
    ("police", "CIVIL_ORDER"): {"order": "shpo", "change": "varied"},
    ("police", "DISCLOSURE"): {"decision": "disclose", "recipient_type": "parent-or-carer"},
    ("probation", "OASYS"): {
        "assessed_on": "2026-11-02",
        "risk_of_serious_harm": "high",
        "risk_to": ("children", "known-adult"),
    },
    ("probation", "LICENCE"): {"change": "made", "electronic_monitoring": True},
    ("probation", "RECALL"): {"event": "recall", "recall_type": "fixed-term"},
    ("probation", "TRANSFER"): {"stage": "accepted", "to_area": "west-midlands"},
    ("prison", "RECEPTION"): {"event": "returned-to-custody", "recall_type": "standard"},
    ("prison", "SENTENCE"): {"basis": "notification-requirements"},
    ("coordinator", "LEVEL"): {"effective_date": "2026-06-20", "level": 2},
    ("coordinator", "MINUTES"): {"meeting_kind": "initial", "next_meeting": "2026-08-20"},
    ("youth-offending", "ELIGIBILITY"): {"basis": "violent-sentence-12-months-or-more"},
    ("health", "HOSPITAL_ORDER"): {"basis": "hospital-or-guardianship-order", "category": 2},
    ("health", "MAPPA_REFERRAL"): {"requested_level": 3, "risk_of_serious_harm": "very-high"},
    ("adult-social-care", "MAPPA_REFERRAL"): {"health_notes": None, "requested_level": 2},
    ("electronic-monitoring", "ESCALATION"): {"requested_level": 3},
    ("police", "EXIT"): {"reason": "deceased", "exit_date": "2027-09-01"},
    ("police", "RMP"): {"review_by": "2026-10-01"},
    ("probation", "REFERRAL"): {"requested_level": 2, "risk_of_serious_harm": "high"},
    ("probation", "TERMINATION"): {"reason": "licence-expired"},
    ("prison", "LICENCE"): {"change": "made", "approved_premises": True},
    ("coordinator", "DISCLOSURE"): {"decision": "do-not-disclose", "what_disclosed": None},
    ("coordinator", "TRANSFER"): {"stage": "requested", "receiving_lead": None},
}


@pytest.mark.parametrize(("kind", "code"), sorted(CHECKS))
def test_agency_codes_become_canonical_values(
    gateways: dict[str, AgencyGateway], kind: str, code: str
) -> None:
    body = adapter(gateways, kind).to_canonical(RECORDS[(kind, code)])
    data = body.model_dump(mode="json")
    for name, expected in CHECKS[(kind, code)].items():
        got = data[name]
        assert (tuple(got) if isinstance(got, list) else got) == expected, name


def test_prison_names_and_em_violations_are_tidied(gateways: dict[str, AgencyGateway]) -> None:
    body = adapter(gateways, "prison").to_canonical(RECORDS[("prison", "RELEASE")])
    assert body.subject.name == "Alex Sample"
    assert body.subject.prison_number == "A1234BC"
    em = adapter(gateways, "electronic-monitoring").to_canonical(
        RECORDS[("electronic-monitoring", "ESCALATION")]
    )
    assert em.model_dump()["reason"] == (
        "Monitoring violations: exclusion zone entry 08/01/2027, curfew absence 09/01/2027"
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("message_type", sorted(CATALOGUE))
def test_received_lesser_views_carry_no_victim_detail(
    gateways: dict[str, AgencyGateway], kind: str, message_type: str
) -> None:
    message = example(message_type)
    model = CATALOGUE[message_type]
    for view in (ViewKind.REDACTED, ViewKind.SUMMARY):
        body = view_model(model, view).model_validate_json(json.dumps(derive_view(message, view)))
        out = json.dumps(adapter(gateways, kind).from_canonical(body, view))
        assert message.subject.pnc_id in out
        assert "Jane Witness" not in out
        assert "CHIS 4411" not in out


def test_csv_kinds_render_flat_string_rows(gateways: dict[str, AgencyGateway]) -> None:
    body = example("licence-conditions-set")
    for kind in ("adult-social-care", "social-landlord", "jobcentre", "education"):
        row = adapter(gateways, kind).from_canonical(body, ViewKind.FULL)
        assert all(isinstance(v, str) for v in row.values()), kind
        assert parse_csv(to_csv([row])) == [row]
    em = adapter(gateways, "electronic-monitoring").from_canonical(body, ViewKind.REDACTED)
    assert em["RecordType"] == "MONITORING_ORDER"
    assert (em["CurfewStart"], em["CurfewEnd"], em["TagRequired"]) == ("19:00", "07:00", "Y")
    assert em["Zones"] == "Stafford town centre"
    other = adapter(gateways, "electronic-monitoring").from_canonical(
        example("release-scheduled"), ViewKind.REDACTED
    )
    assert other["RecordType"] == "NOTICE"


def test_csv_export_round_trip_to_canonical(gateways: dict[str, AgencyGateway]) -> None:
    row = RECORDS[("jobcentre", "MAPPAREF")]
    [parsed] = parse_csv(to_csv([row]))
    body = adapter(gateways, "jobcentre").to_canonical(parsed)
    assert body.message_type == "level-referral"
    assert body.model_dump()["referrer"] == "Work coach, Stafford Jobcentre"


def broken(kind: str, code: str, path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    record = copy.deepcopy(RECORDS[(kind, code)])
    target: Any = record
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("kind", "record", "fragment"),
    [
        (
            "police",
            broken("police", "NOTIFICATION", ("notification", "type"), "X"),
            "notification.type",
        ),
        ("police", broken("police", "ARMS", ("arms",), KeyError), "at arms: required"),
        (
            "police",
            broken("police", "ARMS", ("recordType",), "ARSE"),
            "'recordType' is not a record",
        ),
        ("probation", broken("probation", "OASYS", ("mappa", "level"), "2"), "like L1"),
        (
            "probation",
            broken("probation", "OASYS", ("oasys",), {"completedDate": "2026-01-01"}),
            "at least one group",
        ),
        (
            "probation",
            broken("probation", "OASYS", ("oasys", "riskToChildren"), "BAD"),
            "riskToChildren",
        ),
        ("probation", broken("probation", "OASYS", ("oasys", "completedDate"), "26"), "ISO"),
        (
            "probation",
            broken("probation", "LICENCE", ("licence", "endDate"), "2026-01-01"),
            "after",
        ),
        ("prison", broken("prison", "RELEASE", ("eventType",), KeyError), "no 'eventType'"),
        ("prison", broken("prison", "RELEASE", ("pncNumber",), "123"), "subject.pnc_id"),
        ("coordinator", broken("coordinator", "LEVEL", ("dob",), "1980-03-14"), "dd/mm/yyyy"),
        ("youth-offending", broken("youth-offending", "REFERRAL", ("mappa",), []), "wrong type"),
        ("health", broken("health", "HOSPITAL_ORDER", ("mappa", "category"), 1), "category 2"),
        (
            "housing",
            broken("housing", "MAPPA_REFERRAL", ("referral", "levelRequested"), 1),
            "2 or 3",
        ),
        (
            "adult-social-care",
            broken("adult-social-care", "MAPPA_REFERRAL", ("MappaLevel",), "two"),
            "MappaLevel: expected a whole number",
        ),
        (
            "social-landlord",
            broken("social-landlord", "MAPPA A", ("Risk",), "SEVERE"),
            "risk_of_serious_harm",
        ),
        ("jobcentre", broken("jobcentre", "MAPPAREF", ("DOB",), "14-03-1980"), "dd/mm/yyyy"),
        (
            "education",
            broken("education", "MAPPA_REFERRAL", ("PNC",), KeyError),
            "at PNC: required",
        ),
        (
            "electronic-monitoring",
            broken("electronic-monitoring", "ESCALATION", ("Violations",), " ; "),
            "at least one violation",
        ),
        (
            "immigration",
            broken("immigration", "MAPPA_REFERRAL", ("referral", "risk"), None),
            "referral.risk: expected an agency code",
        ),
        (
            "childrens-social-care",
            broken(
                "childrens-social-care", "MAPPA_REFERRAL", ("form", "dateReferred"), "01/06/2026"
            ),
            "referred_on",
        ),
    ],
)
def test_malformed_records_get_a_clear_schema_error(
    gateways: dict[str, AgencyGateway], kind: str, record: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(SchemaError, match=fragment) as caught:
        adapter(gateways, kind).to_canonical(record)
    assert caught.value.code.startswith(("adapter.", "schema."))


INVALID, BAD_DATE = "adapter.record-invalid", "schema.invalid"


def refusal(
    kind: str,
    code: str,
    path: tuple[str | int, ...],
    value: Any,
    fragment: str,
    *,
    error: str = INVALID,
) -> Any:
    """A case: a ``kind`` record broken at ``path``, what its refusal names, and its code."""
    record = broken(kind, code, path, value)
    return pytest.param(kind, record, fragment, error, id=f"{kind}-{'.'.join(map(str, path))}")


def bad_date(kind: str, code: str, path: tuple[str | int, ...], value: Any) -> Any:
    """A case: a ``kind`` record with a date at ``path`` that is not dd/mm/yyyy."""
    return refusal(kind, code, path, value, "dd/mm/yyyy", error=BAD_DATE)


@pytest.mark.parametrize(
    ("kind", "record", "fragment", "code"),
    [
        # A dotted path whose object is missing, or is not an object.
        refusal("health", "MAPPA_REFERRAL", ("referral",), KeyError, "at referral: required"),
        refusal("police", "REFERRAL", ("referral",), "x", "wrong type"),
        refusal("prison", "RMP", ("plan",), KeyError, "at plan: required"),
        refusal("probation", "TERMINATION", ("termination",), KeyError, "at termination: required"),
        # An optional part that the record does carry must still be what the message takes.
        refusal("prison", "REFERRAL", ("referral", "releaseDate"), "1/12/2026", "release_or"),
        refusal("youth-offending", "REFERRAL", ("referral", "victims"), None, "victims"),
        # The other references an export keeps for the person are required.
        refusal("probation", "REFERRAL", ("crn",), KeyError, "at crn: required"),
        refusal("prison", "REFERRAL", ("offenderNo",), KeyError, "at offenderNo: required"),
        # A name kept in parts needs each part; a NOMIS name in capitals must be text.
        refusal("immigration", "MAPPA_REFERRAL", ("givenNames",), KeyError, "at givenNames"),
        refusal("prison", "REFERRAL", ("lastName",), 7, "lastName: expected a name as text"),
        # nDelius register codes: the category, and the level a referral asks for.
        refusal("probation", "REFERRAL", ("mappa", "category"), "1", "like M1"),
        refusal("probation", "REFERRAL", ("referral", "levelRequested"), 2, "like L1"),
        # Each export's own date format: parsed where dd/mm/yyyy, checked where ISO.
        bad_date("youth-offending", "REFERRAL", ("referral", "date"), "2026-06-01"),
        bad_date("housing", "MAPPA_REFERRAL", ("dateOfBirth",), "1980-03-14"),
        refusal("immigration", "MAPPA_REFERRAL", ("referral", "date"), "1/6/2026", "referred_on"),
        bad_date("police", "EXIT", ("exit", "date"), "2027-09-01"),
        # A plan's actions are keyed alike in every export, with due dates its way.
        refusal("police", "RMP", ("plan", "actions", 0, "heading"), KeyError, "actions.0.heading"),
        bad_date("police", "RMP", ("plan", "actions", 0, "due"), "2026-08-01"),
        refusal("probation", "RMP", ("plan", "actions"), 5, "wrong type"),
        # A code that is not one of the message's values.
        refusal("probation", "TERMINATION", ("termination", "reason"), "RETIRED", "reason"),
        # A part with its own reading still needs its column.
        refusal("electronic-monitoring", "ESCALATION", ("Violations",), KeyError, "at Violations"),
    ],
)
def test_mapping_tables_refuse_what_they_cannot_read(
    gateways: dict[str, AgencyGateway], kind: str, record: dict[str, Any], fragment: str, code: str
) -> None:
    with pytest.raises(SchemaError, match=fragment) as caught:
        adapter(gateways, kind).to_canonical(record)
    assert caught.value.code == code


def test_parts_a_record_leaves_out_are_none(gateways: dict[str, AgencyGateway]) -> None:
    police = broken("police", "REFERRAL", ("visorRef",), KeyError)
    del police["referral"]["intelSource"]
    data = adapter(gateways, "police").to_canonical(police).model_dump(mode="json")
    assert data["subject"]["visor_ref"] is None
    assert (data["intelligence_source"], data["victims"]) == (None, [])
    # A CSV row cannot leave a cell out: a blank optional cell, or no such column, is none.
    for value in ("", KeyError):
        row = broken("adult-social-care", "MAPPA_REFERRAL", ("HealthNotes",), value)
        assert (
            adapter(gateways, "adult-social-care").to_canonical(row).model_dump()["health_notes"]
            is None
        )
    exit_ = broken("probation", "TERMINATION", ("termination", "continuing"), KeyError)
    assert (
        adapter(gateways, "probation").to_canonical(exit_).model_dump()["continuing_arrangements"]
        is None
    )
    # NOMIS records no status for a plan's actions: each takes the message's own.
    plan = broken("prison", "RMP", ("plan", "actions", 0, "status"), "DONE")
    [action] = adapter(gateways, "prison").to_canonical(plan).model_dump(mode="json")["actions"]
    assert action["status"] == "open"


def test_a_record_that_is_not_an_object_is_refused(gateways: dict[str, AgencyGateway]) -> None:
    with pytest.raises(SchemaError, match="must be an object, not list"):
        adapter(gateways, "police").to_canonical([1, 2])  # type: ignore[arg-type]


def test_an_adapter_without_record_types_publishes_nothing(
    gateways: dict[str, AgencyGateway],
) -> None:
    class ReceiveOnly(AgencyAdapter):
        role = Role.HOUSING
        kind = "receive-only"
        system = "a read-only system"

        def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
            return {}

    with pytest.raises(SchemaError, match="not published by this adapter"):
        ReceiveOnly(gateways["housing"]).to_canonical({"recordType": "X"})


def test_registry_finds_the_kind_from_the_agency_id(gateways: dict[str, AgencyGateway]) -> None:
    assert kind_of("social-landlord.staffs-homes", Role.HOUSING) == "social-landlord"
    assert kind_of("housing.stoke-on-trent", Role.HOUSING) == "housing"
    # A prefix that names no kind, or a kind of another role, falls back to the role's default.
    assert kind_of("council.stoke", Role.SOCIAL_CARE) == "childrens-social-care"
    assert kind_of("police.rogue", Role.HEALTH) == "health"
    assert set(DEFAULT_KIND) == set(Role)
    for kind, gw in gateways.items():
        assert adapter_for(gw).kind == kind
    assert adapter_for(gateways["adult-social-care"], "childrens-social-care").kind == (
        "childrens-social-care"
    )
    with pytest.raises(SchemaError, match="no adapter kind 'nhs'"):
        adapter_for(gateways["health"], "nhs")
    with pytest.raises(SchemaError, match="for police agencies, not health"):
        adapter_for(gateways["health"], "police")


def test_csv_and_cell_helpers_refuse_what_they_cannot_read() -> None:
    assert parse_csv("A,B\n1,2\n") == [{"A": "1", "B": "2"}]
    with pytest.raises(SchemaError, match="line 3 has a different number of cells"):
        parse_csv("A,B\n1,2\n1,2,3\n")
    with pytest.raises(SchemaError, match="line 2 has a different number of cells"):
        parse_csv("A,B\n1\n")
    with pytest.raises(SchemaError, match="unreadable"):
        parse_csv('A,B\n"1,2\n')
    with pytest.raises(SchemaError, match="larger than"):
        parse_csv("A\n" + "x" * (4 * 1024 * 1024))
    assert to_csv([]) == ""
    assert items(" a ; ;b") == ["a", "b"]
    assert items(None) == []
    assert (yes("Y"), yes("no"), yes(True), yes(None)) == (True, False, True, False)
    with pytest.raises(SchemaError, match="Y/N"):
        yes("maybe")
    assert uk_date("2/11/2026") == "2026-11-02"


def test_record_formats_document_is_current(gateways: dict[str, AgencyGateway]) -> None:
    adapters = {kind: adapter(gateways, kind) for kind in ADAPTERS}
    assert render(adapters) == DOC.read_text(), "run `python -m tests.record_formats`"


def test_each_adapter_maps_every_type_its_role_may_publish() -> None:
    publishers = {p["message_type"]: set(p["roles"]) for p in template_data()["publishers"]}
    for kind, cls in ADAPTERS.items():
        may = {t for t, roles in publishers.items() if cls.role.value in roles}
        assert set(cls.publishes().values()) == may, kind


CELL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\x00"),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[A-Za-z][A-Za-z ]{0,11}", fullmatch=True),
        min_size=1,
        max_size=6,
        unique=True,
    ),
    st.data(),
)
def test_csv_rows_survive_export_and_import(header: list[str], data: st.DataObject) -> None:
    rows = data.draw(
        st.lists(st.fixed_dictionaries(dict.fromkeys(header, CELL_TEXT)), min_size=1, max_size=5)
    )
    # A row of blanks only is the one thing a CSV line cannot tell from "no row".
    rows = [r for r in rows if any(r.values())] or [dict.fromkeys(header, "x")]
    # Cells a spreadsheet would run as formulas come back quoted (tests/hostile/
    # test_csv_injection.py); every other cell comes back as it went.
    assert parse_csv(to_csv(rows)) == [{k: neutral_cell(v) for k, v in r.items()} for r in rows]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(CATALOGUE)), st.text(min_size=8, max_size=30).map(str.strip))
def test_a_sensitive_value_never_reaches_a_lesser_view(message_type: str, secret: str) -> None:
    """Whatever a sensitive text field holds, the redacted and summary views never carry it."""
    model = CATALOGUE[message_type]
    data = example_data(message_type)
    planted = False
    for name in model.model_fields:
        if sensitivity_of(model, name) and isinstance(data.get(name), str):
            data[name] = f"<{secret}>"
            planted = True
    if not planted or not secret:
        return
    message = from_data(model, data)
    for view in (ViewKind.REDACTED, ViewKind.SUMMARY):
        assert not [v for v in leaves(derive_view(message, view)) if f"<{secret}>" in v]
    assert f"<{secret}>" in leaves(derive_view(message, ViewKind.FULL))
