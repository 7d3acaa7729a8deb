"""Test helpers for transfers: two provisioned areas on the session's broker."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.agreements import agreement_for_area
from broker.deployment import Deployment
from broker.gateway import AgencyGateway
from broker.gateway.receive import Handled, Handling
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.service import LedgerService
from broker.settings import Settings
from broker.transfer.desk import TransferDesk
from broker.transfer.envelopes import STEP_PURPOSE, seal_for_transfers
from broker.transfer.rules import step_of
from broker.trust.provision import DataPaths, provision, two_area_specs
from schemas.common import ViewKind, from_data
from schemas.messages import CaseTeam, RiskAssessment
from schemas.transfer import TransferControl
from tests.support import read_topic

FROM = "staffordshire"
TO = "west-mercia"
SPECS = two_area_specs(FROM, TO)
POLICE_A, PROBATION_A, PRISON_A, HOUSING_A, COORD_A = (s.agency_id for s in SPECS[:5])
POLICE_B, PROBATION_B, PRISON_B, HOUSING_B, COORD_B = (s.agency_id for s in SPECS[5:])
PNC = "2011/0456789K"
# The co-ordinators and RA agencies of both areas: who holds a transfer step in full.
CASE_HOLDERS = (POLICE_A, PROBATION_A, PRISON_A, COORD_A, POLICE_B, PROBATION_B, PRISON_B, COORD_B)


def risk_assessment(area: str, summary: str = "High risk to children.") -> RiskAssessment:
    return from_data(
        RiskAssessment,
        {
            "subject": {"pnc_id": PNC, "name": "Alex Sample", "date_of_birth": "1980-03-14"},
            "area": area,
            "category": 1,
            "level": 2,
            "tool": "ARMS",
            "assessed_on": "2026-11-02",
            "risk_of_serious_harm": "high",
            "risk_to": ["children"],
            "factors": ["access to children"],
            "summary": summary,
            "victims": [{"name": "Jane Witness", "relationship": "former partner"}],
            "health_notes": "Community mental health team.",
        },
    )


def case_team(area: str, members: tuple[str, ...], lead: str) -> CaseTeam:
    roles = {s.agency_id: s.role for s in SPECS}
    return from_data(
        CaseTeam,
        {
            "subject": {"pnc_id": PNC, "name": "Alex Sample", "date_of_birth": "1980-03-14"},
            "area": area,
            "category": 1,
            "level": 2,
            "effective_from": "2026-11-23",
            "lead_agency": lead,
            "members": [{"agency_id": a, "role": roles[a].value} for a in members],
        },
    )


@dataclass
class TransferWorld:
    deployment: Deployment
    gateways: dict[str, AgencyGateway]
    desks: dict[str, TransferDesk]
    ledger: LedgerService
    passphrase: bytes
    handled: dict[str, list[Handled]] = field(default_factory=dict)

    @property
    def transport(self) -> KafkaTransport:
        return self.deployment.transport

    def gw(self, agency: str) -> AgencyGateway:
        return self.gateways[agency]

    def desk(self, agency: str) -> TransferDesk:
        return self.desks[agency]

    async def _round(self) -> None:
        for agency in self.gateways:
            got = await self.gateways[agency].poll_once(timeout_ms=30)
            got += await self.desks[agency].poll_once(timeout_ms=30)
            self.handled.setdefault(agency, []).extend(got)

    async def pump(self, until: Callable[[], bool], *, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within}s: {self.handled}")
            await self._round()

    async def pump_quiet(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            await self._round()

    def of(self, agency: str, handling: Handling, topic_part: str = "") -> list[Handled]:
        return [
            h
            for h in self.handled.get(agency, [])
            if h.handling is handling and topic_part in h.topic
        ]

    def delivered(self, agency: str) -> list[Handled]:
        return self.of(agency, Handling.DELIVERED)

    async def sync_ledger(self, *, within: float = 20.0) -> None:
        expected = sum(gw.ctx.audit.emitted for gw in self.gateways.values())
        held = await self.ledger.catch_up(expected, within=within)
        if held < expected:
            raise AssertionError(f"ledger has {held} of {expected}")

    def seal(
        self,
        sender: str,
        views: Sequence[tuple[ViewKind, bytes, Sequence[str]]],
        *,
        area: str,
        message_type: str,
        subject_ref: str,
        purpose: str,
    ) -> bytes:
        """A record value for the transfer topic, sealed and signed as ``sender`` by the
        broker's own ``seal_for_transfers`` whatever the views hold and the header says,
        as a faulty or compromised adapter could."""
        ctx = self.desk(sender).ctx
        _, value = seal_for_transfers(
            ctx,
            now=ctx.clock(),
            area=area,
            message_type=message_type,
            schema_version=1,
            subject_ref=subject_ref,
            purpose=purpose,
            isa=(ctx.policy.agreement.id, ctx.policy.agreement.version),
            views=views,
        )
        return value

    async def read(self, topic: str, at_least: int = 1) -> list[Record]:
        """Every record on ``topic`` (at least one, unless none comes within 10 s)."""
        return await read_topic(self.transport, topic, at_least)

    async def post(self, value: bytes) -> None:
        """Put a record straight onto the transfer topic, as any signed agency could."""
        await self.transport.send(self.deployment.topics.transfers, value, key=b"x")

    def seal_step(self, sender: str, message: TransferControl) -> bytes:
        """``message`` sealed as ``sender`` for every case holder of both areas, as the
        sender's desk would seal it but without the desk's own checks (as a faulty or
        compromised adapter could send it)."""
        return self.seal(
            sender,
            self.desk(sender)._recipients(message),
            area=message.from_area,
            message_type=step_of(message).message_type,
            subject_ref=message.subject_ref,
            purpose=f"{STEP_PURPOSE}{message.transfer_id}",
        )

    async def close(self) -> None:
        await self.ledger.stop()
        for agency in self.gateways:
            await self.desks[agency].stop()
            await self.gateways[agency].stop()
        self.deployment.close()


async def build_transfer_world(
    tmp_path: Path, transport: KafkaTransport, **settings: Any
) -> TransferWorld:
    config = Settings(
        data_dir=tmp_path / "data", topic_namespace=f"t{uuid.uuid4().hex[:12]}", **settings
    )
    passphrase = secrets.token_urlsafe(18).encode()
    now = datetime.now(UTC) - timedelta(days=1)
    directory = provision(DataPaths(config.data_dir), SPECS, passphrase=passphrase, now=now)
    agreements = [agreement_for_area(area, directory.agencies(area=area)) for area in (FROM, TO)]
    deployment = Deployment(
        settings=config, passphrase=passphrase, transport=transport, agreement=agreements[0]
    )
    deployment.add_agreement(agreements[1])
    await transport.ensure_topics(deployment.topics.all_topics([FROM, TO]))
    gateways = {s.agency_id: deployment.gateway(s.agency_id) for s in SPECS}
    desks = {a: deployment.transfer_desk(gw) for a, gw in gateways.items()}
    ledger = deployment.ledger()
    # Each reader is its own connection: start them together.
    await asyncio.gather(
        *(gw.start() for gw in gateways.values()),
        *(desk.start() for desk in desks.values()),
        ledger.start(),
    )
    return TransferWorld(deployment, gateways, desks, ledger, passphrase)


async def refused_everywhere(
    w: TransferWorld, value: bytes, code: str, agencies: tuple[str, ...]
) -> None:
    """Send ``value`` and wait until each of ``agencies`` refused it with ``code``."""
    before = {a: len(w.of(a, Handling.REFUSED)) for a in agencies}

    def refused(agency: str) -> list[str | None]:
        return [h.reason_code for h in w.of(agency, Handling.REFUSED)[before[agency] :]]

    await w.post(value)
    await w.pump(lambda: all(code in refused(a) for a in agencies))
    for agency in agencies:
        assert all(h.reason for h in w.of(agency, Handling.REFUSED))
