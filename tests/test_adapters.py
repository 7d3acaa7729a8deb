"""Agency record formats to canonical messages and back, on a real broker."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from agency_adapters.base import parse_csv, to_csv, uk_date
from agency_adapters.housing import HousingAdapter
from agency_adapters.police import PoliceAdapter
from agency_adapters.prison import PrisonAdapter
from agency_adapters.probation import ProbationAdapter
from agency_adapters.registry import adapter_for
from broker.cli.demo.scenario import ARMS_RECORD
from broker.errors import PolicyDenied, SchemaError
from broker.gateway.handled import Handling
from broker.kafka.transport import KafkaTransport
from broker.trust.provision import DEMO_PARTIES, DEMO_ROSTER
from tests.agency_records import RECORDS
from tests.brokers import tansu
from tests.support import HOUSING, POLICE, PRISON, PROBATION, World, build_world


def arms(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(ARMS_RECORD)
    record.update(changes)
    return record


async def test_police_record_reaches_each_agency_in_its_own_format(world: World) -> None:
    result = await PoliceAdapter(world.gw(POLICE)).submit(
        arms(), purpose="risk management", user="ppu.1"
    )
    await world.pump(
        lambda: all(world.of(a, Handling.DELIVERED) for a in (PROBATION, PRISON, HOUSING))
    )
    why = "MAPPA level 2 meeting preparation"
    probation = await ProbationAdapter(world.gw(PROBATION)).open(
        result.message_id, user="po.2", justification=why
    )
    assert probation["contactType"] == "MAPPA_RISK"
    assert probation["mappa"] == {
        "category": "M1",
        "level": "L2",
    }
    assert probation["detail"]["victims"][0]["name"] == "Jane Witness"
    prison = await PrisonAdapter(world.gw(PRISON)).open(
        result.message_id, user="omu.3", justification=why
    )
    assert prison["alertCode"] == "MAPPA"
    assert prison["accessLevel"] == "full"
    housing = await HousingAdapter(world.gw(HOUSING)).open(
        result.message_id, user="ho.4", justification=why
    )
    assert housing["view"] == "redacted"
    assert housing["policeRef"] == ARMS_RECORD["pnc"]
    assert "victims" not in housing["notice"]
    assert "intelligence_source" not in housing["notice"]


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"pnc": "x"}, "required field missing"),
        (arms(pnc="not-a-pnc"), "subject.pnc_id"),
        (arms(mappaCategory=9), "category"),
        (arms(dob="1980-03-14"), "dd/mm/yyyy"),
    ],
)
async def test_malformed_records_are_refused_with_the_field_named(
    world: World, record: dict[str, Any], fragment: str
) -> None:
    police = PoliceAdapter(world.gw(POLICE))
    with pytest.raises(SchemaError, match=fragment):
        await police.submit(record, purpose="risk management")
    assert not world.gw(POLICE).ctx.store.unsent()  # nothing half-written


async def test_adapter_for_the_wrong_agency_kind_is_refused(world: World) -> None:
    with pytest.raises(SchemaError, match="for police agencies"):
        PoliceAdapter(world.gw(HOUSING))


async def test_an_adapter_refuses_another_systems_records(world: World) -> None:
    with pytest.raises(SchemaError, match="record has no 'caseType'"):
        await HousingAdapter(world.gw(HOUSING)).submit(arms(), purpose="x")
    assert not world.gw(HOUSING).ctx.store.unsent()


async def test_consultation_needs_a_justification_and_is_audited(world: World) -> None:
    result = await PoliceAdapter(world.gw(POLICE)).submit(arms(), purpose="risk management")
    await world.pump(lambda: bool(world.of(HOUSING, Handling.DELIVERED)))
    housing = HousingAdapter(world.gw(HOUSING))
    with pytest.raises(PolicyDenied, match="justification"):
        await housing.open(result.message_id, user="ho.4", justification="  ")
    with pytest.raises(SchemaError, match="no message"):
        await housing.open(
            "00000000-0000-4000-8000-000000000000",
            user="ho.4",
            justification="checking a case file",
        )
    await housing.open(result.message_id, user="ho.4", justification="tenancy allocation review")
    await world.sync_ledger()
    [consultation] = world.ledger.store.entries(act="consultation")
    assert consultation["user"] == "ho.4"
    assert consultation["view"] == "redacted"
    # Keyed by subject or by agency, the two refusals may arrive in either order.
    refusals = {
        r["reason_code"]: r for r in world.ledger.store.entries(act="refusal", operation="consult")
    }
    assert set(refusals) == {"consult.justification-missing", "consult.not-found"}
    assert refusals["consult.justification-missing"]["subject_ref"] == consultation["subject_ref"]
    assert refusals["consult.not-found"]["subject_ref"] is None


def test_uk_date() -> None:
    assert uk_date("2/11/2026") == "2026-11-02"
    with pytest.raises(SchemaError):
        uk_date("2026-11-02")


async def test_a_csv_referral_reaches_each_kind_in_its_own_format(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    """The unit's register sets the case team; then an EM provider's CSV escalation
    reaches the unit in full and DWP (on the team) as a summary row."""
    world = await build_world(
        tmp_path, tansu(transport.bootstrap), specs=DEMO_ROSTER, parties=DEMO_PARTIES
    )
    try:
        em, unit, dwp = (
            "electronic-monitoring.em-service",
            "coordinator.staffordshire",
            "jobcentre.stafford",
        )
        team = copy.deepcopy(RECORDS[("coordinator", "CASE_TEAM")])
        team["team"]["members"] += [
            {"agency": em, "role": "electronic-monitoring"},
            {"agency": dwp, "role": "jobcentre"},
        ]
        await adapter_for(world.gw(unit)).submit(team, purpose="MAPPA case management")
        await world.pump(lambda: all(world.of(a, Handling.DELIVERED) for a in (em, dwp)))
        [row] = parse_csv(to_csv([RECORDS[("electronic-monitoring", "ESCALATION")]]))
        result = await adapter_for(world.gw(em)).submit(row, purpose="MAPPA referral")
        await world.pump(
            lambda: all(
                any(h.message_id == result.message_id for h in world.of(a, Handling.DELIVERED))
                for a in (unit, dwp)
            )
        )
        why = "Screening a MAPPA A referral"
        entry = await adapter_for(world.gw(unit)).open(
            result.message_id, user="mcu.1", justification=why
        )
        assert entry["view"] == "full"
        assert entry["entry"]["risk_summary"] == "Two exclusion-zone entries in 48 hours."
        alert = await adapter_for(world.gw(dwp)).open(
            result.message_id, user="wc.7", justification=why
        )
        assert alert["View"] == "summary"
        assert alert["MappaLevel"] == "2"
        assert "requested_level=3" in alert["Summary"]
        assert "exclusion-zone entries" not in alert["Summary"]
        assert all(isinstance(v, str) for v in alert.values())
    finally:
        await world.close()
