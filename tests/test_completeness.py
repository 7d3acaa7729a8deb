"""s62 completeness on the real broker: the demo scenario, then a correction and a retention
erasure; every act the product performed has its ledger record with the s62 fields filled."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.agreements import agreement_for_area
from broker.agreements.policy import SharingPolicy
from broker.cli.demo.scenario import (
    AREA,
    CASE_TEAM,
    COORDINATOR,
    HOUSING,
    PARTIES,
    POLICE,
    SPECS,
    DemoRun,
    settle,
)
from broker.crypto.envelope import parse_envelope
from broker.deployment import Deployment
from broker.errors import PolicyDenied
from broker.gateway.agency import utc_now
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from broker.trust.provision import DataPaths, provision
from schemas.common import Role
from tests.support import World, risk_assessment


def filled(entry: dict[str, Any], *names: str) -> list[str]:
    """The named s62 fields that are empty in ``entry``."""
    return [n for n in ("event_id", "time", "agency", "act", *names) if not entry.get(n)]


async def test_every_act_is_in_the_ledger_with_its_s62_fields(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        kafka_bootstrap=transport.bootstrap,
    )
    passphrase = secrets.token_urlsafe(18).encode()
    directory = provision(
        DataPaths(settings.data_dir), SPECS, passphrase=passphrase, now=utc_now() - timedelta(1)
    )
    agreement = agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])
    deployment = Deployment(settings=settings, passphrase=passphrase, agreements=[agreement])
    # Whoever the agreement entitles to a police risk assessment in the area.
    receivers = [
        d.recipient.agency_id
        for d in SharingPolicy(agreement, directory).recipients(
            directory.agency(POLICE), "risk-assessment", AREA, team=frozenset(CASE_TEAM)
        )
    ]
    assert HOUSING in receivers
    async with deployment.running([s.agency_id for s in SPECS]) as running:
        run = DemoRun(deployment, running)
        team = await run.form_case_team()
        result = await run.publish()
        await run.attack(result, "classic", team)
        await run.consult()

        police = run.gateways[POLICE]
        corrected = await police.correct(
            result.message_id,
            risk_assessment(level=3),
            purpose="MAPPA risk management",
            user="ppu.officer.4471",
            reason="MAPPA level raised to 3 at the level review",
        )
        await settle(
            run.receivers,
            lambda: all(
                sum(r["message_type"] == "risk-assessment" for r in run.reports[a].received) == 2
                for a in receivers
            ),
        )
        housing = run.gateways[HOUSING]
        held = {i.message_id for i in housing.ctx.store.inbox()}
        assert {result.message_id, corrected.message_id} <= held
        assert await housing.erase_expired() == []  # nothing is past its retention yet
        years = agreement.retention.years
        erased = await housing.erase_expired(now=utc_now() + timedelta(days=366 * years + 1))
        # Everything past retention goes: the case team it was told of, too.
        assert {i.message_id for i in erased} == held
        assert housing.ctx.store.inbox() == []
        summary = await run.audit()
        assert summary["records"] == summary["expected"]

        envelopes = await _read(deployment, transport)
        assert result.message_id in {e.unverified_header.supersedes for e in envelopes}

        entries = run.ledger.store.entries()
        by_act: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            by_act.setdefault(e["act"], []).append(e)
        assert set(by_act) == {
            "collection",
            "disclosure",
            "consultation",
            "alteration",
            "erasure",
            "refusal",
        }
        basis = ("subject_ref", "message_id", "message_type", "isa_id", "isa_version")
        for e in by_act["collection"]:
            assert not filled(e, *basis, "purpose", "lawful_basis"), e
            if e["operation"] == "publish" and e["message_type"] == "case-team":
                assert (e["agency"], e["user"]) == (COORDINATOR, "mappa.coordinator.12")
            elif e["operation"] == "publish":
                assert e["agency"] == POLICE
                assert e["user"] == "ppu.officer.4471"
            else:
                assert e["recipient"] == e["agency"]
        for e in by_act["disclosure"]:
            assert not filled(e, *basis, "recipient", "view", "lawful_basis", "user"), e
        assert {
            (e["message_id"], e["recipient"])
            for e in by_act["disclosure"]
            if e["message_type"] == "risk-assessment"
        } == {(m, a) for m in (result.message_id, corrected.message_id) for a in receivers}
        told = {a for a, _ in team.disclosures}
        assert {
            e["recipient"] for e in by_act["disclosure"] if e["message_type"] == "case-team"
        } == told
        [consultation] = by_act["consultation"]
        assert not filled(consultation, *basis, "user", "justification", "view")
        [alteration] = by_act["alteration"]
        assert not filled(alteration, *basis, "user", "reason")
        assert alteration["message_id"] == corrected.message_id
        assert result.message_id in alteration["reason"]
        assert {e["message_id"] for e in by_act["erasure"]} == held
        for e in by_act["erasure"]:
            assert not filled(e, *basis, "recipient", "reason"), e
            assert e["agency"] == HOUSING
        for e in by_act["refusal"]:
            assert not filled(e, "reason_code", "reason", "outcome"), e
            assert e["outcome"] == "refused"
        assert run.ledger.checkpoint() is not None
        assert deployment.ledger_reader(run.ledger.store).verify().intact


async def _read(deployment: Deployment, transport: KafkaTransport) -> list[Any]:
    from broker.cli.demo.scenario import read_all

    topic = deployment.topics.for_role(AREA, Role.PROBATION)
    return [parse_envelope(r.value) for r in await read_all(transport, [topic], 3)]


async def test_a_refused_correction_is_recorded_and_leaves_nothing_behind(world: World) -> None:
    police = world.gw(POLICE)
    queued = police.ctx.store.outbox_counts()
    with pytest.raises(PolicyDenied):
        await police.correct(
            str(uuid.uuid4()),
            risk_assessment(area="derbyshire"),
            purpose="MAPPA risk management",
            user="ppu.officer.4471",
            reason="wrong area on purpose",
        )
    after = police.ctx.store.outbox_counts()
    audit_topic = police.ctx.topics.audit
    assert after.get(audit_topic, 0) == queued.get(audit_topic, 0) + 1
    assert {t: c for t, c in after.items() if t != audit_topic} == {
        t: c for t, c in queued.items() if t != audit_topic
    }
    await world.sync_ledger()
    [refusal] = world.ledger.store.entries(act="refusal", operation="correct")
    assert refusal["outcome"] == "refused"
    assert refusal["user"] == "ppu.officer.4471"
    assert refusal["subject_ref"]
    assert "correction of" in refusal["reason"]
    assert world.ledger.store.entries(act="alteration") == []
